"""Wiring: the Kafka service, the Prometheus registry and the HTTP server of one monitor process."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.allocator import settle_allocator
from monitor.collector import settle_collector
from monitor.config import MonitorConfig
from monitor.core.rules import Alert
from monitor.dashboard import DashboardViews, History, HistorySampler
from monitor.io.checkpoint import FaultHook
from monitor.io.exporter import register
from monitor.io.http import MonitorHTTPServer
from monitor.io.kafka import MonitorService

log = logging.getLogger(__name__)


class Monitor:
    """One monitor process: ``run()`` blocks until ``stop`` is set; ``start()`` runs it in a thread."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        registry: CollectorRegistry | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        recent_alerts: int = 200,
        history_interval_s: float = 30.0,
        history_points: int = 480,
        fairness: Callable[[], list[dict[str, Any]]] | None = None,
        faults: FaultHook | None = None,
    ) -> None:
        """``history_interval_s`` x ``history_points`` is the span of the dashboard's sparklines (4 h by default);
        ``faults`` goes to :class:`MonitorService` (the crash tests' hook, none in production)."""
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.stop_event = threading.Event()
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent_alerts)
        self._on_alert = on_alert
        self.service = MonitorService(
            config, on_alert=self._alert, consumer_overrides=consumer_overrides, faults=faults
        )
        batch_hist = register(self.service, self.registry)
        self.service.observe_batch = lambda seconds, _n: batch_hist.observe(seconds)
        self.views = DashboardViews(self.service, self.recent, fairness=fairness)
        self.history = History(interval_s=history_interval_s, points=history_points)
        self.sampler = HistorySampler(self.views, self.history)
        self.http = MonitorHTTPServer(
            self.registry,
            host=config.http.host,
            port=config.http.port,
            ready=self.service.ready,
            last_poll=lambda: self.service.stats.last_poll_wall,
            status=self.status,
            tls_cert_file=config.http.tls_cert_file,
            tls_key_file=config.http.tls_key_file,
            basic_auth=(config.http.basic_auth_user, config.http.password()) if config.http.basic_auth_user else None,
            api={
                "/api/overview": lambda _q: self.views.overview(),
                "/api/history": lambda _q: self.history.document(),
                "/api/alerts": lambda q: self.views.alerts(_int_param(q, "limit", 100, high=recent_alerts)),
            },
        )
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _alert(self, alert: Alert) -> None:
        self.recent.append(alert.to_dict())
        if self._on_alert is not None:
            self._on_alert(alert)

    def status(self) -> dict[str, Any]:
        svc = self.service
        views = svc.views  # the latest published engine views: read without the service lock
        models: dict[str, dict[str, Any]] = {}
        for view in svc.all_views():
            for (model, version), st in view.models.items():
                entry = models.setdefault(f"{model}/{version}", {"model": model, "version": version, "events": 0})
                entry["events"] += st.events
        open_keys = sorted(a.key for view in svc.all_views() for a in view.open_alerts)
        return {
            "ready": svc.ready(),
            "partitions": sorted(views),
            "models": list(models.values()),
            # progress of the two stages, cheap to poll (a /metrics scrape renders every stream's series)
            "profiled": sum(n for view in views.values() for _m, _v, n in view.profiled),
            "pending_rows": sum(m.pending_rows for m in svc.merges.values()),
            "open_alerts": open_keys,
            "recent_alerts": list(self.recent),
        }

    def run(self) -> None:
        settle_collector()
        settle_allocator()
        self.http.start()
        self.sampler.start()
        log.info("dashboard on http://%s:%d/ (metrics: /metrics)", self.config.http.host, self.http.port)
        try:
            self.service.run(self.stop_event)
        finally:
            self.sampler.stop()
            self.http.stop()

    def start(self) -> Monitor:
        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # surfaced to the caller through .error
                self.error = exc
                log.exception("monitor stopped with an error")

        self._thread = threading.Thread(target=target, name="monitor", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            if self.service.ready():
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _int_param(query: dict[str, list[str]], name: str, default: int, *, low: int = 1, high: int) -> int:
    """A query parameter in ``[low, high]``; anything else is a ValueError, which the server answers with 400."""
    values = query.get(name)
    if not values:
        return min(default, high)
    try:
        value = int(values[0])
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {values[0]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value
