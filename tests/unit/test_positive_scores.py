"""The positive-class scores the label join keeps (monitor.core.profile.positive_scores): its column-wise reads
give what binary_score gives row by row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from monitor.core.label_reading import binary_score
from monitor.core.profile import positive_scores


def _by_row(preds: list[Any], scores: list[dict[str, float] | None], positive: str) -> list[float]:
    return [math.nan if (v := binary_score(p, s, positive)) is None else v for p, s in zip(preds, scores, strict=True)]


_PREDICTIONS = [0.3, 0.0, 1.0, 1.2, -0.1, 1, 0, 7, True, False, "1", "yes", "churn", "cat", None]
_SCORES: list[dict[str, float] | None] = [
    None,
    {},
    {"churn": 0.8, "stay": 0.2},
    {"1": 0.9, "0": 0.1},
    {"true": 0.6, "false": 0.4},
    {"churn": 0.7},
    {"a": 0.2, "b": 0.3, "c": 0.5},
    {"churn": 1, "1": 0.25},
]


@pytest.mark.parametrize("positive", ["1", "churn", "true", "a"])
@pytest.mark.parametrize("seed", range(25))
def test_the_column_reads_are_the_row_by_row_ones(positive: str, seed: int) -> None:
    rng = np.random.default_rng([seed, ord(positive[0])])  # each positive label its own columns
    n = int(rng.integers(1, 12))
    # columns drawn from a few kinds at a time, so that the uniform ones the column-wise reads take come up often
    kinds = rng.choice(len(_SCORES), size=int(rng.integers(1, 3)))
    scores = [_SCORES[int(rng.choice(kinds))] for _ in range(n)]
    numeric = rng.random() < 0.6
    pool = [p for p in _PREDICTIONS if type(p) in (float, int)] if numeric else _PREDICTIONS
    preds = [pool[int(rng.integers(len(pool)))] for _ in range(n)]
    got = positive_scores(preds, scores, positive)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_array_equal(got, np.array(_by_row(preds, scores, positive)))


def test_each_column_read_is_taken() -> None:
    """The three ways a column is read, each checked on a column that takes it."""
    named = [{"churn": 0.8, "stay": 0.2}, {"churn": 0.1, "stay": 0.9}]
    assert positive_scores(["stay", "churn"], named, "churn").tolist() == [0.8, 0.1]  # every row names it
    # no row names a class binary_score reads: the predictions, as numbers, NaN outside [0, 1]
    assert np.array_equal(positive_scores([0.4, 1.5], named, "1"), [0.4, math.nan], equal_nan=True)
    # "true" is read too: no row names the positive class, one names "true"; row by row
    assert positive_scores([0.3], [{"true": 0.6, "false": 0.4}], "churn").tolist() == [0.6]
    # one row names "1": row by row, the other row read by its prediction
    assert positive_scores([0.4, 0.7], [{"1": 0.9}, {"stay": 0.2}], "churn").tolist() == [0.9, 0.7]
