"""Judging points: where in a batch a numeric stream's sequential evidence is judged. The same values give the
same points, with the same evidence to the last bit, however they are cut into batches; a point is the first
chunk end where the evidence, judged on complete chunks, fires (or clears)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.evidence_points import EvidencePoint, EvidenceTest, first_rises, verdicts
from monitor.core.numeric_streams import NumericStreams
from monitor.core.settings import DetectorSettings

TEST = EvidenceTest(min_events=200, min_effect=0.5, max_p_value=0.001, resolve_ratio=0.5)
WARMUP = 300


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=1, max_size=8), min_size=1, max_size=6), st.data())
def test_first_rises_is_the_first_false_to_true_step_of_each_run(runs: list[list[bool]], data: st.DataObject) -> None:
    before = data.draw(st.lists(st.booleans(), min_size=len(runs), max_size=len(runs)))
    flags = np.array([f for run in runs for f in run], dtype=bool)
    starts = np.cumsum([0] + [len(r) for r in runs[:-1]]).astype(np.int64)
    got = first_rises(flags, np.array(before, dtype=bool), starts, np.array([len(r) for r in runs]))
    want = []
    for r, run in enumerate(runs):
        previous, found = before[r], -1
        for k, flag in enumerate(run):
            if flag and not previous:
                found = int(starts[r]) + k
                break
            previous = flag
        want.append(found)
    assert got.tolist() == want


def _values(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two streams interleaved: one shifts by 1 sd a third of the way in and back at two thirds, one does not."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, 2, n)
    x = rng.normal(10.0, 2.0, n)
    shifted = (stream == 0) & (np.arange(n) >= n // 3) & (np.arange(n) < 2 * n // 3)
    x[shifted] += 2.0
    return x, np.arange(n, dtype=np.float64), stream


def _feed(x: np.ndarray, t: np.ndarray, s: np.ndarray, cuts: list[int]) -> tuple[NumericStreams, list[tuple]]:
    """The values fed in batches ending at ``cuts``; every point found, in order, with the batch it came in."""
    block = NumericStreams(DetectorSettings(warmup_events=WARMUP, chunk=16, adwin_chunk=32))
    for k in range(2):
        block.add_stream((f"x{k}", "", ""))
    found: list[tuple] = []
    lo = 0
    for hi in [*cuts, x.size]:
        if hi <= lo:
            continue
        order = np.argsort(s[lo:hi], kind="stable")
        block.update(x[lo:hi][order], t[lo:hi][order], s[lo:hi][order], test=TEST)
        for i, (fire, clear) in sorted(block.detectors.points.items()):
            found += [(i, which, p) for which, p in (("fire", fire), ("clear", clear)) if p is not None]
        lo = hi
    return block, found


def _first_fires(points: list[tuple]) -> dict[int, tuple]:
    """Each stream's first fire point, field by field (where its alert opens)."""
    out: dict[int, tuple] = {}
    for i, which, p in points:
        if which == "fire" and i not in out:
            out[i] = tuple(getattr(p, f) for f in EvidencePoint.__dataclass_fields__)
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.lists(st.integers(1, 3999), max_size=12))
def test_the_same_values_give_the_same_fire_points_at_any_batch_cut(seed: int, cuts: list[int]) -> None:
    """Each stream's first fire point, and every stream's statistics since its change point, to the last bit.
    (A batch holds one judgement per stream: when a stream's evidence fires and then clears within one batch,
    the clear is judged at a later batch's end, so later points can differ.)"""
    x, t, s = _values(seed)
    whole_block, whole = _feed(x, t, s, [])
    cut_block, cut = _feed(x, t, s, sorted(set(cuts)))
    assert 0 in _first_fires(whole)  # the shifted stream's evidence fires
    assert _first_fires(cut) == _first_fires(whole)
    d, e = cut_block.detectors, whole_block.detectors
    for name in ("since_n", "since_sum", "since_z", "since_z2", "change_seq", "change_time"):
        assert np.array_equal(getattr(d, name), getattr(e, name), equal_nan=True), name


def test_a_fire_point_is_the_first_chunk_end_where_the_judgement_on_complete_chunks_fires() -> None:
    """Fed one value per batch, the evidence judged at each batch's end (complete chunks only) first meets the
    drift judgement's firing condition exactly where, and with what, one batch's fire point says."""
    x, t, s = _values(3)
    whole, points = _feed(x, t, s, [])
    point = next(p for i, which, p in points if i == 0 and which == "fire")
    block = NumericStreams(DetectorSettings(warmup_events=WARMUP, chunk=16, adwin_chunk=32))
    for k in range(2):
        block.add_stream((f"x{k}", "", ""))
    first = None
    for k in range(x.size):
        block.update(x[k : k + 1], t[k : k + 1], s[k : k + 1])
        if s[k] != 0 or block.detectors.size == 0:
            continue
        ev = block.judged_evidence(0)
        d = block.detectors
        n, zsum, z2 = (np.array([float(v)]) for v in (d.since_n[0], d.since_z[0], d._z2()[0]))
        fire = bool(verdicts(n, zsum, z2, np.array([ev.detected]), TEST, 16.0)[0][0])
        judged = ev.detected and ev.events >= TEST.min_events and ev.p_value is not None
        judged = judged and ev.p_value < TEST.max_p_value and ev.effect >= TEST.min_effect
        assert fire == judged  # the points' test is the drift judgement's
        if fire:
            first = (k, ev)
            break
    assert first is not None
    k, ev = first
    assert point.time == t[k]
    at = whole.judged_evidence(0, point)
    assert (at.events, at.change_seq, at.detector, at.change_time) == (
        ev.events,
        ev.change_seq,
        ev.detector,
        ev.change_time,
    )
    assert (at.effect, at.p_value, at.current, at.baseline) == (ev.effect, ev.p_value, ev.current, ev.baseline)
