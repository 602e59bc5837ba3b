"""A model version's labels learned column by column (:meth:`ModelPerformance.learn`) give the same state
whatever the batching: a batch, cut anywhere, and every row on its own (where reading, filtering and grouping
rows by bucket have nothing to line up) end with the same windows, error streams, counts, buckets and newest
label times."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.core.join import Joined, PendingPrediction
from monitor.core.performance import ModelPerformance
from monitor.core.rules import ALL

COMBOS = [
    (("country", "US"), ("gender", "f")),
    (("country", "DE"), ("gender", "f")),
    (("country", "US"), ("gender", "m")),
    (("country", "IN"),),
    (),
]
LABELS: dict[str, list[Any]] = {
    "binary": [True, False, 0, 1, "yes", "no", "1", "stay", None, 0.5, 2, 1.0, -1, 10**400],
    "regression": [0.0, 1.5, 3, -2.25, True, "x", None],
    "multiclass": ["cat", "dog", "bird", 7, True, 0.5, None],
}
PREDICTIONS: dict[str, list[Any]] = {
    "binary": [1, 0],
    "regression": [0.2, 4.0, 3, False, "y", None],
    "multiclass": ["cat", "dog", 7, None, 0.5],
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[Joined], list[int]]:
    task = draw(st.sampled_from(["binary", "regression", "multiclass"]))
    # binary labels that are all booleans, numbers or missing are read as one array, others one by one
    choices = [x for x in LABELS[task] if not isinstance(x, str)] if draw(st.booleans()) else LABELS[task]
    n = draw(st.integers(1, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for i in range(n):
        if task == "binary" and rng.random() < 0.05:
            score = None
        else:
            score = float(rng.random()) if task == "binary" else None
        label = choices[int(rng.integers(len(choices)))]
        prediction = PREDICTIONS[task][int(rng.integers(len(PREDICTIONS[task])))]
        outcomes = {"revenue": float(rng.normal())} if rng.random() < 0.2 else None
        combo = COMBOS[int(rng.integers(len(COMBOS)))]
        p = PendingPrediction("m", "v1", combo, prediction, score, 1000.0 + i, None)
        rows.append(Joined(f"p{i}", p, label, outcomes, float(rng.exponential(30.0))))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))))
    return task, rows, cuts


def _performance(task: str) -> ModelPerformance:
    cfg = load_config(environ={}, overrides={"performance": {"task": task, "reference_labels": 50}})
    return ModelPerformance("m", "v1", cfg.performance, cfg.alerts, cfg.detectors.default)


def _state(perf: ModelPerformance) -> dict[str, Any]:
    out: dict[str, Any] = {
        "buckets": list(perf.buckets),
        "unsupported": perf.unsupported,
        "delays": perf.delay_buckets.tolist(),
        "delay_count": perf.delay_count,
        "outcomes": list(perf.outcome_names),
    }
    for key, b in perf.buckets.items():
        errors = b.errors
        out[str(key)] = {
            "labelled": b.labelled,
            "last_label_time": b.last_label_time,
            "rows": _named(perf, b.window.ring.rows()),
            "count": b.window.count,
            "sums": [float(f"{x:.9g}") for x in b.window.sums.tolist()],  # (summed in another order)
            "errors": None
            if errors is None
            else (errors.count, errors.detections, errors.change_seq, errors.since_n, errors.ref_n),
            # values an outcome's tracker took (a batch without the name gave its rows no NaN, nor a tracker)
            "outcomes": {name: t.count - t.missing for name, t in b.outcomes.items() if t.count > t.missing},
        }
    return out


def _named(perf: ModelPerformance, rows: np.ndarray) -> list[list[Any]]:
    """A window's rows; a multiclass model's class codes as their names (codes are given in the order classes
    are first met, which a batch changes: its labels are coded before its predictions)."""
    if perf.classes is None:
        return rows.tolist()
    names = perf.classes.labels()
    return [[names[int(y)], names[int(v)], right] for y, v, right in rows.tolist()]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_a_batch_learned_at_once_in_pieces_or_row_by_row_gives_the_same_state(case):
    task, rows, cuts = case
    rng = np.random.default_rng(0)
    whole = _performance(task)
    whole.learn(rows, rng)
    pieces = _performance(task)
    for start, end in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        pieces.learn(rows[start:end], rng)
    single = _performance(task)
    for row in rows:
        single.learn([row], rng)
    assert _state(whole) == _state(pieces) == _state(single)


def test_rows_without_a_readable_label_or_value_are_counted_and_the_rest_keep_their_own_segments():
    """Filtering drops rows from every column alike: a kept row's value, time and buckets stay its own."""
    perf = _performance("binary")
    us, de = (("country", "US"),), (("country", "DE"),)
    rows = [
        Joined("a", PendingPrediction("m", "v1", us, 1, 0.9, 10.0), "maybe", None, 1.0),  # unreadable label
        Joined("b", PendingPrediction("m", "v1", de, 1, 0.8, 20.0), True, None, 2.0),
        Joined("c", PendingPrediction("m", "v1", us, 0, None, 30.0), False, None, 3.0),  # no score
        Joined("d", PendingPrediction("m", "v1", us, 0, 0.1, 40.0), "no", None, 4.0),
        Joined("e", PendingPrediction("m", "v1", de, 0, None, 50.0), None, {"revenue": 5.0}, 5.0),  # outcomes only
    ]
    perf.learn(rows, np.random.default_rng(0))
    assert perf.unsupported == 2
    assert perf.buckets[("country", "DE")].window.ring.rows().tolist() == [[1.0, 0.8]]
    assert perf.buckets[("country", "US")].window.ring.rows().tolist() == [[0.0, 0.1]]
    assert perf.buckets[("country", "US")].last_label_time == 44.0
    assert perf.buckets[("country", "DE")].last_label_time == 55.0
    revenue = perf.buckets[("country", "DE")].outcomes["revenue"]
    assert (revenue.count, revenue.missing) == (2, 1)  # row b has none


def _one(task: str, label: Any, prediction: Any, score: float | None, segments: Any = ()) -> ModelPerformance:
    perf = _performance(task)
    p = PendingPrediction("m", "v1", segments, prediction, score, 10.0)
    perf.learn([Joined("a", p, label, None, 1.0)], np.random.default_rng(0))
    return perf


def test_each_task_reads_its_labels_and_values_as_before():
    """What each task reads from a label and a prediction, row by row (the columns must read the same): a
    boolean is no regression number, a multiclass row is (label, predicted), a NaN score is a reading
    (kept, not labelled) where a missing one is not (unsupported)."""
    assert _one("regression", True, 2.0, None).unsupported == 1
    assert _one("regression", 3, False, None).unsupported == 1
    assert _one("regression", 3, 2.5, None).buckets[ALL].window.ring.rows().tolist() == [[3.0, 2.5]]
    perf = _one("multiclass", "cat", "dog", None)
    assert perf.classes is not None
    (row,) = perf.buckets[ALL].window.ring.rows().tolist()
    assert [perf.classes.labels()[int(row[0])], perf.classes.labels()[int(row[1])], row[2]] == ["cat", "dog", 0.0]
    nan_score = _one("binary", True, 1, float("nan"))
    assert nan_score.unsupported == 0 and nan_score.delay_count == 1
    assert all(b.labelled == 0 for b in nan_score.buckets.values())
    assert _one("binary", True, 1, None).unsupported == 1
    twice = _one("binary", True, 1, 0.9, (("country", "US"), ("country", "US")))
    assert twice.buckets[("country", "US")].labelled == 2  # a bucket the tuple names twice, as row by row


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 90), min_size=1, max_size=25),
    capacity=st.sampled_from([1, 7, 64, 200]),
    seed=st.integers(0, 2**32 - 1),
    restored=st.booleans(),
)
def test_the_estimate_windows_code_counts_kept_as_it_turns_equal_a_fresh_count(sizes, capacity, seed, restored):
    """The score estimate reads its window's rows counted by code, kept as rows come and go: after any feeds
    (some larger than the window, some with missing scores; ``restored``: the cache lost, as a snapshot's
    restore loses it, and rows written past it) it equals a count of the rows held, and so does the
    estimate."""
    from monitor.core.metrics import Ring

    rng = np.random.default_rng(seed)
    perf = _performance("binary")
    b = perf._bucket(ALL)
    b.estimate = Ring(capacity, 1)
    right = perf._right_by_code()
    for k, n in enumerate(sizes):
        scores = rng.random(n)
        scores[rng.random(n) < 0.1] = np.nan
        present = np.clip(scores[~np.isnan(scores)], 0.0, 1.0)
        perf._warm_up(ALL, b.baseline_scores, present)
        perf.window_codes().feed([(ALL, b.estimate, present, perf._codes(present))])
        if restored and k % 3 == 0:
            perf.__dict__.pop("_window_codes", None)
        if restored and k % 4 == 1:  # a row written past the cache: it must count the window again
            b.estimate.extend(rng.random((1, 1)))
        got = [c[0] for c in perf._window_estimates([(ALL, b)], right)]
        held = b.estimate.data[: b.estimate.size, 0]
        if not held.size:  # (nothing held: no estimate, nothing counted)
            assert got[4] == 0
            continue
        fresh = np.bincount(_performance("binary")._codes(held), minlength=right.size)
        cached = perf.window_codes().counted(ALL, b.estimate)
        assert cached is not None and cached.tolist() == fresh.tolist()
        assert got[0] == (fresh.astype(np.float64) * right).sum() / held.size and got[4] == held.size


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 200), min_size=2, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    missing=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_each_buckets_estimate_window_takes_its_own_rows_clipped_and_counted(sizes, seed, missing):
    """A batch's scores are clipped and coded once for every bucket: each bucket's estimate window holds its own
    rows' latest present scores, clipped to [0, 1], and its count by code, kept as rows come and go, equals a
    fresh count of them."""
    from monitor.core.metrics import Ring

    rng = np.random.default_rng(seed)
    perf = _performance("binary")
    right = perf._right_by_code()
    given: dict[Any, list[float]] = {}
    counted: set[Any] = set()
    for n in sizes:
        scores = rng.uniform(-0.2, 1.2, n)
        scores[rng.random(n) < missing] = np.nan
        country = rng.integers(0, 3, n)
        parts = [(ALL, None)] + [(("country", str(c)), np.flatnonzero(country == c)) for c in range(3)]
        for bucket, part in parts:
            if bucket not in perf.buckets:
                perf._bucket(bucket).estimate = Ring(64, 1)
            if perf.buckets[bucket].estimate.size:  # counted once, then kept as rows come and go
                perf._window_estimates([(bucket, perf.buckets[bucket])], right)
                counted.add(bucket)
            mine = scores if part is None else scores[part]
            given.setdefault(bucket, []).extend(np.clip(mine[~np.isnan(mine)], 0.0, 1.0).tolist())
        perf.observe_predictions(parts, scores, np.full(n, np.nan), np.arange(n, dtype=np.float64), rng)
    for bucket, rows in given.items():
        ring = perf.buckets[bucket].estimate
        want = np.asarray(rows[-64:])
        assert ring.rows()[:, 0].tolist() == want.tolist()  # oldest first, in the order they came
        if bucket in counted:
            cached = perf.window_codes().counted(bucket, ring)
            fresh = np.bincount(perf._codes(want), minlength=right.size)
            assert cached is not None and cached.tolist() == fresh.tolist()
