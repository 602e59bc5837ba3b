"""Score calibration for label-free accuracy estimates (the calibration step of NannyML's CBPE).

A score is a probability only if the model is calibrated; most are not quite, and an estimate built on raw
scores is biased. Histogram binning fixes that with labelled data: the first ``reference`` labelled
predictions give, per score bin, the observed rate of the positive class. Each bin's rate is shrunk towards
the raw score by ``PRIOR`` pseudo-observations, so an empty or sparse bin falls back to the score itself, and
the calibration is used (and keeps improving) while its reference fills.

Labelled predictions that arrive after the fit are data the calibrator did not see: they measure its
calibration error, which says whether the estimates can be trusted. Everything is counts, so it merges.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 10
PRIOR = 10.0  # pseudo-observations at the raw score in each bin: a sparse bin stays near the score


class ScoreCalibration:
    """Histogram binning of binary scores, fitted on the first labels, checked on the later ones.

    >>> cal = ScoreCalibration(reference=1000)
    >>> rng = np.random.default_rng(0)
    >>> s = rng.random(3000); y = (rng.random(3000) < s ** 2) * 1.0   # over-confident scores
    >>> cal.learn(s, y)
    >>> (cal.fitted, round(float(cal.probability(np.array([0.5]))[0]), 1), cal.error() < 0.05)
    (True, 0.2, True)
    """

    def __init__(self, reference: int = 5000, bins: int = BINS) -> None:
        if reference < 1 or bins < 1:
            raise ValueError(f"reference and bins must be >= 1, got {reference}, {bins}")
        self.reference = reference
        self.bins = bins
        self.fit_n = np.zeros(bins, dtype=np.float64)
        self.fit_pos = np.zeros(bins, dtype=np.float64)
        self.check_n = np.zeros(bins, dtype=np.float64)
        self.check_pos = np.zeros(bins, dtype=np.float64)
        self.check_prob = np.zeros(bins, dtype=np.float64)

    @property
    def fitted(self) -> bool:
        return float(self.fit_n.sum()) >= self.reference

    @property
    def checked(self) -> int:
        """Labelled predictions the calibrator did not see, on which its error is measured."""
        return int(self.check_n.sum())

    def _bin(self, scores: np.ndarray) -> np.ndarray:
        return np.clip((scores * self.bins).astype(np.int64), 0, self.bins - 1)

    def learn(self, scores: np.ndarray, y: np.ndarray, *, fit: bool = True) -> None:
        """Labelled scores in arrival order: the first ``reference`` fit, the rest check the fit.

        ``fit=False`` ends the fit early: after a concept change the labels no longer describe the scores the
        estimate is for, so they only check the calibration (and show it is no longer to be trusted).
        """
        ok = ~np.isnan(scores) & ~np.isnan(y)
        scores, y = np.clip(scores[ok], 0.0, 1.0), y[ok]
        if not fit and not self.fitted:
            self.reference = int(self.fit_n.sum())
        need = max(0, self.reference - int(self.fit_n.sum()))
        if need:
            idx = self._bin(scores[:need])
            self.fit_n += np.bincount(idx, minlength=self.bins)
            self.fit_pos += np.bincount(idx, weights=y[:need], minlength=self.bins)
            scores, y = scores[need:], y[need:]
        if scores.size and (self.fitted or not fit):
            idx = self._bin(scores)
            self.check_n += np.bincount(idx, minlength=self.bins)
            self.check_pos += np.bincount(idx, weights=y, minlength=self.bins)
            self.check_prob += np.bincount(idx, weights=self.probability(scores), minlength=self.bins)

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class (the raw score before any label)."""
        scores = np.clip(scores, 0.0, 1.0)
        idx = self._bin(scores)
        return (self.fit_pos[idx] + PRIOR * scores) / (self.fit_n[idx] + PRIOR)

    def error(self) -> float:
        """Expected calibration error on the labels the fit did not see (NaN before there are any)."""
        n = self.check_n.sum()
        if not n:
            return math.nan
        return float(np.abs(self.check_pos - self.check_prob).sum() / n)
