"""The schema watch fed converted columns (one tally per batch) finds exactly what it finds walking the values.

The engine used to hand :meth:`SchemaWatch.observe` each field's raw values window by window; it now hands
:meth:`SchemaWatch.observe_window` counts tallied once per batch from the columns it converted. Random batches
with absent fields, explicit nulls, mistyped values (numbers as strings or booleans, categories as numbers),
new and overflowing categories and fields that come and go must give the same findings and the same counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.core.columns import convert_column
from monitor.core.engine import PartitionEngine
from monitor.core.float_columns import numbers as _numbers
from monitor.core.quality import FieldSchema, QualityFinding, SchemaWatch
from monitor.core.quality_tally import BatchTally, FieldColumn
from monitor.core.stats import CategoryVocabulary

# Regimes of the last batches: clean, with one break at a time among clean batches, so a window with that break
# alone is among the windows the watch may skip as quiet.
CLEAN, STUCK_CATEGORY, NEW_CATEGORIES, STUCK_NUMBER, FAR_NUMBERS = 5, 6, 7, 8, 9
TAIL = [CLEAN] * 3 + [STUCK_CATEGORY] * 2 + [CLEAN] * 3 + [NEW_CATEGORIES] * 2
TAIL += [CLEAN] * 3 + [STUCK_NUMBER] * 2 + [CLEAN] * 3 + [FAR_NUMBERS] * 2
POOL = ["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white", "grey", "__other__"]


def _numeric(rng: np.random.Generator, n: int, regime: int) -> list[Any]:
    values: list[Any] = np.round(rng.normal(10, 3, n), 1).tolist()
    if regime == STUCK_NUMBER:
        return [5.0] * n
    if regime == FAR_NUMBERS:  # beyond any range a baseline here can learn (1,000 is among its values)
        return [1e6 if rng.random() < 0.2 else v for v in values]
    if regime >= CLEAN:
        return values
    for i in range(n):
        r = rng.random()
        if r < 0.1 * (regime == 1):
            values[i] = None
        elif r < 0.15:
            values[i] = int(values[i])
        elif r < 0.16 + 0.2 * (regime == 2):
            values[i] = f"{values[i]}"
        elif r < 0.18:
            values[i] = bool(rng.random() < 0.5)
        elif r < 0.2:
            values[i] = float(rng.integers(0, 2))  # 0.0 and 1.0: the numbers a boolean looks like
        elif r < 0.21 + 0.3 * (regime == 3):
            values[i] = 1_000.0  # out of range
    if regime == 4:
        values = [5.0] * n  # a stuck sensor
    return values


def _categorical(rng: np.random.Generator, n: int, regime: int) -> list[Any]:
    width = 3 if regime in (0, 4) or regime >= CLEAN else len(POOL)
    values: list[Any] = [POOL[int(k)] for k in rng.integers(0, width, n)]
    if regime == STUCK_CATEGORY:
        return ["red"] * n
    if regime == NEW_CATEGORIES:
        return [f"new-{i % 3}" if rng.random() < 0.2 else v for i, v in enumerate(values)]
    if regime >= CLEAN:
        return values
    for i in range(n):
        r = rng.random()
        if r < 0.05 + 0.2 * (regime == 1):
            values[i] = None
        elif r < 0.08:
            values[i] = bool(rng.random() < 0.5)
        elif r < 0.1 + 0.2 * (regime == 2):
            values[i] = [1, 0.0, 2.5, 0][int(rng.integers(0, 4))]  # numbers, some equal to True / False
        elif r < 0.12:
            values[i] = f"new-{int(rng.integers(0, 40))}"  # past the vocabulary's capacity soon
    if regime == 4:
        values = ["red"] * n
    return values


def _batches(seed: int, count: int) -> list[tuple[dict[str, list[Any]], dict[str, list[int]]]]:
    """Feature columns and explicit-null rows per batch; the regime (clean, nulls, mistyped, out of range,
    constant) changes every few batches so checks fire and clear."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(count):
        n = int(rng.choice([1, 7, 49, 50, 51, 130, 333]))
        regime = (b // 4) % 5 if b >= 8 else 0
        if b >= 40:
            regime = TAIL[(b - 40) % len(TAIL)]
        columns: dict[str, list[Any]] = {
            "num": _numeric(rng, n, regime),
            "cat": _categorical(rng, n, regime),
        }
        if b % 7 != 3 or b >= 40:  # sometimes left out of a whole batch
            columns["opt"] = [None if rng.random() < 0.3 else float(v) for v in rng.normal(0, 1, n)]
        if b >= 12:
            columns["late"] = [None if rng.random() < 0.5 else "x" for _ in range(n)]  # a new field
        if b % 5 == 0 or b >= 40:
            columns["flag"] = [bool(v) if rng.random() < 0.9 else None for v in rng.integers(0, 2, n)]
        nulls: dict[str, list[int]] = {}
        for name, values in columns.items():
            missing = [i for i, v in enumerate(values) if v is None]
            nulls[name] = [i for i in missing if rng.random() < 0.5]  # the rest were left out of the event
        out.append((columns, nulls))
    return out


def _plain(findings: list[QualityFinding]) -> list[str]:
    """Findings as text: NaN equals NaN, and every field of every finding is compared."""
    return [repr(f) for f in findings]


def _counts(watch: SchemaWatch) -> list[tuple[Any, ...]]:
    return [
        (
            name,
            c.absent,
            c.null,
            c.mismatch,
            c.present,
            c.out_of_range,
            c.unseen,
            repr(c.minimum),
            repr(c.maximum),
            c.first_unseen,
            c.other,
            c.codes.tolist(),
        )
        for name, c in watch.counts.items()
    ]


def _watch(schema: dict[str, FieldSchema] | None) -> SchemaWatch:
    return SchemaWatch(
        window_events=50,
        baseline_events=120,
        min_rate_change=0.05,
        max_p_value=1e-3,
        range_tolerance=0.1,
        max_fields=4,
        schema=dict(schema) if schema is not None else None,
    )


def _is_open(now_open: set[tuple[str, str]]) -> Callable[[str, str], bool]:
    """The alert lifecycle as far as the watch asks: fired and not yet cleared."""
    return lambda kind, feature: (kind, feature) in now_open


PROFILE = {
    "num": FieldSchema("numeric", 1_000, null_rate=0.01, minimum=0.0, maximum=20.0),
    "cat": FieldSchema("categorical", 1_000, categories=["red", "green", "blue"], top_share=0.4),
    "gone": FieldSchema("numeric", 1_000, absent_rate=0.97, minimum=0.0, maximum=1.0),  # rare, then never sent
}


@pytest.mark.parametrize(("seed", "schema"), [(1, None), (2, None), (5, None), (3, PROFILE), (4, PROFILE)])
def test_tallied_columns_give_the_same_findings_as_walking_the_values(
    seed: int, schema: dict[str, FieldSchema] | None
) -> None:
    engine = PartitionEngine(
        load_config(environ={}, overrides={"monitoring": {"max_categories": 6}}), clock=lambda: 0.0
    )
    state = engine._model("m", "v1")
    assert state is not None
    walked, tallied = _watch(schema), _watch(schema)
    opened: dict[int, set[tuple[str, str]]] = {id(walked): set(), id(tallied): set()}
    fired = skipped = 0
    kinds_seen: set[str] = set()
    for columns, nulls in _batches(seed, 80):
        n = len(next(iter(columns.values())))
        converted: dict[str, tuple[list[Any], str, np.ndarray, np.ndarray | None]] = {}
        for name, values in columns.items():
            out = convert_column(state, name, values, engine.config.monitoring, engine.model_monitor.capped)
            if out is not None:
                converted[name] = (values, *out)
        labels = {name: v.labels() for name, v in state.vocab.items()}
        null_masks = {name: np.isin(np.arange(n), rows) for name, rows in nulls.items()}
        fields = {
            name: FieldColumn(
                kind,
                column,
                null_masks[name] if nulls[name] else None,
                mismatch,
                labels.get(name, []),
                state.vocab[name].capacity if kind == "categorical" else None,
                values,
            )
            for name, (values, kind, column, mismatch) in converted.items()
        }
        stops = tallied.window_stops(n)
        assert stops == walked.window_stops(n) and stops[-1] == n
        tally = BatchTally(fields, stops)
        start = 0
        quiet: list[bool] | None = None
        for k, stop in enumerate(stops):
            for name, (values, kind, column, _) in converted.items():  # what the engine did before
                overflow = state.vocab[name].capacity if kind == "categorical" else None
                explicit = int(null_masks[name][start:stop].sum())
                walked.observe(name, values[start:stop], explicit, kind, column[start:stop], overflow)
            fresh = tallied.events == 0 and stop - start == tallied.window_events and tallied.schema is not None
            if fresh and quiet is None:
                quiet = tallied.quiet_windows(tally, _is_open(opened[id(tallied)]))
            if fresh and quiet is not None and quiet[k]:  # what the engine does with a quiet window
                assert (
                    walked.end_batch(
                        stop - start, float(start), float(stop), state.kinds, labels, _is_open(opened[id(walked)])
                    )
                    == []
                ), "a window found quiet has a finding"
                tallied.skip_window(stop - start, float(start))
                skipped += 1
                assert _counts(tallied) == _counts(walked) == [] and tallied.windows == walked.windows
                start = stop
                continue
            quiet = None
            tallied.observe_window(tally, k)
            assert _counts(tallied) == _counts(walked)
            results = []
            for watch in (walked, tallied):
                now_open = opened[id(watch)]
                findings = watch.end_batch(
                    stop - start, float(start), float(stop), state.kinds, labels, _is_open(now_open)
                )
                for f in findings:
                    if f.fire:
                        now_open.add((f.kind, f.feature))
                    elif f.clear:
                        now_open.discard((f.kind, f.feature))
                results.append(findings)
            assert _plain(results[1]) == _plain(results[0])
            fired += sum(f.fire for f in results[0])
            kinds_seen |= {f.check for f in results[0] if f.fire}
            start = stop
        assert (tallied.events, tallied.seq, tallied.windows, tallied.capped) == (
            walked.events,
            walked.seq,
            walked.windows,
            walked.capped,
        )
        assert repr(tallied.schema) == repr(walked.schema)
    assert fired > 0 and walked.windows > 20 and walked.capped > 0  # the random breaks did reach the checks
    # Some windows were quiet and skipped, except where "cat" took the numeric kind from a number sent first:
    # its strings are all type mismatches then, and no window is quiet.
    assert skipped < walked.windows and (skipped > 0 or state.kinds["cat"] == "numeric")
    assert {"missing_field", "new_field", "type_change", "null_rate", "out_of_range", "constant"} <= kinds_seen


def _encode_reference(vocab: CategoryVocabulary, column: list[Any]) -> list[int]:
    """The per-value coding the vectorised one must match: row order, booleans as text, numbers as text."""
    out = []
    for value in column:
        if value is None:
            out.append(-1)
        else:
            out.append(vocab._code(("true" if value else "false") if isinstance(value, bool) else str(value)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_category_codes_match_coding_value_by_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast, slow = CategoryVocabulary(5), CategoryVocabulary(5)
    for _ in range(20):
        n = int(rng.integers(0, 40))
        pool: list[Any] = ["a", "b", "true", "1", None, True, False, "c", "d", "e", "f"]
        if rng.random() < 0.3:
            pool += [1, 0.0, 2.5]  # numbers: 1 and 0.0 hash like True and False
        column = [pool[int(i)] for i in rng.integers(0, len(pool), n)]
        assert fast.encode(column).tolist() == _encode_reference(slow, column)
        assert fast.values == slow.values
        codes, numbers = fast.encode_categories(column)
        kept = [v if isinstance(v, str | bool) else None for v in column]
        assert codes.tolist() == _encode_reference(slow, kept)
        mistyped = [v is not None and not isinstance(v, str | bool) for v in column]
        assert (numbers is None and not any(mistyped)) or (numbers is not None and numbers.tolist() == mistyped)


def test_a_number_equal_to_true_is_not_coded_as_true() -> None:
    vocab = CategoryVocabulary(10)
    assert vocab.encode([True, 1, "x"]).tolist() == [0, 1, 2] and vocab.values == ["true", "1", "x"]
    codes, numbers = CategoryVocabulary(10).encode_categories([False, 0.0, None, "x"])
    assert codes.tolist() == [0, -1, -1, 1] and numbers is not None and numbers.tolist() == [False, True, False, False]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.5, 2, -3.25], [1.5, 2.0, -3.25]),
        ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]),
        ([1.5, True], None),  # a boolean among numbers is a mismatch, not 1.0
        ([0.5, False, 1.0], None),
        ([1.5, None], None),
        ([1.5, "2.5"], None),
        ([], []),
    ],
)
def test_a_column_of_numbers_only_converts_in_one_pass(values: list[Any], expected: list[float] | None) -> None:
    out = _numbers(values)
    assert (out is None and expected is None) or (out is not None and out.tolist() == expected)


def test_mistyped_numbers_are_counted_and_blank_in_the_column() -> None:
    engine = PartitionEngine(load_config(environ={}), clock=lambda: 0.0)
    state = engine._model("m", "v1")
    assert state is not None
    out = convert_column(
        state, "x", [1.5, True, None, "3", 0.0, 7], engine.config.monitoring, engine.model_monitor.capped
    )
    assert out is not None
    kind, column, mismatch = out
    assert kind == "numeric" and mismatch is not None
    assert [None if math.isnan(v) else v for v in column.tolist()] == [1.5, None, None, None, 0.0, 7.0]
    assert mismatch.tolist() == [False, True, False, True, False, False] and state.type_mismatch["x"] == 2


def test_a_vocabulary_from_an_older_snapshot_still_codes_missing_values() -> None:
    """Snapshots taken before the vocabulary kept an entry for None restore without it: codes are the same."""
    vocab = CategoryVocabulary(5)
    vocab.values, vocab._codes = ["a", "b"], {"a": 0, "b": 1}  # as decoded from such a snapshot
    assert vocab.encode(["b", None, "a"]).tolist() == [1, -1, 0]
    assert vocab._codes[None] == -1 and vocab.encode([None, "a"]).tolist() == [-1, 0]
    restored = CategoryVocabulary.restore(vocab.snapshot())
    assert restored.encode(["c", None, "a"]).tolist() == [2, -1, 0] and restored.values == ["a", "b", "c"]


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    fields=st.integers(2, 6),
    n=st.integers(1, 400),
    window=st.sampled_from([1, 7, 50, 400]),
    rise=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_number_columns_counted_together_equal_each_counted_alone(seed, fields, n, window, rise) -> None:
    """The stacked count of the number-typed columns (every window's missing, null, mismatched and present
    values, its extremes, and whether it is quiet against a schema) equals each column's own tally, for
    missing, null, mismatched, constant and out-of-range values, schemas that say numeric or categorical, with
    or without a range."""
    from monitor.core.quality_tally import _FieldTally

    rng = np.random.default_rng(seed)
    stops, starts, ends = _windows(n, window)
    columns, schema = {}, {}
    for i in range(fields):
        col = rng.choice([rng.normal(5, 3, n), np.round(rng.normal(5, 1, n)), np.full(n, 2.0)])
        col[rng.random(n) < rng.choice([0.0, 0.1, 0.6])] = np.nan
        blank = np.isnan(col)
        nulls = (blank & (rng.random(n) < 0.5)) if rng.random() < 0.5 else None
        mismatch = (blank & ~(nulls if nulls is not None else False)) & (rng.random(n) < 0.3)
        columns[f"f{i}"] = FieldColumn("numeric", col, nulls, mismatch if rng.random() < 0.5 else None)
        kind = "numeric" if rng.random() < 0.8 else "categorical"
        low, high = (math.nan, math.nan) if rng.random() < 0.2 else sorted(rng.normal(5, 4, 2).tolist())
        schema[f"f{i}"] = FieldSchema(
            kind, 1000, absent_rate=float(rng.choice([0.0, 0.1])), null_rate=float(rng.choice([0.0, 0.05])),
            mismatch_rate=float(rng.choice([0.0, 0.02])), minimum=low, maximum=high,
            unseen_rate=float(rng.choice([0.0, 0.01])),
        )  # fmt: skip
    tally = BatchTally(columns, stops)
    assert tally.numeric is not None
    need = max(50, window // 2) if rng.random() < 0.5 else 1
    alone = {name: _FieldTally(f, starts, ends) for name, f in columns.items()}
    expected = []
    for name, t in alone.items():
        together = tally.fields[name]
        for attr in ("mismatch", "missing", "null", "present"):
            assert getattr(together, attr) == getattr(t, attr), attr
        assert repr(together.low) == repr(t.low) and repr(together.high) == repr(t.high)
        expected.append(t.quiet(schema[name], tally.sizes, rise, need, 0.1).tolist())
    got = tally.numeric.quiet(tally.numeric_names, schema, tally.sizes, rise, need, 0.1)
    assert got.tolist() == expected


def _windows(n: int, window: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """A batch of ``n`` rows cut into windows of ``window``: where each ends (the last may be short), and each
    window's start and end as arrays."""
    stops = [*range(window, n, window), n]
    ends = np.asarray(stops, dtype=np.intp)
    return stops, np.concatenate([[0], ends[:-1]]).astype(np.intp), ends


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 100_000), fields=st.integers(2, 5), n=st.integers(1, 300), window=st.sampled_from([1, 7, 50])
)
def test_out_of_range_counted_together_equals_each_column_alone(seed, fields, n, window) -> None:
    """The number-typed columns' values outside their schema's ranges, counted for all columns at once, equal each
    column's own count per window, values exactly at a range's ends (inside) and missing values included."""
    from monitor.core.quality_tally import _FieldTally, allowed_range

    rng = np.random.default_rng(seed)
    stops, starts, ends = _windows(n, window)
    columns, schema = {}, {}
    for i in range(fields):
        low, high = (math.nan, math.nan) if rng.random() < 0.2 else sorted(rng.normal(5, 4, 2).tolist())
        schema[f"f{i}"] = FieldSchema("numeric", 1000, minimum=low, maximum=high)
        col = rng.normal(5, 6, n)
        col[rng.random(n) < 0.1] = np.nan
        allowed = allowed_range(schema[f"f{i}"], 0.1)
        if allowed is not None:  # some values exactly at the ends
            col[rng.random(n) < 0.2] = allowed[0]
            col[rng.random(n) < 0.2] = allowed[1]
        columns[f"f{i}"] = FieldColumn("numeric", col)
    tally = BatchTally(columns, stops)
    tally.count_outside(schema, 0.1)
    for name, f in columns.items():
        allowed = allowed_range(schema[name], 0.1)
        if allowed is None:
            continue
        alone = _FieldTally(f, starts, ends)
        assert tally.fields[name]._range == allowed  # counted together, not left for outside() to count
        assert [tally.fields[name].outside(k, *allowed) for k in range(len(stops))] == [
            alone.outside(k, *allowed) for k in range(len(stops))
        ]


def test_a_batch_whose_codes_name_other_values_is_not_counted_by_the_kept_unseen_codes() -> None:
    """The watch keeps, per field, which category codes name no category of its schema (``unseen_tables``), so
    that a batch need not work them out again; the table holds only while the schema's categories and the
    field's code labels stay the same. Fed through ``BatchTally`` with the watch's tables, as the engine feeds
    it: the same codes with labels as many as before but naming other values, then the same values in another
    order, must be counted by the batch's own labels (a table kept for the first labels counts 0 and 0 unseen
    values, and the unseen-category check stays quiet)."""
    watch = _watch({"cat": FieldSchema("categorical", 1_000, categories=["red", "green", "blue"])})
    codes = np.tile(np.array([0] * 9 + [1], dtype=np.int64), 5)  # one window of 50: 45 code 0, 5 code 1
    got: list[tuple[int, str, list[str]]] = []
    for labels in (["red", "green", "__other__"], ["violet", "red", "__other__"], ["red", "violet", "__other__"]):
        values = [labels[code] for code in codes.tolist()]
        column = FieldColumn("categorical", codes, labels=labels, overflow=2, values=values)  # a vocabulary of 2
        stops = watch.window_stops(codes.size)
        assert stops == [codes.size]
        watch.observe_window(BatchTally({"cat": column}, stops, watch.unseen_tables()), 0)
        counts = watch.counts["cat"]
        unseen, first = counts.unseen, counts.first_unseen
        findings = watch.end_batch(codes.size, 0.0, 1.0, {"cat": "categorical"}, {"cat": labels})
        got.append((unseen, first, [f.check for f in findings if f.fire]))
    assert got == [(0, "", []), (45, "violet", ["unseen_category"]), (5, "violet", ["unseen_category"])]
