"""A categorical subject's streams counted together: all traffic's and every segment's codes in one pass.

A categorical subject has one stream per bucket (all traffic and each tracked segment value), each with its
tracker's detector windows (:class:`~monitor.core.drift.CategoricalDriftTracker`) and its baseline window test
(:class:`~monitor.core.significance.BaselineWindowTest`). Most batches close no window of most streams, and then
a stream's share of the batch is one row of a (bucket x code) count: one ``bincount`` counts every bucket, and
each stream adds its row. Only a stream still learning its reference, whose window the batch closes, or whose
vocabulary is another size than the batch's count (a profile's reference, a snapshot taken with another
``monitoring.max_categories``) counts its values one by one, as it would alone; the results are the same at any
batch size and any mix of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.core.detectors import WindowTest
from monitor.core.drift import CategoricalDriftTracker, CountedWindows, chi_square_tests
from monitor.core.significance import BaselineWindowTest, ClosedWindow


class BucketCounts:
    """A subject's batch laid out bucket after bucket (``lengths[k]`` values of bucket ``k`` each), counted by
    (bucket, code): :attr:`table`, and each bucket's first present value's time (:attr:`first_time`; NaN when it
    has none); each bucket's present count, first time and part's bounds also as Python numbers, read once per
    stream."""

    def __init__(self, codes: np.ndarray, times: np.ndarray, lengths: np.ndarray, width: int) -> None:
        self.codes, self.times, self.lengths = codes, times, lengths
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        self.present = codes >= 0
        if codes.size:
            width = max(width, int(codes.max()) + 1)  # (wider than a tracker: that tracker counts its own way)
        buckets = lengths.size
        owner = np.repeat(np.arange(buckets), lengths)[self.present]
        cells = owner * width + codes[self.present]
        self.table = np.bincount(cells, minlength=buckets * width).reshape(buckets, width)
        at = self.present.nonzero()[0]
        first = np.searchsorted(at, self.starts)
        has = first < np.searchsorted(at, self.ends)
        self.first_time = np.full(buckets, np.nan)
        self.first_time[has] = times[at[first[has]]]
        # per bucket, as Python numbers: each stream's share is read once per batch
        self.present_n: list[int] = self.table.sum(axis=1).tolist()
        self.first_times: list[float] = self.first_time.tolist()
        self.bounds = list(zip(self.starts.tolist(), self.ends.tolist(), strict=True))
        self._at, self._first, self._last = at, first.tolist(), np.searchsorted(at, self.ends).tolist()

    def part(self, k: int) -> slice:
        return slice(*self.bounds[k])

    def present_rows(self, k: int) -> np.ndarray:
        """The places of bucket ``k``'s present values within its part."""
        return self._at[self._first[k] : self._last[k]] - self.bounds[k][0]


@dataclass
class FedTrackers:
    """A categorical subject's trackers (by bucket; None: turned away by the stream cap) fed one batch
    (:func:`feed_trackers`): by bucket, those that added their row of the count, and those that counted their
    values because a window closed (its tests still to run)."""

    trackers: Sequence[CategoricalDriftTracker | None]
    added: dict[int, CategoricalDriftTracker]
    counted: dict[int, CountedWindows]
    counts: BucketCounts


def feed_trackers(trackers: Sequence[CategoricalDriftTracker | None], counts: BucketCounts) -> FedTrackers:
    """Each bucket's tracker (None: the stream cap turned the bucket away) fed its part of the batch: its row
    of the (bucket x code) count when no window closes, else its values one by one."""
    added: dict[int, CategoricalDriftTracker] = {}
    counted: dict[int, CountedWindows] = {}
    for k, tracker in enumerate(trackers):
        if tracker is None:
            continue
        start, stop = counts.bounds[k]
        if tracker.add_counts(counts.table[k], stop - start, counts.first_times[k], counts.present_n[k]):
            added[k] = tracker
        else:
            counted[k] = tracker.count_windows(counts.codes[start:stop], counts.times[start:stop])
    return FedTrackers(trackers, added, counted, counts)


def closed_window_tests(fed: Sequence[FedTrackers]) -> list[dict[int, list[WindowTest]]]:
    """The tests of the windows several subjects' trackers closed in a batch, all together
    (:func:`~monitor.core.drift.chi_square_tests`): by subject, each bucket's tests in order."""
    counted = [c for f in fed for c in f.counted.values()]
    results = iter(chi_square_tests(counted))
    return [{k: next(results) for k in f.counted} for f in fed]


def take_tests(
    fed: FedTrackers, tests: dict[int, list[WindowTest]]
) -> dict[int, tuple[CategoricalDriftTracker, np.ndarray, list[int]]]:
    """By bucket, the tracker, the rows of its part its test windows took and the rows that closed one (as
    :meth:`~monitor.core.drift.CategoricalDriftTracker.update` returns them), its closed windows' ``tests``
    taken."""
    out: dict[int, tuple[CategoricalDriftTracker, np.ndarray, list[int]]] = {}
    for k in range(len(fed.trackers)):
        tracker = fed.added.get(k)
        if tracker is not None:
            out[k] = (tracker, fed.counts.present_rows(k), [])
            continue
        c = fed.counted.get(k)
        if c is not None:
            out[k] = (c.tracker, *c.tracker.take(c, tests[k]))
    return out


def count_trackers(
    trackers: Sequence[CategoricalDriftTracker | None], counts: BucketCounts
) -> dict[int, tuple[CategoricalDriftTracker, np.ndarray, list[int]]]:
    """One subject's :func:`feed_trackers`, :func:`closed_window_tests` and :func:`take_tests` (the engine runs the
    tests of every categorical subject of a batch together)."""
    fed = feed_trackers(trackers, counts)
    return take_tests(fed, closed_window_tests([fed])[0])


def close_test_windows(
    tests: Sequence[BaselineWindowTest | None], counts: BucketCounts, positions: np.ndarray
) -> list[tuple[int, list[ClosedWindow]]]:
    """Each bucket's baseline window test (None: none) fed its part's present codes (``positions``: their places
    in the partition); by bucket, the windows that closed, their statistics still to compute."""
    out = []
    for k, test in enumerate(tests):
        if test is None or test.add_counts(counts.table[k], counts.first_times[k], counts.present_n[k]):
            continue
        part = counts.part(k)
        present = counts.present[part]
        closed = test.close_windows(counts.codes[part][present], counts.times[part][present], positions[part][present])
        if closed:
            out.append((k, closed))
    return out
