"""Notes on a real broker: an input partition whose rows are on their way (the consumer has seen messages the
replica has not processed while it reads the partition, or its summaries wait for their checkpoint) tells the
detection stages so, at most every ``detection.summary_interval_s``; a caught-up one says nothing, nor does a
stuck one (input waiting, its position still for ``detection.idle_s``), nor one with transactions."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from monitor.core.summary import Summary
from monitor.io.alert_sink import AlertSink
from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka import MonitorService
from monitor.io.kafka_clients import client_config, ensure_topics

from .conftest import config_for, produce, read_to_end


def _event(i: int) -> bytes:
    return orjson.dumps(
        {"prediction_id": f"p{i}", "model": "m", "timestamp": 1.7e9 + i, "features": {"x": i / 7}, "prediction": 0.5}
    )


def test_a_partition_with_input_waiting_sends_notes_and_a_caught_up_one_none(
    broker: EmbeddedBroker, topics: Callable[..., dict[str, str]]
) -> None:
    names = topics(partitions=1)
    config = config_for(broker, names, detection={"summary_interval_s": 60.0, "idle_s": 120.0})
    ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {config.summaries_topic: 1})
    produce(broker.bootstrap, names["predictions"], [(None, _event(i)) for i in range(50)])
    service = MonitorService(config)
    clients = client_config(config)
    k = config.kafka
    service.sink = AlertSink(clients, k.alerts_topic, k.dlq_topic, k.produce_timeout_s)
    service.consumer = consumer = Consumer({**clients, "group.id": k.group_id, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(k.predictions_topic, 0, 0), TopicPartition(k.labels_topic, 0, 0)])
        first: list = []
        while len(first) < 10:  # a first part read: the consumer has fetched further (its high watermark)
            first += [m for m in consumer.consume(10 - len(first), 5.0) if m.error() is None]
        engine = service.engines[0] = service._new_engine(0)
        engine.process_predictions([m.value() for m in first], [0.0] * len(first))
        service._next[k.predictions_topic, 0] = first[-1].offset() + 1
        service.schedule.moved_at[0] = time.monotonic()  # as process() marks it: the partition is being read
        service.send_notes()
        service.send_notes()  # within summary_interval_s of the first: none
        service.sink.flush()
        sent = [Summary.decode(m.value()) for m in read_to_end(broker.bootstrap, config.summaries_topic)]
        assert [(s.model, s.source, s.seq, s.waiting, len(s)) for s in sent] == [("m", 0, -1, True, 0)]
        assert service.stats.notes_sent == 1 and service.stats.summaries_produced == 1
        # stuck: input waiting, but its position has not moved for idle_s (an upstream transaction left open)
        service.schedule.moved_at[0] = time.monotonic() - config.detection.idle_s - 1.0
        service.schedule.sent_at.clear()
        service.send_notes()
        assert service.stats.notes_sent == 1
        service._backlog = True  # unless this replica reads nothing because it works off a release backlog
        service.send_notes()
        assert service.stats.notes_sent == 2
        service._backlog = False
        service.schedule.sent_at.clear()
        service._outgoing[0] = [engine.profile.heartbeats()[0]]  # summaries waiting for their checkpoint
        service.schedule.summaries_waiting(0, time.monotonic())
        service.send_notes()
        assert service.stats.notes_sent == 2  # the partition has sent nothing yet: its first send is expected
        service.schedule.sent_at[0] = time.monotonic() - 61.0  # it sent, longer than the interval ago: a note
        service.send_notes()
        assert service.stats.notes_sent == 3
        service._outgoing.clear()
        service.schedule.waiting_since.clear()
        rest: list = []
        while len(rest) < 40:  # everything read and processed: caught up, nothing waiting
            rest += [m for m in consumer.consume(40 - len(rest), 5.0) if m.error() is None]
        service._next[k.predictions_topic, 0] = rest[-1].offset() + 1
        service.schedule.moved_at[0] = time.monotonic()
        service.schedule.sent_at.clear()  # the interval over
        service.send_notes()
        service.sink.flush()
        assert [Summary.decode(m.value()).waiting for m in read_to_end(broker.bootstrap, config.summaries_topic)] == [
            True, True, True
        ]  # fmt: skip
        assert service.stats.notes_sent == 3
    finally:
        consumer.close()


def test_no_notes_go_with_transactions(broker: EmbeddedBroker, topics: Callable[..., dict[str, str]]) -> None:
    """A note would wait in the open transaction until the next commit, holding every reader meanwhile."""
    names = topics(partitions=1)
    config = config_for(broker, names)
    produce(broker.bootstrap, names["predictions"], [(None, _event(i)) for i in range(20)])
    service = MonitorService(config)
    clients = client_config(config)
    k = config.kafka
    service.sink = AlertSink(clients, k.alerts_topic, k.dlq_topic, k.produce_timeout_s, "notes-test")
    service.consumer = consumer = Consumer({**clients, "group.id": k.group_id, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(k.predictions_topic, 0, 0)])
        first: list = []
        while len(first) < 5:
            first += [m for m in consumer.consume(5 - len(first), 5.0) if m.error() is None]
        engine = service.engines[0] = service._new_engine(0)
        engine.process_predictions([m.value() for m in first], [0.0] * len(first))
        service._next[k.predictions_topic, 0] = first[-1].offset() + 1
        service.schedule.moved_at[0] = time.monotonic()
        assert service._input_waiting(0)
        service.send_notes()
        assert service.stats.notes_sent == 0 and not service.sink._in_txn
    finally:
        consumer.close()
