"""Fault injection is a hook passed to the service: the crash tests' ``CrashAt``, built only by ``monitor run``."""

from __future__ import annotations

from pathlib import Path

import pytest

import monitor
from monitor.config import load_config
from monitor.io import checkpoint
from monitor.io.checkpoint import CHECKPOINT_STEPS, FAULT_INJECT_ENV, CrashAt
from monitor.io.kafka import MonitorService
from tests.unit.service_stand_ins import QuietSink

PACKAGE = Path(monitor.__file__).resolve().parent


class _Store:
    def __init__(self) -> None:
        self.failed: set[int] = set()
        self.written: list[int] = []
        self.confirmed: list[int] = []

    def write(self, partition: int, _payload: bytes) -> None:
        self.written.append(partition)

    def confirm(self, partition: int) -> None:
        self.confirmed.append(partition)

    def forget(self, partition: int) -> None:
        pass


class _Exit(Exception):
    pass


def _exit(code: int) -> None:
    raise _Exit(code)


def test_the_service_reads_no_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_INJECT_ENV, "after_commit:1")
    assert MonitorService(load_config(environ={}))._faults is None
    readers = {
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if "FAULT_INJECT" in p.read_text(encoding="utf-8") and p.name != "checkpoint.py"
    }
    assert readers == {"monitor/cli.py"}
    assert "environ" not in (PACKAGE / "io" / "checkpoint.py").read_text(encoding="utf-8")


def test_a_hook_sees_every_checkpoint_step_in_order() -> None:
    seen: list[tuple[str, bool]] = []
    service = MonitorService(load_config(environ={}), faults=lambda step, alerts: seen.append((step, alerts)))
    store = _Store()
    service.sink, service.store, service.detect_store = QuietSink(), store, _Store()  # type: ignore[assignment]
    service.engines = {0: service._new_engine(0)}
    service._checkpoint({("profile", 0)}, {})
    assert store.written == [0] and store.confirmed == [0]
    assert seen == [(step, False) for step in CHECKPOINT_STEPS]


def test_a_snapshot_is_confirmed_to_its_store_only_once_its_offsets_are_committed() -> None:
    """A store writes only the pieces a partition does not hold from an acknowledged snapshot: a checkpoint cut
    short before its commit must not count as acknowledged."""

    def fail_at_commit(step: str, _alerts: bool) -> None:
        if step == "after_alerts":
            raise _Exit(137)

    service = MonitorService(load_config(environ={}), faults=fail_at_commit)
    store = _Store()
    service.sink, service.store, service.detect_store = QuietSink(), store, _Store()  # type: ignore[assignment]
    service.engines = {0: service._new_engine(0)}
    with pytest.raises(_Exit):
        service._checkpoint({("profile", 0)}, {})
    assert store.written == [0] and store.confirmed == []


def test_crash_at_exits_137_at_the_nth_time_a_step_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint.os, "_exit", _exit)
    crash = CrashAt.parse("after_commit:3")
    crash("after_commit", False)
    crash("after_snapshot", True)
    crash("after_commit", True)
    with pytest.raises(_Exit) as info:
        crash("after_commit", False)
    assert info.value.args == (137,)
    assert CrashAt.parse("after_snapshot").nth == 1


def test_crash_at_with_alerts_counts_only_checkpoints_that_carry_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint.os, "_exit", _exit)
    crash = CrashAt.parse("after_alerts+alerts:1")
    crash("after_alerts", False)
    with pytest.raises(_Exit):
        crash("after_alerts", True)


def test_an_empty_switch_never_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint.os, "_exit", _exit)
    crash = CrashAt.parse("")
    for step in CHECKPOINT_STEPS:
        crash(step, True)
    assert crash.seen == 0
