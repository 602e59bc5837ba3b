"""Drift detectors behind one small protocol: feed a batch, get back the positions where drift fired.

Positions are indices into the batch, so a detector's output does not depend on how the stream was
cut into batches: the same stream fed one event at a time or in batches of any size fires at the
same events. That is what makes alert ids reproducible on replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import signal, special

from monitor.core import river_drift
from monitor.core.chunks import counts_by_run


class BatchDriftDetector(Protocol):
    """What every numeric detector offers: ``update_many(x)`` returns the drift positions in ``x``."""

    name: str

    def update_many(self, x: np.ndarray) -> list[int]: ...


class PageHinkley:
    """Page-Hinkley test, vectorised per batch, equal to ``river.drift.PageHinkley`` event by event.

    River's recurrence ``s = alpha * s + (x - mean) - delta`` is a first-order linear filter, so a
    batch runs through ``scipy.signal.lfilter`` and running minima through ``np.minimum.accumulate``;
    only detections (rare) break the batch into pieces, because the test restarts after each.

    >>> ph = PageHinkley(threshold=20.0)
    >>> x = np.r_[np.zeros(500), np.ones(500) * 3.0]
    >>> ph.update_many(x)
    [506]
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if min_instances < 1:
            raise ValueError(f"min_instances must be >= 1, got {min_instances}")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if mode not in ("up", "down", "both"):
            raise ValueError(f"mode must be 'up', 'down' or 'both', got {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._s_inc = 0.0
        self._s_dec = 0.0
        self._min_inc = float("inf")
        self._max_dec = -1.0  # river's starting value, kept so both fire at the same event

    def update_many(self, x: np.ndarray) -> list[int]:
        x = np.asarray(x, dtype=np.float64)
        found: list[int] = []
        start = 0
        a = self.alpha
        while start < x.size:
            seg = x[start:]
            counts = self._n + np.arange(1, seg.size + 1, dtype=np.float64)
            means = (self._sum + np.cumsum(seg)) / counts
            dev = seg - means
            s_inc = signal.lfilter([1.0], [1.0, -a], dev - self.delta, zi=[a * self._s_inc])[0]
            s_dec = signal.lfilter([1.0], [1.0, -a], dev + self.delta, zi=[a * self._s_dec])[0]
            min_inc = np.minimum(np.minimum.accumulate(s_inc), self._min_inc)
            max_dec = np.maximum(np.maximum.accumulate(s_dec), self._max_dec)
            test_up = s_inc - min_inc > self.threshold
            test_down = max_dec - s_dec > self.threshold
            hit = test_up if self.mode == "up" else test_down if self.mode == "down" else test_up | test_down
            hit &= counts >= self.min_instances
            first = int(np.argmax(hit)) if hit.any() else -1
            if first < 0:
                self._n += seg.size
                self._sum += float(seg.sum())
                self._s_inc, self._s_dec = float(s_inc[-1]), float(s_dec[-1])
                self._min_inc, self._max_dec = float(min_inc[-1]), float(max_dec[-1])
                break
            found.append(start + first)
            self._reset()
            start += first + 1
        return found


class ChunkedADWIN:
    """River's compiled ADWIN fed with the means of consecutive chunks of ``chunk`` values.

    ADWIN costs a Python call per update; feeding chunk means cuts that cost by ``chunk`` and
    keeps ADWIN's guarantee on the chunk-mean stream (false-positive bound ``delta`` per check),
    at the price of up to ``chunk - 1`` events of extra detection delay. ``chunk=1`` is plain ADWIN.
    A detection is reported at the last event of the chunk that triggered it.

    >>> d = ChunkedADWIN(delta=0.002, chunk=8)
    >>> rng = np.random.default_rng(1)
    >>> hits = d.update_many(np.r_[rng.normal(0, 1, 4000), rng.normal(2, 1, 4000)])
    >>> len(hits) >= 1 and 4000 <= hits[0] < 4400
    True
    """

    name = "adwin"

    def __init__(self, delta: float = 0.002, chunk: int = 8, clock: int = 4) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        if clock < 1:
            raise ValueError(f"clock must be >= 1, got {clock}")
        self.delta = delta
        self.chunk = chunk
        self.clock = clock
        self._adwin = river_drift.ADWIN(delta=delta, clock=clock)
        self._carry = np.empty(0, dtype=np.float64)

    @property
    def estimation(self) -> float:
        """Mean of the values in ADWIN's current window."""
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        """Number of events in ADWIN's current window."""
        return int(self._adwin.width) * self.chunk

    def update_many(self, x: np.ndarray) -> list[int]:
        values = np.concatenate([self._carry, np.asarray(x, dtype=np.float64)])
        full = values.size // self.chunk
        self._carry = values[full * self.chunk :].copy()
        if full == 0:
            return []
        means = values[: full * self.chunk].reshape(full, self.chunk).mean(axis=1)
        offset = values.size - np.asarray(x).size  # carried values come before this batch
        found: list[int] = []
        adwin = self._adwin
        for j, m in enumerate(means.tolist()):
            adwin.update(m)
            if adwin.drift_detected:
                found.append((j + 1) * self.chunk - 1 - offset)
        return found


@dataclass(frozen=True)
class WindowTest:
    """The result of testing one window of categories against the reference."""

    position: int
    distance: float
    chi2: float
    p_value: float
    reference: np.ndarray
    current: np.ndarray


class WindowedChiSquare:
    """Tumbling windows of category codes, each tested against a reference window.

    The reference is the first window. Each later window of ``window`` values gets a chi-square test
    of homogeneity against it (both are samples) and its total variation distance, the share of
    traffic that would have to move to turn one distribution into the other (0 same, 1 disjoint).

    >>> t = WindowedChiSquare(n_codes=3, window=200)
    >>> rng = np.random.default_rng(0)
    >>> res = t.update_many(np.r_[rng.integers(0, 2, 400), np.full(200, 2)])
    >>> [(r.position, round(r.distance, 1), r.p_value < 1e-6) for r in res]
    [(399, 0.0, False), (599, 1.0, True)]
    """

    name = "chi2"

    def __init__(self, n_codes: int, window: int = 1000) -> None:
        if n_codes < 1:
            raise ValueError(f"n_codes must be >= 1, got {n_codes}")
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.n_codes = n_codes
        self.window = window
        self.reference: np.ndarray | None = None
        self._counts = np.zeros(n_codes, dtype=np.int64)
        self._filled = 0

    @property
    def filled(self) -> int:
        """Values in the window filling now."""
        return self._filled

    def update_many(self, codes: np.ndarray) -> list[WindowTest]:
        """Count the codes (negative: missing, skipped) into the tumbling windows; the tests of the windows that
        closed, all computed together (a batch often closes dozens)."""
        closed, ends = self.count_windows(codes)
        if not len(closed) or self.reference is None:  # (a window closed after the reference: it is set)
            return []
        return compare_category_rows(self.reference, closed, ends)

    def add_counts(self, counts: np.ndarray, present: int) -> bool:
        """Add ``present`` codes already counted (``counts``, by code) when they do not close the open window, as
        :meth:`count_windows` would count them; False, and nothing added, when they would."""
        if present >= self.window - self._filled or counts.size != self._counts.size:
            return False
        self._counts += counts
        self._filled += present
        return True

    def count_windows(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Count the codes into the windows without testing them: the counts of the windows that closed (the
        first one becomes the reference, untested) and the index of the value that closed each, among the
        present codes. Their tests are :func:`compare_category_rows` against :attr:`reference`, which callers
        run for many streams at once."""
        codes = np.asarray(codes)
        codes = codes[codes >= 0]
        n, size, width = codes.size, self.window, self.n_codes
        need = size - self._filled  # values that close the open window
        closes = 0 if n < need else 1 + (n - need) // size
        if closes == 0:
            if n:
                self._counts += np.bincount(codes, minlength=width)
            self._filled += n
            return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = np.full(closes + 1, size, dtype=np.int64)  # the open window's rest, full ones, the next's start
        lengths[0], lengths[-1] = need, n - need - (closes - 1) * size
        counts = counts_by_run(codes, lengths, width)
        counts[0] += self._counts
        self._counts = counts[closes].copy()
        self._filled = (n - need) % size
        ends = need - 1 + size * np.arange(closes)  # the value that closed each window
        closed = counts[:closes]
        if self.reference is None:
            self.reference = closed[0].copy()
            closed, ends = closed[1:], ends[1:]
        return closed, ends


def compare_category_rows(ref: np.ndarray, cur: np.ndarray, positions: np.ndarray) -> list[WindowTest]:
    """:func:`compare_categories` of each row of ``cur`` (windows x codes) against ``ref`` (one reference for
    every row, or one row each), in a few 2-D passes: the same tests, summed in another order (the last bits
    can differ)."""
    ref_f = np.atleast_2d(ref).astype(np.float64)
    cur_f = cur.astype(np.float64)
    n_ref = ref_f.sum(axis=1, keepdims=True)
    n_cur = cur_f.sum(axis=1, keepdims=True)
    p_ref, p_cur = ref_f / n_ref, cur_f / n_cur
    distance = 0.5 * np.abs(p_ref - p_cur).sum(axis=1)
    both = ref_f + cur_f  # each code's column of the 2 x codes table
    used = both > 0
    total = n_ref + n_cur
    with np.errstate(divide="ignore", invalid="ignore"):
        e_ref, e_cur = n_ref * both / total, n_cur * both / total
        terms = (ref_f - e_ref) ** 2 / e_ref + (cur_f - e_cur) ** 2 / e_cur
    k = used.sum(axis=1)
    chi2 = np.where(used, terms, 0.0).sum(axis=1)
    tested = k >= 2
    chi2 = np.where(tested, chi2, 0.0)
    p_value = np.where(tested, special.chdtrc(np.maximum(k - 1, 1), chi2), 1.0)
    refs = [p_ref[0]] * len(cur) if p_ref.shape[0] == 1 else list(p_ref)
    return [
        WindowTest(position, d, c, p, r, row)
        for position, d, c, p, r, row in zip(
            positions.tolist(), distance.tolist(), chi2.tolist(), p_value.tolist(), refs, p_cur, strict=True
        )
    ]


def compare_categories(ref: np.ndarray, cur: np.ndarray, position: int = -1) -> WindowTest:
    """Category counts ``cur`` against reference counts ``ref`` (both samples, neither empty): chi-square test
    of homogeneity and total variation distance."""
    p_ref, p_cur = ref / ref.sum(), cur / cur.sum()
    distance = 0.5 * float(np.abs(p_ref - p_cur).sum())
    used = (ref + cur) > 0
    if used.sum() < 2:
        chi2, p_value = 0.0, 1.0
    else:
        table = np.vstack([ref[used], cur[used]]).astype(np.float64)
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        p_value = float(special.chdtrc(int(used.sum()) - 1, chi2))
    return WindowTest(position, distance, chi2, p_value, p_ref, p_cur)
