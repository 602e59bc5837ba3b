"""The Kafka edge: a consumer-group member feeding one engine per partition, and the alert / DLQ producer.

Commit order for every micro-batch (at-least-once, never "commit then hope"):

1. consume up to ``batch_max_messages`` messages or ``batch_max_ms``;
2. run each partition's messages through its engine (state changes in memory);
3. produce alert events and dead-letter copies;
4. flush the producer until every message is acknowledged (``acks=all``), re-producing failures;
5. only then commit the next offsets, synchronously, never moving an offset backwards.

A crash between 2 and 5 replays the batch: alerts may appear again, with the same ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from monitor.config import MonitorConfig
from monitor.core.engine import PartitionEngine
from monitor.core.events import Rejected
from monitor.core.rules import Alert
from monitor.errors import SinkError, SourceError

log = logging.getLogger(__name__)

DLQ_REASON = "monitor.reason"
DLQ_DETAIL = "monitor.detail"
DLQ_TOPIC = "monitor.source.topic"
DLQ_PARTITION = "monitor.source.partition"
DLQ_OFFSET = "monitor.source.offset"


def client_config(config: MonitorConfig) -> dict[str, Any]:
    """Settings shared by every client: bootstrap servers plus pass-through properties (TLS, SASL...)."""
    if not config.kafka.bootstrap_servers:
        raise SourceError("kafka.bootstrap_servers is empty: set it in the config or MONITOR_KAFKA__BOOTSTRAP_SERVERS")
    return {"bootstrap.servers": config.kafka.bootstrap_servers, **config.kafka.properties}


def translate(err: KafkaError, what: str) -> SourceError:
    """A Kafka error as our own, keeping whether it is retriable or fatal."""
    return SourceError(f"{what}: {err.str()}", retriable=err.retriable(), fatal=err.fatal())


def ensure_topics(admin: AdminClient, topics: dict[str, int], config: dict[str, dict[str, str]] | None = None) -> None:
    """Create the topics that do not exist yet (demo and tests; production creates them up front)."""
    existing = admin.list_topics(timeout=10).topics
    new = [NewTopic(t, n, config=(config or {}).get(t, {})) for t, n in topics.items() if t not in existing]
    if not new:
        return
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise translate(exc.args[0], f"creating topic {topic}") from None


class AlertSink:
    """Produces alert events and dead-letter copies; :meth:`flush` returns only once all are acknowledged."""

    def __init__(self, producer_config: dict[str, Any], alerts_topic: str, dlq_topic: str, timeout_s: float) -> None:
        conf = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, **producer_config}
        self.producer = Producer(conf)
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self.timeout_s = timeout_s
        self._failed: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = []

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        record = (topic, key, value, headers)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                log.warning("delivery to %s failed: %s; will retry", topic, err.str())
                self._failed.append(record)

        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: back-pressure, wait for deliveries
                self.producer.poll(0.1)

    def alert(self, alert: Alert) -> None:
        self._produce(self.alerts_topic, alert.key.encode(), orjson.dumps(alert.to_dict()))

    def dead_letter(self, msg: Message, rejected: Rejected) -> None:
        headers = list(msg.headers() or [])
        headers += [
            (DLQ_REASON, rejected.reason.encode()),
            (DLQ_DETAIL, rejected.detail.encode()),
            (DLQ_TOPIC, str(msg.topic()).encode()),
            (DLQ_PARTITION, str(msg.partition()).encode()),
            (DLQ_OFFSET, str(msg.offset()).encode()),
        ]
        self._produce(self.dlq_topic, msg.key(), msg.value(), headers)

    def flush(self, stop: threading.Event | None = None) -> None:
        """Wait until everything produced is acknowledged; re-produce what failed, with backoff."""
        backoff = 0.5
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = self.producer.flush(max(0.1, deadline - time.monotonic()))
            if remaining == 0 and not self._failed:
                return
            if stop is not None and stop.is_set() and time.monotonic() > deadline:
                raise SinkError(f"{remaining + len(self._failed)} alert/DLQ messages not acknowledged at shutdown")
            failed, self._failed = self._failed, []
            if failed:
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                for topic, key, value, headers in failed:
                    self._produce(topic, key, value, headers)
            if time.monotonic() > deadline:
                log.warning("alerts not acknowledged after %.0f s; still retrying", self.timeout_s)
                deadline = time.monotonic() + self.timeout_s


@dataclass
class LoopStats:
    """Counters of the consume loop itself, read by the exporter."""

    batches: int = 0
    last_batch_seconds: float = 0.0
    last_poll_wall: float = 0.0
    broker_ok: bool = False


class MonitorService:
    """Consumer-group member owning one :class:`PartitionEngine` per assigned predictions partition.

    Labels on partition *p* go to the engine of predictions partition *p*: the topics must be
    co-partitioned (same partition count, same key), which :meth:`check_topics` enforces at start.
    """

    def __init__(
        self,
        config: MonitorConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[Alert], None] | None = None,
        observe_batch: Callable[[float, int], None] | None = None,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_alert = on_alert
        self.observe_batch = observe_batch
        self.engines: dict[int, PartitionEngine] = {}
        self.lock = threading.RLock()
        self.stats = LoopStats()
        self.lag: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._labels_enabled = True
        self.partitions = 1
        self._consumer_overrides = consumer_overrides or {}
        self.consumer: Consumer | None = None
        self.sink: AlertSink | None = None

    # ----------------------------------------------------------------- startup
    def check_topics(self, admin: AdminClient, wait_s: float = 30.0) -> None:
        """Predictions must exist; labels, when present, must have the same partition count."""
        k = self.config.kafka
        deadline = time.monotonic() + wait_s
        while True:
            try:
                topics = admin.list_topics(timeout=5).topics
            except KafkaException as exc:
                topics = {}
                if time.monotonic() > deadline:
                    raise translate(exc.args[0], "listing topics") from None
            if k.predictions_topic in topics or time.monotonic() > deadline:
                break
            log.info("waiting for topic %s to exist", k.predictions_topic)
            time.sleep(1.0)
        if k.predictions_topic not in topics:
            raise SourceError(f"predictions topic {k.predictions_topic!r} does not exist on the broker", fatal=True)
        n_pred = self.partitions = len(topics[k.predictions_topic].partitions)
        if k.labels_topic not in topics:
            log.warning("labels topic %r not found: monitoring predictions only", k.labels_topic)
            self._labels_enabled = False
            return
        n_lab = len(topics[k.labels_topic].partitions)
        if n_lab != n_pred:
            raise SourceError(
                f"topics are not co-partitioned: {k.predictions_topic!r} has {n_pred} partitions and "
                f"{k.labels_topic!r} has {n_lab}; give both the same count and key both by prediction_id",
                fatal=True,
            )

    def _consumer_config(self) -> dict[str, Any]:
        k = self.config.kafka
        return {
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
        if err.fatal():
            log.error("fatal Kafka error: %s", err.str())
        else:
            log.info("Kafka: %s", err.str())

    # ------------------------------------------------------------- rebalances
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self.lock:
            for tp in partitions:
                if tp.topic == self.config.kafka.predictions_topic and tp.partition not in self.engines:
                    self.engines[tp.partition] = PartitionEngine(
                        self.config, partition=tp.partition, partitions=self.partitions, clock=self.clock
                    )
            self.stats.broker_ok = True
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every batch is committed before the next poll, so nothing processed is uncommitted here.
        with self.lock:
            for tp in partitions:
                if tp.topic == self.config.kafka.predictions_topic:
                    self.engines.pop(tp.partition, None)
                self.lag.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost (session expired): %s", [(tp.topic, tp.partition) for tp in partitions])
        self._on_revoke(consumer, partitions)

    # -------------------------------------------------------------------- loop
    def ready(self) -> bool:
        return bool(self.engines) and self.stats.broker_ok

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then flush, commit and close."""
        k = self.config.kafka
        admin = AdminClient(client_config(self.config))
        self.check_topics(admin)
        self.sink = AlertSink(client_config(self.config), k.alerts_topic, k.dlq_topic, k.produce_timeout_s)
        self.consumer = consumer = Consumer(self._consumer_config())
        topics = [k.predictions_topic] + ([k.labels_topic] if self._labels_enabled else [])
        consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        last_health = time.monotonic()
        try:
            while not stop.is_set():
                messages = consumer.consume(k.batch_max_messages, k.batch_max_ms / 1000)
                self.stats.last_poll_wall = time.time()
                if messages:
                    self.process(messages, stop)
                elif time.monotonic() - last_health > 5.0:
                    last_health = time.monotonic()
                    self._check_broker(consumer)
        finally:
            self.close(stop)

    def _check_broker(self, consumer: Consumer) -> None:
        try:
            consumer.list_topics(self.config.kafka.predictions_topic, timeout=2)
            self.stats.broker_ok = True
        except KafkaException:
            self.stats.broker_ok = False

    def process(self, messages: Sequence[Message], stop: threading.Event | None = None) -> None:
        """Steps 2 to 5 of the commit order for one micro-batch."""
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
        n = 0
        with self.lock:
            for (topic, partition), group in groups.items():
                engine = self.engines.get(partition)
                if engine is None:  # assigned a labels partition whose predictions partition is elsewhere
                    engine = self.engines[partition] = PartitionEngine(
                        self.config, partition=partition, clock=self.clock
                    )
                values = [m.value() for m in group]
                times = [m.timestamp()[1] / 1000.0 for m in group]
                if topic == k.predictions_topic:
                    result = engine.process_predictions(values, times)
                else:
                    result = engine.process_labels(values, times)
                n += len(group)
                for rejected in result.rejected:
                    self.sink.dead_letter(group[rejected.position], rejected)
                for alert in result.alerts:
                    self.sink.alert(alert)
                    if self.on_alert is not None:
                        self.on_alert(alert)
        self.sink.flush(stop)
        self._commit(groups)
        self.stats.broker_ok = True
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.perf_counter() - started
        if self.observe_batch is not None:
            self.observe_batch(self.stats.last_batch_seconds, n)
        self._update_lag(groups)

    def _commit(self, groups: dict[tuple[str, int], list[Message]]) -> None:
        assert self.consumer is not None
        offsets = []
        for (topic, partition), group in groups.items():
            nxt = max(int(m.offset() or 0) for m in group) + 1
            if nxt > self._committed.get((topic, partition), -1):  # never move an offset backwards
                offsets.append(TopicPartition(topic, partition, nxt))
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance can revoke a partition between processing and commit; the new owner
            # replays from the last commit (at-least-once). Anything else is worth raising.
            err = exc.args[0]
            if err.code() in (
                KafkaError.REBALANCE_IN_PROGRESS,
                KafkaError.ILLEGAL_GENERATION,
                KafkaError.UNKNOWN_MEMBER_ID,
            ):
                log.warning("commit skipped during rebalance: %s", err.str())
                return
            raise translate(err, "committing offsets") from None
        for tp in offsets:
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

    def close(self, stop: threading.Event | None = None) -> None:
        """Flush what is produced, commit, leave the group."""
        if self.sink is not None:
            try:
                self.sink.flush(stop)
            except SinkError as exc:
                log.error("%s", exc)
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
