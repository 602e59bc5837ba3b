"""Dashboard data: the JSON views behind ``/`` and ``/api/*``, and a bounded in-memory history.

The page (``index.html``, ``app.css``, ``app.js`` in this folder) is static and reads only these views,
so scripts can use the same API. Everything here reads the engine views the consume loop publishes
(:mod:`monitor.core.view`: plain data, swapped by reference), never live engine state, so a request
never takes the service lock, and returns plain data.

Health in plain words, per model version, from the incidents open now (the same set that colours the
drift rows and the alert tables, so the badge and the rows cannot disagree):

- ``act``: the model's results are affected or a retrain / rollback is recommended: an open alert of a
  result kind (``concept_drift``, ``performance`` (a labelled metric under its floor, or a significant
  drop of the estimated accuracy), ``business``, ``fairness``, ``retrain_recommended``,
  ``rollback_recommended``) or one recommending ``retrain`` / ``rollback``;
- ``watch``: only other incidents are open (input or prediction drift, schema, data quality, latency),
  whatever their severity: inputs changed, results may follow;
- ``healthy``: nothing is open.

Numbers the engine does not publish as such are derived here, read-only, from what the engine views and
the alert events already hold: why an open alert stays open (the lifecycle's clear condition and the
statistics it is judged on, from the partition that owns the key), the share of traffic of a segment and
its labelled accuracy (the performance buckets), and the predictions seen in a segment since an alert's
change began (interpolated from a bounded timeline of per-segment counts against event time).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from monitor.core.performance import metrics_from_confusion
from monitor.core.rules import ALL, iso, segment_label
from monitor.core.view import BucketRow, EngineView, WindowRow, merged_fairness

if TYPE_CHECKING:
    from monitor.io.kafka import MonitorService

log = logging.getLogger(__name__)

# Open alerts of these kinds mean the model's results are affected: the badge says Act.
RESULT_KINDS = frozenset(
    {"concept_drift", "performance", "business", "fairness", "rollback_recommended", "retrain_recommended"}
)
ACT_KINDS = RESULT_KINDS  # the former name
ACT_RECOMMENDATIONS = frozenset({"retrain", "rollback"})
KIND_WORDS = {
    "data_drift": "input drift",
    "prediction_drift": "prediction drift",
    "concept_drift": "concept drift",
    "performance": "performance",
    "fairness": "fairness gap",
    "schema": "schema change",
    "data_quality": "data quality",
    "latency": "latency",
    "business": "business outcome",
    "retrain_recommended": "retrain recommended",
    "rollback_recommended": "rollback recommended",
}
PREDICTION_STREAM = "__prediction__"  # the engine's stream name of the prediction itself
COUNT_POINTS = 2000  # per model version: (event time, counts per segment) points kept for "since the change"
MAX_SEGMENT_ROWS = 24
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
}
# Series sampled per model version into the history (outcome means are added as ``outcome:<name>``).
SERIES = ("events_per_s", "accuracy", "estimated_accuracy", "label_coverage", "max_drift_effect", "open_alerts")


def static_file(path: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a dashboard file served at ``path``, or None."""
    entry = STATIC_FILES.get(path)
    if entry is None:
        return None
    name, content_type = entry
    return resources.files(__name__).joinpath(name).read_bytes(), content_type


def _num(x: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become null."""
    return None if x is None or not math.isfinite(x) else float(x)


def _fmt(x: float) -> str:
    """Numbers as a person reads them: 4,100 / 12.5 / 0.312."""
    if x != x:
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:,.1f}"
    return f"{x:.2f}" if ax >= 0.1 else f"{x:.3g}"


def _bucket_of(segment: str) -> tuple[str, str]:
    """The engine's bucket of a segment label (``all`` or ``attr=value``)."""
    if segment == "all":
        return ALL
    attr, _, value = segment.partition("=")
    return attr, value


def affects_results(alert: dict[str, Any]) -> bool:
    """Whether an alert says the model's results are affected (or recommends retrain / rollback)."""
    return alert.get("kind") in RESULT_KINDS or alert.get("recommendation") in ACT_RECOMMENDATIONS


def describe(alert: dict[str, Any]) -> str:
    """``input drift on income in country=SG``: what an alert is about, in words.

    >>> describe({"kind": "data_drift", "subject": "income", "segment": {"country": "SG"}})
    'input drift on income in country=SG'
    """
    kind = str(alert.get("kind"))
    words = KIND_WORDS.get(kind, kind.replace("_", " "))
    segment = alert.get("segment")
    where = segment_label(segment) if isinstance(segment, dict) else None
    where_text = "" if where is None else (" in all traffic" if where == "all" else f" in {where}")
    return f"{words} on {alert.get('subject')}{where_text}"


def health(
    open_alerts: list[dict[str, Any]], accuracy: float | None = None, mae: float | None = None
) -> tuple[str, str]:
    """``(healthy | watch | act, reason)`` from the open incidents of one model version.

    The reason is about now: what is open, and whether the model's results are affected.
    ``accuracy`` (labelled, recent), or a regression model's ``mae``, is quoted when inputs changed and no
    result alert is open.

    >>> health([])
    ('healthy', 'No open alerts.')
    >>> state, reason = health([{"kind": "data_drift", "severity": "critical", "recommendation": "investigate",
    ...                          "subject": "income", "segment": {"country": "SG"}}], accuracy=0.871)
    >>> state
    'watch'
    >>> print(reason)
    Inputs changed: input drift on income in country=SG. No alert on the results; accuracy 87.1% (labelled, recent).
    >>> health([{"kind": "concept_drift", "severity": "warning", "recommendation": "retrain",
    ...          "subject": "accuracy", "segment": {}}])
    ('act', 'Results affected: concept drift on accuracy in all traffic (recommended: retrain).')
    """
    if not open_alerts:
        return "healthy", "No open alerts."
    urgent = [a for a in open_alerts if affects_results(a)]
    if urgent:
        rec = urgent[0].get("recommendation")
        tail = f" (recommended: {rec})" if rec in ACT_RECOMMENDATIONS else ""
        more = f" and {len(urgent) - 1} more" if len(urgent) > 1 else ""
        return "act", f"Results affected: {describe(urgent[0])}{more}{tail}."
    what = "; ".join(describe(a) for a in open_alerts[:3])
    if len(open_alerts) > 3:
        what += f" and {len(open_alerts) - 3} more"
    if accuracy is not None:
        acc = f"accuracy {100 * accuracy:.1f}% (labelled, recent)"
    elif mae is not None:  # a regression model: it has no accuracy, and "no labels" would be wrong
        acc = f"mean absolute error {mae:,.4g} (labelled, recent)"
    else:
        acc = "accuracy not measured yet (no labels)"
    return "watch", f"Inputs changed: {what}. No alert on the results; {acc}."


def _new_acc() -> dict[str, Any]:
    return {"pred": 0, "lab": 0, "metric": {}, "est": [0.0, 0], "band": [0.0, 0.0], "est_metrics": {}, "outcomes": {}}


def _add_bucket(acc: dict[str, Any], b: BucketRow, full: bool) -> None:
    """Add one partition's bucket to ``acc`` (metrics weighted by the window sizes)."""
    acc["pred"] += b.predictions
    acc["lab"] += b.labelled
    n_win = b.window_size
    if n_win:
        for name, value in b.window_metrics.items():
            if value == value:
                m = acc["metric"].setdefault(name, [0.0, 0])
                m[0] += value * n_win
                m[1] += n_win
    value, low, high, n_est = b.estimated
    if n_est and value == value:
        acc["est"][0] += value * n_est
        acc["est"][1] += n_est
        acc["band"][0] += low * n_est
        acc["band"][1] += high * n_est
        if full:
            confusion = b.estimated_confusion
            if confusion is not None:
                sums = acc["est_metrics"].setdefault("confusion", [0.0, 0.0, 0.0])  # expected TP, FP, FN
                for i, v in enumerate(confusion):
                    sums[i] += v
    if full:
        for name, n, mean in b.outcomes:
            m = acc["outcomes"].setdefault(name, [0.0, 0])
            m[0] += mean * n
            m[1] += n


def _model_rows(views: Iterable[EngineView]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, version): events, all-traffic metrics and outcomes, and per-segment counts and accuracy,
    merged across partitions."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for view in views:
        for (model, version), st in view.models.items():
            row = rows.setdefault(
                (model, version),
                {"events": 0, "task": None, "buckets": {}, "first": math.inf, "last": -math.inf},
            )
            row["events"] += st.events
            if st.first_event_time == st.first_event_time:
                row["first"] = min(row["first"], st.first_event_time)
            if st.last_event_time == st.last_event_time:
                row["last"] = max(row["last"], st.last_event_time)
            for b in st.buckets or ():
                if b.bucket == ALL:
                    row["task"] = row["task"] or b.task
                acc = row["buckets"].setdefault(b.bucket, _new_acc())
                _add_bucket(acc, b, full=b.bucket == ALL)
    out = {}
    for key, row in rows.items():
        everything = row["buckets"].get(ALL, _new_acc())
        metrics = {name: s / w for name, (s, w) in everything["metric"].items()}
        est_n = everything["est"][1]
        segments = []
        for bucket, acc in row["buckets"].items():
            if bucket == ALL:
                continue
            seg_metrics = {name: s / w for name, (s, w) in acc["metric"].items()}
            segments.append(
                {
                    "segment": segment_label({bucket[0]: bucket[1]}),
                    "predictions": acc["pred"],
                    "share": acc["pred"] / everything["pred"] if everything["pred"] else None,
                    "labelled": acc["lab"],
                    "accuracy": seg_metrics.get("accuracy"),
                    "estimated_accuracy": acc["est"][0] / acc["est"][1] if acc["est"][1] else None,
                }
            )
        out[key] = {
            "events": row["events"],
            "task": row["task"],
            "first_event_time": row["first"],
            "last_event_time": row["last"],
            "metrics": metrics,
            "accuracy": metrics.get("accuracy"),
            "estimated_accuracy": everything["est"][0] / est_n if est_n else None,
            "estimated_accuracy_band": [everything["band"][0] / est_n, everything["band"][1] / est_n]
            if est_n
            else None,
            "estimated_metrics": {
                name: _num(v) for name, v in metrics_from_confusion(*everything["est_metrics"]["confusion"]).items()
            }
            if "confusion" in everything["est_metrics"]
            else {},
            "label_coverage": min(1.0, everything["lab"] / everything["pred"]) if everything["pred"] else None,
            "outcomes": {name: s / w for name, (s, w) in everything["outcomes"].items()},
            "counts": {"all": everything["pred"]} | {s["segment"]: s["predictions"] for s in segments},
            "segments": segments,
        }
    return out


def _window_verdict(view: EngineView, model: str, version: str, feature: str, segment: str) -> WindowRow | None:
    """The latest decided window test of a stream on one partition (None before its first decided window)."""
    name = PREDICTION_STREAM if feature == "prediction" else feature
    verdict = view.window_index.get((model, version, name, segment))
    return verdict if verdict is not None and verdict.significant is not None else None


def _drift_rows(views: Iterable[EngineView], sig: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (model, version): one row per (feature, segment), merged across partitions (effects: max).

    ``window`` is the largest statistic of the latest decided window test on any partition, with its
    threshold (the test an alert can also fire on, and that must clear before it resolves).
    """
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for view in views:
        for s in view.streams:
            k = (s.model, s.model_version, s.feature, s.segment)
            row = merged.setdefault(
                k,
                {"feature": s.feature, "segment": s.segment, "kind": s.kind, "effect": 0.0}
                | {"events": 0, "missing": 0, "window": None},
            )
            row["effect"] = max(row["effect"], s.effect if s.effect == s.effect else 0.0)
            row["events"] += s.count
            row["missing"] += s.missing
            verdict = _window_verdict(view, s.model, s.model_version, s.feature, s.segment)
            if verdict is not None and sig is not None:
                stat = sig.numeric_statistic if s.kind == "numeric" else sig.categorical_statistic
                value = float(verdict.statistic(stat))
                if value == value and (row["window"] is None or value > row["window"]["value"]):
                    row["window"] = {"statistic": stat, "value": value, "threshold": float(sig.threshold(stat))}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (model, version, _f, _s), row in merged.items():
        missing = row.pop("missing")
        row["missing_ratio"] = missing / row["events"] if row["events"] else 0.0
        out.setdefault((model, version), []).append(row)
    return out


def _stream_key(model: str, version: str, feature: str, segment: str) -> str:
    kind = "prediction_drift" if feature == "prediction" else "data_drift"
    return f"{model}/{version}/{kind}/{feature}/{segment}"


def _check(name: str, value: float, threshold: float, ratio: float, unit: str = "") -> dict[str, Any]:
    """One statistic an open alert is judged on: it keeps the alert open while at or above ``clears_below``."""
    clears_below = threshold * ratio
    return {
        "name": name,
        "value": _num(value),
        "threshold": _num(threshold),
        "clears_below": _num(clears_below),
        "unit": unit,
        "holding": bool(value == value and value >= clears_below),
    }


def _checks(view: EngineView, cfg: Any, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The statistics the owning partition judges an open alert's clear condition on, as of its view."""
    ratio = cfg.alerts.resolve_ratio
    kind, subject = alert.get("kind"), str(alert.get("subject"))
    segment = alert.get("segment") or {}
    bucket = ALL if not segment else next(iter(segment.items()))
    model, version = str(alert.get("model")), str(alert.get("model_version"))
    state = view.models.get((model, version))
    if state is None:
        return []
    out: list[dict[str, Any]] = []
    if kind in ("data_drift", "prediction_drift"):
        name = PREDICTION_STREAM if kind == "prediction_drift" else subject
        stream = view.stream_index.get((model, version, name, segment_label({} if bucket == ALL else dict([bucket]))))
        if stream is None:
            return []
        if stream.kind == "numeric":
            out.append(_check("shift", stream.effect, cfg.alerts.min_effect_size, ratio, " sd"))
        else:
            out.append(_check("distance", stream.effect, cfg.alerts.min_distance, ratio))
        verdict = _window_verdict(view, model, version, subject, segment_label(segment))
        if verdict is not None:
            sig = cfg.significance
            stat = sig.numeric_statistic if stream.kind == "numeric" else sig.categorical_statistic
            check = _check(f"window {stat.upper()}", float(verdict.statistic(stat)), sig.threshold(stat), ratio)
            check["window_end"] = iso(verdict.time)
            check["window_events"] = int(verdict.events)
            out.append(check)
    elif kind == "concept_drift" and state.buckets is not None:
        b = next((b for b in state.buckets if b.bucket == bucket), None)
        if b is not None and b.error_rise is not None and b.min_rise is not None:
            out.append(_check("error rise", b.error_rise, b.min_rise, ratio))
    return out


def _open_details(
    views: Iterable[EngineView], cfg: Any, firing: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per open key, from the partition that owns it: since when, whether its clear condition holds now and
    for how long, what it needs to resolve, and the statistics it is judged on."""
    out: dict[str, dict[str, Any]] = {}
    for view in views:
        for incident in view.open_alerts:
            key = incident.key
            alert = firing.get(key) or {}
            model_state = view.models.get((str(alert.get("model")), str(alert.get("model_version"))))
            now = model_state.last_event_time if model_state is not None else math.nan
            clear_since = incident.clear_since
            try:
                checks = _checks(view, cfg, alert) if alert else []
            except (AttributeError, KeyError, TypeError, ValueError):  # a stream of a kind this view cannot read
                log.debug("no current statistics for %s", key, exc_info=True)
                checks = []
            out[key] = {
                "alert_id": incident.alert_id,
                "started_at": iso(incident.started_at),
                "detected_at": iso(incident.detected_at),
                "clear_since": iso(clear_since) if clear_since is not None else None,
                "clear_for_s": _num(now - clear_since) if clear_since is not None else None,
                "resolve_after_s": view.resolve_after_s,
                "resolve_after_events": view.resolve_after_events,
                "checks": checks,
                "now_time": iso(now),
            }
    return out


def now_sentence(detail: dict[str, Any]) -> str:
    """Why an open alert is still open, in one sentence about now.

    >>> now_sentence({"clear_since": None, "resolve_after_s": 10, "resolve_after_events": 200, "checks": [
    ...     {"name": "shift", "value": 0.11, "threshold": 0.5, "clears_below": 0.25, "unit": " sd", "holding": False},
    ...     {"name": "window PSI", "value": 1.0, "threshold": 0.2, "clears_below": 0.1, "unit": "", "holding": True}]})
    'Still open: window PSI 1.00 against 0.20 (clears below 0.10); shift 0.11 sd is back under 0.25 sd.'
    >>> now_sentence({"clear_since": "2026-01-01T00:00:00.000Z", "clear_for_s": 4.0, "resolve_after_s": 10,
    ...               "resolve_after_events": 0, "checks": []})
    'Back to normal for 4 s; it resolves after 10 s back to normal.'
    """
    checks = detail.get("checks") or []
    holding = [c for c in checks if c["holding"]]
    settled = [c for c in checks if not c["holding"] and c["value"] is not None]

    def stat(c: dict[str, Any]) -> str:
        return f"{c['name']} {_fmt(c['value'])}{c['unit']} against {_fmt(c['threshold'])}{c['unit']}"

    need = f"{detail['resolve_after_s']:g} s"
    if detail.get("resolve_after_events"):
        need += f" and {detail['resolve_after_events']:,} events"
    if detail.get("clear_since") is not None:
        held = detail.get("clear_for_s")
        since = f"for {held:.0f} s" if held is not None else "since " + str(detail["clear_since"])
        now = "; ".join(stat(c) for c in checks if c["value"] is not None)
        return f"Back to normal {since}{' (' + now + ')' if now else ''}; it resolves after {need} back to normal."
    if holding:
        parts = [f"{stat(c)} (clears below {_fmt(c['clears_below'])}{c['unit']})" for c in holding]
        text = "Still open: " + "; ".join(parts)
        if settled:
            text += "; " + "; ".join(
                f"{c['name']} {_fmt(c['value'])}{c['unit']} is back under {_fmt(c['clears_below'])}{c['unit']}"
                for c in settled
            )
        return text + "."
    if checks:
        now = "; ".join(stat(c) for c in checks if c["value"] is not None)
        return f"Still open: values are back ({now}); the change is confirmed clear at the stream's next evaluation."
    return "Still open: its condition has not cleared yet."


def count_since(points: Iterable[tuple[float, dict[str, int]]], segment: str, since: float, now: int) -> int | None:
    """Predictions of ``segment`` after event time ``since``: ``now`` minus the count interpolated at ``since``
    between the two recorded points around it (None if no point is at or before ``since``).

    >>> count_since([(0.0, {"all": 0}), (10.0, {"all": 100}), (20.0, {"all": 300})], "all", 15.0, 400)
    200
    """
    before: tuple[float, int] | None = None
    for t, counts in points:
        c = counts.get(segment, 0)
        if t <= since:
            before = (t, c)
            continue
        if before is None:
            return None
        t0, c0 = before
        at = c0 + (c - c0) * (since - t0) / (t - t0) if t > t0 else c0
        return max(0, round(now - at))
    return None if before is None else max(0, now - before[1])


class DashboardViews:
    """Builds the API documents from a :class:`MonitorService` and the recent alert events.

    ``fairness`` is an optional provider of fairness-gap rows (``model, version, attribute, group,
    reference, metric, gap, low, high, firing``); the page shows them when the list is not empty.
    """

    def __init__(
        self,
        service: MonitorService,
        recent: Iterable[dict[str, Any]],
        *,
        fairness: Callable[[], list[dict[str, Any]]] | None = None,
        max_drift_rows: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.recent = recent
        self.fairness = fairness
        self.max_drift_rows = max_drift_rows
        self.clock = clock
        # Per model version: (newest event time, predictions per segment) at each look, for "since the change".
        self._counts: dict[tuple[str, str], deque[tuple[float, dict[str, int]]]] = {}
        self._counts_lock = threading.Lock()

    def _snapshot(
        self, firing: dict[str, dict[str, Any]] | None = None
    ) -> tuple[
        dict[tuple[str, str], dict[str, Any]],
        dict[tuple[str, str], list[Any]],
        set[str],
        dict[str, dict[str, Any]],
    ]:
        svc = self.service
        sig = getattr(svc.config, "significance", None)
        views = svc.all_views()  # the latest published views: no engine object, no lock
        models = _model_rows(views)
        drift = _drift_rows(views, sig)
        open_keys = {a.key for view in views for a in view.open_alerts}
        details = _open_details(views, svc.config, firing) if firing is not None else {}
        self._record_counts(models)
        return models, drift, open_keys, details

    def _record_counts(self, models: dict[tuple[str, str], dict[str, Any]]) -> None:
        with self._counts_lock:
            for key, row in models.items():
                last = row.get("last_event_time", -math.inf)
                if not math.isfinite(last):
                    continue
                points = self._counts.get(key)
                if points is None:
                    points = self._counts[key] = deque(maxlen=COUNT_POINTS)
                    first = row.get("first_event_time", math.inf)
                    if math.isfinite(first) and first < last:  # every count was 0 before the first event
                        points.append((first, {}))
                if not points or last > points[-1][0]:
                    points.append((last, dict(row.get("counts", {}))))

    def _since(self, model: str, version: str, segment: str, started: float, now: int) -> int | None:
        with self._counts_lock:
            points = list(self._counts.get((model, version), ()))
        return count_since(points, segment, started, now)

    def fairness_rows(self) -> list[dict[str, Any]]:
        """Fairness gaps of every model version, pooled across this replica's partitions."""
        pooled = merged_fairness(self.service.all_views())
        gaps = {key: t.gaps() for key, t in pooled.items() if t is not None}
        rows = []
        for (model, version), items in sorted(gaps.items()):
            for g in items:
                if g.gap != g.gap:
                    continue
                rows.append(
                    {
                        "model": model,
                        "version": version,
                        "attribute": g.attribute,
                        "group": g.group,
                        "reference": g.reference,
                        "metric": g.metric,
                        "gap": _num(g.gap),
                        "low": _num(g.low),
                        "high": _num(g.high),
                        "threshold": _num(g.threshold),
                        "size": g.size,
                        "firing": bool(g.fire),
                    }
                )
        return rows

    def alerts(self, limit: int = 100) -> dict[str, Any]:
        """Recent alert events, newest first, and the keys of the incidents open now."""
        open_keys = sorted({a.key for view in self.service.all_views() for a in view.open_alerts})
        recent = list(self.recent)[::-1][: max(0, limit)]
        return {"open": open_keys, "alerts": recent}

    def _impact(self, alert: dict[str, Any], row: dict[str, Any], started: str | None) -> dict[str, Any]:
        """Who an open alert concerns: the segment's share of traffic, its predictions since the change
        began, and its labelled accuracy next to all traffic's."""
        segment = alert.get("segment")
        label = segment_label(segment) if isinstance(segment, dict) else "all"
        counts = row.get("counts", {})
        total = counts.get("all", 0)
        seen = counts.get(label, 0)
        seg = next((s for s in row.get("segments", []) if s["segment"] == label), None)
        since: int | None = None
        start_t = _epoch(started)
        if start_t is not None:
            since = self._since(str(alert.get("model")), str(alert.get("model_version")), label, start_t, seen)
        return {
            "segment": label,
            "share": _num(seen / total) if total and label != "all" else (1.0 if total else None),
            "predictions": seen,
            "predictions_since_change": since,
            "accuracy": _num(seg["accuracy"]) if seg is not None else _num(row.get("accuracy")),
            "labelled": seg["labelled"] if seg is not None else None,
            "accuracy_all": _num(row.get("accuracy")),
        }

    def overview(self) -> dict[str, Any]:
        recent = list(self.recent)
        latest: dict[str, dict[str, Any]] = {}
        firing: dict[str, dict[str, Any]] = {}
        for a in recent:  # oldest first: the last event of a key wins
            latest[a["key"]] = a
            if a.get("status") == "firing":
                firing[a["key"]] = a
        models, drift, open_keys, details = self._snapshot(firing)
        cfg = self.service.config.alerts
        out_models = []
        for model, version in sorted(set(models) | set(drift)):
            row = models.get((model, version), {"events": 0, "metrics": {}, "outcomes": {}})
            prefix = f"{model}/{version}/"
            open_here = []
            for k in sorted(open_keys):
                if not k.startswith(prefix):
                    continue
                fired = firing.get(k)
                kind, _, rest = k[len(prefix) :].partition("/")
                subject, _, seg = rest.rpartition("/")
                base = fired or {"key": k, "kind": kind, "subject": subject, "message": None}
                detail = details.get(k, {})
                entry = dict(base)
                entry["fired"] = (
                    {
                        "message": fired.get("message"),
                        "emitted_at": fired.get("emitted_at"),
                        "window": fired.get("window"),
                    }
                    if fired
                    else None
                )
                entry["now"] = detail | {"sentence": now_sentence(detail)} if detail else None
                if "segment" not in entry:
                    entry["segment"] = {} if seg == "all" else dict([seg.partition("=")[::2]])
                entry["impact"] = self._impact(entry, row, detail.get("started_at") or entry.get("started_at"))
                open_here.append(entry)
            state, reason = health(open_here, _num(row.get("accuracy")), _num(row.get("metrics", {}).get("mae")))
            streams = []
            for r in drift.get((model, version), []):
                firing_now = _stream_key(model, version, r["feature"], r["segment"]) in open_keys
                limit = cfg.min_distance if r["kind"] == "categorical" else cfg.min_effect_size
                ratio = r["effect"] / limit if limit else 0.0
                if r["window"] is not None and r["window"]["threshold"]:
                    ratio = max(ratio, r["window"]["value"] / r["window"]["threshold"])
                status = "drifting" if firing_now else ("above" if ratio >= 1 else "stable")
                streams.append({**r, "firing": firing_now, "status": status, "threshold": limit, "ratio": ratio})
            streams.sort(key=lambda r: (-r["firing"], -r["ratio"], r["feature"]))
            changes = [a for a in recent if a.get("model") == model and a.get("model_version") == version][::-1][:10]
            out_models.append(
                {
                    "model": model,
                    "version": version,
                    "health": state,
                    "reason": reason,
                    "events": row["events"],
                    "task": row.get("task"),
                    "accuracy": _num(row.get("accuracy")),
                    "estimated_accuracy": _num(row.get("estimated_accuracy")),
                    "estimated_accuracy_band": [_num(v) for v in band]
                    if (band := row.get("estimated_accuracy_band"))
                    else None,
                    "estimated_metrics": {k: _num(v) for k, v in row.get("estimated_metrics", {}).items()},
                    "label_coverage": _num(row.get("label_coverage")),
                    "metrics": {k: _num(v) for k, v in row["metrics"].items()},
                    "outcomes": {k: _num(v) for k, v in row["outcomes"].items()},
                    "segments": [
                        {**s, "share": _num(s["share"]), "accuracy": _num(s["accuracy"])}
                        | {"estimated_accuracy": _num(s["estimated_accuracy"])}
                        for s in sorted(row.get("segments", []), key=lambda s: (-s["predictions"], s["segment"]))
                    ][:MAX_SEGMENT_ROWS],
                    "open_alerts": open_here,
                    "changes": changes,
                    "drift": [
                        {
                            **r,
                            "effect": _num(r["effect"]),
                            "missing_ratio": _num(r["missing_ratio"]),
                            "ratio": _num(r["ratio"]),
                        }
                        for r in streams[: self.max_drift_rows]
                    ],
                    "drift_streams": len(streams),
                }
            )
        fairness = self.fairness() if self.fairness is not None else self.fairness_rows()
        return {
            "generated_at": self.clock(),
            "ready": self.service.ready(),
            "partitions": sorted(self.service.views),
            "thresholds": {"numeric_effect": cfg.min_effect_size, "categorical_distance": cfg.min_distance},
            "models": out_models,
            "alerts": recent[::-1][:50],
            "open_alert_ids": sorted(d["alert_id"] for d in details.values()),
            "fairness": fairness,
        }

    def sample(self) -> dict[str, dict[str, float | None]]:
        """One point of every history series: ``{"model/version": {series: value}}``."""
        models, drift, open_keys, _details = self._snapshot()
        out: dict[str, dict[str, float | None]] = {}
        for model, version in set(models) | set(drift):
            row = models.get((model, version), {})
            name = f"{model}/{version}"
            point: dict[str, float | None] = {
                "events": float(row.get("events", 0)),
                "event_time": _num(row.get("last_event_time")),
                "accuracy": _num(row.get("accuracy")),
                "estimated_accuracy": _num(row.get("estimated_accuracy")),
                "label_coverage": _num(row.get("label_coverage")),
                "max_drift_effect": max((r["effect"] for r in drift.get((model, version), [])), default=0.0),
                "open_alerts": float(sum(1 for k in open_keys if k.startswith(name + "/"))),
            }
            for outcome, value in row.get("outcomes", {}).items():
                point[f"outcome:{outcome}"] = _num(value)
            out[name] = point
        return out


def _epoch(text: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 UTC time as :func:`iso` writes it (None if absent or unreadable)."""
    if not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class History:
    """Bounded in-memory time series for the sparklines: ``points`` samples per series, ``max_series`` series.

    ``record(t, sample)`` appends one point per series; ``events`` (a running count) is turned into
    ``events_per_s`` from the previous sample: per second of event time when the sample carries
    ``event_time`` (the newest event's time) and both advanced, so a processing pause or catch-up does not
    show as a drop or a spike of the model's traffic; per second of ``t`` otherwise (0 when nothing came).
    Memory is at most ``max_series * points`` pairs.

    >>> h = History(interval_s=10, points=3)
    >>> for t in range(5):
    ...     h.record(10.0 * t, {"m/v1": {"events": 100.0 * t, "accuracy": 0.9}})
    >>> doc = h.document()
    >>> [p[1] for p in doc["series"]["m/v1"]["events_per_s"]], len(doc["series"]["m/v1"]["accuracy"])
    ([10.0, 10.0, 10.0], 3)
    """

    def __init__(self, interval_s: float = 30.0, points: int = 480, max_series: int = 500) -> None:
        if interval_s <= 0 or points < 2 or max_series < 1:
            raise ValueError("History needs interval_s > 0, points >= 2 and max_series >= 1")
        self.interval_s = float(interval_s)
        self.points = int(points)
        self.max_series = int(max_series)
        self.series: dict[str, dict[str, deque[tuple[float, float | None]]]] = {}
        self.dropped_series = 0
        self._last_events: dict[str, tuple[float, float]] = {}
        self._last_event_time: dict[str, float] = {}
        self._lock = threading.Lock()

    def _count(self) -> int:
        return sum(len(s) for s in self.series.values())

    def record(self, t: float, sample: dict[str, dict[str, float | None]]) -> None:
        with self._lock:
            for model, point in sample.items():
                values = dict(point)
                events = values.pop("events", None)
                event_time = values.pop("event_time", None)
                if events is not None:
                    prev = self._last_events.get(model)
                    prev_time = self._last_event_time.get(model)
                    self._last_events[model] = (t, events)
                    if event_time is not None:
                        self._last_event_time[model] = event_time
                    if prev is not None and t > prev[0]:
                        if (
                            events > prev[1]
                            and event_time is not None
                            and prev_time is not None
                            and event_time > prev_time
                        ):
                            # the model's traffic: predictions per second of event time, whatever the processing
                            # lag; event time that barely moved (coarse or bursty timestamps) is floored at a tenth
                            # of the wall-clock gap, so a burst cannot read as a huge rate
                            span = max(event_time - prev_time, 0.1 * (t - prev[0]))
                            values["events_per_s"] = (events - prev[1]) / span
                        else:
                            values["events_per_s"] = max(0.0, (events - prev[1]) / (t - prev[0]))
                series = self.series.setdefault(model, {})
                for name, value in values.items():
                    ring = series.get(name)
                    if ring is None:
                        if self._count() >= self.max_series:
                            self.dropped_series += 1
                            continue
                        ring = series[name] = deque(maxlen=self.points)
                    ring.append((round(t, 3), value))

    def document(self) -> dict[str, Any]:
        with self._lock:
            return {
                "interval_s": self.interval_s,
                "points": self.points,
                "max_series": self.max_series,
                "dropped_series": self.dropped_series,
                "series": {
                    model: {name: [list(p) for p in ring] for name, ring in series.items()}
                    for model, series in self.series.items()
                },
            }


class HistorySampler:
    """A daemon thread that records ``views.sample()`` into ``history`` every ``history.interval_s``."""

    def __init__(self, views: DashboardViews, history: History, clock: Callable[[], float] = time.time) -> None:
        self.views = views
        self.history = history
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> None:
        self.history.record(self.clock(), self.views.sample())

    def _run(self) -> None:
        while not self._stop.wait(self.history.interval_s):
            try:
                self.sample_once()
            except Exception:  # a failed sample must never stop the monitor; the next one retries
                log.exception("history sample failed")

    def start(self) -> HistorySampler:
        self._thread = threading.Thread(target=self._run, name="monitor-history", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


__all__ = [
    "DashboardViews",
    "History",
    "HistorySampler",
    "affects_results",
    "describe",
    "health",
    "now_sentence",
    "segment_label",
    "static_file",
]
