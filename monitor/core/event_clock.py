"""The event-time clock model versions retire by, robust to a few events stamped far from the rest.

A running maximum of event times jumps to the time of one event from a client with a broken clock, and stays
there: every version would then look idle at once. This clock is the median of the last ``RECENT`` prediction
times, and never goes back; one stray event moves that median by one place among a thousand, not to its own
time. Where traffic is slow it lags by half of what the last ``RECENT`` predictions span.
"""

from __future__ import annotations

import numpy as np

RECENT = 1001  # prediction times the median is taken over


def advance(recent: np.ndarray, now: float, times: np.ndarray) -> tuple[np.ndarray, float]:
    """The last :data:`RECENT` times after ``times`` came (missing ones left out), and the clock after them:
    their median, or ``now`` if that is later.

    >>> recent, now = advance(np.empty(0), -np.inf, np.arange(100.0))
    >>> now
    49.5
    >>> advance(recent, now, np.array([1e12]))[1]  # one event stamped far in the future
    50.0
    """
    times = times[~np.isnan(times)][-RECENT:]
    if times.size == 0:
        return recent, now
    recent = np.concatenate([recent, times])[-RECENT:]
    return recent, max(now, float(np.median(recent)))
