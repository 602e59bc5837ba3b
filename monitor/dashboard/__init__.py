"""Dashboard data: the JSON views behind ``/`` and ``/api/*``, and a bounded in-memory history.

The page (``index.html``, ``app.css``, ``app.js`` in this folder) is static and reads only these views,
so scripts can use the same API. Everything here reads engine state under the service lock and
returns plain data (no engine object escapes).

Health in plain words, per model version:

- ``act``: an open incident is critical, or recommends ``retrain`` / ``rollback``, or is about the
  model's results (concept drift, performance, fairness, rollback / retrain recommended);
- ``watch``: some other incident is open (input drift, data quality, latency...);
- ``healthy``: nothing is open.
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

from monitor.core.rules import ALL, segment_label

if TYPE_CHECKING:
    from monitor.core.engine import PartitionEngine
    from monitor.io.kafka import MonitorService

log = logging.getLogger(__name__)

ACT_KINDS = frozenset({"concept_drift", "performance", "fairness", "rollback_recommended", "retrain_recommended"})
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


def _num(x: float) -> float | None:
    """JSON-safe number: NaN and infinities become null."""
    return None if x is None or not math.isfinite(x) else float(x)


def _model_rows(engines: Iterable[PartitionEngine]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, version): events, all-traffic metrics and outcomes, merged across partitions."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for eng in engines:
        for (model, version), st in eng.models.items():
            row = rows.setdefault(
                (model, version),
                {
                    "events": 0,
                    "metric": {},
                    "est": [0.0, 0],
                    "band": [0.0, 0.0],
                    "est_metrics": {},
                    "pred": 0,
                    "lab": 0,
                    "outcomes": {},
                    "task": None,
                },
            )
            row["events"] += st.events
            perf = st.perf
            if perf is None:
                continue
            b = perf.buckets.get(ALL)
            if b is None:
                continue
            row["task"] = row["task"] or b.window.task
            row["pred"] += b.predictions
            row["lab"] += b.labelled
            n_win = b.window.ring.size
            if n_win:
                for name, value in b.window.window_metrics().items():
                    if value == value:
                        acc = row["metric"].setdefault(name, [0.0, 0])
                        acc[0] += value * n_win
                        acc[1] += n_win
            value, low, high, n_est = perf.estimated(ALL)
            if n_est:
                for metric, v in perf.estimated_window_metrics(ALL).items():
                    if v == v:
                        acc = row["est_metrics"].setdefault(metric, [0.0, 0])
                        acc[0] += v * n_est
                        acc[1] += n_est
                row["est"][0] += value * n_est
                row["est"][1] += n_est
                row["band"][0] += low * n_est
                row["band"][1] += high * n_est
            for name, tracker in b.outcomes.items():
                n = tracker.moments.n
                if n:
                    acc = row["outcomes"].setdefault(name, [0.0, 0])
                    acc[0] += tracker.moments.mean * n
                    acc[1] += n
    out = {}
    for key, row in rows.items():
        metrics = {name: s / w for name, (s, w) in row["metric"].items()}
        out[key] = {
            "events": row["events"],
            "task": row["task"],
            "metrics": metrics,
            "accuracy": metrics.get("accuracy"),
            "estimated_accuracy": row["est"][0] / row["est"][1] if row["est"][1] else None,
            "estimated_accuracy_band": [row["band"][0] / row["est"][1], row["band"][1] / row["est"][1]]
            if row["est"][1]
            else None,
            "estimated_metrics": {name: v / w for name, (v, w) in row["est_metrics"].items()},
            "label_coverage": min(1.0, row["lab"] / row["pred"]) if row["pred"] else None,
            "outcomes": {name: s / w for name, (s, w) in row["outcomes"].items()},
        }
    return out


def _drift_rows(engines: Iterable[PartitionEngine]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (model, version): one row per (feature, segment), merged across partitions (effects: max)."""
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for eng in engines:
        for view in eng.streams():
            k = (view.model, view.model_version, view.feature, view.segment)
            row = merged.setdefault(
                k,
                {"feature": view.feature, "segment": view.segment, "kind": view.kind, "effect": 0.0, "firing": False}
                | {"events": 0, "missing": 0},
            )
            row["effect"] = max(row["effect"], view.effect if view.effect == view.effect else 0.0)
            row["firing"] = row["firing"] or view.firing
            row["events"] += int(view.stats.get("count", 0))
            row["missing"] += int(view.stats.get("missing", 0))
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (model, version, _f, _s), row in merged.items():
        missing = row.pop("missing")
        row["missing_ratio"] = missing / row["events"] if row["events"] else 0.0
        out.setdefault((model, version), []).append(row)
    return out


def health(open_alerts: list[dict[str, Any]]) -> tuple[str, str]:
    """``(healthy | watch | act, reason)`` from the open incidents of one model version.

    >>> health([])
    ('healthy', 'No open alerts.')
    >>> health([{"kind": "data_drift", "severity": "warning", "recommendation": "investigate"}])[0]
    'watch'
    >>> health([{"kind": "concept_drift", "severity": "warning", "recommendation": "retrain"}])[0]
    'act'
    """
    if not open_alerts:
        return "healthy", "No open alerts."
    urgent = [
        a
        for a in open_alerts
        if a.get("severity") == "critical"
        or a.get("recommendation") in ("retrain", "rollback")
        or a.get("kind") in ACT_KINDS
    ]
    if urgent:
        a = urgent[0]
        return "act", a.get("message") or f"{a.get('kind')} on {a.get('subject')}"
    n = len(open_alerts)
    first = open_alerts[0]
    what = first.get("message") or first.get("key") or f"{first.get('kind')} on {first.get('subject')}"
    return "watch", f"{n} open alert{'s' if n != 1 else ''}: {what}"


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

    def _snapshot(self) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], list[Any]], set[str]]:
        svc = self.service
        with svc.lock:
            engines = list(svc.engines.values())
            models = _model_rows(engines)
            drift = _drift_rows(engines)
            open_keys = {k for eng in engines for k in eng.lifecycle.open}
        return models, drift, open_keys

    def fairness_rows(self) -> list[dict[str, Any]]:
        """Fairness gaps of every model version, pooled across this replica's partitions."""
        from monitor.core.fairness import merged

        with self.service.lock:
            by_model: dict[tuple[str, str], list[Any]] = {}
            for eng in self.service.engines.values():
                for key, st in eng.models.items():
                    tracker = getattr(st, "fairness", None)
                    if tracker is not None:
                        by_model.setdefault(key, []).append(tracker)
            pooled = {key: merged(trackers) for key, trackers in by_model.items()}
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
        with self.service.lock:
            open_keys = sorted({k for eng in self.service.engines.values() for k in eng.lifecycle.open})
        recent = list(self.recent)[::-1][: max(0, limit)]
        return {"open": open_keys, "alerts": recent}

    def overview(self) -> dict[str, Any]:
        models, drift, open_keys = self._snapshot()
        recent = list(self.recent)
        latest: dict[str, dict[str, Any]] = {}
        for a in recent:  # oldest first: the last event of a key wins
            latest[a["key"]] = a
        cfg = self.service.config.alerts
        out_models = []
        for model, version in sorted(set(models) | set(drift)):
            row = models.get((model, version), {"events": 0, "metrics": {}, "outcomes": {}})
            prefix = f"{model}/{version}/"
            open_here = [
                latest.get(k) or {"key": k, "kind": k[len(prefix) :].split("/", 1)[0], "message": None}
                for k in sorted(open_keys)
                if k.startswith(prefix)
            ]
            state, reason = health(open_here)
            streams = sorted(drift.get((model, version), []), key=lambda r: (-r["firing"], -r["effect"], r["feature"]))
            changes = [a for a in recent if a.get("model") == model and a.get("model_version") == version][::-1][:10]
            out_models.append(
                {
                    "model": model,
                    "version": version,
                    "health": state,
                    "reason": reason,
                    "events": row["events"],
                    "task": row.get("task"),
                    "accuracy": _num(row.get("accuracy")),  # type: ignore[arg-type]
                    "estimated_accuracy": _num(row.get("estimated_accuracy")),  # type: ignore[arg-type]
                    "estimated_accuracy_band": [_num(v) for v in band]
                    if (band := row.get("estimated_accuracy_band"))
                    else None,
                    "estimated_metrics": {k: _num(v) for k, v in row.get("estimated_metrics", {}).items()},
                    "label_coverage": _num(row.get("label_coverage")),  # type: ignore[arg-type]
                    "metrics": {k: _num(v) for k, v in row["metrics"].items()},
                    "outcomes": {k: _num(v) for k, v in row["outcomes"].items()},
                    "open_alerts": open_here,
                    "changes": changes,
                    "drift": [
                        {**r, "effect": _num(r["effect"]), "missing_ratio": _num(r["missing_ratio"])}
                        for r in streams[: self.max_drift_rows]
                    ],
                    "drift_streams": len(streams),
                }
            )
        fairness = self.fairness() if self.fairness is not None else self.fairness_rows()
        return {
            "generated_at": self.clock(),
            "ready": self.service.ready(),
            "partitions": sorted(self.service.engines),
            "thresholds": {"numeric_effect": cfg.min_effect_size, "categorical_distance": cfg.min_distance},
            "models": out_models,
            "alerts": recent[::-1][:50],
            "fairness": fairness,
        }

    def sample(self) -> dict[str, dict[str, float | None]]:
        """One point of every history series: ``{"model/version": {series: value}}``."""
        models, drift, open_keys = self._snapshot()
        out: dict[str, dict[str, float | None]] = {}
        for model, version in set(models) | set(drift):
            row = models.get((model, version), {})
            name = f"{model}/{version}"
            point: dict[str, float | None] = {
                "events": float(row.get("events", 0)),
                "accuracy": _num(row.get("accuracy")),  # type: ignore[arg-type]
                "estimated_accuracy": _num(row.get("estimated_accuracy")),  # type: ignore[arg-type]
                "label_coverage": _num(row.get("label_coverage")),  # type: ignore[arg-type]
                "max_drift_effect": max((r["effect"] for r in drift.get((model, version), [])), default=0.0),
                "open_alerts": float(sum(1 for k in open_keys if k.startswith(name + "/"))),
            }
            for outcome, value in row.get("outcomes", {}).items():
                point[f"outcome:{outcome}"] = _num(value)
            out[name] = point
        return out


class History:
    """Bounded in-memory time series for the sparklines: ``points`` samples per series, ``max_series`` series.

    ``record(t, sample)`` appends one point per series; ``events`` (a running count) is turned into
    ``events_per_s`` from the previous sample. Memory is at most ``max_series * points`` pairs.

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
        self._lock = threading.Lock()

    def _count(self) -> int:
        return sum(len(s) for s in self.series.values())

    def record(self, t: float, sample: dict[str, dict[str, float | None]]) -> None:
        with self._lock:
            for model, point in sample.items():
                values = dict(point)
                events = values.pop("events", None)
                if events is not None:
                    prev = self._last_events.get(model)
                    self._last_events[model] = (t, events)
                    if prev is not None and t > prev[0]:
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


__all__ = ["DashboardViews", "History", "HistorySampler", "health", "segment_label", "static_file"]
