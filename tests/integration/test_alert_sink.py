"""The alert sink on a real broker: what it holds for re-sending stays bounded with transactions on."""

from __future__ import annotations

import uuid

import orjson
from confluent_kafka import Consumer, TopicPartition

from monitor.io.alert_sink import AlertSink
from tests.integration.conftest import read_to_end


def test_a_committed_transaction_lets_go_of_its_records(broker, topics):
    """With transactions no flush comes between checkpoints, so the commit must let the records go: held
    until a flush, every summary a replica sent stayed in memory for as long as it ran."""
    names = topics(partitions=1)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    sink = AlertSink({"bootstrap.servers": broker.bootstrap}, names["alerts"], names["dlq"], 30.0, f"tx-{group}")
    try:
        for checkpoint in range(3):
            for i in range(50):
                sink.alert({"key": f"k{checkpoint}-{i}", "status": "firing"})
            assert len(sink._unacked) == 50
            sink.commit(
                [TopicPartition(names["predictions"], 0, 50 * (checkpoint + 1))], consumer.consumer_group_metadata()
            )
            assert sink._unacked == [] and sink._failed == []
        keys = [orjson.loads(m.value())["key"] for m in read_to_end(broker.bootstrap, names["alerts"])]
        assert len(keys) == 150 and keys[-1] == "k2-49"  # committed, so a read-committed reader sees them all
    finally:
        consumer.close()
