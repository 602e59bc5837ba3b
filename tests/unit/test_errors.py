"""The exception tree of ``monitor.errors``: one root, siblings under it, and the CLI's one line for each."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
from confluent_kafka import TopicPartition

import monitor.errors as errors
from monitor import cli
from monitor.config import load_config
from monitor.errors import (
    ConfigError,
    DecodeError,
    MonitorError,
    ProfileError,
    SinkError,
    SourceError,
    TableError,
)
from monitor.io.kafka import MonitorService

LEAVES: dict[type[MonitorError], MonitorError] = {
    ConfigError: ConfigError("alerts.cooldown_s", "must be >= 0"),
    DecodeError: DecodeError("invalid_value", "timestamp is before 1970"),
    SourceError: SourceError("topic 'p' does not exist", fatal=True),
    SinkError: SinkError("3 alert/DLQ messages not acknowledged at shutdown"),
    TableError: TableError("train.csv: line 3 has 2 cells, the header 3"),
    ProfileError: ProfileError("p.json", "not valid JSON"),
}


def test_every_error_is_a_direct_child_of_the_root_and_none_is_another() -> None:
    defined = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }
    assert defined == {MonitorError, *LEAVES}, "a new error belongs in LEAVES and in the module docstring"
    assert MonitorError.__bases__ == (Exception,)
    for cls in LEAVES:
        assert cls.__bases__ == (MonitorError,), cls
        for other in LEAVES:
            assert cls is other or not issubclass(cls, other), (cls, other)
    assert not issubclass(SinkError, SourceError)  # the sentence, spelled out


def test_the_module_docstring_lists_the_tree() -> None:
    doc = errors.__doc__ or ""
    assert "\n    MonitorError\n" in doc
    for cls in LEAVES:
        assert f"── {cls.__name__} " in doc, cls


def test_profile_error_is_still_importable_from_the_baseline_module() -> None:
    from monitor.core import baseline

    assert baseline.ProfileError is ProfileError


def test_except_source_error_does_not_catch_a_sink_error() -> None:
    with pytest.raises(SinkError):
        try:
            raise SinkError("snapshots of partitions [0] were not acknowledged")
        except SourceError:  # pragma: no cover - the point of the test is that this does not run
            pytest.fail("a SinkError was caught as a SourceError")


@pytest.mark.parametrize("cls", list(LEAVES), ids=lambda c: c.__name__)
def test_the_cli_prints_each_error_as_one_line_and_exits_2(
    cls: type[MonitorError], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(_args: Any) -> int:
        raise LEAVES[cls]

    monkeypatch.setattr(cli, "cmd_check_config", failing)
    assert cli.main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err == f"monitor: {LEAVES[cls]}\n"


class _FailingSink:
    transactional = False

    def __init__(self) -> None:
        self.flushes = 0

    def flush(self, _stop: object = None) -> None:
        self.flushes += 1
        raise SinkError("2 alert/DLQ messages not acknowledged at shutdown")


class _Consumer:
    closed = False

    def close(self) -> None:
        self.closed = True


def _service() -> MonitorService:
    return MonitorService(load_config(environ={}))


def test_close_logs_a_sink_error_and_still_leaves_the_group(caplog: pytest.LogCaptureFixture) -> None:
    service = _service()
    sink, consumer = _FailingSink(), _Consumer()
    service.sink, service.consumer = sink, consumer  # type: ignore[assignment]
    service.engines = {0: object()}  # type: ignore[dict-item]
    with caplog.at_level(logging.ERROR, logger="monitor.io.kafka"):
        service.close()
    assert sink.flushes == 1 and consumer.closed and service.consumer is None
    assert "final checkpoint failed: 2 alert/DLQ messages not acknowledged" in caplog.text


def test_a_sink_error_in_the_checkpoint_on_revoke_is_logged_and_the_partition_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service()
    service.sink = _FailingSink()  # type: ignore[assignment]
    service.engines = {0: object()}  # type: ignore[dict-item]

    def checkpoint(*_args: Any) -> None:
        raise SinkError("snapshots of partitions [0] were not acknowledged")

    monkeypatch.setattr(service, "_checkpoint", checkpoint)
    topic = service.config.kafka.predictions_topic
    with caplog.at_level(logging.WARNING, logger="monitor.io.kafka"):
        service._on_revoke(None, [TopicPartition(topic, 0)])  # type: ignore[arg-type]
    assert service.engines == {}
    assert "checkpoint on revoke failed" in caplog.text and "not acknowledged" in caplog.text
