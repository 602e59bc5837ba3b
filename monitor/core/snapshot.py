"""Versioned snapshots of engine state as plain data (JSON-ready), and their exact restore.

Every stateful core class is encoded field by field into dicts, lists, strings and numbers; numpy
arrays become base64 bytes with dtype and shape; river's Rust ADWIN exports its own byte state. Restore
only builds classes from an allow-list: a snapshot read from a topic can never name arbitrary code
(no pickle). A restored object continues exactly as the original would have: the twin test runs every
engine and detector through snapshot and restore mid-stream and compares the results.

The bytes are written by orjson, which is several times faster than the standard library on the large
plain-data trees a partition's state makes (the serialisation held the consume loop longest in a checkpoint).
orjson knows neither NaN nor infinity (it writes null) nor integers beyond 64 bits, so :func:`encode` writes
those as ``{"$f": "nan"}`` and ``{"$int": "..."}`` nodes. :func:`loads` reads with the standard library, which
also reads snapshots of earlier releases (NaN and big integers written as bare JSON numbers).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
import orjson

from monitor.core import river_drift

SNAPSHOT_VERSION = 1

_REGISTRY: dict[str, type] = {}
# Worked out per class, never state: registered classes :func:`encode` found to be neither builtin nor numpy
# types, and how each class's objects are read (:func:`_layout`).
_OBJECT_TYPES: set[type] = set()
_LAYOUTS: dict[type, tuple[bool, tuple[str, ...], tuple[str, ...]]] = {}
_BIT_GENERATORS: dict[str, type] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "Philox": np.random.Philox,
}


class SealedDict(dict[Any, Any]):
    """Plain data no one changes any more (see :class:`Encoded`): its JSON is made once, by :func:`sealed_json`,
    and ``memo`` holds what a writer derived from those bytes (a checkpoint store, their pieces' digests)."""

    __slots__ = ("json", "memo")
    json: bytes | None
    memo: Any


class SealedList(list[Any]):
    """A list of plain data that no one changes any more, as :class:`SealedDict`."""

    __slots__ = ("json", "memo")
    json: bytes | None
    memo: Any


Sealed = SealedDict | SealedList


def seal(data: Any) -> Any:
    """``data`` (a dict or a list of plain data) as a sealed copy of its outer container; anything else as it is."""
    out: SealedDict | SealedList
    if type(data) is dict:
        out = SealedDict(data)
    elif type(data) is list:
        out = SealedList(data)
    else:
        return data
    out.json, out.memo = None, None
    return out


def sealed_json(x: Sealed) -> bytes:
    """The JSON of sealed plain data, made on first use and kept."""
    if x.json is None:
        x.json = orjson.dumps(x)  # a subclass of dict or list: orjson writes it as one
    return x.json


class Encoded:
    """Plain data :func:`encode` already produced, passed through as it is: a large store keeps the encoded
    form of its unchanged parts between snapshots, so a snapshot re-encodes only what changed. The data is
    sealed (:func:`seal`): a checkpoint writes its JSON once, and its pieces once (:mod:`monitor.io.checkpoint`)."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = seal(data)


def register(*classes: type) -> None:
    """Allow these classes in snapshots (done once by the modules that define engine state)."""
    for cls in classes:
        _REGISTRY[cls.__name__] = cls


def _fields(obj: Any) -> dict[str, Any]:
    layout = _layout(type(obj))
    if layout[0]:  # a dataclass: its fields
        return {name: getattr(obj, name) for name in layout[1]}
    out: dict[str, Any] = {}
    for name in layout[1]:  # slots
        if hasattr(obj, name):
            out[name] = getattr(obj, name)
    if hasattr(obj, "__dict__"):
        out.update(vars(obj))
    for name in layout[2]:  # caches: rebuilt from the state, never part of it
        out.pop(name, None)
    return out


def _layout(cls: type) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """How a class's objects are read for a snapshot, worked out once per class (a snapshot reads thousands of
    objects of a few dozen classes): whether it is a dataclass, its fields or its slots (every class's in its
    method resolution order), and the attributes it skips (``SNAPSHOT_SKIP``)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        if dataclasses.is_dataclass(cls):
            layout = True, tuple(f.name for f in dataclasses.fields(cls)), ()
        else:
            slots = tuple(name for c in cls.__mro__ for name in getattr(c, "__slots__", ()))
            layout = False, slots, tuple(getattr(cls, "SNAPSHOT_SKIP", ()))
        _LAYOUTS[cls] = layout
    return layout


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes as a JSON integer


def _int(x: int) -> Any:
    x = int(x)  # an int subclass (IntEnum) as the plain int it stands for
    return x if _INT_MIN <= x <= _INT_MAX else {"$int": str(x)}


def _float(x: float) -> Any:
    x = float(x)  # a float subclass (numpy's float64) as a plain float
    return x if math.isfinite(x) else {"$f": repr(x)}  # 'nan', 'inf' or '-inf'


def _rng_state(state: Any) -> Any:
    """A bit generator's state (nested dicts of strings and integers; PCG64's are 128-bit) as plain data."""
    if isinstance(state, dict):
        return {k: _rng_state(v) for k, v in state.items()}
    if isinstance(state, int) and not isinstance(state, bool):
        return _int(state)
    return encode(state)


def _rng_restore(state: Any) -> Any:
    if isinstance(state, dict):
        if "$int" in state:
            return int(state["$int"])
        if "$nd" in state or "$ndi" in state:
            return decode(state)
        return {k: _rng_restore(v) for k, v in state.items()}
    return state


_PACK_MIN_SIZE = 8  # integer arrays at least this long are packed (smaller ones are not worth a look)
_PACKED_TYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32"))
# each packed type with its range, read once (np.iinfo and a dtype's name cost microseconds per call, and a
# snapshot packs thousands of arrays)
_PACKED_RANGES = tuple((t, int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in _PACKED_TYPES)


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: np.dtype[Any]) -> str:
    """``str(dtype)``, remembered per dtype (a snapshot meets a handful)."""
    return str(dtype)


def _narrowest(lo: int, hi: int) -> np.dtype[Any] | None:
    """The first of :data:`_PACKED_TYPES` that holds every integer from ``lo`` to ``hi`` (None: none does)."""
    return next((t for t, low, high in _PACKED_RANGES if low <= lo and hi <= high), None)


def _b64(data: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(data).tobytes()).decode()


def _array(x: np.ndarray) -> dict[str, Any]:
    """An array as a ``$nd`` node (dtype, shape, base64 bytes), or an integer array as a ``$ndi`` node: its
    values in the narrowest integer type that holds them, and only its non-zero cells when they are few.
    Counts (histograms, bins, confusion cells) are mostly small and mostly zero: lossless, and several times
    smaller in a snapshot."""
    data = np.ascontiguousarray(x)
    if data.dtype.kind in "iu" and data.size >= _PACK_MIN_SIZE:
        flat = data.reshape(-1)
        lo, hi = int(flat.min()), int(flat.max())
        narrow = _narrowest(lo, hi)
        if narrow is not None and narrow.itemsize < data.dtype.itemsize:
            where = flat.nonzero()[0]
            index = np.dtype("uint8" if flat.size <= 256 else "uint16" if flat.size <= 65536 else "uint32")
            cells: list[str | None]
            sparse = where.size * (index.itemsize + narrow.itemsize) < flat.size * narrow.itemsize // 2
            if sparse and flat.size <= 2**32:
                cells = [_b64(where.astype(index)), _dtype_name(index), _b64(flat[where].astype(narrow))]
            else:
                cells = [None, None, _b64(flat.astype(narrow))]
            return {"$ndi": [_dtype_name(data.dtype), list(x.shape), _dtype_name(narrow), *cells]}
    if data.dtype == np.float64 and data.size >= _PACK_MIN_SIZE:
        decimal = _decimals(data.reshape(-1))
        if decimal is not None:
            exponent, ints = decimal
            return {"$ndd": [list(x.shape), exponent, _dtype_name(ints.dtype), _b64(ints)]}
    return {"$nd": [_dtype_name(data.dtype), list(x.shape), _b64(data)]}  # x's shape: a 0-d array stays 0-d


_MAX_DECIMALS = 9  # more digits than this after the point: written as raw floats


def _decimals(flat: np.ndarray) -> tuple[int, np.ndarray] | None:
    """``flat`` as integers and a power of ten when that round-trips bit for bit, in the narrowest integer
    type that holds them; else None. Values read from JSON are mostly decimals with a few digits (prices,
    ages, rounded scores): as scaled integers they take a half or a quarter of their raw bytes (the idea of
    the ALP float encoding). Bits, not values, are compared, so -0.0 and NaN fall back to raw floats."""
    exponent = 0
    for value in flat[:: max(1, flat.size // 8)][:8].tolist():  # a few values across the array: their most digits
        text = repr(value)
        if "e" in text or "n" in text:  # 1e-05, inf, nan
            return None
        exponent = max(exponent, 0 if text.endswith(".0") else len(text) - text.index(".") - 1)
    with np.errstate(over="ignore", invalid="ignore"):  # a huge value overflows when scaled: refused below
        while exponent <= _MAX_DECIMALS:
            scale = 10.0**exponent
            scaled = np.rint(flat * scale)
            if not np.abs(scaled).max() < 2.0**31:  # also False for NaN and infinity
                return None
            ints = scaled.astype(np.int64)
            if np.array_equal((ints / scale).view(np.int64), flat.view(np.int64)):
                narrow = _narrowest(int(ints.min()), int(ints.max()))  # (below 2**31 in size: int32 at most)
                return None if narrow is None else (exponent, ints.astype(narrow))
            exponent += 1
    return None


def _unpack_decimals(shape: list[int], exponent: int, narrow: str, values: str) -> np.ndarray:
    """The inverse of :func:`_array`'s ``$ndd`` node: the same division, so the same bits."""
    ints = np.frombuffer(base64.b64decode(values), dtype=np.dtype(narrow)).astype(np.float64)
    return (ints / 10.0**exponent).reshape(shape)


def _unpack_integers(
    dtype: str, shape: list[int], narrow: str, where: str | None, index: str | None, values: str
) -> np.ndarray:
    """The inverse of :func:`_array`'s ``$ndi`` node."""
    got = np.frombuffer(base64.b64decode(values), dtype=np.dtype(narrow)).astype(np.dtype(dtype))
    if where is None:
        return got.reshape(shape)
    out = np.zeros(int(np.prod(shape)), dtype=np.dtype(dtype))
    out[np.frombuffer(base64.b64decode(where), dtype=np.dtype(index))] = got
    return out.reshape(shape)


def encode(x: Any) -> Any:
    """Plain data for ``x``: JSON types only (non-finite floats and integers beyond 64 bits as nodes)."""
    kind = type(x)
    if kind is float:  # the common cases first, without a call
        return x if math.isfinite(x) else {"$f": repr(x)}
    if kind is str or kind is bool or x is None:
        return x
    if kind is int:
        return x if _INT_MIN <= x <= _INT_MAX else {"$int": str(x)}
    # the other common exact types next: each takes the branch the checks below would give it
    if kind is list:
        return _plain_list(x) or [encode(v) for v in x]
    if kind is dict:
        return {"$d": [[encode(k), encode(v)] for k, v in x.items()]}
    if kind is np.ndarray:
        return _array(x)
    if kind in _OBJECT_TYPES and _REGISTRY.get(kind.__name__) is kind:
        return _object(x, kind.__name__)
    if isinstance(x, bool | str):
        return x
    if isinstance(x, int):
        return _int(x)
    if isinstance(x, float):
        return _float(x)
    if isinstance(x, np.generic):
        return encode(x.item())
    if isinstance(x, np.ndarray):
        return _array(x)
    if isinstance(x, list):
        return _plain_list(x) or [encode(v) for v in x]
    if isinstance(x, tuple):
        return {"$t": [encode(v) for v in x]}
    if isinstance(x, set | frozenset):
        return {"$set": sorted((encode(v) for v in x), key=repr)}
    if isinstance(x, Counter):
        return {"$counter": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, OrderedDict):
        return {"$od": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, dict):
        return {"$d": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, Encoded):
        return x.data
    if isinstance(x, np.random.Generator):
        return {"$rng": _rng_state(x.bit_generator.state)}
    if isinstance(x, river_drift.ADWIN):
        helper_state = x._helper.__getstate__()
        params = [x.delta, x.clock, x.max_buckets, x.min_window_length, x.grace_period]
        if not all(isinstance(v, int) or math.isfinite(v) for v in params):
            raise ValueError(f"ADWIN parameters must be finite to be snapshotted: {params}")
        return {"$adwin": [params, bool(x._drift_detected), base64.b64encode(helper_state).decode()]}
    name = kind.__name__
    if _REGISTRY.get(name) is kind:
        _OBJECT_TYPES.add(kind)  # (none of the checks above took it: next time it goes here at once)
        return _object(x, name)
    raise TypeError(f"cannot snapshot a {type(x).__qualname__}")


def _object(x: Any, name: str) -> dict[str, Any]:
    """A registered class's object: its compact form if it has one, else its fields."""
    if hasattr(x, "to_plain"):  # a class with a compact form of its own
        return {"$o": name, "p": encode(x.to_plain())}
    return {"$o": name, "f": {k: encode(v) for k, v in _fields(x).items()}}


_VERBATIM = frozenset({str, bool, type(None)})


def _plain_list(x: list[Any]) -> list[Any] | None:
    """A copy of a non-empty list that :func:`encode` would give back value for value (strings, booleans and
    None, integers within 64 bits, finite floats), found in C-level passes over it; None otherwise, or when
    it cannot tell (the values are then encoded one by one, with the same result)."""
    if not x:
        return None
    kinds = set(map(type, x))
    if kinds <= _VERBATIM:
        return list(x)
    if kinds == {int}:
        return list(x) if min(x) >= _INT_MIN and max(x) <= _INT_MAX else None
    if kinds == {float}:
        return list(x) if math.isfinite(sum(x)) else None  # a NaN or an infinity makes the sum one
    return None


def decode(x: Any) -> Any:
    """Rebuild what :func:`encode` produced; unknown class names are refused."""
    if isinstance(x, list):
        return [decode(v) for v in x]
    if not isinstance(x, dict):
        return x
    if "$f" in x:
        return float(x["$f"])
    if "$int" in x:
        return int(x["$int"])
    if "$nd" in x:
        dtype, shape, data = x["$nd"]
        return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()
    if "$ndi" in x:
        return _unpack_integers(*x["$ndi"])
    if "$ndd" in x:
        return _unpack_decimals(*x["$ndd"])
    if "$t" in x:
        return tuple(decode(v) for v in x["$t"])
    if "$set" in x:
        return {decode(v) for v in x["$set"]}
    if "$counter" in x:
        return Counter({decode(k): decode(v) for k, v in x["$counter"]})
    if "$od" in x:
        return OrderedDict((decode(k), decode(v)) for k, v in x["$od"])
    if "$d" in x:
        return {decode(k): decode(v) for k, v in x["$d"]}
    if "$rng" in x:
        state = _rng_restore(x["$rng"])
        kind = _BIT_GENERATORS.get(state.get("bit_generator"))
        if kind is None:
            raise ValueError(f"snapshot names a random generator that is not allowed: {state.get('bit_generator')!r}")
        bit_gen = kind()
        bit_gen.state = state
        return np.random.Generator(bit_gen)
    if "$adwin" in x:
        (delta, clock, max_buckets, min_len, grace), detected, data = x["$adwin"]
        adwin = river_drift.ADWIN(
            delta=delta, clock=clock, max_buckets=max_buckets, min_window_length=min_len, grace_period=grace
        )
        adwin._helper.__setstate__(base64.b64decode(data))
        adwin._drift_detected = detected
        return adwin
    if "$o" in x:
        cls = _REGISTRY.get(x["$o"])
        if cls is None:
            raise ValueError(f"snapshot names a class that is not allowed: {x['$o']!r}")
        if "p" in x:
            return cls.from_plain(decode(x["p"]))  # type: ignore[attr-defined]
        obj: Any = object.__new__(cls)
        for k, v in x["f"].items():
            object.__setattr__(obj, k, decode(v))
        return obj
    raise ValueError(f"unknown snapshot node with keys {sorted(x)[:5]}")


def dumps(data: Any) -> bytes:
    """Encode to compact UTF-8 JSON (orjson; NaN, infinity and big integers are nodes, see :func:`encode`)."""
    return orjson.dumps(encode(data))


def loads(raw: bytes) -> Any:
    """Rebuild what :func:`dumps` wrote, or what earlier releases wrote with the standard library (bare NaN,
    Infinity and 128-bit integers, which orjson would refuse or read as floats)."""
    return decode(json.loads(raw))
