"""Streams added together (a batch that brings many new segment values) are the streams added one by one."""

from __future__ import annotations

from typing import Any

import numpy as np

import monitor.core.engine  # noqa: F401  (registers the engine's classes for snapshots)
from monitor.core import snapshot as snap
from monitor.core.numeric_streams import NumericStreams
from monitor.core.settings import DetectorSettings
from monitor.core.significance import Reference
from monitor.core.windows import NumericWindows

WARMUP = 120


def _table() -> NumericStreams:
    windows = NumericWindows(window=100, baseline_events=150, bins=10, numeric_test="ks", exact_p_below=1.0)
    return NumericStreams(DetectorSettings(warmup_events=WARMUP), windows)


def _references(n: int) -> list[Reference | None]:
    """Every third stream with a baseline profile's reference (its detectors scaled from the start)."""
    rng = np.random.default_rng(3)
    return [Reference.numeric(rng.normal(k, 1.0 + k / 10, 2_000), 10) if k % 3 == 1 else None for k in range(n)]


def _state(table: NumericStreams) -> Any:
    return snap.encode(table)


def _feed(table: NumericStreams, seed: int, n: int) -> list[tuple[int, int]]:
    """Values for every stream (uneven shares), grouped by stream; the closed windows (stream, seq)."""
    rng = np.random.default_rng(seed)
    stream = np.sort(rng.choice(table.size, size=n, p=np.arange(1, table.size + 1) / sum(range(1, table.size + 1))))
    values = rng.normal(stream.astype(float), 1.0)
    closed = table.update(values, np.arange(n, dtype=np.float64), stream, np.arange(n))
    return list(zip(closed.stream.tolist(), closed.seq.tolist(), strict=True))


def test_streams_added_together_hold_and_learn_what_streams_added_one_by_one_do() -> None:
    """Two tables, one growing by whole groups of streams and one by one stream at a time, with profile
    references among them and streams added after the first updates: the same state after each step (the
    snapshot's plain data, every array and the warm-ups), the same windows closed, the same evidence."""
    refs = _references(17)
    together, alone = _table(), _table()
    keys = [(f"x{k % 4}", "segment", f"s{k}") for k in range(17)]
    for lo, hi in ((0, 5), (5, 6), (6, 16), (16, 17)):
        scaled = together.detectors.size
        got = together.add_streams(keys[lo:hi], refs[lo:hi])
        want = [alone.add_stream(key, ref) for key, ref in zip(keys[lo:hi], refs[lo:hi], strict=True)]
        assert got == want == list(range(lo, hi))
        assert _state(together) == _state(alone)
        for k in range(lo, hi):  # a profile's stream is scaled at once; any other shares its window test's warm-up
            if refs[k] is None:
                assert k in together.warm and together.warm[k] is None
            else:
                assert k not in together.warm and together.detectors.mean[k] == refs[k].mean
        # the detectors' arrays reach the last scaled stream only (a stream in its warm-up is not there yet)
        assert together.detectors.size == max([scaled] + [k + 1 for k in range(lo, hi) if refs[k] is not None])
        for seed in range(3):  # warm-ups ending, windows closing, chunks for the detectors
            assert _feed(together, 10 * hi + seed, 1_500) == _feed(alone, 10 * hi + seed, 1_500)
            assert _state(together) == _state(alone)
    assert together.detectors.size == alone.detectors.size == 17
    assert [together.evidence(i) for i in range(17)] == [alone.evidence(i) for i in range(17)]
    assert not together.warm  # every warm-up over: the test covered streams finishing theirs together


def test_no_streams_added_changes_nothing() -> None:
    table = _table()
    before = _state(table)
    assert table.add_streams([], []) == []
    assert _state(table) == before
