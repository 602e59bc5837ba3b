"""Prediction-label join: late, out-of-order, duplicate, early and never-arriving labels, caps, snapshots.

All times are event times handed to the joiner (the injected clock); they are kept far from the wall
clock so a joiner that read ``time.time()`` would fail these tests.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from monitor.core.join import Joined, LabelJoiner, PendingPrediction

T0 = 1_000.0  # far from time.time(): expiry must follow the clock passed in, not the wall clock


def pred(t: float, model: str = "m", score: float = 0.7) -> PendingPrediction:
    return PendingPrediction(model, "v1", (("region", "eu"), ("tier", "gold")), 1, score, t)


def only(joined: list[Joined]) -> Joined:
    assert len(joined) == 1, joined
    return joined[0]


# ----------------------------------------------------------------------------- happy path and ordering


def test_label_after_prediction_joins_with_delay():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    p = pred(T0)
    assert j.add_prediction("a", p, now=T0) == []
    assert list(j.pending) == ["a"]
    out = only(j.add_label("a", 1, {"revenue": 12.5}, T0 + 42.25, "m", now=T0 + 42.25))
    assert out == Joined("a", p, 1, {"revenue": 12.5}, 42.25)
    assert out.delay_s == pytest.approx(42.25, abs=1e-12)
    assert out.prediction == p  # rebuilt from the store's columns: equal, not the same object
    assert not j.pending and not j.early
    assert "a" in j.done
    assert dict(j.counts) == {"joined": 1}


def test_labels_in_reverse_order_all_join():
    j = LabelJoiner(ttl_s=3600, max_pending=100)
    ids = [f"p{i}" for i in range(20)]
    for i, pid in enumerate(ids):
        assert j.add_prediction(pid, pred(T0 + i), now=T0 + i) == []
    now = T0 + 100
    for k, pid in enumerate(reversed(ids)):
        i = len(ids) - 1 - k
        out = only(j.add_label(pid, i % 2, None, now + k, None, now=now + k))
        assert out.prediction_id == pid
        assert out.label == i % 2
        assert out.prediction.event_time == T0 + i
        assert out.delay_s == pytest.approx((now + k) - (T0 + i), abs=1e-12)
    assert not j.pending and not j.early
    assert dict(j.counts) == {"joined": 20}


def test_interleaved_labels_only_join_their_own_prediction():
    j = LabelJoiner(ttl_s=3600, max_pending=100)
    for i, pid in enumerate(["a", "b", "c"]):
        j.add_prediction(pid, pred(T0 + i, score=i / 10), now=T0 + i)
    assert only(j.add_label("b", 0, None, T0 + 10, None, now=T0 + 10)).prediction.score == 0.1
    assert list(j.pending) == ["a", "c"]
    assert only(j.add_label("c", 1, None, T0 + 11, None, now=T0 + 11)).prediction.score == 0.2
    assert only(j.add_label("a", 1, None, T0 + 12, None, now=T0 + 12)).prediction.score == 0.0
    assert j.counts["joined"] == 3


# ----------------------------------------------------------------------------- duplicates


def test_duplicate_label_counted_once_and_never_joins_twice():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    j.add_prediction("a", pred(T0), now=T0)
    first = only(j.add_label("a", 1, None, T0 + 5, None, now=T0 + 5))
    assert first.label == 1
    # same label re-delivered, then a conflicting one: neither joins again
    assert j.add_label("a", 1, None, T0 + 6, None, now=T0 + 6) == []
    assert j.counts["duplicate"] == 1
    assert j.add_label("a", 0, None, T0 + 7, None, now=T0 + 7) == []
    assert j.counts["duplicate"] == 2
    assert j.counts["joined"] == 1
    assert not j.early, "a duplicate must not be parked as an early label"
    # and a later re-delivered prediction does not revive it either
    assert j.add_prediction("a", pred(T0), now=T0 + 8) == []
    assert j.counts["duplicate_prediction"] == 1
    assert not j.pending
    assert j.counts["joined"] == 1


def test_duplicate_early_label_counted_once_first_label_wins():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    assert j.add_label("a", 1, {"x": 1.0}, T0 + 5, None, now=T0 + 5) == []
    assert j.add_label("a", 0, {"x": 2.0}, T0 + 6, None, now=T0 + 6) == []
    assert j.counts["duplicate"] == 1
    assert len(j.early) == 1
    out = only(j.add_prediction("a", pred(T0), now=T0 + 7))
    assert (out.label, out.outcomes, out.delay_s) == (1, {"x": 1.0}, 5.0)
    assert j.add_label("a", 1, None, T0 + 8, None, now=T0 + 8) == []
    assert j.counts["duplicate"] == 2
    assert j.counts["joined"] == 1


def test_duplicate_prediction_while_pending_keeps_the_first():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    first = pred(T0, score=0.1)
    j.add_prediction("a", first, now=T0)
    assert j.add_prediction("a", pred(T0 + 1, score=0.9), now=T0 + 1) == []
    assert j.counts["duplicate_prediction"] == 1
    assert len(j.pending) == 1
    assert only(j.add_label("a", 1, None, T0 + 3, None, now=T0 + 3)).prediction == first


# ----------------------------------------------------------------------------- early labels


def test_early_label_joins_when_prediction_arrives():
    j = LabelJoiner(ttl_s=3600, max_pending=10, early_ttl_s=600)
    # the label (event time T0+30) is consumed before its prediction (event time T0)
    assert j.add_label("a", 1, {"revenue": 3.0}, T0 + 30, "m", now=T0 + 30) == []
    assert list(j.early) == ["a"]
    assert j.counts["joined"] == 0
    p = pred(T0)
    out = only(j.add_prediction("a", p, now=T0 + 31))
    assert out == Joined("a", p, 1, {"revenue": 3.0}, 30.0)
    assert out.delay_s == pytest.approx(30.0, abs=1e-12)
    assert not j.early and not j.pending
    assert dict(j.counts) == {"joined": 1, "joined_early": 1}
    # the id is now done: neither a second prediction nor a second label joins
    assert j.add_prediction("a", p, now=T0 + 32) == []
    assert j.add_label("a", 1, None, T0 + 33, None, now=T0 + 33) == []
    assert j.counts["duplicate_prediction"] == 1
    assert j.counts["duplicate"] == 1
    assert j.counts["joined"] == 1


def test_early_label_delay_can_be_negative_when_label_event_time_precedes_prediction():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    j.add_label("a", 0, None, T0 - 2.5, None, now=T0)
    assert only(j.add_prediction("a", pred(T0), now=T0)).delay_s == pytest.approx(-2.5, abs=1e-12)


def test_early_label_within_early_ttl_still_joins():
    j = LabelJoiner(ttl_s=3600, max_pending=10, early_ttl_s=60)
    j.add_label("a", 1, None, T0, None, now=T0)
    j.expire(T0 + 60)  # exactly early_ttl_s: kept
    assert "a" in j.early
    assert j.counts["unknown"] == 0
    assert only(j.add_prediction("a", pred(T0 - 10), now=T0 + 60)).delay_s == 10.0


def test_early_label_without_prediction_counted_unknown_after_early_ttl():
    j = LabelJoiner(ttl_s=3600, max_pending=10, early_ttl_s=60)
    j.add_label("a", 1, None, T0, None, now=T0)
    j.add_label("b", 1, None, T0 + 20, None, now=T0 + 20)
    j.expire(T0 + 60)
    assert list(j.early) == ["a", "b"]
    j.expire(T0 + 60.001)
    assert list(j.early) == ["b"]
    assert j.counts["unknown"] == 1
    j.expire(T0 + 80.001)
    assert not j.early
    assert j.counts["unknown"] == 2
    # the prediction turning up afterwards waits as an ordinary pending prediction
    assert j.add_prediction("a", pred(T0 + 90), now=T0 + 90) == []
    assert list(j.pending) == ["a"]
    assert j.counts["joined"] == 0 and j.counts["joined_early"] == 0


# ----------------------------------------------------------------------------- never-arriving labels


def test_prediction_not_expired_at_ttl_expired_just_after():
    j = LabelJoiner(ttl_s=60, max_pending=10)
    j.add_prediction("a", pred(T0), now=T0)
    j.add_prediction("b", pred(T0 + 10), now=T0 + 10)
    clock = T0
    for step in (10.0, 30.0, 20.0):  # advance the fake clock to exactly T0 + ttl_s
        clock += step
        j.expire(clock)
        assert list(j.pending) == ["a", "b"]
    assert clock == T0 + 60
    assert j.counts["expired"] == 0
    j.expire(T0 + 60.001)
    assert list(j.pending) == ["b"]
    assert j.counts["expired"] == 1
    j.expire(T0 + 70)
    assert list(j.pending) == ["b"]
    j.expire(T0 + 70.5)
    assert not j.pending
    assert j.counts["expired"] == 2
    assert j.counts["joined"] == 0


def test_label_at_ttl_joins_label_after_expiry_does_not():
    j = LabelJoiner(ttl_s=60, max_pending=10, early_ttl_s=30)
    j.add_prediction("a", pred(T0), now=T0)
    j.add_prediction("b", pred(T0), now=T0)
    j.expire(T0 + 60)
    assert only(j.add_label("a", 1, None, T0 + 60, None, now=T0 + 60)).delay_s == 60.0
    j.expire(T0 + 61)
    assert j.counts["expired"] == 1
    # b's label arrives after its prediction expired: it waits as an early label, then is unknown
    assert j.add_label("b", 1, None, T0 + 61, None, now=T0 + 61) == []
    j.expire(T0 + 61 + 30.5)
    assert j.counts["unknown"] == 1
    assert j.counts["joined"] == 1


def test_expiry_follows_injected_clock_not_wall_clock():
    j = LabelJoiner(ttl_s=5, max_pending=10)
    j.add_prediction("a", pred(0.0), now=0.0)
    j.expire(5.0)  # the wall clock is ~1.7e9 s past the event: only `now` may count
    assert list(j.pending) == ["a"]
    j.expire(5.5)
    assert not j.pending


# ----------------------------------------------------------------------------- memory caps


def test_max_pending_evicts_oldest_and_never_exceeds_cap():
    cap = 3
    j = LabelJoiner(ttl_s=3600, max_pending=cap)
    ids = [f"p{i}" for i in range(10)]
    for i, pid in enumerate(ids):
        j.add_prediction(pid, pred(T0 + i), now=T0 + i)
        assert len(j.pending) <= cap
        assert j.counts["evicted"] == max(0, i + 1 - cap)
    assert list(j.pending) == ids[-cap:]
    assert j.counts["evicted"] == len(ids) - cap
    # the newest is joinable
    assert only(j.add_label("p9", 1, None, T0 + 20, None, now=T0 + 20)).prediction.event_time == T0 + 9
    # the evicted oldest is gone: its label can only wait as an early label
    assert j.add_label("p0", 1, None, T0 + 21, None, now=T0 + 21) == []
    assert "p0" in j.early
    assert j.counts["joined"] == 1
    # further inserts keep the cap
    for i in range(10, 20):
        j.add_prediction(f"p{i}", pred(T0 + i), now=T0 + i)
        assert len(j.pending) <= cap


def test_max_early_exceeded_counts_unknown():
    cap = 2
    j = LabelJoiner(ttl_s=3600, max_pending=100, early_ttl_s=3600, max_early=cap)
    for i in range(5):
        j.add_label(f"e{i}", 1, None, T0 + i, None, now=T0 + i)
        assert len(j.early) <= cap
    assert list(j.early) == ["e3", "e4"]
    assert j.counts["unknown"] == 3
    # the kept (newest) early labels still join; the dropped ones do not
    assert only(j.add_prediction("e4", pred(T0), now=T0 + 10)).label == 1
    assert j.add_prediction("e0", pred(T0), now=T0 + 11) == []
    assert "e0" in j.pending
    assert j.counts["joined_early"] == 1


def test_done_set_is_bounded():
    j = LabelJoiner(ttl_s=3600, max_pending=4)
    for i in range(50):
        j.add_prediction(f"p{i}", pred(T0 + i), now=T0 + i)
        j.add_label(f"p{i}", 1, None, T0 + i, None, now=T0 + i)
        assert len(j.done) <= 4
    assert j.counts["joined"] == 50


# ----------------------------------------------------------------------------- model mismatch


def test_model_mismatch_counted_but_still_joined():
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    for pid in ("a", "b", "c"):
        j.add_prediction(pid, pred(T0, model="churn"), now=T0)
    assert only(j.add_label("a", 1, None, T0 + 1, "fraud", now=T0 + 1)).prediction.model == "churn"
    assert j.counts["model_mismatch"] == 1
    only(j.add_label("b", 1, None, T0 + 1, "churn", now=T0 + 1))  # same model
    only(j.add_label("c", 1, None, T0 + 1, None, now=T0 + 1))  # label names no model
    assert j.counts["model_mismatch"] == 1
    assert j.counts["joined"] == 3


def test_model_mismatch_counted_for_early_label_too():
    """A label naming another model must count the same whether it arrives before or after its prediction."""
    j = LabelJoiner(ttl_s=3600, max_pending=10)
    j.add_label("a", 1, None, T0 + 1, "fraud", now=T0 + 1)
    only(j.add_prediction("a", pred(T0, model="churn"), now=T0 + 2))
    assert j.counts["model_mismatch"] == 1


# ----------------------------------------------------------------------------- snapshot / restore


Op = tuple[Any, ...]


def run(j: LabelJoiner, ops: list[Op]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        if op[0] == "p":
            _, pid, t, model = op
            out.append(j.add_prediction(pid, pred(t, model=model, score=t % 1), now=t))
        elif op[0] == "l":
            _, pid, label, t, model = op
            out.append(j.add_label(pid, label, {"v": float(label)}, t, model, now=t))
        else:
            _, t = op
            j.expire(t)
            out.append(("expire", len(j.pending), len(j.early), len(j.done)))
    return out


def random_ops(rng: random.Random, n: int, t0: float) -> tuple[list[Op], float]:
    ops: list[Op] = []
    t = t0
    for _ in range(n):
        t += rng.choice([0.0, 0.5, 1.0, 3.0])
        pid = f"id{rng.randrange(40)}"
        model = rng.choice(["m", "m", "m", "other", None])
        r = rng.random()
        if r < 0.45:
            ops.append(("p", pid, t, model or "m"))
        elif r < 0.9:
            ops.append(("l", pid, rng.randrange(2), t, model))
        else:
            ops.append(("e", t))
    return ops, t


def state(j: LabelJoiner) -> tuple[Any, ...]:
    return (list(j.pending.items()), list(j.early.items()), list(j.done.items()), dict(j.counts))


def params() -> dict[str, Any]:
    return {"ttl_s": 20.0, "max_pending": 8, "early_ttl_s": 7.0, "max_early": 5}


def test_snapshot_restore_scripted():
    a = LabelJoiner(**params())
    before: list[Op] = [
        ("p", "a", T0, "m"),
        ("p", "b", T0 + 1, "m"),
        ("l", "a", 1, T0 + 2, "m"),  # joined -> done
        ("l", "c", 0, T0 + 3, None),  # early
        ("l", "a", 1, T0 + 4, None),  # duplicate
        ("p", "d", T0 + 5, "m"),
    ]
    run(a, before)
    snap = json.loads(json.dumps(a.snapshot()))  # survives JSON (segments become lists)
    b = LabelJoiner(**params())
    b.restore(snap)
    assert state(b) == state(a)
    after: list[Op] = [
        ("l", "b", 1, T0 + 6, "other"),  # pending join with model mismatch
        ("p", "c", T0 + 6, "m"),  # early join
        ("l", "a", 0, T0 + 7, None),  # duplicate of done
        ("p", "a", T0 + 7, "m"),  # duplicate prediction
        ("e", T0 + 30),  # d expires
        ("l", "d", 1, T0 + 31, None),  # too late: early
        ("e", T0 + 40),  # ... then unknown
    ]
    out_a, out_b = run(a, after), run(b, after)
    assert out_a == out_b
    assert state(a) == state(b)
    assert a.counts["joined"] == 3 and a.counts["joined_early"] == 1
    assert a.counts["model_mismatch"] == 1 and a.counts["expired"] == 1 and a.counts["unknown"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_snapshot_restore_random_streams(seed):
    rng = random.Random(seed)
    a = LabelJoiner(**params())
    reference = LabelJoiner(**params())  # never snapshotted: the restored joiner must behave exactly like it
    head, t_end = random_ops(rng, 150, T0)
    run(a, head)
    run(reference, head)
    snap = json.loads(json.dumps(a.snapshot()))
    b = LabelJoiner(**params())
    b.restore(snap)
    tail, _ = random_ops(rng, 300, t_end)
    out_ref, out_b = run(reference, tail), run(b, tail)
    assert out_b == out_ref
    assert state(b) == state(reference)
    assert sum(len(x) for x in out_ref if isinstance(x, list)) > 0, "the tail should join something"


def test_snapshot_is_not_affected_by_later_activity():
    a = LabelJoiner(**params())
    a.add_prediction("a", pred(T0), now=T0)
    snap = a.snapshot()
    text = json.dumps(snap)
    a.add_label("a", 1, None, T0 + 1, None, now=T0 + 1)
    a.add_prediction("z", pred(T0 + 1), now=T0 + 1)
    assert json.dumps(snap) == text


# ----------------------------------------------------------------------------- parameter validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl_s": 0},
        {"ttl_s": -1.0},
        {"early_ttl_s": 0},
        {"early_ttl_s": -5.0},
        {"max_pending": 0},
        {"max_pending": -3},
        {"max_early": 0},
        {"max_early": -1},
    ],
)
def test_constructor_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        LabelJoiner(**kwargs)


@pytest.mark.parametrize("kwargs", [{"ttl_s": math.nan}, {"early_ttl_s": math.nan}], ids=["ttl_s", "early_ttl_s"])
def test_constructor_rejects_nan_ttl(kwargs):
    # A NaN TTL passes the `<= 0` check, and `now - t <= nan` is False, so every expire() would drop everything.
    with pytest.raises(ValueError):
        LabelJoiner(**kwargs)


def test_constructor_accepts_minimal_valid_parameters():
    j = LabelJoiner(ttl_s=1e-9, max_pending=1, early_ttl_s=1e-9, max_early=1)
    assert (j.ttl_s, j.max_pending, j.early_ttl_s, j.max_early) == (1e-9, 1, 1e-9, 1)
