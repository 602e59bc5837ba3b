"""The traffic generator draws its categories without ``Generator.choice``, from the same random stream."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.simulate import (
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DEVICE_WEIGHTS,
    DEVICES,
    GENDERS,
    PLAN_WEIGHTS,
    PLANS,
    TrafficGenerator,
    choice_bounds,
    pick,
)  # fmt: skip

weights = (
    st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), min_size=1, max_size=8)
    .filter(lambda w: sum(w) > 0)  # a category of weight 0 is never drawn, by either
    .map(lambda w: tuple(x / sum(w) for x in w))
)


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


def _reference_events(seed: int, n: int) -> list[dict]:
    """The generator's events as it drew them with ``Generator.choice`` and ``np.clip`` (the oracle)."""
    r, out = np.random.default_rng(seed), []
    income = {"US": 5200.0, "DE": 4700.0, "IN": 1500.0, "BR": 1900.0, "SG": 4100.0, "JP": 4300.0}
    for _ in range(n):
        country = COUNTRIES[int(r.choice(6, p=COUNTRY_WEIGHTS))]
        gender = GENDERS[int(r.integers(0, 2))]
        age = float(np.clip(r.normal(41, 12), 18, 90))
        money = float(income[country] * r.lognormal(0, 0.25))
        rest = [float(r.gamma(2.0, 12.0)), int(r.poisson(6)), float(r.gamma(3.0, 15.0)), float(r.exponential(4.0))]
        device, plan = DEVICES[int(r.choice(3, p=DEVICE_WEIGHTS))], PLANS[int(r.choice(3, p=PLAN_WEIGHTS))]
        latency = float(r.gamma(2.0, 6.0))
        out.append((country, gender, age, money, *rest, device, plan, latency))
    return out


def test_the_generator_gives_the_events_it_gave_when_it_drew_with_choice():
    for seed in (0, 7):
        events = list(TrafficGenerator(seed=seed).predictions(3000))
        got = [
            (e["segments"]["country"], e["segments"]["gender"], *e["features"].values(), e["latency_ms"])
            for e in events
        ]
        assert got == _reference_events(seed, 3000)
