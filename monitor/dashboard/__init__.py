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

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from monitor.core.rules import segment_label
from monitor.core.view import merged_fairness
from monitor.dashboard.health import (
    ACT_KINDS,
    ACT_RECOMMENDATIONS,
    KIND_WORDS,
    RESULT_KINDS,
    affects_results,
    describe,
    health,
    now_sentence,
)
from monitor.dashboard.history import History, HistorySampler
from monitor.dashboard.rows import (
    PREDICTION_STREAM,
    count_since,
    drift_rows,
    json_number,
    model_rows,
    open_details,
    stream_key,
)

if TYPE_CHECKING:
    from monitor.io.kafka import MonitorService


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
        models = model_rows(views)
        drift = drift_rows(views, sig)
        open_keys = {a.key for view in views for a in view.open_alerts}
        details = open_details(views, svc.config, firing) if firing is not None else {}
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
                        "gap": json_number(g.gap),
                        "low": json_number(g.low),
                        "high": json_number(g.high),
                        "threshold": json_number(g.threshold),
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
            "share": json_number(seen / total) if total and label != "all" else (1.0 if total else None),
            "predictions": seen,
            "predictions_since_change": since,
            "accuracy": json_number(seg["accuracy"]) if seg is not None else json_number(row.get("accuracy")),
            "labelled": seg["labelled"] if seg is not None else None,
            "accuracy_all": json_number(row.get("accuracy")),
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
            state, reason = health(
                open_here, json_number(row.get("accuracy")), json_number(row.get("metrics", {}).get("mae"))
            )
            streams = []
            for r in drift.get((model, version), []):
                firing_now = stream_key(model, version, r["feature"], r["segment"]) in open_keys
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
                    "accuracy": json_number(row.get("accuracy")),
                    "estimated_accuracy": json_number(row.get("estimated_accuracy")),
                    "estimated_accuracy_band": [json_number(v) for v in band]
                    if (band := row.get("estimated_accuracy_band"))
                    else None,
                    "estimated_metrics": {k: json_number(v) for k, v in row.get("estimated_metrics", {}).items()},
                    "label_coverage": json_number(row.get("label_coverage")),
                    "metrics": {k: json_number(v) for k, v in row["metrics"].items()},
                    "outcomes": {k: json_number(v) for k, v in row["outcomes"].items()},
                    "segments": [
                        {**s, "share": json_number(s["share"]), "accuracy": json_number(s["accuracy"])}
                        | {"estimated_accuracy": json_number(s["estimated_accuracy"])}
                        for s in sorted(row.get("segments", []), key=lambda s: (-s["predictions"], s["segment"]))
                    ][:MAX_SEGMENT_ROWS],
                    "open_alerts": open_here,
                    "changes": changes,
                    "drift": [
                        {
                            **r,
                            "effect": json_number(r["effect"]),
                            "missing_ratio": json_number(r["missing_ratio"]),
                            "ratio": json_number(r["ratio"]),
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
                "event_time": json_number(row.get("last_event_time")),
                "accuracy": json_number(row.get("accuracy")),
                "estimated_accuracy": json_number(row.get("estimated_accuracy")),
                "label_coverage": json_number(row.get("label_coverage")),
                "max_drift_effect": max((r["effect"] for r in drift.get((model, version), [])), default=0.0),
                "open_alerts": float(sum(1 for k in open_keys if k.startswith(name + "/"))),
            }
            for outcome, value in row.get("outcomes", {}).items():
                point[f"outcome:{outcome}"] = json_number(value)
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


__all__ = [
    "ACT_KINDS",
    "ACT_RECOMMENDATIONS",
    "KIND_WORDS",
    "PREDICTION_STREAM",
    "RESULT_KINDS",
    "DashboardViews",
    "History",
    "HistorySampler",
    "affects_results",
    "count_since",
    "describe",
    "health",
    "now_sentence",
    "segment_label",
    "static_file",
]
