"""Model metrics against scikit-learn: exact window metrics, since-start sums, histogram AUC, calibration."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import deque

import numpy as np
import pytest
from sklearn import metrics as skm

from monitor.core.metrics import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    PerformanceWindow,
    Ring,
    binary_metrics,
    expected_calibration_error,
    expected_correct,
    regression_metrics,
    roc_auc,
)

TOL = 1e-9


def sk_binary(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    y = np.asarray(y).astype(int)
    pred = (np.asarray(score) >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning on one class
        try:
            auc = float(skm.roc_auc_score(y, score))
        except ValueError:
            auc = math.nan
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, score, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, score)),
        "roc_auc": auc,
    }


def sk_regression(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(math.sqrt(skm.mean_squared_error(y, pred))),
        "mape": float(skm.mean_absolute_percentage_error(y, pred)),
    }


def close(a: float, b: float, tol: float = TOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def mismatches(ours: dict[str, float], ref: dict[str, float], tol: dict[str, float] | None = None):
    assert set(ours) == set(ref)
    tol = tol or {}
    return {k: (ours[k], ref[k]) for k in ref if not close(float(ours[k]), ref[k], tol.get(k, TOL))}


def binary_data(seed: int, rounded: bool, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores with mass near 0 and 1, labels Bernoulli(score) with 10% label noise."""
    rng = np.random.default_rng(seed)
    n = n if n is not None else int(rng.integers(200, 3000))
    score = rng.beta(0.7, 0.7, n)
    y = (rng.random(n) < score).astype(np.float64)
    flip = rng.random(n) < 0.1
    y[flip] = 1.0 - y[flip]
    if rounded:
        score = np.round(score, 2)  # heavy ties, and exact 0.0 / 1.0 scores
    return y, score


def regression_data(seed: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n if n is not None else int(rng.integers(200, 3000))
    y = rng.normal(50.0, 30.0, n)
    y[:: 97 + seed] = 0.0  # MAPE's machine-epsilon floor
    pred = y + rng.normal(0.0, 8.0, n)
    return y, pred


# ----------------------------------------------------------------------------- stateless functions


@pytest.mark.parametrize("rounded", [False, True], ids=["continuous", "rounded2"])
@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_equal_sklearn(seed, rounded):
    threshold = (0.5, 0.3, 0.5, 0.7, 0.5)[seed]
    y, score = binary_data(seed, rounded)
    if rounded:
        assert len(np.unique(score)) < len(score) / 2, "expected many tied scores"
    ours = binary_metrics(y, score, threshold)
    assert set(ours) == set(BINARY_METRICS)
    assert not mismatches(ours, sk_binary(y, score, threshold))


def test_log_loss_of_hard_zero_one_scores_equals_sklearn():
    """Scores of exactly 0 and 1 (a hard classifier, or scores rounded to 2 decimals) that are wrong."""
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    score = np.array([1.0, 0.0, 1.0, 0.0, 0.7, 0.2])
    ours = binary_metrics(y, score)["log_loss"]
    ref = float(skm.log_loss(y.astype(int), score, labels=[0, 1]))
    assert close(ours, ref), (ours, ref)


@pytest.mark.parametrize("cls", [0.0, 1.0])
@pytest.mark.parametrize("rounded", [False, True], ids=["continuous", "rounded2"])
def test_one_class_auc_is_nan_and_others_equal_sklearn(cls, rounded):
    rng = np.random.default_rng(int(cls) + 10)
    score = rng.uniform(0.02, 0.98, 400)  # no exact 0/1 scores here
    if rounded:
        score = np.round(score, 2)
    y = np.full(score.size, cls)
    ours = binary_metrics(y, score)
    assert math.isnan(ours["roc_auc"])
    assert math.isnan(roc_auc(y, score))
    assert not mismatches(ours, sk_binary(y, score))


def test_all_scores_tied_auc_is_half():
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    score = np.full(5, 0.4)
    assert roc_auc(y, score) == pytest.approx(0.5, abs=TOL)
    assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y.astype(int), score), abs=TOL)


def test_empty_inputs_are_nan():
    assert all(math.isnan(v) for v in binary_metrics(np.array([]), np.array([])).values())
    assert all(math.isnan(v) for v in regression_metrics(np.array([]), np.array([])).values())
    assert math.isnan(expected_calibration_error(np.array([]), np.array([])))


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_equal_sklearn(seed):
    y, pred = regression_data(seed)
    ours = regression_metrics(y, pred)
    assert set(ours) == set(REGRESSION_METRICS)
    assert not mismatches(ours, sk_regression(y, pred))
    rmse = getattr(skm, "root_mean_squared_error", None)
    if rmse is not None:
        assert close(ours["rmse"], float(rmse(y, pred)))


# ----------------------------------------------------------------------------- ring buffer


@pytest.mark.parametrize("seed", range(4))
def test_ring_keeps_last_rows_in_order(seed):
    rng = np.random.default_rng(seed)
    cap = 37
    ring = Ring(cap, 2)
    ref: deque[tuple[float, float]] = deque(maxlen=cap)
    counter = 0
    for size in [*rng.integers(1, 30, 12).tolist(), cap, cap + 5, 3 * cap, 1, cap - 1]:
        rows = np.column_stack([np.arange(counter, counter + size), -np.arange(counter, counter + size)])
        counter += size
        ring.extend(rows.astype(np.float64))
        ref.extend(map(tuple, rows.tolist()))
        assert ring.size == len(ref)
        np.testing.assert_array_equal(ring.rows(), np.array(ref, dtype=np.float64).reshape(-1, 2))


# ----------------------------------------------------------------------------- PerformanceWindow


def batches(rng: np.random.Generator, total: np.ndarray, k: int = 7, window: int = 500) -> list[slice]:
    sizes = rng.integers(1, 450, k)
    sizes[3] = window + 230  # one batch larger than the window on its own
    edges = np.concatenate([[0], np.cumsum(sizes)])
    assert edges[-1] <= total.size and edges[-1] > 2 * window
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges.tolist())]


@pytest.mark.parametrize("seed", range(4))
def test_binary_window_and_total_equal_sklearn_across_wraps(seed):
    window = 500
    rng = np.random.default_rng(100 + seed)
    y, score = binary_data(seed, rounded=False, n=5000)
    w = PerformanceWindow("binary", window=window, threshold=0.5)
    end = 0
    for sl in batches(rng, y, window=window):
        w.add(y[sl], score[sl])
        end = sl.stop
        assert w.count == end
        lo = max(0, end - window)
        got = w.window_metrics()
        assert not mismatches(got, sk_binary(y[lo:end], score[lo:end])), f"window after {end} rows"
        tot = w.total_metrics()
        assert not mismatches(tot, sk_binary(y[:end], score[:end]), tol={"roc_auc": 0.002}), f"total after {end}"
        assert close(w.calibration_error(), expected_calibration_error(y[lo:end], score[lo:end]))
    assert end > 2 * window


@pytest.mark.parametrize("seed", range(3))
def test_total_auc_from_histograms_with_ties_within_tolerance(seed):
    rng = np.random.default_rng(seed)
    y, score = binary_data(seed, rounded=True, n=20_000)
    w = PerformanceWindow("binary", window=100)
    for sl in np.array_split(np.arange(y.size), 9):
        w.add(y[sl], score[sl])
    assert abs(w.total_metrics()["roc_auc"] - skm.roc_auc_score(y.astype(int), score)) <= 0.002
    # a sharper classifier: positive scores concentrated at the top
    s2 = np.clip(np.where(y == 1, rng.beta(5, 2, y.size), rng.beta(2, 5, y.size)), 0, 1)
    w2 = PerformanceWindow("binary", window=100)
    w2.add(y, s2)
    assert abs(w2.total_metrics()["roc_auc"] - skm.roc_auc_score(y.astype(int), s2)) <= 0.002


def test_total_metrics_one_class_auc_nan():
    w = PerformanceWindow("binary", window=10)
    w.add(np.zeros(30), np.linspace(0.05, 0.95, 30))
    assert math.isnan(w.total_metrics()["roc_auc"])
    assert math.isnan(w.window_metrics()["roc_auc"])
    w.add(np.ones(1), np.array([0.9]))
    assert not math.isnan(w.total_metrics()["roc_auc"])


@pytest.mark.parametrize("seed", range(4))
def test_regression_window_and_total_equal_sklearn_across_wraps(seed):
    window = 500
    rng = np.random.default_rng(200 + seed)
    y, pred = regression_data(seed, n=5000)
    w = PerformanceWindow("regression", window=window)
    end = 0
    for sl in batches(rng, y, window=window):
        w.add(y[sl], pred[sl])
        end = sl.stop
        lo = max(0, end - window)
        assert not mismatches(w.window_metrics(), sk_regression(y[lo:end], pred[lo:end])), f"window after {end}"
        assert not mismatches(w.total_metrics(), sk_regression(y[:end], pred[:end])), f"total after {end}"
    assert math.isnan(w.calibration_error())


def test_empty_window_is_nan_and_empty_add_is_noop():
    for task, keys in (("binary", BINARY_METRICS), ("regression", REGRESSION_METRICS)):
        w = PerformanceWindow(task, window=5)
        w.add(np.array([]), np.array([]))
        assert w.count == 0
        assert set(w.window_metrics()) == set(keys) == set(w.total_metrics())
        assert all(math.isnan(v) for v in w.window_metrics().values())
        assert all(math.isnan(v) for v in w.total_metrics().values())
        assert math.isnan(w.calibration_error())


def test_bad_task_rejected():
    with pytest.raises(ValueError):
        PerformanceWindow("ranking")


# ----------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("seed", range(3))
def test_ece_calibrated_low_miscalibrated_high(seed):
    rng = np.random.default_rng(seed)
    n = 200_000
    p = rng.random(n)
    y = (rng.random(n) < p).astype(np.float64)
    assert expected_calibration_error(y, p) < 0.01
    # same outcomes, scores sqrt(true probability): systematically over-confident on the positive class
    bad = expected_calibration_error(y, np.sqrt(p))
    assert bad > 0.05
    assert bad == pytest.approx(1 / 6, abs=0.02)  # E[sqrt(U) - U] = 2/3 - 1/2
    w = PerformanceWindow("binary", window=n)
    w.add(y, p)
    assert w.calibration_error() == pytest.approx(expected_calibration_error(y, p), abs=TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.5, 0.35])
def test_expected_correct_tracks_realised_accuracy_of_calibrated_scores(seed, threshold):
    rng = np.random.default_rng(seed)
    n = 200_000
    score = rng.beta(2.0, 2.0, n)
    y = (rng.random(n) < score).astype(np.float64)
    realised = float(np.mean((score >= threshold) == (y == 1)))
    ec = expected_correct(score, threshold)
    assert ec.shape == score.shape
    assert np.all((ec >= 0) & (ec <= 1))
    assert abs(float(ec.mean()) - realised) < 0.01
    assert abs(float(ec.mean()) - binary_metrics(y, score, threshold)["accuracy"]) < 0.01


def test_a_ring_from_a_snapshot_of_its_field_form_takes_rows():
    """Snapshots of earlier releases kept a ring field by field (no compact form): restored without its
    __init__, it must still take rows, and count them for what caches its rows (the score estimate's counts)."""
    from monitor.core import snapshot as snap
    from monitor.core.snapshot_classes import register_snapshot_classes

    register_snapshot_classes()
    field_form = {"$o": "Ring", "f": {"capacity": 4, "data": snap.encode(np.zeros((4, 1))), "size": 0, "head": 0}}
    ring = snap.decode(field_form)
    assert isinstance(ring, Ring)
    ring.extend(np.array([[0.3], [0.7]]))
    assert ring.rows().ravel().tolist() == [0.3, 0.7] and ring.written == 2
