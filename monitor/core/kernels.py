"""The hot path's per-value loops over Python objects: compiled (``monitor/core/_kernels.pyx``, built with
Cython when the package is installed) or, where no C compiler was at hand, their pure-Python twins here,
which give the same results more slowly. ``COMPILED`` says which runs; tests/unit/test_kernels.py checks
that both agree, and CI that the compiled ones were built."""

from __future__ import annotations

import importlib
from array import array
from collections.abc import Hashable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

_NUMBER_ONLY = frozenset({float, int})
_NUMBERS_AND_NULLS = frozenset({float, int, type(None)})


def numbers_py(values: list[Any]) -> np.ndarray | None:
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


def numbers_with_nulls_py(values: list[Any]) -> tuple[np.ndarray, int] | None:
    """A column of numbers and None as floats (NaN for None) with how many were numbers, else None (a string or
    a boolean among them)."""
    if not _NUMBERS_AND_NULLS.issuperset(map(type, values)):
        for v in values:  # as the compiled loop reads them: an int beyond float64 before a string raises
            if type(v) is int:
                float(v)
            elif v is not None and type(v) is not float:
                return None
    return np.array(values, dtype=np.float64), len(values) - values.count(None)


def row_codes_py(columns: list[list[Any]], n: int) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Each row's tuple of the columns' values as a code into the distinct tuples, in order of first
    appearance: (codes, distinct tuples)."""
    seen: dict[tuple[Any, ...], int] = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in zip(*columns, strict=True)), np.int64, count=n)
    return codes, list(seen)


def lookup_codes_py(codes_of: dict[Any, int], values: Sequence[Any], missing: int) -> np.ndarray:
    """``codes_of[v]`` for every value, ``missing`` where it has none (a value that cannot be a key, too)."""
    get = codes_of.get
    try:
        return np.fromiter(map(get, values, repeat(missing)), np.int64, count=len(values))
    except TypeError:  # an unhashable value
        return np.fromiter(
            (get(v, missing) if isinstance(v, Hashable) else missing for v in values), np.int64, count=len(values)
        )


VERSION = 12  # the _kernels.pyx this module expects (its VERSION)

try:
    _kernels: Any = importlib.import_module("monitor.core._kernels")
except ImportError:  # no C compiler when the package was installed: the twins above
    _kernels = None
if getattr(_kernels, "VERSION", None) != VERSION:  # built from an older .pyx: pip install -e . rebuilds it
    _kernels = None
COMPILED = _kernels is not None


def native() -> Any:
    """The compiled module, or None (read at each call: tests run the twins by setting ``_kernels`` to None).
    Modules whose twins are numpy code of their own (:mod:`monitor.core.cells`) call it directly."""
    return _kernels


def numbers(values: list[Any]) -> np.ndarray | None:
    """:func:`numbers_py`, compiled where built (an int beyond float64 raises OverflowError in both)."""
    if _kernels is not None and type(values) is list:
        try:
            out: np.ndarray | None = _kernels.numbers(values)
            return out
        except TypeError:  # a type the compiled loop leaves to the twin (a float subclass)
            pass
    return numbers_py(values)


def numbers_with_nulls(values: list[Any]) -> tuple[np.ndarray, int] | None:
    """:func:`numbers_with_nulls_py`, compiled where built (an int beyond float64 raises OverflowError in both)."""
    if _kernels is not None and type(values) is list:
        try:
            out: tuple[np.ndarray, int] | None = _kernels.numbers_with_nulls(values)
            return out
        except TypeError:  # a type the compiled loop leaves to the twin (a float subclass)
            pass
    return numbers_with_nulls_py(values)


def row_codes(columns: list[list[Any]], n: int) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """:func:`row_codes_py`, compiled where built."""
    if _kernels is not None and all(type(c) is list and len(c) == n for c in columns):
        codes, distinct = _kernels.row_codes(columns, n)
        return codes, distinct
    return row_codes_py(columns, n)


def lookup_codes(codes_of: dict[Any, int], values: Sequence[Any], missing: int) -> np.ndarray:
    """:func:`lookup_codes_py`, compiled where built."""
    if _kernels is not None and type(values) is list and type(codes_of) is dict:
        out: np.ndarray = _kernels.lookup_codes(codes_of, values, missing)
        return out
    return lookup_codes_py(codes_of, values, missing)
