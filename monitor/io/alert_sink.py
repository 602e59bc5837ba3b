"""The producer of what the monitor publishes: alert events, dead-letter copies of rejected messages (with
their reason in headers), summaries and notes; a flush returns only once the broker acknowledged all of it."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from monitor.core.events import Rejected
from monitor.core.rules import Alert
from monitor.errors import SinkError
from monitor.io.kafka_clients import translate

log = logging.getLogger("monitor.io.kafka")  # the Kafka edge's logger, as before these left kafka.py


DLQ_REASON = "monitor.reason"
DLQ_DETAIL = "monitor.detail"
DLQ_TOPIC = "monitor.source.topic"
DLQ_PARTITION = "monitor.source.partition"
DLQ_OFFSET = "monitor.source.offset"
DLQ_ORIGINAL_SIZE = "monitor.original.size"


class AlertSink:
    """Produces alert events and dead-letter copies; :meth:`flush` returns only once all are acknowledged."""

    def __init__(
        self,
        producer_config: dict[str, Any],
        alerts_topic: str,
        dlq_topic: str,
        timeout_s: float,
        transactional_id: str = "",
    ) -> None:
        # lz4: snapshot chunks go uncompressed and are compressed here, in librdkafka's threads, not the loop's
        conf = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4", **producer_config}
        if transactional_id:
            conf["transactional.id"] = transactional_id
        self._conf = conf
        self.producer = Producer(conf)
        self.renewals = 0  # producers replaced after a fatal idempotence error
        self.transactional = bool(transactional_id)
        self._in_txn = False
        if self.transactional:
            try:
                self.producer.init_transactions(timeout_s)
            except KafkaException as exc:
                raise translate(exc.args[0], "initialising transactions") from None
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self.timeout_s = timeout_s
        # librdkafka refuses messages over message.max.bytes (default 1,000,000); keep headroom for headers
        self.dlq_max_bytes = int(conf.get("message.max.bytes", 1_000_000)) - 64_000
        self.max_message_bytes = self.dlq_max_bytes
        self._failed: list[tuple[str, bytes | None, bytes | None, Any, int | None]] = []  # re-produced by flush
        # since the last flush (or transaction): a producer that fails for good hands them to a new one
        self._unacked: list[tuple[str, bytes | None, bytes | None, Any, int | None]] = []

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, partition: int | None = None
    ) -> None:
        record = (topic, key, value, headers, partition)
        producer = self.producer

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None and producer is self.producer:  # a replaced producer's messages are re-produced
                log.warning("delivery to %s failed: %s; will retry", topic, err.str())
                self._failed.append(record)

        self.begin()
        self._unacked.append(record)
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                else:
                    self.producer.produce(
                        topic, value=value, key=key, headers=headers, partition=partition, on_delivery=on_delivery
                    )
                return
            except BufferError:  # local queue full: back-pressure, wait for deliveries
                self.producer.poll(0.1)

    def _renew(self, exc: Exception) -> None:
        """After a fatal error of the idempotent producer (a broker that lost its producer state, e.g. restarted
        without its data), a new producer takes over and everything not yet acknowledged is produced again:
        at least once, as exact copies. Transactions cannot go on this way: the error is raised."""
        if self.transactional:
            raise SinkError(f"producing: {exc}") from None
        cause = exc.__cause__ or exc
        log.warning("producer failed for good (%s); a new one re-sends %d messages", cause, len(self._unacked))
        with contextlib.suppress(KafkaException, SystemError, RuntimeError):  # it is dropped either way
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.producer = Producer(self._conf)
        self.renewals += 1
        records, self._unacked, self._failed = self._unacked, [], []
        for topic, key, value, headers, partition in records:
            self._produce(topic, key, value, headers, partition)

    def begin(self) -> None:
        """Open a transaction if this sink is transactional and none is open (idempotent)."""
        if self.transactional and not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Put the consumer offsets in the open transaction and commit it: snapshots, dead letters, alerts
        and offsets become visible together, or not at all."""
        self.begin()
        try:
            self.producer.send_offsets_to_transaction(offsets, group_metadata, self.timeout_s)
            self.producer.commit_transaction(self.timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                self.producer.abort_transaction(self.timeout_s)
            self._in_txn = False
            self._unacked, self._failed = [], []  # failed: the replica starts again from its last checkpoint
            raise translate(err, "committing the checkpoint transaction") from None
        self._in_txn = False
        # committed: everything in the transaction is on its topics (no flush comes in transactional mode, so
        # the records would otherwise be held for good: every summary of every partition, hundreds of MB an hour)
        self._unacked, self._failed = [], []

    def summary(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """A summary for the detection stage of ``partition`` (chosen by the caller: the model version's)."""
        self._produce(topic, key, value, None, partition)

    def alert(self, alert: Alert | dict[str, Any]) -> None:
        data = alert.to_dict() if isinstance(alert, Alert) else alert
        self._produce(self.alerts_topic, str(data["key"]).encode(), orjson.dumps(data))

    def dead_letter(self, msg: Message, rejected: Rejected) -> None:
        """The original bytes and key with the reason in headers; a value too large for the producer is
        replaced by an empty one and ``monitor.original.size`` says how large it was."""
        value = msg.value()
        headers = list(msg.headers() or [])
        if value is not None and len(value) > self.dlq_max_bytes:
            headers.append((DLQ_ORIGINAL_SIZE, str(len(value)).encode()))
            value = None
        headers += [
            (DLQ_REASON, rejected.reason.encode()),
            (DLQ_DETAIL, rejected.detail.encode()),
            (DLQ_TOPIC, str(msg.topic()).encode()),
            (DLQ_PARTITION, str(msg.partition()).encode()),
            (DLQ_OFFSET, str(msg.offset()).encode()),
        ]
        self._produce(self.dlq_topic, msg.key(), value, headers)

    def retry(self) -> None:
        """Serve delivery reports and produce again what failed, without waiting: what a checkpoint published is
        retried while no checkpoint falls due (no input). :meth:`flush` still waits for it before the next
        snapshot. In a transaction the commit waits for everything."""
        if self.transactional:
            return
        try:
            self.producer.poll(0)
        except (KafkaException, SystemError) as exc:  # a fatal error, as flush meets it
            self._renew(exc)
            return
        self._produce_failed()

    def _produce_failed(self) -> None:
        """Produce again what the broker did not take (delivery reports put it in ``_failed``)."""
        failed, self._failed = self._failed, []
        for topic, key, value, headers, partition in failed:
            self._produce(topic, key, value, headers, partition)

    def flush(self, stop: threading.Event | None = None) -> None:
        """Wait until everything produced is acknowledged; re-produce what failed, with backoff."""
        backoff = 0.5
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                remaining = self.producer.flush(max(0.1, deadline - time.monotonic()))
            except (KafkaException, SystemError) as exc:
                # flush raises only for a fatal error; confluent-kafka then reports it as a SystemError when a
                # delivery callback runs while the error is pending
                self._renew(exc)
                continue
            if remaining == 0 and not self._failed:
                self._unacked = []
                return
            if stop is not None and stop.is_set() and time.monotonic() > deadline:
                raise SinkError(f"{remaining + len(self._failed)} alert/DLQ messages not acknowledged at shutdown")
            if self._failed:
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._produce_failed()
            if time.monotonic() > deadline:
                log.warning("alerts not acknowledged after %.0f s; still retrying", self.timeout_s)
                deadline = time.monotonic() + self.timeout_s
