"""The dashboard's numbers, merged across the engine views of every partition: per model version its counts,
metrics, estimates and segments; per stream its drift row; per open alert the statistics its clear condition is
judged on; and the predictions of a segment since a change, from a bounded timeline of counts."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from monitor.core.performance import metrics_from_confusion
from monitor.core.rules import ALL, iso, segment_label
from monitor.core.view import BucketRow, EngineView, WindowRow

log = logging.getLogger("monitor.dashboard")  # (the package's logger: log lines keep their name)

PREDICTION_STREAM = "__prediction__"  # the engine's stream name of the prediction itself


def json_number(x: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become null."""
    return None if x is None or not math.isfinite(x) else float(x)


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


def model_rows(views: Iterable[EngineView]) -> dict[tuple[str, str], dict[str, Any]]:
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
                name: json_number(v)
                for name, v in metrics_from_confusion(*everything["est_metrics"]["confusion"]).items()
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


def drift_rows(views: Iterable[EngineView], sig: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
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


def stream_key(model: str, version: str, feature: str, segment: str) -> str:
    kind = "prediction_drift" if feature == "prediction" else "data_drift"
    return f"{model}/{version}/{kind}/{feature}/{segment}"


def _check(name: str, value: float, threshold: float, ratio: float, unit: str = "") -> dict[str, Any]:
    """One statistic an open alert is judged on: it keeps the alert open while at or above ``clears_below``."""
    clears_below = threshold * ratio
    return {
        "name": name,
        "value": json_number(value),
        "threshold": json_number(threshold),
        "clears_below": json_number(clears_below),
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


def open_details(views: Iterable[EngineView], cfg: Any, firing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
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
                "clear_for_s": json_number(now - clear_since) if clear_since is not None else None,
                "resolve_after_s": view.resolve_after_s,
                "resolve_after_events": view.resolve_after_events,
                "checks": checks,
                "now_time": iso(now),
            }
    return out


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
