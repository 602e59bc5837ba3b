"""The Kafka edge: a consumer-group member feeding one engine per partition (what it publishes goes through
:mod:`monitor.io.alert_sink`).

Order of effects for every micro-batch (nothing is committed before it is durable):

1. consume up to ``batch_max_messages`` messages or ``batch_max_ms``;
2. run each partition's messages through its engine (state changes in memory); dead letters are
   produced right away (their bytes depend only on the input message, so a replay repeats them exactly);
   if offsets are committed or alerts published in this batch (or ``http.view_interval_s`` has passed),
   publish the engines' read-only views for /metrics and the dashboard (``publish_views``);
3. for every partition whose batch produced alerts, or whose checkpoint is due: write a snapshot of its
   engine, the input offsets it covers and the alerts about to be published (the "outbox") to the
   state topic;
4. flush until the broker acknowledged all of it (``acks=all``), re-producing failures;
5. publish the outbox alerts (and summaries); the next checkpoint flushes before it writes a snapshot, so a
   newer snapshot, whose outbox no longer holds them, is never durable before they are (meanwhile the loop
   produces again what failed on every turn, with input or without);
6. commit the snapshot's offsets, synchronously, never moving an offset backwards.

On assignment a partition's engine is restored from its newest snapshot and the consumer seeks to the
snapshot's offsets (not to the group's committed offsets), and the snapshot's outbox is published again.
A crash at any step therefore neither loses nor double-counts an event in the state, loses no alert,
and repeats alerts only as exact copies (same id, same bytes). Without checkpoints (``checkpoint.enabled
= false``) offsets are committed after every batch and state starts empty on takeover.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from monitor.config import MonitorConfig
from monitor.core.baseline import ProfileSet
from monitor.core.detect import DetectionStage
from monitor.core.engine import PartitionEngine
from monitor.core.handoff import SummaryHandoff, TakenAsSent
from monitor.core.rules import Alert
from monitor.core.shards import effective_shards, summaries_partition
from monitor.core.summary import ON_ITS_WAY, Summary
from monitor.core.view import EngineView, build_view
from monitor.errors import SinkError, SourceError
from monitor.io.alert_sink import AlertSink
from monitor.io.audit import AUDIT_TOPIC_CONFIG, AuditPublisher
from monitor.io.checkpoint import (
    CheckpointStore,
    FaultHook,
    IncompleteSnapshot,
    RecordParts,
    loads_record,
    record_parts,
    write_in_order,
)
from monitor.io.kafka_clients import ErrorLog, client_config, ensure_topics, translate
from monitor.io.schedule import DETECT, PROFILE, CheckpointSchedule, Task, caught_up

log = logging.getLogger(__name__)

RETRY_LOG_S = 5.0  # while the broker does not answer at start (or a topic is missing), one line this often
# The summaries topic carries each input partition's summaries to the detection stage of their model version;
# a detection stage that restarts reads from its snapshot's offset; a week covers a long outage of the stage.
SUMMARIES_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


@dataclass
class LoopStats:
    """Counters of the consume loop itself, read by the exporter."""

    batches: int = 0
    last_batch_seconds: float = 0.0
    last_poll_wall: float = 0.0
    broker_ok: bool = False
    checkpoints: int = 0
    checkpoint_seconds: float = 0.0
    checkpoint_seconds_max: float = 0.0  # the longest a checkpoint has held the loop since the start
    last_checkpoint_bytes: int = 0
    # the longest checkpoint's partitions, bytes and seconds per step (benchmarks read it to say what dominates)
    longest_checkpoint: dict[str, Any] = field(default_factory=dict)
    checkpoint_cpu_seconds_max: float = 0.0  # the most CPU time of the loop's thread any checkpoint took
    # where the loop's time goes (a loop that waits more than it works is not the bottleneck)
    poll_seconds_total: float = 0.0  # in consume(): waiting for a batch, and the rebalance callbacks it runs
    checkpoint_seconds_total: float = 0.0  # in checkpoints
    checkpoint_wait_seconds_total: float = 0.0  # in checkpoints, off this thread's CPU (acks, commits, a busy core)
    restores: int = 0
    restore_seconds: float = 0.0
    views_published: int = 0
    view_seconds: float = 0.0  # the last publication: building the views of the engines that changed
    summaries_produced: int = 0
    notes_sent: int = 0  # notes among them (ProfileStage.notes: an input partition with input waiting)
    summaries_consumed: int = 0
    summaries_taken_at_once: int = 0  # this replica's own, taken by its detection stages as sent (see _take_sent)
    summaries_unreadable: int = 0
    summaries_oversize: int = 0


# summaries taken as sent and not yet read back, at most (MonitorService._take_sent): beyond, they go the usual way
MAX_TAKEN_AT_ONCE = 10_000
# what reading a summary's bytes raises for one that is not ours, damaged, or a later release's
UNREADABLE_SUMMARY = (ValueError, KeyError, TypeError, IndexError, zlib.error)


@dataclass
class MergeStats:
    """One detection stage's merge, as the exporter shows it (plain data, replaced whole)."""

    watermark: float = -math.inf  # the event time released up to
    newest: float = -math.inf  # the newest progress any input partition reported
    pending_rows: int = 0
    sources: int = 0
    duplicates: int = 0
    late_rows: int = 0
    summaries: int = 0
    misrouted: int = 0
    notes: int = 0


class MonitorService:
    """Consumer-group member running the two stages for what it is assigned (README, "Running it in production").

    * **Profile stage**, per input partition *p* (predictions partition *p* with labels partition *p*: the
      topics must be co-partitioned, which :meth:`check_topics` enforces at start): decode, validate,
      dead-letter, join labels; every model version's summary goes to the summaries topic, to the partition of
      its model version, with the profile stage's checkpoint (its outbox).
    * **Detection stage**, per summaries partition: the summaries of every input partition merged in event time
      (``monitor.core.detect``), one engine over them; its alerts go out with its checkpoint.
    """

    def __init__(
        self,
        config: MonitorConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[Alert], None] | None = None,
        observe_batch: Callable[[float, int], None] | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        faults: FaultHook | None = None,
    ) -> None:
        """``faults`` is called at each named step of a checkpoint (``monitor.io.checkpoint.CHECKPOINT_STEPS``):
        the crash tests' hook; none in production."""
        self.config = config
        self.clock = clock
        self.on_alert = on_alert
        self.observe_batch = observe_batch
        self.engines: dict[int, PartitionEngine] = {}  # profile stages, per input partition
        self.detectors: dict[int, DetectionStage] = {}  # detection stages, per summaries partition
        # What /metrics and the dashboard read, per partition in the engines' order: replaced whole by the loop
        # thread (one reference assignment), never mutated, so readers need no lock (see publish_views).
        self.views: dict[int, EngineView] = {}  # the profile stages'
        self.detect_views: dict[int, EngineView] = {}  # the detection stages' engines'
        self.merges: dict[int, MergeStats] = {}  # the detection stages' merges, published with the views
        self._merge_stats: dict[int, MergeStats] = {}  # the same, as of the last release
        self._backlog = False  # a detection stage left summaries it could release for the next iteration
        self.monotonic: Callable[[], float] = time.monotonic  # what the reading clock runs on (tests set it)
        self._not_reading_s = 0.0  # time the loop spent working off release backlogs, reading nothing
        self._reading_stopped_at: float | None = None  # the reading clock while a backlog is worked off
        self._stale: set[Task] = set()  # tasks whose engine changed since its view was built
        self._views_at = -math.inf  # time.monotonic() of the last publication
        self.profiles = ProfileSet.load(config.baseline.profiles)  # read once: a bad profile fails at start
        self.lock = threading.RLock()
        self.stats = LoopStats()
        self.lag: dict[tuple[str, int], int] = {}
        self.partitions = 1
        self.summary_partitions = 1
        self.consumer: Consumer | None = None
        self.sink: AlertSink | None = None
        self.store: CheckpointStore | None = None  # the profile stages' snapshots
        self.detect_store: CheckpointStore | None = None  # the detection stages' snapshots
        self.audit: AuditPublisher | None = None
        self._committed: dict[tuple[str, int], int] = {}
        self._next: dict[tuple[str, int], int] = {}  # next offset to process, per input partition
        cp = config.checkpoint
        d = config.detection
        if d.live_interval_s > d.summary_interval_s:
            log.warning(
                "detection.live_interval_s (%g s) is longer than detection.summary_interval_s (%g s): the caught-up "
                "tick is %g s",
                d.live_interval_s, d.summary_interval_s, d.summary_interval_s,
            )  # fmt: skip
        self.schedule = CheckpointSchedule(
            cp.every_events, cp.every_s, d.summary_interval_s, min(d.live_interval_s, d.summary_interval_s)
        )
        self._outgoing: dict[int, list[Summary]] = {}  # per input partition: summaries waiting for its checkpoint
        self._polled_at = -math.inf  # time.perf_counter() when the last poll returned
        # summaries sent to a summaries partition read here, until read back (detection.handoff_rows rows at most)
        self.handoff = SummaryHandoff(config.detection.handoff_rows)
        # Summaries for this replica's own detection stages are taken at once, not when read back (_take_sent):
        # those just sent, and which may be taken and which were.
        self._sent_here: list[tuple[int, Summary]] = []
        self._checkpoint_sent: list[tuple[int, Summary]] | None = None  # sent by a checkpoint not yet complete
        self._taken_as_sent = TakenAsSent(MAX_TAKEN_AT_ONCE)
        self._labels_enabled = True
        self._consumer_overrides = consumer_overrides or {}
        self._faults = faults
        self._errors = ErrorLog()  # error_cb of every client of this service but the admin client's
        self._admin_errors = ErrorLog(quiet=True)  # read by wait_for_broker, which logs its own lines
        self._closing = False
        self._stop: threading.Event | None = None

    # ----------------------------------------------------------------- startup
    def wait_for_broker(self, admin: AdminClient, stop: threading.Event | None = None) -> dict[str, Any]:
        """The broker's topics once it answers (empty if ``stop`` is set first). While it does not, one line
        every ``RETRY_LOG_S``; after ``kafka.broker_wait_s`` (0: never) a fatal :class:`SourceError` with the
        last reason."""
        k = self.config.kafka
        started = time.monotonic()
        deadline = started + k.broker_wait_s if k.broker_wait_s > 0 else float("inf")
        next_line = started
        while True:
            try:
                return dict(admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic()))).topics)
            except KafkaException as exc:
                admin.poll(0)  # serves error_cb, which has the cause (e.g. "Connection refused")
                reason = self._admin_errors.last or exc.args[0].str()
            now = time.monotonic()
            if stop is not None and stop.is_set():
                return {}
            if now >= deadline:
                raise SourceError(
                    f"no answer from Kafka at {k.bootstrap_servers} within {k.broker_wait_s:g} s ({reason}); "
                    "check kafka.bootstrap_servers, or keep waiting with --wait-for-broker (kafka.broker_wait_s = 0)",
                    fatal=True,
                )
            if now >= next_line:
                next_line = now + RETRY_LOG_S
                left = "waiting until it does" if deadline == float("inf") else f"giving up in {deadline - now:.0f} s"
                log.warning("Kafka at %s does not answer (%s); retrying, %s", k.bootstrap_servers, reason, left)

    def check_topics(self, admin: AdminClient, wait_s: float = 30.0, stop: threading.Event | None = None) -> None:
        """Predictions must exist (waiting up to ``wait_s`` for it); labels, when present, must have the same
        partition count; the summaries topic and the state topics are created when missing (the state topics
        compacted) and must have enough partitions."""
        k = self.config.kafka
        deadline = time.monotonic() + wait_s
        next_line = 0.0
        while True:
            topics = self.wait_for_broker(admin, stop)
            now = time.monotonic()
            if k.predictions_topic in topics or now > deadline or (stop is not None and stop.is_set()):
                break
            if now >= next_line:
                next_line = now + RETRY_LOG_S
                log.info("waiting for topic %s to exist (up to %.0f s more)", k.predictions_topic, deadline - now)
            if stop is not None:
                stop.wait(0.5)
            else:
                time.sleep(0.5)
        if stop is not None and stop.is_set():
            return
        if k.predictions_topic not in topics:
            raise SourceError(
                f"predictions topic {k.predictions_topic!r} does not exist on the broker at {k.bootstrap_servers} "
                f"(waited {wait_s:g} s); create it, co-partitioned with {k.labels_topic!r}, or set "
                "kafka.predictions_topic",
                fatal=True,
            )
        n_pred = self.partitions = len(topics[k.predictions_topic].partitions)
        if k.labels_topic not in topics:
            log.warning("labels topic %r not found: monitoring predictions only", k.labels_topic)
            self._labels_enabled = False
        else:
            n_lab = len(topics[k.labels_topic].partitions)
            if n_lab != n_pred:
                raise SourceError(
                    f"topics are not co-partitioned: {k.predictions_topic!r} has {n_pred} partitions and "
                    f"{k.labels_topic!r} has {n_lab}; give both the same count and key both by prediction_id",
                    fatal=True,
                )
        if self.config.audit.enabled and self.config.audit_topic not in topics:
            log.info("creating audit topic %s", self.config.audit_topic)
            try:
                ensure_topics(admin, {self.config.audit_topic: 1}, {self.config.audit_topic: dict(AUDIT_TOPIC_CONFIG)})
            except SourceError as exc:
                raise SourceError(
                    f"audit topic {self.config.audit_topic!r} is missing and could not be created ({exc}); create it "
                    "with one partition (cleanup.policy=compact,delete), or set audit.enabled = false",
                    fatal=True,
                ) from None
        summaries = self.config.summaries_topic
        n_sum = self.config.detection.summaries_partitions or n_pred
        if summaries in topics:
            n_sum = len(topics[summaries].partitions)
        else:
            log.info("creating summaries topic %s with %d partitions", summaries, n_sum)
            try:
                ensure_topics(admin, {summaries: n_sum}, {summaries: dict(SUMMARIES_TOPIC_CONFIG)})
            except SourceError as exc:
                raise SourceError(
                    f"summaries topic {summaries!r} is missing and could not be created ({exc}); create it with "
                    f"{n_sum} partitions, or name an existing one in detection.summaries_topic",
                    fatal=True,
                ) from None
        self.summary_partitions = n_sum
        if not self.config.checkpoint.enabled:
            return
        for topic, n, what in (
            (self.config.state_topic, n_pred, f"the {n_pred} of {k.predictions_topic!r}"),
            (self.config.detection_state_topic, n_sum, f"the {n_sum} of {summaries!r}"),
        ):
            if topic not in topics:
                log.info("creating state topic %s with %d partitions", topic, n)
                try:
                    ensure_topics(admin, {topic: n}, {topic: {"cleanup.policy": "compact"}})
                except SourceError as exc:
                    raise SourceError(
                        f"state topic {topic!r} is missing and could not be created ({exc}); create it "
                        f"with {n} partitions and cleanup.policy=compact, or set checkpoint.enabled = false",
                        fatal=True,
                    ) from None
            elif len(topics[topic].partitions) < n:
                n_state = len(topics[topic].partitions)
                raise SourceError(f"state topic {topic!r} has {n_state} partitions, fewer than {what}", fatal=True)

    def _consumer_config(self) -> dict[str, Any]:
        k = self.config.kafka
        return {
            # A bounded prefetch, refilled as soon as it drains (librdkafka waits a second by default): summaries
            # and labels share the queue with predictions and must not wait behind a backlog. Properties override.
            "queued.max.messages.kbytes": k.prefetch_kbytes,
            "queued.min.messages": k.batch_max_messages,
            "fetch.queue.backoff.ms": 10,
            **client_config(self.config),
            "group.id": k.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": k.session_timeout_ms,
            "heartbeat.interval.ms": max(100, k.session_timeout_ms // 4),
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 50,
            "error_cb": self._on_error,
            **self._consumer_overrides,
        }

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.stats.broker_ok = False
        self._errors(err)

    def _new_engine(self, partition: int) -> PartitionEngine:
        """An input partition's profile stage (its engine detects nothing: the detection stages do). A fresh one
        numbers its summaries from the wall clock in microseconds, above any earlier instance's numbers (one
        without checkpoints, or whose snapshot was ignored), so the detection stages never take its summaries
        for repeats."""
        engine = PartitionEngine(
            self.config, partition=partition, partitions=self.partitions, clock=self.clock, profiles=self.profiles,
            detect=False,
        )  # fmt: skip
        engine.profile.seq = time.time_ns() // 1000
        engine.profile.shards = effective_shards(self.config.detection.shards, self.summary_partitions)
        return engine

    def _new_detector(self, partition: int) -> DetectionStage:
        stage = DetectionStage(self.config, partition=partition, **self._stage_settings())
        stage.expect(list(range(self.partitions)))
        return stage

    def _stage_settings(self) -> dict[str, Any]:
        """What a detection stage is built with, new or restored (the reading clock times sources' silence)."""
        d = self.config.detection
        return {
            "idle_s": d.idle_s, "max_pending": d.max_pending_rows, "clock": self.clock,
            "idle_clock": self.reading_clock, "profiles": self.profiles, "batch_rows": d.batch_rows,
            "summaries_partitions": self.summary_partitions, "shards": d.shards,
        }  # fmt: skip

    def _task(self, tp: TopicPartition) -> Task:
        return (DETECT if tp.topic == self.config.summaries_topic else PROFILE, tp.partition)

    def _source(self, role: str) -> list[str]:
        """What a snapshot is of: a snapshot of anything else (another deployment, an older release) is ignored."""
        k = self.config.kafka
        return [k.group_id, k.predictions_topic if role == PROFILE else self.config.summaries_topic, role]

    # ------------------------------------------------------------- rebalances
    def _restore(
        self, task: Task, committed: frozenset[Task] = frozenset()
    ) -> tuple[Any, dict[str, int | None], list[dict[str, Any]], list[Any]] | None:
        """The task's newest snapshot, or None to start it empty. ``committed``: the tasks whose input has a
        committed offset (offsets are committed only after a complete snapshot)."""
        role, partition = task
        store = self._store_of(role)
        assert store is not None
        for attempt in range(5):
            try:
                stored = store.read_latest(partition)
                break
            except IncompleteSnapshot:
                if task not in committed:  # its first snapshot was cut short: nothing was committed after it
                    log.warning("%s partition %d: its only snapshot is incomplete and nothing was committed; "
                                "starting it empty", role, partition)  # fmt: skip
                    return None
                if attempt == 4:
                    raise
                log.warning("%s partition %d has committed offsets but no complete snapshot yet; retrying", role,
                            partition)  # fmt: skip
                time.sleep(2.0 * (attempt + 1))
            except SourceError as exc:
                if attempt == 4:
                    raise  # never start a partition empty when its state exists but cannot be read
                log.warning("%s; retrying", exc)
                time.sleep(2.0 * (attempt + 1))
        if stored is None:
            return None
        data = loads_record(stored.payload)
        if data.get("source") != self._source(role):
            log.warning("ignoring snapshot of %s partition %d written for %s", role, partition, data.get("source"))
            return None
        obj: PartitionEngine | DetectionStage
        if role == PROFILE:
            obj = PartitionEngine.restore(
                self.config, data["engine"], partitions=self.partitions, clock=self.clock, profiles=self.profiles,
                detect=False,
            )  # fmt: skip
            obj.profile.shards = effective_shards(self.config.detection.shards, self.summary_partitions)
        else:
            obj = DetectionStage.restore(self.config, data["engine"], **self._stage_settings())
            obj.expect(list(range(self.partitions)))
        return obj, data["offsets"], data["outbox"], data.get("summaries", [])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        k = self.config.kafka
        self._forget_sent()
        tasks = sorted(
            {self._task(tp) for tp in partitions if tp.topic in (k.predictions_topic, self.config.summaries_topic)}
        )
        restored: dict[Task, Any] = {}
        if self.store is not None and tasks:
            started = time.perf_counter()
            committed = self._tasks_committed(consumer, partitions)
            with ThreadPoolExecutor(max_workers=min(8, len(tasks))) as pool:
                restored = dict(zip(tasks, pool.map(lambda t: self._restore(t, committed), tasks), strict=True))
            self.stats.restore_seconds = time.perf_counter() - started
        with self.lock:
            for task in tasks:
                role, p = task
                found = restored.get(task)
                if found is None:
                    if role == PROFILE:
                        self.engines[p] = self._new_engine(p)
                    else:
                        self.detectors[p] = self._new_detector(p)
                    continue
                obj, offsets, outbox, summaries = found
                if role == PROFILE:
                    self.engines[p] = obj
                    topics: tuple[tuple[str, str], ...] = (
                        (k.predictions_topic, "predictions"),
                        (k.labels_topic, "labels"),
                    )
                else:
                    self.detectors[p] = obj
                    topics = ((self.config.summaries_topic, "summaries"),)
                self.stats.restores += 1
                for topic, name in topics:
                    off = offsets.get(name)
                    if off is not None:
                        self._next[topic, p] = off
                assert self.sink is not None
                for alert in outbox:  # published before the crash or not: publish again, identical
                    self.sink.alert(alert)
                for plain in summaries:  # the same: the detection stages drop the ones they had
                    try:
                        again = Summary.from_stored(plain)
                    except UNREADABLE_SUMMARY as exc:  # unreadable anywhere
                        self.stats.summaries_unreadable += 1
                        log.warning("%s partition %d: a summary in its snapshot is unreadable: %s", role, p, exc)
                        continue
                    self._send_summary(again)
                log.info("%s partition %d restored from its snapshot at offsets %s", role, p, offsets)
            for tp in partitions:
                self.lag.pop((tp.topic, tp.partition), None)
                task = self._task(tp)
                if restored.get(task) is not None:
                    nxt = self._next.get((tp.topic, tp.partition))
                    tp.offset = OFFSET_STORED if nxt is None else nxt  # commits only happen with snapshots
                else:
                    tp.offset = OFFSET_STORED
            self.schedule.assign(tasks, time.monotonic())
            self.stats.broker_ok = True
            self._stale.update(tasks)
        self.publish_views(force=True)
        consumer.assign(partitions)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _tasks_committed(self, consumer: Consumer, partitions: list[TopicPartition]) -> frozenset[Task]:
        """The tasks some of whose input partitions have a committed offset (all of them if it cannot tell)."""
        try:
            got = consumer.committed([TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10)
        except (KafkaException, RuntimeError) as exc:
            log.warning("cannot read the committed offsets (%s): an incomplete snapshot stops a restore", exc)
            return frozenset(self._task(tp) for tp in partitions)
        return frozenset(self._task(tp) for tp in got if tp.offset is not None and tp.offset >= 0)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tasks = {self._task(tp) for tp in partitions} & set(self._tasks())
        if tasks and self.sink is not None and not self._closing:  # close() has checkpointed already
            try:
                self._checkpoint(tasks, {}, self._stop)
                self.sink.flush(self._stop)  # what it published is out before the next owner takes over
            except (KafkaException, SourceError, SinkError) as exc:
                log.warning("checkpoint on revoke failed (the next owner replays from the last one): %s", exc)
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        k = self.config.kafka
        self._forget_sent()
        with self.lock:
            for tp in partitions:
                task = self._task(tp)
                if tp.topic == k.predictions_topic:
                    self.engines.pop(tp.partition, None)
                    self._outgoing.pop(tp.partition, None)  # checkpointed on revoke, or the next owner replays them
                elif task[0] == DETECT:
                    self.detectors.pop(tp.partition, None)
                    self._merge_stats.pop(tp.partition, None)
                    self.handoff.clear()
                if tp.topic in (k.predictions_topic, self.config.summaries_topic):
                    store = self._store_of(task[0])
                    if store is not None:  # the next owner may delete pieces this one thinks it holds
                        store.forget(tp.partition)
                    self.schedule.drop(task)
                self.lag.pop((tp.topic, tp.partition), None)
                self._next.pop((tp.topic, tp.partition), None)
                self._committed.pop((tp.topic, tp.partition), None)
            self._stale &= set(self._tasks())
            self.views = {p: v for p, v in self.views.items() if p in self.engines}
            self.detect_views = {p: v for p, v in self.detect_views.items() if p in self.detectors}
            self.merges = {p: m for p, m in self.merges.items() if p in self.detectors}
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost (session expired): %s", [(tp.topic, tp.partition) for tp in partitions])
        self._drop(partitions)

    def _tasks(self) -> list[Task]:
        return [(PROFILE, p) for p in self.engines] + [(DETECT, p) for p in self.detectors]

    # -------------------------------------------------------------------- loop
    def ready(self) -> bool:
        return bool(self.engines or self.detectors) and self.stats.broker_ok

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then checkpoint, commit and close."""
        k = self.config.kafka
        self._stop = stop
        admin = AdminClient(client_config(self.config, self._admin_errors))
        log.info("connecting to Kafka at %s", k.bootstrap_servers)
        self.check_topics(admin, stop=stop)
        if stop.is_set():
            return
        clients = client_config(self.config, self._errors)
        self.sink = AlertSink(clients, k.alerts_topic, k.dlq_topic, k.produce_timeout_s, k.transactional_id)
        if self.config.checkpoint.enabled:
            chunk = self.config.checkpoint.max_chunk_bytes
            producer = self.sink.producer
            self.store = CheckpointStore(clients, self.config.state_topic, producer=producer, max_chunk_bytes=chunk)
            self.detect_store = CheckpointStore(
                clients, self.config.detection_state_topic, producer=producer, max_chunk_bytes=chunk
            )
        if self.config.audit.enabled:
            self.audit = AuditPublisher(self.config, clients)
            self.audit.publish_config()
        self.consumer = consumer = Consumer(self._consumer_config())
        topics = [k.predictions_topic] + ([k.labels_topic] if self._labels_enabled else [])
        topics.append(self.config.summaries_topic)
        consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        last_health = time.monotonic()
        clean = False
        try:
            while not stop.is_set():
                if self._backlog:  # a capped release left summaries it could release: monitor them before taking
                    self.work_off_backlog(stop)  # more input (consuming on would let the profile stages run ahead)
                elif messages := self._consume(consumer):
                    self.stats.last_poll_wall = time.time()
                    self.process(messages, stop)
                else:
                    self.stats.last_poll_wall = time.time()
                    self.idle(stop)
                    if time.monotonic() - last_health > 5.0:
                        last_health = time.monotonic()
                        self._check_broker(consumer)
                if self.audit is not None:
                    with self.lock:
                        self.audit.tick(self.engines, self.lag, self.partitions)
            clean = True
        finally:
            # After an exception mid-batch the engines may hold half a batch: never snapshot that; the next
            # owner restores the last good checkpoint and replays.
            self.close(stop, checkpoint=clean)

    def _consume(self, consumer: Consumer) -> list[Message]:
        """The next micro-batch: up to ``kafka.batch_max_messages``, gathered for ``kafka.batch_max_ms`` from the
        end of the last poll. The time the loop spent on the last batch counts: librdkafka kept fetching meanwhile,
        so a loop busy for longer takes what is there at once instead of waiting on top of its work (which capped
        live throughput near batch_max_messages per batch_max_ms plus the work, with a core half idle)."""
        k = self.config.kafka
        started = time.perf_counter()
        wait = max(0.0, k.batch_max_ms / 1000 - (started - self._polled_at))
        try:
            return consumer.consume(k.batch_max_messages, wait)
        finally:
            self._polled_at = time.perf_counter()
            self.stats.poll_seconds_total += self._polled_at - started

    def _check_broker(self, consumer: Consumer) -> None:
        try:
            consumer.list_topics(self.config.kafka.predictions_topic, timeout=2)
            self.stats.broker_ok = True
        except KafkaException:
            self.stats.broker_ok = False

    def process(self, messages: Sequence[Message], stop: threading.Event | None = None) -> None:
        """Steps 2 to 6 of the order of effects for one micro-batch."""
        assert self.sink is not None and self.consumer is not None
        started = time.perf_counter()
        groups: dict[tuple[str, int], list[Message]] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise translate(err, "consuming")
                log.warning("consume error: %s", err.str())
                continue
            groups.setdefault((str(msg.topic()), int(msg.partition() or 0)), []).append(msg)
        k = self.config.kafka
        summaries_topic = self.config.summaries_topic
        n = 0
        outbox: dict[Task, list[Alert]] = {}
        dead_lettered: set[Task] = set()
        with self.lock:
            for (topic, partition), group in groups.items():
                n += len(group)
                if topic == summaries_topic:
                    task: Task = (DETECT, partition)
                    self._take_summaries(partition, group)
                else:
                    task = (PROFILE, partition)
                    engine = self.engines.get(partition)
                    if engine is None:  # a labels partition whose predictions partition is not ours (other assignor)
                        engine = self.engines[partition] = self._new_engine(partition)
                    values = [m.value() for m in group]
                    times = [m.timestamp()[1] / 1000.0 for m in group]
                    if topic == k.predictions_topic:
                        result = engine.process_predictions(values, times)
                    else:
                        result = engine.process_labels(values, times)
                    for rejected in result.rejected:
                        self.sink.dead_letter(group[rejected.position], rejected)
                    if result.rejected:
                        dead_lettered.add(task)
                    if result.summaries:
                        for summary in result.summaries:  # encoded as made: a checkpoint then only copies bytes
                            summary.encode()
                        self._outgoing.setdefault(partition, []).extend(result.summaries)
                        self.schedule.summaries_waiting(partition, time.monotonic())
                self._next[topic, partition] = int(group[-1].offset() or 0) + 1
                if topic != summaries_topic:
                    self.schedule.moved_at[partition] = time.monotonic()
                if topic == summaries_topic:  # written in transactions: the position skips their commit markers
                    position = self.consumer.position([TopicPartition(topic, partition)])[0].offset
                    self._next[topic, partition] = max(self._next[topic, partition], position)
                self.schedule.count(task, len(group))
                self._stale.add(task)
            self._release(outbox)
        self._effects(outbox, dead_lettered, [tp for tp in groups], stop)
        self.stats.broker_ok = True
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.perf_counter() - started
        if self.observe_batch is not None:
            self.observe_batch(self.stats.last_batch_seconds, n)
        self._update_lag(groups)

    def idle(self, stop: threading.Event | None = None) -> None:
        """A poll came back empty, or a capped release left a backlog: release what the watermark allows (an
        input partition may have gone idle), send summaries and checkpoint what is due, publish every view (while
        a backlog is worked off, at the usual interval)."""
        outbox: dict[Task, list[Alert]] = {}
        with self.lock:
            self._release(outbox)
        self.publish_views(force=not self._backlog)
        if self.sink is not None:
            self._effects(outbox, set(), [], stop)

    def work_off_backlog(self, stop: threading.Event | None = None) -> None:
        """One iteration that monitors what a capped release left, reading nothing: its time does not count
        toward any source's silence (see :meth:`reading_clock`)."""
        started = self.monotonic()
        self._reading_stopped_at = started - self._not_reading_s
        try:
            self.idle(stop)
        finally:
            self._not_reading_s += self.monotonic() - started
            self._reading_stopped_at = None

    def reading_clock(self) -> float:
        """Monotonic seconds less those spent working off release backlogs: the detection stages time a
        source's silence (``detection.idle_s``) on it. Nothing is read meanwhile, so a source cannot be heard;
        counting that time would leave every source out of the watermark after a long backlog and monitor the
        rows still on their way out of event-time order (late). It stands still during such an iteration, so it
        never goes back."""
        if self._reading_stopped_at is not None:
            return self._reading_stopped_at
        return self.monotonic() - self._not_reading_s

    def _take_summaries(self, partition: int, group: list[Message]) -> None:
        stage = self.detectors.get(partition)
        if stage is None:
            stage = self.detectors[partition] = self._new_detector(partition)
        for msg in group:
            value = msg.value() or b""
            offset = int(msg.offset() or 0)
            try:
                held = self.handoff.take(value)
                summary = held if held is not None else Summary.decode(value)
            except UNREADABLE_SUMMARY as exc:
                self.stats.summaries_unreadable += 1  # not ours, or a later release's: skipped, counted, logged
                log.warning("summaries partition %d offset %s unreadable: %s", partition, msg.offset(), exc)
                continue
            # a summary taken as it was sent is read back: only its offset is learned (for every summary read, so
            # that a copy still waiting is never left out of a snapshot once the read position has passed it)
            stage.learn_offset(summary.source, summary.seq, offset)
            if self._taken_as_sent.read_back(partition, source=summary.source, seq=summary.seq):
                continue
            summary.offset = offset
            stage.add(summary)
        self.stats.summaries_consumed += len(group)

    def _release(self, outbox: dict[Task, list[Alert]]) -> None:
        """Every detection stage monitors what its watermark lets through (call with the lock held)."""
        self._backlog = False
        for d, stage in self.detectors.items():
            waiting = stage.pending_rows()
            alerts = stage.release(max_rows=self.config.detection.release_rows)
            self._backlog |= stage.backlog
            if alerts:
                outbox.setdefault((DETECT, d), []).extend(alerts)
            left = stage.pending_rows()
            if alerts or left != waiting:
                self._stale.add((DETECT, d))
            if left < waiting:
                # held summaries released: its offset may move on, so a checkpoint falls due (checkpoint.every_s)
                self.schedule.fall_due((DETECT, d))
            mark = stage.released_to
            self._merge_stats[d] = MergeStats(
                watermark=mark,
                newest=max(stage.progress.values(), default=-math.inf),
                pending_rows=left,
                sources=len(stage.progress),
                duplicates=stage.duplicates,
                misrouted=stage.misrouted,
                notes=stage.notes,
                late_rows=stage.late_rows,
                summaries=stage.summaries,
            )

    def _effects(
        self,
        outbox: dict[Task, list[Alert]],
        dead_lettered: set[Task],
        consumed: list[tuple[str, int]],
        stop: threading.Event | None,
    ) -> None:
        """Steps 3 to 6 for what is due; then this replica's detection stages take the summaries it just sent
        them and monitor what that lets through now, rather than after the next poll and its profile work."""
        self._due_effects(outbox, dead_lettered, consumed, stop)
        if self._take_sent():
            more: dict[Task, list[Alert]] = {}
            with self.lock:
                self._release(more)
            if more:
                self._due_effects(more, set(), [], stop)

    def _due_effects(
        self,
        outbox: dict[Task, list[Alert]],
        dead_lettered: set[Task],
        consumed: list[tuple[str, int]],
        stop: threading.Event | None,
    ) -> None:
        """Steps 3 to 6 for what is due: without checkpoints, publish and commit at once."""
        assert self.sink is not None
        if self.store is None:
            self.publish_views(tasks=set(self._stale))  # offsets are committed after every batch
            sending = {p: self._with_heartbeats(p) for p in list(self._outgoing)}
            self._publish(outbox, stop, sending)
            self._commit({tp: self._next[tp] for tp in consumed if tp in self._next})
            self.send_notes()
            return
        # Alerts and summaries are published only after their task's snapshot; with transactions, dead letters
        # become visible only together with their partition's offsets: these tasks cannot wait.
        urgent = set(outbox) | (dead_lettered if self.sink.transactional else set())
        now = time.monotonic()
        urgent |= self.schedule.sending_due(urgent, caught_up=caught_up(self.lag, self.config.summaries_topic), now=now)
        due = urgent | self.schedule.due(urgent, now)
        if due:
            self.publish_views(tasks=due)  # a checkpoint commits their offsets and publishes their alerts
            self._checkpoint(due, outbox, stop)
        self.sink.retry()  # what a checkpoint published and failed goes again, whether one is due or not
        self.send_notes()

    def send_notes(self) -> None:
        """Notes (:meth:`ProfileStage.notes`) for each input partition of this replica that has sent neither
        summaries nor notes for ``detection.summary_interval_s`` and whose rows are on their way: its summaries
        wait for their checkpoint, or it has input waiting (:meth:`_input_waiting`) and is
        being read (its position moved within ``detection.idle_s``) or this replica is working off a release
        backlog, reading nothing. The detection stages then keep it in their watermark while it is read or sent
        late: catching up, a consumer reads its partitions in turns and checkpoints them one after another
        (:meth:`CheckpointSchedule.sending_due`). Left out after ``idle_s``, its rows would come behind what was
        released and be monitored out of event-time order. A partition whose position stands still with input
        waiting (an upstream transaction left open, a leader away) is not read late but stuck: no notes, and
        ``idle_s`` lets the others go on. With transactions none go: a note would wait in the open transaction until the
        next commit, and hold every reader of the summaries partition meanwhile."""
        if self.consumer is None or self.sink is None or self.sink.transactional:
            return
        now = time.monotonic()
        with self.lock:
            due = self.schedule.notes_due(
                list(self.engines), idle_s=self.config.detection.idle_s, backlog=self._backlog,
                input_waiting=self._input_waiting, now=now,
            )  # fmt: skip
            for p in due:
                notes = self.engines[p].profile.notes()
                for note in notes:
                    self._send_summary(note)
                self.schedule.sent_at[p] = now
                self.stats.notes_sent += len(notes)

    def _input_waiting(self, partition: int) -> bool:
        """Whether the consumer has seen messages of the predictions or labels partition that this replica has
        not processed: the high watermark cached from its last fetch, against its position (which moves past
        transaction markers, so a partition whose last message is one is not waiting)."""
        assert self.consumer is not None
        k = self.config.kafka
        topics = [k.predictions_topic] + ([k.labels_topic] if self._labels_enabled else [])
        for topic in topics:
            tp = TopicPartition(topic, partition)
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                position = self.consumer.position([tp])[0].offset
            except KafkaException:
                continue
            # nothing read since the assignment: where it starts is not known here (a committed offset, say,
            # past the partition's start), so not waiting; a detection stage expects it for idle_s meanwhile
            done = max(position, self._next.get((topic, partition), -1))
            if high >= 0 and done >= 0 and high > done:
                return True
        return False

    def _with_heartbeats(self, partition: int) -> list[Summary]:
        """An input partition's waiting summaries, and a heartbeat for each model version it has seen that has
        none among them (every detection stage it feeds learns how far it has come); call with the lock held."""
        out = self._outgoing.pop(partition, [])
        self.schedule.summaries_sent(partition)
        engine = self.engines.get(partition)
        if out and engine is not None:
            out += engine.profile.heartbeats(besides=out)
        return out

    def publish_views(self, *, force: bool = False, tasks: Collection[Task] = ()) -> None:
        """Rebuild the views of the engines that changed and publish them with one reference assignment.

        Called by the loop thread between batches. While it is busy, every changed engine at most every
        ``http.view_interval_s``; ``tasks`` now (those whose offsets are about to be committed or whose alerts
        published, so what is committed and alerted on is visible); ``force``: every changed engine now (a poll
        came back empty, partitions were assigned).
        """
        now = time.monotonic()
        every = force or now - self._views_at >= self.config.http.view_interval_s
        todo = set(self._stale) if every else self._stale & set(tasks)
        if not todo:
            return
        started = time.perf_counter()
        with self.lock:
            old, old_detect = self.views, self.detect_views
            self.views = {
                p: build_view(e) if (PROFILE, p) in todo or p not in old else old[p] for p, e in self.engines.items()
            }
            self.detect_views = {
                d: build_view(s.engine) if (DETECT, d) in todo or d not in old_detect else old_detect[d]
                for d, s in self.detectors.items()
            }
            self.merges = {d: m for d, m in self._merge_stats.items() if d in self.detectors}
            self._stale -= todo
        if every:
            self._views_at = now
        self.stats.views_published += 1
        self.stats.view_seconds = time.perf_counter() - started

    def all_views(self) -> list[EngineView]:
        """Every published view: the profile stages' (joins, rejects) and the detection stages' (streams, alerts)."""
        return [*self.views.values(), *self.detect_views.values()]

    def _checkpoint(
        self, tasks: set[Task], outbox: dict[Task, list[Alert]], stop: threading.Event | None = None
    ) -> None:
        """Steps 3 to 6: the tasks' snapshots (with their outboxes) taken under the lock, then written, published
        and committed in :func:`~monitor.io.checkpoint.write_in_order`'s order."""
        assert self.sink is not None
        k = self.config.kafka
        if self.store is None or self.detect_store is None:
            with self.lock:
                waiting = {p: self._with_heartbeats(p) for role, p in tasks if role == PROFILE}
            self._publish(outbox, stop, waiting)
            return
        started, cpu_started = time.perf_counter(), time.thread_time()
        steps = dict.fromkeys(("snapshot", "dumps", "write", "flush", "alerts", "commit"), 0.0)
        offsets: dict[tuple[str, int], int] = {}
        payloads: dict[Task, RecordParts] = {}
        sending: dict[int, list[Summary]] = {}
        with self.lock:
            for task in sorted(tasks):
                role, p = task
                t = task_started = time.perf_counter()
                if role == PROFILE:
                    engine = self.engines.get(p)
                    if engine is None:
                        continue
                    covered = {
                        "predictions": self._next.get((k.predictions_topic, p)),
                        "labels": self._next.get((k.labels_topic, p)),
                    }
                    out = sending[p] = self._with_heartbeats(p)  # heartbeats move the sequence: before the snapshot
                    state = engine.snapshot()
                    alerts: list[dict[str, Any]] = []
                    extra = [s.to_stored() for s in out]
                    inputs: tuple[tuple[str, str], ...] = (
                        (k.predictions_topic, "predictions"),
                        (k.labels_topic, "labels"),
                    )
                else:
                    stage = self.detectors.get(p)
                    if stage is None:
                        continue
                    covered = {"summaries": self._next.get((self.config.summaries_topic, p))}
                    resume = stage.resume_offset()  # the summaries it holds stay on the topic, out of the snapshot
                    if resume is not None and covered["summaries"] is not None:
                        covered["summaries"] = min(resume, covered["summaries"])
                    state = stage.snapshot()
                    alerts = [a.to_dict() for a in outbox.get(task, [])]
                    extra = []
                    inputs = ((self.config.summaries_topic, "summaries"),)
                steps["snapshot"] += time.perf_counter() - t
                t = time.perf_counter()
                payloads[task] = record_parts(self._source(role), covered, state, alerts, time.time(), extra)
                steps["dumps"] += time.perf_counter() - t
                for topic, name in inputs:
                    if covered[name] is not None:
                        offsets[topic, p] = int(covered[name])  # type: ignore[arg-type]
                self.schedule.checkpointed(task, time.perf_counter() - task_started, time.monotonic())
        size = sum(len(v) for v in payloads.values())
        sink, consumer = self.sink, self.consumer

        def publish() -> None:
            self._publish(outbox, stop, sending, flush=False)  # acknowledged before the next snapshot is written

        def commit() -> None:
            if not sink.transactional:
                self._commit(offsets)
            elif consumer is not None:  # exactly-once: the offsets commit in the same transaction
                todo = [TopicPartition(topic, p, off) for (topic, p), off in offsets.items()]
                sink.commit(todo, consumer.consumer_group_metadata())
                for tp in todo:
                    self._committed[tp.topic, tp.partition] = tp.offset

        stores = {PROFILE: self.store, DETECT: self.detect_store}
        has_alerts = any(outbox.values())
        self._checkpoint_sent = []  # taken by this replica's detection stages only once the checkpoint is complete
        try:
            steps |= write_in_order(
                sink, stores, payloads, publish=publish, commit=commit, faults=self._faults, has_alerts=has_alerts,
                stop=stop,
            )  # fmt: skip
            self._sent_here += self._checkpoint_sent  # (with transactions: committed)
        finally:
            self._checkpoint_sent = None
        self._checkpoint_done(started, cpu_started, size, sorted(payloads), steps)

    def _store_of(self, role: str) -> CheckpointStore | None:
        """Where a stage's snapshots go: the profile stages' state topic or the detection stages'."""
        return self.store if role == PROFILE else self.detect_store

    def _checkpoint_done(
        self, started: float, cpu_started: float, size: int, tasks: list[Task], steps: dict[str, float]
    ) -> None:
        for role, p in tasks:  # acknowledged: the pieces of these snapshots are held
            store = self._store_of(role)
            if store is not None:
                store.confirm(p)
        took = time.perf_counter() - started
        cpu = time.thread_time() - cpu_started  # this thread's CPU: what is left when the machine is not shared
        self.stats.checkpoints += 1
        self.stats.checkpoint_seconds = took
        self.stats.checkpoint_cpu_seconds_max = max(self.stats.checkpoint_cpu_seconds_max, cpu)
        self.stats.checkpoint_seconds_total += took
        self.stats.checkpoint_wait_seconds_total += max(0.0, took - cpu)
        if took > self.stats.checkpoint_seconds_max:
            self.stats.longest_checkpoint = {
                "seconds": took,
                "thread_cpu": cpu,
                "bytes": size,
                "partitions": [f"{role} {p}" for role, p in tasks],
                **steps,
            }
        self.stats.checkpoint_seconds_max = max(self.stats.checkpoint_seconds_max, took)
        self.stats.last_checkpoint_bytes = size

    def _send_summary(self, summary: Summary) -> None:
        """Produce one summary to the summaries partition of its model's shard (every version in one place)."""
        assert self.sink is not None
        key = summary.model.encode()
        partition = summaries_partition(summary.model, self.summary_partitions, summary.shard, summary.shards)
        value = summary.encode()
        if len(value) > self.sink.max_message_bytes:  # summaries are cut to about half a megabyte: a freak row
            self.stats.summaries_oversize += 1
            log.error(
                "a summary of %s %s (%d rows) is %d bytes, over the producer's message.max.bytes: not sent",
                summary.model, summary.version, len(summary), len(value),
            )  # fmt: skip
            return
        self.sink.summary(self.config.summaries_topic, partition, key, value)
        self.stats.summaries_produced += 1
        if partition in self.detectors:  # read back by this replica: handed over, not decoded (core/handoff.py)
            self.handoff.keep(summary)
            if not summary.waiting:  # (a note is no state: it goes the usual way)
                sent = self._sent_here if self._checkpoint_sent is None else self._checkpoint_sent
                sent.append((partition, summary))

    def _forget_sent(self) -> None:
        """The partitions read changed: what was sent before goes the usual way (read back, a repeat dropped)."""
        self._sent_here.clear()
        self._taken_as_sent.clear()

    def _take_sent(self) -> bool:
        """This replica's own detection stages take the summaries just sent to them, instead of when they read
        them back (through the broker and the next polls: a few tenths of a second of every alert's latency on
        one replica). They are sent once their profile stage's snapshot, whose outbox holds them, is durable
        (with transactions, committed), so they are on the topic or will be again; they count as on their way
        (:data:`~monitor.core.summary.ON_ITS_WAY`) until read back, when only their offset is learned.

        Which a stage may take: :class:`~monitor.core.handoff.TakenAsSent` (only after it took the last one
        this replica sent it from the same source). Whether any was taken."""
        sent, self._sent_here = self._sent_here, []
        if not sent:
            return False
        taken = False
        with self.lock:
            for d, summary in sent:
                stage = self.detectors.get(d)
                last = None if stage is None else stage.last_seq.get(summary.source)
                if not self._taken_as_sent.may_take(d, source=summary.source, seq=summary.seq, last_taken=last):
                    continue
                assert stage is not None  # (a stage that took none never matches)
                summary.offset = ON_ITS_WAY
                if stage.add(summary):
                    self._taken_as_sent.taken(d, source=summary.source, seq=summary.seq)
                    self.stats.summaries_taken_at_once += 1
                    self._stale.add((DETECT, d))
                    taken = True
        return taken

    def _publish(
        self,
        outbox: dict[Task, list[Alert]],
        stop: threading.Event | None,
        summaries: dict[int, list[Summary]] | None = None,
        *,
        flush: bool = True,
    ) -> None:
        assert self.sink is not None
        now = time.monotonic()
        for p, out in (summaries or {}).items():
            for summary in out:
                self._send_summary(summary)
            if out:
                self.schedule.sent_at[p] = now
        for alerts in outbox.values():
            for alert in alerts:
                self.sink.alert(alert)
                if self.on_alert is not None:
                    self.on_alert(alert)
        if flush:
            self.sink.flush(stop)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if self.consumer is None:
            return
        todo = [
            TopicPartition(topic, partition, off)
            for (topic, partition), off in offsets.items()
            if off > self._committed.get((topic, partition), -1)  # never move an offset backwards
        ]
        if not todo:
            return
        try:
            self.consumer.commit(offsets=todo, asynchronous=False)
        except KafkaException as exc:
            # A rebalance can revoke a partition between processing and commit, and a broker outage
            # fails commits for a while: the snapshot holds the offsets, so a later commit catches up.
            err = exc.args[0]
            if err.fatal():
                raise translate(err, "committing offsets") from None
            log.warning("commit deferred: %s", err.str())
            return
        for tp in todo:
            self._committed[tp.topic, tp.partition] = tp.offset

    def _update_lag(self, groups: dict[tuple[str, int], list[Message]]) -> None:
        assert self.consumer is not None
        for (topic, partition), group in groups.items():
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.lag[topic, partition] = max(0, high - (int(group[-1].offset() or 0) + 1))

    def close(self, stop: threading.Event | None = None, *, checkpoint: bool = True) -> None:
        """Checkpoint every owned task (sending what is waiting), flush, commit, leave the group."""
        self._closing = True
        if checkpoint:  # never after an exception mid-batch: a view must not show half a batch
            self.publish_views(force=True)
        tasks = set(self._tasks())
        settle = checkpoint  # the last checkpoint's summaries and alerts (and dead letters) acknowledged
        if checkpoint and self.sink is not None and self.consumer is not None and tasks:
            try:
                self._checkpoint(tasks, {}, stop)
            except (SourceError, SinkError, KafkaException) as exc:
                log.error("final checkpoint failed: %s", exc)
                settle = False  # the broker did not answer: the next owner publishes the outbox again
        if settle and self.sink is not None:
            try:
                self.sink.flush(stop)
            except (SinkError, KafkaException) as exc:
                log.error("flushing at close failed (the next owner publishes the outbox again): %s", exc)
        if self.audit is not None:
            with self.lock:
                if checkpoint:  # the last interval, up to now, is covered too
                    self.audit.tick(self.engines, self.lag, self.partitions, force=True)
            self.audit.close()
            self.audit = None
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
