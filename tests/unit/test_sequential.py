"""ADWIN and Page-Hinkley on chunks of every stream at once: as early as the per-value trackers (within a
chunk or two), the same at any batch size, and the same for a stream alone or among others."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from monitor.config import DetectorSettings
from monitor.core.chunks import StreamChunker
from monitor.core.drift import NumericDriftTracker
from monitor.core.sequential import SequentialSettings, SequentialStreams

WARMUP = 500
CHUNK = 32


def _stream(seed: int, shift_at: int | None, n: int = 6000, shift: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    if shift_at is not None:
        x[shift_at:] += shift * 2
    return x


def _run(values: list[np.ndarray], cuts: list[int]) -> list[tuple[int, str, int]]:
    """Streams interleaved row by row, fed in batches cut at ``cuts``; scale from each stream's warm-up."""
    seq = SequentialStreams(SequentialSettings(chunk=CHUNK, adwin_chunks=1))
    chunker = StreamChunker(CHUNK)
    for s, v in enumerate(values):
        seq.set_scale(s, float(v[:WARMUP].mean()), float(v[:WARMUP].std(ddof=1)))
    rest = [v[WARMUP:] for v in values]
    n = max(r.size for r in rest)
    rows = [(i, s) for i in range(n) for s in range(len(rest)) if i < rest[s].size]
    x = np.array([rest[s][i] for i, s in rows])
    stream = np.array([s for _, s in rows])
    times = np.arange(x.size, dtype=np.float64)
    out = []
    bounds = sorted({0, x.size, *(c % (x.size + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        out += [(c.stream, c.detector, c.seq) for c in seq.update(chunker.add(x[lo:hi], times[lo:hi], stream[lo:hi]))]
    return sorted(out)


def _tracker_first(values: np.ndarray) -> int | None:
    """The per-value tracker's first detection, as a position after its warm-up."""
    t = NumericDriftTracker(DetectorSettings(warmup_events=WARMUP, adwin_chunk=CHUNK))
    rng = np.random.default_rng(0)
    for k in range(0, values.size, 250):
        t.update(values[k : k + 250], np.arange(k, min(k + 250, values.size), dtype=np.float64), rng=rng)
        if t.evidence().detected:
            return t.change_seq - WARMUP
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shift_is_caught_as_early_as_by_the_per_value_tracker(seed):
    x = _stream(seed, shift_at=3000)
    changes = _run([x], [])
    assert changes, "no detection"
    first = min(seq for _, _, seq in changes)
    expected = _tracker_first(x)
    assert expected is not None
    assert first >= 3000 - WARMUP  # nothing before the shift
    assert abs(first - expected) <= 2 * CHUNK, (first, expected)


def test_no_detection_on_a_stationary_stream():
    assert _run([_stream(s, None, n=20_000) for s in range(4)], []) == []


def test_batches_and_neighbours_do_not_change_the_detections():
    streams = [_stream(1, 3000), _stream(2, None), _stream(3, 2000, n=5000, shift=-1.5)]
    together = _run(streams, [])
    assert together == _run(streams, [7, 300, 3333, 9000, 12000])
    alone = sorted((s, d, q) for s, v in enumerate(streams) for (_, d, q) in _run([v], [100, 4000]))
    assert together == alone


def test_effect_since_the_change_reads_in_standard_deviations():
    seq = SequentialStreams(SequentialSettings(chunk=CHUNK, adwin_chunks=1))
    chunker = StreamChunker(CHUNK)
    x = _stream(5, shift_at=3000)
    seq.set_scale(0, float(x[:WARMUP].mean()), float(x[:WARMUP].std(ddof=1)))
    rest = x[WARMUP:]
    seq.update(chunker.add(rest, np.arange(rest.size, dtype=np.float64), np.zeros(rest.size, dtype=np.int64)))
    effect, n, p = seq.effect()
    assert 0.8 < effect[0] < 1.2 and n[0] > 1000 and p[0] < 1e-9


def test_detections_in_one_batch_follow_a_reset_window_as_value_by_value() -> None:
    """ADWIN's updates of a batch run through one map; after a detection the stream's later updates in the batch
    go to the fresh window, as fed one chunk at a time."""
    x = _stream(7, None, n=16_000)
    for at, shift in ((3000, 3.0), (6000, -3.0), (9000, 4.0), (12000, -2.0)):
        x[at:] += shift
    streams = [x, _stream(8, None, n=16_000), _stream(9, 4000, n=16_000, shift=-2.0)]
    whole = _run(streams, [])
    one_chunk_at_a_time = _run(streams, list(range(0, 3 * 16_000, CHUNK * 3)))
    assert whole == one_chunk_at_a_time
    assert sum(1 for s, d, _ in whole if s == 0 and d == "adwin") >= 3  # several detections of a stream in one batch


@pytest.mark.parametrize(("sd", "expected"), [(1.0, 1.0), (3.0, 3.0), (0.5, 1.0)])
def test_the_effects_z_test_divides_by_the_spread_of_the_values_since_the_change(sd, expected):
    """A heavy tail spreads far wider after its warm-up than in it: a z-test that took the spread as 1 read its
    bursts as changes with p-values of 1e-20 (seen from outside on a stationary Pareto feature). The spread is
    never taken below the reference's own 1, so a calm stream is tested as before."""
    rng = np.random.default_rng(4)
    quiet = SequentialSettings(chunk=CHUNK, adwin_chunks=1, adwin_delta=1e-12, page_hinkley_threshold=1e12)
    seq = SequentialStreams(quiet)  # no change point: every value since the scale counts
    seq.set_scale(0, 10.0, 2.0)
    chunker = StreamChunker(CHUNK)
    x = rng.normal(10.0 + 0.4, 2.0 * sd, 64_000)
    seq.update(chunker.add(x, np.arange(x.size, dtype=np.float64), np.zeros(x.size, dtype=np.int64)))
    assert seq.spread()[0] == pytest.approx(expected, rel=0.05)
    effect, n, p = seq.effect()
    assert p[0] == pytest.approx(math.erfc(effect[0] * math.sqrt(n[0]) / math.sqrt(2) / seq.spread()[0]))
