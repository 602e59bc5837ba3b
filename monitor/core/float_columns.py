"""Number columns as float64 arrays: the form a summary's times, latencies and number-only feature columns take on
the summaries topic (raw little-endian floats after its JSON header) and in the detection stage.

A feature column goes as floats only when it holds numbers and nulls alone, at least one number (``None``
travels as NaN: an event's value is never NaN, the decoder rejects non-finite numbers); anything else (text,
booleans, a mix, nothing but nulls) stays a JSON list. The detection stage keeps such a column as the array
it read, which is what its numeric streams take (integers come back as floats, as those streams read them):
a summary read off the topic then makes no Python object per value, where JSON made one per number, held it
until the watermark let the rows go, and the engine turned it back into floats.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

_NUMBERS_AND_NULLS = frozenset({float, int, type(None)})
_NUMBER_ONLY = frozenset({float, int})
FLOAT = np.dtype("<f8")


def float_column(values: list[Any] | np.ndarray) -> np.ndarray | None:
    """``values`` as float64 (NaN for None) when it holds numbers and None only, at least one number, else
    None."""
    if isinstance(values, np.ndarray):
        return values
    try:
        floats = numbers(values)
        if floats is not None:
            return floats
        if not _NUMBERS_AND_NULLS.issuperset(map(type, values)) or values.count(None) == len(values):
            return None
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64 stays as it came
        return None


def pack(columns: list[np.ndarray]) -> bytes:
    """Equal-length columns one after another, as little-endian float64."""
    return b"".join(np.ascontiguousarray(c, dtype=FLOAT).tobytes() for c in columns)


def unpack(data: bytes, columns: int, rows: int) -> np.ndarray:
    """The inverse of :func:`pack`: a ``columns`` x ``rows`` array of its own (writable). A length that does
    not match is a ValueError (a damaged or foreign message, which the caller skips and counts)."""
    if len(data) != columns * rows * FLOAT.itemsize:
        raise ValueError(f"summary floats: {len(data)} bytes for {columns} columns of {rows} rows")
    return np.frombuffer(data, dtype=FLOAT).reshape(columns, rows).astype(np.float64)


def as_values(column: list[Any] | np.ndarray) -> list[Any]:
    """A column as a list of values, as the decoder gives them: a float column's NaN as None."""
    if not isinstance(column, np.ndarray):
        return column
    out: list[Any] = column.tolist()
    for i in np.flatnonzero(np.isnan(column)).tolist():
        out[i] = None
    return out


def numbers(values: list[Any]) -> np.ndarray | None:
    """A column of numbers only (no None, no string, no boolean) as floats, else None, in one pass over it.

    ``array('d')`` refuses None and strings but takes booleans as 0 and 1; only when a 0 or a 1 is among the
    floats do the types have to be read (a second pass), to tell a boolean from the number."""
    try:
        floats = np.frombuffer(array("d", values), dtype=np.float64)
    except TypeError:
        return None
    if ((floats == 0.0) | (floats == 1.0)).any() and not _NUMBER_ONLY.issuperset(map(type, values)):
        return None
    return floats
