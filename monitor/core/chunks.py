"""Fixed-size chunks of each stream's values: the unit sequential detectors consume in engine v2.

ADWIN and Page-Hinkley are sequential, so they cannot run on a whole batch's summary without depending on
how the stream was cut into batches. They run instead on consecutive chunks of ``size`` values of each
stream (sum, sum of squares, first and last event time), cut by the stream's own count: the same values
give the same chunks at any batch size. A chunk's values are summed, so chunks are small and merge like
any summary; only a stream's last, incomplete chunk is carried from batch to batch.

All streams of one subject are chunked together: one compiled pass over the values grouped by stream
(:mod:`monitor.core.kernels`; without it, two ``reduceat`` calls per batch), whatever the number of streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.core import kernels


@dataclass(frozen=True)
class Chunks:
    """Complete chunks, ordered by stream and then by position in the stream."""

    stream: np.ndarray  # (c,) stream index
    seq: np.ndarray  # (c,) the stream's value count at the chunk's last value (1-based)
    total: np.ndarray  # (c,) sum of the chunk's values
    squares: np.ndarray  # (c,) sum of their squares
    start_time: np.ndarray  # (c,) event time of the first value
    end_time: np.ndarray  # (c,) event time of the last value

    def __len__(self) -> int:
        return int(self.stream.size)


class StreamChunker:
    """Cuts each stream's present values into chunks of ``size``, carrying each stream's incomplete chunk.

    >>> c = StreamChunker(size=4)
    >>> out = c.add(np.arange(10.0), np.arange(10.0), np.array([0] * 6 + [1] * 4))
    >>> out.stream.tolist(), out.total.tolist(), out.seq.tolist(), c.partial(0)
    ([0, 1], [6.0, 30.0], [4, 4], (2, 9.0))
    >>> c.add(np.array([1.0, 1.0]), np.array([10.0, 11.0]), np.array([0, 0])).total.tolist()
    [11.0]
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.count = np.zeros(0, dtype=np.int64)  # values seen per stream
        self.part_sum = np.zeros(0)  # the incomplete chunk of each stream
        self.part_squares = np.zeros(0)
        self.part_start = np.zeros(0)

    def _grow(self, streams: int) -> None:
        if streams > self.count.size:
            extra = streams - self.count.size
            self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
            self.part_sum = np.concatenate([self.part_sum, np.zeros(extra)])
            self.part_squares = np.concatenate([self.part_squares, np.zeros(extra)])
            self.part_start = np.concatenate([self.part_start, np.full(extra, np.nan)])

    def partial(self, stream: int) -> tuple[int, float]:
        """(values, sum) of a stream's incomplete chunk."""
        if stream >= self.count.size:
            return 0, 0.0
        return int(self.count[stream] % self.size), float(self.part_sum[stream])

    def add(self, values: np.ndarray, times: np.ndarray, stream: np.ndarray) -> Chunks:
        """Present values (no NaN) with their event times and stream indices, in arrival order."""
        if values.size == 0:
            return _empty()
        order = np.argsort(stream, kind="stable")  # by stream, arrival order kept within each
        return self.add_grouped(values[order], times[order], stream[order])

    def add_grouped(self, values: np.ndarray, times: np.ndarray, stream: np.ndarray) -> Chunks:
        """As :meth:`add`, for values already grouped by stream: one contiguous run per stream.

        Each run is cut where its chunks end (its first piece continues the stream's open chunk), which is
        known from the stream's count alone, and every piece is summed with one ``reduceat``: the work is a
        few passes over the values and some over the pieces, whatever the number of streams."""
        if values.size == 0:
            return _empty()
        self._grow(int(stream.max()) + 1)
        values = np.asarray(values, dtype=np.float64)  # (no copy when they are already: the engine's are)
        times = np.asarray(times, dtype=np.float64)
        size = self.size
        first = run_starts(stream)
        streams = stream[first]
        if not (streams[1:] > streams[:-1]).all() and np.unique(streams).size < streams.size:
            # a stream in several runs: one run each, its order kept (runs in increasing streams have none)
            order = np.argsort(stream, kind="stable")
            values, times, stream = values[order], times[order], stream[order]
            first = run_starts(stream)
            streams = stream[first]
        run = run_lengths(first, stream.size)
        compiled = kernels.native()
        if compiled is not None:
            return self._add_compiled(compiled, values, times, run, streams)
        counted = self.count[streams]
        carried = counted % size  # values of each stream's open chunk, from earlier batches
        cut = cut_runs(first, run, carried, size, values.size)
        head, begin, end = cut.head, cut.begin, cut.end
        # absurd values (1e200) square to inf, and sums of 1e308 overflow quietly, as the moments do
        with np.errstate(over="ignore", invalid="ignore"):
            sums = np.add.reduceat(values, begin)
            squares = np.add.reduceat(values * values, begin)
            sums[head] += self.part_sum[streams]
            squares[head] += self.part_squares[streams]
        counts = end - begin
        starts = times[begin]
        ends = times[end - 1]
        counts[head] += carried
        starts[head] = np.where(carried > 0, self.part_start[streams], starts[head])
        complete = np.flatnonzero(counts == size)
        # each stream's last piece is carried unless it completed its chunk
        self.count[streams] += run
        last = cut.last
        open_ = counts[last] < size
        self.part_sum[streams] = np.where(open_, sums[last], 0.0)
        self.part_squares[streams] = np.where(open_, squares[last], 0.0)
        self.part_start[streams] = np.where(open_, starts[last], np.nan)
        which = cut.run[complete]
        return Chunks(
            streams[which].astype(np.int64),
            ((counted[which] // size + cut.nth[complete] + 1) * size).astype(np.int64),
            sums[complete],
            squares[complete],
            starts[complete],
            ends[complete],
        )

    def _add_compiled(
        self, compiled: Any, values: np.ndarray, times: np.ndarray, run: np.ndarray, streams: np.ndarray
    ) -> Chunks:
        """:meth:`add_grouped` in one compiled pass, the state arrays updated in place (sums value by value:
        the last bits can differ from the pieces' ``reduceat``)."""
        self.count = np.ascontiguousarray(self.count, dtype=np.int64)
        self.part_sum, self.part_squares, self.part_start = (
            np.ascontiguousarray(a, dtype=np.float64) for a in (self.part_sum, self.part_squares, self.part_start)
        )
        with np.errstate(over="ignore", invalid="ignore"):
            out = compiled.chunk_add(
                np.ascontiguousarray(values), np.ascontiguousarray(times), run.astype(np.int64),
                streams.astype(np.int64), self.count, self.part_sum, self.part_squares, self.part_start, self.size,
            )  # fmt: skip
        return Chunks(*out)


@dataclass(frozen=True)
class Pieces:
    """Runs of values cut where fixed-size groups (chunks, windows) end: ``begin`` and ``end`` of each piece,
    the ``run`` it belongs to and its place ``nth`` in it; ``head`` and ``last``: each run's first and last."""

    begin: np.ndarray
    end: np.ndarray
    run: np.ndarray
    nth: np.ndarray
    head: np.ndarray
    last: np.ndarray


def cut_runs(first: np.ndarray, run: np.ndarray, carried: np.ndarray, size: int, total: int) -> Pieces:
    """Cut each run (``first``, ``run``: where it starts, how long) into pieces that end where its groups of
    ``size`` end, its first piece completing the group it continues (``carried`` values in already). Pieces
    cover the runs in order, so a ``reduceat`` over ``begin`` sums each."""
    need = size - carried  # the values that complete each run's open group
    pieces = 1 + -(-np.maximum(run - need, 0) // size)  # the open group's piece, then one per group begun
    head = np.cumsum(pieces) - pieces
    nth = np.arange(int(pieces.sum())) - np.repeat(head, pieces)
    offset = np.where(nth == 0, 0, np.repeat(need, pieces) + (nth - 1) * size)
    begin = np.repeat(first, pieces) + offset
    end = np.empty_like(begin)
    end[:-1], end[-1] = begin[1:], total
    return Pieces(begin, end, np.repeat(np.arange(first.size), pieces), nth, head, head + pieces - 1)


def run_starts(stream: np.ndarray) -> np.ndarray:
    """Where each run of equal stream indices starts."""
    change = np.empty(stream.size, dtype=bool)
    change[0] = True
    np.not_equal(stream[1:], stream[:-1], out=change[1:])
    return change.nonzero()[0]


def run_lengths(starts: np.ndarray, size: int) -> np.ndarray:
    """The length of each run, from :func:`run_starts`."""
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = size
    return ends - starts


def _empty() -> Chunks:
    z = np.zeros(0)
    return Chunks(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z, z, z)


def counts_by_run(codes: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """For consecutive runs of ``lengths[r]`` codes each (every code in 0 to ``width`` - 1), how many of each code
    the run has: runs x ``width``. One pass when compiled (:mod:`monitor.core.kernels`), else a bincount over
    (run, code) cells."""
    compiled = kernels.native()
    if compiled is not None:
        out: np.ndarray = compiled.counts_by_run(
            np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(lengths, dtype=np.int64), width
        )
        return out
    cell = np.repeat(np.arange(0, lengths.size * width, width), lengths)
    cell += codes
    return np.bincount(cell, minlength=lengths.size * width).reshape(lengths.size, width)


def small_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` of small non-negative integers (stream ids, combination codes):
    a count over their range rather than a sort, the same values (in order, as intp) and each key's place
    among them."""
    present = np.bincount(keys) > 0
    place = np.cumsum(present) - 1
    return present.nonzero()[0], place[keys]
