"""Where in a batch a numeric stream's drift is judged, so that the batch does not choose it.

A numeric stream's evidence since its change point (values, their sum, sums of z) grows chunk by chunk
(:mod:`monitor.core.sequential`). Judged at batch ends, an alert's details moved with the batch size: a large
batch brought values past the point where the alert condition first held, and the alert counted them, showed
their mean and took the batch's last event time as ``detected_at`` (and its incident id with it). Here every
complete chunk's evidence is checked against the alert settings, and the first chunk of a batch where the
firing condition begins to hold, and the first where the clearing condition does, are kept with their
evidence: a stream whose alert is not open is judged at the first, an open one at the second, each at that
chunk's last event time. Chunks end at the stream's own value counts, so the same values give the same
points at any batch size. A stream with no such point is judged on its complete chunks at the batch's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erfc


@dataclass(frozen=True)
class EvidenceTest:
    """When a numeric stream's sequential evidence fires and clears (the alert settings' numbers)."""

    min_events: int = 200
    min_effect: float = 0.5
    max_p_value: float = 0.001
    resolve_ratio: float = 0.5


@dataclass(frozen=True)
class EvidencePoint:
    """A stream's statistics since its change point, as of the end of one chunk."""

    n: int  # values since the change point
    total: float  # their sum
    zsum: float  # the sum over chunks of z times the chunk's size
    z2: float  # the sum over chunks of z squared times the chunk's size
    time: float  # the chunk's last event time
    detector: str  # the detector of the change point ("" for none)
    change_seq: int
    change_time: float


def spread(n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, size: float) -> np.ndarray:
    """The values' z standard deviation from ``n`` values in chunks of ``size`` (``zsum`` and ``z2`` as in
    :class:`EvidencePoint`): ``size`` times the chunk means' variance, at least 1, and 1 with fewer than two
    chunks or when not known (NaN)."""
    chunks = n / size
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = zsum / n
        var = size * (z2 / n - mean**2) * chunks / (chunks - 1)
    return np.sqrt(np.where((chunks >= 2) & np.isfinite(var), np.maximum(var, 1.0), 1.0))


def effect_and_p(n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """|mean z| since the change point and the two-sided z-test's p-value (1 with no values)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.where(n > 0, np.abs(zsum / np.where(n > 0, n, 1)), 0.0)
        p = np.where(n > 0, erfc(effect * np.sqrt(n) / (math.sqrt(2) * spread(n, zsum, z2, size))), 1.0)
    return effect, p


def verdicts(
    n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, detected: np.ndarray, test: EvidenceTest, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per entry, whether the sequential evidence fires (a change point, enough values, significant and large
    enough) and whether it clears (enough values, small enough), as the drift judgement reads them."""
    enough = n >= test.min_events
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.abs(zsum / np.where(enough, n, 1.0))
    clear = enough & (effect < test.min_effect * test.resolve_ratio)
    fire = detected & enough & (effect >= test.min_effect)
    maybe = np.flatnonzero(fire)  # the p-value only where the rest holds: few entries, most batches none
    if maybe.size:
        _, p = effect_and_p(n[maybe], zsum[maybe], z2[maybe], size)
        fire[maybe] = p < test.max_p_value
    return fire, clear


def first_rises(flags: np.ndarray, before: np.ndarray, starts: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Per run of chunks (one stream's, ``starts`` and ``runs`` long), the index of the first chunk where
    ``flags`` turns true (after false, ``before`` standing for the chunk before the run), or -1."""
    previous = np.empty_like(flags)
    previous[1:] = flags[:-1]
    previous[starts] = before
    rise = np.flatnonzero(flags & ~previous)
    out = np.full(starts.size, -1, dtype=np.int64)
    if rise.size:
        run_of = np.searchsorted(starts, rise, side="right") - 1
        first = np.r_[True, run_of[1:] != run_of[:-1]]
        out[run_of[first]] = rise[first]
    return out
