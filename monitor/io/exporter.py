"""Prometheus collector that reads the engine views the consume loop publishes (see ``monitor.core.view``).

A scrape reads only published views (plain data, swapped by reference): it never takes the service lock,
so it cannot delay the consume loop, and it always sees whole batches.

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
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from monitor.core.model_state import LATENCY_BUCKETS_MS
from monitor.core.performance import metrics_from_confusion
from monitor.core.view import merged_fairness
from monitor.io.model_metrics import (
    STREAM_LABELS,
    add_performance,
    baseline_families,
    fairness_families,
    performance_rows,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from monitor.io.kafka import MonitorService


class MonitorCollector(Collector):
    """Metric families built from the :class:`MonitorService`'s published engine views when Prometheus scrapes."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        events = CounterMetricFamily("monitor_events", "Valid prediction events processed", labels=["model", "version"])
        labels = CounterMetricFamily("monitor_labels", "Valid label events received")
        invalid = CounterMetricFamily(
            "monitor_invalid_events", "Messages sent to the dead-letter topic, by reason", labels=["topic", "reason"]
        )
        restamped = CounterMetricFamily(
            "monitor_events_restamped",
            "Events stamped more than monitoring.max_ahead_s after their Kafka time, given the Kafka time",
            labels=["topic"],
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
        retired = CounterMetricFamily(
            "monitor_models_retired",
            "Model versions retired after monitoring.retire_after_s without predictions (their alerts resolved)",
        )
        stream_limit = GaugeMetricFamily("monitor_streams_limit", "Cap on streams per partition (max_streams)")
        alerts_firing = GaugeMetricFamily(
            "monitor_alerts_firing", "Open alert incidents", labels=["model", "version", "kind"]
        )
        incident_open = GaugeMetricFamily(
            "monitor_incident_open",
            "Open alerts of one incident (alerts of one change: same model version, facet and time; see incident_id)",
            labels=["model", "version", "incident_id", "facet", "kinds", "severity"],
        )
        emitted = CounterMetricFamily("monitor_alerts_emitted", "Alert events published", labels=["kind", "status"])
        latency = HistogramMetricFamily(
            "monitor_prediction_latency_seconds", "Serving latency reported by the model", labels=["model", "version"]
        )
        segment_latency = HistogramMetricFamily(
            "monitor_segment_prediction_latency_seconds",
            "Serving latency reported by the model, per segment value",
            labels=["model", "version", "segment"],
        )
        partitions = GaugeMetricFamily("monitor_assigned_partitions", "Predictions partitions owned by this replica")
        lag = GaugeMetricFamily(
            "monitor_consumer_lag", "Messages behind the partition end", labels=["topic", "partition"]
        )
        proc_lag = GaugeMetricFamily(
            "monitor_processing_lag_seconds", "Wall-clock time minus the newest event time processed"
        )
        ready = GaugeMetricFamily("monitor_ready", "1 when partitions are assigned and the broker is reachable")
        seg_labels = ["model", "version", "segment"]
        model_metric = GaugeMetricFamily(
            "monitor_model_metric",
            "Model metric on labelled predictions: window=sliding (last performance.window) or total (since start)",
            labels=[*seg_labels, "metric", "window"],
        )
        estimated = GaugeMetricFamily(
            "monitor_estimated_accuracy",
            "Accuracy estimated from calibrated scores over the last performance.window predictions (no labels)",
            labels=seg_labels,
        )
        estimated_band = GaugeMetricFamily(
            "monitor_estimated_accuracy_bound",
            "95% band of the estimated accuracy from the window size: bound is low or high",
            labels=[*seg_labels, "bound"],
        )
        estimated_metric = GaugeMetricFamily(
            "monitor_estimated_metric",
            "Precision, recall or F1 estimated from calibrated scores over the last performance.window predictions",
            labels=[*seg_labels, "metric"],
        )
        trust = GaugeMetricFamily(
            "monitor_estimate_trustworthy",
            "1 if the scores are calibrated on the labelled window (so estimates can be trusted), else 0",
            labels=seg_labels,
        )
        calib = GaugeMetricFamily(
            "monitor_calibration_error",
            "Expected calibration error of the scores on the labelled window",
            labels=seg_labels,
        )
        coverage = GaugeMetricFamily(
            "monitor_label_coverage", "Share of predictions that have received their label", labels=seg_labels
        )
        labelled = CounterMetricFamily(
            "monitor_labelled_predictions", "Predictions joined with a label", labels=seg_labels
        )
        outcome_mean = GaugeMetricFamily(
            "monitor_outcome_mean", "Mean of a business outcome since start", labels=[*seg_labels, "outcome"]
        )
        delay = HistogramMetricFamily(
            "monitor_label_delay_seconds", "Label time minus prediction time", labels=["model", "version"]
        )
        join_pending = GaugeMetricFamily("monitor_join_pending", "Predictions waiting for their label")
        join_limit = GaugeMetricFamily("monitor_join_pending_limit", "Cap on waiting predictions per partition")
        join_early = GaugeMetricFamily("monitor_join_early_labels", "Labels waiting for their prediction")
        join_events = CounterMetricFamily(
            "monitor_join_events",
            "Join outcomes: joined, joined_early, expired, evicted, duplicate, duplicate_prediction, unknown, "
            "model_mismatch",
            labels=["outcome"],
        )

        views = svc.all_views()  # the latest published views: no engine object, no lock
        ev_count: Counter[tuple[str, str]] = Counter()
        inv: Counter[tuple[str, str]] = Counter()
        cap: Counter[str] = Counter()
        ahead: Counter[str] = Counter()
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
        incidents: Counter[tuple[str, str, str, str, str, str]] = Counter()
        lat: dict[tuple[str, ...], list[float]] = {}
        seg_lat: dict[tuple[str, ...], list[float]] = {}
        n_labels = 0
        n_streams = 0
        n_retired = 0
        newest = -math.inf
        for view in views:
            n_labels += view.labels_seen
            n_streams += view.stream_count
            n_retired += view.retired_versions
            inv.update(dict(view.rejected))
            ahead.update(dict(view.restamped))
            cap.update(dict(view.capped))
            emit.update(dict(view.alerts_emitted))
            if view.last_event_time == view.last_event_time:
                newest = max(newest, view.last_event_time)
            for model, version, feat, c in view.type_mismatch:
                mism[model, version, feat] += c
            for (model, version), st in view.models.items():
                ev_count[model, version] += st.events
                _add_latency(lat, (model, version), st.latency_buckets, st.latency_sum_ms)
                for segment, counts, sum_ms in st.segment_latency:
                    _add_latency(seg_lat, (model, version, segment), counts, sum_ms)
            for alert in view.open_alerts:
                parts = alert.key.split("/", 3)
                open_alerts[parts[0], parts[1], parts[2]] += 1
            for inc in view.incidents:
                incidents[inc.model, inc.version, inc.incident_id, inc.facet, inc.kinds, inc.severity] += inc.open
            for row in view.streams:
                k = (row.model, row.model_version, row.feature, row.segment)
                agg_count[k] += row.count
                agg_missing[k] += row.missing
                if row.kind == "numeric" and row.count > row.missing:
                    n = row.count - row.missing
                    agg_sum[k] += row.mean * n
                    agg_n[k] += n
                agg_effect[k] = max(agg_effect.get(k, 0.0), row.effect)
                agg_firing[k] = max(agg_firing.get(k, 0.0), float(row.firing))
                for det, c in row.detections:
                    agg_det[(*k, det)] += c
        lag_items = list(svc.lag.items())
        perf_rows = performance_rows(views)
        fair_trackers = merged_fairness(views)
        n_pending = sum(v.join_pending for v in views)
        n_early = sum(v.join_early for v in views)
        join_counts: Counter[str] = Counter()
        for view in views:
            join_counts.update(dict(view.join_counts))
        window_tests = baseline_families(views, svc.config.significance.fdr)

        for (model, version), c in ev_count.items():
            events.add_metric([model, version], c)
        labels.add_metric([], n_labels)
        for (topic, reason), c in inv.items():
            invalid.add_metric([topic, reason], c)
        for topic, c in ahead.items():
            restamped.add_metric([topic], c)
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
        retired.add_metric([], n_retired)
        stream_limit.add_metric([], svc.config.monitoring.max_streams)
        for ak, n_open in open_alerts.items():
            alerts_firing.add_metric(list(ak), n_open)
        for ik, n_open in incidents.items():
            incident_open.add_metric(list(ik), n_open)
        for (kind, status), c in emit.items():
            emitted.add_metric([kind, status], c)
        for family, hists in ((latency, lat), (segment_latency, seg_lat)):
            for key, hist in hists.items():
                buckets, acc = [], 0.0
                for bound, in_bucket in zip([*LATENCY_BUCKETS_MS, math.inf], hist[:-1], strict=False):
                    acc += in_bucket
                    buckets.append(("+Inf" if bound == math.inf else str(bound / 1000.0), acc))
                family.add_metric(list(key), buckets, sum_value=hist[-1])
        partitions.add_metric([], len(svc.views))  # input partitions (their profile stages)
        for (topic, part), value in lag_items:
            lag.add_metric([topic, str(part)], value)
        if newest > -math.inf:
            proc_lag.add_metric([], max(0.0, time.time() - newest))
        ready.add_metric([], 1.0 if svc.ready() else 0.0)
        add_performance(
            perf_rows, model_metric, estimated, estimated_band, trust, calib, coverage, labelled, outcome_mean, delay
        )
        for key, (tp, fp, fn) in perf_rows["est_metrics"].items():
            for metric, rate in metrics_from_confusion(tp, fp, fn).items():
                if rate == rate:
                    estimated_metric.add_metric([*key, metric], rate)
        join_pending.add_metric([], n_pending)
        join_limit.add_metric([], svc.config.labels.max_pending)
        join_early.add_metric([], n_early)
        for outcome, c in join_counts.items():
            join_events.add_metric([outcome], c)
        loop = svc.stats
        checkpoints = CounterMetricFamily(
            "monitor_checkpoints", "State snapshots written (with the offsets they cover)"
        )
        checkpoints.add_metric([], loop.checkpoints)
        cp_seconds = GaugeMetricFamily(
            "monitor_checkpoint_seconds", "Duration of the last checkpoint: snapshot, flush, alerts, commit"
        )
        cp_seconds.add_metric([], loop.checkpoint_seconds)
        cp_max = GaugeMetricFamily(
            "monitor_checkpoint_seconds_max", "The longest a checkpoint has held the consume loop since the start"
        )
        cp_max.add_metric([], loop.checkpoint_seconds_max)
        cp_bytes = GaugeMetricFamily("monitor_checkpoint_bytes", "Uncompressed size of the last checkpoint's snapshots")
        cp_bytes.add_metric([], loop.last_checkpoint_bytes)
        stores = [store for store in (svc.store, svc.detect_store) if store is not None]
        cp_snapshot = CounterMetricFamily(
            "monitor_checkpoint_snapshot_bytes", "Size of every snapshot written, uncompressed, since the start"
        )
        cp_snapshot.add_metric([], sum(store.snapshot_bytes for store in stores))
        cp_written = CounterMetricFamily(
            "monitor_checkpoint_written_bytes",
            "Bytes produced to the state topics since the start: a large snapshot's pieces the partition already"
            " held are not written again",
        )
        cp_written.add_metric([], sum(store.bytes_written for store in stores))
        restores = CounterMetricFamily("monitor_restores", "Partitions restored from a snapshot on assignment")
        restores.add_metric([], loop.restores)
        restore_s = GaugeMetricFamily("monitor_restore_seconds", "Time the last assignment spent restoring snapshots")
        restore_s.add_metric([], loop.restore_seconds)
        loop_s = CounterMetricFamily(
            "monitor_loop_seconds",
            "Where the consume loop's time went: in the consumer's poll (waiting for a batch, and rebalance callbacks),"
            " checkpointing (checkpoint), and of that the wall time off the loop's CPU (checkpoint_wait)",
            labels=["part"],
        )
        loop_s.add_metric(["poll"], loop.poll_seconds_total)
        loop_s.add_metric(["checkpoint"], loop.checkpoint_seconds_total)
        loop_s.add_metric(["checkpoint_wait"], loop.checkpoint_wait_seconds_total)
        yield from (checkpoints, cp_seconds, cp_max, cp_bytes, cp_snapshot, cp_written, restores, restore_s, loop_s)
        yield from _stage_families(svc)
        yield from fairness_families(fair_trackers)
        yield from window_tests
        yield from (model_metric, estimated, estimated_band, estimated_metric, trust, calib, coverage, labelled)
        yield from (outcome_mean, delay)
        yield from (join_pending, join_limit, join_early, join_events)
        yield from (
            events,
            labels,
            invalid,
            restamped,
            capped,
            mismatch,
            s_events,
            missing,
            mean,
            effect,
            firing,
            detections,
        )
        yield from (streams, stream_limit, retired, alerts_firing, incident_open, emitted, latency, segment_latency)
        yield from (partitions, lag, proc_lag)
        yield ready


def _stage_families(svc: MonitorService) -> Iterator[Metric]:
    """The two stages: summaries sent and taken, and each detection stage's merge."""
    loop = svc.stats
    summaries = CounterMetricFamily(
        "monitor_summaries", "Summaries the profile stages sent and the detection stages took", labels=["direction"]
    )
    summaries.add_metric(["produced"], loop.summaries_produced)
    summaries.add_metric(["consumed"], loop.summaries_consumed)
    summaries.add_metric(["unreadable"], loop.summaries_unreadable)
    summaries.add_metric(["oversize"], loop.summaries_oversize)
    summaries.add_metric(["notes"], loop.notes_sent)  # produced ones that were notes (counted among produced too)
    summaries.add_metric(["handed_over"], svc.handoff.taken)  # consumed ones taken without decoding (an int read)
    summaries.add_metric(["taken_at_once"], loop.summaries_taken_at_once)  # produced ones taken as sent
    profiled = CounterMetricFamily(
        "monitor_profiled_events",
        "Valid prediction events the profile stages of this replica's input partitions accepted",
        labels=["model", "version"],
    )
    counts: Counter[tuple[str, str]] = Counter()
    for view in list(svc.views.values()):
        for model, version, n in view.profiled:
            counts[model, version] += n
    for (model, version), n in counts.items():
        profiled.add_metric([model, version], n)
    detection = GaugeMetricFamily("monitor_detection_partitions", "Summaries partitions this replica detects for")
    detection.add_metric([], len(svc.detect_views))
    merges = list(svc.merges.items())
    duplicates = CounterMetricFamily(
        "monitor_summaries_duplicate", "Summaries dropped as repeats (after a restart)", labels=["partition"]
    )
    misrouted = CounterMetricFamily(
        "monitor_summaries_misrouted",
        "Summaries dropped as cut for another detection.shards or for a shard this stage does not hold",
        labels=["partition"],
    )
    late = CounterMetricFamily(
        "monitor_merge_late_rows", "Rows that arrived behind the watermark already released", labels=["partition"]
    )
    notes = CounterMetricFamily(
        "monitor_merge_notes",
        "Notes taken: an input partition said it has input waiting, so the merge waits for it",
        labels=["partition"],
    )
    pending = GaugeMetricFamily(
        "monitor_merge_pending_rows", "Rows waiting for the watermark or the next release", labels=["partition"]
    )
    merge_lag = GaugeMetricFamily(
        "monitor_merge_lag_seconds",
        "Event time between the newest input partition's progress and the watermark (what the merge holds back)",
        labels=["partition"],
    )
    watermark_lag = GaugeMetricFamily(
        "monitor_watermark_lag_seconds", "Wall-clock time minus the watermark's event time", labels=["partition"]
    )
    now = time.time()
    for d, m in merges:
        part = [str(d)]
        duplicates.add_metric(part, m.duplicates)
        misrouted.add_metric(part, m.misrouted)
        late.add_metric(part, m.late_rows)
        notes.add_metric(part, m.notes)
        pending.add_metric(part, m.pending_rows)
        if math.isfinite(m.watermark) and math.isfinite(m.newest):
            merge_lag.add_metric(part, max(0.0, m.newest - m.watermark))
        if math.isfinite(m.watermark):
            watermark_lag.add_metric(part, max(0.0, now - m.watermark))
    handoff = GaugeMetricFamily(
        "monitor_handoff_rows",
        "Rows of the summaries this replica sent to its own detection stages and holds until it reads them back "
        "(detection.handoff_rows at most)",
    )
    handoff.add_metric([], svc.handoff.rows)
    yield from (summaries, profiled, detection, duplicates, misrouted, late, notes, pending, merge_lag, watermark_lag)
    yield handoff


def register(service: MonitorService, registry: CollectorRegistry) -> Histogram:
    """Register the collector; returns the batch-duration histogram the loop observes."""
    registry.register(MonitorCollector(service))
    return Histogram(
        "monitor_batch_duration_seconds",
        "Time to process one micro-batch, from decode to committed offsets",
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    )


def _add_latency(hists: dict[tuple[str, ...], list[float]], key: tuple[str, ...], counts: Any, sum_ms: float) -> None:
    """Add one view's latency bucket counts and sum (ms) to ``key``'s histogram (its counts, then its sum in s)."""
    hist = hists.setdefault(key, [0.0] * (len(LATENCY_BUCKETS_MS) + 2))
    for i, c in enumerate(counts):
        hist[i] += c
    hist[-1] += sum_ms / 1000.0
