"""Model metrics over a sliding window of labelled predictions and since start, plus label-free estimates.

Window metrics are exact (they equal scikit-learn's on the same rows); since-start metrics come from
running sums, except ROC AUC, which uses score histograms (``AUC_BINS`` bins, error below 1/AUC_BINS
for scores that spread over [0, 1]).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

EPS = float(np.finfo(np.float64).eps)  # scikit-learn clips probabilities at machine epsilon too
AUC_BINS = 1000
BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "log_loss", "brier", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "mape")
MULTICLASS_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
TASKS = ("binary", "regression", "multiclass")
CLASSIFIER_TASKS = frozenset({"binary", "multiclass"})  # errors are 0/1: their level is a rate (accuracy)
# Metrics where higher is worse: their floors are ceilings.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "mape"})


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1, log loss, Brier score and ROC AUC of a binary classifier.

    >>> m = binary_metrics(np.array([0, 1, 1, 0]), np.array([0.2, 0.8, 0.4, 0.6]))
    >>> (m["accuracy"], m["roc_auc"], round(m["log_loss"], 3))
    (0.5, 0.75, 0.57)
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    n = y.size
    if n == 0:
        return {k: math.nan for k in BINARY_METRICS}
    pred = score >= threshold
    pos = y == 1
    tp = float(np.sum(pred & pos))
    fp = float(np.sum(pred & ~pos))
    fn = float(np.sum(~pred & pos))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    p = np.clip(score, EPS, 1 - EPS)
    return {
        "accuracy": float(np.mean(pred == pos)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((score - y) ** 2)),
        "roc_auc": roc_auc(y, score),
    }


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney with average ranks for ties); NaN with one class only."""
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = sps.rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def multiclass_metrics(y: np.ndarray, pred: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 of a multiclass classifier, as scikit-learn's
    ``average="macro"`` takes them (over the classes among the labels or the predictions; a class never
    predicted has precision 0). ``y`` and ``pred`` are class codes, ``correct`` whether the prediction named
    the label: classes past the vocabulary share one code, so only ``correct`` says whether two of them matched.

    >>> m = multiclass_metrics(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), np.array([1, 0, 1, 1]))
    >>> (m["accuracy"], round(m["macro_precision"], 4), round(m["macro_recall"], 4), round(m["macro_f1"], 4))
    (0.75, 0.5556, 0.6667, 0.6)
    """
    n = y.size
    if n == 0:
        return {k: math.nan for k in MULTICLASS_METRICS}
    tp, predicted, actual = class_counts(y, pred, correct)
    return {"accuracy": float(np.count_nonzero(correct)) / n, **_macro(tp, predicted, actual)}


def class_counts(y: np.ndarray, pred: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class code: right predictions of it, predictions of it, labels of it (int64 arrays, one length)."""
    size = int(max(y.max(initial=-1), pred.max(initial=-1))) + 1
    yi, pi = y.astype(np.int64), pred.astype(np.int64)
    right = correct.astype(bool)
    tp = np.bincount(yi[right], minlength=size)
    return tp, np.bincount(pi, minlength=size), np.bincount(yi, minlength=size)


def _macro(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    seen = (predicted + actual) > 0
    if not seen.any():
        return {"macro_precision": math.nan, "macro_recall": math.nan, "macro_f1": math.nan}
    tp, predicted, actual = tp[seen].astype(np.float64), predicted[seen], actual[seen]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)
    f1 = 2 * tp / (predicted + actual)
    return {
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as scikit-learn defines it: |error| / max(|y|, machine epsilon))."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if y.size == 0:
        return {k: math.nan for k in REGRESSION_METRICS}
    err = pred - y
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps))),
    }


def expected_calibration_error(y: np.ndarray, score: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by bin size."""
    if y.size == 0:
        return math.nan
    idx = np.minimum((score * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins)
    observed = np.bincount(idx, weights=y, minlength=bins)
    predicted = np.bincount(idx, weights=score, minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(observed[used] - predicted[used])) / y.size)


def expected_correct(score: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probability each prediction is right, if the scores are calibrated (the idea of NannyML's CBPE)."""
    return np.where(score >= threshold, score, 1.0 - score)


class Ring:
    """The last ``capacity`` rows of a few float columns, in arrival order.

    Memory follows the rows held, not the capacity: the buffer starts small and doubles up to ``capacity``
    (a segment with a few labels keeps a few rows, not a window's worth of zeros), and a snapshot holds only
    the rows.

    >>> r = Ring(3, 1)
    >>> r.extend(np.array([[1.0], [2.0]])); r.extend(np.array([[3.0], [4.0]]))
    >>> r.rows().ravel().tolist(), r.data.shape
    ([2.0, 3.0, 4.0], (3, 1))
    """

    INITIAL_ROWS = 64
    # rows ever given to extend: not state, but what a cache of the rows is checked against (a class default, as a
    # Ring restored from a snapshot field by field skips __init__)
    written = 0

    def __init__(self, capacity: int, columns: int) -> None:
        self.capacity = capacity
        self.data = np.zeros((min(capacity, self.INITIAL_ROWS), columns), dtype=np.float64)
        self.size = 0
        self.head = 0  # next write position

    @property
    def columns(self) -> int:
        return int(self.data.shape[1])

    def extend(self, rows: np.ndarray) -> None:
        self.written += rows.shape[0]
        rows = rows[-self.capacity :]
        k = rows.shape[0]
        held = self.data.shape[0]
        if held < self.capacity and self.size + k > held:  # still growing: rows sit in order from 0
            grown = np.zeros((min(self.capacity, max(self.size + k, 2 * held)), self.columns))
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        end = self.head + k
        if end <= self.data.shape[0]:
            self.data[self.head : end] = rows
        else:  # full size by now: wrap around
            first = self.capacity - self.head
            self.data[self.head :] = rows[:first]
            self.data[: k - first] = rows[first:]
        self.head = end % self.capacity
        self.size = min(self.capacity, self.size + k)

    def oldest(self, n: int) -> np.ndarray:
        """The first column of the ``n`` oldest rows held (``n`` at most ``size``), oldest first: a copy, that
        later rows do not overwrite."""
        start = (self.head - self.size) % self.capacity
        if start + n <= self.data.shape[0]:
            return self.data[start : start + n, 0].copy()
        return np.concatenate([self.data[start:, 0], self.data[: start + n - self.data.shape[0], 0]])

    def rows(self) -> np.ndarray:
        if self.size < self.capacity:
            return self.data[: self.size]
        return np.concatenate([self.data[self.head :], self.data[: self.head]])

    def to_plain(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "columns": self.columns, "rows": self.rows().copy()}

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Ring:
        ring = cls(int(data["capacity"]), int(data["columns"]))
        if len(data["rows"]):
            ring.extend(np.asarray(data["rows"], dtype=np.float64).reshape(-1, ring.columns))
        return ring


class BinaryTerms(NamedTuple):
    """What each labelled row adds to a binary window, worked out once for a batch's rows
    (:func:`binary_terms`) and taken by every bucket the rows are in (:meth:`PerformanceWindow.add_binary`)."""

    y: np.ndarray
    value: np.ndarray  # the positive-class score
    cell: np.ndarray  # 2 * predicted + actual: tn, fn, fp, tp
    log_likelihood: np.ndarray  # y log p + (1 - y) log(1 - p), p clipped to [EPS, 1 - EPS]
    squared_error: np.ndarray
    histogram_bin: np.ndarray  # the score's AUC bin, + AUC_BINS for a positive

    def take(self, rows: np.ndarray) -> BinaryTerms:
        return BinaryTerms(*(column[rows] for column in self))


def binary_terms(y: np.ndarray, value: np.ndarray, threshold: float) -> BinaryTerms:
    """:class:`BinaryTerms` of labelled rows: labels ``y`` (0 or 1) and scores ``value``, neither NaN."""
    pos = y == 1
    p = np.clip(value, EPS, 1 - EPS)
    return BinaryTerms(
        y,
        value,
        (value >= threshold) * 2 + pos,
        y * np.log(p) + (1 - y) * np.log(1 - p),
        (value - y) ** 2,
        np.clip((value * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1) + pos * AUC_BINS,
    )


class PerformanceWindow:
    """Labelled predictions of one (model, version, segment): a sliding window and since-start sums.

    ``task`` is ``binary`` (``value`` is the positive-class score) or ``regression`` (``value`` is the
    predicted value).

    >>> w = PerformanceWindow("binary", window=3)
    >>> w.add(np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.9, 0.3, 0.2, 0.7]))
    >>> (w.count, w.window_metrics()["accuracy"], w.total_metrics()["accuracy"])
    (4, 0.6666666666666666, 0.75)
    """

    # A multiclass window's since-start counts per class code: right predictions, predictions, labels (grown
    # to the largest code seen, at most the vocabulary's capacity + 1). None for the other tasks.
    classes: np.ndarray | None = None

    def __init__(self, task: str, window: int = 5000, threshold: float = 0.5) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.threshold = threshold
        # rows: (label, score or predicted value); multiclass: (label code, predicted code, right)
        self.ring = Ring(window, 3 if task == "multiclass" else 2)
        self.count = 0
        # binary: tp fp fn tn logloss brier; regression: abs sq ape; multiclass: right
        self.sums = np.zeros(6, dtype=np.float64)
        self.hist = np.zeros((2, AUC_BINS), dtype=np.int64)  # score histogram of negatives, positives
        if task == "multiclass":
            self.classes = np.zeros((3, 0), dtype=np.int64)

    def add(self, y: np.ndarray, value: np.ndarray, correct: np.ndarray | None = None) -> None:
        """Labelled rows: ``y`` labels and ``value`` scores (binary) or predicted values (regression); for a
        multiclass window, label and predicted class codes and ``correct``, whether each prediction was right."""
        if y.size == 0:
            return
        if self.task == "multiclass":
            if correct is None:
                raise ValueError("a multiclass window needs whether each prediction was right")
            right = correct.astype(np.float64)
            self.ring.extend(np.column_stack([y, value, right]))
            self.count += y.size
            self.sums[0] += float(right.sum())
            counts = np.stack(class_counts(y, value, right))
            assert self.classes is not None
            if counts.shape[1] > self.classes.shape[1]:
                grown = np.zeros((3, counts.shape[1]), dtype=np.int64)
                grown[:, : self.classes.shape[1]] = self.classes
                self.classes = grown
            self.classes[:, : counts.shape[1]] += counts
            return
        if self.task == "binary":
            self.add_binary(binary_terms(y, value, self.threshold))
        else:
            self.ring.extend(np.column_stack([y, value]))
            self.count += y.size
            err = np.abs(value - y)
            self.sums[:3] += [err.sum(), (err**2).sum(), (err / np.maximum(np.abs(y), np.finfo(np.float64).eps)).sum()]

    def add_binary(self, terms: BinaryTerms) -> None:
        """A binary window's labelled rows, as :func:`binary_terms` (with this window's threshold) gives them:
        a batch's rows are worked out once for every bucket they are in."""
        if terms.y.size == 0:
            return
        self.ring.extend(np.column_stack([terms.y, terms.value]))
        self.count += terms.y.size
        # one count for the confusion matrix: code 2 * predicted + actual is tn, fn, fp, tp
        tn, fn, fp, tp = np.bincount(terms.cell, minlength=4).tolist()
        self.sums += [tp, fp, fn, tn, -np.sum(terms.log_likelihood), np.sum(terms.squared_error)]
        self.hist += np.bincount(terms.histogram_bin, minlength=2 * AUC_BINS).reshape(2, AUC_BINS)

    def window_metrics(self) -> dict[str, float]:
        rows = self.ring.rows()
        if self.task == "binary":
            return binary_metrics(rows[:, 0], rows[:, 1], self.threshold)
        if self.task == "multiclass":
            return multiclass_metrics(rows[:, 0], rows[:, 1], rows[:, 2])
        return regression_metrics(rows[:, 0], rows[:, 1])

    def total_metrics(self) -> dict[str, float]:
        n = self.count
        if self.task == "multiclass":
            if not n or self.classes is None:
                return {k: math.nan for k in MULTICLASS_METRICS}
            return {"accuracy": float(self.sums[0]) / n, **_macro(*self.classes)}
        if self.task == "regression":
            if not n:
                return {k: math.nan for k in REGRESSION_METRICS}
            return {"mae": self.sums[0] / n, "rmse": math.sqrt(self.sums[1] / n), "mape": self.sums[2] / n}
        if not n:
            return {k: math.nan for k in BINARY_METRICS}
        tp, fp, fn, tn, ll, br = self.sums.tolist()
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        neg, pos = self.hist[0].astype(np.float64), self.hist[1].astype(np.float64)
        if pos.sum() and neg.sum():
            # P(score_pos > score_neg) + half the ties, on the binned scores.
            below = np.cumsum(neg) - neg
            auc = float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
        else:
            auc = math.nan
        return {
            "accuracy": (tp + tn) / n,
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "log_loss": ll / n,
            "brier": br / n,
            "roc_auc": auc,
        }

    def calibration_error(self) -> float:
        rows = self.ring.rows()
        if self.task != "binary" or rows.shape[0] == 0:
            return math.nan
        return expected_calibration_error(rows[:, 0], rows[:, 1])
