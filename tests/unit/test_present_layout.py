"""Sparse batches (events carrying a few of many optional features) laid out by their present values only
(numeric_streams.present_layout) give the numeric table what the full layout's NaN gave it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import monitor.core.engine  # noqa: F401  (registers the engine's classes for snapshots)
from monitor.core import snapshot as snap
from monitor.core.numeric_streams import NumericStreams, present_layout, stream_layout
from monitor.core.settings import DetectorSettings
from monitor.core.windows import NumericWindows


def _table() -> NumericStreams:
    windows = NumericWindows(window=60, baseline_events=80, bins=10, numeric_test="ks", exact_p_below=1.0)
    return NumericStreams(DetectorSettings(warmup_events=70), windows)


def _batch(rng: np.random.Generator, subjects: int, rows: int, share: float) -> tuple[Any, ...]:
    matrix = np.where(rng.random((subjects, rows)) < share, rng.normal(0, 1, (subjects, rows)), np.nan)
    buckets = [np.arange(rows), *(np.flatnonzero(rng.random(rows) < 0.4) for _ in range(2))]
    lengths = np.array([b.size for b in buckets], dtype=np.int64)
    grouped = np.concatenate(buckets)
    times = np.repeat(np.arange(rows, dtype=np.float64), 1)[grouped]
    positions = grouped.astype(np.int64)
    return matrix, grouped, lengths, times, positions


@pytest.mark.parametrize("share", [0.0, 0.05, 0.3, 1.0])
def test_present_layout_is_the_full_layout_without_its_nan(share: float) -> None:
    rng = np.random.default_rng(int(share * 100))
    matrix, grouped, lengths, times, positions = _batch(rng, 5, 40, share)
    ids = np.arange(15, dtype=np.int64).reshape(5, 3)
    full = stream_layout(matrix, grouped, ids, lengths, times, positions)
    *part, (streams, counts) = present_layout(matrix, grouped, ids, lengths, times, positions)
    kept = ~np.isnan(full[0])
    for got, want in zip(part, full, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want[kept].tolist()
    missing = np.bincount(full[1][~kept], minlength=15)
    assert dict(zip(streams.tolist(), counts.tolist(), strict=True)) == {s: int(c) for s, c in enumerate(missing) if c}
    assert present_layout(matrix, None, ids[:, :1], lengths[:1], times[:40], positions[:40])[1].size == int(
        np.count_nonzero(~np.isnan(matrix))
    )


def test_a_table_fed_present_values_holds_what_one_fed_nan_does() -> None:
    """Batch after batch, warm-ups, references, windows and detectors: the same snapshot, the same windows."""
    rng = np.random.default_rng(11)
    full, sparse = _table(), _table()
    for table in (full, sparse):
        table.add_streams([(f"x{f}", "b", str(b)) for f in range(6) for b in range(3)], [None] * 18)
    ids = np.arange(18, dtype=np.int64).reshape(6, 3)
    closed = 0
    for k in range(25):
        matrix, grouped, lengths, times, positions = _batch(rng, 6, 200, 0.1 if k % 5 else 0.0)
        matrix[2] = np.where(np.isnan(matrix[2]), np.nan, matrix[2] + (3.0 if k > 15 else 0.0))  # a shift
        times, positions = times + 200 * k, positions + 200 * k
        v, s, t, p = stream_layout(matrix, grouped, ids, lengths, times, positions)
        a = full.update(v, t, s, p)
        v, s, t, p, missing = present_layout(matrix, grouped, ids, lengths, times, positions)
        b = sparse.update(v, t, s, p, missing=missing)
        assert a.stream.tolist() == b.stream.tolist() and a.seq.tolist() == b.seq.tolist()
        closed += len(a.stream)
        assert snap.encode(full) == snap.encode(sparse), k
    assert int(full.missing.sum()) > 0 and int(full.n.min()) > 0 and closed > 0
