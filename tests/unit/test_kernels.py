"""The compiled per-value loops (monitor/core/_kernels.pyx) give exactly what their pure-Python twins give,
on the values a decoded batch holds and on the odd ones; CI builds them (a missing C compiler would leave the
monitor on the slower twins without a word)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core import kernels
from tests.unit.compiled import compiled

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["a", "b", "DE", "US", ""]),
)


def test_ci_builds_the_compiled_loops() -> None:
    if os.environ.get("CI"):
        assert kernels.COMPILED, "monitor/core/_kernels.pyx was not built: is a C compiler installed?"


def _numbers(f: Any, values: list[Any]) -> Any:
    try:
        return f(values)
    except OverflowError:
        return "overflow"


@compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False), st.integers(-(2**70), 2**70)), max_size=40) | st.lists(VALUES))
def test_numbers_compiled_and_twin_agree(values: list[Any]) -> None:
    a, b = _numbers(kernels.numbers, values), _numbers(kernels.numbers_py, values)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        assert a.dtype == b.dtype == np.float64 and np.array_equal(a, b)
    else:
        assert type(a) is type(b) and (a is None or a == b), (a, b)


def test_numbers_tells_a_boolean_from_a_number() -> None:
    assert kernels.numbers([1.0, True]) is None and kernels.numbers([1, 0, 2.5]).tolist() == [1.0, 0.0, 2.5]
    assert kernels.numbers([1.0, None]) is None and kernels.numbers(["1"]) is None
    assert kernels.numbers([]).size == 0


@compiled
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-(2**70), 2**70)), max_size=40)
    | st.lists(st.one_of(st.none(), VALUES, st.just(10**400)))
)
def test_numbers_with_nulls_compiled_and_twin_agree(values: list[Any]) -> None:
    a, b = _numbers(kernels.numbers_with_nulls, values), _numbers(kernels.numbers_with_nulls_py, values)
    if isinstance(a, tuple) and isinstance(b, tuple):
        assert a[0].dtype == b[0].dtype == np.float64 and a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
    else:
        assert type(a) is type(b) and (a is None or a == b), (a, b)


def test_numbers_with_nulls_makes_none_nan_and_counts_the_numbers() -> None:
    for f in (kernels.numbers_with_nulls, kernels.numbers_with_nulls_py):
        floats, present = f([None, 1, 2.5, None, -0.0])
        assert np.isnan(floats[[0, 3]]).all() and floats[[1, 2]].tolist() == [1.0, 2.5] and present == 3
        assert str(floats[4]) == "-0.0"
        assert f([1.0, True]) is None and f([None, "1"]) is None and f([None, None])[1] == 0
        assert f([]) is not None and f([])[0].size == 0
        with pytest.raises(OverflowError):
            f([None, 10**400])
        with pytest.raises(OverflowError):  # read in order: the int comes first
            f([10**400, "a"])
        assert f(["a", 10**400]) is None


@compiled
@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(VALUES, min_size=7, max_size=7), min_size=0, max_size=3))
def test_row_codes_compiled_and_twin_agree(columns: list[list[Any]]) -> None:
    a_codes, a_seen = kernels.row_codes(columns, 7 if columns else 0)
    b_codes, b_seen = kernels.row_codes_py(columns, 7 if columns else 0)
    assert a_codes.tolist() == b_codes.tolist() and a_seen == b_seen


def test_row_codes_code_tuples_in_order_of_first_appearance() -> None:
    codes, seen = kernels.row_codes([["DE", "US", "DE", None], ["f", "m", "f", "m"]], 4)
    assert codes.tolist() == [0, 1, 0, 2] and seen == [("DE", "f"), ("US", "m"), (None, "m")]


@compiled
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(VALUES, st.integers(-1, 50)), st.lists(VALUES))
def test_lookup_codes_compiled_and_twin_agree(codes_of: dict[Any, int], values: list[Any]) -> None:
    assert kernels.lookup_codes(codes_of, values, -7).tolist() == kernels.lookup_codes_py(codes_of, values, -7).tolist()


def test_lookup_codes_gives_missing_for_unknown_and_unhashable_values() -> None:
    codes = kernels.lookup_codes({"a": 0, None: -1}, ["a", "b", None, ["x"]], -2)  # type: ignore[list-item]
    assert codes.tolist() == [0, -2, -1, -2]


def _twin(f: Any, *args: Any) -> Any:
    """``f(*args)`` on the pure-Python twins (the compiled module set aside for the call)."""
    saved = kernels._kernels
    kernels._kernels = None
    try:
        return f(*args)
    finally:
        kernels._kernels = saved


ODD = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324])


@compiled
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.floats(allow_nan=True) | ODD, st.floats(allow_nan=True) | ODD), max_size=6
    ),
    st.integers(0, 2**32),
)
def test_cells_by_run_compiled_and_numpy_agree(runs: list[tuple[int, float, float]], seed: int) -> None:
    from monitor.core.cells import cells_by_run

    rng = np.random.default_rng(seed)
    lengths = np.array([r[0] for r in runs], dtype=np.int64)
    lo, width = np.array([r[1] for r in runs]), np.array([r[2] for r in runs])
    x = rng.normal(0, 3, int(lengths.sum())) * rng.choice([1.0, 1e300, 1e-300], int(lengths.sum()))
    x[rng.random(x.size) < 0.05] = np.inf
    with np.errstate(all="ignore"):
        assert cells_by_run(x, lengths, lo, width).tolist() == _twin(cells_by_run, x, lengths, lo, width).tolist()


@compiled
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 6), st.integers(1, 9))
def test_edge_codes_compiled_and_numpy_agree_and_match_searchsorted(seed: int, rows: int, width_edges: int) -> None:
    from monitor.core.cells import EdgeLookup, cells

    rng = np.random.default_rng(seed)
    lo, width = rng.normal(0, 1, rows), rng.uniform(0.01, 1.0, rows)
    edges = np.sort(rng.normal(0, 2, (rows, width_edges)), axis=1)
    padded = rng.random((rows, width_edges - width_edges // 2)) < 0.3
    edges[:, width_edges // 2 :][padded] = np.nan
    edges = np.sort(edges, axis=1)  # NaN padding on the right
    if width_edges > 2:
        edges[:, 1] = edges[:, 0]  # two edges in one cell
    row = rng.integers(0, rows, 500)
    x = rng.normal(0, 2, 500)
    x[:20] = edges[row[:20], 0]  # on an edge
    cell = cells(x, lo[row], width[row])
    lookup = EdgeLookup(edges, lo, width)
    got = lookup.codes(x, cell, row)
    assert got.tolist() == _twin(lookup.codes, x, cell, row).tolist()
    order = np.argsort(row, kind="stable")  # the same values in runs, one per row
    runs = np.bincount(row, minlength=rows)
    by_run = lookup.codes_by_run(x[order], cell[order], runs)
    assert by_run.tolist() == got[order].tolist() == _twin(lookup.codes_by_run, x[order], cell[order], runs).tolist()
    expect = [int(np.searchsorted(edges[r][~np.isnan(edges[r])], v, side="left")) for r, v in zip(row, x, strict=True)]
    assert got.tolist() == expect


@compiled
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40)), max_size=6), st.integers(0, 2**32))
def test_sorted_codes_match_searchsorted_on_each_runs_edges(runs: list[tuple[int, int]], seed: int) -> None:
    """Each run's values placed among its own edges (ties, infinities, NaN values, values on an edge, runs with no
    value or no edge, a few edges counted and more than 16 halved) exactly as ``np.searchsorted(...,
    side="left")`` places them, by run and by row."""
    rng = np.random.default_rng(seed)
    lengths = np.array([r[0] for r in runs], dtype=np.int64)
    edges_of = [np.sort(rng.choice([-np.inf, -1.0, 0.0, 0.0, 0.5, 2.0, np.inf], k)) for _, k in runs]
    edges = np.concatenate([np.zeros(0), *edges_of])
    bounds = np.concatenate([[0], np.cumsum([e.size for e in edges_of])]).astype(np.int64)
    x = rng.choice([-np.inf, -2.0, -1.0, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0, np.inf, np.nan], int(lengths.sum()))
    row = np.repeat(np.arange(len(runs)), lengths)
    expect = [int(np.searchsorted(edges_of[r], v, side="left")) for r, v in zip(row.tolist(), x, strict=True)]
    module = kernels.native()
    assert module.sorted_codes_by_run(x, lengths, edges, bounds).tolist() == expect
    shuffled = rng.permutation(x.size)
    got = module.sorted_codes(x[shuffled], row[shuffled], edges, bounds)
    assert got.tolist() == [expect[i] for i in shuffled.tolist()]


@compiled
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=8), st.integers(1, 70), st.integers(0, 2**32))
def test_counts_by_run_compiled_and_numpy_agree(lengths: list[int], width: int, seed: int) -> None:
    from monitor.core.chunks import counts_by_run

    runs = np.array(lengths, dtype=np.int64)
    codes = np.random.default_rng(seed).integers(0, width, int(runs.sum()))
    got = counts_by_run(codes, runs, width)
    assert got.shape == (runs.size, width) and got.sum(axis=1).tolist() == lengths
    assert got.tolist() == _twin(counts_by_run, codes, runs, width).tolist()


@compiled
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 5), st.lists(st.integers(0, 9), min_size=1, max_size=4), st.booleans())
def test_stream_layout_compiled_and_numpy_agree(seed: int, subjects: int, sizes: list[int], single: bool) -> None:
    from monitor.core.numeric_streams import stream_layout

    rng = np.random.default_rng(seed)
    n = 12
    sizes = [n] if single else [n, *sizes]
    grouped = None if single else np.concatenate([np.arange(n)] + [rng.choice(n, k, replace=False) for k in sizes[1:]])
    lengths = np.array(sizes, dtype=np.int64)
    matrix = rng.normal(0, 1, (subjects, n))
    ids = rng.integers(-1, 50, (subjects, lengths.size))
    m = int(lengths.sum())
    times, positions = rng.uniform(0, 100, m), rng.integers(0, 10**6, m)
    got = stream_layout(matrix, grouped, ids, lengths, times, positions)
    want = _twin(stream_layout, matrix, grouped, ids, lengths, times, positions)
    assert all(a.dtype == b.dtype and a.tolist() == b.tolist() for a, b in zip(got, want, strict=True))
    assert got[0].size == subjects * m


PH_STATE = ("ph_n", "ph_sum", "ph_inc", "ph_dec", "ph_min", "ph_max")


@compiled
@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 5),
    st.sampled_from([1.0, 0.999, 0.99]),
    st.sampled_from([5.0, 20.0, 50.0]),
    st.sampled_from([0, 30, 100]),
)
def test_page_hinkley_compiled_and_numpy_agree(
    seed: int, streams: int, alpha: float, threshold: float, least: int
) -> None:
    """The same changes, in the same order, and bit for bit the same state, batch after batch (shifts make
    streams fire, several times in one batch too; a NaN chunk has to spread as in numpy)."""
    from monitor.core.chunks import Chunks
    from monitor.core.sequential import SequentialSettings, SequentialStreams

    rng = np.random.default_rng(seed)
    settings_ = SequentialSettings(
        page_hinkley_threshold=threshold, page_hinkley_min_instances=least, page_hinkley_alpha=alpha
    )
    a, b = SequentialStreams(settings_), SequentialStreams(settings_)
    a.grow(streams)
    b.grow(streams)
    for _ in range(4):
        stream = np.sort(rng.integers(0, streams, int(rng.integers(1, 60))))
        z = rng.normal(float(rng.normal(0, 2)), 1, stream.size)
        if rng.random() < 0.1:
            z[rng.integers(0, z.size)] = np.nan
        seq = np.arange(1, stream.size + 1, dtype=np.int64) * 16
        chunks = Chunks(stream, seq, z * 16, z * z * 16, np.zeros(stream.size), np.arange(stream.size, dtype=float))
        got = a._page_hinkley(chunks, z)
        want = _twin(b._page_hinkley, chunks, z)
        assert got == want
        for name in PH_STATE:
            assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


@compiled
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 2, 4, 16]), st.integers(1, 5))
def test_chunks_compiled_and_numpy_agree(seed: int, size: int, streams: int) -> None:
    """The same chunks and carried state batch after batch; sums to the last bits of numpy's pairwise order."""
    from monitor.core.chunks import StreamChunker

    rng = np.random.default_rng(seed)
    a, b = StreamChunker(size), StreamChunker(size)
    at = 0.0
    for _ in range(4):
        stream = np.sort(rng.integers(0, streams, int(rng.integers(1, 80))))
        values = rng.normal(float(rng.normal(0, 5)), 3, stream.size)
        times = at + np.arange(stream.size, dtype=float)
        at += stream.size
        got, want = a.add_grouped(values, times, stream), _twin(b.add_grouped, values, times, stream)
        for name in ("stream", "seq", "start_time", "end_time"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        assert np.allclose(got.total, want.total, rtol=1e-12, atol=1e-9)
        assert np.allclose(got.squares, want.squares, rtol=1e-12, atol=1e-9)
        assert a.count.tolist() == b.count.tolist()
        assert np.array_equal(a.part_start, b.part_start, equal_nan=True)
        assert np.allclose(a.part_sum, b.part_sum, rtol=1e-12, atol=1e-9)
        assert np.allclose(a.part_squares, b.part_squares, rtol=1e-12, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 2, 4, 16]), st.booleans())
def test_chunks_of_a_stream_in_several_runs_are_its_values_in_order(seed: int, size: int, twin: bool) -> None:
    """A stream whose values come in several runs of one batch is chunked as its values in order, compiled or
    not (the compiled loop sized its output from the count before the batch and wrote past it; the twin kept
    only its last run's count)."""
    from monitor.core.chunks import StreamChunker

    rng = np.random.default_rng(seed)
    stream = rng.integers(0, 2, int(rng.integers(1, 400)))  # unsorted: runs of each stream alternate
    values = rng.normal(0, 1, stream.size)
    chunker = StreamChunker(size)
    add = chunker.add_grouped
    out = (
        _twin(add, values, np.arange(stream.size, dtype=float), stream)
        if twin
        else add(values, np.arange(stream.size, dtype=float), stream)
    )
    assert chunker.count.tolist()[: int(stream.max()) + 1] == np.bincount(stream).tolist()
    for s in range(int(stream.max()) + 1):
        own = values[stream == s]
        made = out.stream == s
        assert out.seq[made].tolist() == list(range(size, own.size + 1, size))
        assert np.allclose(out.total[made], own[: own.size - own.size % size].reshape(-1, size).sum(axis=1))


@compiled
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 4, 16]), st.lists(st.integers(1, 60), max_size=8))
def test_compiled_chunk_sums_do_not_depend_on_how_the_values_were_cut(seed: int, size: int, cuts: list[int]) -> None:
    """A chunk's sums go value by value from its open part, so they are the same to the last bit whether its
    values came in one batch or several (alert evidence built on them repeats exactly at any batch size)."""
    from monitor.core.chunks import StreamChunker

    rng = np.random.default_rng(seed)
    stream = np.sort(rng.integers(0, 3, 300))
    values = rng.normal(1e3, 7.0, stream.size) * rng.choice([1e-3, 1.0, 1e5], stream.size)
    times = np.arange(stream.size, dtype=float)
    whole = StreamChunker(size).add_grouped(values, times, stream)
    chunker, made = StreamChunker(size), []
    lo = 0
    for hi in [*sorted(set(min(c * 5, 299) for c in cuts)), stream.size]:
        if hi > lo:
            order = np.argsort(stream[lo:hi], kind="stable")
            made.append(chunker.add_grouped(values[lo:hi][order], times[lo:hi][order], stream[lo:hi][order]))
            lo = hi
    key = np.lexsort((np.concatenate([m.seq for m in made]), np.concatenate([m.stream for m in made])))
    for name in ("stream", "seq", "total", "squares", "end_time"):
        assert np.array_equal(np.concatenate([getattr(m, name) for m in made])[key], getattr(whole, name)), name


@compiled
@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=8), st.integers(0, 2**32))
def test_chain_sums_compiled_and_numpy_agree(lengths: list[int], seed: int) -> None:
    """Running sums per run from each run's base, each the previous plus the next item: to the last bit."""
    from monitor.core.sequential import _chain_sums

    compiled_module = kernels.native()
    if compiled_module is None:
        pytest.fail("the compiled module is not built")
    rng = np.random.default_rng(seed)
    runs = np.array(lengths, dtype=np.int64)
    parts = rng.normal(0, 1, (4, int(runs.sum()))) * 10.0 ** rng.integers(-8, 8, (4, int(runs.sum())))
    base = rng.normal(0, 100, (4, runs.size))
    got = compiled_module.chain_sums(parts, runs, base)
    want = _twin(_chain_sums, parts, runs, base)
    assert np.array_equal(got, want)
    at = 0
    for r, n in enumerate(lengths):  # each the previous one plus the item, in order
        acc = base[:, r].copy()
        for k in range(at, at + n):
            acc = acc + parts[:, k]
            assert np.array_equal(got[:, k], acc)
        at += n


@compiled
@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(0, 2**32), st.booleans())
def test_run_moments_compiled_and_numpy_agree(lengths: list[int], seed: int, odd: bool) -> None:
    """Sums and squared deviations to the last bits; minimum and maximum exactly, infinities and NaN too."""
    compiled_module = kernels.native()
    if compiled_module is None:
        return
    rng = np.random.default_rng(seed)
    runs = np.array(lengths, dtype=np.int64)
    x = rng.normal(float(rng.normal(0, 100)), 5, int(runs.sum()))
    if odd:
        x[rng.integers(0, x.size, 2)] = rng.choice([np.inf, -np.inf, np.nan, 1e308], 2)
    starts = np.concatenate([[0], np.cumsum(runs)[:-1]])
    total, m2, low, high = compiled_module.run_moments(x, runs)
    with np.errstate(all="ignore"):
        mean = np.add.reduceat(x, starts) / runs
        want_m2 = np.add.reduceat((x - np.repeat(mean, runs)) ** 2, starts)
        assert np.allclose(total / runs, mean, rtol=1e-12, equal_nan=True)
        assert np.allclose(m2, want_m2, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.array_equal(low, np.minimum.reduceat(x, starts), equal_nan=True)
    assert np.array_equal(high, np.maximum.reduceat(x, starts), equal_nan=True)


@compiled
def test_the_compiled_loops_refuse_runs_and_codes_that_do_not_fit() -> None:
    """They index without bounds checks, so what would read or write past an array is an error, as in the twins."""
    compiled_module = kernels.native()
    if compiled_module is None:
        return
    with pytest.raises(ValueError):
        compiled_module.cells_by_run(np.zeros(5), np.array([2]), np.zeros(1), np.ones(1), 64)
    with pytest.raises(ValueError):
        compiled_module.counts_by_run(np.array([0, 3]), np.array([2]), 3)
    with pytest.raises(ValueError):
        compiled_module.counts_by_run(np.array([0, -1]), np.array([2]), 3)
    with pytest.raises(ValueError):
        compiled_module.counts_by_run(np.array([0, 1]), np.array([3, -1]), 3)
    state = [np.zeros(2) for _ in PH_STATE]
    with pytest.raises(ValueError):  # an owner past the state arrays
        compiled_module.page_hinkley(np.zeros(3), np.array([3]), np.array([2]), *state, 16.0, 0.25, 50.0, 30.0, 1.0)
    with pytest.raises(ValueError):  # runs that do not cover the chunks
        compiled_module.page_hinkley(np.zeros(3), np.array([2]), np.array([1]), *state, 16.0, 0.25, 50.0, 30.0, 1.0)
    with pytest.raises(ValueError):  # a stream past the chunker's state arrays
        compiled_module.chunk_add(
            np.zeros(2), np.zeros(2), np.array([2]), np.array([1]), np.zeros(1, dtype=np.int64), *np.zeros((3, 1)), 4
        )
    with pytest.raises(ValueError):  # runs that do not cover the items
        compiled_module.chain_sums(np.zeros((4, 3)), np.array([2]), np.zeros((4, 1)))
    with pytest.raises(ValueError):  # no base column for each run
        compiled_module.chain_sums(np.zeros((4, 3)), np.array([2, 1]), np.zeros((4, 1)))
    with pytest.raises(ValueError):  # an empty run has no moments
        compiled_module.run_moments(np.zeros(2), np.array([2, 0]))
    table = (np.zeros(66, dtype=np.int64), np.zeros(66), np.zeros(66, dtype=np.int64), np.zeros(1))
    with pytest.raises(ValueError):  # a cell past the table's row
        compiled_module.edge_codes(np.zeros(1), np.array([66]), np.array([0]), *table, 1, 66)
    with pytest.raises(ValueError):
        compiled_module.edge_codes_by_run(np.zeros(1), np.array([-1]), np.array([1]), *table, 1, 66)
    with pytest.raises(ValueError):  # a row past the edges' bounds
        compiled_module.sorted_codes(np.zeros(1), np.array([1]), np.zeros(2), np.array([0, 2]))
    with pytest.raises(ValueError):  # bounds past the edges
        compiled_module.sorted_codes_by_run(np.zeros(1), np.array([1]), np.zeros(2), np.array([0, 3]))
    with pytest.raises(ValueError):  # bounds out of order
        compiled_module.sorted_codes_by_run(np.zeros(2), np.array([1, 1]), np.zeros(2), np.array([0, 2, 1]))
    with pytest.raises(ValueError):  # not a bound either side of each run
        compiled_module.sorted_codes_by_run(np.zeros(2), np.array([1, 1]), np.zeros(2), np.array([0, 2]))
