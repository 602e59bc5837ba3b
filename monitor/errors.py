"""The monitor's exceptions: one root, so callers can catch everything the monitor raises on purpose.

The tree (each a direct subclass of :class:`MonitorError`, none a subclass of another)::

    MonitorError
    ├── ConfigError    a setting is missing or invalid (load_config, the checks before anything starts)
    ├── DecodeError    a message is not a valid event (the decoder rejects it to the dead-letter topic)
    ├── SourceError    the broker or an input / state / audit topic is unusable (connecting, topics,
    │                  reading snapshots, replay and report inputs)
    ├── SinkError      producing alerts, dead letters or snapshots was not acknowledged (offsets stay
    │                  uncommitted, so the next owner replays the batch)
    ├── TableError     a training / validation table cannot be read (``monitor baseline``)
    └── ProfileError   a baseline profile cannot be built, read or written

``SinkError`` is not a ``SourceError``: code that handles an unusable input does not swallow a failed
output, and code that tolerates a failed checkpoint says so by catching ``SinkError`` by name.

The command line prints any :class:`MonitorError` as one line, ``monitor: <message>``, and exits with
status 2; anything else is a bug and keeps its traceback.
"""

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


class SinkError(MonitorError):
    """Producing alerts, dead-letter messages or snapshots failed, so offsets must not be committed."""


class TableError(MonitorError):
    """A training / validation table cannot be read; the message names the file, and the line when known."""


class ProfileError(MonitorError):
    """A profile file that cannot be used; the message names the file and the field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"baseline profile {where}: {message}")
        self.where = where
