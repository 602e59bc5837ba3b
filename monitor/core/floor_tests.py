"""Whether a labelled window's metric is past its floor beyond chance: the test behind a ``performance``
alert (:func:`floor_p_value`), so that a healthy model's window noise does not open and close alerts."""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy import stats as sps

from monitor.core.metrics import (
    LOWER_IS_BETTER,
    PerformanceWindow,
    binary_metrics,
    multiclass_metrics,
    regression_metrics,
    roc_auc,
)

FLOOR_BLOCKS = 10  # consecutive blocks of the window for the batch-means test of a floor (see floor_p_value)
JACKKNIFE_BLOCKS = 20  # blocks left out one at a time for a multiclass macro average's floor test


def floor_p_value(window: PerformanceWindow, metric: str, value: float, floor: float) -> float | None:
    """How likely a window this far past its floor is when the metric truly sits at the floor (one-sided).

    Accuracy, precision and recall are proportions: an exact binomial test against the floor over the labels
    each counts (all of them, the predicted positives, the actual positives). F1 is one through the Jaccard
    index, TP / (TP + FP + FN), which it rises and falls with: the same test on those counts against the
    floor's Jaccard equivalent. Any other metric (ROC AUC, a loss, an error): the batch-means test, a one-sided
    t-test of the metric over :data:`FLOOR_BLOCKS` consecutive blocks of the window, since its spread has no
    closed form; a block where it is undefined (AUC with one class) is left out. None when there is too little
    to test (no count, or fewer than five blocks). A floor breach without a test made a healthy model's alert,
    and its retrain recommendation, flap with the window's noise."""
    rows = window.ring.rows()
    if window.task == "binary" and metric in ("accuracy", "precision", "recall", "f1"):
        if not 0 < floor < 1:
            return None
        y, predicted = rows[:, 0] == 1, rows[:, 1] >= window.threshold
        tp = int(np.count_nonzero(y & predicted))
        hits, trials, level = {
            "accuracy": (int(np.count_nonzero(y == predicted)), y.size, floor),
            "precision": (tp, int(predicted.sum()), floor),
            "recall": (tp, int(y.sum()), floor),
            "f1": (tp, int(np.count_nonzero(y | predicted)), floor / (2 - floor)),
        }[metric]
        if trials == 0:
            return None
        return float(special.bdtr(hits, trials, level))  # P(at most this many when the floor holds)
    if window.task == "multiclass" and metric == "accuracy":
        if not 0 < floor < 1 or rows.shape[0] == 0:
            return None
        return float(special.bdtr(int(np.count_nonzero(rows[:, 2])), rows.shape[0], floor))
    blocks = [part for part in np.array_split(rows, FLOOR_BLOCKS) if part.shape[0]]
    if window.task == "binary":
        values = np.array([binary_metrics(part[:, 0], part[:, 1], window.threshold)[metric]
                           if metric != "roc_auc" else roc_auc(part[:, 0], part[:, 1]) for part in blocks])  # fmt: skip
    elif window.task == "multiclass":
        return _jackknife_p_value(rows, metric, floor)
    else:
        values = np.array([regression_metrics(part[:, 0], part[:, 1])[metric] for part in blocks])
    values = values[np.isfinite(values)]
    if values.size < 5:
        return None
    spread = float(values.std(ddof=1))
    past = float(values.mean()) - floor if metric in LOWER_IS_BETTER else floor - float(values.mean())
    if spread == 0.0:
        return 0.0 if past > 0 else 1.0
    return float(sps.t.sf(past / (spread / math.sqrt(values.size)), values.size - 1))


def _jackknife_p_value(rows: np.ndarray, metric: str, floor: float) -> float | None:
    """A multiclass window's macro average against its floor: the delete-a-block jackknife over
    :data:`JACKKNIFE_BLOCKS` blocks, a one-sided t-test of the whole window's value. A macro average taken on a
    tenth of the window runs low when classes are many or rare (a class's recall on a few labels), so the
    batch-means test of the blocks' own values fired on healthy models; each jackknife value leaves out one
    block only, and its spread estimates the whole window's."""
    blocks = [part for part in np.array_split(np.arange(rows.shape[0]), JACKKNIFE_BLOCKS) if part.size]
    if len(blocks) < 5:
        return None

    def value(r: np.ndarray) -> float:
        return multiclass_metrics(r[:, 0], r[:, 1], r[:, 2])[metric]

    whole = value(rows)
    keep = np.ones(rows.shape[0], dtype=bool)
    left_out = []
    for part in blocks:
        keep[part] = False
        left_out.append(value(rows[keep]))
        keep[part] = True
    loo = np.asarray(left_out)
    if not np.isfinite(loo).all() or whole != whole:
        return None
    g = loo.size
    se = math.sqrt((g - 1) / g * float(((loo - loo.mean()) ** 2).sum()))
    past = floor - whole
    if se == 0.0:
        return 0.0 if past > 0 else 1.0
    return float(sps.t.sf(past / se, g - 1))
