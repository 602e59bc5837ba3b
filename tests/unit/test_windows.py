"""The window table gives each stream exactly the windows its own BaselineWindowTest would, at any batch size."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import monitor.core.engine  # noqa: F401  (registers the engine's classes for snapshots)
from monitor.core import snapshot as snap
from monitor.core.significance import BaselineWindowTest, Reference
from monitor.core.windows import NumericWindows
from tests.unit.compiled import compiled

WINDOW, BASELINE, BINS = 100, 250, 10


def _table(references: list[Reference | None]) -> NumericWindows:
    t = NumericWindows(window=WINDOW, baseline_events=BASELINE, bins=BINS, numeric_test="ks", exact_p_below=1.0)
    for r in references:
        t.add_stream(r)
    return t


def _streams(seed: int, n_streams: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of interleaved streams (uneven shares, one shifted half-way), as a partition sees them."""
    rng = np.random.default_rng(seed)
    stream = rng.choice(n_streams, size=n, p=np.arange(1, n_streams + 1) / sum(range(1, n_streams + 1)))
    values = rng.normal(0, 1, n) + np.where((stream == 0) & (np.arange(n) > n // 2), 1.5, 0.0)
    values[rng.random(n) < 0.02] = np.round(values[rng.random(n) < 0.02].mean(), 1)  # ties, as real data has
    return values, np.arange(n, dtype=np.float64) * 0.5, stream


def _summary(result) -> tuple:
    return (
        result.seq,
        result.time,
        result.start_time,
        result.position,
        round(result.current["mean"], 9),
        round(result.psi, 9),
        round(result.p_value, 12),
    )


def _per_stream(values, times, stream, references) -> list[list[tuple]]:
    out = []
    for s, ref in enumerate(references):
        mask = stream == s
        t = BaselineWindowTest("numeric", window=WINDOW, baseline_events=BASELINE, bins=BINS, reference=ref)
        out.append([_summary(r) for r in t.update(values[mask], times[mask], np.flatnonzero(mask))])
    return out


def _table_results(table: NumericWindows, values, times, stream, cuts: list[int]) -> list[list[tuple]]:
    out: list[list[tuple]] = [[] for _ in range(table.size)]
    positions = np.arange(values.size)
    for lo, hi in itertools.pairwise(sorted({0, values.size, *cuts})):
        v, t, s, p = values[lo:hi], times[lo:hi], stream[lo:hi], positions[lo:hi]
        order = np.argsort(s, kind="stable")  # grouped by stream, arrival order kept: as the engine passes them
        closed = table.update(v[order], t[order], p[order], s[order])  # tested as they close
        for i, result in closed:
            out[i].append(_summary(result))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cuts", [[], [1, 7, 99, 100, 101, 777, 2500, 2501], list(range(0, 6000, 333))])
def test_each_stream_gets_the_windows_its_own_test_would(seed: int, cuts: list[int]) -> None:
    values, times, stream = _streams(seed, 4, 6000)
    references: list[Reference | None] = [None, None, None, None]
    assert _table_results(_table(references), values, times, stream, cuts) == _per_stream(
        values, times, stream, references
    )


def test_a_profile_reference_is_used_from_the_first_value() -> None:
    values, times, stream = _streams(5, 3, 3000)
    ref = Reference.numeric(np.random.default_rng(9).normal(0, 1, 5000), BINS)
    references: list[Reference | None] = [ref, None, ref]
    got = _table_results(_table(references), values, times, stream, [10, 500])
    want = _per_stream(values, times, stream, references)
    assert got == want
    assert got[0] and got[0][0][0] == WINDOW  # the first window closes after WINDOW values: no warm-up


def test_a_shift_shows_in_the_shifted_stream_only() -> None:
    values, times, stream = _streams(3, 3, 12_000)
    table = _table([None, None, None])
    positions = np.arange(values.size)
    order = np.argsort(stream, kind="stable")
    closed = table.update(values[order], times[order], positions[order], stream[order])
    late = [(i, r.psi) for i, r in closed if r.position > 8000]
    shifted = [p for i, p in late if i == 0]
    others = [p for i, p in late if i != 0]
    assert np.mean(shifted) > 0.5 > 4 * np.mean(others)  # 100-value windows are noisy: compare averages


def test_a_snapshot_continues_exactly() -> None:
    values, times, stream = _streams(4, 3, 5000)
    straight = _table([None, None, None])
    full = _table_results(straight, values, times, stream, [1234])
    first = _table([None, None, None])
    head = _table_results(first, values[:1234], times[:1234], stream[:1234], [])
    restored = snap.loads(snap.dumps(first))
    tail = _table_results(restored, values[1234:], times[1234:], stream[1234:], [])
    tail = [[(r[0], r[1], r[2], r[3] + 1234, *r[4:]) for r in rows] for rows in tail]  # positions restart at 0
    assert [h + t for h, t in zip(head, tail, strict=True)] == full


def test_the_detectors_warm_up_is_read_from_the_window_test_not_kept_twice() -> None:
    from monitor.core.numeric_streams import NumericStreams
    from monitor.core.settings import DetectorSettings

    settings = DetectorSettings(warmup_events=120)
    values, times, stream = _streams(6, 3, 3000)
    shared, alone = NumericStreams(settings, _table([])), NumericStreams(settings)
    for s in range(3):
        shared.add_stream((f"x{s}", "", ""))
        alone.add_stream((f"x{s}", "", ""))
    positions = np.arange(values.size)
    for lo, hi in itertools.pairwise([0, 50, 333, 1200, 3000]):
        v, t, s, p = values[lo:hi], times[lo:hi], stream[lo:hi], positions[lo:hi]
        order = np.argsort(s, kind="stable")
        shared.update(v[order], t[order], s[order], p[order])
        alone.update(v[order], t[order], s[order], p[order])
        if hi == 50:  # warming up: the values live in the window test only
            assert all(w is None for w in shared.warm.values()) and shared.windows is not None
            assert shared.quantiles(0) == alone.quantiles(0)
        if hi == 333:  # a window test restarting mid warm-up hands the values over first
            shared.own_warmup(0)
            shared.windows.restart(0, None)
            assert shared.warm[0] is not None and shared.warm[0].size == int(shared.n[0]) < 120
    assert not shared.warm and not shared.windows.learned  # nothing kept past its batch
    for s in range(3):
        assert shared.evidence(s) == alone.evidence(s)
        assert shared.view(s) == alone.view(s)


class _CountedSearch:
    """The compiled module, counting the values its edge searches place."""

    def __init__(self, module: Any, calls: list[int]) -> None:
        self.module, self.calls = module, calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)

    def sorted_codes(self, x: np.ndarray, *rest: Any) -> np.ndarray:
        self.calls.append(x.size)
        return self.module.sorted_codes(x, *rest)

    def sorted_codes_by_run(self, x: np.ndarray, *rest: Any) -> np.ndarray:
        self.calls.append(x.size)
        return self.module.sorted_codes_by_run(x, *rest)


@pytest.mark.parametrize(
    "path", [pytest.param("search", marks=compiled), pytest.param("cells", marks=compiled), "twin"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_streams_binned_together_get_the_windows_their_own_test_would(
    seed: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a stream has its reference, the table bins its values together with the other streams', not by a
    search of its own: by one compiled search of every stream's edges, or by their cells (cells.EdgeLookup) in
    large batches or without the compiled module. The windows stay exactly those of the stream's own test, with
    a profile's reference and a learned one."""
    from monitor.core import kernels, windows
    from monitor.core.cells import EdgeLookup
    from monitor.core.numeric_streams import NumericStreams
    from monitor.core.settings import DetectorSettings

    calls: list[int] = []
    if path != "twin":
        assert kernels.native() is not None, "the compiled module is not built"
        monkeypatch.setattr(windows, "CELLS_FROM", 10**9 if path == "search" else 0)
    if path == "search":
        monkeypatch.setattr(kernels, "_kernels", _CountedSearch(kernels.native(), calls))
    else:
        if path == "twin":
            monkeypatch.setattr(kernels, "_kernels", None)
        codes, codes_by_run = EdgeLookup.codes, EdgeLookup.codes_by_run

        def counted(self, x, cell, row):  # type: ignore[no-untyped-def]
            calls.append(x.size)
            return codes(self, x, cell, row)

        def counted_by_run(self, x, cell, runs):  # type: ignore[no-untyped-def]
            calls.append(x.size)
            return codes_by_run(self, x, cell, runs)

        monkeypatch.setattr(EdgeLookup, "codes", counted)
        monkeypatch.setattr(EdgeLookup, "codes_by_run", counted_by_run)
    values, times, stream = _streams(seed, 3, 8000)
    values[::97] *= 40  # outliers beyond the histogram's +-4 sd: the outermost cells
    ref = Reference.numeric(np.random.default_rng(9).normal(0, 1, 5000), BINS)
    values[5::7] = ref.edges[np.arange(values[5::7].size) % ref.edges.size]  # exactly on the profile's edges
    references: list[Reference | None] = [ref, None, None]
    streams = NumericStreams(DetectorSettings(warmup_events=120), _table(references))
    for s in range(3):
        streams.add_stream((f"x{s}", "", ""), references[s])
    got: list[list[tuple]] = [[], [], []]
    positions = np.arange(values.size)
    for lo, hi in itertools.pairwise([0, 40, 700, 2222, 5000, 8000]):
        v, t, s, p = values[lo:hi], times[lo:hi], stream[lo:hi], positions[lo:hi]
        order = np.argsort(s, kind="stable")
        for i, result in streams.update(v[order], t[order], s[order], p[order]):
            got[i].append(_summary(result))
    assert got == _per_stream(values, times, stream, references)
    assert sum(calls) > 5000  # most values went together


def test_integer_values_and_absurd_ones_are_counted_as_floats_quietly() -> None:
    """Integer batches sum as floats, as they did; values near the float limit overflow a window's sum
    quietly (the moments do too), with no warning raised."""
    import warnings

    floats, ints = _table([None]), _table([None])
    values = np.arange(400, dtype=np.int64)
    stream = np.zeros(400, dtype=np.int64)
    got_f = floats.update(values.astype(float), values.astype(float), np.arange(400), stream)
    got_i = ints.update(values, values, np.arange(400), stream)
    assert [_summary(r) for _, r in got_i] == [_summary(r) for _, r in got_f] and got_i
    later = ints.update(values[:150] + 400, values[:150] + 400, np.arange(400, 550), stream[:150])
    assert later and isinstance(later[0][1].start_time, float)
    absurd = _table([None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        absurd.update(np.r_[np.zeros(BASELINE), np.full(WINDOW, 1e308)], np.arange(BASELINE + WINDOW, dtype=float),
                      np.arange(BASELINE + WINDOW), np.zeros(BASELINE + WINDOW, dtype=np.int64))  # fmt: skip


@compiled
@pytest.mark.parametrize("path", ["search", "cells"])
def test_a_stream_given_another_reference_between_batches_is_binned_on_it(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the table keeps from one batch to the next to bin values (each stream's edges laid end to end, or
    the look-up by cells) follows a stream's reference: after a stream starts again on another reference,
    the next batch of the same streams is binned on the new edges, the other stream's on its own."""
    from monitor.core import windows
    from monitor.core.cells import HISTOGRAM_BINS, HISTOGRAM_SD, cells

    monkeypatch.setattr(windows, "CELLS_FROM", 10**9 if path == "search" else 0)
    rng = np.random.default_rng(4)
    first = Reference.numeric(rng.normal(0, 1, 5000), BINS)
    other = Reference.numeric(rng.normal(1.5, 0.3, 5000), BINS)
    table = _table([first, first])
    lo, width = np.full(2, -HISTOGRAM_SD), np.full(2, 2 * HISTOGRAM_SD / HISTOGRAM_BINS)

    def feed(values: np.ndarray) -> None:  # the same values for both streams, fewer than a window
        v = np.concatenate([values, values])
        stream = np.repeat([0, 1], values.size)
        cell = cells(v, np.repeat(lo, values.size), np.repeat(width, values.size))
        table.update(v, np.arange(v.size, dtype=float), np.arange(v.size), stream, cells=cell, scale=(lo, width))

    def binned(ref: Reference, values: np.ndarray) -> list[int]:
        counts = np.bincount(np.searchsorted(ref.edges, values, side="left"), minlength=table.counts.shape[1])
        return counts.tolist()  # type: ignore[no-any-return]

    before, after = rng.normal(1, 1, 30), rng.normal(1, 1, 30)
    feed(before)
    table.restart(0, other)
    feed(after)
    assert table.counts[0].tolist() == binned(other, after)
    assert table.counts[1].tolist() == binned(first, np.concatenate([before, after]))


def test_values_given_as_a_strided_view_are_binned_as_a_copy_would_be() -> None:
    """The compiled loops read contiguous memory: a caller's strided view of its values is taken as a copy."""
    ref = Reference.numeric(np.random.default_rng(0).normal(0, 1, 1000), BINS)
    values = np.random.default_rng(1).normal(0, 1, 120)
    strided, copied = _table([ref]), _table([ref])
    for table, v in ((strided, values[::2]), (copied, values[::2].copy())):
        table.update(v, np.arange(v.size, dtype=float), np.arange(v.size), np.zeros(v.size, dtype=np.int64))
    assert strided.counts[0].sum() == 60 and strided.counts[0].tolist() == copied.counts[0].tolist()
