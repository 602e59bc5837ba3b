"""The bytes a summary travels and is kept in: its plain form, with the float columns as raw arrays.

Parsing and printing decimal text is most of what moving a summary costs (about 100 ns a number each way,
plus compressing the text), and most of a summary is float columns: event times, latencies, numeric features
and predictions. Those go as little-endian float64 bytes after a zlib-compressed JSON header holding
everything else (ids, segments, categories, labels); the header names each packed column and the rows where
it held None. A column is packed only when every value is a float or None, so the decoded plain form is the
same as before, value for value and type for type (an integer column stays JSON: its values stay ints).

Form: ``b"\\x01"``, the header's length (uint32, little-endian), the header, then one ``8 * n`` byte array per
packed column. Plain JSON (first byte ``{``) and zlib-compressed JSON, the forms earlier releases wrote, are
read too.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import orjson

COLUMNS = b"\x01"  # first byte of the packed form: JSON starts with "{", zlib with 0x78
_FLOAT_OR_NONE = frozenset({float, type(None)})
_LENGTH = struct.Struct("<I")
_PACKABLE = ("time", "latency", "prediction")  # the rows' columns besides the features that may be packed
_PACKABLE = ("time", "latency", "prediction")  # the rows' columns besides the features that may be packed
_ARRAYS = ("time", "latency")  # decoded as float arrays (NaN for None), as Summary.from_plain makes them


def pack(plain: dict[str, Any]) -> bytes:
    """``plain`` (a summary's plain form, left as it is: its columns may be the rows' own) as bytes."""
    arrays: list[bytes] = []
    if plain.get("rows") is not None:
        rows = dict(plain["rows"])  # copies of the dicts the placeholders go in
        rows["features"] = dict(rows["features"])
        packed: list[list[Any]] = []
        n = len(rows["time"])
        columns: list[tuple[Any, list[Any]]] = [(key, rows[key]) for key in _PACKABLE if key in rows]
        columns += [(["features", name], col) for name, col in rows["features"].items()]
        for path, col in columns:
            kinds = set(map(type, col))
            if len(col) != n or not kinds <= _FLOAT_OR_NONE or kinds == {type(None)}:
                continue
            nones = [i for i, v in enumerate(col) if v is None] if type(None) in kinds else []
            arrays.append(np.array(col, dtype="<f8").tobytes())
            packed.append([path, nones])
            if isinstance(path, list):
                rows["features"][path[1]] = None  # a placeholder: the features keep their order
            else:
                rows[path] = None
        if packed:
            rows["packed"] = packed
            rows["packed_n"] = n
        plain = {**plain, "rows": rows}
    header = zlib.compress(orjson.dumps(plain), 1)
    return b"".join((COLUMNS, _LENGTH.pack(len(header)), header, *arrays))


def unpack(value: bytes) -> dict[str, Any]:
    """The plain form :func:`pack` was given (time and latency as float arrays); also reads plain JSON and
    zlib-compressed JSON."""
    if value[:1] == b"{":
        return dict(orjson.loads(value))
    if value[:1] != COLUMNS:
        return dict(orjson.loads(zlib.decompress(value)))
    (size,) = _LENGTH.unpack_from(value, 1)
    start = 1 + _LENGTH.size
    plain = dict(orjson.loads(zlib.decompress(value[start : start + size])))
    rows = plain.get("rows")
    if rows is None or "packed" not in rows:
        return plain
    n = int(rows.pop("packed_n"))
    offset = start + size
    for path, nones in rows.pop("packed"):
        array = np.frombuffer(value, dtype="<f8", count=n, offset=offset)
        offset += 8 * n
        if isinstance(path, str) and path in _ARRAYS:
            rows[path] = array.astype(np.float64)  # a writable copy in native order
            continue
        column = array.tolist()
        for i in nones:
            column[i] = None
        if isinstance(path, list):
            rows["features"][path[1]] = column
        else:
            rows[path] = column
    if offset != len(value):
        raise ValueError(f"summary of {len(value)} bytes holds {offset}")
    return plain
