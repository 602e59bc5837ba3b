"""``LabelJoiner.add_labels`` against ``add_label`` one label at a time, the reference.

On random interleavings of prediction batches, label batches (duplicates within and across batches, unknown
ids, labels before their prediction, for other models) and expiry, with caps small enough to evict, the
batch path must give the same ``Joined`` objects in the same order, the same counters (in the same order),
the same pending, early and done entries, and the same snapshot bytes.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from monitor.core import snapshot
from monitor.core.join import LabelJoiner
from monitor.core.snapshot_classes import register_snapshot_classes
from tests.unit.test_join_columnar import MODELS, SEGMENTS, T0, Op, _canon, contents

register_snapshot_classes()  # snapshot.dumps names only allowed classes; importing the engine registers them


def random_ops(rng: random.Random, n_ops: int, id_space: int) -> list[Op]:
    ops: list[Op] = []
    t = T0
    for _ in range(n_ops):
        t += rng.choice([0.0, 0.5, 2.0, 5.0])
        r = rng.random()
        if r < 0.4:
            model, version = rng.choice(MODELS)
            rows = [
                (
                    f"id{rng.randrange(id_space)}",
                    rng.randrange(len(SEGMENTS)),
                    rng.choice([0.25, 0.9, 1, "cat", None]),
                    rng.choice([0.3, 0.71, float("nan")]),
                    t + i * 0.01,
                )
                for i in range(rng.choice([1, 3, 8, 30]))
            ]
            ops.append(("p", model, version, rows, t))
        elif r < 0.85:
            labels = []
            for i in range(rng.choice([1, 2, 6, 20, 45])):
                pid = f"id{rng.randrange(id_space)}" if rng.random() < 0.9 else f"unknown{rng.randrange(5)}"
                if labels and rng.random() < 0.15:
                    pid = rng.choice(labels)[0]  # the same id twice in one batch
                outcomes = {"v": 1.5} if rng.random() < 0.3 else None
                labels.append((pid, rng.randrange(2), outcomes, t + i * 0.1, rng.choice(["m", "other", None])))
            ops.append(("l", labels, t + rng.choice([0.0, 1.0])))
        else:
            ops.append(("e", t, t - rng.choice([0.0, 3.0, 30.0])))
    return ops


def feed(j: LabelJoiner, ops: list[Op], *, batched: bool) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        if op[0] == "p":
            _, model, version, rows, now = op
            used = sorted({r[1] for r in rows})
            j.add_predictions(
                [r[0] for r in rows],
                model,
                version,
                [SEGMENTS[s] for s in used],
                np.array([used.index(r[1]) for r in rows]),
                [r[2] for r in rows],
                np.array([r[3] for r in rows]),
                np.array([r[4] for r in rows]),
                now=now,
            )
        elif op[0] == "l":
            _, labels, now = op
            if batched:
                ids, values, outcomes, times, models = (list(col) for col in zip(*labels, strict=True))
                joined = j.add_labels(ids, values, outcomes, np.array(times), models, now=now)
            else:
                joined = [x for row in labels for x in j.add_label(*row[:4], row[4], now=now)]
            out.append([x._asdict() for x in joined])  # the same fields, values and order
        else:
            j.expire(op[1], labels_now=op[2])
        out.append(("state", list(j.counts.items()), len(j.pending), len(j.early), len(j.done)))
    return out


PARAMS = [
    {"ttl_s": 20.0, "max_pending": 6, "early_ttl_s": 8.0, "max_early": 4},  # caps evict all the time
    {"ttl_s": 40.0, "max_pending": 60, "early_ttl_s": 15.0, "max_early": 30},
    {"ttl_s": 1e6, "max_pending": 1000, "early_ttl_s": 1e6, "max_early": 1000},  # nothing evicts: the fast path
]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("params", PARAMS, ids=["tight caps", "roomy", "no caps"])
def test_a_batch_of_labels_joins_like_one_label_at_a_time(seed, params):
    rng = random.Random(seed)
    ops = random_ops(rng, 300, id_space=rng.choice([12, 60, 400]))
    slots = rng.choice([1, 3, 8, 64])
    one, batch = LabelJoiner(**params, chunk_slots=slots), LabelJoiner(**params, chunk_slots=slots)
    expected = feed(one, ops, batched=False)
    assert _canon(feed(batch, ops, batched=True)) == _canon(expected)
    assert _canon(contents(batch)) == _canon(contents(one))
    assert snapshot.dumps(batch) == snapshot.dumps(one)
    assert list(batch.counts.items()) == list(one.counts.items())
    assert sum(len(x) for x in expected if isinstance(x, list)) >= 5, "the stream should join predictions"
    assert one.counts["duplicate"] and one.counts["joined"]


def test_every_case_in_one_batch():
    """One batch: a join, the same id again (duplicate), an early label and its repeat, a model mismatch, and
    an id joined in an earlier batch."""
    j = LabelJoiner(ttl_s=100.0, max_pending=10, early_ttl_s=100.0, max_early=10)
    j.add_predictions(
        ["a", "b", "c"], "m", "v1", [()], np.zeros(3, dtype=int), [1, 0, 1], np.array([0.9, 0.1, 0.8]),
        np.array([T0, T0 + 1, T0 + 2]), now=T0 + 2,
    )  # fmt: skip
    assert [x.prediction_id for x in j.add_labels(["c"], [1], [None], np.array([T0 + 3]), [None], now=T0 + 3)] == ["c"]
    ids = ["a", "a", "z", "z", "b", "c"]
    out = j.add_labels(ids, [1, 0, 1, 1, 0, 1], [None] * 6, T0 + 10 + np.arange(6), ["m", None, None, None, "x", None],
                       now=T0 + 15)  # fmt: skip
    assert [(x.prediction_id, x.label, x.delay_s) for x in out] == [("a", 1, 10.0), ("b", 0, 13.0)]
    assert dict(j.counts) == {"joined": 3, "duplicate": 3, "model_mismatch": 1}
    assert list(j.early) == ["z"] and list(j.done) == ["c", "a", "b"] and not j.pending


@pytest.mark.parametrize("first_mismatched", [False, True])
def test_early_labels_joined_as_columns_count_in_the_order_row_by_row_would(first_mismatched):
    """A batch of predictions meeting their early labels joins them together: the counters (whose order
    snapshots and metrics show) come in the order one prediction at a time gives them, whichever row's
    label named another model first."""
    models = ["other", "m", "m"] if first_mismatched else ["m", "other", "m"]
    joiners = []
    for batched in (True, False):
        j = LabelJoiner(ttl_s=100.0, max_pending=50, early_ttl_s=100.0, max_early=50)
        for i, model in enumerate(models):
            j.add_label(f"p{i}", True, None, T0 + 5 + i, model, now=T0)
        ids = [f"p{i}" for i in range(3)]
        rows = [(ids[i : i + 1], [i]) for i in range(3)] if not batched else [(ids, [0, 1, 2])]
        for part, at in rows:
            k = len(at)
            times = np.array([T0 + i for i in at], dtype=np.float64)
            j.add_predictions(
                part, "m", "v1", [()], np.zeros(k, dtype=np.intp), [1] * k, np.full(k, 0.5), times, now=T0
            )
        joiners.append(j)
    batched, one = joiners
    assert list(batched.counts.items()) == list(one.counts.items())
    assert batched.counts["model_mismatch"] == 1 and batched.counts["joined_early"] == 3
    assert snapshot.dumps(batched) == snapshot.dumps(one)
