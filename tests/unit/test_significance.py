"""Window statistics agree with scipy on the same data; references, window tests and BH rounds behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.spatial import distance

from monitor.core.false_discovery import FalseDiscoveryControl, benjamini_hochberg
from monitor.core.significance import BaselineWindowTest, ClosedWindows, Reference, WindowResult
from monitor.core.window_statistics import (
    PSI_EPSILON,
    chi_square,
    exact_ks_p,
    js_distance,
    ks_samples,
    ks_two_sample,
    psi,
)

FAST = settings(max_examples=100, deadline=None)


@st.composite
def count_pairs(draw: st.DrawFn, min_bins: int = 1, max_bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors over the same bins, each with at least one event (zero bins allowed)."""
    k = draw(st.integers(min_bins, max_bins))
    counts = st.lists(st.integers(0, 60), min_size=k, max_size=k).filter(lambda c: sum(c) > 0)
    return np.array(draw(counts), dtype=np.int64), np.array(draw(counts), dtype=np.int64)


def _floored_shares(counts: np.ndarray) -> np.ndarray:
    return np.maximum(counts / counts.sum(), PSI_EPSILON)


def _result(p_value: float) -> WindowResult:
    return WindowResult(1, 0.0, 10, 10, 0.0, 0.0, 0.0, p_value, "ks", {}, {})


# --- PSI -----------------------------------------------------------------------------------------


@FAST
@given(count_pairs())
def test_psi_equals_symmetric_relative_entropy_from_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    r, c = _floored_shares(ref), _floored_shares(cur)
    expected = float(np.sum(special.rel_entr(c, r) + special.rel_entr(r, c)))
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert psi(ref, cur) >= 0.0
    assert psi(ref, cur) == pytest.approx(psi(cur, ref), rel=1e-12, abs=1e-15)


def test_psi_seeded_vectors_with_zero_bins_and_known_value() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        ref = rng.integers(0, 40, 10)
        cur = rng.integers(0, 40, 10)
        ref[rng.integers(0, 10)] = 0
        cur[rng.integers(0, 10)] = 0
        r, c = _floored_shares(ref), _floored_shares(cur)
        expected = float(np.sum(special.rel_entr(c, r) + special.rel_entr(r, c)))
        assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    # hand value: 0.3 ln(1.6) + 0.3 ln(2.5) (shares, not counts, so the scale does not matter)
    assert psi(np.array([50, 50]), np.array([800, 200])) == pytest.approx(0.3 * math.log(1.6) + 0.3 * math.log(2.5))
    assert psi(np.array([3, 0, 7]), np.array([30, 0, 70])) == 0.0
    # an empty reference bin counts as PSI_EPSILON, not zero: finite and large
    assert psi(np.array([1, 0]), np.array([1, 1])) == pytest.approx(
        (0.5 - 1.0) * math.log(0.5) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    )


# --- Jensen-Shannon ------------------------------------------------------------------------------


@FAST
@given(count_pairs())
def test_js_distance_equals_scipy_jensenshannon_base_2(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    expected = float(distance.jensenshannon(ref, cur, base=2))
    assert js_distance(ref, cur) == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= js_distance(ref, cur) <= 1.0


def test_js_distance_identical_is_zero_and_disjoint_is_one() -> None:
    assert js_distance(np.array([3, 0, 5]), np.array([6, 0, 10])) == 0.0
    assert js_distance(np.array([3, 0, 5, 0]), np.array([0, 4, 0, 9])) == pytest.approx(1.0, abs=1e-15)
    rng = np.random.default_rng(3)
    for _ in range(30):
        ref, cur = rng.integers(0, 100, 8), rng.integers(0, 100, 8)
        cur[0] = 0
        assert js_distance(ref, cur) == pytest.approx(float(distance.jensenshannon(ref, cur, base=2)), abs=1e-12)


# --- Kolmogorov-Smirnov ---------------------------------------------------------------------------


def _assert_ks_matches(got: tuple[float, float], a: np.ndarray, b: np.ndarray) -> None:
    expected = stats.ks_2samp(a, b, method="asymp")
    assert got[0] == pytest.approx(float(expected.statistic), rel=1e-9, abs=1e-15)
    assert got[1] == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2", "shift"), [(50, 80, 0.0), (300, 120, 0.3), (1000, 997, 0.05), (7, 400, 1.0)])
def test_ks_samples_equals_scipy_on_continuous_data(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 * 1000 + n2)
    a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    _assert_ks_matches(ks_samples(a, b), a, b)
    _assert_ks_matches(ks_samples(b, a), b, a)


@pytest.mark.parametrize(("n1", "n2", "high"), [(200, 150, 5), (40, 900, 3), (500, 500, 20)])
def test_ks_samples_equals_scipy_on_data_with_ties(n1: int, n2: int, high: int) -> None:
    rng = np.random.default_rng(high)
    a, b = rng.integers(0, high, n1).astype(float), rng.integers(0, high + 1, n2).astype(float)
    _assert_ks_matches(ks_samples(a, b), a, b)


@FAST
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=60),
    st.lists(st.integers(-5, 5), min_size=1, max_size=60),
)
def test_ks_samples_equals_scipy_on_small_integer_samples(a: list[int], b: list[int]) -> None:
    # one value against one value rounds the effective size m n / (m + n) = 0.5 to 0: the asymptotic
    # p-value is undefined there (scipy gives nan too); the config keeps windows at 50 events or more
    assume(len(a) * len(b) > 1)
    _assert_ks_matches(ks_samples(np.array(a, dtype=float), np.array(b, dtype=float)), np.array(a), np.array(b))


@FAST
@given(count_pairs())
def test_ks_on_bin_counts_equals_scipy_on_values_at_the_bins(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    assume(ref.sum() * cur.sum() > 1)  # one event against one: p undefined (see above)
    a = np.repeat(np.arange(ref.size), ref).astype(float)
    b = np.repeat(np.arange(cur.size), cur).astype(float)
    _assert_ks_matches(ks_two_sample(ref, cur), a, b)


@FAST
@given(pair=count_pairs(max_bins=20))
@example(pair=(np.array([1]), np.array([1])))  # one value a side: no effective size, NaN on both sides
def test_an_exact_ks_p_value_of_counts_is_scipys_for_the_same_fraction(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """Windows whose statistics are the same fraction of their sizes get the same p-value, whichever rounding their
    cumulative shares took (the cache's key), and it is scipy's exact one for that statistic."""
    ref, cur = pair
    m, n = float(ref.sum()), float(cur.sum())
    d = float(np.max(np.abs(np.cumsum(ref / m) - np.cumsum(cur / n))))
    apart = round(d * m * n)
    en = round(m * n / (m + n))
    with np.errstate(divide="ignore"):  # (scipy's NaN for one value a side: en 0)
        want = float(np.clip(stats.kstwo.sf(apart / (m * n), en), 0.0, 1.0))
        np.testing.assert_equal(exact_ks_p(d, m, n), want)
        # the last bit of a share's rounding changes nothing
        np.testing.assert_equal(exact_ks_p(math.nextafter(d, 1.0), m, n), want)
        np.testing.assert_equal(exact_ks_p(d, int(m), int(n)), want)  # counts given as ints
    # counts that are not whole make no fraction of m * n: scipy on the statistic as given
    whole = round((m + 0.5) * n / (m + 0.5 + n))
    np.testing.assert_equal(exact_ks_p(d + 1e-4, m + 0.5, n), float(np.clip(stats.kstwo.sf(d + 1e-4, whole), 0.0, 1.0)))
    assert exact_ks_p(d, 0.0, n) == exact_ks_p(d, m, 0.0) == 1.0  # an empty side is no evidence


def test_ks_two_sample_with_an_empty_side_is_no_evidence() -> None:
    assert ks_two_sample(np.array([0, 0, 0]), np.array([1, 2, 3])) == (0.0, 1.0)
    assert ks_two_sample(np.array([1, 2, 3]), np.array([0, 0, 0])) == (0.0, 1.0)


# --- chi-square -----------------------------------------------------------------------------------


@FAST
@given(count_pairs(min_bins=2))
def test_chi_square_equals_scipy_chi2_contingency(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    got = chi_square(ref, cur)
    if table.shape[1] < 2:
        assert got == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table, correction=False)
    assert got[0] == pytest.approx(float(expected.statistic), rel=1e-9, abs=1e-12)
    assert got[1] == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)


def test_chi_square_seeded_categories_with_zero_columns() -> None:
    rng = np.random.default_rng(11)
    for _ in range(40):
        ref, cur = rng.integers(0, 200, 9), rng.integers(0, 200, 9)
        ref[2] = cur[2] = 0  # a column empty on both sides is dropped, not a degree of freedom
        ref[5] = 0  # a category only the current window has
        table = np.vstack([ref, cur])[:, (ref + cur) > 0]
        expected = stats.chi2_contingency(table, correction=False)
        stat, p = chi_square(ref, cur)
        assert stat == pytest.approx(float(expected.statistic), rel=1e-9)
        assert p == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)
        assert expected.dof == 7


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([10, 0, 0], [5, 0, 0]),  # one non-empty bin
        ([0, 0, 0], [1, 2, 3]),  # empty reference
        ([4, 5, 6], [0, 0, 0]),  # empty window
        ([0, 7], [0, 3]),
    ],
)
def test_chi_square_degenerate_cases_are_no_evidence(ref: list[int], cur: list[int]) -> None:
    assert chi_square(np.array(ref), np.array(cur)) == (0.0, 1.0)


# --- Benjamini-Hochberg ---------------------------------------------------------------------------


def _assert_bh_matches(p: np.ndarray, q: float) -> None:
    rejected, adjusted = benjamini_hochberg(p, q)
    expected = stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(adjusted, expected, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(rejected, expected <= q)
    # the step-up rule itself: reject the k smallest, k the largest rank with p_(k) <= k q / m
    order = np.sort(p)
    passing = np.nonzero(order <= np.arange(1, p.size + 1) * q / p.size)[0]
    k = int(passing[-1]) + 1 if passing.size else 0
    assert int(rejected.sum()) == k
    if k:
        assert p[rejected].max() <= order[k - 1]


@pytest.mark.parametrize("size", [1, 2, 5, 37, 1000])
@pytest.mark.parametrize("q", [0.01, 0.05, 0.2])
def test_benjamini_hochberg_equals_scipy(size: int, q: float) -> None:
    rng = np.random.default_rng(size)
    for _ in range(20):
        signals = rng.random(size) < 0.3
        p = np.where(signals, rng.random(size) * 1e-3, rng.random(size))
        _assert_bh_matches(p, q)


def test_benjamini_hochberg_with_ties() -> None:
    rng = np.random.default_rng(5)
    for size in (3, 10, 200):
        for _ in range(20):
            p = rng.choice(np.array([1e-4, 0.001, 0.01, 0.02, 0.04, 0.3, 1.0]), size)
            _assert_bh_matches(p, 0.05)
            rejected, adjusted = benjamini_hochberg(p, 0.05)
            for value in np.unique(p):  # equal p-values get equal decisions
                assert np.unique(adjusted[p == value]).size == 1
                assert np.unique(rejected[p == value]).size == 1


@FAST
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50), st.sampled_from([0.01, 0.05, 0.1]))
def test_benjamini_hochberg_equals_scipy_on_any_p_values(p: list[float], q: float) -> None:
    _assert_bh_matches(np.array(p), q)


def test_benjamini_hochberg_empty() -> None:
    rejected, adjusted = benjamini_hochberg(np.zeros(0), 0.05)
    assert rejected.size == 0 and adjusted.size == 0


# --- Reference ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bins", [4, 10, 20])
def test_numeric_reference_quantile_bins_have_roughly_equal_counts(bins: int) -> None:
    values = np.random.default_rng(bins).lognormal(0, 1, 5000)
    ref = Reference.numeric(values, bins)
    assert ref.counts.size == bins and ref.edges.size == bins - 1
    assert ref.events == values.size
    assert np.all(np.diff(ref.edges) > 0)
    assert np.all(np.abs(ref.counts - values.size / bins) <= 2)
    np.testing.assert_array_equal(ref.counts, np.bincount(ref.bin(values), minlength=bins))
    assert ref.mean == pytest.approx(values.mean())
    assert ref.std == pytest.approx(values.std(ddof=1))
    assert (ref.minimum, ref.maximum) == (values.min(), values.max())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("distinct", [2, 3, 5, 7])
def test_numeric_reference_on_discrete_data_has_one_bin_per_value(seed: int, distinct: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, distinct, 1000).astype(float) * 2.5
    ref = Reference.numeric(values, 10)
    assert ref.counts.size == distinct
    assert np.all(ref.counts > 0), ref.counts  # no bin a value can never land in, last bin included
    np.testing.assert_array_equal(ref.counts, np.unique(values, return_counts=True)[1])


def test_numeric_reference_on_exactly_balanced_discrete_data() -> None:
    # quantile cuts fall exactly between two values here: an interpolated cut would open empty bins
    values = np.repeat(np.arange(5.0), 200)
    ref = Reference.numeric(values, 10)
    np.testing.assert_array_equal(ref.counts, [200] * 5)
    np.testing.assert_array_equal(ref.edges, [0.0, 1.0, 2.0, 3.0])


def test_numeric_reference_edge_cases() -> None:
    constant = Reference.numeric(np.full(50, 3.0), 10)
    # a constant sample: bins below, at and above its value, so a move either way shows
    assert constant.counts.tolist() == [0, 50, 0] and constant.edges.tolist()[1] == 3.0 and constant.std == 0.0
    with_nan = Reference.numeric(np.array([1.0, np.nan, 2.0, 3.0]), 2)
    assert with_nan.events == 3
    with pytest.raises(ValueError):
        Reference.numeric(np.array([np.nan]), 10)
    right_closed = Reference.numeric(np.arange(10.0), 2)
    assert right_closed.bin(right_closed.edges).tolist() == list(range(right_closed.edges.size))


def test_reference_round_trips_through_plain_data() -> None:
    num = Reference.numeric(np.random.default_rng(0).normal(5, 2, 777), 8)
    back = Reference.from_plain(num.to_plain())
    assert back.kind == "numeric"
    np.testing.assert_array_equal(back.counts, num.counts)
    np.testing.assert_array_equal(back.edges, num.edges)
    assert (back.mean, back.std, back.minimum, back.maximum) == (num.mean, num.std, num.minimum, num.maximum)
    cat = Reference.categorical(np.array([0, 2, 2, -1, 1, 2]), 4)
    assert cat.counts.tolist() == [1, 1, 3, 0]  # missing (-1) is not a category
    back_cat = Reference.from_plain(cat.to_plain())
    assert back_cat.kind == "categorical" and back_cat.counts.tolist() == [1, 1, 3, 0]


def test_reference_from_plain_with_wrong_counts_length_raises() -> None:
    plain = Reference.numeric(np.arange(100.0), 4).to_plain()
    plain["counts"] = plain["counts"][:-1]
    with pytest.raises(ValueError, match="counts"):
        Reference.from_plain(plain)
    plain["counts"] = [*plain["counts"], 1, 1]
    with pytest.raises(ValueError, match="counts"):
        Reference.from_plain(plain)


# --- BaselineWindowTest -----------------------------------------------------------------------------


def test_window_test_learns_its_reference_from_the_first_baseline_events() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 1600)
    t = BaselineWindowTest("numeric", window=500, baseline_events=1000, bins=10)
    assert t.update(values[:300], np.arange(300.0)) == []
    assert t.reference is None
    out = t.update(values[300:1200], np.arange(300.0, 1200.0))  # crosses the end of the baseline
    assert out == [] and t.seen == 1200
    expected = Reference.numeric(values[:1000], 10)
    assert t.reference is not None
    np.testing.assert_array_equal(t.reference.edges, expected.edges)
    np.testing.assert_array_equal(t.reference.counts, expected.counts)
    assert not t.from_profile
    (r,) = t.update(values[1200:], np.arange(1200.0, 1600.0))
    assert r.seq == 1500 and r.events == 500 and r.reference_events == 1000
    assert r.current["mean"] == pytest.approx(values[1000:1500].mean())
    cur = np.bincount(expected.bin(values[1000:1500]), minlength=expected.counts.size)
    assert r.psi == pytest.approx(psi(expected.counts, cur))
    assert r.js == pytest.approx(js_distance(expected.counts, cur))
    assert (r.ks, r.p_value) == pytest.approx(ks_two_sample(expected.counts, cur))


def test_window_test_on_a_stationary_stream_gives_roughly_uniform_p_values() -> None:
    # KS on 10 reference bins is conservative (the statistic is a max over 9 cut points, not a continuum):
    # about 3% of null windows fall below 0.05 rather than 5%, and the median p is near 0.75. Four
    # streams, each with its own reference, so one lucky or unlucky baseline does not decide the test.
    rng = np.random.default_rng(20240601)
    p: list[float] = []
    for _ in range(4):
        t = BaselineWindowTest("numeric", window=500, baseline_events=2000, bins=10)
        n = 2000 + 300 * 500
        results = t.update(rng.normal(10, 3, n), np.arange(float(n)))
        assert len(results) == 300 and t.tests == 300
        assert float(np.mean([r.psi for r in results])) < 0.05
        p.extend(r.p_value for r in results)
    share = float(np.mean(np.array(p) < 0.05))
    assert 0.01 <= share <= 0.10
    assert 0.05 <= float(np.mean(np.array(p) < 0.2)) <= 0.30
    assert 0.4 <= float(np.median(p)) <= 0.9


def test_window_test_detects_a_half_sd_mean_shift_in_the_first_window() -> None:
    rng = np.random.default_rng(9)
    t = BaselineWindowTest("numeric", window=500, baseline_events=2000, bins=10)
    before = t.update(rng.normal(0, 1, 3000), np.arange(3000.0))
    assert len(before) == 2
    (shifted,) = t.update(rng.normal(0.5, 1, 500), np.arange(3000.0, 3500.0))
    assert shifted.test == "ks"
    assert shifted.p_value < 1e-6
    assert shifted.psi > 0.1
    assert shifted.current["mean"] > shifted.baseline["mean"] + 0.3


def test_window_test_with_chi_square_on_numbers() -> None:
    rng = np.random.default_rng(4)
    t = BaselineWindowTest("numeric", window=500, baseline_events=1000, bins=10, numeric_test="chi2")
    t.update(rng.normal(0, 1, 1000), np.arange(1000.0))
    (r,) = t.update(rng.normal(0.5, 1, 500), np.arange(500.0))
    assert r.test == "chi2" and r.p_value < 1e-6 and r.ks is not None


def test_categorical_window_with_a_new_category_gets_large_psi_and_tiny_p() -> None:
    rng = np.random.default_rng(6)
    t = BaselineWindowTest("categorical", window=1000, baseline_events=3000, n_codes=3)
    t.update(rng.choice(3, 3000, p=[0.5, 0.3, 0.2]), np.arange(3000.0))
    (same,) = t.update(rng.choice(3, 1000, p=[0.5, 0.3, 0.2]), np.arange(1000.0))
    assert same.test == "chi2" and same.ks is None
    assert same.p_value > 1e-3 and same.psi < 0.05
    (new,) = t.update(rng.choice(4, 1000, p=[0.35, 0.2, 0.15, 0.3]), np.arange(1000.0))
    assert new.psi > 1.0
    assert new.p_value < 1e-12
    assert new.current["code"] == 3 and new.current["rose"]
    assert new.baseline["share"] == 0.0
    assert new.current["share"] == pytest.approx(0.3, abs=0.05)


def test_a_batch_crossing_several_windows_gives_one_result_per_window() -> None:
    t = BaselineWindowTest("numeric", window=100, baseline_events=200, bins=5)
    rng = np.random.default_rng(8)
    assert t.update(rng.normal(0, 1, 150), np.arange(150.0)) == []
    values = rng.normal(0, 1, 380)
    times = 1000.0 + np.arange(380.0)
    out = t.update(values, times)  # 50 finish the baseline, then 3 full windows and 30 left over
    assert [r.seq for r in out] == [300, 400, 500]
    assert [r.time for r in out] == [times[149], times[249], times[349]]
    assert all(r.events == 100 for r in out)
    assert out[1].current["mean"] == pytest.approx(values[150:250].mean())
    assert t.pending == 3 and t.seen == 530
    more = rng.normal(0, 1, 70)
    (nxt,) = t.update(more, np.arange(70.0))  # the 30 left over and 70 new ones make the next window
    assert nxt.seq == 600 and nxt.time == 69.0
    assert nxt.current["mean"] == pytest.approx((values[350:].sum() + more.sum()) / 100)
    assert t.update(np.zeros(0), np.zeros(0)) == []


def test_window_test_with_a_profile_reference_tests_from_the_first_value() -> None:
    ref = Reference.numeric(np.random.default_rng(0).normal(0, 1, 5000), 10)
    t = BaselineWindowTest("numeric", window=200, baseline_events=10_000, reference=ref)
    assert t.from_profile
    out = t.update(np.random.default_rng(1).normal(0, 1, 400), np.arange(400.0))
    assert [r.seq for r in out] == [200, 400]
    assert all(r.reference_events == 5000 for r in out)


def test_window_test_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError):
        BaselineWindowTest("text", window=10, baseline_events=10)


# --- FalseDiscoveryControl ------------------------------------------------------------------------


def test_tests_wait_for_the_round_then_are_decided_together() -> None:
    fdr = FalseDiscoveryControl(q=0.05, round_events=1000)
    results = [_result(p) for p in (1e-6, 0.02, 0.03, 0.5)]
    for i, r in enumerate(results[:2]):
        fdr.add(i, r)
    assert fdr.advance(600) == []
    for i, r in enumerate(results[2:], start=2):
        fdr.add(i, r)
    assert fdr.advance(399) == []
    assert all(r.significant is None for r in results)
    decided = fdr.advance(1)
    assert [k for k, _ in decided] == [0, 1, 2, 3]
    rejected, adjusted = benjamini_hochberg(np.array([1e-6, 0.02, 0.03, 0.5]), 0.05)
    assert [r.significant for r in results] == rejected.tolist() == [True, True, True, False]
    assert [r.adjusted_p for r in results] == pytest.approx(adjusted.tolist())
    assert (fdr.rounds, fdr.tests, fdr.discoveries) == (1, 4, 3)
    # the next round starts where this one ended
    fdr.add("x", _result(0.9))
    assert fdr.advance(999) == []
    assert len(fdr.advance(1)) == 1 and fdr.rounds == 2


def test_an_empty_round_decides_nothing() -> None:
    fdr = FalseDiscoveryControl(q=0.05, round_events=10)
    assert fdr.advance(50) == []
    assert fdr.rounds == 0
    fdr.add("a", _result(0.01))
    assert fdr.advance(9) == []  # the round restarted at 50
    assert len(fdr.advance(1)) == 1


def test_close_decides_leftovers() -> None:
    fdr = FalseDiscoveryControl(q=0.05, round_events=10_000)
    a, b = _result(1e-9), _result(0.7)
    fdr.add("a", a)
    fdr.add("b", b)
    assert fdr.advance(10) == []
    decided = fdr.close()
    assert [k for k, _ in decided] == ["a", "b"]
    assert (a.significant, b.significant) == (True, False)
    assert fdr.pending == [] and fdr.close() == []
    assert (fdr.rounds, fdr.tests, fdr.discoveries) == (1, 2, 1)


def _run_rounds(rng: np.random.Generator, nulls: int, signals: int, rounds: int, q: float) -> list[tuple[int, int]]:
    """(false, true) discoveries per round, with ``signals`` tests at p ~ 1e-8 among ``nulls`` uniform ones."""
    fdr = FalseDiscoveryControl(q=q, round_events=1000)
    out = []
    for _ in range(rounds):
        p = np.concatenate([rng.random(nulls), rng.uniform(0, 2e-8, signals)])
        for i, value in enumerate(p.tolist()):
            fdr.add(i >= nulls, _result(value))
        decided = fdr.advance(1000)
        assert len(decided) == nulls + signals
        false = sum(1 for signal, r in decided if r.significant and not signal)
        true = sum(1 for signal, r in decided if r.significant and signal)
        out.append((false, true))
    assert fdr.rounds == rounds and fdr.tests == rounds * (nulls + signals)
    return out


def test_bh_rounds_under_the_global_null_flag_anything_at_most_q_of_the_time() -> None:
    q, rounds = 0.05, 200
    per_round = _run_rounds(np.random.default_rng(42), nulls=1000, signals=0, rounds=rounds, q=q)
    any_flag = float(np.mean([false > 0 for false, _ in per_round]))
    assert any_flag <= q + 3 * math.sqrt(q * (1 - q) / rounds)


def test_bh_rounds_keep_the_false_discovery_proportion_near_q() -> None:
    q, rounds = 0.05, 200
    per_round = _run_rounds(np.random.default_rng(43), nulls=950, signals=50, rounds=rounds, q=q)
    fdp = [false / max(false + true, 1) for false, true in per_round]
    assert float(np.mean(fdp)) <= q + 0.015  # expected q * 950 / 1000 = 0.0475
    assert all(true == 50 for _, true in per_round)  # every real change is found


def test_windows_tested_together_equal_each_window_tested_alone():
    """The 2-D window tests of engine v2 give each one-window function's answer, row by row."""
    from monitor.core.window_statistics import chi_square, js_distance, ks_two_sample, psi, window_tests

    rng = np.random.default_rng(4)
    reference = rng.integers(0, 200, (40, 10))
    current = rng.integers(0, 200, (40, 10))
    current[3] = reference[3]  # identical
    current[5, :5] = 0  # half the bins empty
    current[7] = 0  # an empty window
    reference[9, 1:] = 0  # one category only
    w = window_tests(reference, current, exact_below=0.25)
    for i in range(40):
        assert w.psi[i] == pytest.approx(psi(reference[i], current[i]))
        assert w.js[i] == pytest.approx(js_distance(reference[i], current[i]), abs=1e-12)
        d, p = ks_two_sample(reference[i], current[i], exact_below=0.25)
        assert (w.ks[i], w.ks_p[i]) == pytest.approx((d, p))
        chi2, chi2_p = chi_square(reference[i], current[i])
        assert (w.chi2[i], w.chi2_p[i]) == pytest.approx((chi2, chi2_p))


@pytest.mark.parametrize("q", [0.2, 0.05, 0.01, 1e-3, 1e-6])
def test_ks_p_values_are_exact_wherever_they_can_reach_the_level(q: float) -> None:
    """Only p-values at most ``q`` can be discoveries: each of them is the exact one, and every other p-value
    (from the limiting distribution) stays above ``q``, at any window size, small ones and unequal ones
    (a fractional effective size) included."""
    from monitor.core.window_statistics import window_tests

    rng = np.random.default_rng(11)
    rows = []
    for size, ref_size in ((6, 6), (12, 12), (30, 45), (60, 60), (200, 474), (200, 1000), (1000, 1000), (5000, 2000)):
        for shift in np.linspace(0.0, 0.5, 40):
            ref = rng.multinomial(ref_size, np.full(10, 0.1))
            shares = np.clip(np.full(10, 0.1) + shift * np.linspace(-0.1, 0.1, 10) * 5, 1e-3, None)
            rows.append((ref, rng.multinomial(size, shares / shares.sum())))
    reference, current = np.array([r for r, _ in rows]), np.array([c for _, c in rows])
    exact = window_tests(reference, current).ks_p
    fast = window_tests(reference, current, exact_below=q).ks_p
    small = exact <= q
    assert 0 < small.sum() < small.size  # both sides of the level are tried
    assert np.array_equal(fast[small], exact[small])
    assert (fast[~small] > q).all()
    below = exact < 0.9  # (the limiting distribution is under the exact one only near 1, and for tiny windows)
    assert (fast[below] >= exact[below]).all()


def test_ks_critical_values_keep_every_smaller_statistic_above_the_level() -> None:
    """At the critical value, and so below it, the exact p-value is still above the level: scipy's inversion
    overshoots by a few millionths at some sizes (0.01 at 141 to 266 effective values), less than the margin."""
    from scipy import stats as sps

    from monitor.core.window_statistics import ks_critical

    for q in (0.2, 0.05, 0.01, 1e-3, 1e-4, 1e-6):
        for n in [*range(1, 60), *range(60, 400, 7), 474, 1000, 2500, 10_000, 100_000]:
            assert sps.kstwo.sf(ks_critical(q, n), n) > q, (q, n)


def test_windows_completed_together_equal_the_one_window_statistics():
    """Streams of different widths (numeric references with fewer bins, categories of different counts)
    closed in one batch and completed together: every statistic equals the one-window function's."""
    from monitor.core.significance import BaselineWindowTest, complete_windows
    from monitor.core.window_statistics import chi_square, js_distance, ks_two_sample, psi

    rng = np.random.default_rng(9)
    tests = [
        BaselineWindowTest("numeric", window=300, baseline_events=600, bins=10, exact_p_below=0.25),
        BaselineWindowTest("numeric", window=300, baseline_events=600, bins=4, exact_p_below=0.25),
        BaselineWindowTest("numeric", window=300, baseline_events=600, bins=10, numeric_test="chi2"),
        BaselineWindowTest("categorical", window=300, baseline_events=600, n_codes=3),
        BaselineWindowTest("categorical", window=300, baseline_events=600, n_codes=7),
    ]
    data = [
        np.r_[rng.normal(0, 1, 600), rng.normal(0.4, 1, 900)],
        np.r_[rng.integers(0, 3, 600), rng.integers(0, 4, 900)].astype(float),  # few distinct values: few bins
        np.r_[rng.normal(5, 2, 600), rng.normal(5, 2, 900)],
        np.r_[rng.integers(0, 3, 600), rng.integers(0, 3, 900)],
        np.r_[rng.integers(0, 5, 600), rng.integers(2, 7, 900)],
    ]
    closed = []
    for t, x in zip(tests, data, strict=True):
        closed += t.close_windows(x, np.arange(x.size, dtype=float))
    assert len(closed) == 15 and len({c.reference.size for c in closed}) >= 3
    complete_windows(closed)
    for c in closed:
        r = c.result
        assert r.psi == pytest.approx(psi(c.reference, c.counts), abs=1e-12)
        assert r.js == pytest.approx(js_distance(c.reference, c.counts), abs=1e-12)
        if c.kind == "numeric":
            d, p = ks_two_sample(c.reference, c.counts, c.exact_p_below)
            assert r.ks == pytest.approx(d, abs=1e-12)
            expected = p if r.test == "ks" else chi_square(c.reference, c.counts)[1]
            assert r.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
        else:
            assert r.p_value == pytest.approx(chi_square(c.reference, c.counts)[1], rel=1e-9, abs=1e-300)
            shares_r, shares_c = c.reference / c.reference.sum(), c.counts / c.counts.sum()
            top = int(np.argmax(np.abs(shares_c - shares_r)))
            assert (r.current["code"], r.baseline["code"]) == (top, top)
            assert r.current["distance"] == pytest.approx(0.5 * np.abs(shares_c - shares_r).sum())


def test_categorical_windows_of_one_width_completed_together_equal_each_alone():
    """Categorical windows of one vocabulary size (the usual batch) are completed in a few array operations:
    each one's largest move, its shares and its distance equal, to the bit, those of its own row alone."""
    from monitor.core.significance import BaselineWindowTest, complete_windows

    rng = np.random.default_rng(4)
    closed = []
    for k in range(6):
        t = BaselineWindowTest("categorical", window=200, baseline_events=300, n_codes=21)
        x = np.r_[rng.integers(0, 4 + k, 300), rng.integers(k % 3, 6 + k, 700)]
        closed += t.close_windows(x, np.arange(x.size, dtype=float))
    assert len(closed) == 18 and {c.counts.size for c in closed} == {21}
    complete_windows(closed)
    for c in closed:
        shares_r, shares_c = c.reference / c.reference.sum(), c.counts / c.counts.sum()
        moved = np.abs(shares_c - shares_r)
        top = int(np.argmax(moved))
        assert c.result.current == {
            "code": top, "share": float(shares_c[top]), "events": 200, "rose": bool(shares_c[top] > shares_r[top]),
            "distance": 0.5 * float(moved.sum()),
        }  # fmt: skip
        assert c.result.baseline == {"code": top, "share": float(shares_r[top]), "events": 300}


# --- a numeric table's windows as columns ----------------------------------------------------------


def _closed(streams: list[int], p_values: list[float], positions: list[int], seq_from: int = 0) -> ClosedWindows:
    n = len(streams)
    rng = np.random.default_rng(len(streams))
    closed = ClosedWindows(
        np.array(streams), np.arange(seq_from, seq_from + n) * 10 + 10, np.array(positions), rng.random(n),
        rng.random(n), rng.random(n), rng.random(n), rng.random(n), np.array(p_values), rng.random(n),
        np.full(n, 500), rng.random(n), rng.random(n) + 1, 10, "ks",
    )  # fmt: skip
    closed.label("m", "v1", [("x", "", ""), ("x", "segment", "a"), ("y", "", "")])
    return closed


def test_table_windows_are_decided_with_the_tests_added_alone_as_one_family() -> None:
    """A table's windows and tests added one by one form one Benjamini-Hochberg family per round: the verdicts
    are those of every test added alone."""
    rng = np.random.default_rng(7)
    streams = rng.integers(0, 3, 40).tolist()
    p = np.where(rng.random(40) < 0.2, rng.uniform(0, 1e-4, 40), rng.random(40)).tolist()
    positions = sorted(rng.integers(0, 3000, 40).tolist())
    together, alone = FalseDiscoveryControl(0.05, 1000), FalseDiscoveryControl(0.05, 1000)
    closed = _closed(streams, p, positions)
    singles = [_result(v) for v in (1e-5, 0.3, 0.04)]
    for k, r in enumerate(singles):
        r.position = 500 + 1000 * k
        together.add(("m", "v1", "c", "", ""), r)
    together.add_windows(closed)
    for k in range(len(closed)):
        alone.add(closed.key(k), closed.result(k))
    for r in singles:
        alone.add(("m", "v1", "c", "", ""), WindowResult(**{**r.__dict__}))
    got, want = together.advance(3000), alone.advance(3000)
    assert (together.rounds, together.tests, together.discoveries) == (alone.rounds, alone.tests, alone.discoveries)
    assert together.discoveries > 0 and together.waiting == alone.waiting == 0
    # rounds one after another, as advances of one round each would give them (three here)
    rounds = [r.position // 1000 for _, r in got]
    assert rounds == sorted(rounds) and len(set(rounds)) == 3
    # in each round, a stream's latest window, with its verdict, stands for all of its windows decided with it
    for number in range(3):
        for key in {closed.key(k) for k in range(len(closed)) if closed.position[k] // 1000 == number}:
            mine = [r for k, r in got if k == key and r.position // 1000 == number]
            theirs = [r for k, r in want if k == key and r.position // 1000 == number]
            assert mine[-1].seq == theirs[-1].seq and mine[-1].significant == theirs[-1].significant
            assert mine[-1].adjusted_p == pytest.approx(theirs[-1].adjusted_p)
            assert sum(r.windows for r in mine) == len(theirs)
            flagged = [r for r in theirs if r.significant]
            if flagged and not theirs[-1].significant:  # judged for the discovery among them
                assert mine[0].significant and mine[0].seq == flagged[-1].seq and mine[0].windows == 0
            else:
                assert len(mine) == 1
    assert [(k, r.significant) for k, r in got if k[2] == "c"] == [(k, r.significant) for k, r in want if k[2] == "c"]


def test_an_advance_that_closes_several_rounds_gives_what_one_advance_a_round_gives() -> None:
    """A batch may close several rounds: each stream's windows are decided round by round, as batches that
    each closed one round would have them decided, not collapsed to the stream's latest window of them all."""
    rng = np.random.default_rng(11)
    streams = rng.integers(0, 3, 60).tolist()
    p = np.where(rng.random(60) < 0.3, rng.uniform(0, 1e-6, 60), rng.random(60)).tolist()
    positions = sorted(rng.integers(0, 4000, 60).tolist())
    at_once, one_by_one = FalseDiscoveryControl(0.05, 1000), FalseDiscoveryControl(0.05, 1000)
    at_once.add_windows(_closed(streams, p, positions))
    one_by_one.add_windows(_closed(streams, p, positions))
    got = at_once.advance(4000)
    want = [item for _ in range(4) for item in one_by_one.advance(1000)]
    assert len(want) > len({k for k, _ in want})  # some stream has windows in several rounds
    assert [(k, r.seq, r.significant, r.windows, r.adjusted_p) for k, r in got] == [
        (k, r.seq, r.significant, r.windows, r.adjusted_p) for k, r in want
    ]


def test_table_windows_wait_for_their_round_across_a_snapshot() -> None:
    from monitor.core import snapshot as snap
    from monitor.core.snapshot_classes import register_snapshot_classes

    register_snapshot_classes()
    fdr = FalseDiscoveryControl(0.05, 100)
    fdr.add_windows(_closed([0, 1, 0, 2], [1e-9, 0.5, 0.4, 1e-8], [10, 50, 150, 180]))
    first = fdr.advance(120)  # the first round is decided; its second half waits
    assert [(k[2:], r.windows) for k, r in first] == [(("x", "", ""), 0), (("x", "", ""), 1)] or [
        (k[2:], r.windows) for k, r in first
    ] == [(("x", "", ""), 1), (("x", "segment", "a"), 1)]
    restored = snap.loads(snap.dumps(fdr))
    assert restored.waiting == fdr.waiting == 2
    later, again = fdr.advance(100), restored.advance(100)
    assert [(k, r.seq, r.significant, r.windows) for k, r in later] == [
        (k, r.seq, r.significant, r.windows) for k, r in again
    ]
    assert [k[2:] for k, _ in later] == [("x", "", ""), ("y", "", "")]


def test_a_retired_versions_table_windows_count_in_their_round_and_decide_nothing() -> None:
    fdr = FalseDiscoveryControl(0.05, 100)
    fdr.add_windows(_closed([0, 1], [1e-9, 1e-9], [10, 20]))
    fdr.forget(("m", "v1"))
    assert fdr.advance(100) == [] and fdr.tests == 2 and fdr.discoveries == 2


def test_a_control_from_an_older_snapshot_takes_table_windows() -> None:
    fdr = FalseDiscoveryControl(0.05, 100)
    del fdr.__dict__["blocks"]  # as an older release's snapshot restores it
    assert fdr.waiting == 0
    fdr.add_windows(_closed([0], [1e-9], [10]))
    assert [r.significant for _, r in fdr.advance(100)] == [True]


def _samples(seed: int) -> list[np.ndarray]:
    """Warm-ups as a batch ends them: several of one size (the usual case), others alone or empty of spread;
    continuous, discrete, heavy-tailed, constant, absurd, integer and two-mode samples, some with NaN."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for k in range(40):
        n = [1_000, 1_000, 1_000, 250, 1, 2, 37][(k // 7 + k) % 7]  # (every kind at several sizes)
        kind = k % 7
        if kind == 0:
            x = rng.normal(k, 1 + k, n)
        elif kind == 1:
            x = rng.integers(0, 4, n).astype(np.float64)  # ties: a bin per value
        elif kind == 2:
            x = np.exp(rng.normal(0, 3, n))  # a heavy tail
        elif kind == 3:
            x = np.full(n, 7.5)  # constant
        elif kind == 4:
            x = rng.normal(0, 1, n) * 1e300  # spreads beyond the float limit
            x[: n // 10] = 1e308
        elif kind == 5:
            x = rng.integers(-50, 50, n)  # integers, as a restored warm-up can hold
        else:  # two modes: the median deviation, not the percentiles, sets the spread; a few values far out
            x = np.where(rng.random(n) < 0.5, 0.0, 100.0 + k) + rng.normal(0, 0.1, n)
            x[: max(1, n // 300)] = 900.0 + 10 * k
        if k % 5 == 0 and n > 3:
            x = x.astype(np.float64)
            x[::7] = np.nan
        out.append(x)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_references_learned_together_are_the_references_learned_one_by_one(seed):
    """A batch's references computed together (quantiles of warm-ups of one size in one numpy call) are each
    warm-up's own reference, bit for bit: the same edges, counts, mean, spread and extremes."""
    samples = [x for x in _samples(seed) if (~np.isnan(x.astype(np.float64))).any()]
    with np.errstate(over="ignore", invalid="ignore"):
        together = Reference.numeric_many(samples, 10)
        alone = [Reference.numeric(x, 10) for x in samples]
    assert len(together) == len(alone) == len(samples)
    for got, want in zip(together, alone, strict=True):
        for a, b in ((got.edges, want.edges), (got.counts, want.counts)):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        moments = np.array([got.mean, got.std, got.minimum, got.maximum])
        assert moments.tobytes() == np.array([want.mean, want.std, want.minimum, want.maximum]).tobytes()
    assert Reference.numeric_many([], 10) == []
    with pytest.raises(ValueError, match="at least one value"):  # as Reference.numeric: nothing to learn from
        Reference.numeric_many([np.ones(5), np.full(3, np.nan)], 10)


@pytest.mark.parametrize("seed", range(3))
def test_outlier_filters_computed_together_keep_what_each_alone_keeps(seed):
    from monitor.core.stats import without_gross_outliers, without_gross_outliers_many

    samples = [x[~np.isnan(x.astype(np.float64))] for x in _samples(seed)]
    with np.errstate(over="ignore", invalid="ignore"):
        together = without_gross_outliers_many(samples)
        alone = [without_gross_outliers(x) for x in samples]
    assert [(x.dtype, x.tobytes()) for x in together] == [(x.dtype, x.tobytes()) for x in alone]
    assert sum(x.size for x in together) < sum(x.size for x in samples)  # the absurd values went
