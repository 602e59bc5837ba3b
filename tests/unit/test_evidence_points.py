"""Judging points: where in a batch a numeric stream's sequential evidence is judged. The same values give the
same chunks, with the same evidence to the last bit, however they are cut into batches; a stream is judged at
the first chunk where its alert's lifecycle moves, so its alert opens, starts to clear and resolves at the
same chunks at any batch cut."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.core.alerting import AlertLifecycle
from monitor.core.evidence_points import EvidencePoint, verdicts
from monitor.core.numeric_streams import NumericStreams
from monitor.core.settings import AlertConfig, DetectorSettings
from tests.unit.compiled import compiled

TEST = AlertConfig(min_events=200, min_effect_size=0.5, max_p_value=0.001, resolve_ratio=0.5)
WARMUP = 300


def _moment(lc: AlertLifecycle, key: str) -> tuple:
    incident = lc.open.get(key)
    return (incident is not None, None if incident is None else incident.clear_since)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=12),
    st.sampled_from(["closed", "open", "clearing", "cooling"]),
    st.integers(0, 4),
)
def test_first_change_is_the_first_evaluation_that_moves_the_lifecycle(
    flags: list[tuple[bool, bool]], start: str, step: int
) -> None:
    lc = AlertLifecycle(resolve_after_s=3.0, cooldown_s=4.0, resolve_after_events=20, cooldown_events=30)
    if start != "closed":
        lc.evaluate("k", fire=True, clear=False, now=0.0, incident_seq=1, position=0)
    if start in ("clearing", "cooling"):
        lc.evaluate("k", fire=False, clear=True, now=1.0, incident_seq=1, position=10)
    if start == "cooling":
        lc.evaluate("k", fire=False, clear=True, now=5.0, incident_seq=1, position=40)
    times = 2.0 + np.arange(len(flags)) * (0.5 + step)
    positions = 16 * np.arange(1, len(flags) + 1) + 8 * step
    fire = np.array([f for f, _ in flags])
    clear = np.array([c for _, c in flags])
    got = lc.first_change("k", fire, clear, times, positions)
    want = None
    for k in range(len(flags)):  # the lifecycle evaluated entry by entry, on a copy
        trial = copy.deepcopy(lc)
        before = _moment(trial, "k")
        trial.evaluate("k", fire=bool(fire[k]), clear=bool(clear[k]), now=float(times[k]), incident_seq=2,
                       position=int(positions[k]))  # fmt: skip
        if _moment(trial, "k") != before:
            want = k
            break
    assert got == want


@settings(max_examples=400, deadline=None)
@example(chunks=13, mean_z=0.5, extra=1.0, detected=True)  # effect and values enough, p about 0.02: no fire
@example(chunks=13, mean_z=-0.6, extra=0.0, detected=True)
@example(chunks=13, mean_z=0.1, extra=0.5, detected=False)
@given(
    chunks=st.integers(1, 40),
    mean_z=st.floats(-2.0, 2.0),
    extra=st.floats(0.0, 3.0),
    detected=st.booleans(),
)
def test_the_chunks_verdicts_are_the_drift_judgements(chunks: int, mean_z: float, extra: float, detected: bool) -> None:
    """Whether a chunk fires and clears is what the drift judgement decides on the same evidence: effect,
    values, and the p-value to the last bit (the two read one z-test)."""
    block = NumericStreams(DetectorSettings(warmup_events=WARMUP, chunk=16, adwin_chunk=32))
    block.add_stream(("x", "", ""))
    n = 16 * chunks
    zsum, z2 = mean_z * n, n * (mean_z**2 + extra)
    point = EvidencePoint(n, 10.0 * n, zsum, z2, 1.0, n, "adwin" if detected else "", 16, 0.5)
    fire, clear = verdicts(np.array([float(n)]), np.array([zsum]), np.array([z2]), np.array([detected]), TEST, 16.0)
    ev = block.judged_evidence(0, point)
    assert ev.p_value is not None
    enough = ev.events >= TEST.min_events
    assert bool(fire[0]) == (
        ev.detected and enough and ev.p_value < TEST.max_p_value and ev.effect >= TEST.min_effect_size
    )
    assert bool(clear[0]) == (enough and ev.effect < TEST.min_effect_size * TEST.resolve_ratio)


def _values(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two streams interleaved: one shifts by 1 sd a third of the way in and back at two thirds, one does not."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, 2, n)
    x = rng.normal(10.0, 2.0, n)
    shifted = (stream == 0) & (np.arange(n) >= n // 3) & (np.arange(n) < 2 * n // 3)
    x[shifted] += 2.0
    return x, np.arange(n, dtype=np.float64), stream


def _feed(x: np.ndarray, t: np.ndarray, s: np.ndarray, cuts: list[int]) -> tuple[NumericStreams, list[tuple]]:
    """The values fed in batches ending at ``cuts``, each stream's alert lifecycle moved on its sequential
    verdicts as the drift judgement moves it (every move at its own chunk); the moves: (stream, status, point)."""
    block = NumericStreams(DetectorSettings(warmup_events=WARMUP, chunk=16, adwin_chunk=32))
    for k in range(2):
        block.add_stream((f"x{k}", "", ""))
    lc = AlertLifecycle(resolve_after_s=150.0, cooldown_s=300.0, resolve_after_events=100, cooldown_events=400)
    moves: list[tuple] = []
    lo = 0
    for hi in [*cuts, x.size]:
        if hi <= lo:
            continue
        order = np.argsort(s[lo:hi], kind="stable")
        block.update(x[lo:hi][order], t[lo:hi][order], s[lo:hi][order], test=TEST)
        for i in range(2):
            found = block.chunks_of(i)
            if found is None:
                continue
            trail, chunks = found
            at = chunks.start
            while at < chunks.stop:
                where = slice(at, chunks.stop)
                key = f"x{i}"
                k = lc.first_change(key, trail.fire[where], trail.clear[where], trail.time[where], trail.seq[where])
                if k is None:
                    break
                p = trail.point(at + k)
                before = _moment(lc, key)
                moved = lc.evaluate(key, fire=bool(trail.fire[at + k]), clear=bool(trail.clear[at + k]), now=p.time,
                                    incident_seq=p.change_seq, position=p.position)  # fmt: skip
                assert _moment(lc, key) != before  # first_change said it would move
                moves.append((i, moved.status if moved else "clearing" if lc.open[key].clear_since else "back", p))
                at += k + 1
        lo = hi
    return block, moves


def _fields(moves: list[tuple]) -> list[tuple]:
    return [(i, status, *(getattr(p, f) for f in EvidencePoint.__dataclass_fields__)) for i, status, p in moves]


@compiled  # (the pure-Python chunk sums add a chunk's pieces in another order: equal to the last bits only)
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.lists(st.integers(1, 3999), max_size=12))
def test_the_same_values_move_the_alerts_at_the_same_chunks_at_any_batch_cut(seed: int, cuts: list[int]) -> None:
    """Each move of each stream's alert (open, start clearing, resolve) at the same chunk with the same evidence,
    and every stream's statistics since its change point, to the last bit."""
    x, t, s = _values(seed)
    whole_block, whole = _feed(x, t, s, [])
    cut_block, cut = _feed(x, t, s, sorted(set(cuts)))
    assert [(i, status) for i, status, _ in whole][:1] == [(0, "firing")]  # the shifted stream's alert opens
    assert any(i == 0 and status == "resolved" for i, status, _ in whole)  # and resolves after the shift ends
    assert repr(_fields(cut)) == repr(_fields(whole))  # (repr: NaN change times of no change point equal too)
    d, e = cut_block.detectors, whole_block.detectors
    for name in ("since_n", "since_sum", "since_z", "since_z2", "change_seq", "change_time"):
        assert np.array_equal(getattr(d, name), getattr(e, name), equal_nan=True), name


@compiled
def test_a_fire_point_is_the_first_chunk_end_where_the_judgement_on_complete_chunks_fires() -> None:
    """Fed one value per batch, the evidence judged at each batch's end (complete chunks only) first meets the
    drift judgement's firing condition exactly where, and with what, one batch's first fire says."""
    x, t, s = _values(3)
    whole, moves = _feed(x, t, s, [])
    point = next(p for i, status, p in moves if i == 0 and status == "firing")
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
        judged = judged and ev.p_value < TEST.max_p_value and ev.effect >= TEST.min_effect_size
        assert fire == judged  # the chunks' verdict is the drift judgement's
        if fire:
            first = (k, ev)
            break
    assert first is not None
    k, ev = first
    assert point.time == t[k] and point.position == block.position(0)
    at = whole.judged_evidence(0, point)
    assert (at.events, at.change_seq, at.detector, at.change_time) == (
        ev.events,
        ev.change_seq,
        ev.detector,
        ev.change_time,
    )
    assert (at.effect, at.p_value, at.current, at.baseline) == (ev.effect, ev.p_value, ev.current, ev.baseline)
