"""When the service checkpoints which partitions: due ones are spread over loop iterations, urgent ones never wait.

No broker: the service runs with stand-ins for the consumer, the alert sink and the snapshot store.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from monitor.config import load_config
from monitor.io import kafka
from monitor.io.kafka import MonitorService
from tests.unit.service_stand_ins import Message, QuietSink

PREDICTIONS = "predictions"


def P(partition: int) -> tuple[str, int]:
    """Input partition ``partition``'s task (its profile stage)."""
    return ("profile", partition)


GOOD = b'{"prediction_id":"%d","model":"m","features":{"x":1.0},"prediction":0.2}'


class _Consumer:
    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        pass

    def get_watermark_offsets(self, _tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, 0)

    def consumer_group_metadata(self) -> None:
        return None

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]  # nothing committed yet

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1) for tp in partitions]


class _Sink(QuietSink):
    def __init__(self, transactional: bool) -> None:
        self.transactional = transactional
        self.dead_letters: list[int] = []
        self.committed: list[list[tuple[str, int, int]]] = []  # offsets of each transaction

    def dead_letter(self, msg: Message, _rejected: object) -> None:
        self.dead_letters.append(msg.partition())

    def commit(self, offsets: list[TopicPartition], _meta: object) -> None:
        self.committed.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


class _Store:
    def __init__(self) -> None:
        self.failed: set[int] = set()
        self.written: list[int] = []

    def write(self, partition: int, _payload: bytes) -> None:
        self.written.append(partition)

    def read_latest(self, _partition: int) -> None:
        return None  # no snapshot yet: every partition starts empty

    def confirm(self, partition: int) -> None:
        pass

    def forget(self, partition: int) -> None:
        pass


def _service(partitions: int = 6, *, transactional: bool = False, every_s: float = 10.0) -> MonitorService:
    config = load_config(
        environ={},
        overrides={"kafka": {"predictions_topic": PREDICTIONS}, "checkpoint": {"every_s": every_s}},
    )
    service = MonitorService(config)
    service.sink, service.store, service.detect_store = _Sink(transactional), _Store(), _Store()  # type: ignore[assignment]
    service.consumer = _Consumer()  # type: ignore[assignment]
    service._labels_enabled = False
    service._on_assign(service.consumer, [TopicPartition(PREDICTIONS, p) for p in range(partitions)])  # type: ignore[arg-type]
    return service


def _written(service: MonitorService) -> list[int]:
    return service.store.written  # type: ignore[union-attr, return-value]


def _all_due(service: MonitorService, snapshot_bytes: int) -> None:
    """Every partition has new events, and its last checkpoint (of ``snapshot_bytes``) is overdue, partition 0
    the most."""
    now = time.monotonic()
    for p in service.engines:
        service._since_checkpoint[P(p)] = 1
        service._last_checkpoint[P(p)] = now - 100.0 + p
        service._snapshot_bytes[P(p)] = snapshot_bytes


def test_partitions_due_together_are_checkpointed_one_per_iteration_most_overdue_first() -> None:
    service = _service(6)
    _all_due(service, snapshot_bytes=3_000_000)  # each more than an iteration's byte budget
    for _ in range(6):
        service.idle(None)
    assert _written(service) == [0, 1, 2, 3, 4, 5]
    service.idle(None)
    assert _written(service) == [0, 1, 2, 3, 4, 5], "nothing is due any more"


def test_small_partitions_due_together_share_an_iteration_up_to_the_byte_budget() -> None:
    service = _service(6)
    _all_due(service, snapshot_bytes=kafka.DUE_BYTES_PER_ITERATION // 4)
    service.idle(None)
    assert sorted(_written(service)) == [0, 1, 2, 3]
    service.idle(None)
    assert sorted(_written(service)) == [0, 1, 2, 3, 4, 5]


def test_a_partition_never_written_counts_as_a_full_budget() -> None:
    service = _service(3)
    _all_due(service, snapshot_bytes=0)
    service._snapshot_bytes.clear()
    assert service._due_tasks() == {P(0)}


def test_urgent_partitions_do_not_starve_the_most_overdue_one() -> None:
    service = _service(6)
    _all_due(service, snapshot_bytes=3_000_000)
    # the urgent partitions fill the budget on their own; the most overdue of the others still goes with them
    assert service._due_tasks({P(0), P(1)}) == {P(2)}


def test_time_due_checkpoints_start_spread_over_every_s() -> None:
    every_s = 12.0
    before = time.monotonic()
    service = _service(6, every_s=every_s)
    due_in = sorted(service._last_checkpoint[P(p)] + every_s - before for p in range(6))
    assert due_in == pytest.approx([2.0, 4.0, 6.0, 8.0, 10.0, 12.0], abs=0.5)
    assert service._due_tasks() == set(), "nothing is due right after assignment"


@pytest.mark.parametrize("transactional", [False, True])
def test_dead_letters_in_a_transaction_are_committed_with_their_partitions_offsets(transactional: bool) -> None:
    service = _service(2, transactional=transactional)
    service.process(
        [Message(PREDICTIONS, 0, 0, GOOD % 1), Message(PREDICTIONS, 1, 0, GOOD % 2), Message(PREDICTIONS, 1, 1, b"{")]
    )  # type: ignore[list-item]
    sink: _Sink = service.sink  # type: ignore[assignment]
    assert sink.dead_letters == [1]
    if transactional:  # visible only together with the offsets that stop a replay from producing it again
        assert _written(service) == [1]
        assert sink.committed == [[(PREDICTIONS, 1, 2)]]
    else:  # at least once (exact copies): nothing is due yet, so no snapshot
        assert _written(service) == []
        assert sink.committed == []


def test_partitions_whose_summaries_waited_together_send_them_one_after_another() -> None:
    service = _service(4)
    now = time.monotonic()
    for p in service.engines:  # steady traffic: every partition's summaries started waiting a second ago
        service._outgoing_since[p] = now - 1.5 + p * 0.01
        service._snapshot_bytes[P(p)] = kafka.DUE_BYTES_PER_ITERATION // 2 + 1
    assert service._sending_due(set()) == {P(0)}
    service._snapshot_bytes.update({P(p): kafka.DUE_BYTES_PER_ITERATION // 4 for p in range(4)})
    assert service._sending_due(set()) == {P(0), P(1), P(2), P(3)}
    assert service._sending_due({P(0)}) == {P(1), P(2), P(3)}
    service._outgoing_since[3] = now  # waited less than detection.summary_interval_s: not yet, while catching up
    batch = service.config.kafka.batch_max_messages
    service.lag.update({(PREDICTIONS, 0): batch // 2, (service.config.kafka.labels_topic, 1): batch // 2})
    assert service._sending_due(set()) == {P(0), P(1), P(2)}
    # caught up (live: less than a poll's worth left to read, summaries not counted): it goes with those due,
    # the partitions send on one tick, so a detection stage's watermark does not wait for the one that sends last
    labels, summaries = service.config.kafka.labels_topic, service.config.summaries_topic
    service.lag.update({(labels, 1): batch // 2 - 1, (summaries, 0): 10 * batch})
    assert service._sending_due(set()) == {P(0), P(1), P(2), P(3)}
    assert service._sending_due({P(0)}) == {P(1), P(2), P(3)}
    for p in service.engines:  # none has waited the interval: none goes, caught up or not
        service._outgoing_since[p] = now - 0.1
    assert service._sending_due(set()) == set()
    service.lag[PREDICTIONS, 0] = batch
    assert service._sending_due(set()) == set()
