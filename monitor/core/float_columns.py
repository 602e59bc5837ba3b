"""Number columns as float64 arrays: the form a summary's times, latencies and number-only feature columns take on
the summaries topic (raw little-endian floats after its JSON header) and in the detection stage.

A feature column goes as floats only when it holds numbers and nulls alone, at least one number (``None``
travels as NaN: an event's value is never NaN, the decoder rejects non-finite numbers); anything else (text,
booleans, a mix, nothing but nulls) stays a JSON list. Whole numbers that fit go as 1, 2 or 4-byte integers
(:func:`wire_types`). The detection stage keeps such a column as the array
it read, which is what its numeric streams take (integers come back as floats, as those streams read them):
a summary read off the topic then makes no Python object per value, where JSON made one per number, held it
until the watermark let the rows go, and the engine turned it back into floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core import kernels


def float_column(values: list[Any] | np.ndarray) -> np.ndarray | None:
    """``values`` as float64 (NaN for None) when it holds numbers and None only, at least one number, else
    None."""
    if isinstance(values, np.ndarray):
        return values
    try:
        floats = numbers(values)  # numbers only, the usual column: one pass
        if floats is not None:
            return floats
        got = kernels.numbers_with_nulls(values)  # (the compiled loop above stops at the first None)
    except OverflowError:  # an integer beyond float64 stays as it came
        return None
    if got is None or got[1] == 0:
        return None
    return got[0]


# How a column goes on the wire: float64, or the narrowest integer type that holds it exactly (a column of
# small integers, such as counts or codes, then costs what its JSON did rather than eight bytes a value).
WIRE_TYPES: dict[str, np.dtype[Any]] = {
    "f8": np.dtype("<f8"),
    "i1": np.dtype("<i1"),
    "i2": np.dtype("<i2"),
    "i4": np.dtype("<i4"),
}
_INTEGER_TYPES = (("i1", 127), ("i2", 32767), ("i4", 2**31 - 1))


def wire_types(columns: list[np.ndarray]) -> list[str]:
    """For equal-length float columns, the narrowest of :data:`WIRE_TYPES` that gives each back exactly (NaN
    and -0.0 need float64); one pass over them all."""
    if not columns or columns[0].size == 0:
        return ["f8"] * len(columns)
    table = np.stack(columns)
    with np.errstate(invalid="ignore"):
        whole = (np.trunc(table) == table).all(axis=1) & ~(np.signbit(table) & (table == 0)).any(axis=1)
        bound = np.maximum(-table.min(axis=1) - 1, table.max(axis=1))  # NaN where the column has a NaN
    out = []
    for ok, top in zip(whole.tolist(), bound.tolist(), strict=True):
        out.append(next((c for c, limit in _INTEGER_TYPES if top <= limit), "f8") if ok else "f8")
    return out


def pack(columns: list[np.ndarray], types: list[str]) -> bytes:
    """Equal-length columns one after another, each as its type of :data:`WIRE_TYPES` (little-endian)."""
    return b"".join(
        np.ascontiguousarray(c).astype(WIRE_TYPES[t]).tobytes() for c, t in zip(columns, types, strict=True)
    )


def _dtypes(types: list[str]) -> list[np.dtype[Any]]:
    try:
        return [WIRE_TYPES[t] for t in types]
    except (KeyError, TypeError):
        raise ValueError(f"summary floats: unknown column types {types!r}") from None


def packed_size(types: list[str], rows: int) -> int:
    """The bytes :func:`pack` makes of ``rows`` rows of columns of ``types`` (ValueError for an unknown type)."""
    return rows * sum(d.itemsize for d in _dtypes(types))


def unpack(data: bytes, types: list[str], rows: int) -> list[np.ndarray]:
    """The inverse of :func:`pack`: each column as a writable float64 array (not a view of ``data``). A length
    or type that does not match is a ValueError (a damaged or foreign message, which the caller skips and
    counts)."""
    dtypes = _dtypes(types)
    if len(data) != packed_size(types, rows):
        raise ValueError(f"summary floats: {len(data)} bytes for {len(types)} columns of {rows} rows")
    out: list[np.ndarray] = []
    at, k = 0, 0
    while k < len(dtypes):  # a run of columns of one type in one read
        d, run = dtypes[k], 1
        while k + run < len(dtypes) and dtypes[k + run] == d:
            run += 1
        block = np.frombuffer(data, dtype=d, count=run * rows, offset=at).reshape(run, rows).astype(np.float64)
        out.extend(block)
        at += run * rows * d.itemsize
        k += run
    return out


def as_values(column: list[Any] | np.ndarray) -> list[Any]:
    """A column as a list of values, as the decoder gives them: a float column's NaN as None."""
    if not isinstance(column, np.ndarray):
        return column
    out: list[Any] = column.tolist()
    for i in np.isnan(column).nonzero()[0].tolist():
        out[i] = None
    return out


def numbers(values: list[Any]) -> np.ndarray | None:
    """A column of numbers only (no None, no string, no boolean) as floats, else None
    (:func:`monitor.core.kernels.numbers`)."""
    return kernels.numbers(values)
