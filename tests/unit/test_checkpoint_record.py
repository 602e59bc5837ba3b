"""Checkpoint records as bytes: orjson writes them, values orjson cannot write survive as nodes, and records
written by earlier releases (the standard library's JSON, the whole record encoded twice) still restore."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.core import snapshot
from monitor.core.engine import PartitionEngine
from monitor.io.checkpoint import RECORD_FORMAT, RecordParts, dumps_record, loads_record, record_parts

from .test_snapshot import CONFIG, ENGINE_BATCHES, _canon, _clock, _run


class _Level(enum.IntEnum):
    HIGH = 3


def _restored(x: Any) -> Any:
    return snapshot.loads(snapshot.dumps(x))


def test_non_finite_floats_and_big_integers_survive_and_are_never_written_as_null() -> None:
    values = [math.nan, math.inf, -math.inf, np.float64(math.nan), np.float32(-math.inf), 2**127, -(2**70), 2**64 - 1]
    raw = snapshot.dumps(values)
    assert b"null" not in raw and b"NaN" not in raw and b"Infinity" not in raw
    back = _restored(values)
    assert _canon(back) == _canon([math.nan, math.inf, -math.inf, math.nan, -math.inf, 2**127, -(2**70), 2**64 - 1])
    assert all(type(v) is int for v in back[5:])


def test_subclasses_of_float_and_int_are_written_as_the_plain_numbers() -> None:
    back = _restored({"a": np.float64(1.25), "b": _Level.HIGH, "c": [True, False, None]})
    assert back == {"a": 1.25, "b": 3, "c": [True, False, None]}
    assert type(back["a"]) is float and type(back["b"]) is int


def test_counter_values_and_generators_round_trip() -> None:
    from collections import Counter

    rng = np.random.default_rng(7)
    rng.random(3)
    back = _restored({"n": Counter({"x": 2, "y": math.nan}), "rng": rng})
    assert back["n"]["x"] == 2 and math.isnan(back["n"]["y"])
    assert back["rng"].random(4).tolist() == rng.random(4).tolist()


def test_a_snapshot_written_by_the_standard_library_still_loads() -> None:
    """Earlier releases wrote bare NaN / Infinity and a PCG64 state's 128-bit integers as JSON numbers."""
    rng = np.random.default_rng(11)
    state = rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # the case orjson would read as a float
    nodes = [["x", math.nan], ["y", [math.inf, -math.inf]], ["rng", {"$rng": state}], ["n", {"$counter": [["a", 1]]}]]
    old = json.dumps({"$d": nodes}, separators=(",", ":"), allow_nan=True).encode()
    back = snapshot.loads(old)
    assert math.isnan(back["x"]) and back["y"] == [math.inf, -math.inf] and back["n"] == {"a": 1}
    assert back["rng"].random(3).tolist() == rng.random(3).tolist()


def _old_form(node: Any) -> Any:
    """What the previous release's ``encode`` gave for what this one writes as ``$f`` / ``$int`` nodes: the bare
    numbers (a ``$rng`` state's integers included)."""
    if isinstance(node, list):
        return [_old_form(v) for v in node]
    if isinstance(node, dict):
        if set(node) == {"$f"}:
            return float(node["$f"])
        if set(node) == {"$int"}:
            return int(node["$int"])
        return {k: _old_form(v) for k, v in node.items()}
    return node


def _format_1(source: list[str], offsets: dict[str, int | None], engine: Any, outbox: list[Any], at: float) -> bytes:
    """A record as the previous release wrote it: the whole record through encode, then the standard library."""
    record = {"source": source, "offsets": offsets, "engine": _old_form(engine), "outbox": outbox, "written_at": at}
    return json.dumps(_old_form(snapshot.encode(record)), separators=(",", ":"), allow_nan=True).encode()


def _in_parts(*args: Any) -> bytes:
    """What the service writes: the record in parts (sealed parts as the JSON they made once), joined."""
    parts = record_parts(*args)
    assert isinstance(parts, RecordParts) and len(parts) == len(bytes(parts))
    return bytes(parts)


@pytest.mark.parametrize("write", [dumps_record, _in_parts, _format_1], ids=["format 2", "in parts", "format 1"])
def test_a_record_restores_an_engine_that_continues_exactly(write: Any) -> None:
    half = len(ENGINE_BATCHES) // 2
    engine = PartitionEngine(CONFIG, clock=_clock)
    history = _run(engine, ENGINE_BATCHES[:half])
    outbox = [a for *_, alerts in history for a in alerts][:2]
    assert outbox, "no alert before the cut: the outbox is not exercised"
    offsets: dict[str, int | None] = {"predictions": 123, "labels": None}
    raw = write(["group", "predictions"], offsets, engine.snapshot(), outbox, 1.5)
    if write is _format_1:  # what the standard library's reader is there for
        assert b"NaN" in raw and str(engine.rng.bit_generator.state["state"]["state"]).encode() in raw
    data = loads_record(raw)
    assert data["source"] == ["group", "predictions"] and data["offsets"] == offsets and data["written_at"] == 1.5
    assert _canon(data["outbox"]) == _canon(outbox)
    twin = PartitionEngine.restore(CONFIG, data["engine"], clock=_clock)
    assert snapshot.dumps(twin.snapshot()) == snapshot.dumps(engine.snapshot())
    rest = ENGINE_BATCHES[half:]
    assert _canon(_run(twin, rest)) == _canon(_run(engine, rest))


def test_a_payload_that_is_no_record_is_refused() -> None:
    for raw in (b"[1, 2]", b'{"format": %d}' % (RECORD_FORMAT + 1), b'{"engine": {}}'):
        with pytest.raises(ValueError, match="not a checkpoint record"):
            loads_record(raw)


class _Tag(str):
    def __str__(self) -> str:  # what orjson writes is the string's value, never this
        return "not the value"


def test_sealed_parts_are_written_as_the_plain_data_they_hold_in_one_piece_or_in_parts() -> None:
    """The JSON a sealed part made once is what orjson writes for the same data unsealed; a string that looks
    like the marker the parts are cut at stays a string; subclasses of str and int are their values."""
    chunk = {"ids": ["a", "\x00" + "0" * 32 + "0", '"\\u0000'], "n": [1, 2.5, None]}
    engine = {"joiner": {"chunks": [snapshot.Encoded(chunk).data, snapshot.Encoded([7, "x"]).data], "k": _Tag("v")},
              "level": _Level.HIGH}  # fmt: skip
    plain = {"joiner": {"chunks": [chunk, [7, "x"]], "k": "v"}, "level": 3}
    outbox = [{"kind": _Tag("data_drift")}]
    expected = orjson.dumps({"format": RECORD_FORMAT, "source": ["g"], "offsets": {"p": 1}, "engine": plain,
                             "outbox": [{"kind": "data_drift"}], "written_at": 2.0})  # fmt: skip
    assert dumps_record(["g"], {"p": 1}, engine, outbox, 2.0) == expected
    parts = record_parts(["g"], {"p": 1}, engine, outbox, 2.0)
    assert bytes(parts) == expected and len(parts) == len(expected)
    sealed = [p for p in parts.parts if not isinstance(p, bytes)]
    assert [snapshot.sealed_json(p) for p in sealed] == [orjson.dumps(chunk), b'[7,"x"]']
    assert loads_record(bytes(parts))["engine"] == plain
    assert record_parts(["g"], {"p": 1}, plain, [], 2.0).parts == [  # nothing sealed: one part
        dumps_record(["g"], {"p": 1}, plain, [], 2.0)
    ]
