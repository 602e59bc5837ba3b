"""A model version's metric families for the Prometheus collector (:mod:`monitor.io.exporter`): labelled
performance and the label-free estimates, label delays, outcomes, fairness gaps and the baseline window tests,
merged across the partitions' published engine views."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from monitor.core.fairness import FairnessTracker
from monitor.core.performance_state import DELAY_BUCKETS_S
from monitor.core.view import EngineView

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

STREAM_LABELS = ["model", "version", "feature", "segment"]  # a stream's labels, here and in the exporter


def fairness_families(trackers: dict[tuple[str, str], FairnessTracker | None]) -> Iterator[Metric]:
    group_labels = ["model", "version", "attribute", "group"]
    size = GaugeMetricFamily(
        "monitor_fairness_group_size", "Predictions of the group in the sliding window", labels=group_labels
    )
    rate = GaugeMetricFamily(
        "monitor_fairness_rate",
        "Per-group rate (selection_rate, tpr, fpr, precision, accuracy) over the sliding window; bound = value, "
        "low or high (Wilson interval)",
        labels=[*group_labels, "metric", "bound"],
    )
    gap = GaugeMetricFamily(
        "monitor_fairness_gap",
        "Gap of a group to the reference group (differences; disparate_impact is a ratio); bound = value, low or high",
        labels=[*group_labels, "metric", "bound"],
    )
    firing = GaugeMetricFamily(
        "monitor_fairness_gap_firing",
        "1 when the gap's whole confidence interval is beyond its limit",
        labels=[*group_labels, "metric"],
    )
    for (model, version), tracker in trackers.items():
        if tracker is None:
            continue
        for (attribute, group), g in tracker.groups.items():
            base = [model, version, attribute, group]
            size.add_metric(base, g.selected.size)
            for metric, (value, low, high, n) in tracker.rates((attribute, group)).items():
                if n:
                    for bound, v in (("value", value), ("low", low), ("high", high)):
                        rate.add_metric([*base, metric, bound], v)
        for item in tracker.gaps():
            if item.gap != item.gap:
                continue
            base = [model, version, item.attribute, item.group, item.metric]
            for bound, v in (("value", item.gap), ("low", item.low), ("high", item.high)):
                gap.add_metric([*base, bound], v)
            firing.add_metric(base, 1.0 if item.fire else 0.0)
    yield from (size, rate, gap, firing)


def baseline_families(views: list[EngineView], fdr: float) -> list[Metric]:
    """Window tests against the baseline, their false-discovery control, and schema / quality windows."""
    tests = CounterMetricFamily("monitor_window_tests", "Baseline window tests decided (Benjamini-Hochberg rounds)")
    found = CounterMetricFamily("monitor_window_discoveries", "Window tests rejected by Benjamini-Hochberg")
    rounds = CounterMetricFamily("monitor_window_test_rounds", "Benjamini-Hochberg rounds decided")
    pending = GaugeMetricFamily("monitor_window_tests_pending", "Window tests waiting for their round to close")
    target = GaugeMetricFamily("monitor_window_fdr_target", "Configured false-discovery rate (significance.fdr)")
    stat = GaugeMetricFamily(
        "monitor_stream_window_statistic",
        "Latest decided window against the baseline: psi, js (Jensen-Shannon distance) or ks; max over partitions",
        labels=[*STREAM_LABELS, "statistic"],
    )
    p_adj = GaugeMetricFamily(
        "monitor_stream_window_p_value",
        "Benjamini-Hochberg adjusted p-value of the latest decided window; min over partitions",
        labels=STREAM_LABELS,
    )
    quality = CounterMetricFamily(
        "monitor_quality_windows", "Schema and data-quality windows checked", labels=["model", "version"]
    )
    source = GaugeMetricFamily(
        "monitor_baseline_source",
        "1 for where a model version's schema comes from: profile (a file) or learned (the warm-up)",
        labels=["model", "version", "source"],
    )
    n_tests = n_found = n_rounds = n_pending = 0
    stats: dict[tuple[str, ...], float] = {}
    pvals: dict[tuple[str, ...], float] = {}
    windows: Counter[tuple[str, str]] = Counter()
    sources: dict[tuple[str, str, str], float] = {}
    for view in views:
        n_tests += view.fdr_tests
        n_found += view.fdr_discoveries
        n_rounds += view.fdr_rounds
        n_pending += view.fdr_pending
        for (model, version), st in view.models.items():
            if st.quality_windows is not None:
                windows[model, version] += st.quality_windows
                if st.schema_source is not None:
                    sources[model, version, st.schema_source] = 1.0
        for r in view.windows:
            if r.adjusted_p is None:
                continue
            k = (r.model, r.model_version, r.feature, r.segment)
            for label, v in (("psi", r.psi), ("js", r.js), ("ks", r.ks)):
                if v is not None:
                    stats[(*k, label)] = max(stats.get((*k, label), 0.0), v)
            pvals[k] = min(pvals.get(k, 1.0), r.adjusted_p)
    tests.add_metric([], n_tests)
    found.add_metric([], n_found)
    rounds.add_metric([], n_rounds)
    pending.add_metric([], n_pending)
    target.add_metric([], fdr)
    for k6, v in stats.items():
        stat.add_metric(list(k6), v)
    for k4, v in pvals.items():
        p_adj.add_metric(list(k4), v)
    for (model, version), c in windows.items():
        quality.add_metric([model, version], c)
    for k3, v in sources.items():
        source.add_metric(list(k3), v)
    return [tests, found, rounds, pending, target, stat, p_adj, quality, source]


def performance_rows(views: list[EngineView]) -> dict[str, Any]:
    """Per (model, version, segment) sums across this replica's partitions, weighted by label counts."""
    metrics: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])  # weighted sum, weight
    est: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    band: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])  # weighted low, high
    est_metrics: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # TP, FP, FN
    cal: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    trusted: dict[tuple[str, ...], float] = {}
    counts: defaultdict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])  # predictions, labelled
    outcomes: defaultdict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    delays: dict[tuple[str, str], list[float]] = {}
    for view in views:
        for (model, version), st in view.models.items():
            if st.buckets is None:
                continue
            hist = delays.setdefault((model, version), [0.0] * (len(DELAY_BUCKETS_S) + 2))
            for i, c in enumerate(st.delay_buckets):
                hist[i] += c
            hist[-1] += st.delay_sum
            for b in st.buckets:
                key = (model, version, b.segment)
                counts[key][0] += b.predictions
                counts[key][1] += b.labelled
                n_win = b.window_size
                if n_win:
                    for window, values, weight in (
                        ("sliding", b.window_metrics, n_win),
                        ("total", b.total_metrics, b.total_count),
                    ):
                        for metric, value in values.items():
                            if value == value:
                                acc = metrics[(*key, metric, window)]
                                acc[0] += value * weight
                                acc[1] += weight
                    ce = b.calibration_error
                    if ce == ce:
                        cal[key][0] += ce * n_win
                        cal[key][1] += n_win
                value, low, high, n_est = b.estimated
                if n_est:
                    est[key][0] += value * n_est
                    est[key][1] += n_est
                    band[key][0] += low * n_est
                    band[key][1] += high * n_est
                    confusion = b.estimated_confusion
                    if confusion is not None:
                        sums = est_metrics[key]
                        for i, v in enumerate(confusion):
                            sums[i] += v
                t = b.trustworthy
                if t is not None:
                    trusted[key] = min(trusted.get(key, 1.0), float(t))
                for name, n, mean in b.outcomes:
                    acc = outcomes[(*key, name)]
                    acc[0] += mean * n
                    acc[1] += n
    return {
        "metrics": metrics,
        "est": est,
        "band": band,
        "est_metrics": est_metrics,
        "cal": cal,
        "trusted": trusted,
        "counts": counts,
        "outcomes": outcomes,
        "delays": delays,
    }


def add_performance(
    rows: dict[str, Any],
    model_metric: GaugeMetricFamily,
    estimated: GaugeMetricFamily,
    estimated_band: GaugeMetricFamily,
    trust: GaugeMetricFamily,
    calib: GaugeMetricFamily,
    coverage: GaugeMetricFamily,
    labelled: CounterMetricFamily,
    outcome_mean: GaugeMetricFamily,
    delay: HistogramMetricFamily,
) -> None:
    for key, (total, weight) in rows["metrics"].items():
        model_metric.add_metric(list(key), total / weight)
    for key, (total, weight) in rows["est"].items():
        estimated.add_metric(list(key), total / weight)
    for key, (low, high) in rows["band"].items():
        weight = rows["est"][key][1]
        if weight:
            estimated_band.add_metric([*key, "low"], low / weight)
            estimated_band.add_metric([*key, "high"], high / weight)
    for key, value in rows["trusted"].items():
        trust.add_metric(list(key), value)
    for key, (total, weight) in rows["cal"].items():
        calib.add_metric(list(key), total / weight)
    for key, (n_pred, n_lab) in rows["counts"].items():
        labelled.add_metric(list(key), n_lab)
        if n_pred:
            coverage.add_metric(list(key), min(1.0, n_lab / n_pred))
    for key, (total, weight) in rows["outcomes"].items():
        outcome_mean.add_metric(list(key), total / weight)
    for (model, version), hist in rows["delays"].items():
        buckets, acc = [], 0.0
        for bound, in_bucket in zip([*DELAY_BUCKETS_S, math.inf], hist[:-1], strict=False):
            acc += in_bucket
            buckets.append(("+Inf" if bound == math.inf else str(bound), acc))
        delay.add_metric([model, version], buckets, sum_value=hist[-1])
