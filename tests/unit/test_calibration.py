"""The calibration behind the label-free estimate: near the truth from a few hundred labels, whatever the scores."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.calibration import ScoreCalibration


def _model(rng: np.random.Generator, n: int, steepness: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores and each one's true chance of the positive class: ``steepness`` above 1 is an under-confident
    model (its 0.7 is right far more often than 70% of the time), below 1 an over-confident one, 0 a calibrated
    one."""
    s = rng.beta(2.0, 2.0, n)
    if steepness == 0:  # calibrated: each score is its chance
        return s, s
    return s, 1.0 / (1.0 + np.exp(-steepness * 8.0 * (s - 0.5)))


@pytest.mark.parametrize(("labels", "bias", "rmse"), [(100, 0.04, 0.06), (300, 0.025, 0.035), (1000, 0.01, 0.02)])
@pytest.mark.parametrize("steepness", [2.5, 1.0, 0.4, 0])
def test_a_few_hundred_labels_estimate_accuracy_without_bias(labels: int, bias: float, rmse: float, steepness: float):
    """Two pseudo-labels a bin at the raw score held sparse bins near it: with a few hundred labels, an
    under-confident model's estimate read 3-13 points low (seen from outside with 5% of a logistic regression's
    predictions labelled), where a plain isotonic fit (scikit-learn's) was within a point or two. Over 20 seeds:
    the mean error and its spread, as isotonic regression gives them at these label counts."""
    errors = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        s, p = _model(rng, labels, steepness)
        cal = ScoreCalibration(reference=5000)
        cal.learn(s, (rng.random(labels) < p).astype(np.float64))
        unlabelled, truth = _model(rng, 20_000, steepness)
        q = cal.probability(unlabelled)
        estimate = np.where(unlabelled >= 0.5, q, 1.0 - q).mean()
        errors.append(estimate - np.where(unlabelled >= 0.5, truth, 1.0 - truth).mean())
    e = np.asarray(errors)
    assert abs(e.mean()) < bias and np.sqrt((e**2).mean()) < rmse, (e.mean(), np.sqrt((e**2).mean()))
