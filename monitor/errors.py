"""One root exception so callers can catch everything the monitor raises on purpose."""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error the monitor raises deliberately."""


class ConfigError(MonitorError):
    """A setting is missing or invalid; the message names the field (e.g. ``alerts.cooldown_s``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"config error in {field!r}: {problem}")
        self.field = field
        self.problem = problem


class DecodeError(MonitorError):
    """A message is not a valid event; ``reason`` is a short stable code used in metrics and DLQ headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceError(MonitorError):
    """The broker or a topic is unusable; keeps Kafka's retriable / fatal nature."""

    def __init__(self, message: str, *, retriable: bool = False, fatal: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.fatal = fatal


class SinkError(SourceError):
    """Producing alerts or dead-letter messages failed, so offsets must not be committed."""


class TableError(MonitorError):
    """A training / validation table cannot be read; the message names the file, and the line when known."""
