"""Detectors: equal to river's on the same streams, batch-size invariant, quiet when nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
from river import drift

from monitor.core.detectors import ChunkedADWIN, PageHinkley, WindowedChiSquare, compare_categories


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


@pytest.mark.parametrize("seed", range(40))
def test_chi_square_windows_tested_together_match_one_window_at_a_time(seed):
    """The windows a batch closes are tested in one 2-D pass: each result is the one-window test's (up to the
    last bits of a sum), at whatever batch cuts, missing values, unused codes and one-code windows included."""
    rng = np.random.default_rng(seed)
    codes_n, window = int(rng.integers(1, 12)), int(rng.integers(2, 60))
    det = WindowedChiSquare(codes_n, window)
    reference, counts, filled, seen = None, np.zeros(codes_n, dtype=np.int64), 0, 0
    for _ in range(6):
        codes = rng.integers(-1, codes_n, int(rng.integers(0, 300)))
        if rng.random() < 0.3:
            codes = np.minimum(codes, 1)  # a batch of at most two codes: most columns unused
        got = det.update_many(codes)
        want = []
        for i, c in enumerate(codes[codes >= 0].tolist()):
            counts[c] += 1
            filled += 1
            if filled == window:
                if reference is None:
                    reference = counts.copy()
                else:
                    want.append(compare_categories(reference, counts, i))
                counts, filled = np.zeros(codes_n, dtype=np.int64), 0
        seen += len(want)
        assert [g.position for g in got] == [w.position for w in want]
        for g, w in zip(got, want, strict=True):
            assert g.distance == pytest.approx(w.distance, rel=1e-12, abs=1e-15)
            assert g.chi2 == pytest.approx(w.chi2, rel=1e-10, abs=1e-12)
            assert g.p_value == pytest.approx(w.p_value, rel=1e-8, abs=1e-300)
            assert g.reference.tolist() == w.reference.tolist() and g.current.tolist() == w.current.tolist()
        assert det.filled == filled and det._counts.tolist() == counts.tolist()
    assert seen > 0  # (every seed closes windows: the comparison was made)


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
