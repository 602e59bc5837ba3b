"""What the engine views cost the consume loop, and what a scrape costs, on the reference workload.

``python -m benchmarks.view_cost [--batches 16] [--fairness]``: one engine, batches of 5,000 predictions
(and their labels) from ``benchmarks.workload``; per batch, in the same process, the engine's time
(``monitor_batch``), the time to build its view (``build_view``, best of 3), and the time /metrics and
/api/overview take on the published view (neither holds the engine's lock any more).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from benchmarks.workload import T0, make
from monitor.config import load_config
from monitor.core.view import build_view
from monitor.dashboard import DashboardViews
from monitor.io.exporter import MonitorCollector
from monitor.io.kafka import MonitorService


def _best(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--fairness", action="store_true", help="fairness on country and gender")
    args = ap.parse_args(argv)
    overrides = {"fairness": {"attributes": ["country", "gender"]}} if args.fairness else {}
    service = MonitorService(load_config(environ={}, overrides=overrides))
    engine = service.engines[0] = service._new_engine(0)
    registry = CollectorRegistry()
    registry.register(MonitorCollector(service))
    views = DashboardViews(service, [])
    engine_s, view_s, scrape_s, overview_s = [], [], [], []
    for k in range(args.batches):
        w = make(5000, seed=2 + k, start=T0 + k * 0.5)
        batch = engine.profile.prediction_decoder.decode(w.predictions, [0.0] * len(w.predictions))[0]
        t = time.perf_counter()
        engine.monitor_batch(batch)
        engine_s.append(time.perf_counter() - t)
        engine.process_labels(w.labels, [0.0] * len(w.labels))
        view_s.append(_best(lambda: build_view(engine)))
        service.views = {0: build_view(engine)}
        scrape_s.append(_best(lambda: generate_latest(registry)))
        overview_s.append(_best(views.overview))
    skip = min(4, args.batches // 2)  # the warm-up batches are not the steady state
    e, v = statistics.median(engine_s[skip:]), statistics.median(view_s[skip:])
    print(f"streams: {engine.model_monitor.stream_count}; batches of 5,000 (median of {args.batches - skip})")
    print(f"engine (monitor_batch): {e * 1e3:.1f} ms")
    print(f"build_view:             {v * 1e3:.1f} ms ({v / e:.1%} of the engine's time)")
    print(f"  once a second while busy: {v:.1%} of the loop's time")
    print(f"/metrics on the view:   {statistics.median(scrape_s[skip:]) * 1e3:.1f} ms (no lock)")
    print(f"/api/overview on views: {statistics.median(overview_s[skip:]) * 1e3:.1f} ms (no lock)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
