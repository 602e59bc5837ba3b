"""All traffic's categorical window split by segment: which segment's rows account for a change."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core import snapshot as snap
from monitor.core.drift import CategoricalDriftTracker
from monitor.core.local_change import WindowBreakdown, local_change
from monitor.core.settings import DetectorSettings
from monitor.core.snapshot_classes import register_snapshot_classes

SETTINGS = DetectorSettings(warmup_events=300, categorical_window=300)
SHARES = (0.5, 0.2, 0.2, 0.1)  # four segment values


def _run(
    changed: dict[int, int], batch: int, seed: int = 0, n: int = 6_000
) -> tuple[CategoricalDriftTracker, WindowBreakdown, dict[int, CategoricalDriftTracker]]:
    """Rows of 3 categories in segments 0-3; from row 3,000 each segment in ``changed`` sends only that category.
    All traffic's tracker and breakdown, and each segment's tracker, fed ``batch`` rows at a time."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(4, size=n, p=SHARES)
    codes = rng.choice(3, size=n, p=(0.6, 0.3, 0.1))
    for s, code in changed.items():
        codes[(np.arange(n) >= 3_000) & (segment == s)] = code
    times = np.arange(n, dtype=np.float64)
    whole = CategoricalDriftTracker(SETTINGS, 3)
    parts = {s: CategoricalDriftTracker(SETTINGS, 3) for s in range(4)}
    breakdown = WindowBreakdown(3)
    for lo in range(0, n, batch):
        c, t, g = codes[lo : lo + batch], times[lo : lo + batch], segment[lo : lo + batch]
        rows, ends = whole.update(c, t)
        breakdown.add(c, rows, ends, g, t)
        for s, tracker in parts.items():
            tracker.update(c[g == s], t[g == s])
    return whole, breakdown, parts


def _found(whole, breakdown, parts):  # type: ignore[no-untyped-def]
    out = local_change(whole, breakdown, parts, ["a", "b", "c"], alpha=0.001, min_distance=0.1, ratio=1.75)
    return None if out is None else (out[0], round(out[1].effect, 2), out[1].events)


@pytest.mark.parametrize("batch", [1, 37, 300, 6_000])
def test_the_breakdown_is_all_traffics_window_split_by_segment(batch: int) -> None:
    whole, breakdown, _ = _run({3: 2}, batch)
    assert breakdown.closed is not None and breakdown.closed_time == whole.last_time
    closed = breakdown.closed.sum(axis=0)
    assert closed.sum() == SETTINGS.categorical_window
    assert np.allclose(closed / closed.sum(), whole.last.current)
    assert breakdown.open.sum() == (6_000 - 300) % 300  # the window still filling


@pytest.mark.parametrize("batch", [1, 300, 6_000])
def test_a_change_in_one_segment_is_told_from_all_traffics_window(batch: int) -> None:
    found = _found(*_run({3: 2}, batch))
    assert found is not None and found[0] == 3 and found[1] > 0.8 and 10 < found[2] < 60


def test_changes_in_two_segments_are_not_one_segments() -> None:
    assert _found(*_run({3: 2, 1: 2}, 300)) is None


def test_a_change_everywhere_is_not_one_segments() -> None:
    assert _found(*_run({0: 2, 1: 2, 2: 2, 3: 2}, 300)) is None


def test_no_change_is_none_and_a_snapshot_keeps_the_breakdown() -> None:
    whole, breakdown, parts = _run({}, 300)
    assert _found(whole, breakdown, parts) is None
    register_snapshot_classes()
    restored = snap.loads(snap.dumps(breakdown))
    assert np.array_equal(restored.open, breakdown.open) and np.array_equal(restored.closed, breakdown.closed)
    assert restored.closed_time == breakdown.closed_time
