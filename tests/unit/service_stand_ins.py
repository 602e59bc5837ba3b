"""Stand-ins for the Kafka edge in unit tests of ``MonitorService``: a consumed message and an alert sink."""

from __future__ import annotations


class Message:
    """What the service reads of a consumed ``confluent_kafka.Message``."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes, timestamp_ms: int | None = None) -> None:
        self._topic, self._partition, self._offset, self._value = topic, partition, offset, value
        self._timestamp_ms = timestamp_ms

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def timestamp(self) -> tuple[int, int]:
        """(type, milliseconds) as confluent-kafka gives it: without a time, (TIMESTAMP_NOT_AVAILABLE, -1)."""
        return (0, -1) if self._timestamp_ms is None else (1, self._timestamp_ms)


class QuietSink:
    """An alert and dead-letter sink that accepts everything and keeps nothing."""

    transactional = False
    producer = None  # what the checkpoint stores produce with
    max_message_bytes = 1_000_000
    renewals = 0

    def begin(self) -> None:
        pass

    def flush(self, _stop: object = None) -> None:
        pass

    def retry(self) -> None:
        pass

    def alert(self, _alert: object) -> None:
        pass

    def dead_letter(self, _msg: object, _rejected: object) -> None:
        pass

    def summary(self, _topic: str, _partition: int, _key: bytes, _value: bytes) -> None:
        pass


class RecordingSink(QuietSink):
    """A sink that keeps the summaries produced, to be fed back as the summaries topic's messages."""

    def __init__(self) -> None:
        self.summaries: list[tuple[str, int, bytes]] = []  # (topic, partition, value)

    def summary(self, topic: str, partition: int, _key: bytes, value: bytes) -> None:
        self.summaries.append((topic, partition, value))

    def take(self) -> list[Message]:
        """The summaries produced since the last call, as consumed messages (offsets from 0 per call's caller)."""
        out, self.summaries = self.summaries, []
        return [Message(t, p, i, v) for i, (t, p, v) in enumerate(out)]
