"""The traffic generator draws its categories without ``Generator.choice``, from the same random stream."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.simulate import COUNTRY_WEIGHTS, DEVICE_WEIGHTS, choice_bounds, pick

weights = st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=8).map(lambda w: tuple(x / sum(w) for x in w))


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(0, 2**32 - 1))
def test_pick_draws_what_choice_draws_and_leaves_the_stream_where_choice_leaves_it(p, seed):
    by_choice, by_pick = np.random.default_rng(seed), np.random.default_rng(seed)
    bounds = choice_bounds(p)
    assert [int(by_choice.choice(len(p), p=p)) for _ in range(300)] == [pick(by_pick, bounds) for _ in range(300)]
    assert by_choice.random() == by_pick.random()  # the same number of draws taken


def test_the_generators_own_weights_pick_as_a_vector_of_choices():
    for p in (COUNTRY_WEIGHTS, DEVICE_WEIGHTS):
        bounds = choice_bounds(p)
        by_pick = np.random.default_rng(3)
        assert [pick(by_pick, bounds) for _ in range(20_000)] == np.random.default_rng(3).choice(
            len(p), size=20_000, p=p
        ).tolist()
