"""When the service checkpoints which partitions: due ones are spread over loop iterations, urgent ones never wait.

No broker: the service runs with stand-ins for the consumer, the alert sink and the snapshot store.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from monitor.config import load_config
from monitor.io import alert_sink, schedule
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


def _due_tasks(service: MonitorService, urgent: frozenset[tuple[str, int]] | set[tuple[str, int]] = frozenset()) -> set:
    return service.schedule.due(urgent, time.monotonic())


def _sending_due(service: MonitorService, urgent: set[tuple[str, int]]) -> set:
    """What the service's schedule sends now, caught up or not by the service's lag, as the loop asks it."""
    caught_up = schedule.caught_up(service.lag, service.config.summaries_topic)
    return service.schedule.sending_due(urgent, caught_up=caught_up, now=time.monotonic())


def _written(service: MonitorService) -> list[int]:
    return service.store.written  # type: ignore[union-attr, return-value]


def _all_due(service: MonitorService, cost_s: float) -> None:
    """Every partition has new events, and its last checkpoint (which took ``cost_s``) is overdue, partition 0
    the most."""
    now = time.monotonic()
    for p in service.engines:
        service.schedule.since[P(p)] = 1
        service.schedule.last[P(p)] = now - 100.0 + p
        service.schedule.cost_s[P(p)] = cost_s


def test_partitions_due_together_are_checkpointed_one_per_iteration_most_overdue_first() -> None:
    service = _service(6)
    _all_due(service, cost_s=0.6 * schedule.DUE_SECONDS_PER_ITERATION)  # each more than half an iteration's budget
    for _ in range(6):
        service.idle(None)
    assert _written(service) == [0, 1, 2, 3, 4, 5]
    service.idle(None)
    assert _written(service) == [0, 1, 2, 3, 4, 5], "nothing is due any more"


def test_small_partitions_due_together_share_an_iteration_up_to_the_budget() -> None:
    service = _service(6)
    _all_due(service, cost_s=schedule.DUE_SECONDS_PER_ITERATION / 4)
    service.idle(None)
    assert sorted(_written(service)) == [0, 1, 2, 3]
    service.idle(None)
    assert sorted(_written(service)) == [0, 1, 2, 3, 4, 5]


def test_a_partition_never_written_counts_as_a_full_budget() -> None:
    service = _service(3)
    _all_due(service, cost_s=0)
    service.schedule.cost_s.clear()
    assert _due_tasks(service) == {P(0)}


def test_urgent_partitions_do_not_starve_the_most_overdue_one() -> None:
    service = _service(6)
    _all_due(service, cost_s=0.6 * schedule.DUE_SECONDS_PER_ITERATION)
    # the urgent partitions fill the budget on their own; the most overdue of the others still goes with them,
    # as it is more than twice overdue (see the next tests)
    assert _due_tasks(service, {P(0), P(1)}) == {P(2)}


def test_time_due_checkpoints_start_spread_over_every_s() -> None:
    every_s = 12.0
    before = time.monotonic()
    service = _service(6, every_s=every_s)
    due_in = sorted(service.schedule.last[P(p)] + every_s - before for p in range(6))
    assert due_in == pytest.approx([2.0, 4.0, 6.0, 8.0, 10.0, 12.0], abs=0.5)
    assert _due_tasks(service) == set(), "nothing is due right after assignment"


def test_a_task_twice_overdue_by_its_messages_goes_over_the_budget_before_the_oldest():
    service = _service(3)
    _all_due(service, cost_s=0.6 * schedule.DUE_SECONDS_PER_ITERATION)
    now = time.monotonic()
    every_s = service.schedule.every_s
    for p in service.engines:  # all overdue by time, none twice: partition 0 the oldest
        service.schedule.last[P(p)] = now - 1.5 * every_s + p
    service.schedule.since[P(2)] = 2 * service.schedule.every_events  # twice overdue by its messages
    assert _due_tasks(service, {P(1)}) == {P(2)}


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
    batch = schedule.CAUGHT_UP_MESSAGES  # the lag under which a replica counts as caught up
    labels, summaries = service.config.kafka.labels_topic, service.config.summaries_topic
    # catching up (a poll's worth or more left to read): every partition's summaries started waiting a second ago
    service.lag.update({(PREDICTIONS, 0): batch // 2, (labels, 1): batch // 2})
    for p in service.engines:
        service.schedule.waiting_since[p] = now - 1.5 + p * 0.01
        service.schedule.cost_s[P(p)] = 0.51 * schedule.DUE_SECONDS_PER_ITERATION
    assert _sending_due(service, set()) == {P(0)}
    service.schedule.cost_s.update({P(p): schedule.DUE_SECONDS_PER_ITERATION / 4 for p in range(4)})
    assert _sending_due(service, set()) == {P(0), P(1), P(2), P(3)}
    assert _sending_due(service, {P(0)}) == {P(1), P(2), P(3)}
    d = service.config.detection
    # waited longer than a live tick but less than detection.summary_interval_s: not yet, while catching up
    service.schedule.waiting_since[3] = now - 0.5 * (d.live_interval_s + d.summary_interval_s)
    assert _sending_due(service, set()) == {P(0), P(1), P(2)}
    # caught up (live: less than a poll's worth left to read, summaries not counted): a tick every live interval
    # since the last (shorter than the catch-up interval: live, the tick is most of an alert's wait), and every
    # partition with summaries waiting goes on it, however short its wait, so a detection stage's watermark does
    # not wait for the one that sends last; at steady state their checkpoints are cheap and go in one iteration
    service.lag.update({(labels, 1): batch // 2 - 1, (summaries, 0): 10 * batch})
    service.schedule.cost_s.update({P(p): schedule.DUE_SECONDS_PER_ITERATION / 4 for p in range(4)})
    every = service.config.detection.live_interval_s
    assert every < service.config.detection.summary_interval_s
    service.schedule.tick_at = now - every
    assert _sending_due(service, {P(0)}) == {P(1), P(2), P(3)}
    assert _sending_due(service, set()) == set()  # the tick just went: none until the next
    service.schedule.tick_at = time.monotonic() - every
    service.schedule.waiting_since = {1: time.monotonic()}
    assert _sending_due(service, set()) == {P(1)}
    service.schedule.tick_at = time.monotonic() - every / 2
    service.schedule.waiting_since = {p: now - 1.5 for p in service.engines}
    assert _sending_due(service, set()) == set()  # however long they waited, the tick is not due yet
    service.lag[PREDICTIONS, 0] = batch  # catching up again: those waited long enough go, within the budget
    service.schedule.cost_s.update({P(p): schedule.DUE_SECONDS_PER_ITERATION for p in range(4)})
    assert _sending_due(service, set()) == {P(0)}


def test_summaries_of_partitions_never_checkpointed_count_as_the_costliest_of_their_kind():
    """Catching up, partitions whose first summaries waited together went in one checkpoint when a snapshot never
    written counted as nothing (three profile stages held the loop for up to 275 ms in the bench); counted as the
    whole budget, a replica's first summaries went one partition per loop iteration while detection waited."""
    service = _service(4)
    now = time.monotonic()
    service.lag[PREDICTIONS, 0] = 2 * schedule.CAUGHT_UP_MESSAGES
    for p in service.engines:
        service.schedule.waiting_since[p] = now - 1.5 + p * 0.01
    assert _sending_due(service, set()) == {P(0), P(1), P(2)}, "none written: a third of the budget each"
    service.schedule.cost_s[P(0)] = 0.51 * schedule.DUE_SECONDS_PER_ITERATION
    assert _sending_due(service, set()) == {P(0)}, "the others are counted as the costliest written"
    service.schedule.cost_s.update({P(p): schedule.DUE_SECONDS_PER_ITERATION / 4 for p in range(4)})
    assert _sending_due(service, set()) == {P(0), P(1), P(2), P(3)}
    assert _sending_due(service, {P(0)}) == {P(1), P(2), P(3)}
    service.schedule.cost_s[P(3)] = schedule.DUE_SECONDS_PER_ITERATION / 2
    del service.schedule.cost_s[P(0)]
    assert _sending_due(service, {P(0)}) == {P(1), P(2)}, "an urgent one never written counts as the costliest"


def test_a_due_checkpoint_waits_while_urgent_ones_fill_the_budget_until_twice_overdue() -> None:
    service = _service(3)
    _all_due(service, cost_s=schedule.DUE_SECONDS_PER_ITERATION / 2)
    every_s = service.schedule.every_s
    now = time.monotonic()
    for p in service.engines:
        service.schedule.last[P(p)] = now - 1.5 * every_s + p
    assert _due_tasks(service, {P(0), P(1)}) == set(), "the urgent ones fill the budget"
    assert _due_tasks(service, set()) == {P(0), P(1)}, "with nothing urgent, the most overdue go"
    service.schedule.last[P(2)] = now - 2 * every_s - 1
    assert _due_tasks(service, {P(0), P(1)}) == {P(2)}, "twice overdue: it goes over the budget"


def test_a_tick_of_costly_checkpoints_goes_over_the_next_iterations_without_waiting_for_the_next_tick() -> None:
    """Caught up right after catching up, every profile stage's first checkpoint at once held the loop 322 ms."""
    service = _service(4)
    now = time.monotonic()
    for p in service.engines:
        service.schedule.waiting_since[p] = now - 0.1 * (4 - p)
        service.schedule.cost_s[P(p)] = 0.6 * schedule.DUE_SECONDS_PER_ITERATION
    service.schedule.tick_at = now - service.config.detection.summary_interval_s
    assert _sending_due(service, set()) == {P(0)}, "the longest waiting first"
    service.schedule.waiting_since.pop(0)  # sent
    service.schedule.waiting_since[0] = time.monotonic()  # and new rows wait again: not before the next tick
    service.schedule.cost_s[P(3)] = 0.1 * schedule.DUE_SECONDS_PER_ITERATION  # would fit beside P(2) alone
    assert _sending_due(service, {P(1)}) == {P(2)}, "an urgent one counts in the budget, and is not sent twice"
    service.schedule.waiting_since.pop(1)
    service.schedule.waiting_since.pop(2)
    assert _sending_due(service, set()) == {P(3)}
    assert _sending_due(service, set()) == set(), "the tick is done"


class _PollingConsumer(_Consumer):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def consume(self, _num_messages: int, timeout: float) -> list[Message]:
        self.timeouts.append(timeout)
        return []


def test_a_poll_waits_out_the_batch_time_less_the_time_spent_since_the_last_poll() -> None:
    service = _service(1)
    consumer = _PollingConsumer()
    batch_s = service.config.kafka.batch_max_ms / 1000
    service._consume(consumer)  # type: ignore[arg-type]
    service._consume(consumer)  # type: ignore[arg-type]  # right after the last poll: the whole batch time
    service._polled_at -= batch_s / 4  # a short batch: the rest of the batch time
    service._consume(consumer)  # type: ignore[arg-type]
    service._polled_at -= 2 * batch_s  # a batch that took longer than the batch time: what is there, at once
    service._consume(consumer)  # type: ignore[arg-type]
    assert consumer.timeouts[1] == pytest.approx(batch_s, abs=0.01)
    assert consumer.timeouts[2] == pytest.approx(0.75 * batch_s, abs=0.01)
    assert consumer.timeouts[3] == 0.0


class _Log(_Sink):
    def __init__(self, log: list[str]) -> None:
        super().__init__(False)
        self.log = log

    def flush(self, _stop: object = None) -> None:
        self.log.append("flush")

    def summary(self, _topic: str, _partition: int, _key: bytes, _value: bytes) -> None:
        self.log.append("summary")


class _LogStore(_Store):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def write(self, partition: int, _payload: bytes) -> None:
        self.log.append("snapshot")


def test_what_a_checkpoint_published_is_acknowledged_before_the_next_snapshot_is_written() -> None:
    service = _service(1)
    log: list[str] = []
    service.sink, service.store = _Log(log), _LogStore(log)  # type: ignore[assignment]
    for offset in range(2):
        service.process([Message(PREDICTIONS, 0, offset, GOOD % offset)])  # type: ignore[list-item]
        service._checkpoint({P(0)}, {})
    # each checkpoint: what the last one published acknowledged, its snapshot written and acknowledged, its
    # summaries published; the loop goes on without waiting for them
    assert log == ["flush", "snapshot", "flush", "summary", "flush", "snapshot", "flush", "summary"]


def test_an_idle_loop_retries_what_the_last_checkpoint_published() -> None:
    service = _service(1)
    log: list[str] = []
    service.sink, service.store = _Log(log), _LogStore(log)  # type: ignore[assignment]
    service.sink.retry = lambda: log.append("retry")  # type: ignore[method-assign]
    service.process([Message(PREDICTIONS, 0, 0, GOOD % 0)])  # type: ignore[list-item]
    service._checkpoint({P(0)}, {})
    del log[:]
    service.idle(None)  # no input: no checkpoint falls due, failed deliveries still go again
    assert log == ["retry"]


class _Producer:
    """Delivery reports on poll: the first delivery of each message fails, the next succeeds."""

    def __init__(self) -> None:
        self.produced: list[bytes] = []
        self.flushes = 0
        self._reports: list[Any] = []
        self._failed_once: set[bytes] = set()

    def produce(self, _topic: str, *, value: bytes, on_delivery: Any, **_kw: Any) -> None:
        self.produced.append(value)
        self._reports.append((value, on_delivery))

    def poll(self, _timeout: float) -> int:
        reports, self._reports = self._reports, []
        for value, on_delivery in reports:
            first = value not in self._failed_once
            self._failed_once.add(value)
            on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT) if first else None, None)
        return len(reports)

    def flush(self, _timeout: float) -> int:
        self.flushes += 1
        return 0


def test_a_failed_delivery_is_produced_again_by_retry_without_waiting(caplog: pytest.LogCaptureFixture) -> None:
    sink = alert_sink.AlertSink({"bootstrap.servers": "127.0.0.1:9", "log_level": 0}, "alerts", "dlq", 1.0)
    producer = sink.producer = _Producer()  # type: ignore[assignment]
    sink.summary("summaries", 0, b"k", b"v1")
    with caplog.at_level("WARNING", logger="monitor.io.kafka"):
        sink.retry()  # the report: failed; produced again
    assert producer.produced == [b"v1", b"v1"]
    sink.retry()  # the second delivery succeeded: nothing more
    assert producer.produced == [b"v1", b"v1"] and producer.flushes == 0
    assert "will retry" in caplog.text
