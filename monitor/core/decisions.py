"""Retrain and rollback recommendations: decisions from significant evidence, not from the calendar.

A retrain is recommended when the labelled evidence of a problem (significant concept drift or a
performance floor breach on all traffic) holds at several consecutive checks, or when enough of the most
important inputs drift significantly. A rollback is recommended when a new version is significantly
worse than the previous one on comparable traffic: the latest labelled window of each, so versions
served side by side are compared over the same period and a before/after rollout compares the old
version's last window with the new one's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from monitor.core.metrics import CLASSIFIER_TASKS


@dataclass(frozen=True)
class VersionComparison:
    """A one-sided test that ``new`` is worse than ``previous`` on the same metric."""

    metric: str  # accuracy (binary) or mae (regression)
    test: str  # two_proportion_z or welch_t
    previous: float
    new: float
    worse_by: float  # accuracy points lost, or relative MAE increase
    p_value: float
    previous_events: int
    new_events: int


def comparison_metric(task: str) -> str:
    """What :func:`compare_versions` compares for a task: accuracy for a classifier, else the mean absolute
    error."""
    return "accuracy" if task in CLASSIFIER_TASKS else "mae"


def compare_versions(task: str, previous: np.ndarray, new: np.ndarray, threshold: float = 0.5) -> VersionComparison:
    """Compare labelled windows, each an array of rows ``(label, value)`` as :class:`PerformanceWindow` keeps them.

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000).astype(float)
    >>> good = np.column_stack([y, np.where(rng.random(2000) < 0.9, y, 1 - y)])
    >>> bad = np.column_stack([y, np.where(rng.random(2000) < 0.8, y, 1 - y)])
    >>> c = compare_versions("binary", good, bad)
    >>> (c.test, 0.08 < c.worse_by < 0.12, c.p_value < 1e-6)
    ('two_proportion_z', True, True)
    """
    n1, n2 = previous.shape[0], new.shape[0]
    if n1 == 0 or n2 == 0:
        return VersionComparison(comparison_metric(task), "none", math.nan, math.nan, 0.0, 1.0, n1, n2)
    if task in CLASSIFIER_TASKS:
        if task == "binary":
            c1 = float(np.sum((previous[:, 1] >= threshold) == (previous[:, 0] == 1)))
            c2 = float(np.sum((new[:, 1] >= threshold) == (new[:, 0] == 1)))
        else:  # rows (label code, predicted code, right)
            c1, c2 = float(previous[:, 2].sum()), float(new[:, 2].sum())
        a1, a2 = c1 / n1, c2 / n2
        pooled = (c1 + c2) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p = float(sps.norm.sf((a1 - a2) / se)) if se > 0 else (0.0 if a2 < a1 else 1.0)
        return VersionComparison("accuracy", "two_proportion_z", a1, a2, a1 - a2, p, n1, n2)
    e1 = np.abs(previous[:, 1] - previous[:, 0])
    e2 = np.abs(new[:, 1] - new[:, 0])
    m1, m2 = float(e1.mean()), float(e2.mean())
    if n1 < 2 or n2 < 2 or (e1.std() == 0 and e2.std() == 0):
        p = 0.0 if m2 > m1 else 1.0
    else:
        p = float(sps.ttest_ind(e2, e1, equal_var=False, alternative="greater").pvalue)
    worse = (m2 - m1) / m1 if m1 > 0 else (math.inf if m2 > 0 else 0.0)
    return VersionComparison("mae", "welch_t", m1, m2, worse, p, n1, n2)


@dataclass
class RetrainState:
    """A model version's retrain bookkeeping: the streak of checks with a labelled problem."""

    streak: int = 0
    checked_labels: int = 0
    problem: bool = False  # the latest labelled judgement of all traffic showed a significant problem
    problem_since: float = math.nan
    evidence: dict[str, float | str] = field(default_factory=dict)
    # the error streams started again at a fixed break (engine._restart_after_fixes): an alert the break opened
    # is no problem of the model until the restarted streams' own test holds, or it has resolved
    restarted: bool = False

    def restart(self) -> None:
        """No streak from before a fixed break: it was the break's."""
        self.streak, self.problem, self.problem_since, self.restarted = 0, False, math.nan, True

    def check(self, labelled: int, window: int) -> bool:
        """Count one check per ``window`` labelled predictions; True when a check happened."""
        checks = labelled // window - self.checked_labels // window
        if checks <= 0:
            return False
        self.checked_labels = labelled
        # One check per call at most: a batch that crosses several windows is still one observation of the
        # problem, so a single bad batch cannot make a streak.
        self.streak = self.streak + 1 if self.problem else 0
        return True
