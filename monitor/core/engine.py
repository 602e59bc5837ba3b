"""One input partition's monitoring state: message values in, alerts and rejects out.

The engine owns everything a partition needs (decoders, per-model state, drift trackers, alert
lifecycle, counters) and nothing global, so the Kafka edge creates one per assigned partition and
drops it on revocation. It never touches Kafka, HTTP or the wall clock directly: the clock is
injected and only stamps ``emitted_at``.

It orchestrates: the profile stage decodes and joins (:mod:`~monitor.core.profile`), a model version's
rows are monitored by :mod:`~monitor.core.model_monitor`, joined labels learned by
:mod:`~monitor.core.learning`, drift streams judged by :mod:`~monitor.core.judging`, and alert lifecycle,
attribution and ownership are :mod:`~monitor.core.alerting`'s. The engine keeps the model versions, the
partition's clock of event time and random generator, and says where each piece of state is snapshotted.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core import snapshot as snap
from monitor.core.alerting import Alerting, AlertLifecycle
from monitor.core.baseline import ProfileSet
from monitor.core.batch_rows import concat_rows
from monitor.core.event_clock import VersionActivity
from monitor.core.events import PredictionBatch, Rejected
from monitor.core.join import Joined
from monitor.core.judging import DriftJudging
from monitor.core.learning import LabelLearning
from monitor.core.model_monitor import ModelMonitor
from monitor.core.model_setup import ModelSetup
from monitor.core.model_state import ModelState
from monitor.core.profile import ProfileStage, message_sizes
from monitor.core.rules import Alert, in_decision_order, version_scope
from monitor.core.settings import Settings
from monitor.core.snapshot_classes import register_snapshot_classes
from monitor.core.summary import Summary
from monitor.core.view import StreamView, stream_views


@dataclass
class BatchResult:
    """What one batch produced: alert transitions to publish and messages to dead-letter."""

    alerts: list[Alert] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    processed: int = 0
    summaries: list[Summary] = field(default_factory=list)  # for the detection stage (engines that do not detect)


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
        self.model_monitor = ModelMonitor(config, self.setup, self.judging, self.alerting)
        self.rng = np.random.default_rng([seed, partition])
        self.last_event_time = math.nan
        self.watermark = -math.inf  # newest event time of the predictions and labels monitored
        self.retired: Counter[str] = Counter()  # model versions retired ("versions") and the predictions they had
        self.activity = VersionActivity()  # which model versions are idle (monitor.core.event_clock)
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
        sizes = message_sizes(values) if len(batch) else None  # summaries are cut by them too
        if not self.detect:
            result.summaries = self.profile.register(batch, sizes)
            if len(batch):
                self.last_event_time = float(np.fmax.reduce(batch.event_time))
            return result
        result.alerts = self.monitor_batch(batch, sizes)
        return result

    def monitor_batch(self, batch: PredictionBatch, sizes: np.ndarray | None = None) -> list[Alert]:
        """Monitor an already decoded batch (the benchmarks time this apart from decoding): the profile stage,
        then this engine on its summaries. ``sizes``: see :meth:`ProfileStage.register`."""
        if not len(batch):
            return []
        summaries = self.profile.register(batch, sizes)
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
            self.watermark = max(self.watermark, float(np.fmax.reduce(rows.event_time)))
            alerts = self._monitor(rows)
            self.last_event_time = float(np.fmax.reduce(rows.event_time))
        if joined:
            self.watermark = max(self.watermark, max(j.prediction.event_time + j.delay_s for j in joined))
            alerts += self.learning.learn(joined, self.models, self.rng, self.watermark)
        return in_decision_order(alerts)

    def _retire_idle(self, arriving: Collection[tuple[str, str]] = ()) -> list[Alert]:
        """Model versions idle for ``monitoring.retire_after_s`` by the batches since they last came
        (:mod:`monitor.core.event_clock`) leave: their open alerts resolve (:meth:`Alerting.retire`) and their
        state goes, so that a version taken out of service gives back its memory and its place under
        ``monitoring.max_models``, before the versions ``arriving`` in this batch (kept) take places. A version
        that comes back after it was retired starts afresh, as a new one would."""
        idle_s = self.config.monitoring.retire_after_s
        if not idle_s:
            self.activity.clear()
            return []
        alerts: list[Alert] = []
        for key in sorted(self.activity.idle(self.models, idle_s, keep=arriving)):
            state = self.models.pop(key, None)
            self.activity.forget(key)
            if state is None:
                continue
            self.model_monitor.fdr.forget(key)
            self.model_monitor.stream_count -= state.stream_count()
            self.judging.forget(*key)
            self.learning.forget(*key)
            if self.shards == 1 or self.shard_of_model(state.model) == 0:  # a model's other shards count nothing
                self.retired["versions"] += 1
                self.retired["events"] += state.events
            others = [version_scope(m, v) for m, v in self.models]
            alerts += self.alerting.retire(state.model, state.version, self.activity.now, idle_s, others=others)
        return alerts

    # --------------------------------------------------------------- monitoring
    def _model(self, model: str, version: str) -> ModelState | None:
        state = self.models.get((model, version))
        if state is None:
            if len(self.models) >= self.config.monitoring.max_models:
                return None
            state = self.models[model, version] = self.setup.new_state(model, version)
        return state

    def _monitor(self, batch: PredictionBatch) -> list[Alert]:
        """Each model version's rows of the batch to its monitoring, then the window tests' round."""
        groups = batch.by_model_version(sort=True)
        self.judging.begin_batch()
        self.activity.sample(batch.event_time)
        alerts = self._retire_idle(arriving={key for key, _ in groups})
        for (model, version), rows in groups:
            state = self._model(model, version)
            n_rows = len(batch) if rows is None else rows.size
            if state is None:
                self.model_monitor.capped["model"] += n_rows
                continue
            if self.config.monitoring.retire_after_s:
                times = batch.event_time if rows is None else batch.event_time[rows]
                self.activity.came((model, version), float(np.fmax.reduce(times)))
            shard = self.shard_of_model(model) if self.shards > 1 else 0
            alerts += self.model_monitor.observe(
                state, batch, rows, shard=shard, shards=self.shards, rng=self.rng, watermark=self.watermark
            )
        alerts += self.judging.decide_round(*self.model_monitor.end_batch(batch.event_time), models=self.models)
        self._restart_after_fixes()
        return alerts

    def _restart_after_fixes(self) -> None:
        """A fixed input break that had taken a version's accuracy down: its error streams start again at the
        fix (:meth:`ModelPerformance.restart_errors`), so the alert the break opened can clear on the labels
        of the predictions made since, and a later change is found on its own."""
        for scope, at in self.alerting.take_fixed_breaks():
            for (model, version), state in self.models.items():
                if state.perf is not None and version_scope(model, version) == scope:
                    state.perf.restart_errors(at)
                    state.retrain.restart()

    def finish(self) -> list[Alert]:
        """Decide the window tests still waiting for their round (the end of a replay or of a test)."""
        decided = self.model_monitor.fdr.close()
        return self.judging.decide_round(decided, rounds=self.model_monitor.rounds_of(decided), models=self.models)

    # --------------------------------------------------------------- snapshots
    def _state(self) -> dict[str, tuple[object, str]]:
        """Where each piece of state is kept (holder, attribute), under the name a snapshot keeps it by, in the
        snapshot's order; older releases' snapshots use the same names."""
        alerting, profile, monitor = self.alerting, self.profile, self.model_monitor
        return {
            "models": (self, "models"),
            "lifecycle": (alerting, "lifecycle"),
            "rng": (self, "rng"),
            "rejected": (profile, "rejected"),
            "restamped": (profile, "restamped"),
            "capped": (monitor, "capped"),
            "labels_seen": (profile, "labels_seen"),
            "alerts_emitted": (alerting, "alerts_emitted"),
            "stream_count": (monitor, "stream_count"),
            "last_event_time": (self, "last_event_time"),
            "joiner": (profile, "joiner"),
            "watermark": (self, "watermark"),
            "prediction_time": (profile, "prediction_time"),
            "label_time": (profile, "label_time"),
            "profile_state": (profile, "bookkeeping"),
            "fdr": (monitor, "fdr"),
            "incident_shift": (alerting, "incident_shift"),
            "incidents": (alerting, "incidents"),
            "break_spans": (alerting, "break_spans"),
            "retired": (self, "retired"),
            "alert_lives": (alerting, "lives"),
            "version_activity": (self, "activity"),
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
        for name in ("cooldown_until_position", "last_start", "resolved_at"):  # state an older release did not keep
            if not hasattr(lc, name):
                setattr(lc, name, {})
        fdr = self.model_monitor.fdr
        fdr.q, fdr.round_events = cfg.significance.fdr, cfg.significance.round_events
        j = self.profile.joiner
        j.ttl_s, j.max_pending = cfg.labels.ttl_s, cfg.labels.max_pending
        j.early_ttl_s, j.max_early = cfg.labels.early_ttl_s, cfg.labels.max_early
        j.apply_caps()
        for state in self.models.values():
            self.setup.apply_config(state)

    # ------------------------------------------------------------------- views
    def events_total(self) -> int:
        """Predictions monitored (a model's other detection shards see the same rows and do not count them)."""
        kept = sum(m.events for m in self.models.values() if self.shards == 1 or self.shard_of_model(m.model) == 0)
        return kept + self.retired["events"]

    def streams(self) -> Iterator[StreamView]:
        """Every stream with its statistics, for inspection (see :func:`monitor.core.view.stream_views`)."""
        return stream_views(self)


def _whole_model(model: str) -> int:
    """Without detection shards an engine holds shard 0 of every model: all of it."""
    return 0


register_snapshot_classes()
