"""The statistics a window is tested with against its reference, one window at a time or many at once.

Population stability index, Jensen-Shannon distance, Kolmogorov-Smirnov on binned counts (exact p-values
where they can be small, from a cache) and chi-square of homogeneity; :func:`window_tests` computes them for
every window that closed in a batch as 2-D arrays, each equal to its one-window function. The references and
windows they are applied to, and the false-discovery rounds, are :mod:`monitor.core.significance`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as sps

PSI_EPSILON = 1e-4  # share given to an empty bin so PSI stays finite (the usual convention)


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.size)


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count (or share) vectors over the same bins.

    ``sum((c - r) * ln(c / r))`` with empty bins raised to ``epsilon``: 0 same, above 0.1 a moderate
    and above 0.2 a large shift by the usual reading.

    >>> round(psi(np.array([50, 50]), np.array([80, 20])), 4)
    0.4159
    """
    r = np.maximum(shares(np.asarray(reference, dtype=np.float64)), epsilon)
    c = np.maximum(shares(np.asarray(current, dtype=np.float64)), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so 0 same and 1 disjoint) of two count vectors.

    >>> js_distance(np.array([1, 0]), np.array([0, 1]))
    1.0
    """
    r = shares(np.asarray(reference, dtype=np.float64))
    c = shares(np.asarray(current, dtype=np.float64))
    m = 0.5 * (r + c)

    def kl(p: np.ndarray) -> float:
        used = p > 0
        return float(np.sum(p[used] * np.log2(p[used] / m[used])))

    return math.sqrt(max(0.0, 0.5 * kl(r) + 0.5 * kl(c)))


def ks_two_sample(reference: np.ndarray, current: np.ndarray, exact_below: float = 1.0) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value from counts over ordered bins.

    On binned values this is the exact KS statistic of the values placed at their bins; the p-value
    uses the same distribution as ``scipy.stats.ks_2samp(method="asymp")``. That distribution costs
    up to a millisecond per value, so where only small p-values matter (a Benjamini-Hochberg discovery
    needs p <= q) the p-value is computed with it only where it can be at most ``exact_below``
    (:func:`ks_critical`); elsewhere the limiting Kolmogorov distribution gives it, a few microseconds,
    larger than the exact one wherever that is below 0.9.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    m, n = ref.sum(), cur.sum()
    if m == 0 or n == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(ref) / m - np.cumsum(cur) / n)))
    en = m * n / (m + n)
    if d < ks_critical(exact_below, round(en)):
        return d, float(special.kolmogorov(math.sqrt(en) * d))
    return d, exact_ks_p(d, m, n)


def exact_ks_p(d: float, m: float, n: float) -> float:
    """The exact p-value (``kstwo`` with the effective size of samples of ``m`` and ``n`` values) of the KS
    statistic ``d``. Between counts the statistic is a fraction of ``m * n``, and windows share few sizes, so the
    same few values come again (on the reference workload 22 distinct ones in 98): taken from a cache by that
    fraction's numerator, read back from ``d`` (scipy computes each in up to a millisecond). Statistics that are
    no such fraction (counts that are not whole) are computed each time."""
    m, n = float(m), float(n)  # (counts given as ints too)
    if m <= 0 or n <= 0:
        return 1.0  # an empty side is no evidence (as ks_two_sample says)
    en = round(m * n / (m + n))
    apart = d * m * n
    if m.is_integer() and n.is_integer() and math.isfinite(apart) and abs(apart - round(apart)) <= 1e-6:
        return _exact_ks_p(round(apart), int(m), int(n), en)
    return float(np.clip(sps.kstwo.sf(d, en), 0.0, 1.0))


@lru_cache(maxsize=16_384)
def _exact_ks_p(apart: int, m: int, n: int, en: int) -> float:
    return float(np.clip(sps.kstwo.sf(apart / (m * n), en), 0.0, 1.0))


@lru_cache(maxsize=4096)
def ks_critical(level: float, n: int) -> float:
    """The KS statistic from which the exact p-value (``kstwo`` with ``n`` effective values) can be at most
    ``level``, less a margin for the inversion's error (up to a few millionths; the margin is a thousandth):
    below it the exact p-value is larger than ``level``, and so is the limiting distribution's (for a level
    under 0.9). Windows share few sizes: cached."""
    if level >= 1.0 or n < 1:
        return 0.0
    return float(sps.kstwo.isf(level, n)) * (1 - 1e-3)


def ks_samples(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS on raw values (both samples in memory): used where a sample is small enough to test exactly."""
    values = np.union1d(reference, current)
    ref_counts = np.bincount(np.searchsorted(values, reference), minlength=values.size)
    cur_counts = np.bincount(np.searchsorted(values, current), minlength=values.size)
    return ks_two_sample(ref_counts, cur_counts)


def chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors (both are samples), without continuity correction."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    used = (ref + cur) > 0
    if used.sum() < 2 or ref.sum() == 0 or cur.sum() == 0:
        return 0.0, 1.0
    table = np.vstack([ref[used], cur[used]])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, float(special.chdtrc(int(used.sum()) - 1, stat))  # chi2.sf without scipy.stats' overhead


@dataclass(frozen=True)
class WindowStatistics:
    """The tests of many windows at once, one row per window (see :func:`window_tests`)."""

    psi: np.ndarray
    js: np.ndarray
    ks: np.ndarray
    ks_p: np.ndarray
    chi2: np.ndarray
    chi2_p: np.ndarray


def window_tests(
    reference: np.ndarray, current: np.ndarray, exact_below: float = 1.0, *, ks: bool = True
) -> WindowStatistics:
    """PSI, Jensen-Shannon, Kolmogorov-Smirnov and chi-square of every window that closed, as 2-D arrays.

    Row ``i`` of ``current`` (counts per bin or category) is tested against row ``i`` of ``reference``; each
    statistic equals the one-window function's (:func:`psi`, :func:`js_distance`, :func:`ks_two_sample`,
    :func:`chi_square`), computed for all rows in a handful of array operations instead of a few per window.
    ``ks`` False leaves Kolmogorov-Smirnov out (0 and p 1): categories have no order for it to read.

    >>> ref = np.array([[50, 50], [50, 50]]); cur = np.array([[80, 20], [50, 50]])
    >>> w = window_tests(ref, cur)
    >>> np.round(w.psi, 4).tolist(), (w.ks_p < 1e-3).tolist()
    ([0.4159, 0.0], [True, False])
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    m, n = ref.sum(axis=1, keepdims=True), cur.sum(axis=1, keepdims=True)
    r = np.divide(ref, m, out=np.zeros_like(ref), where=m > 0)
    c = np.divide(cur, n, out=np.zeros_like(cur), where=n > 0)
    rp, cp = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    psi_ = np.sum((cp - rp) * np.log(cp / rp), axis=1)
    mid = 0.5 * (r + c)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(r > 0, r * np.log2(r / mid), 0.0).sum(axis=1)
        kl_c = np.where(c > 0, c * np.log2(c / mid), 0.0).sum(axis=1)
    js_ = np.sqrt(np.maximum(0.0, 0.5 * kl_r + 0.5 * kl_c))
    both = (m[:, 0] > 0) & (n[:, 0] > 0)
    d, ks_p = np.zeros(ref.shape[0]), np.ones(ref.shape[0])
    if ks:
        d = np.where(both, np.abs(np.cumsum(r, axis=1) - np.cumsum(c, axis=1)).max(axis=1), 0.0)
        en = np.where(both, m[:, 0] * n[:, 0] / np.maximum(m[:, 0] + n[:, 0], 1.0), 0.0)
        approx = special.kolmogorov(np.sqrt(en) * d)
        sizes, size_of = np.unique(np.round(en), return_inverse=True)
        critical = np.array([ks_critical(exact_below, int(k)) for k in sizes.tolist()])[size_of.reshape(-1)]
        exact = both & (d >= critical)  # (see ks_two_sample)
        ks_p[both & ~exact] = approx[both & ~exact]
        if exact.any():
            at = np.flatnonzero(exact)
            ks_p[at] = [
                exact_ks_p(dv, mv, nv)
                for dv, mv, nv in zip(d[at].tolist(), m[at, 0].tolist(), n[at, 0].tolist(), strict=True)
            ]
    used = (ref + cur) > 0
    k = used.sum(axis=1)
    total = m + n
    with np.errstate(divide="ignore", invalid="ignore"):
        col = ref + cur
        e_ref, e_cur = m * col / total, n * col / total
        terms = np.where(used, (ref - e_ref) ** 2 / e_ref + (cur - e_cur) ** 2 / e_cur, 0.0)
    valid = both & (k >= 2)
    chi2 = np.where(valid, terms.sum(axis=1), 0.0)
    chi2_p = np.where(valid, special.chdtrc(np.maximum(k - 1, 1), chi2), 1.0)
    return WindowStatistics(psi_, js_, d, ks_p, chi2, chi2_p)
