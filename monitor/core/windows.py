"""Tumbling baseline windows of many numeric streams at once (engine v2's window tests).

Each stream's present values are binned on its reference's quantile bins (learned from the stream's first
``baseline_events`` values, or given by a baseline profile) and counted in tumbling windows of ``window``
values. A batch adds the values of every stream with a few numpy calls: each stream's run is cut where its
windows end (:func:`~monitor.core.chunks.cut_runs`, as for chunks), one ``bincount`` counts (piece, bin)
and one ``reduceat`` sums the pieces; a value's bin is found by one compiled search of every stream's edges
laid end to end, or read from its histogram cell in large batches and without the compiled module
(:mod:`monitor.core.cells`). The windows that closed are tested together, one
:func:`~monitor.core.window_statistics.window_tests` call over their rows, and come out as columns
(:class:`~monitor.core.significance.ClosedWindows`) for their false-discovery round; a
:class:`~monitor.core.significance.WindowResult` is built only for a stream's latest decided window.

The results equal :class:`~monitor.core.significance.BaselineWindowTest`'s, stream by stream, at any batch
size (tests/unit/test_windows.py). Python loops remain per stream only where the work is per stream: a
stream still learning its reference, a stream binned by a search (no scale yet), and each closed window's
result.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from monitor.core import kernels
from monitor.core.cells import EdgeLookup, monotone
from monitor.core.chunks import Pieces, counts_by_run, cut_runs, run_lengths, run_starts
from monitor.core.significance import BaselineWindowTest, ClosedWindows, Reference, WindowResult
from monitor.core.window_statistics import window_tests

# Values a stream, on average over a batch's streams, from which their codes are read by cells rather than
# found by the compiled search: the look-up by cells costs a few microseconds a stream to build and then less a
# value than the search (189 streams of 9 edges: the search 0.30 against 0.45 ms at 300 values a stream, 0.90
# against 0.68 ms at 1,000, 2.7 against 1.4 ms at 3,000).
CELLS_FROM = 600


class NumericWindows:
    """Window-test state of numeric streams, indexed like the :class:`NumericStreams` they belong to."""

    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("_lookup", "_edges")  # caches of what the references give

    def __init__(
        self, *, window: int, baseline_events: int, bins: int, numeric_test: str, exact_p_below: float
    ) -> None:
        self.window = window
        self.baseline_events = baseline_events
        self.bins = bins
        self.numeric_test = numeric_test
        self.exact_p_below = exact_p_below
        self.references: list[Reference | None] = []
        self.from_profile: list[bool] = []
        self.warm: dict[int, np.ndarray] = {}  # values of streams still learning their reference
        self.learned: dict[int, np.ndarray] = {}  # not state: the values a reference was learned from in this batch
        self.counts = np.zeros((0, bins + 1), dtype=np.int64)  # the open window's bin counts
        self.filled = np.zeros(0, dtype=np.int64)
        self.total = np.zeros(0)  # the open window's sum of values
        self.start = np.zeros(0)  # the open window's first event time
        self.seen = np.zeros(0, dtype=np.int64)  # present values taken, warm-up included
        self.tests = np.zeros(0, dtype=np.int64)
        self.pending = np.zeros(0, dtype=np.int64)  # results handed out and not decided yet
        self.last: list[WindowResult | None] = []  # the latest decided result of each stream
        self._lookup: tuple[Any, list[Reference | None], EdgeLookup] | None = None  # not state: a cache
        self._edges: tuple[Any, list[Reference | None], np.ndarray, np.ndarray] | None = None  # not state: a cache

    @property
    def size(self) -> int:
        return len(self.references)

    def add_stream(self, reference: Reference | None = None) -> int:
        return self.add_streams([reference])[0]

    def add_streams(self, references: list[Reference | None]) -> list[int]:
        """New streams, one per reference (None: it learns one); their indices. The arrays grow once for all
        of them: grown one stream at a time, a batch that brought thousands of new streams (a segment attribute
        of many values) copied every array once per stream."""
        first, extra = self.size, len(references)
        self.references += [None] * extra
        self.from_profile += [False] * extra
        self.last += [None] * extra
        self.counts = np.concatenate([self.counts, np.zeros((extra, self.counts.shape[1]), dtype=np.int64)])
        self.filled = np.concatenate([self.filled, np.zeros(extra, dtype=np.int64)])
        self.total = np.concatenate([self.total, np.zeros(extra)])
        self.start = np.concatenate([self.start, np.full(extra, math.nan)])
        self.seen = np.concatenate([self.seen, np.zeros(extra, dtype=np.int64)])
        self.tests = np.concatenate([self.tests, np.zeros(extra, dtype=np.int64)])
        self.pending = np.concatenate([self.pending, np.zeros(extra, dtype=np.int64)])
        for k, reference in enumerate(references):
            self.set_reference(first + k, reference)
        return list(range(first, first + extra))

    def set_reference(self, i: int, reference: Reference | None) -> None:
        """Test stream ``i`` against ``reference`` (a profile's) from now on, or learn one when None."""
        self.references[i] = reference
        self.from_profile[i] = reference is not None
        if reference is None:
            self.warm[i] = np.empty(0)
        else:
            self.warm.pop(i, None)
            self._widen(reference.counts.size)
        self.counts[i] = 0
        self.filled[i], self.total[i], self.start[i] = 0, 0.0, math.nan

    def restart(self, i: int, reference: Reference | None) -> None:
        """Stream ``i`` starts again, as a new stream would: against ``reference``, or learning one."""
        self.set_reference(i, reference)
        self.seen[i] = self.tests[i] = self.pending[i] = 0
        self.last[i] = None

    def _widen(self, bins: int) -> None:
        if bins > self.counts.shape[1]:
            self.counts = np.pad(self.counts, ((0, 0), (0, bins - self.counts.shape[1])))

    def adopt(self, i: int, test: BaselineWindowTest) -> None:
        """Stream ``i`` continues a test from an older release's snapshot, where each stream had its own."""
        self.references[i], self.from_profile[i] = test.reference, test.from_profile
        if test.reference is None:
            self.warm[i] = np.concatenate(test._warm) if test._warm else np.empty(0)
        else:
            self.warm.pop(i, None)
            self._widen(test._counts.size)
            self.counts[i, : test._counts.size] = test._counts
        self.filled[i], self.total[i], self.start[i] = test._filled, test._sum, test._start
        self.seen[i], self.tests[i], self.pending[i] = test.seen, test.tests, test.pending
        self.last[i] = test.last

    def update(
        self,
        values: np.ndarray,
        times: np.ndarray,
        positions: np.ndarray,
        stream: np.ndarray,
        *,
        cells: np.ndarray | None = None,
        scale: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ClosedWindows:
        """Present values grouped by stream (one run each, arrival order kept), with their event times and
        partition positions; the windows that closed, their statistics computed. ``cells``: the values' cells
        on their streams' scales, ``scale``: each run's (origin, width) (:mod:`monitor.core.cells`). Streams whose
        edges are in order are binned together: by one compiled search, or through their cells where the scale is
        monotone (without the compiled module, or from ``CELLS_FROM`` values a stream); any other stream by a
        search of its own."""
        self.learned = {}
        if values.size == 0:
            return self.nothing_closed()
        values = np.asarray(values, dtype=np.float64)  # (no copy when they are already: the engine's are)
        times = np.asarray(times, dtype=np.float64)
        starts = run_starts(stream)
        runs = run_lengths(starts, stream.size)
        owners = stream[starts]
        codes = np.empty(values.size, dtype=np.int64)
        keep = np.ones(values.size, dtype=bool)
        compiled = kernels.native()
        dense = cells is not None and scale is not None and values.size >= CELLS_FROM * owners.size
        search = None if compiled is None or dense else compiled
        if search is not None:  # one compiled search of every stream's edges: any stream whose edges are in order
            together = np.ones(owners.size, dtype=bool)
        elif cells is None or scale is None:
            together = np.zeros(owners.size, dtype=bool)
        else:  # by their cells: the streams on a monotone scale whose edges are in order
            together = monotone(*scale)
        streams = owners.tolist()
        # the usual batch: every stream has its reference, its edges in order (on a monotone scale): no loop here
        usual = (
            not self.warm
            and bool(together.all())
            and all(r is not None and r.ordered_edges for r in map(self.references.__getitem__, streams))
        )
        if not usual:
            self._learn_or_search(values, codes, keep, streams, starts.tolist(), runs.tolist(), together)
        if together.any():
            if search is not None:
                self._codes_by_search(search, values, codes, keep, owners, runs, together)
            else:
                assert cells is not None and scale is not None
                self._codes_by_cells(values, cells, codes, keep, owners, runs, together, scale)
        if not keep.all():
            values, times, positions, stream, codes = (x[keep] for x in (values, times, positions, stream, codes))
            if values.size == 0:
                return self.nothing_closed()
            starts = run_starts(stream)
            runs = run_lengths(starts, stream.size)
            owners = stream[starts]
        return self._count(values, times, positions, codes, starts, runs, owners)

    def _learn_or_search(
        self,
        values: np.ndarray,
        codes: np.ndarray,
        keep: np.ndarray,
        streams: list[int],
        starts: list[int],
        runs: list[int],
        together: np.ndarray,
    ) -> None:
        """Run by run: a stream still learning its reference takes its first values into its warm-up (``keep``
        False), and a stream whose values cannot be binned with the others gets its ``codes`` by a search of its
        edges (``together`` False); the rest are left to :meth:`_codes_by_search` or :meth:`_codes_by_cells`."""
        rest: list[tuple[int, int, int, int]] = []  # (run, stream, first value, end) of runs with a reference now
        learning: list[int] = []  # the streams whose warm-up ends in this batch
        for k, (s, a, r) in enumerate(zip(streams, starts, runs, strict=True)):
            b = a
            if s in self.warm:  # still learning the reference: the first values go to the warm-up
                take = min(self.baseline_events - self.warm[s].size, r)
                self.warm[s] = np.concatenate([self.warm[s], values[a : a + take]])
                self.seen[s] += take
                keep[a : a + take] = False
                b = a + take
                if self.warm[s].size >= self.baseline_events:
                    self.learned[s] = self.warm.pop(s)
                    learning.append(s)
                else:
                    together[k] = False
                    continue
            rest.append((k, s, b, a + r))
        # the references learned in this batch, together (numpy's quantiles of warm-ups of one size in one call)
        learned_now = Reference.numeric_many([self.learned[s] for s in learning], self.bins)
        for s, learned in zip(learning, learned_now, strict=True):
            self.references[s] = learned
            self._widen(learned.counts.size)
        for k, s, b, end in rest:
            ref = self.references[s]
            assert ref is not None
            if together[k] and ref.ordered_edges:
                continue
            together[k] = False
            codes[b:end] = np.searchsorted(ref.edges, values[b:end], side="left")

    def _codes_by_search(
        self,
        compiled: Any,
        values: np.ndarray,
        codes: np.ndarray,
        keep: np.ndarray,
        owners: np.ndarray,
        runs: np.ndarray,
        together: np.ndarray,
    ) -> None:
        """``codes`` of the kept values of the runs marked ``together``: each value's place among its stream's
        edges, every stream searched in one compiled pass. Nothing is built for it but the edges laid end to
        end, so it costs a small batch no more than its few streams (a look-up by cells is built per batch);
        they are kept while the same streams come with the same references (a batch after another)."""
        chosen = np.flatnonzero(together)
        streams = owners[chosen].tolist()
        refs = [self.references[s] for s in streams]
        key = (streams, list(map(id, refs)))
        cached = getattr(self, "_edges", None)  # (absent from an object a snapshot restored)
        if cached is None or cached[0] != key:
            edges_of = [r.edges for r in refs]
            bounds = np.zeros(len(edges_of) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, edges_of), np.int64, count=len(edges_of)), out=bounds[1:])
            cached = self._edges = (key, refs, np.concatenate(edges_of), bounds)  # refs kept: their ids stay theirs
        edges, bounds = cached[2], cached[3]
        selected = _selected(chosen, owners, runs, keep)
        if selected is None:  # every run, every value
            codes[:] = compiled.sorted_codes_by_run(np.ascontiguousarray(values), runs, edges, bounds)
            return
        row, mask = selected
        codes[mask] = compiled.sorted_codes(np.ascontiguousarray(values[mask]), row, edges, bounds)

    def _codes_by_cells(
        self,
        values: np.ndarray,
        cells: np.ndarray,
        codes: np.ndarray,
        keep: np.ndarray,
        owners: np.ndarray,
        runs: np.ndarray,
        together: np.ndarray,
        scale: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """Without the compiled module: ``codes`` of the kept values of the runs marked ``together``, read from
        their cells. The look-up is kept while the same streams come with the same references and scales (a
        batch after another)."""
        chosen = np.flatnonzero(together)
        streams = owners[chosen].tolist()
        refs = [self.references[s] for s in streams]
        lo, width = scale[0][chosen], scale[1][chosen]
        key = (streams, [id(r) for r in refs], lo.tobytes(), width.tobytes())
        cached = getattr(self, "_lookup", None)  # (absent from an object a snapshot restored)
        if cached is None or cached[0] != key:
            edges_of = [r.edges for r in refs]
            table = np.full((chosen.size, max(e.size for e in edges_of)), np.nan)
            for i, e in enumerate(edges_of):
                table[i, : e.size] = e
            cached = self._lookup = (key, refs, EdgeLookup(table, lo, width))  # refs kept: their ids stay theirs
        lookup = cached[2]
        selected = _selected(chosen, owners, runs, keep)
        if selected is None:  # every run, every value
            codes[:] = lookup.codes_by_run(values, cells, runs)
            return
        row, mask = selected
        codes[mask] = lookup.codes(values[mask], cells[mask], row)

    def _count(
        self,
        x: np.ndarray,
        t: np.ndarray,
        positions: np.ndarray,
        codes: np.ndarray,
        starts: np.ndarray,
        runs: np.ndarray,
        owners: np.ndarray,
    ) -> ClosedWindows:
        """Count values into pieces of each stream's windows (:func:`~monitor.core.chunks.cut_runs`); close every
        window that fills."""
        width_bins = self.counts.shape[1]
        filled = self.filled[owners]
        cut = cut_runs(starts, runs, filled, self.window, x.size)
        head, begin, end = cut.head, cut.begin, cut.end
        sizes = end - begin
        counts = counts_by_run(codes, sizes, width_bins)  # (the pieces follow each other, begin to end)
        with np.errstate(over="ignore", invalid="ignore"):  # absurd values (1e308) overflow quietly, as the moments do
            sums = np.add.reduceat(x, begin)
            sums[head] += self.total[owners]
        start_time = t[begin]
        end_time = t[end - 1]
        end_position = positions[end - 1]
        counts[head] += self.counts[owners]  # each stream's open window continues in its first piece
        sizes[head] += filled
        start_time[head] = np.where(filled > 0, self.start[owners], start_time[head])
        seen_before = self.seen[owners]
        self.seen[owners] += runs
        done = np.flatnonzero(sizes == self.window)
        closed = self._close(done, cut, owners, seen_before, filled, counts, sums, start_time, end_time,
                             end_position) if done.size else self.nothing_closed()  # fmt: skip
        # the open window of each stream: its last piece, unless that closed
        last = cut.last
        open_ = sizes[last] < self.window
        self.counts[owners] = np.where(open_[:, None], counts[last], 0)
        self.filled[owners] = np.where(open_, sizes[last], 0)
        self.total[owners] = np.where(open_, sums[last], 0.0)
        self.start[owners] = np.where(open_, start_time[last], np.nan)
        if len(closed):
            np.add.at(self.tests, closed.stream, 1)
            np.add.at(self.pending, closed.stream, 1)
        return closed

    def nothing_closed(self) -> ClosedWindows:
        return ClosedWindows.empty(self.window, self.numeric_test)

    def _close(
        self,
        cells: np.ndarray,
        cut: Pieces,
        owners: np.ndarray,
        seen_before: np.ndarray,
        filled: np.ndarray,
        counts: np.ndarray,
        sums: np.ndarray,
        start_time: np.ndarray,
        end_time: np.ndarray,
        end_position: np.ndarray,
    ) -> ClosedWindows:
        """The windows in pieces ``cells`` closed, tested together: one :func:`window_tests` call over their rows,
        all as wide as the table (zero columns past a narrower reference change no statistic; a fixed width keeps
        a window's result independent of which other windows closed in the same batch)."""
        k = cut.run[cells]
        streams = owners[k]
        seqs = seen_before[k] + (cut.nth[cells] + 1) * self.window - filled[k]
        refs = [self.references[s] for s in streams.tolist()]
        width = counts.shape[1]
        reference = np.zeros((len(refs), width))
        for row, r in enumerate(refs):
            assert r is not None
            reference[row, : r.counts.size] = r.counts
        current = counts[cells]
        stats = window_tests(reference, current, self.exact_p_below)
        p_values = stats.ks_p if self.numeric_test == "ks" else stats.chi2_p
        return ClosedWindows(
            streams, seqs, end_position[cells], end_time[cells], start_time[cells], stats.psi, stats.js, stats.ks,
            p_values, sums[cells] / self.window, np.array([r.events for r in refs], dtype=np.int64),
            np.array([r.mean for r in refs]), np.array([r.std for r in refs]), self.window, self.numeric_test,
        )  # fmt: skip


class NumericWindow:
    """One stream of a :class:`NumericWindows`, read and written like a :class:`BaselineWindowTest`."""

    kind = "numeric"

    def __init__(self, table: NumericWindows, i: int) -> None:
        self.table = table
        self.i = i

    @property
    def last(self) -> WindowResult | None:
        return self.table.last[self.i]

    @last.setter
    def last(self, result: WindowResult | None) -> None:
        self.table.last[self.i] = result

    @property
    def pending(self) -> int:
        return int(self.table.pending[self.i])

    @pending.setter
    def pending(self, n: int) -> None:
        self.table.pending[self.i] = n

    @property
    def from_profile(self) -> bool:
        return self.table.from_profile[self.i]

    @property
    def reference(self) -> Reference | None:
        return self.table.references[self.i]

    @property
    def tests(self) -> int:
        return int(self.table.tests[self.i])


def _selected(
    chosen: np.ndarray, owners: np.ndarray, runs: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of the runs ``chosen`` (of ``owners.size``) that ``keep`` keeps: a mask over the batch and, for
    each masked value, its run's row among the chosen; None when that is every value of every run."""
    if chosen.size == owners.size and keep.all():
        return None
    row_of_run = np.full(owners.size, -1, dtype=np.int64)
    row_of_run[chosen] = np.arange(chosen.size)
    row = np.repeat(row_of_run, runs)
    mask = (row >= 0) & keep
    return row[mask], mask
