"""Online statistics updated a batch at a time, each with a fixed memory footprint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.core import kernels

OVERFLOW = "__other__"
_UNKNOWN = -(2**62)  # no code: a value the vocabulary has not met (codes are -1 and up)
_PLAIN = frozenset({str, bool, type(None)})  # category values whose distinct keys are their distinct texts


def without_gross_outliers(x: np.ndarray) -> np.ndarray:
    """A warm-up's values less its gross outliers: those more than 10 spreads from the median on either side,
    a side's spread being the larger of its distance to the 1st (99th) percentile and the robust standard
    deviation (1.4826 MAD); a side without spread keeps everything. A heavy tail (incomes, amounts,
    revenue) stays whole, so the baseline's mean and spread are the stream's own: ten robust standard
    deviations alone cut a lognormal's tail and set its baseline mean 40% low, and every later window then
    read as a rise. A lone absurd value (a sentinel, a unit slip, 1e300) is left out, so it cannot blind the
    detectors for good.

    >>> values = np.r_[np.arange(100.0), 1e9]
    >>> float(without_gross_outliers(values).max()), without_gross_outliers(np.exp(np.linspace(0, 6, 101))).size
    (99.0, 101)
    """
    low, med, high = np.percentile(x, _LEVELS)
    return _within(x, low, med, high, float(np.median(np.abs(x - med))))


def without_gross_outliers_many(samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`without_gross_outliers` of each sample, bit for bit, with the percentiles and medians of samples of
    one size computed together (about 100 us of numpy a call whatever the size; one batch ends the warm-ups of
    many streams at once)."""
    out: list[np.ndarray] = [np.empty(0)] * len(samples)
    for rows in same_sizes(samples):
        if len(rows) == 1 or samples[rows[0]].size == 0:
            for i in rows:
                out[i] = without_gross_outliers(samples[i])
            continue
        matrix = np.stack([np.asarray(samples[i], dtype=np.float64) for i in rows])
        low, med, high = np.percentile(matrix, _LEVELS, axis=1)
        spread = np.median(np.abs(matrix - med[:, None]), axis=1)
        for k, i in enumerate(rows):
            out[i] = _within(samples[i], low[k], med[k], high[k], float(spread[k]))
    return out


def same_sizes(samples: Sequence[np.ndarray]) -> list[list[int]]:
    """The samples' indices grouped by the samples' sizes, in order of first appearance (samples of one size
    can be stacked and reduced along their rows together)."""
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(samples):
        groups.setdefault(x.size, []).append(i)
    return list(groups.values())


_LEVELS = [1.0, 50.0, 99.0]  # the percentiles a side's spread is read from, and the median


def _within(x: np.ndarray, low: float, med: float, high: float, median_deviation: float) -> np.ndarray:
    """``x`` less the values beyond 10 spreads of the median (see :func:`without_gross_outliers`)."""
    mad = 1.4826 * median_deviation
    up, down = max(high - med, mad), max(med - low, mad)
    keep = np.ones(x.size, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float limit: an infinite spread
        if up > 0:
            keep &= x <= med + 10 * up
        if down > 0:
            keep &= x >= med - 10 * down
    return x[keep]


class RunningMoments:
    """Count, mean, variance, min and max, merged batch by batch (Chan et al.'s parallel update).

    >>> m = RunningMoments()
    >>> m.update(np.array([1.0, 2.0])); m.update(np.array([3.0, 4.0]))
    >>> (m.n, m.mean, round(m.variance, 4), m.minimum, m.maximum)
    (4, 2.5, 1.6667, 1.0, 4.0)
    """

    __slots__ = ("m2", "maximum", "mean", "minimum", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")

    def update(self, x: np.ndarray) -> None:
        k = int(x.size)
        if k == 0:
            return
        b_mean = float(x.mean())
        b_m2 = float(((x - b_mean) ** 2).sum())
        n = self.n + k
        delta = b_mean - self.mean
        self.mean += delta * k / n
        self.m2 += b_m2 + delta * delta * self.n * k / n
        self.n = n
        self.minimum = min(self.minimum, float(x.min()))
        self.maximum = max(self.maximum, float(x.max()))

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 below two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    def snapshot(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2, "min": self.minimum, "max": self.maximum}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> RunningMoments:
        m = cls()
        m.n, m.mean, m.m2, m.minimum, m.maximum = data["n"], data["mean"], data["m2"], data["min"], data["max"]
        return m


class ReservoirQuantiles:
    """Quantiles from a uniform reservoir sample of fixed size (Vitter's algorithm R, per batch).

    Kept to read older snapshots, whose per-stream trackers held one; numeric streams now take their
    quantiles from a fixed histogram (:mod:`monitor.core.numeric_streams`), which merges.

    The sample is an unbiased draw of everything seen, so quantile error shrinks as 1/sqrt(size)
    while memory stays ``size`` floats. The random generator is passed in so one engine owns one
    seeded generator and replays are reproducible.

    >>> q = ReservoirQuantiles(size=1000)
    >>> q.update(np.arange(10_000, dtype=float), np.random.default_rng(0))
    >>> bool(abs(q.quantiles([0.5])[0] - 5000) < 500)
    True
    """

    __slots__ = ("sample", "seen", "size")

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.sample = np.empty(0, dtype=np.float64)
        self.seen = 0

    def update(self, x: np.ndarray, rng: np.random.Generator) -> None:
        if x.size == 0:
            return
        room = self.size - self.sample.size
        if room > 0:
            take = x[:room]
            self.sample = np.concatenate([self.sample, take])
            self.seen += take.size
            x = x[room:]
            if x.size == 0:
                return
        positions = self.seen + np.arange(x.size)  # 0-based index of each item in the whole stream
        slots = rng.integers(0, positions + 1)
        keep = slots < self.size
        self.sample[slots[keep]] = x[keep]
        self.seen += x.size

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        if self.sample.size == 0:
            return np.full(len(qs), np.nan)
        return np.quantile(self.sample, qs)


class CategoryVocabulary:
    """Maps category values to small integer codes, at most ``capacity`` of them.

    Values seen after the vocabulary is full share the overflow code ``capacity`` (shown as
    ``__other__``), so memory per categorical stream is fixed however many values appear.

    >>> v = CategoryVocabulary(capacity=2)
    >>> v.encode(["a", "b", "c", None, "a"]).tolist()
    [0, 1, 2, -1, 0]
    >>> v.labels()
    ['a', 'b', '__other__']
    """

    __slots__ = ("_codes", "capacity", "values")

    def __init__(self, capacity: int = 20) -> None:
        self.capacity = capacity
        self.values: list[str] = []
        self._codes: dict[str | None, int] = {None: -1}  # None too: a column of known values is one lookup a row

    def encode(self, column: Sequence[Any]) -> np.ndarray:
        """Codes for a column; ``-1`` marks a missing value. Booleans become ``"true"`` / ``"false"``."""
        known = self._known(column)
        if known is not None:
            return known
        distinct = self._distinct(column)
        if distinct is not None:
            return np.fromiter(map(distinct.__getitem__, column), dtype=np.int64, count=len(column))
        out = np.empty(len(column), dtype=np.int64)
        for i, value in enumerate(column):
            if value is None:
                out[i] = -1
            else:
                out[i] = self._code(("true" if value else "false") if isinstance(value, bool) else str(value))
        return out

    def encode_categories(self, column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Codes for a categorical field, where a number is a type mismatch, not a category: it is coded ``-1``
        like a missing value and marked in the mask returned with the codes (None when there is none)."""
        known = self._known(column)
        if known is not None:
            return known, None
        distinct = self._distinct(column)
        if distinct is not None:
            return np.fromiter(map(distinct.__getitem__, column), dtype=np.int64, count=len(column)), None
        numbers = np.fromiter((v is not None and not isinstance(v, str | bool) for v in column), bool, len(column))
        return self.encode([v if isinstance(v, str | bool) else None for v in column]), numbers

    def _known(self, column: Sequence[Any]) -> np.ndarray | None:
        """Every row's code in one pass when each value is None or a string already coded (the common case once
        the vocabulary has filled), else None: a new value, a boolean or a number has no entry, and stops it."""
        codes = kernels.lookup_codes(self._codes, column, _UNKNOWN)
        if (codes == _UNKNOWN).any():
            self._codes.setdefault(None, -1)  # a vocabulary restored from a snapshot taken before None had it
            return None
        return codes

    def _distinct(self, column: Sequence[Any]) -> dict[Any, int] | None:
        """Each distinct value of a column with its code, coded in order of first appearance (as a walk over the
        rows would code them), or None when the column holds anything but strings, booleans and None."""
        distinct: dict[Any, int] = dict.fromkeys(column, -1)
        types = set(map(type, distinct))
        if not types <= _PLAIN:
            return None
        if bool in types and not _PLAIN.issuperset(map(type, column)):
            return None  # a 1 or 0.0 would share the key of True or False, and hide among the distinct values
        for value in distinct:
            if value is not None:
                distinct[value] = self._code(("true" if value else "false") if type(value) is bool else value)
        return distinct

    def _code(self, key: str) -> int:
        """The code of a value, adding it while there is room; the overflow code once the vocabulary is full."""
        code = self._codes.get(key)
        if code is None:
            if len(self.values) >= self.capacity:
                return self.capacity
            code = self._codes[key] = len(self.values)
            self.values.append(key)
        return code

    def labels(self) -> list[str]:
        return [*self.values, OVERFLOW]

    def snapshot(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "values": list(self.values)}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> CategoryVocabulary:
        v = cls(data["capacity"])
        v.values = list(data["values"])
        v._codes = {None: -1, **{value: i for i, value in enumerate(v.values)}}
        return v
