"""How a model's labels and predictions are read: as binary labels and scores, as class names, or as numbers,
and which task a labelled pair shows (:func:`infer_task`). Pure functions of the values and the configured
positive class, shared by the metrics, the profile stage's scores, baselines and fairness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TRUE_STRINGS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_STRINGS = frozenset({"0", "false", "no", "n", "f"})


def binary_label(label: Any, positive: str = "1") -> float | None:
    """1.0 / 0.0 for a binary label (bool, 0/1, "true"/"false", or the configured positive class). Where the
    positive class is named by a word of its own ("churn"), any other string is the negative class ("stay"):
    otherwise every negative label would be left out, and precision read 100% and accuracy the recall.

    >>> binary_label("stay", "churn"), binary_label("Churn", "churn"), binary_label("stay"), binary_label("no")
    (0.0, 1.0, None, 0.0)
    """
    if isinstance(label, bool):
        return 1.0 if label else 0.0
    if isinstance(label, int | float):
        return float(label) if label in (0, 1) else None
    if isinstance(label, str):
        low, named = label.strip().lower(), positive.strip().lower()
        if low == named or low in TRUE_STRINGS:
            return 1.0
        if low in FALSE_STRINGS or named not in TRUE_STRINGS:
            return 0.0
    return None


def score_keys(positive: str) -> tuple[str, ...]:
    """The names a prediction's scores are read by for the positive class, first found first
    (:func:`binary_score`).

    >>> score_keys("churn"), score_keys("1")
    (('churn', '1', 'true'), ('1', 'true'))
    """
    return tuple(dict.fromkeys((positive, "1", "true")))


def binary_score(prediction: Any, scores: dict[str, float] | None, positive: str = "1") -> float | None:
    """The positive-class probability: ``scores[positive]``, else a score in [0, 1], or a hard class as 0 / 1.
    A hard class sent with its probabilities (scikit-learn's ``predict`` beside ``predict_proba``) is read by
    them: as 0 / 1 it would leave the estimate, calibration, log loss and ROC AUC nothing to measure.

    >>> binary_score(1, {"0": 0.3, "1": 0.7}), binary_score(True, {"false": 0.1, "true": 0.9}), binary_score(0.8, None)
    (0.7, 0.9, 0.8)
    """
    if scores:
        for key in score_keys(positive):
            if key in scores:
                return float(scores[key])
    if isinstance(prediction, bool):
        return 1.0 if prediction else 0.0
    if isinstance(prediction, int | float) and 0.0 <= prediction <= 1.0:
        return float(prediction)
    if isinstance(prediction, str):
        return binary_label(prediction, positive)
    return None


def infer_task(label: Any, prediction: Any, positive: str = "1") -> str | None:
    """``binary`` when both sides read as binary, ``regression`` for numbers, ``multiclass`` for class names
    (a string on one side at least, the other a string or a whole number), else None (unsupported).

    >>> infer_task(1, 0.8), infer_task(3.5, 2.9), infer_task("cat", "dog"), infer_task("7", 7), infer_task(7, 3)
    ('binary', 'regression', 'multiclass', 'multiclass', 'regression')
    """
    if binary_label(label, positive) is not None and binary_score(prediction, None, positive) is not None:
        return "binary"
    is_num = isinstance(label, int | float) and not isinstance(label, bool)
    pred_num = isinstance(prediction, int | float) and not isinstance(prediction, bool)
    if is_num and pred_num:
        return "regression"
    named = isinstance(label, str) or isinstance(prediction, str)
    if named and class_name(label) is not None and class_name(prediction) is not None:
        return "multiclass"
    return None


def favourable_class(values: Sequence[Any], positive: str) -> np.ndarray:
    """A multiclass model's predictions (or labels) as its favourable class ``positive`` (1.0) or another
    (0.0), NaN where a value names no class: its fairness gaps are one-vs-rest for that class. Names compare as
    :func:`binary_label` compares a named positive class: without case or surrounding spaces.

    >>> favourable_class(["approve", "review", None, "deny", " Approve"], "approve").tolist()
    [1.0, 0.0, nan, 0.0, 1.0]
    """
    named = positive.strip().lower()
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        name = class_name(value)
        if name is not None:
            out[i] = float(name.strip().lower() == named)
    return out


def names_other_classes(predictions: Sequence[Any], positive: str) -> bool:
    """Whether predictions name, as strings, a class that does not read as binary ("2" or "cat" beside the
    positive "1"): a multiclass model's, before its first label says so (whole numbers alone may be a
    regression's)."""
    return any(isinstance(p, str) and binary_label(p, positive) is None for p in predictions)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_fraction(value: Any) -> bool:
    """A number that is not whole: a regression target, never a class or a binary label."""
    return isinstance(value, float) and not value.is_integer()


def class_name(value: Any) -> str | None:
    """A multiclass label or prediction as the class name it is compared by: a string as it is, a whole number
    as its digits (label ``7`` names the class ``"7"``), a boolean as ``"true"`` / ``"false"``; anything else
    (a fraction, a missing value) None.

    >>> class_name("cat"), class_name(7), class_name(7.0), class_name(True), class_name(0.5), class_name(None)
    ('cat', '7', '7', 'true', None, None)
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def confidences(predictions: Sequence[Any], scores: Sequence[dict[str, float] | None]) -> np.ndarray | None:
    """Each prediction's confidence, where its ``scores`` name more than two classes (a multiclass model's
    probabilities, all of them or its most likely ones): the probability they give the predicted class, NaN
    elsewhere (classes compared by :func:`class_name`, exactly: ``"A"`` is not ``"a"``); None when no row has one.
    Two classes or fewer are a binary model's (read by :func:`binary_score`): a multiclass model's rows whose
    scores name so few give no confidence.

    >>> confidences(["cat", 2, "dog", 0.7], [{"cat": 0.7, "dog": 0.2, "fox": 0.1}, {"0": 0.1, "1": 0.3, "2": 0.6},
    ...                                   {"dog": 0.9}, {"a": 0.2, "b": 0.3, "c": 0.5}])
    array([0.7, 0.6, nan, nan])
    >>> confidences(["yes"], [{"yes": 0.9, "no": 0.1}]) is None
    True
    """
    if max(map(len, filter(None, scores)), default=0) <= 2:  # no row names more than two classes (the usual case)
        return None
    values = [
        None if not probabilities or len(probabilities) <= 2 else probabilities.get(class_name(prediction))  # type: ignore[arg-type]
        for prediction, probabilities in zip(predictions, scores, strict=True)
    ]
    out = np.array(values, dtype=np.float64)  # None (no such class, or too few) as NaN
    out[(out < 0.0) | (out > 1.0)] = np.nan
    return None if np.isnan(out).all() else out
