"""The calibration behind the label-free estimate: near the truth from a few hundred labels, whatever the scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.core.calibration import ScoreCalibration
from monitor.core.performance import ModelPerformance
from monitor.core.rules import ALL


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


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 3000),
    threshold=st.sampled_from([0.5, 0.333, 0.71, 0.0, 1.0]),
    labels=st.integers(0, 3000),
    confidences=st.booleans(),
)
def test_the_estimate_from_code_counts_equals_the_one_from_every_row(seed, rows, threshold, labels, confidences):
    """The estimate window's accuracy, band and variance from counts of (calibration bin, side of the
    threshold) equal the ones computed row by row (to rounding), thresholds inside a bin and at the ends
    included, before and after the calibration learned labels, for scores and for confidences."""
    from dataclasses import replace

    from monitor.config import load_config
    from monitor.core.metrics import Ring
    from monitor.core.performance import ModelPerformance, accuracy_band
    from monitor.core.performance_state import BucketPerformance
    from monitor.core.rules import ALL

    cfg = load_config(environ={}, overrides={})
    perf = ModelPerformance("m", "v1", replace(cfg.performance, threshold=threshold), cfg.alerts, cfg.detectors.default)
    perf.confidences = confidences
    rng = np.random.default_rng(seed)
    if labels:
        s = rng.random(labels)
        perf.calibration.learn(s, (rng.random(labels) < s**2) * 1.0)
    ring = Ring(2000, 1)
    scores = np.clip(rng.choice([rng.random(rows), np.round(rng.random(rows), 2)]), 0.0, 1.0)
    scores[rng.random(rows) < 0.05] = threshold
    ring.extend(scores[:, None])
    b = BucketPerformance(window=None, estimate=ring)  # type: ignore[arg-type]  # only its estimate is read
    est, low, high, var, n = (float(c[0]) for c in perf._window_estimates([(ALL, b)], perf._right_by_code()))
    right = perf.probability_right(ring.rows()[:, 0])
    want = accuracy_band(right)
    assert n == right.size
    assert np.allclose([est, low, high, var], [*want, right.var()], rtol=1e-12, atol=1e-14)


def test_a_calibration_its_later_labels_disagree_with_holds_back_the_estimate_alert() -> None:
    """An estimate is trusted only as far as its calibration: a fitted calibration's error on the labels it had
    not seen is read once for every bucket (``ModelPerformance._trust``) and goes into each estimate's evidence,
    and an untrusted one fires no estimated-accuracy alert. Here the estimated accuracy falls 40 points (confident
    scores, then coin tosses) and fires while the calibration is trusted; after a concept change froze it, its
    labels say the opposite of its map, and the same drop must no longer fire. Labels at exact rates, so the
    errors are far from ``calibration_max_error``."""
    cfg = load_config(
        environ={},
        overrides={
            "performance": {"task": "binary", "window": 200, "min_labels": 100, "calibration_labels": 500},
            "decisions": {"rollback_min_labels": 100},  # (at most the window)
            "detectors": {"warmup_events": 100},
        },
    )
    perf = ModelPerformance("m", "v1", cfg.performance, cfg.alerts, cfg.detectors.default)
    rates = (0.1, 0.3, 0.5, 0.7, 0.9)
    scores = np.repeat(rates, 100)
    agree = np.concatenate([np.arange(100) < 100 * rate for rate in rates]).astype(np.float64)

    def predict(s: np.ndarray) -> None:
        times = np.arange(s.size, dtype=np.float64)
        perf.observe_predictions([(ALL, None)], s, np.full(s.size, np.nan), times, np.random.default_rng(0))

    def reading() -> tuple[bool, bool | None, bool | None]:
        (j,) = [j for j in perf.estimate_judgements({ALL}, 1.0) if j.subject == "estimated_accuracy"]
        ev = j.evidence
        assert ev.effect >= cfg.performance.min_accuracy_drop and ev.p_value is not None
        assert ev.p_value < cfg.alerts.max_p_value  # the drop is there whatever the trust
        return j.fire, ev.current["trustworthy"], perf.trustworthy(ALL)

    perf.calibration.learn(scores, agree)  # the reference: fitted, not yet checked
    predict(np.tile([0.1, 0.9], 50))  # the warm-up: confident, right 90% of the time by the calibration
    predict(np.full(200, 0.5))  # the window: a coin toss
    assert reading() == (True, None, None)  # too few labels checked to say
    perf.calibration.learn(scores, agree)  # checked and agreeing: trusted
    assert reading() == (True, True, True)
    perf.calibration.learn(scores, 1.0 - agree, fit=False)  # frozen by a concept change; later labels disagree
    assert perf.calibration.error() > 2 * cfg.performance.calibration_max_error
    assert reading() == (False, False, False)
