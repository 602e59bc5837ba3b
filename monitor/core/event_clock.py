"""The event-time clock model versions retire by, robust to events stamped far from the rest.

A running maximum of event times jumps to the time of one event from a client with a broken clock, and stays
there: every version would then look idle at once. This clock takes one sample per batch, the median of its
event times, and reads the median of the last ``RECENT`` samples once ``MIN_SAMPLES`` have come: batches
whose times are far off move it only while they are half of the recent ones, however a stage orders or cuts
its rows, and it comes back when they pass. It lags the newest batches by about half of what the last
``RECENT`` batches span.

A version's activity (:func:`activity`) is the clock's reading when its rows last came, or its own newest
event time where that is later, by at most the idle span. A version is idle once the clock has passed its
activity by the idle span: while its rows come it never is, a lagging clock makes a retirement later, never
earlier, and the version's own times, stamped in the future or behind the rest, delay it by one idle span at
most.
"""

from __future__ import annotations

import math

import numpy as np

RECENT = 1001  # batch medians the clock is the median of
MIN_SAMPLES = 11  # no reading before this many


def advance(recent: np.ndarray, now: float, times: np.ndarray) -> tuple[np.ndarray, float]:
    """The last :data:`RECENT` batch medians after a batch with ``times`` (missing ones left out), and the clock
    after it: their median; ``now`` (-inf at first) before :data:`MIN_SAMPLES` batches.

    >>> recent, now = advance(np.empty(0), -np.inf, np.array([1e12]))  # the first batch, from a broken clock
    >>> now
    -inf
    >>> for t in range(200):
    ...     recent, now = advance(recent, now, np.array([t, t + 0.5, 1e12]))  # a future time in every batch
    ...     recent, now = advance(recent, now, np.array([1e12]) if t % 4 == 0 else np.array([t, t + 1.0]))
    >>> float(now)
    114.5
    """
    present = times[~np.isnan(times)]
    if present.size == 0:
        return recent, now
    recent = np.append(recent[-(RECENT - 1) :], np.median(present))
    if recent.size < MIN_SAMPLES:
        return recent, now
    return recent, float(np.median(recent))


def activity(arrived: float, newest: float, idle_s: float) -> float:
    """When a version was last active: the clock's reading when its rows last came (``arrived``), or its
    newest event time if later, by at most ``idle_s``.

    >>> activity(100.0, 130.0, 60.0), activity(100.0, 1e12, 60.0), activity(100.0, -7200.0, 60.0)
    (130.0, 160.0, 100.0)
    """
    if math.isnan(newest):
        return arrived
    return max(arrived, min(newest, arrived + idle_s))


def first_reading(now: float, newest: float) -> float:
    """The reading to take for a version whose rows came before the clock's first one: its newest time, or
    the first reading ``now`` if that is earlier (a time stamped in the future stands for no later than now).

    >>> first_reading(500.0, 300.0), first_reading(500.0, 1e12), first_reading(500.0, float("nan"))
    (300.0, 500.0, 500.0)
    """
    return now if math.isnan(newest) else min(now, newest)
