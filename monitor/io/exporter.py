"""Prometheus collector that reads the engines at scrape time (nothing is copied on the hot path).

Every metric is prefixed ``monitor_``. Label values are bounded by the engine's caps (models,
features, segment values, streams). Streams of the same (model, version, feature, segment) on several
partitions of this replica are merged: counters add, effects take the maximum. Across replicas use
``sum by (...)`` for counters and ``max by (...)`` for effects.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from monitor.core.engine import LATENCY_BUCKETS_MS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from monitor.io.kafka import MonitorService

STREAM_LABELS = ["model", "version", "feature", "segment"]


class MonitorCollector(Collector):
    """Metric families built from :class:`MonitorService` engines when Prometheus scrapes."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        events = CounterMetricFamily("monitor_events", "Valid prediction events processed", labels=["model", "version"])
        labels = CounterMetricFamily("monitor_labels", "Valid label events received")
        invalid = CounterMetricFamily(
            "monitor_invalid_events", "Messages sent to the dead-letter topic, by reason", labels=["topic", "reason"]
        )
        capped = CounterMetricFamily(
            "monitor_capped", "Items turned away by a cardinality cap (see monitoring.max_*)", labels=["what"]
        )
        mismatch = CounterMetricFamily(
            "monitor_type_mismatch",
            "Feature values whose type differs from the type first seen (treated as missing)",
            labels=["model", "version", "feature"],
        )
        s_events = CounterMetricFamily("monitor_stream_events", "Events seen per stream", labels=STREAM_LABELS)
        missing = GaugeMetricFamily("monitor_feature_missing_ratio", "Share of missing values", labels=STREAM_LABELS)
        mean = GaugeMetricFamily("monitor_feature_mean", "Mean of a numeric feature since start", labels=STREAM_LABELS)
        effect = GaugeMetricFamily(
            "monitor_feature_drift_effect",
            "Drift effect size: standardised mean shift (numeric) or total variation distance (categorical)",
            labels=STREAM_LABELS,
        )
        firing = GaugeMetricFamily(
            "monitor_feature_drift_firing", "1 while a drift alert for the stream is firing", labels=STREAM_LABELS
        )
        detections = CounterMetricFamily(
            "monitor_drift_detections",
            "Raw detector triggers (before effect-size and lifecycle filtering)",
            labels=[*STREAM_LABELS, "detector"],
        )
        streams = GaugeMetricFamily("monitor_streams", "Monitored feature x segment streams")
        stream_limit = GaugeMetricFamily("monitor_streams_limit", "Cap on streams per partition (max_streams)")
        alerts_firing = GaugeMetricFamily(
            "monitor_alerts_firing", "Open alert incidents", labels=["model", "version", "kind"]
        )
        emitted = CounterMetricFamily("monitor_alerts_emitted", "Alert events published", labels=["kind", "status"])
        latency = HistogramMetricFamily(
            "monitor_prediction_latency_seconds", "Serving latency reported by the model", labels=["model", "version"]
        )
        partitions = GaugeMetricFamily("monitor_assigned_partitions", "Predictions partitions owned by this replica")
        lag = GaugeMetricFamily(
            "monitor_consumer_lag", "Messages behind the partition end", labels=["topic", "partition"]
        )
        proc_lag = GaugeMetricFamily(
            "monitor_processing_lag_seconds", "Wall-clock time minus the newest event time processed"
        )
        ready = GaugeMetricFamily("monitor_ready", "1 when partitions are assigned and the broker is reachable")

        with svc.lock:
            engines = list(svc.engines.values())
            ev_count: Counter[tuple[str, str]] = Counter()
            inv: Counter[tuple[str, str]] = Counter()
            cap: Counter[str] = Counter()
            mism: Counter[tuple[str, str, str]] = Counter()
            emit: Counter[tuple[str, str]] = Counter()
            agg_count: Counter[tuple[str, ...]] = Counter()
            agg_missing: Counter[tuple[str, ...]] = Counter()
            agg_sum: defaultdict[tuple[str, ...], float] = defaultdict(float)
            agg_n: Counter[tuple[str, ...]] = Counter()
            agg_effect: dict[tuple[str, ...], float] = {}
            agg_firing: dict[tuple[str, ...], float] = {}
            agg_det: Counter[tuple[str, ...]] = Counter()
            open_alerts: Counter[tuple[str, str, str]] = Counter()
            lat: dict[tuple[str, str], list[float]] = {}
            n_labels = 0
            n_streams = 0
            newest = -math.inf
            for eng in engines:
                n_labels += eng.labels_seen
                n_streams += eng.stream_count
                inv.update(eng.rejected)
                cap.update(eng.capped)
                emit.update(eng.alerts_emitted)
                if eng.last_event_time == eng.last_event_time:
                    newest = max(newest, eng.last_event_time)
                for (model, version), st in eng.models.items():
                    ev_count[model, version] += st.events
                    for feat, c in st.type_mismatch.items():
                        mism[model, version, feat] += c
                    hist = lat.setdefault((model, version), [0.0] * (len(LATENCY_BUCKETS_MS) + 2))
                    for i, c in enumerate(st.latency_buckets.tolist()):
                        hist[i] += c
                    hist[-1] += st.latency_sum_ms / 1000.0
                for key in eng.lifecycle.open:
                    parts = key.split("/", 3)
                    open_alerts[parts[0], parts[1], parts[2]] += 1
                for view in eng.streams():
                    k = (view.model, view.model_version, view.feature, view.segment)
                    agg_count[k] += view.stats["count"]
                    agg_missing[k] += view.stats["missing"]
                    if view.kind == "numeric" and view.stats["count"] > view.stats["missing"]:
                        n = view.stats["count"] - view.stats["missing"]
                        agg_sum[k] += view.stats["mean"] * n
                        agg_n[k] += n
                    agg_effect[k] = max(agg_effect.get(k, 0.0), view.effect)
                    agg_firing[k] = max(agg_firing.get(k, 0.0), float(view.firing))
                    for det, c in view.stats["detections"].items():
                        agg_det[(*k, det)] += c
            lag_items = list(svc.lag.items())

        for (model, version), c in ev_count.items():
            events.add_metric([model, version], c)
        labels.add_metric([], n_labels)
        for (topic, reason), c in inv.items():
            invalid.add_metric([topic, reason], c)
        for what, c in cap.items():
            capped.add_metric([what], c)
        for k3, c in mism.items():
            mismatch.add_metric(list(k3), c)
        for sk, c in agg_count.items():
            lk = list(sk)
            s_events.add_metric(lk, c)
            missing.add_metric(lk, agg_missing[sk] / c if c else 0.0)
            if agg_n[sk]:
                mean.add_metric(lk, agg_sum[sk] / agg_n[sk])
            effect.add_metric(lk, agg_effect[sk])
            firing.add_metric(lk, agg_firing[sk])
        for k5, c in agg_det.items():
            detections.add_metric(list(k5), c)
        streams.add_metric([], n_streams)
        stream_limit.add_metric([], svc.config.monitoring.max_streams)
        for ak, n_open in open_alerts.items():
            alerts_firing.add_metric(list(ak), n_open)
        for (kind, status), c in emit.items():
            emitted.add_metric([kind, status], c)
        for (model, version), hist in lat.items():
            buckets, acc = [], 0.0
            for bound, in_bucket in zip([*LATENCY_BUCKETS_MS, math.inf], hist[:-1], strict=False):
                acc += in_bucket
                buckets.append(("+Inf" if bound == math.inf else str(bound / 1000.0), acc))
            latency.add_metric([model, version], buckets, sum_value=hist[-1])
        partitions.add_metric([], len(engines))
        for (topic, part), value in lag_items:
            lag.add_metric([topic, str(part)], value)
        if newest > -math.inf:
            proc_lag.add_metric([], max(0.0, time.time() - newest))
        ready.add_metric([], 1.0 if svc.ready() else 0.0)
        yield from (events, labels, invalid, capped, mismatch, s_events, missing, mean, effect, firing, detections)
        yield from (streams, stream_limit, alerts_firing, emitted, latency, partitions, lag, proc_lag, ready)


def register(service: MonitorService, registry: CollectorRegistry) -> Histogram:
    """Register the collector; returns the batch-duration histogram the loop observes."""
    registry.register(MonitorCollector(service))
    return Histogram(
        "monitor_batch_duration_seconds",
        "Time to process one micro-batch, from decode to committed offsets",
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )
