"""Per-batch stream summaries merge exactly: any split of a stream into batches (or partitions) gives the same
summary as the whole, and a summary survives JSON."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.summaries import (
    ALL,
    CategoricalSummary,
    Membership,
    Moments,
    NumericSummary,
    from_plain,
    stack_edges,
    to_plain,
)

SUBJECTS = ("x", "y")
EDGES = stack_edges([np.array([-1.0, 0.0, 1.0]), np.array([2.0])])
COUNTRIES = ["de", "fr", "sg", None]
DEVICES = ["ios", "android", "web", None]


def _batch(seed: int, n: int) -> tuple[np.ndarray, list[str | None], dict[str, list[str | None]]]:
    """Two numeric subjects (rows x 2, some missing), a categorical one, and a segment attribute."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.5, (n, 2)) + np.array([0.0, 2.0])
    x[rng.random((n, 2)) < 0.1] = np.nan
    device = [DEVICES[i] for i in rng.integers(0, 4, n).tolist()]
    country = [COUNTRIES[i] for i in rng.integers(0, 4, n).tolist()]
    return x, device, {"country": country}


def _numeric_equal(a: NumericSummary, b: NumericSummary) -> None:
    order = [b.streams.index(s) for s in a.streams]
    assert sorted(a.streams) == sorted(b.streams) and a.subjects == b.subjects
    for name in a.subjects:
        (ca, ma, mo_a, ba), (cb, mb, mo_b, bb) = a.subject(name), b.subject(name)
        assert ca.tolist() == cb[order].tolist()
        assert ma.tolist() == mb[order].tolist()
        assert ba.tolist() == bb[order].tolist()
        assert mo_a.n.tolist() == mo_b.n[order].tolist()
        np.testing.assert_allclose(mo_a.mean, mo_b.mean[order], atol=1e-9)
        np.testing.assert_allclose(mo_a.m2, mo_b.m2[order], rtol=1e-9, atol=1e-9)
        assert mo_a.minimum.tolist() == mo_b.minimum[order].tolist()
        assert mo_a.maximum.tolist() == mo_b.maximum[order].tolist()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.lists(st.integers(0, 400), max_size=6), st.integers(0, 10_000))
def test_any_split_merges_to_the_summary_of_the_whole(n, cuts, seed):
    x, device, segments = _batch(seed, n)
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    whole_m = Membership.of(n, segments)
    whole_num = NumericSummary.of(SUBJECTS, x, whole_m, EDGES)
    whole_cat = CategoricalSummary.of(device, whole_m)
    num = cat = None
    for lo, hi in itertools.pairwise(bounds):
        part = Membership.of(hi - lo, {k: v[lo:hi] for k, v in segments.items()})
        p_num, p_cat = NumericSummary.of(SUBJECTS, x[lo:hi], part, EDGES), CategoricalSummary.of(device[lo:hi], part)
        num = p_num if num is None else num.merge(p_num)
        cat = p_cat if cat is None else cat.merge(p_cat)
    assert num is not None and cat is not None
    _numeric_equal(num, whole_num)
    for stream in whole_cat.streams:
        for category in whole_cat.categories:
            expect = whole_cat.counts[whole_cat.streams.index(stream), whole_cat.categories.index(category)]
            got = cat.counts[cat.streams.index(stream), cat.categories.index(category)]
            assert got == expect


def test_merge_is_associative_and_order_free_across_partitions():
    parts = []
    for seed in range(3):
        x, _, segments = _batch(seed, 300)
        parts.append(NumericSummary.of(SUBJECTS, x, Membership.of(300, segments), EDGES))
    a, b, c = parts
    _numeric_equal(a.merge(b).merge(c), a.merge(b.merge(c)))
    _numeric_equal(a.merge(b).merge(c), c.merge(a).merge(b))


def test_all_traffic_is_every_row_and_segments_only_rows_that_carry_them():
    m = Membership.of(5, {"country": ["de", None, "de", "fr", None], "plan": [None] * 5})
    x = np.array([[1.0, 2.0, np.nan, 4.0, 5.0], [np.nan] * 5]).T
    s = NumericSummary.of(SUBJECTS, x, m, EDGES)
    count, missing, moments, bins = s.subject("x")
    by = dict(zip(s.streams, zip(count.tolist(), missing.tolist(), moments.n.tolist(), strict=True), strict=True))
    assert by == {ALL: (5, 1, 4), ("country", "de"): (2, 1, 1), ("country", "fr"): (1, 0, 1)}
    assert bins[s.streams.index(ALL)].tolist() == [0, 0, 1, 3]  # 1.0 sits in (0, 1]; 2, 4, 5 above 1
    assert s.subject("y")[1].tolist() == [5, 2, 1]  # y is missing on every row


def test_moments_match_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, 1000)
    m = Moments.of(x, np.zeros(1000, dtype=np.int64), 1)
    assert m.mean[0] == pytest.approx(x.mean())
    assert m.variance()[0] == pytest.approx(x.var(ddof=1))
    assert (m.minimum[0], m.maximum[0]) == (x.min(), x.max())


def test_summaries_survive_json():
    x, device, segments = _batch(9, 200)
    m = Membership.of(200, segments)
    for summary in (NumericSummary.of(SUBJECTS, x, m, EDGES), CategoricalSummary.of(device, m)):
        back = from_plain(orjson.loads(orjson.dumps(to_plain(summary))))
        assert to_plain(back) == to_plain(summary)
    empty = NumericSummary.of(SUBJECTS, np.full((3, 2), np.nan), Membership.of(3, {}), EDGES)
    assert to_plain(from_plain(orjson.loads(orjson.dumps(to_plain(empty))))) == to_plain(empty)


def test_summaries_with_different_edges_refuse_to_merge():
    m = Membership.of(3, {})
    x = np.ones((3, 2))
    a = NumericSummary.of(SUBJECTS, x, m, EDGES)
    b = NumericSummary.of(SUBJECTS, x, m, EDGES + 1)
    with pytest.raises(ValueError, match="bin edges"):
        a.merge(b)
