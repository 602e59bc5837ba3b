"""When a model version counts as idle: event time as the rest of the traffic tells it, robust to odd stamps.

Each batch of predictions gives one sample, the median of its event times. A version is idle once the batches
that came after its rows last did have moved on by the idle span from its activity then (:func:`activity`):
the median of those batches' samples (the last ``RECENT`` of them at most, and at least ``MIN_SAMPLES``).
Only batches after its last arrival are evidence, so the time of the rest jumping (a pause, a burst after a
trickle) cannot retire a version whose rows keep coming; batches stamped far off count only while they are
half of those. Its activity is the latest of that batch's sample, its own newest time in the batch, and the
90th percentile of the recent samples, so a version whose own stamps lag the rest (and fill its batches) is
judged by the rest's time; one stamped ahead of the rest is kept until the rest passes its stamp (kept too
long, never retired early).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

RECENT = 1001  # batch samples kept
MIN_SAMPLES = 11  # batches after a version's last arrival before it can be idle


def median(values: np.ndarray) -> float:
    """``np.median`` of float64 values without NaN (at least one), to the bit: the middle order statistic, or the
    mean of the two (``np.median``'s own steps, without its few tens of microseconds of checks, taken twice a
    batch)."""
    n = values.size  # (partitioned at numpy's places, so that equal values, 0.0 and -0.0, land where they land there)
    if n % 2:  # (numpy's mean sums from 0.0: a -0.0 comes out as 0.0)
        return 0.0 + float(np.partition(values, [n // 2, -1])[n // 2])
    low, high = np.partition(values, [n // 2 - 1, n // 2, -1])[n // 2 - 1 : n // 2 + 1].tolist()
    return (0.0 + low + high) / 2


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` of float64 values without NaN (at least one; its default linear method), to
    the bit: the same index, weight and interpolation, on the two order statistics around the index."""
    n = values.size
    at = (n - 1) * (q / 100)
    if at >= n - 1:  # numpy's index past the end: the last value twice, weighted from index -1
        low = high = float(np.partition(values, [-1, 0])[-1])
        weight = at + 1
    else:  # (partitioned at numpy's places, so that equal values, 0.0 and -0.0, land where they land there)
        below = math.floor(at)
        places = sorted({-1, 0, below, below + 1})
        low, high = np.partition(values, places)[below : below + 2].tolist()
        weight = at - below
    if weight >= 0.5:
        return high - (high - low) * (1 - weight)
    return low + (high - low) * weight


def advance(recent: np.ndarray, seen: int, times: np.ndarray) -> tuple[np.ndarray, int]:
    """The last :data:`RECENT` batch samples and how many batches have given one, after a batch with
    ``times`` (missing ones left out; a batch without any gives none)."""
    present = times[~np.isnan(times)]
    if present.size == 0:
        return recent, seen
    return np.append(recent[-(RECENT - 1) :], median(present)), seen + 1


def activity(recent: np.ndarray, newest: float) -> float:
    """When a version was active, as of the batch it came in (the last of ``recent``): the latest of that
    batch's sample, the version's own newest time in it, and the 90th percentile of the recent samples.

    >>> recent = np.arange(100.0, 201.0)
    >>> activity(recent, 300.0), activity(recent, -7200.0), activity(recent, float("nan"))
    (300.0, 200.0, 200.0)
    """
    reading = max(float(recent[-1]), percentile(recent, 90.0))
    return reading if math.isnan(newest) else max(reading, newest)


class VersionActivity:
    """One stage's evidence of which model versions are idle: its recent batch samples, how many batches gave
    one, and per version the batch it last came in and its :func:`activity` then. Plain data, snapshotted."""

    def __init__(self) -> None:
        self.recent = np.empty(0)
        self.seen = 0
        self.arrived: dict[Any, int] = {}
        self.active: dict[Any, float] = {}

    def sample(self, times: np.ndarray) -> None:
        """A batch's event times (before its versions are noted with :meth:`came`)."""
        self.recent, self.seen = advance(self.recent, self.seen, times)

    def came(self, key: Any, newest: float) -> None:
        """Version ``key`` came in the last batch, its newest event time there ``newest``."""
        if self.recent.size:
            self.arrived[key], self.active[key] = self.seen, activity(self.recent, newest)

    def idle(self, known: Iterable[Any], idle_s: float, keep: Collection[Any] = ()) -> list[Any]:
        """The versions idle for ``idle_s`` now, but those in ``keep``. One of ``known`` not noted yet (an older
        release's snapshot, or retirement was off) counts as coming now. One median per distinct arrival, and
        none where even the largest recent sample is not ``idle_s`` past."""
        if not self.recent.size:
            return []
        for key in set(known) - self.arrived.keys():
            self.arrived[key], self.active[key] = self.seen, activity(self.recent, math.nan)
        top = float(self.recent.max())
        medians: dict[int, float] = {}
        out = []
        for key, at in self.arrived.items():
            if key in keep or self.seen - at < MIN_SAMPLES or top - self.active[key] < idle_s:
                continue
            if at not in medians:
                medians[at] = idle_for(self.recent, self.seen, at, 0.0)
            if medians[at] - self.active[key] >= idle_s:
                out.append(key)
        return out

    def forget(self, key: Any) -> None:
        self.arrived.pop(key, None)
        self.active.pop(key, None)

    def clear(self) -> None:
        """Retirement is off: if it is turned on again, every version counts as coming then."""
        self.arrived, self.active = {}, {}

    @property
    def now(self) -> float:
        """The last batch's sample."""
        return float(self.recent[-1])


def idle_for(recent: np.ndarray, seen: int, arrived: int, active: float) -> float:
    """How long a version that last came in batch ``arrived`` (a ``seen`` count) with activity ``active`` has
    been idle: the median sample of the batches since, less ``active``; 0 before :data:`MIN_SAMPLES` of them.

    >>> recent, seen = np.empty(0), 0
    >>> for t in range(30):
    ...     recent, seen = advance(recent, seen, np.array([100.0 * t]))
    >>> idle_for(recent, seen, 10, 1000.0), idle_for(recent, seen, 25, 2500.0)
    (950.0, 0.0)
    """
    since = seen - arrived
    if since < MIN_SAMPLES:
        return 0.0
    return median(recent[-since:]) - active
