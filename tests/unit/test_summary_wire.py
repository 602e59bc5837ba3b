"""The summaries' wire form: float columns as raw arrays, everything else as JSON, decoded as it was sent."""

from __future__ import annotations

import math
import zlib

import numpy as np
import orjson
import pytest

from monitor.core import summary_wire


def _plain() -> dict:
    return {
        "format": 1,
        "model": "m",
        "rows": {
            "id": ["a", "b", "c"],
            "time": [1.5, 2.5, 3.25],
            "prediction": [0.1, None, -0.0],
            "latency": [None, 3.0, 4.0],
            "features": {
                "late": [None, 2.0, 1e300],  # float or None: packed, None comes back as None
                "count": [1, 2, 3],  # ints stay JSON, and ints
                "flag": [True, False, None],  # booleans too
                "colour": ["red", None, "blue"],
                "empty": [None, None, None],
                "mixed": [1.0, 2, None],
            },
            "segments": {"seg": ["x", "y", "x"]},
            "nulls": {"late": [0]},
        },
    }


def test_float_columns_go_as_arrays_and_come_back_value_for_value_and_type_for_type():
    plain = _plain()
    sent = orjson.dumps(plain)
    wire = summary_wire.pack(plain)
    assert orjson.dumps(plain) == sent  # the caller's plain form (the rows' own columns) is left as it was
    back = summary_wire.unpack(wire)
    rows = back["rows"]
    assert list(rows["features"]) == list(plain["rows"]["features"])  # the features keep their order
    for name, column in plain["rows"]["features"].items():
        assert rows["features"][name] == column
        assert [type(v) for v in rows["features"][name]] == [type(v) for v in column]
    assert rows["prediction"] == [0.1, None, -0.0] and math.copysign(1.0, rows["prediction"][2]) == -1.0
    assert isinstance(rows["time"], np.ndarray) and rows["time"].tolist() == [1.5, 2.5, 3.25]
    assert rows["time"].flags.writeable
    assert np.isnan(rows["latency"][0]) and rows["latency"][1:].tolist() == [3.0, 4.0]
    assert {k: v for k, v in back.items() if k != "rows"} == {"format": 1, "model": "m"}
    assert wire[:1] == summary_wire.COLUMNS
    header = orjson.loads(zlib.decompress(wire[5 : 5 + int.from_bytes(wire[1:5], "little")]))
    packed = [p for p, _ in header["rows"]["packed"]]
    assert packed == ["time", "latency", "prediction", ["features", "late"]]  # the others are not all floats


def test_the_forms_of_earlier_releases_are_read_and_a_cut_message_is_refused():
    plain = _plain()
    assert summary_wire.unpack(orjson.dumps(plain)) == plain
    assert summary_wire.unpack(zlib.compress(orjson.dumps(plain))) == plain
    heartbeat = {"format": 1, "model": "m"}
    assert summary_wire.unpack(summary_wire.pack(heartbeat)) == heartbeat
    wire = summary_wire.pack(_plain())
    with pytest.raises(ValueError):
        summary_wire.unpack(wire[:-8])
    with pytest.raises(ValueError):
        summary_wire.unpack(wire + b"\0" * 8)
