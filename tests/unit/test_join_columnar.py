"""The columnar join store against the one it replaced, its chunked snapshot, and old snapshots.

``ReferenceJoiner`` below is the previous store (one ``PendingPrediction`` per entry in an ordered dict),
kept as the oracle: on random interleavings of batched predictions, labels and expiry, with caps small
enough to evict, the columnar store must give the same ``Joined`` results in the same order, the same
counts and the same pending, early and done entries.
"""

from __future__ import annotations

import math
import random
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
import pytest

from monitor.core import snapshot
from monitor.core.columns import segment_combinations
from monitor.core.join import Joined, LabelJoiner, PendingLabel, PendingPrediction
from monitor.core.snapshot_classes import register_snapshot_classes

register_snapshot_classes()  # snapshot.dumps names only allowed classes; importing the engine registers them

T0 = 5_000.0
MODELS = [("m", "v1"), ("m", "v2"), ("other", "v1")]
SEGMENTS = [(), (("country", "US"),), (("country", "DE"), ("gender", "F")), (("gender", "M"),)]


class ReferenceJoiner:
    """The join store before it became columnar (its behaviour, trimmed of docs): the oracle."""

    def __init__(self, ttl_s: float, max_pending: int, early_ttl_s: float, max_early: int) -> None:
        self.ttl_s, self.max_pending, self.early_ttl_s, self.max_early = ttl_s, max_pending, early_ttl_s, max_early
        self.pending: OrderedDict[str, PendingPrediction] = OrderedDict()
        self.early: OrderedDict[str, PendingLabel] = OrderedDict()
        self.done: OrderedDict[str, float] = OrderedDict()
        self.counts: Counter[str] = Counter()

    def add_prediction(self, pid: str, p: PendingPrediction, *, now: float) -> list[Joined]:
        early = self.early.pop(pid, None)
        if early is not None:
            if early.model is not None and early.model != p.model:
                self.counts["model_mismatch"] += 1
            self._mark_done(pid, now)
            self.counts["joined"] += 1
            self.counts["joined_early"] += 1
            return [Joined(pid, p, early.label, early.outcomes, early.event_time - p.event_time)]
        if pid in self.pending or pid in self.done:
            self.counts["duplicate_prediction"] += 1
            return []
        self.pending[pid] = p
        if len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.counts["evicted"] += 1
        return []

    def add_predictions(self, ids: list[str], predictions: list[PendingPrediction], *, now: float) -> list[Joined]:
        if not self.early and not self.done.keys() & ids:
            dupes = 0
            for pid, p in zip(ids, predictions, strict=True):
                if pid in self.pending:
                    dupes += 1
                    continue
                self.pending[pid] = p
            if dupes:
                self.counts["duplicate_prediction"] += dupes
            over = len(self.pending) - self.max_pending
            if over > 0:
                for _ in range(over):
                    self.pending.popitem(last=False)
                self.counts["evicted"] += over
            return []
        joined: list[Joined] = []
        for pid, p in zip(ids, predictions, strict=True):
            joined += self.add_prediction(pid, p, now=now)
        return joined

    def add_label(self, pid: str, label: Any, outcomes: Any, event_time: float, model: Any, *, now: float) -> Any:
        p = self.pending.pop(pid, None)
        if p is not None:
            if model is not None and model != p.model:
                self.counts["model_mismatch"] += 1
            self._mark_done(pid, now)
            self.counts["joined"] += 1
            return [Joined(pid, p, label, outcomes, event_time - p.event_time)]
        if pid in self.done or pid in self.early:
            self.counts["duplicate"] += 1
            return []
        self.early[pid] = PendingLabel(label, outcomes, event_time, model)
        if len(self.early) > self.max_early:
            self.early.popitem(last=False)
            self.counts["unknown"] += 1
        return []

    def _mark_done(self, pid: str, now: float) -> None:
        self.done[pid] = now
        if len(self.done) > self.max_pending:
            self.done.popitem(last=False)

    def expire(self, now: float, *, labels_now: float | None = None) -> None:
        label_now = now if labels_now is None else labels_now
        while self.pending:
            if label_now - next(iter(self.pending.values())).event_time <= self.ttl_s:
                break
            self.pending.popitem(last=False)
            self.counts["expired"] += 1
        while self.early:
            if now - next(iter(self.early.values())).event_time <= self.early_ttl_s:
                break
            self.early.popitem(last=False)
            self.counts["unknown"] += 1
        while self.done:
            if max(now, label_now) - next(iter(self.done.values())) <= self.ttl_s:
                break
            self.done.popitem(last=False)

    def to_plain(self) -> dict[str, Any]:
        """The previous release's snapshot form (flat columns, a table of distinct combinations)."""
        combos: dict[Any, int] = {}
        index = np.array(
            [combos.setdefault((p.model, p.model_version, p.segments), len(combos)) for p in self.pending.values()],
            dtype=np.int32,
        )
        pending = list(self.pending.values())
        return {
            "params": [self.ttl_s, self.max_pending, self.early_ttl_s, self.max_early],
            "pending_ids": list(self.pending),
            "combos": [[m, v, [list(x) for x in segs]] for (m, v, segs) in combos],
            "combo_index": index,
            "predictions": [p.prediction for p in pending],
            "scores": np.array([math.nan if p.score is None else p.score for p in pending], dtype=np.float64),
            "times": np.array([p.event_time for p in pending], dtype=np.float64),
            "early_ids": list(self.early),
            "early": [[e.label, e.outcomes, e.event_time, e.model] for e in self.early.values()],
            "done_ids": list(self.done),
            "done_times": np.array(list(self.done.values()), dtype=np.float64),
            "counts": dict(self.counts),
        }


# ----------------------------------------------------------------------------- random streams


Op = tuple[Any, ...]


def random_ops(rng: random.Random, n_ops: int, t0: float, id_space: int) -> list[Op]:
    """Batches of predictions (one model version each, duplicates and repeats included), single labels
    (early, late, duplicate, for other models) and expiry with the two clocks apart."""
    ops: list[Op] = []
    t = t0
    for _ in range(n_ops):
        t += rng.choice([0.0, 0.5, 2.0, 5.0])
        r = rng.random()
        if r < 0.35:
            n = rng.choice([1, 2, 5, 13, 40])
            model, version = rng.choice(MODELS)
            rows = []
            for i in range(n):
                pid = f"id{rng.randrange(id_space)}"
                prediction = rng.choice([0.25, 0.9, 1, "cat", None])
                score = rng.choice([0.3, 0.71, math.nan])
                confidence = rng.choice([0.55, math.nan, math.nan])  # a multiclass model's, where it has one
                rows.append((pid, rng.randrange(len(SEGMENTS)), prediction, score, t + i * 0.01, confidence))
            ops.append(("p", model, version, rows, t))
        elif r < 0.85:
            pid = f"id{rng.randrange(id_space)}"
            model = rng.choice(["m", "other", None])
            ops.append(("l", pid, rng.randrange(2), {"v": 1.5} if rng.random() < 0.3 else None, t, model))
        else:
            ops.append(("e", t, t - rng.choice([0.0, 3.0, 30.0])))
    return ops


def feed(j: Any, ops: list[Op], *, columnar: bool) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        if op[0] == "p":
            _, model, version, rows, now = op
            ids = [r[0] for r in rows]
            if columnar:
                used = sorted({r[1] for r in rows})
                code = np.array([used.index(r[1]) for r in rows])
                out.append(
                    j.add_predictions(
                        ids,
                        model,
                        version,
                        [SEGMENTS[s] for s in used],
                        code,
                        [r[2] for r in rows],
                        np.array([r[3] for r in rows]),
                        np.array([r[4] for r in rows]),
                        now=now,
                        confidences=np.array([r[5] for r in rows]) if len(rows[0]) > 5 else None,
                    )
                )
            else:
                preds = [
                    PendingPrediction(model, version, SEGMENTS[s], p, None if sc != sc else sc, t,
                                      None if not sure or sure[0] != sure[0] else sure[0])
                    for _, s, p, sc, t, *sure in rows
                ]  # fmt: skip
                out.append(j.add_predictions(ids, preds, now=now))
        elif op[0] == "l":
            _, pid, label, outcomes, t, model = op
            out.append(j.add_label(pid, label, outcomes, t, model, now=t))
        else:
            _, now, labels_now = op
            j.expire(now, labels_now=labels_now)
        out.append(("state", dict(j.counts), len(j.pending), len(j.early), len(j.done)))
    return out


def contents(j: Any) -> tuple[Any, ...]:
    return (list(j.pending.items()), list(j.early.items()), list(j.done.items()), dict(j.counts))


def _canon(x: Any) -> Any:
    """NaN equal to NaN and 1 distinct from 1.0, so the comparison is exact."""
    if isinstance(x, float):
        return ("f", repr(x))
    if isinstance(x, Joined):
        return ("J", _canon(x.prediction_id), _canon(tuple(x.prediction)), _canon(x.label), x.outcomes, repr(x.delay_s))
    if isinstance(x, dict):
        return {k: _canon(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return ("t", *(_canon(v) for v in x))
    if isinstance(x, list):
        return [_canon(v) for v in x]
    return x


PARAMS = [
    {"ttl_s": 20.0, "max_pending": 6, "early_ttl_s": 8.0, "max_early": 4},  # caps evict all the time
    {"ttl_s": 40.0, "max_pending": 60, "early_ttl_s": 15.0, "max_early": 30},
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("params", PARAMS, ids=["tight caps", "roomy"])
def test_same_joins_as_the_reference_store(seed, params):
    rng = random.Random(seed)
    ops = random_ops(rng, 400, T0, id_space=rng.choice([15, 80]))
    ref = ReferenceJoiner(**params)
    new = LabelJoiner(**params, chunk_slots=rng.choice([1, 3, 8, 64]))
    expected = feed(ref, ops, columnar=False)
    got = feed(new, ops, columnar=True)
    assert _canon(got) == _canon(expected)
    assert _canon(contents(new)) == _canon(contents(ref))
    joined = [x for x in expected if isinstance(x, list)]
    assert sum(map(len, joined)) > 10, "the stream should join predictions"
    counts = ref.counts
    assert counts["joined_early"] and counts["duplicate_prediction"] and counts["expired"] + counts["evicted"]


def test_rowwise_batch_evicts_like_one_prediction_at_a_time():
    """A batch with an early label (so decided row by row) that overflows the cap and repeats an evicted id."""
    params = {"ttl_s": 100.0, "max_pending": 3, "early_ttl_s": 100.0, "max_early": 10}
    ref, new = ReferenceJoiner(**params), LabelJoiner(**params, chunk_slots=2)
    rows = [(pid, 0, 1, 0.5, T0) for pid in ["a", "b", "c"]]
    later = [(pid, 1, 0, 0.2, T0 + 1) for pid in ["z", "d", "e", "a", "f", "f", "b"]]
    ops: list[Op] = [("p", "m", "v1", rows, T0), ("l", "z", 1, None, T0 + 1, "m"), ("p", "m", "v1", later, T0 + 1)]
    expected = feed(ref, ops, columnar=False)
    assert _canon(feed(new, ops, columnar=True)) == _canon(expected)
    assert list(new.pending) == list(ref.pending) == ["a", "f", "b"]  # a and b came back after their eviction
    assert new.counts["evicted"] == ref.counts["evicted"] == 5


# ----------------------------------------------------------------------------- snapshots


def through_bytes(j: LabelJoiner) -> LabelJoiner:
    restored = snapshot.loads(snapshot.dumps(j))
    assert isinstance(restored, LabelJoiner)
    return restored


@pytest.mark.parametrize("seed", range(6))
def test_snapshot_mid_stream_restores_to_the_same_joins(seed):
    rng = random.Random(100 + seed)
    params = PARAMS[seed % 2]
    head, tail = random_ops(rng, 200, T0, 40), random_ops(rng, 300, T0 + 2000, 40)
    original = LabelJoiner(**params, chunk_slots=5)
    feed(original, head, columnar=True)
    twin = through_bytes(original)
    assert _canon(contents(twin)) == _canon(contents(original))
    expected = feed(original, tail, columnar=True)
    assert _canon(feed(twin, tail, columnar=True)) == _canon(expected)
    assert snapshot.dumps(twin) == snapshot.dumps(original)
    assert any(isinstance(x, list) and x for x in expected)


def test_incremental_snapshot_equals_the_full_one_and_reuses_unchanged_chunks():
    rng = random.Random(7)
    j = LabelJoiner(ttl_s=1e6, max_pending=10_000, chunk_slots=16)
    for step in range(6):
        feed(j, random_ops(rng, 60, T0 + 1000 * step, 5000), columnar=True)
        incremental = snapshot.dumps(j)  # reuses the chunks encoded by the previous snapshot
        full = snapshot.dumps(
            snapshot.Encoded({"$o": "LabelJoiner", "p": snapshot.encode(j.to_plain(incremental=False))})
        )
        assert incremental == full
        a, b = snapshot.loads(incremental), snapshot.loads(full)
        assert _canon(contents(a)) == _canon(contents(b)) == _canon(contents(j))
    # Only the chunks a change touched are encoded again: the oldest chunks, untouched, keep their encoding.
    before = {k: enc for k, (_, enc) in j._encoded.items()}
    j.add_predictions(
        ["fresh"], "m", "v1", [()], np.zeros(1, dtype=np.intp), [1], np.array([0.5]), np.array([T0]), now=T0
    )
    j.to_plain()
    reused = [k for k, (_, enc) in j._encoded.items() if before.get(k) is enc]
    assert len(j._encoded) > 3 and len(reused) == len(j._encoded) - 1  # the tail chunk alone changed


def test_a_chunk_that_only_lost_predictions_keeps_its_body_until_more_than_half_is_gone():
    """Labels take predictions out of a chunk over several checkpoints: the chunk keeps the encoding it had (its
    pieces are not written again) and the snapshot says which of them are still pending; a restore holds just
    those, writes the same bytes, and a label for one that left is a duplicate; once more than half its body has left,
    the chunk is encoded afresh without them."""
    j = LabelJoiner(ttl_s=1e6, max_pending=10_000, chunk_slots=8)
    ids = [f"p{i}" for i in range(16)]
    j.add_predictions(
        ids, "m", "v1", [()], np.zeros(16, dtype=np.intp), [1] * 16, np.full(16, 0.5), np.full(16, T0), now=T0
    )
    snapshot.dumps(j)
    body = {k: enc for k, (_, enc) in j._encoded.items()}

    def label(*names: str) -> None:
        for name in names:
            assert [x.prediction_id for x in j.add_label(name, 1, None, T0 + 1, None, now=T0 + 1)] == [name]

    label("p0", "p1", "p2", "p3")
    plain = j.to_plain()
    assert j._encoded[0][1] is body[0] and j._encoded[1][1] is body[1]
    [[k, bits]] = plain["alive"]
    assert k == 0 and np.unpackbits(bits).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    twin = through_bytes(j)
    assert list(twin.pending) == list(j.pending) == ids[4:]
    assert snapshot.dumps(twin) == snapshot.dumps(j)
    assert twin.add_label("p1", 1, None, T0 + 2, None, now=T0 + 2) == [] and twin.counts["duplicate"] == 1
    label("p4")  # three of eight left: a new body
    plain = j.to_plain()
    assert j._encoded[0][1] is not body[0] and j._encoded[1][1] is body[1] and plain["alive"] == []
    assert j._chunks[0].ids[:5] == [None] * 5  # the ids that left are let go with the old body
    assert list(through_bytes(j).pending) == ids[5:]


def test_a_store_whose_labels_leave_a_few_predictions_per_chunk_keeps_few_chunks():
    """Labels for all but one prediction in fifty: the chunks left nearly empty are merged as batches go (in
    arrival order), so the chunks stay fewer than ``4 * pending / chunk_slots + 2`` rather than one per few
    predictions, and the rest of the stream still finds them."""
    size, n, t = 16, 0, T0
    j = LabelJoiner(ttl_s=1e6, max_pending=100_000, chunk_slots=size)
    unlabelled = []
    for _ in range(200):
        ids = [f"p{n + i}" for i in range(50)]
        j.add_predictions(
            ids, "m", "v1", [()], np.zeros(50, dtype=np.intp), [1] * 50, np.full(50, 0.5), np.full(50, t), now=t
        )
        labelled = ids[1:]
        unlabelled.append(ids[0])
        j.add_labels(labelled, [1] * 49, [None] * 49, np.full(49, t + 1), [None] * 49, now=t + 1)
        j.expire(t, labels_now=t + 1)
        n, t = n + 50, t + 1
        assert len(j._chunks) < 4 * len(j.pending) / size + 2
    assert list(j.pending) == unlabelled and len(j._chunks) < 60  # 625 without merging
    assert list(through_bytes(j).pending) == unlabelled
    joined = j.add_labels(unlabelled[::-1], [0] * 200, [None] * 200, np.full(200, t), [None] * 200, now=t)
    assert [x.prediction_id for x in joined] == unlabelled[::-1] and not j.pending


def test_one_merging_sweep_leaves_nothing_to_merge_so_a_restore_keeps_the_same_chunks():
    """Written-out chunks holding 1, 1 and 5 of 16: one expire() merges all three (1 + 1, then 2 + 5, both at
    most half a chunk), so a second changes nothing, and a restored store, whose engine applies the caps again
    (and with them the merging), writes the same snapshot as the original."""
    size = 16
    j = LabelJoiner(ttl_s=1e9, max_pending=10**6, chunk_slots=size)
    n = 3 * size + 1
    ids = [f"p{i}" for i in range(n)]
    j.add_predictions(ids, "m", "v", [()], np.zeros(n, dtype=np.intp), [1.0] * n, np.full(n, 0.5), np.zeros(n), now=0.0)
    keep = {0, 16, 32, 33, 34, 35, 36}
    gone = [p for i, p in enumerate(ids[:48]) if i not in keep]
    j.add_labels(gone, [1] * len(gone), [None] * len(gone), np.full(len(gone), 1.0), [None] * len(gone), now=1.0)
    j.expire(1.0)
    layout = {k: c.live for k, c in j._chunks.items()}
    assert layout == {0: 7, 3: 1}  # (chunk 3 is being written)
    j.expire(1.0)
    assert {k: c.live for k, c in j._chunks.items()} == layout
    twin = through_bytes(j)
    twin.apply_caps()
    assert list(twin.pending) == list(j.pending) == [ids[i] for i in sorted(keep)] + [ids[-1]]
    assert snapshot.dumps(twin) == snapshot.dumps(j)


def test_a_restored_store_looks_at_retired_combinations_when_the_original_does():
    """How many predictions left since the retired versions' combinations were last looked at is state: a
    restored store must not look (and renumber them) earlier than the original."""
    j = LabelJoiner(ttl_s=1e6, max_pending=1000, chunk_slots=8)

    def add(ids: list[str], version: str, t: float) -> None:
        n = len(ids)
        j.add_predictions(
            ids, "m", version, [()], np.zeros(n, dtype=np.intp), [1] * n, np.full(n, 0.5), np.full(n, t), now=t
        )

    add(["old"], "v1", 0.0)
    add([f"p{i}" for i in range(40)], "v2", 1.0)
    j.forget({("m", "v1")})  # v1 retired; "old" still holds its combination
    twin = through_bytes(j)
    for x in (j, twin):
        x.add_label("old", 1, None, 2.0, None, now=2.0)
        x.expire(2.0)  # one of 41 left: not yet an eighth, so neither looks again
    assert twin._combos == j._combos == [("m", "v1", ()), ("m", "v2", ())]
    assert snapshot.dumps(twin) == snapshot.dumps(j)


def test_a_chunk_emptied_and_made_again_is_encoded_afresh():
    """A chunk that empties is deleted and made again: its cached encoding must not come back."""
    j = LabelJoiner(ttl_s=10, max_pending=1000, chunk_slots=8)

    def add(ids: list[str], t: float) -> None:
        n = len(ids)
        j.add_predictions(
            ids, "m", "v", [()], np.zeros(n, dtype=np.intp), [0.5] * n, np.full(n, 0.5), np.full(n, t), now=t
        )

    add(["a", "b", "c"], T0)
    snapshot.dumps(j)
    j.expire(T0 + 100)  # every pending prediction expires: the chunk is deleted
    add(["d", "e", "f"], T0 + 100)
    restored = snapshot.loads(snapshot.dumps(j))
    assert sorted(restored.pending) == sorted(j.pending) == ["d", "e", "f"]


def test_old_snapshot_restores_and_continues_like_the_old_store():
    """A join store written by the previous release (flat columns inside the engine's snapshot) restores
    into the columnar store: same contents, and the rest of the stream gives the old store's joins."""
    rng = random.Random(3)
    params = PARAMS[1]
    head, tail = random_ops(rng, 250, T0, 60), random_ops(rng, 250, T0 + 3000, 60)
    # that release kept no confidences
    head = [(*op[:3], [r[:5] for r in op[3]], op[4]) if op[0] == "p" else op for op in head]
    old = ReferenceJoiner(**params)
    feed(old, head, columnar=False)
    written = snapshot.dumps(snapshot.Encoded({"$o": "LabelJoiner", "p": snapshot.encode(old.to_plain())}))
    restored = snapshot.loads(written)
    assert isinstance(restored, LabelJoiner)
    assert len(restored.pending) > 0
    assert _canon(contents(restored)) == _canon(contents(old))
    expected = feed(old, tail, columnar=False)
    assert _canon(feed(restored, tail, columnar=True)) == _canon(expected)


def test_segment_codes_give_each_row_its_buckets():
    """The batch's distinct combinations, coded per row: what the per-row tuples used to be."""
    rng = np.random.default_rng(5)
    n = 500
    country = rng.integers(0, 4, n)
    gender = rng.integers(0, 3, n)  # 2: a value that is not tracked (the row has no gender bucket)
    buckets: list[tuple[tuple[str, str], np.ndarray | None]] = [(("", ""), None)]
    for v, name in enumerate(["US", "DE", "IN", "BR"]):
        buckets.append((("country", name), np.flatnonzero(country == v)))
    for v, name in enumerate(["F", "M"]):
        buckets.append((("gender", name), np.flatnonzero(gender == v)))
    combos, code = segment_combinations(buckets, n)
    countries, genders = ["US", "DE", "IN", "BR"], ["F", "M"]
    for r in range(n):
        want = (("country", countries[country[r]]),) + ((("gender", genders[gender[r]]),) if gender[r] < 2 else ())
        assert combos[code[r]] == want
    assert len(combos) == len(set(combos)) == 12
    assert segment_combinations([(("", ""), None)], 3)[0] == [()]


def test_forgotten_versions_leave_the_combination_table_but_for_what_pending_predictions_hold():
    """A retired version's segment combinations go unless a pending prediction still holds one; the codes of
    what stays are renumbered, every prediction still joins with its own model, version and segments, and
    the store snapshots and restores as it is."""
    j = LabelJoiner(ttl_s=1e6, max_pending=1000, chunk_slots=4)
    us, de, fr = (("country", "US"),), (("country", "DE"),), (("country", "FR"),)

    def add(ids: list[str], version: str, segments: list[Any], t: float) -> None:
        n = len(ids)
        code = np.arange(n, dtype=np.intp) % len(segments)
        j.add_predictions(ids, "m", version, segments, code, [1] * n, np.full(n, 0.5), np.full(n, t), now=t)

    def join(ids: list[str], t: float) -> list[tuple[str, str, Any]]:
        n = len(ids)
        got = j.add_labels(ids, [1] * n, [None] * n, np.full(n, t), ["m"] * n, now=t)
        return [(x.prediction_id, x.prediction.model_version, x.prediction.segments) for x in got]

    add(["a1", "a2", "a3", "a4"], "v1", [us, de], T0)  # a1, a3 in US; a2, a4 in DE
    add(["b1", "b2"], "v2", [fr], T0 + 1)
    assert join(["a1", "a3", "a4"], T0 + 2) == [("a1", "v1", us), ("a3", "v1", us), ("a4", "v1", de)]
    snapshot.dumps(j)  # chunks encoded with the old codes: renumbering must encode them afresh
    j.forget({("m", "v1")})
    assert j._combos == [("m", "v1", de), ("m", "v2", fr)]  # v1 in DE stays: a2 waits for its label
    restored = snapshot.loads(snapshot.dumps(j))
    assert restored.retired == {("m", "v1")}
    for store in (j, restored):
        got = store.add_labels(["a2", "b2"], [1, 1], [None, None], np.full(2, T0 + 3), ["m", "m"], now=T0 + 3)
        assert [(x.prediction_id, x.prediction.model_version, x.prediction.segments) for x in got] == [
            ("a2", "v1", de),
            ("b2", "v2", fr),
        ]
    assert j._combos == [("m", "v1", de), ("m", "v2", fr)] and j.retired == {("m", "v1")}
    add(["x1", "x2", "x3", "x4", "x5"], "v2", [fr], T0 + 3)  # fill the chunk a2 was in, then empty it
    j.add_labels(["x1", "x2", "x3", "x4", "x5"], [1] * 5, [None] * 5, np.full(5, T0 + 3), ["m"] * 5, now=T0 + 3)
    j.expire(T0 + 3)  # a chunk emptied: what the retired version held is looked at again
    assert j._combos == [("m", "v2", fr)] and not j.retired
    add(["c1"], "v1", [us], T0 + 4)  # the version comes back: a new code
    assert j._combos == [("m", "v2", fr), ("m", "v1", us)]
    assert join(["c1", "b1"], T0 + 5) == [("c1", "v1", us), ("b1", "v2", fr)]
