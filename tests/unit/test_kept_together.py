"""The join store keeps copies of a batch's ids and prediction values, made together (join.kept_together)."""

from __future__ import annotations

import numpy as np

from monitor.core.join import LabelJoiner, kept_together

T0 = 2_000.0


def test_copies_are_equal_values_of_the_same_types_in_new_objects() -> None:
    values = ["p-1", "ü-2", "", 0.1, -0.0, 3, 2**63 - 1, -(2**63), True, False, "1.0"]
    ids = ["".join(["id-", str(i)]) for i in range(5)]  # built at run time: not constants the compiler shares
    copies = kept_together(values + ids)
    assert copies == values + ids
    assert [type(c) for c in copies] == [type(v) for v in values + ids]
    assert str(copies[4]) == "-0.0"
    assert all(c is not v for c, v in zip(copies[-5:], ids, strict=True))


def test_values_json_cannot_carry_are_kept_as_they_are() -> None:
    values = ["a", "\ud800"]  # a lone surrogate: no UTF-8 for it
    assert kept_together(values) is values
    for changed in ([1.0, float("nan")], [0.5, float("inf")], [2**64 + 1, 1]):  # null, null, too wide for orjson
        assert kept_together(changed) is changed
    assert list(kept_together(("x", 1.5))) == ["x", 1.5]


def test_the_store_joins_and_remembers_by_the_copies() -> None:
    joiner = LabelJoiner(ttl_s=100.0, max_pending=10, early_ttl_s=10.0, max_early=10)
    ids = ["".join(["q", str(i)]) for i in range(3)]
    joiner.add_predictions(
        ids, "m", "v1", [()], np.zeros(3, dtype=np.int64), ["yes", 0.25, True],
        np.full(3, np.nan), np.full(3, T0), now=T0,
    )  # fmt: skip
    joined = joiner.add_labels(ids[::-1], [1, 0, 1], [None] * 3, np.full(3, T0 + 1), [None] * 3, now=T0 + 1)
    assert [(j.prediction_id, j.prediction.prediction) for j in joined] == [("q2", True), ("q1", 0.25), ("q0", "yes")]
    assert [j.prediction_id for j in joined] == ids[::-1] and all(j.prediction_id in joiner.done for j in joined)
    assert joiner.add_labels(["q0"], [1], [None], np.full(1, T0 + 2), [None], now=T0 + 2) == []
    assert joiner.counts["duplicate"] == 1
