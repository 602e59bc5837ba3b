"""A batch's columns as the engine's streams take them: feature values as arrays, rows grouped by segment value.

Decoded columns are Python lists (the decoder keeps each message's values as they came); these functions turn
a model version's share of a batch into float or code arrays once, and its segment values into one bucket of
row positions per tracked value, learning a model's features, categories and segment values up to their caps.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from monitor.core import kernels
from monitor.core.chunks import run_starts, small_unique
from monitor.core.events import PredictionBatch
from monitor.core.float_columns import as_values, numbers
from monitor.core.join import Segments
from monitor.core.model_state import ModelState
from monitor.core.rules import ALL
from monitor.core.settings import MonitoringConfig
from monitor.core.stats import OVERFLOW, CategoryVocabulary

Bucket = tuple[tuple[str, str], np.ndarray | None]
"""(segment attribute, value) and its row positions; all traffic is ``(ALL, None)``."""

_NUMERIC_TYPES = frozenset({float, int, type(None)})


def take(column: list[Any], rows: np.ndarray | None) -> list[Any]:
    """``column``'s values at ``rows`` (all of it when None)."""
    return column if rows is None else [column[i] for i in rows.tolist()]


def take_feature(column: list[Any] | np.ndarray, rows: np.ndarray | None) -> list[Any] | np.ndarray:
    """:func:`take` of a feature column: a float column (:mod:`monitor.core.float_columns`) stays an array."""
    if isinstance(column, np.ndarray):
        return column if rows is None else column[rows]
    return take(column, rows)


def segment_buckets(
    state: ModelState, batch: PredictionBatch, rows: np.ndarray | None, mon: MonitoringConfig, capped: Counter[str]
) -> list[Bucket]:
    """All traffic plus one bucket per tracked segment value, each as row positions within ``rows``; new
    segment attributes and values are learned up to their caps (counted in ``capped`` past them)."""
    wanted = mon.segments or list(batch.segments)
    for attr in wanted:
        if attr == "":  # all traffic's bucket is ("", ""): an attribute without a name would be a second one
            continue
        if attr not in state.segment_codes and attr in batch.segments:
            if len(state.segment_attributes) >= mon.max_segment_attributes:
                capped["segment_attribute"] += 1
                continue
            state.segment_attributes.append(attr)
            state.segment_codes[attr] = {}
    buckets: list[Bucket] = [(ALL, None)]
    for attr in state.segment_attributes:
        column = batch.segments.get(attr)
        if column is None:
            continue
        codes_of = state.segment_codes[attr]
        overflow = overflow_code(codes_of, mon.max_segment_values)
        values = take(column, rows)
        codes = kernels.lookup_codes(codes_of, values, -2)
        # The overflow bucket's name as a value (a profile stage capped it, or an event carries it) is that bucket:
        # learned as a value of its own, two buckets would share one key (and its streams two runs in a batch).
        learned = codes_of.get(OVERFLOW)  # (a snapshot of an earlier release may have learned it)
        if learned is not None:
            codes[codes == learned] = overflow
        for i in (codes == -2).nonzero()[0].tolist():  # values not seen before (rare after warm-up), or missing
            value = values[i]
            if value is None:
                codes[i] = -1
                continue
            if value == OVERFLOW:
                codes[i] = overflow
                continue
            code = codes_of.get(value)
            if code is None:
                if len(codes_of) < mon.max_segment_values:
                    code = codes_of[value] = len(codes_of)
                else:
                    code = overflow
                    capped["segment_value"] += 1
            codes[i] = code
        if not codes.size:
            continue
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = run_starts(sorted_codes)  # each value's rows, in order (slices rather than np.split's loop)
        names = {c: v for v, c in codes_of.items()}
        ends = [*starts[1:].tolist(), codes.size]
        for code, a, b in zip(sorted_codes[starts].tolist(), starts.tolist(), ends, strict=True):
            if code < 0:
                continue
            buckets.append(((attr, names.get(code, OVERFLOW)), order[a:b]))
    return buckets


def overflow_code(codes_of: dict[str, int], max_values: int) -> int:
    """The overflow bucket's code for an attribute: past the cap, and past every code learned (a snapshot taken
    under a higher ``monitoring.max_segment_values`` may hold more values than the cap now allows; at the cap
    itself the overflow's rows would join a learned value's bucket under its name)."""
    return max(max_values, len(codes_of))


def segment_codes_by_row(
    state: ModelState, buckets: list[Bucket], n: int, mon: MonitoringConfig
) -> dict[str, np.ndarray]:
    """Each of ``n`` rows' segment value code (``state.segment_codes``; the overflow bucket past the cap), per
    tracked attribute, every one of them; -1 where a row has none."""
    out = {attr: np.full(n, -1, dtype=np.int64) for attr in state.segment_attributes}
    overflow = {attr: overflow_code(state.segment_codes[attr], mon.max_segment_values) for attr in out}
    for (attr, value), part in buckets:
        if part is not None:
            code = None if value == OVERFLOW else state.segment_codes[attr].get(value)
            out[attr][part] = overflow[attr] if code is None else code
    return out


def tracked_segments(state: ModelState | None, segments: Segments, max_values: int) -> Segments:
    """A row's segments as a model version's streams track them: its tracked attributes only, and a value
    past the attribute's cap of ``max_values`` as the overflow bucket (another partition's profile stage
    capped by what it saw first)."""
    if state is None:
        return segments
    pairs = dict(segments)
    out: list[tuple[str, str]] = []
    for attr in state.segment_attributes:
        value = pairs.get(attr)
        if value is None:
            continue
        codes_of = state.segment_codes[attr]
        if value not in codes_of and value != OVERFLOW and len(codes_of) >= max_values:
            value = OVERFLOW
        out.append((attr, value))
    return tuple(out)


def segment_combinations(buckets: list[Bucket], n: int) -> tuple[list[Segments], np.ndarray]:
    """Each of ``n`` rows' tracked segment buckets as a code into the batch's distinct combinations of them (a
    tuple of (attribute, value) pairs each): numpy over the rows, Python only per combination."""
    per_attr: dict[str, tuple[list[tuple[str, str]], np.ndarray]] = {}
    for bucket, part in buckets:
        if part is None:
            continue
        entry = per_attr.get(bucket[0])
        if entry is None:
            entry = per_attr[bucket[0]] = ([], np.zeros(n, dtype=np.int64))
        entry[1][part] = len(entry[0]) + 1  # 0: the row has no tracked value of this attribute
        entry[0].append(bucket)
    combos: list[Segments] = [()]
    code = np.zeros(n, dtype=np.int64)
    for values, col in per_attr.values():
        radix = len(values) + 1
        uniq, code = small_unique(code * radix + col)
        combos = [combos[u // radix] + ((values[u % radix - 1],) if u % radix else ()) for u in uniq.tolist()]
    return combos, code.reshape(-1)


def convert_column(
    state: ModelState, name: str, values: list[Any] | np.ndarray, mon: MonitoringConfig, capped: Counter[str]
) -> tuple[str, np.ndarray, np.ndarray | None] | None:
    """A feature column as floats (numeric, NaN missing) or codes (categorical, -1 missing), and where a
    value had the other kind's type (None when nowhere: the common case costs no mask). A float column (a
    summary's number-only column, :mod:`monitor.core.float_columns`) is a numeric one's floats already."""
    kind = state.kinds.get(name)
    if isinstance(values, np.ndarray):
        if kind == "numeric":
            return kind, values, None
        values = as_values(values)  # numbers where categories were expected, or a kind still to learn
    if kind is None:
        first = next((v for v in values if v is not None), None)
        if first is None:
            return None
        if len(state.kinds) >= mon.max_features_per_model:
            capped["feature"] += 1
            return None
        kind = state.kinds[name] = "categorical" if isinstance(first, str | bool) else "numeric"
        if kind == "categorical":
            state.vocab[name] = CategoryVocabulary(mon.max_categories)
    if kind == "numeric":
        floats = numbers(values)
        if floats is not None:
            return kind, floats, None
        if _NUMERIC_TYPES.issuperset(map(type, values)):  # numbers and None: numpy makes None NaN
            return kind, np.array(values, dtype=np.float64), None
        nan = math.nan
        out = [v if (t := type(v)) is float or t is int else nan for v in values]
        arr = np.asarray(out, dtype=np.float64)
        mistyped = np.fromiter((v is not None and type(v) not in (float, int) for v in values), bool, len(values))
        state.type_mismatch[name] += int(mistyped.sum())
        return kind, arr, mistyped
    codes, mistyped_codes = state.vocab[name].encode_categories(values)
    if mistyped_codes is not None:
        state.type_mismatch[name] += int(mistyped_codes.sum())
    return kind, codes, mistyped_codes
