"""A read-only, plain-data view of one partition engine: what the exporter and the dashboard show.

The consume loop builds it after a batch (:func:`build_view`) and publishes it by assigning a reference;
/metrics and the dashboard read only published views. So a scrape never waits for the engine's lock, never
delays the loop, and never sees half a batch. Everything in a view is a fresh copy that nothing mutates
after it is built (the fairness tracker too: a private copy made by :func:`monitor.core.fairness.merged`),
so views can be shared between threads as they are.

Values that take work to derive (effects, model metrics, estimates, window verdicts) are computed here,
once per published view, instead of at every scrape.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.core.fairness import FairnessTracker, merged
from monitor.core.judgements import drift_key
from monitor.core.numeric_streams import NumericStream
from monitor.core.rules import ALL, segment_label

if TYPE_CHECKING:
    from monitor.core.engine import PartitionEngine
    from monitor.core.model_state import ModelState
    from monitor.core.significance import WindowResult

PREDICTION = "__prediction__"  # the engine's stream name of the prediction (monitor.core.model_state.PREDICTION)


@dataclass(frozen=True, slots=True)
class StreamRow:
    """One stream (feature x segment bucket): counts, mean, effect now, firing, detector triggers."""

    model: str
    model_version: str
    feature: str  # "prediction" for the prediction stream
    segment: str  # "all" or "attribute=value"
    kind: str  # numeric | categorical
    count: int
    missing: int
    mean: float  # numeric streams with a value; NaN otherwise
    effect: float
    firing: bool
    detections: tuple[tuple[str, int], ...]
    name: str  # the engine's stream name ("__prediction__" for the prediction)


@dataclass(frozen=True, slots=True)
class WindowRow:
    """A stream's latest window test against its baseline, once its Benjamini-Hochberg round is decided."""

    model: str
    model_version: str
    feature: str
    segment: str
    psi: float
    js: float
    ks: float | None
    adjusted_p: float | None
    significant: bool | None
    time: float
    events: int
    name: str

    def statistic(self, name: str) -> float:
        """The same choice as :meth:`monitor.core.significance.WindowResult.statistic`."""
        if name == "ks" and self.ks is not None:
            return self.ks
        return self.js if name == "js" else self.psi


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One performance bucket (all traffic or one segment value) of one model version."""

    bucket: tuple[str, str]
    segment: str
    task: str | None
    predictions: int
    labelled: int
    window_size: int  # labelled predictions in the sliding window
    window_metrics: dict[str, float]  # empty while window_size is 0
    total_metrics: dict[str, float]
    total_count: int
    calibration_error: float
    estimated: tuple[float, float, float, int]  # estimate, low, high, predictions
    estimated_confusion: tuple[float, float, float] | None  # expected TP, FP, FN
    trustworthy: bool | None
    outcomes: tuple[tuple[str, int, float], ...]  # (name, values, mean) of outcomes with values
    error_rise: float | None  # the concept-drift test's statistic and threshold (None before the task is known)
    min_rise: float | None


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model version on one partition."""

    model: str
    version: str
    events: int
    first_event_time: float
    last_event_time: float
    latency_buckets: tuple[int, ...]
    latency_sum_ms: float
    # each segment value's latency histogram: (segment label, bucket counts, sum in ms)
    segment_latency: tuple[tuple[str, tuple[int, ...], float], ...]
    buckets: tuple[BucketRow, ...] | None  # None without labels or scores (no performance state)
    delay_buckets: tuple[int, ...]
    delay_sum: float
    fairness: FairnessTracker | None  # a private copy: read it, never update it
    quality_windows: int | None  # None without a schema watch
    schema_source: str | None  # profile | learned | None


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An open alert key of the partition's lifecycle."""

    key: str
    alert_id: str
    started_at: float
    detected_at: float
    clear_since: float | None


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An open incident with at least one open alert: the labels of ``monitor_incident_open``."""

    model: str
    version: str
    incident_id: str
    facet: str
    kinds: str
    severity: str
    open: int


@dataclass(frozen=True, slots=True)
class EngineView:
    """Everything the exporter and the dashboard read from one partition engine, as of one batch."""

    partition: int
    labels_seen: int
    stream_count: int
    last_event_time: float
    rejected: tuple[tuple[tuple[str, str], int], ...]
    restamped: tuple[tuple[str, int], ...]  # per topic role: events given their Kafka time (monitoring.max_ahead_s)
    capped: tuple[tuple[str, int], ...]
    retired_versions: int  # model versions retired after monitoring.retire_after_s without predictions
    alerts_emitted: tuple[tuple[tuple[str, str], int], ...]
    models: dict[tuple[str, str], ModelRow]
    streams: tuple[StreamRow, ...]
    windows: tuple[WindowRow, ...]
    open_alerts: tuple[OpenAlert, ...]
    incidents: tuple[IncidentRow, ...]
    resolve_after_s: float
    resolve_after_events: int
    fdr_tests: int
    fdr_discoveries: int
    fdr_rounds: int
    fdr_pending: int
    join_pending: int
    join_early: int
    join_counts: tuple[tuple[str, int], ...]
    # by (model, version, engine stream name, segment): the prediction's stream name is "__prediction__"
    stream_index: dict[tuple[str, str, str, str], StreamRow]
    window_index: dict[tuple[str, str, str, str], WindowRow]
    profiled: tuple[tuple[str, str, int], ...] = ()  # predictions the engine's profile stage accepted, per version
    # (model, version, feature, values of another type than the first seen), from every model state, so that each
    # detection shard reports its own features' (a model row is shard 0's alone)
    type_mismatch: tuple[tuple[str, str, str, int], ...] = ()

    def open_keys(self) -> list[str]:
        return [a.key for a in self.open_alerts]


@dataclass
class StreamView:
    """A read-only look at one stream, quantiles included (the exporter and the dashboard read the lighter
    rows of this module; this is for inspection and the snapshot twin tests)."""

    model: str
    model_version: str
    feature: str
    segment: str
    kind: str
    stats: dict[str, Any]
    effect: float
    firing: bool


def _subject_segment(name: str, attr: str, value: str) -> tuple[str, dict[str, str]]:
    """A stream's subject and segment as its alerts name them."""
    return ("prediction" if name == PREDICTION else name), ({} if (attr, value) == ALL else {attr: value})


def stream_views(engine: PartitionEngine) -> Iterator[StreamView]:
    """Every stream of the engine with its statistics (built as they are asked for, from live state)."""
    for state in engine.models.values():
        for (name, attr, value), tracker in state.trackers():
            subject, segment = _subject_segment(name, attr, value)
            if isinstance(tracker, NumericStream):
                stats, ev = tracker.view(), tracker.evidence()
            else:
                labels = state.vocab[name].labels()
                stats, ev = tracker.view(labels), tracker.evidence(labels)
            key = drift_key(state.model, state.version, name, (attr, value))
            yield StreamView(
                model=state.model,
                model_version=state.version,
                feature=subject,
                segment=segment_label(segment),
                kind=tracker.kind,
                stats=stats,
                effect=ev.effect,
                firing=engine.alerting.lifecycle.is_firing(key),
            )


def _stream_rows(engine: PartitionEngine, state: ModelState) -> list[StreamRow]:
    rows = []
    is_firing = engine.alerting.lifecycle.is_firing
    for (name, attr, value), tracker in state.trackers():
        subject, segment = _subject_segment(name, attr, value)
        if isinstance(tracker, NumericStream):  # read from the arrays: no quantiles, no evidence dicts
            count, missing, mean = tracker.count, tracker.missing, tracker.mean
            detections = tuple(tracker.detections.items())
            effect = tracker.effect
        else:
            count, missing, mean = int(tracker.count), int(tracker.missing), math.nan
            detections = tuple(tracker.detections.items())
            effect = tracker.evidence(state.vocab[name].labels()).effect
        rows.append(
            StreamRow(
                model=state.model,
                model_version=state.version,
                feature=subject,
                segment=segment_label(segment),
                kind=tracker.kind,
                count=count,
                missing=missing,
                mean=mean,
                effect=float(effect),
                firing=is_firing(drift_key(state.model, state.version, name, (attr, value))),
                detections=detections,
                name=name,
            )
        )
    return rows


def _window_rows(state: ModelState) -> list[WindowRow]:
    rows = []
    for (name, attr, value), test in state.window_tests():
        r: WindowResult | None = test.last
        if r is None or (r.adjusted_p is None and r.significant is None):
            continue
        rows.append(
            WindowRow(
                model=state.model,
                model_version=state.version,
                feature="prediction" if name == PREDICTION else name,
                segment=segment_label({attr: value} if attr else {}),
                psi=r.psi,
                js=r.js,
                ks=r.ks,
                adjusted_p=r.adjusted_p,
                significant=r.significant,
                time=r.time,
                events=int(r.events),
                name=name,
            )
        )
    return rows


def _bucket_rows(state: ModelState) -> tuple[BucketRow, ...] | None:
    perf = state.perf
    if perf is None:
        return None
    rows = []
    for bucket, b in perf.buckets.items():
        n_win = int(b.window.ring.size)
        error_rise = min_rise = None
        if b.errors is not None:
            error_rise = float(b.errors.evidence().extra.get("statistic", math.nan))
            min_rise = float(b.errors.test.min_rise)
        rows.append(
            BucketRow(
                bucket=bucket,
                segment=segment_label({} if bucket == ALL else {bucket[0]: bucket[1]}),
                task=b.window.task,
                predictions=int(b.predictions),
                labelled=int(b.labelled),
                window_size=n_win,
                window_metrics=dict(b.window.window_metrics()) if n_win else {},
                total_metrics=dict(b.window.total_metrics()) if n_win else {},
                total_count=int(b.window.count),
                calibration_error=float(b.window.calibration_error()) if n_win else math.nan,
                estimated=perf.estimated(bucket),
                estimated_confusion=perf.estimated_window_confusion(bucket),
                trustworthy=perf.trustworthy(bucket),
                outcomes=tuple(
                    (name, int(t.moments.n), float(t.moments.mean)) for name, t in b.outcomes.items() if t.moments.n
                ),
                error_rise=error_rise,
                min_rise=min_rise,
            )
        )
    return tuple(rows)


def _model_row(state: ModelState) -> ModelRow:
    perf = state.perf
    quality = state.quality
    source = None
    if quality is not None:
        if quality.from_profile:
            source = "profile"
        elif quality.schema is not None:
            source = "learned"
    return ModelRow(
        model=state.model,
        version=state.version,
        events=int(state.events),
        first_event_time=float(state.first_event_time),
        last_event_time=float(state.last_event_time),
        latency_buckets=tuple(state.latency_buckets.tolist()),
        latency_sum_ms=float(state.latency_sum_ms),
        segment_latency=tuple(
            (segment_label({attr: value}), tuple(int(c) for c in held[:-1].tolist()), float(held[-1]))
            for (attr, value), held in state.segment_latency.items()
        ),
        buckets=_bucket_rows(state),
        delay_buckets=tuple(perf.delay_buckets.tolist()) if perf is not None else (),
        delay_sum=float(perf.delay_sum) if perf is not None else 0.0,
        fairness=merged([state.fairness]) if state.fairness is not None else None,
        quality_windows=int(quality.windows) if quality is not None else None,
        schema_source=source,
    )


def build_view(engine: PartitionEngine) -> EngineView:
    """The view of ``engine`` now. Call it from the thread that updates the engine, between batches."""
    lifecycle = engine.alerting.lifecycle
    open_alerts = tuple(
        OpenAlert(key, inc.alert_id, inc.started_at, inc.detected_at, inc.clear_since)
        for key, inc in lifecycle.open.items()
    )
    models: dict[tuple[str, str], ModelRow] = {}
    streams: list[StreamRow] = []
    windows: list[WindowRow] = []
    for key, state in engine.models.items():
        if engine.shards == 1 or engine.shard_of_model(state.model) == 0:  # another shard's rows count in shard 0
            models[key] = _model_row(state)
        streams += _stream_rows(engine, state)
        windows += _window_rows(state)
    incidents = []
    for name, inc in engine.alerting.incidents.open.items():
        if inc["keys"]:
            model, version, facet = name.split("/", 2)
            kinds = ",".join(sorted({k.split("/")[2] for k in inc["keys"]}))
            levels = set(inc.get("severity", {}).values())
            severity = "critical" if "critical" in levels else "warning"
            incidents.append(IncidentRow(model, version, str(inc["id"]), facet, kinds, severity, len(inc["keys"])))
    fdr = engine.model_monitor.fdr
    return EngineView(
        partition=engine.partition,
        labels_seen=int(engine.profile.labels_seen),
        stream_count=int(engine.model_monitor.stream_count),
        last_event_time=float(engine.last_event_time),
        rejected=tuple(engine.profile.rejected.items()),
        restamped=tuple(engine.profile.restamped.items()),
        capped=tuple(engine.model_monitor.capped.items()),
        retired_versions=int(engine.retired["versions"]),
        alerts_emitted=tuple(engine.alerting.alerts_emitted.items()),
        models=models,
        streams=tuple(streams),
        windows=tuple(windows),
        open_alerts=open_alerts,
        incidents=tuple(incidents),
        resolve_after_s=lifecycle.resolve_after_s,
        resolve_after_events=lifecycle.resolve_after_events,
        fdr_tests=int(fdr.tests),
        fdr_discoveries=int(fdr.discoveries),
        fdr_rounds=int(fdr.rounds),
        fdr_pending=fdr.waiting,
        join_pending=len(engine.profile.joiner.pending),
        join_early=len(engine.profile.joiner.early),
        join_counts=tuple(engine.profile.joiner.counts.items()),
        stream_index={(s.model, s.model_version, s.name, s.segment): s for s in streams},
        window_index={(w.model, w.model_version, w.name, w.segment): w for w in windows},
        profiled=tuple((m, v, int(n)) for (m, v), n in engine.profile.events.items()),
        type_mismatch=tuple(
            (s.model, s.version, feature, int(n))
            for s in engine.models.values()
            for feature, n in s.type_mismatch.items()
        ),
    )


def merged_fairness(views: Any) -> dict[tuple[str, str], FairnessTracker | None]:
    """Per model version, one fairness tracker pooling the copies in ``views`` (in partition order)."""
    by_model: dict[tuple[str, str], list[FairnessTracker]] = {}
    for view in views:
        for key, row in view.models.items():
            if row.fairness is not None:
                by_model.setdefault(key, []).append(row.fairness)
    return {key: merged(trackers) for key, trackers in by_model.items()}
