"""Notes on a real broker: an input partition that has input waiting (the consumer has seen messages the
replica has not processed) tells the detection stages so, at most every ``detection.summary_interval_s``;
a caught-up one says nothing."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from monitor.core.profile import Summary
from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka import AlertSink, MonitorService, client_config, ensure_topics

from .conftest import config_for, produce, read_to_end


def _event(i: int) -> bytes:
    return orjson.dumps(
        {"prediction_id": f"p{i}", "model": "m", "timestamp": 1.7e9 + i, "features": {"x": i / 7}, "prediction": 0.5}
    )


def test_a_partition_with_input_waiting_sends_notes_and_a_caught_up_one_none(
    broker: EmbeddedBroker, topics: Callable[..., dict[str, str]]
) -> None:
    names = topics(partitions=1)
    config = config_for(broker, names, detection={"summary_interval_s": 60.0})
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
        service.send_notes()
        service.send_notes()  # within summary_interval_s of the first: none
        service.sink.flush()
        sent = [Summary.decode(m.value()) for m in read_to_end(broker.bootstrap, config.summaries_topic)]
        assert [(s.model, s.source, s.seq, s.waiting, len(s)) for s in sent] == [("m", 0, -1, True, 0)]
        assert service.stats.notes_sent == 1 and service.stats.summaries_produced == 1
        rest: list = []
        while len(rest) < 40:  # everything read and processed: caught up, nothing waiting
            rest += [m for m in consumer.consume(40 - len(rest), 5.0) if m.error() is None]
        service._next[k.predictions_topic, 0] = rest[-1].offset() + 1
        service._sent_at.clear()  # the interval over
        service.send_notes()
        service.sink.flush()
        assert len(read_to_end(broker.bootstrap, config.summaries_topic)) == 1
    finally:
        consumer.close()
