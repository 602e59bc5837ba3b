"""Detectors: equal to river's on the same streams, batch-size invariant, quiet when nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
from river import drift

from monitor.core.detectors import ChunkedADWIN, PageHinkley, WindowedChiSquare


def _feed_in_random_batches(det, x: np.ndarray, rng: np.random.Generator) -> list[int]:
    found, pos = [], 0
    while pos < x.size:
        size = int(rng.integers(1, 900))
        found += [pos + p for p in det.update_many(x[pos : pos + size])]
        pos += size
    return found


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("params", [{}, {"threshold": 20.0, "delta": 0.1}, {"mode": "up", "alpha": 0.99}])
def test_page_hinkley_fires_at_the_same_events_as_river(seed, params):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 3000), rng.normal(1.5, 1, 3000), rng.normal(-0.5, 2, 3000)]
    ref = drift.PageHinkley(**params)
    expected = []
    for i, v in enumerate(x):
        ref.update(v)
        if ref.drift_detected:
            expected.append(i)
    assert expected, "the reference must fire at least once for the comparison to mean something"
    assert _feed_in_random_batches(PageHinkley(**params), x, rng) == expected


@pytest.mark.parametrize("seed", range(4))
def test_adwin_with_chunk_one_is_river_adwin(seed):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 4000), rng.normal(1.0, 1, 4000)]
    ref = drift.ADWIN(delta=0.002, clock=4)
    expected = []
    for i, v in enumerate(x):
        ref.update(v)
        if ref.drift_detected:
            expected.append(i)
    assert expected
    assert _feed_in_random_batches(ChunkedADWIN(delta=0.002, chunk=1, clock=4), x, rng) == expected


def test_chunked_adwin_is_batch_invariant_and_detects_soon_after_the_change():
    rng = np.random.default_rng(11)
    x = np.r_[rng.normal(0, 1, 6000), rng.normal(0.8, 1, 6000)]
    one_batch = ChunkedADWIN(chunk=8).update_many(x)
    random_batches = _feed_in_random_batches(ChunkedADWIN(chunk=8), x, rng)
    assert one_batch == random_batches
    assert 6000 <= one_batch[0] < 6600


@pytest.mark.parametrize(
    "det",
    [lambda: ChunkedADWIN(delta=0.002, chunk=32, clock=1), lambda: PageHinkley(delta=0.25, threshold=50, alpha=1.0)],
)
def test_detectors_stay_quiet_on_a_stationary_stream(det):
    rng = np.random.default_rng(5)
    assert det().update_many(rng.normal(0, 1, 50_000)) == []


def test_chi_square_windows_flag_a_new_mix_and_not_a_stable_one():
    rng = np.random.default_rng(2)
    t = WindowedChiSquare(n_codes=4, window=500)
    stable = t.update_many(rng.choice(3, size=5000, p=[0.5, 0.3, 0.2]))
    assert len(stable) == 9 and all(r.p_value > 1e-4 for r in stable)
    shifted = t.update_many(rng.choice(3, size=500, p=[0.2, 0.3, 0.5]))
    assert len(shifted) == 1 and shifted[0].p_value < 1e-6 and shifted[0].distance > 0.2


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: PageHinkley(threshold=0), "threshold"),
        (lambda: PageHinkley(mode="sideways"), "mode"),
        (lambda: PageHinkley(alpha=1.5), "alpha"),
        (lambda: ChunkedADWIN(delta=2), "delta"),
        (lambda: ChunkedADWIN(chunk=0), "chunk"),
        (lambda: WindowedChiSquare(n_codes=0), "n_codes"),
    ],
)
def test_bad_hyperparameters_fail_at_construction_naming_them(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
