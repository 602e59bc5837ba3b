"""The event-time clock model versions retire by, robust to a few events stamped far from the rest.

A running maximum of event times jumps to the time of one event from a client with a broken clock, and stays
there: every version would then look idle at once. This clock is a high percentile (the 90th) of the last
``RECENT`` prediction times, read once at least ``MIN_TIMES`` have come, and it never goes back: events
stamped in the future move it only when they are a tenth of the recent traffic. It lags the newest times by
about a tenth of what the last ``RECENT`` predictions span. A version is idle by it when the clock has passed
the version's own newest prediction time by the idle span: a lagging clock can only retire late, never early.
"""

from __future__ import annotations

import numpy as np

RECENT = 1001  # prediction times the percentile is taken over
MIN_TIMES = 101  # no reading before this many
PERCENTILE = 90.0


def advance(recent: np.ndarray, now: float, times: np.ndarray) -> tuple[np.ndarray, float]:
    """The last :data:`RECENT` times after ``times`` came (missing ones left out), and the clock after them:
    their :data:`PERCENTILE`, or ``now`` if that is later; -inf while fewer than :data:`MIN_TIMES` have come.

    >>> recent, now = advance(np.empty(0), -np.inf, np.array([1e12]))  # the first event, from a broken clock
    >>> now
    -inf
    >>> recent, now = advance(recent, now, np.arange(200.0))
    >>> float(now)
    180.0
    >>> float(advance(recent, now, np.full(5, 1e12))[1])  # a few more of them
    184.5
    """
    times = times[~np.isnan(times)][-RECENT:]
    if times.size == 0:
        return recent, now
    recent = np.concatenate([recent, times])[-RECENT:]
    if recent.size < MIN_TIMES:
        return recent, now
    return recent, max(now, float(np.percentile(recent, PERCENTILE)))
