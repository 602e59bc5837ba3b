"""The dashboard's sparklines: a bounded in-memory history of each model version's series, and the thread that
samples it."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.dashboard import DashboardViews

log = logging.getLogger("monitor.dashboard")  # (the package's logger: log lines keep their name)


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
