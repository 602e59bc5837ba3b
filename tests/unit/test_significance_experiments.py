"""The documented figures hold: false alarms across 1,000+ stationary streams, detection delays per detector.

These run the same functions as `make significance` (benchmarks/significance.py), which writes
docs/significance.md. The 1,000,000-event experiment is marked ``significance``: `make test` leaves it to
`make significance` (pytest -m significance) and runs the same checks on 200,000 events.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.significance import (
    CATEGORICAL_DETECTORS,
    DETECTORS,
    FalseAlarmResult,
    detection_delay,
    false_alarms,
    report,
    sequential_false_alarm_rates,
)


def _stays_within_the_false_discovery_rate(fa: FalseAlarmResult, events: int, tests: int, rounds: int) -> None:
    assert fa.events >= events and fa.streams >= 1_000
    assert fa.window_tests > tests and fa.rounds >= rounds
    # nothing changed, so any discovery is false: Benjamini-Hochberg keeps the rounds with one at or below q
    assert fa.round_error_rate <= fa.fdr
    # alerts need the effect size too: false drift alerts stay within the rate (expected: none at all)
    assert fa.drift_alerts <= fa.fdr * fa.rounds * 0.1
    assert fa.quality_alerts == 0
    # the contrast: testing each stream alone at the same level flags far more
    assert fa.uncorrected > 10 * max(fa.discoveries, 1)
    # the sequential detectors' raw false triggers are rare at the default thresholds
    assert fa.triggers_per_million("adwin") < 5 and fa.triggers_per_million("page_hinkley") < 5
    text = report(fa, [], "make significance")
    assert f"{fa.streams:,}" in text and "rounds with any discovery" in text


@pytest.mark.significance
@pytest.mark.timeout(1200)
def test_a_million_stationary_events_over_1000_streams_stay_within_the_false_discovery_rate() -> None:
    """The documented experiment (about 2 minutes): `make significance` runs it, `make test` the smaller one."""
    fa = false_alarms(events=1_000_000, features=10, segments=100)
    _stays_within_the_false_discovery_rate(fa, events=1_000_000, tests=10_000, rounds=200)


def test_200k_stationary_events_over_1000_streams_stay_within_the_false_discovery_rate() -> None:
    """The same streams and checks on a fifth of the events: every stream past its baseline, ~200 FDR rounds."""
    fa = false_alarms(events=200_000, features=10, segments=100)
    _stays_within_the_false_discovery_rate(fa, events=200_000, tests=2_000, rounds=150)


@pytest.mark.parametrize("segment", [False, True], ids=["all traffic", "one segment"])
def test_a_half_sd_mean_shift_is_detected_by_every_numeric_detector(segment: bool) -> None:
    d = detection_delay("numeric", 0.5, segment=segment, seeds=1, after=30_000)
    for name in DETECTORS:
        assert math.isfinite(d.median(name)), f"{name} missed a 0.5 sd shift ({d.where})"
    assert d.median("alert") <= 1_500  # in events of the affected stream
    assert d.median("page_hinkley") <= d.median("adwin")  # a persistent mean shift: PH's strength


def test_larger_shifts_are_detected_sooner() -> None:
    small, large = (detection_delay("numeric", s, seeds=1) for s in (0.25, 1.0))
    assert large.median("alert") < small.median("alert")
    assert large.median("adwin") < small.median("adwin")


def test_a_category_share_shift_is_detected() -> None:
    d = detection_delay("categorical", 0.2, seeds=1)
    for name in ("chi2_window", "js", "alert"):
        assert math.isfinite(d.median(name)), f"{name} missed the share shift"
    assert set(d.delays) >= set(CATEGORICAL_DETECTORS)


def test_among_real_changes_the_false_discovery_proportion_stays_within_the_rate() -> None:
    mixed = false_alarms(events=200_000, features=10, segments=100, seed=1, shifted=10)
    assert mixed.streams >= 1_000
    assert mixed.true_alerts >= 10  # every shifted region is found (one alert each)
    assert mixed.false_discovery_proportion <= mixed.fdr
    text = report(mixed, [], "make significance", mixed)
    assert "false discovery proportion" in text


def test_the_sequential_thresholds_map_to_false_alarm_rates() -> None:
    rates = sequential_false_alarm_rates(events=300_000)
    ph = rates["page_hinkley"]
    assert ph[10.0] > ph[20.0] >= ph[50.0]  # a higher threshold, fewer false triggers
    assert ph[10.0] > 100  # a low threshold really does trigger on noise: the measurement can see it
    assert ph[50.0] < 5 and rates["adwin"][0.002] < 5  # the defaults: rare raw triggers
