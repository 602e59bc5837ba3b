"""A replica working off a detection backlog reads nothing meanwhile, so that time is no source's silence.

No broker: the service runs with stand-ins for the consumer and the sink, and its summaries are fed back to
it as the summaries topic's messages. Its reading clock is set by the test.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from monitor.config import load_config
from monitor.io.checkpoint import RecordParts
from monitor.io.kafka import MonitorService
from tests.unit.service_stand_ins import Message, QuietSink, RecordingSink

T0 = 1_767_225_600.0
EVENT = b'{"prediction_id":"%d-%d","model":"m","timestamp":%.2f,"features":{"x":%.3f},"prediction":0.2}'


class _Consumer:
    def commit(self, offsets: Any, asynchronous: bool) -> None:
        pass

    def position(self, partitions: list[Any]) -> list[Any]:
        return [type(tp)(tp.topic, tp.partition, -1) for tp in partitions]

    def get_watermark_offsets(self, _tp: Any, cached: bool) -> tuple[int, int]:
        return (0, -1)


def _predictions(service: MonitorService, partition: int, start_s: float, n: int) -> list[Message]:
    """``n`` events of input partition ``partition``, 100 per second of event time from ``T0 + start_s``."""
    topic = service.config.kafka.predictions_topic
    first = int(start_s * 100)
    return [
        Message(topic, partition, i, EVENT % (partition, i, T0 + i / 100.0, (i * 7919 % 1000) / 1000.0))
        for i in range(first, first + n)
    ]


def _summaries(sink: RecordingSink, first: int) -> list[Message]:
    return [Message(m.topic(), m.partition(), first + m.offset(), m.value()) for m in sink.take()]


def test_time_spent_working_off_a_backlog_does_not_make_a_source_idle_and_its_rows_late() -> None:
    config = load_config(environ={}, overrides={"detection": {"idle_s": 1.0, "release_rows": 200}})
    service = MonitorService(config)
    now = [1000.0]
    service.monotonic = lambda: now[0]
    sink = RecordingSink()
    service.sink, service.consumer = sink, _Consumer()  # type: ignore[assignment]
    service.partitions = 2
    service.engines = {p: service._new_engine(p) for p in (0, 1)}
    monitor_backlog = service.idle

    def slow_idle(stop: Any = None) -> None:
        before = service.reading_clock()
        monitor_backlog(stop)
        now[0] += 2.0  # monitoring a long backlog takes longer than idle_s, and nothing is read meanwhile
        assert service.reading_clock() == before, "the reading clock stands still within the iteration too"

    service.idle = slow_idle  # type: ignore[method-assign]

    service.process(_predictions(service, 0, 0.0, 3000))  # type: ignore[arg-type]  # partition 0: 30 s
    service.process(_predictions(service, 1, 0.0, 1000))  # type: ignore[arg-type]  # partition 1: 10 s
    sent = _summaries(sink, 0)
    service.process(sent)  # type: ignore[arg-type]  # the detection stage's batch: capped at 200 rows
    assert service._backlog
    stage = service.detectors[0]
    iterations = 0
    while service._backlog:
        service.work_off_backlog()
        iterations += 1
    assert iterations >= 5, "the backlog took several iterations, each longer than idle_s"
    # partition 1 still counts as moving: partition 0's rows past its progress wait for it
    assert stage.pending_rows() >= 1900
    assert service.reading_clock() == 1000.0, "no reading time passed while the backlog was worked off"

    service.process(_predictions(service, 1, 10.0, 1000))  # type: ignore[arg-type]  # partition 1 goes on
    more = _summaries(sink, len(sent))
    service.process(more)  # type: ignore[arg-type]
    while service._backlog:
        service.work_off_backlog()
    assert stage.late_rows == 0
    assert stage.engine.events_total() >= 3000, "the rows up to partition 1's new progress were monitored"

    now[0] += 1.5  # reading time: both partitions stand still for longer than idle_s
    monitor_backlog()  # an iteration of a loop that reads: its time counts
    while service._backlog:
        service.work_off_backlog()
    assert stage.pending_rows() == 0 and stage.engine.events_total() == 5000


class _KeptStore:
    """Keeps each partition's last snapshot, as the state topic does."""

    def __init__(self) -> None:
        self.failed: set[int] = set()
        self.written: dict[int, bytes] = {}

    def write(self, partition: int, payload: bytes | RecordParts) -> None:
        self.written[partition] = bytes(payload)  # the record's bytes, as a store writes them

    def read_latest(self, partition: int) -> Any:
        payload = self.written.get(partition)
        return None if payload is None else SimpleNamespace(payload=payload)

    def confirm(self, partition: int) -> None:
        pass

    def forget(self, partition: int) -> None:
        pass


def test_a_detection_stage_restored_from_its_snapshot_times_silence_on_the_reading_clock_too() -> None:
    config = load_config(environ={})
    first = MonitorService(config)
    first.sink, first.store, first.detect_store = QuietSink(), _KeptStore(), _KeptStore()  # type: ignore[assignment]
    first.detectors = {0: first._new_detector(0)}
    assert first.detectors[0].clock == first.reading_clock
    first._checkpoint({("detect", 0)}, {})
    second = MonitorService(config)
    second.store, second.detect_store = first.store, first.detect_store
    restored = second._restore(("detect", 0), frozenset({("detect", 0)}))
    assert restored is not None
    assert restored[0].clock == second.reading_clock
