"""The order of a checkpoint's effects (:func:`monitor.io.checkpoint.write_in_order`), with stand-ins for the
producer and the snapshot stores: no broker."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import SinkError
from monitor.io import checkpoint
from monitor.io.checkpoint import CHECKPOINT_STEPS, write_in_order


class _Sink:
    def __init__(self, log: list[str], *, transactional: bool = False) -> None:
        self.log = log
        self.transactional = transactional
        self.renewals = 0
        self.producer = object()

    def begin(self) -> None:
        if self.transactional:
            self.log.append("begin")

    def flush(self, _stop: Any = None) -> None:
        self.log.append("flush")


class _Store:
    def __init__(self, log: list[str], name: str, refusals: int = 0) -> None:
        self.log, self.name, self.refusals = log, name, refusals
        self.failed: set[int] = set()
        self.producer: Any = None

    def write(self, partition: int, _payload: bytes) -> None:
        self.log.append(f"{self.name} {partition}")
        if self.refusals:  # the broker does not acknowledge it (reported by the flush that follows)
            self.refusals -= 1
            self.failed.add(partition)


def _write(log: list[str], sink: _Sink, stores: dict[str, _Store]) -> None:
    payloads = {("profile", 0): b"{}", ("detect", 1): b"{}"}
    write_in_order(
        sink,  # type: ignore[arg-type]
        stores,  # type: ignore[arg-type]
        payloads,
        publish=lambda: log.append("publish"),
        commit=lambda: log.append("commit"),
        faults=lambda step, alerts: log.append(f"{step} {alerts}"),
        has_alerts=True,
    )


def test_snapshots_are_acknowledged_before_their_outbox_is_published_and_their_offsets_committed() -> None:
    log: list[str] = []
    sink = _Sink(log)
    _write(log, sink, {"profile": _Store(log, "profile"), "detect": _Store(log, "detect")})
    assert log == [
        "flush",  # what the last checkpoint published, before a newer snapshot can be durable
        "profile 0",
        "detect 1",
        "before_snapshot_flush True",
        "flush",
        "after_snapshot True",
        "publish",  # not waited for: the next checkpoint's first flush
        "after_alerts True",
        "commit",
        "after_commit True",
    ]
    assert [entry.split()[0] for entry in log if entry.endswith("True")] == list(CHECKPOINT_STEPS)


def test_a_snapshot_the_broker_did_not_take_is_written_again_before_anything_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoint.time, "sleep", lambda _s: None)
    log: list[str] = []
    _write(log, _Sink(log), {"profile": _Store(log, "profile", refusals=1), "detect": _Store(log, "detect")})
    assert log[log.index("before_snapshot_flush True") :][:6] == [
        "before_snapshot_flush True",
        "flush",
        "profile 0",  # only the refused one goes again
        "flush",
        "after_snapshot True",
        "publish",
    ]
    log.clear()
    with pytest.raises(SinkError, match="not acknowledged"):
        _write(log, _Sink(log), {"profile": _Store(log, "profile", refusals=5), "detect": _Store(log, "detect")})
    assert "publish" not in log and "commit" not in log


def test_in_a_transaction_snapshots_outbox_and_offsets_commit_together_without_waiting() -> None:
    log: list[str] = []
    sink = _Sink(log, transactional=True)
    stores = {"profile": _Store(log, "profile"), "detect": _Store(log, "detect")}
    _write(log, sink, stores)
    assert log == ["begin", "profile 0", "detect 1", "publish", "commit"]
    assert all(store.producer is sink.producer for store in stores.values())
