"""The event clock's order statistics: numpy's median and percentile, to the bit, without their overhead."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.core.event_clock import RECENT, median, percentile

_VALUES = st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=60)


def _same(got: float, want: float) -> bool:
    """Equal to the bit: the same number and sign (a NaN from inf - inf on both sides)."""
    if math.isnan(want):
        return math.isnan(got)
    return got == want and math.copysign(1.0, got) == math.copysign(1.0, want)


@settings(max_examples=3000, deadline=None)
@given(values=_VALUES, q=st.sampled_from([90.0, 50.0, 0.0, 100.0, 33.3, 99.9]))
@example(values=[-0.0], q=90.0)
@example(values=[-0.0, -0.0], q=50.0)
@example(values=[-0.0, 5.0, -0.0], q=10.0)
@example(values=[-math.inf, math.inf], q=90.0)
@example(values=[math.inf], q=90.0)
@example(values=[0.0, -0.0, 0.0, 0.0, -0.0], q=90.0)
@example(values=[-0.0, 0.0, -0.0, 0.0], q=50.0)
def test_median_and_percentile_equal_numpys_to_the_bit(values, q):
    """Signed zeros, infinities, ties and one or two values included."""
    a = np.array(values)
    with np.errstate(all="ignore"):  # (numpy's own interpolation warns on inf - inf)
        want = float(np.median(a)), float(np.percentile(a, q))
    assert _same(median(a), want[0])
    assert _same(percentile(a, q), want[1])
    assert a.tolist() == values  # the input is left as it was


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(RECENT - 3, RECENT + 1))
def test_on_a_full_history_of_batch_samples(seed, n):
    """As many samples as the clock keeps, of event times with repeats."""
    a = np.round(np.random.default_rng(seed).normal(1.7e9, 3600.0, n), 1)
    assert _same(median(a), float(np.median(a)))
    assert _same(percentile(a, 90.0), float(np.percentile(a, 90.0)))
