"""One input partition's monitoring state: message values in, alerts and rejects out.

The engine owns everything a partition needs (decoders, per-model state, drift trackers, alert
lifecycle, counters) and nothing global, so the Kafka edge creates one per assigned partition and
drops it on revocation. It never touches Kafka, HTTP or the wall clock directly: the clock is
injected and only stamps ``emitted_at``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core import snapshot as snap
from monitor.core.alerting import Alerting, AlertLifecycle
from monitor.core.baseline import ProfileSet
from monitor.core.columns import Bucket, convert_column, segment_buckets, segment_combinations, take
from monitor.core.drift import CategoricalDriftTracker
from monitor.core.events import PredictionBatch, Rejected
from monitor.core.join import Joined
from monitor.core.judgements import quality_judgements, retrain_judgement
from monitor.core.judging import DriftJudging
from monitor.core.learning import LabelLearning
from monitor.core.model_setup import ModelSetup
from monitor.core.model_state import LATENCY_BUCKETS_MS, PREDICTION, ModelState, Tracker
from monitor.core.numeric_streams import NumericStream, NumericStreams
from monitor.core.profile import ProfileStage, Summary, concat_rows, positive_scores
from monitor.core.quality import BatchTally, FieldColumn, SchemaWatch
from monitor.core.rules import ALL, Alert, alert_key, segment_label
from monitor.core.settings import Settings
from monitor.core.shards import shard_of
from monitor.core.significance import (
    ClosedWindow,
    FalseDiscoveryControl,
    complete_windows,
)
from monitor.core.snapshot_classes import register_snapshot_classes


@dataclass
class BatchResult:
    """What one batch produced: alert transitions to publish and messages to dead-letter."""

    alerts: list[Alert] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    processed: int = 0
    summaries: list[Summary] = field(default_factory=list)  # for the detection stage (engines that do not detect)


@dataclass
class StreamView:
    """A read-only look at one stream, quantiles included (the exporter and the dashboard read the lighter
    rows of :mod:`monitor.core.view`; this is for inspection and the snapshot twin tests)."""

    model: str
    model_version: str
    feature: str
    segment: str
    kind: str
    stats: dict[str, Any]
    effect: float
    firing: bool


class PartitionEngine:
    """Monitoring state of one input partition.

    >>> eng = PartitionEngine(Settings(), partition=0, clock=lambda: 0.0)
    >>> res = eng.process_predictions(
    ...     [b'{"prediction_id":"1","model":"m","features":{"x":1.0},"prediction":0.2}', b"{"], [1.0, 1.0])
    >>> (res.processed, [r.reason for r in res.rejected], eng.events_total())
    (1, ['invalid_json'], 1)
    """

    def __init__(
        self,
        config: Settings,
        *,
        partition: int = 0,
        partitions: int = 1,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        profiles: ProfileSet | None = None,
        detect: bool = True,
    ) -> None:
        """``detect=False``: the profile stage only; its summaries are returned in each :class:`BatchResult`
        for the detection stage that owns their model version (the Kafka edge's input partitions)."""
        self.config = config
        self.detect = detect
        self.profiles = profiles if profiles is not None else ProfileSet()
        self.setup = ModelSetup(config, self.profiles)  # builds model versions' state (itself not snapshotted)
        self.partition = partition
        self.partitions = max(1, partitions)
        self.clock = clock
        mon = config.monitoring
        # Decoding, validation and the label join: the profile stage. Here it feeds this engine directly (one
        # input partition, or a replay); the Kafka edge runs it apart and sends its summaries to the engine
        # that owns their model version (monitor.core.detect).
        self.profile = ProfileStage(config, partition=partition)
        self.models: dict[tuple[str, str], ModelState] = {}
        lifecycle = AlertLifecycle(
            config.alerts.resolve_after_s,
            config.alerts.cooldown_s,
            resolve_after_events=config.alerts.resolve_after_events,
            cooldown_events=config.alerts.cooldown_events,
        )
        self.alerting = Alerting(
            lifecycle,
            explain_ratio=config.alerts.explain_ratio,
            partition=partition,
            partitions=self.partitions,
            incident_window_s=config.alerts.incident_window_s,
            clock=clock,
        )
        self.judging = DriftJudging(config, self.alerting)
        self.learning = LabelLearning(config, self.setup, self.alerting)
        self.rng = np.random.default_rng([seed, partition])
        self.capped: Counter[str] = Counter()  # what a cap turned away: model, feature, segment_value...
        self.stream_count = 0
        self.last_event_time = math.nan
        self.watermark = -math.inf  # newest event time of the predictions and labels monitored
        self._include = set(mon.features)
        self._ignore = set(mon.ignore_features)
        sig = config.significance
        self.fdr = FalseDiscoveryControl(sig.fdr, sig.round_events)
        self._closed: list[ClosedWindow] = []  # windows this batch closed, their statistics still to compute
        # Detection shards (``detection.shards``; set by the detection stage, not state): which shard of each
        # model this engine holds. Every shard judges its own features (drift, schema and quality checks); shard 0
        # also the model version as a whole (monitor.core.shards.shard_of).
        self.shards = 1
        self.shard_of_model: Callable[[str], int] = _whole_model

    def model_state(self, model: str, version: str) -> ModelState | None:
        """A model version's state, made (with its baseline profile's calibration) if it has none yet."""
        state = self._model(model, version)
        if state is not None:
            self.setup.performance(state)
        return state

    # ------------------------------------------------------------------ ingest
    def process_predictions(self, values: Sequence[bytes | None], kafka_times: Sequence[float]) -> BatchResult:
        """Decode, validate and monitor a batch of prediction messages in partition order."""
        batch, rejected = self.profile.prediction_decoder.decode(values, kafka_times)
        for r in rejected:
            self.profile.rejected["predictions", r.reason] += 1
        result = BatchResult(rejected=rejected, processed=len(batch))
        if not self.detect:
            result.summaries = self.profile.register(batch)
            if len(batch):
                self.last_event_time = float(np.nanmax(batch.event_time))
            return result
        result.alerts = self.monitor_batch(batch)
        return result

    def monitor_batch(self, batch: PredictionBatch) -> list[Alert]:
        """Monitor an already decoded batch (the benchmarks time this apart from decoding): the profile stage,
        then this engine on its summaries."""
        if not len(batch):
            return []
        summaries = self.profile.register(batch)
        return self.apply(summaries, rows=batch)

    def process_labels(self, values: Sequence[bytes | None], kafka_times: Sequence[float]) -> BatchResult:
        """Decode labels, join them to their predictions, and update metrics and label-based alerts."""
        summaries, rejected, valid = self.profile.labels(values, kafka_times)
        result = BatchResult(rejected=rejected, processed=valid)
        if not self.detect:
            result.summaries = summaries
            return result
        if valid:
            self.watermark = max(self.watermark, self.profile.watermark)
        result.alerts = self.apply(summaries)
        return result

    def apply(self, summaries: Sequence[Summary], *, rows: PredictionBatch | None = None) -> list[Alert]:
        """Monitor summaries' rows, then learn from their joined labels.

        ``rows``: all the summaries' rows as one batch in their original order, when the caller has it (the
        profile stage cut it per model version); otherwise the summaries' rows one after another.
        """
        if rows is None:
            parts = [s.rows for s in summaries if s.rows is not None and len(s.rows)]
            rows = concat_rows(parts) if parts else None
        return self.apply_rows(rows, [j for s in summaries for j in s.joined])

    def apply_rows(self, rows: PredictionBatch | None, joined: list[Joined]) -> list[Alert]:
        """Monitor one batch of rows, then learn from joined labels (what :meth:`apply` does with summaries)."""
        alerts: list[Alert] = []
        if rows is not None and len(rows):
            self.watermark = max(self.watermark, float(np.nanmax(rows.event_time)))
            alerts = self._monitor(rows)
            self.last_event_time = float(np.nanmax(rows.event_time))
        if joined:
            self.watermark = max(self.watermark, max(j.prediction.event_time + j.delay_s for j in joined))
            alerts += self.learning.learn(joined, self.models, self.rng, self.watermark)
        return alerts

    # --------------------------------------------------------------- monitoring
    def _model(self, model: str, version: str) -> ModelState | None:
        state = self.models.get((model, version))
        if state is None:
            if len(self.models) >= self.config.monitoring.max_models:
                return None
            state = self.models[model, version] = self.setup.new_state(model, version)
        return state

    def _watched(self, feature: str) -> bool:
        if feature in self._ignore:
            return False
        return not self._include or feature in self._include

    def _monitor(self, batch: PredictionBatch) -> list[Alert]:
        alerts: list[Alert] = []
        keys = [f"{m}\x00{v}" for m, v in zip(batch.model, batch.model_version, strict=True)]
        uniq, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        for g, key in enumerate(uniq.tolist()):
            model, version = key.split("\x00", 1)
            state = self._model(model, version)
            rows = np.flatnonzero(inverse == g) if len(uniq) > 1 else None
            n_rows = len(batch) if rows is None else rows.size
            if state is None:
                self.capped["model"] += n_rows
                continue
            alerts.extend(self._monitor_model(state, batch, rows))
        complete_windows(self._closed)  # the statistics of every window the batch closed, at once
        self._closed = []
        alerts += self.judging.decide_round(self.fdr.advance(len(batch)), self.models)
        return alerts

    def finish(self) -> list[Alert]:
        """Decide the window tests still waiting for their round (the end of a replay or of a test)."""
        return self.judging.decide_round(self.fdr.close(), self.models)

    def _tracker(self, state: ModelState, name: str, bucket: tuple[str, str]) -> CategoricalDriftTracker | None:
        key = (name, *bucket)
        tracker = state.streams.get(key)
        if tracker is None:
            if self.stream_count >= self.config.monitoring.max_streams:
                self.capped["stream"] += 1
                return None
            settings = self.config.detectors.for_feature("prediction" if name == PREDICTION else name)
            tracker = CategoricalDriftTracker(settings, self.config.monitoring.max_categories + 1)
            state.streams[key] = tracker
            self.stream_count += 1
        return tracker

    def _update_numeric(
        self,
        state: ModelState,
        numeric: list[tuple[str, np.ndarray]],
        buckets: list[Bucket],
        lengths: np.ndarray,
        grouped: np.ndarray | None,
        grouped_times: np.ndarray,
        grouped_positions: np.ndarray,
    ) -> dict[str, tuple[NumericStreams, np.ndarray]]:
        """Every numeric subject's streams updated together, one table per settings group; per subject, its
        table and each bucket's stream index (-1 where the stream cap turned the bucket away)."""
        groups: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, column in numeric:
            groups.setdefault(self.setup.numeric_group(name), []).append((name, column))
        out: dict[str, tuple[NumericStreams, np.ndarray]] = {}
        cap = self.config.monitoring.max_streams
        for group, members in groups.items():
            block = self.setup.numeric_table(state, group)
            ids = np.empty((len(members), len(buckets)), dtype=np.int64)
            for f, (name, _) in enumerate(members):
                for b, (bucket, _) in enumerate(buckets):
                    key = (name, *bucket)
                    i = block.index.get(key)
                    if i is None:
                        if self.stream_count >= cap:
                            self.capped["stream"] += 1
                            i = -1
                        else:
                            i = block.add_stream(key, self.setup.profile_reference(state, name, "numeric", bucket))
                            self.stream_count += 1
                    ids[f, b] = i
                out[name] = (block, ids[f])
            matrix = np.stack([column for _, column in members])
            values = (matrix if grouped is None else matrix[:, grouped]).ravel()
            stream = np.repeat(ids.ravel(), np.tile(lengths, len(members)))
            times = np.tile(grouped_times, len(members))
            positions = np.tile(grouped_positions, len(members))
            if (ids < 0).any():
                kept = stream >= 0
                values, times, stream, positions = values[kept], times[kept], stream[kept], positions[kept]
            for i, window in block.update(values, times, stream, positions):
                self.fdr.add((state.model, state.version, *block.keys[i]), window.result)
                self._closed.append(window)
        return out

    def _monitor_model(self, state: ModelState, batch: PredictionBatch, rows: np.ndarray | None) -> list[Alert]:
        n = len(batch) if rows is None else rows.size
        state.events += n
        times = batch.event_time if rows is None else batch.event_time[rows]
        state.last_event_time = float(np.nanmax(times))
        if state.first_event_time != state.first_event_time:
            state.first_event_time = float(np.nanmin(times))
        shard = self.shard_of_model(state.model) if self.shards > 1 else 0
        if shard == 0:
            self._latency(state, batch.latency_ms if rows is None else batch.latency_ms[rows])
        buckets = segment_buckets(state, batch, rows, self.config.monitoring, self.capped)
        # each shard judges its own features' drift and schema checks (the profile stage sends it no other column)
        columns: list[tuple[str, list[Any]]] = [
            (name, take(col, rows))
            for name, col in batch.features.items()
            if self._watched(name) and (self.shards == 1 or shard_of(state.model, name, self.shards) == shard)
        ]
        if self.config.monitoring.watch_prediction and shard == 0:
            columns.append((PREDICTION, take(batch.prediction, rows)))
        alerts: list[Alert] = []
        watch = state.quality
        if watch is not None and self.shards > 1:
            watch.keep_only(lambda name: shard_of(state.model, name, self.shards) == shard)
        testing = self.config.significance.enabled
        observed: list[tuple[str, list[Any], str, np.ndarray, np.ndarray | None]] = []
        positions = self.fdr.position + (np.arange(n) if rows is None else rows)  # rows' places in the partition
        # every bucket's rows one after another (all traffic first): each numeric subject's streams in one update
        lengths = np.array([n if part is None else part.size for _, part in buckets])
        grouped = None if len(buckets) == 1 else np.concatenate([np.arange(n)] + [p for _, p in buckets[1:]])
        grouped_times = times if grouped is None else times[grouped]
        grouped_positions = positions if grouped is None else positions[grouped]
        # Every column converted before any tracker runs: the decoded values are still in the CPU cache then.
        conversions = [
            (name, values, convert_column(state, name, values, self.config.monitoring, self.capped))
            for name, values in columns
        ]
        converted_columns = [(name, values, *c) for name, values, c in conversions if c is not None]
        numeric = self._update_numeric(
            state,
            [(name, col) for name, _, kind, col, _ in converted_columns if kind == "numeric"],
            buckets,
            lengths,
            grouped,
            grouped_times,
            grouped_positions,
        )
        for name, values, kind, column, mismatch in converted_columns:
            if watch is not None and name != PREDICTION:
                observed.append((name, values, kind, column, mismatch))
            touched: list[tuple[tuple[str, str], Tracker, float]] = []
            overall: tuple[tuple[str, str], Tracker, float] | None = None
            if kind == "numeric":
                block, ids = numeric[name]
            for k, (bucket, part) in enumerate(buckets):
                part_values = column if part is None else column[part]
                part_times = times if part is None else times[part]
                tracker: Tracker | None
                if kind == "numeric":
                    tracker = NumericStream(block, int(ids[k])) if ids[k] >= 0 else None
                    present = ~np.isnan(part_values)
                else:
                    tracker = self._tracker(state, name, bucket)
                    if tracker is not None:
                        tracker.update(part_values, part_times)
                    present = part_values >= 0
                if tracker is None:
                    continue
                if testing and kind == "categorical":  # numeric streams' windows are counted with their table
                    test = self.setup.window_test(state, name, kind, bucket)
                    part_positions = positions if part is None else positions[part]
                    closed = test.close_windows(part_values[present], part_times[present], part_positions[present])
                    for c in closed:
                        self.fdr.add((state.model, state.version, name, *bucket), c.result)
                    self._closed += closed
                seen = (bucket, tracker, float(part_times.max()))
                if bucket == ALL:
                    overall = seen
                if self.judging.needs_judging(state, name, bucket, tracker):
                    touched.append(seen)
            if touched and overall is not None and all(b != ALL for b, _, _ in touched):
                touched.append(overall)  # attribution needs all traffic's view (e.g. its alert's cooldown)
            alerts.extend(self.judging.decide(state, name, touched))
        if watch is not None:
            alerts += self._watch_quality(state, watch, batch, rows, observed, times)
        if shard != 0:
            return alerts
        alerts += self._register_predictions(state, batch, rows, buckets, times)
        if self.config.decisions.enabled and self.config.decisions.retrain_drift_features:
            alerts += self.alerting.emit(
                state.model, state.version, [retrain_judgement(state, self.config.decisions, self.watermark)]
            )
        return alerts

    def _watch_quality(
        self,
        state: ModelState,
        watch: SchemaWatch,
        batch: PredictionBatch,
        rows: np.ndarray | None,
        observed: list[tuple[str, list[Any], str, np.ndarray, np.ndarray | None]],
        times: np.ndarray,
    ) -> list[Alert]:
        """Feed the schema watch window by window, so windows (and the learned schema) have their configured
        size whatever the batch size: a break is judged within ``quality.window_events`` of it. Every window's
        counts come from the converted columns, tallied once for the whole batch."""
        stops = watch.window_stops(times.size)
        if not stops:
            return []
        labels_of = {name: v.labels() for name, v in state.vocab.items()}
        fields: dict[str, FieldColumn] = {}
        for name, values, kind, column, mismatch in observed:
            null_mask = None
            nulls = batch.nulls.get(name)
            if nulls:
                null_mask = np.zeros(len(batch), dtype=bool)
                null_mask[nulls] = True
                if rows is not None:
                    null_mask = null_mask[rows]
            if kind == "categorical":
                vocab = state.vocab[name]
                fields[name] = FieldColumn(kind, column, null_mask, mismatch, labels_of[name], vocab.capacity, values)
            else:
                fields[name] = FieldColumn(kind, column, null_mask, mismatch)
        tally = BatchTally(fields, stops)
        starts = np.asarray([0, *stops[:-1]], dtype=np.intp)
        first_times = np.fmin.reduceat(times, starts).tolist()  # nanmin of each window
        last_times = np.fmax.reduceat(times, starts).tolist()
        keys: dict[tuple[str, str], str] = {}  # alert keys, built once per batch rather than per window

        def is_open(kind: str, feature: str) -> bool:
            key = keys.get((kind, feature))
            if key is None:
                key = keys[kind, feature] = alert_key(state.model, kind, feature, {}, state.version)
            return self.alerting.lifecycle.is_firing(key)

        alerts: list[Alert] = []
        quiet: list[bool] | None = None  # windows that end with no finding; asked again after any other window
        for k, (start, stop) in enumerate(zip(starts.tolist(), stops, strict=True)):
            if watch.events == 0 and stop - start == watch.window_events and watch.schema is not None:
                if quiet is None:
                    quiet = watch.quiet_windows(tally, is_open)
                if quiet[k]:
                    watch.skip_window(stop - start, first_times[k])
                    continue
            quiet = None
            watch.observe_window(tally, k)
            findings = watch.end_batch(stop - start, first_times[k], last_times[k], state.kinds, labels_of, is_open)
            if findings:
                alerts += self.alerting.emit(
                    state.model, state.version, quality_judgements(state, findings, self.alerting.lifecycle.is_firing)
                )
        return alerts

    def _register_predictions(
        self,
        state: ModelState,
        batch: PredictionBatch,
        rows: np.ndarray | None,
        buckets: list[Bucket],
        times: np.ndarray,
    ) -> list[Alert]:
        """Feed the score-based estimates, fairness and latency (the profile stage put them in the label join)."""
        n = times.size
        combos, seg_code = segment_combinations(buckets, n)
        positive = self.config.performance.positive_label
        preds = take(batch.prediction, rows)
        scores_col = take(batch.scores, rows)
        scores = positive_scores(preds, scores_col, positive)
        perf = self.setup.performance(state)
        latency = batch.latency_ms if rows is None else batch.latency_ms[rows]
        touched = perf.observe_predictions(buckets, scores, latency, times, self.rng)
        alerts = self.alerting.emit(
            state.model, state.version, perf.estimate_judgements({b for b, _ in touched}, float(times.max()))
        )
        fairness = self.setup.fairness(state)
        if fairness is not None:
            predicted = np.where(np.isnan(scores), np.nan, (scores >= self.config.performance.threshold) * 1.0)
            fairness.observe([combos[c] for c in seg_code.tolist()], predicted)
            alerts += self.alerting.emit(
                state.model,
                state.version,
                fairness.judgements(state.model, state.version, self.config.alerts, self.watermark),
            )
        return alerts

    def _latency(self, state: ModelState, latency: np.ndarray) -> None:
        present = latency[~np.isnan(latency)]
        if present.size:
            idx = np.searchsorted(np.asarray(LATENCY_BUCKETS_MS), present, side="left")
            state.latency_buckets += np.bincount(idx, minlength=state.latency_buckets.size)
            state.latency_sum_ms += float(present.sum())
            state.latency_count += int(present.size)

    # --------------------------------------------------------------- snapshots
    def _state(self) -> dict[str, tuple[object, str]]:
        """Where each piece of state is kept (holder, attribute), under the name a snapshot keeps it by, in the
        snapshot's order; older releases' snapshots use the same names."""
        alerting, profile = self.alerting, self.profile
        return {
            "models": (self, "models"),
            "lifecycle": (alerting, "lifecycle"),
            "rng": (self, "rng"),
            "rejected": (profile, "rejected"),
            "capped": (self, "capped"),
            "labels_seen": (profile, "labels_seen"),
            "alerts_emitted": (alerting, "alerts_emitted"),
            "stream_count": (self, "stream_count"),
            "last_event_time": (self, "last_event_time"),
            "joiner": (profile, "joiner"),
            "watermark": (self, "watermark"),
            "prediction_time": (profile, "prediction_time"),
            "label_time": (profile, "label_time"),
            "profile_state": (profile, "bookkeeping"),
            "fdr": (self, "fdr"),
            "incident_shift": (alerting, "incident_shift"),
            "incidents": (alerting, "incidents"),
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything the partition knows, as plain data (see :mod:`monitor.core.snapshot`)."""
        return {
            "version": snap.SNAPSHOT_VERSION,
            "partition": self.partition,
            "state": {name: snap.encode(getattr(holder, attr)) for name, (holder, attr) in self._state().items()},
        }

    @classmethod
    def restore(
        cls,
        config: Settings,
        data: dict[str, Any],
        *,
        partitions: int = 1,
        clock: Callable[[], float] = time.time,
        profiles: ProfileSet | None = None,
        detect: bool = True,
    ) -> PartitionEngine:
        """An engine that continues exactly where the snapshotted one stopped."""
        if data.get("version") != snap.SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')!r} is not {snap.SNAPSHOT_VERSION}")
        engine = cls(
            config, partition=int(data["partition"]), partitions=partitions, clock=clock, profiles=profiles,
            detect=detect,
        )  # fmt: skip
        for name, (holder, attr) in engine._state().items():
            if name in data["state"]:  # state added by a later release starts fresh when restoring an older snapshot
                setattr(holder, attr, snap.decode(data["state"][name]))
        if "label_time" not in data["state"]:  # an older release kept one join clock for both streams
            engine.profile.prediction_time = engine.profile.label_time = engine.watermark
        if "profile_state" not in data["state"]:  # an older release's engine kept the join clock itself
            engine.profile.watermark = engine.watermark
        for state in engine.models.values():
            engine.setup.upgrade(state)
            engine.setup.adopt_profile(state)
        engine._apply_config()
        return engine

    def _apply_config(self) -> None:
        """Settings come from the current config, not from the snapshot: a restart with new limits or
        thresholds takes effect on restored partitions too (detector state keeps its own settings)."""
        cfg = self.config
        lc = self.alerting.lifecycle
        lc.resolve_after_s, lc.cooldown_s = cfg.alerts.resolve_after_s, cfg.alerts.cooldown_s
        lc.resolve_after_events, lc.cooldown_events = cfg.alerts.resolve_after_events, cfg.alerts.cooldown_events
        for name in ("cooldown_until_position", "last_start"):  # state an older release did not keep
            if not hasattr(lc, name):
                setattr(lc, name, {})
        self.fdr.q, self.fdr.round_events = cfg.significance.fdr, cfg.significance.round_events
        j = self.profile.joiner
        j.ttl_s, j.max_pending = cfg.labels.ttl_s, cfg.labels.max_pending
        j.early_ttl_s, j.max_early = cfg.labels.early_ttl_s, cfg.labels.max_early
        j.apply_caps()
        for state in self.models.values():
            self.setup.apply_config(state)

    # ------------------------------------------------------------------- views
    def events_total(self) -> int:
        """Predictions monitored (a model's other detection shards see the same rows and do not count them)."""
        return sum(m.events for m in self.models.values() if self.shards == 1 or self.shard_of_model(m.model) == 0)

    def streams(self) -> Iterator[StreamView]:
        """Every stream with its statistics, for metrics and the dashboard."""
        for state in self.models.values():
            for (name, attr, value), tracker in state.trackers():
                segment = {} if (attr, value) == ALL else {attr: value}
                subject = "prediction" if name == PREDICTION else name
                if isinstance(tracker, NumericStream):
                    stats, ev = tracker.view(), tracker.evidence()
                    kind = "prediction_drift" if name == PREDICTION else "data_drift"
                else:
                    labels = state.vocab[name].labels()
                    stats, ev = tracker.view(labels), tracker.evidence(labels)
                    kind = "prediction_drift" if name == PREDICTION else "data_drift"
                key = alert_key(state.model, kind, subject, segment, state.version)
                yield StreamView(
                    model=state.model,
                    model_version=state.version,
                    feature=subject,
                    segment=segment_label(segment),
                    kind=tracker.kind,
                    stats=stats,
                    effect=ev.effect,
                    firing=self.alerting.lifecycle.is_firing(key),
                )


def _whole_model(model: str) -> int:
    """Without detection shards an engine holds shard 0 of every model: all of it."""
    return 0


register_snapshot_classes()
