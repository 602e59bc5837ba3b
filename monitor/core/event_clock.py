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
from typing import Any

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


def activity(recent: np.ndarray, newest: float) -> float:
    """When a version was active, as of the batch it came in (the last of ``recent``): the latest of that
    batch's sample, the version's own newest time in it, and the 90th percentile of the recent samples.

    >>> recent = np.arange(100.0, 201.0)
    >>> activity(recent, 300.0), activity(recent, -7200.0), activity(recent, float("nan"))
    (300.0, 200.0, 200.0)
    """
    reading = max(float(recent[-1]), float(np.percentile(recent, 90.0)))
    return reading if math.isnan(newest) else max(reading, newest)


def idle_versions(
    recent: np.ndarray, seen: int, arrived: dict[Any, int], active: dict[Any, float], idle_s: float, keep: Any = ()
) -> list[Any]:
    """The keys of ``arrived`` (each with its ``active``) idle for ``idle_s`` now, but those in ``keep``; one
    median per distinct arrival, and none where even the largest recent sample is not ``idle_s`` past."""
    top = float(recent.max()) if recent.size else -math.inf
    medians: dict[int, float] = {}
    out = []
    for key, at in arrived.items():
        if key in keep or seen - at < MIN_SAMPLES or top - active[key] < idle_s:
            continue
        if at not in medians:
            medians[at] = idle_for(recent, seen, at, 0.0)
        if medians[at] - active[key] >= idle_s:
            out.append(key)
    return out


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
