"""When a model version counts as idle: event time as the rest of the traffic tells it, robust to odd stamps.

Each batch of predictions gives one sample, the median of its event times. A version is idle once the batches
that came after its rows last did have moved on by the idle span from its activity then (:func:`activity`:
that batch's sample, or the version's own newest time if later): the median of those batches' samples (the
last ``RECENT`` of them at most, and at least ``MIN_SAMPLES``). Only batches after its last arrival are
evidence, so a version whose rows keep coming is never idle, however the time of the rest jumps (a pause, a
burst after a trickle); batches stamped far off count only while they are half of those. The version's own
times are trusted when later: one of its rows stamped in the future keeps it until the rest of the traffic
passes that time (kept too long, never retired early).
"""

from __future__ import annotations

import math

import numpy as np

RECENT = 1001  # batch samples kept
MIN_SAMPLES = 11  # batches after a version's last arrival before it can be idle


def advance(recent: np.ndarray, seen: int, times: np.ndarray) -> tuple[np.ndarray, int]:
    """The last :data:`RECENT` batch samples and how many batches have given one, after a batch with
    ``times`` (missing ones left out; a batch without any gives none)."""
    present = times[~np.isnan(times)]
    if present.size == 0:
        return recent, seen
    return np.append(recent[-(RECENT - 1) :], np.median(present)), seen + 1


def activity(sample: float, newest: float) -> float:
    """When a version was active, as of a batch it came in: the batch's sample, or the version's own newest
    time in it if later.

    >>> activity(100.0, 130.0), activity(100.0, -7200.0), activity(100.0, float("nan"))
    (130.0, 100.0, 100.0)
    """
    return sample if math.isnan(newest) else max(sample, newest)


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
    return float(np.median(recent[-since:])) - active
