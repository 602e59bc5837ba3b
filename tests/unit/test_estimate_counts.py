"""Windows counted by code in one matrix (monitor.core.estimate_counts): the counts follow the windows' rows as
they come and go, and a window the counts do not know as it is now is counted afresh."""

from __future__ import annotations

import numpy as np

from monitor.core.estimate_counts import WindowCodeCounts
from monitor.core.metrics import Ring


def _codes(scores: np.ndarray) -> np.ndarray:
    return np.minimum((scores * 10).astype(np.int64), 9)


def _fresh(ring: Ring) -> list[int]:
    return np.bincount(_codes(ring.data[: ring.size, 0]), minlength=10).tolist()


def test_rows_that_come_and_go_are_counted_across_windows_fed_together() -> None:
    rng = np.random.default_rng(1)
    counts = WindowCodeCounts(10, _codes)
    rings = {key: Ring(capacity, 1) for key, capacity in (("a", 5), ("b", 64), ("c", 1))}
    for size in (3, 9, 0, 70, 1, 4, 200):  # within the window, past it, nothing, the same key twice
        feed = []
        for key, ring in [*rings.items(), ("a", rings["a"])]:
            values = rng.random(size)
            feed.append((key, ring, values, _codes(values)))
        counts.feed(feed)
        for key, ring in rings.items():
            assert counts.counts([(key, ring)])[0].tolist() == _fresh(ring)


def test_a_window_swapped_for_another_given_as_many_rows_is_counted_afresh() -> None:
    counts = WindowCodeCounts(10, _codes)
    first, second = Ring(5, 1), Ring(5, 1)
    values = np.array([0.05, 0.15, 0.95])
    counts.feed([("k", first, values, _codes(values))])
    second.extend(np.array([[0.55], [0.55], [0.65]]))  # as many rows given as the first had
    assert counts.counted("k", second) is None
    assert counts.counts([("k", second)])[0].tolist() == _fresh(second)


def test_a_forgotten_window_is_let_go_and_counted_afresh_if_it_comes_back() -> None:
    counts = WindowCodeCounts(10, _codes)
    ring = Ring(5, 1)
    values = np.array([0.25, 0.35])
    counts.feed([("k", ring, values, _codes(values))])
    counts.warm["k"] = np.zeros(3)
    counts.forget("k")
    assert counts.counted("k", ring) is None and "k" not in counts.warm
    assert all(r is not ring for r in counts.rings)
    assert counts.counts([("k", ring)])[0].tolist() == _fresh(ring)
