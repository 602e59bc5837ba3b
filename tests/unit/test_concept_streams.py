"""Concept drift on river's drift generators and on stationary accurate models (a small `make peers`).

The full run (100,000 predictions per stream, more generators, gradual changes) is ``python -m
benchmarks.concept``; these are the same functions on shorter streams.
"""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.concept import SCENARIOS, run
from monitor.config import load_config
from monitor.core.concept import ErrorStream, ErrorTest
from monitor.core.engine import PartitionEngine
from monitor.replay import FileSource, replay

T0 = 1_767_225_600.0
BY_NAME = {s.name: s for s in SCENARIOS}


@pytest.mark.parametrize("name", ["agrawal F0->F2 abrupt", "stagger F0->F1 abrupt", "sea 8->9.5 abrupt"])
def test_an_abrupt_change_is_caught_within_plain_adwins_delay(name, tmp_path):
    o = run(BY_NAME[name], n=24_000, change=12_000, workdir=tmp_path)
    assert o.alerts_before == 0
    assert o.adwin is not None and o.first_alert is not None, o
    assert o.first_alert <= 1.5 * o.adwin + 250, o


@pytest.mark.parametrize("name", ["stagger F0->F1 abrupt", "sea 8->9.5 abrupt"])
def test_with_30_percent_of_labels_the_change_is_still_caught(name, tmp_path):
    o = run(BY_NAME[name], n=24_000, change=12_000, label_share=0.3, workdir=tmp_path)
    assert o.alerts_before == 0 and o.first_alert is not None, o


@pytest.mark.parametrize("name", ["agrawal control", "sea control", "sea covariate shift only"])
def test_no_concept_alert_without_a_concept_change(name, tmp_path):
    o = run(BY_NAME[name], n=24_000, change=12_000, workdir=tmp_path)
    assert o.alerts_before == 0 and o.first_alert is None, o


@pytest.mark.parametrize("accuracy", [0.99, 0.95])
def test_a_stationary_accurate_model_raises_no_label_based_alert(accuracy):
    """200,000 labelled predictions of a calibrated model whose accuracy never changes."""
    eng = PartitionEngine(load_config(environ={}), clock=lambda: T0)
    rng = np.random.default_rng(int(accuracy * 100))
    alerts = []
    for step in range(100):
        n = 2000
        right = rng.random(n) < accuracy
        y = rng.integers(0, 2, n)
        confidence = np.where(right, rng.uniform(0.6, 1.0, n), rng.uniform(0.5, 0.9, n))
        score = np.where(y == 1, confidence, 1 - confidence)
        score = np.where(right, score, 1 - score)
        base = step * n
        preds = [
            orjson.dumps(
                {
                    "prediction_id": f"p{base + i}",
                    "model": "m",
                    "features": {},
                    "prediction": float(score[i]),
                    "timestamp": T0 + base + i,
                }
            )
            for i in range(n)
        ]
        labels = [
            orjson.dumps({"prediction_id": f"p{base + i}", "label": int(y[i]), "timestamp": T0 + base + i + 300})
            for i in range(n)
        ]
        alerts += eng.process_predictions(preds, [0.0] * n).alerts
        alerts += eng.process_labels(labels, [0.0] * n).alerts
    label_based = [a.key for a in alerts if a.kind in ("concept_drift", "performance", "retrain_recommended")]
    assert label_based == []
    assert eng.profile.joiner.counts["joined"] == 200_000


def test_a_model_right_on_every_early_label_still_measures_its_rise_in_rate_units():
    s = ErrorStream("binary", ErrorTest(reference_events=500, min_events=200))
    s.update(np.zeros(5000), np.arange(5000.0))
    ev = s.evidence()
    assert ev.baseline["mean"] == 0.0 and np.isfinite(ev.extra["statistic"])
    rng = np.random.default_rng(3)
    s.update((rng.random(400) < 0.02) * 1.0, np.arange(5000.0, 5400.0))  # a few errors: below min_rise
    assert s.fired is None
    hit = s.update((rng.random(2000) < 0.3) * 1.0, np.arange(5400.0, 7400.0))
    assert hit is not None and s.fired is not None and 0.2 < s.fired.current["mean"] < 0.4


@pytest.mark.parametrize("batch", [1, 37, 5000])
def test_a_model_that_degrades_within_its_reference_labels_is_still_alerted(batch):
    """95% right on its first 300 labels, then 60%: ADWIN cuts inside the reference. The reference ends there
    and what follows is tested against it; ignored, the cut was lost and no later one came (never alerted)."""
    rng = np.random.default_rng(5)
    errors = np.r_[(rng.random(300) < 0.05) * 1.0, (rng.random(6000) < 0.4) * 1.0]
    s = ErrorStream("binary", ErrorTest(reference_events=500, min_events=200))
    fired = []
    for k in range(0, errors.size, batch):
        if s.update(errors[k : k + batch], np.arange(k, min(k + batch, errors.size), dtype=float)) is not None:
            assert s.fired is not None
            fired.append(s.fired)
    assert len(fired) == 1 and 300 <= fired[0].change_seq <= 500
    assert fired[0].baseline["mean"] < 0.15 and fired[0].current["mean"] > 0.3 and fired[0].p_value < 1e-6
    # a fall in the errors within the reference (a cold start) starts it again: kept, the worse start would
    # be the level later errors are tested against, and a rise to 15% short of it would never alert
    cold = ErrorStream("binary", ErrorTest(reference_events=500, min_events=200))
    cold.update(np.r_[(rng.random(250) < 0.3) * 1.0, (rng.random(5750) < 0.05) * 1.0], np.arange(6000.0))
    assert cold.ref_n == 500 and not cold.ref_closed and cold.ref_sum / cold.ref_n < 0.1
    assert cold.update((rng.random(4000) < 0.15) * 1.0, np.arange(6000.0, 10_000.0)) is not None


@pytest.fixture(scope="module")
def recorded_change(tmp_path_factory):
    """A STAGGER stream whose concept changes half-way, recorded as prediction and label JSON lines."""
    tmp = tmp_path_factory.mktemp("stagger")
    run(BY_NAME["stagger F0->F1 abrupt"], n=5000, change=2500, workdir=tmp)
    return FileSource(tmp / "stagger-p.jsonl", tmp / "stagger-l.jsonl")


def _alerts(source: FileSource, batch_size: int) -> tuple[list[dict], dict[str, int]]:
    result = replay(load_config(environ={}), source, batch_size=batch_size, progress=False)
    alerts = [{k: v for k, v in a.to_dict().items() if k != "emitted_at"} for a in result.alerts]
    return alerts, dict(result.join)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(batch_size=1)
@example(batch_size=20_000)
@given(batch_size=st.integers(min_value=1, max_value=20_000))
def test_the_same_input_gives_the_same_alerts_at_any_batch_size(recorded_change, batch_size):
    reference = _REFERENCE.setdefault("alerts", _alerts(recorded_change, 500))
    alerts, join = _alerts(recorded_change, batch_size)
    assert any(a["kind"] == "concept_drift" and a["status"] == "firing" for a in reference[0])
    assert join == reference[1]
    assert alerts == reference[0]


_REFERENCE: dict[str, tuple[list[dict], dict[str, int]]] = {}


def test_an_error_stream_that_just_fired_snapshots_and_restores_exactly():
    from monitor.core import snapshot as snap

    s = ErrorStream("binary", ErrorTest(reference_events=300, min_events=100))
    rng = np.random.default_rng(0)
    s.update(np.zeros(2000), np.arange(2000.0))
    assert s.update((rng.random(2000) < 0.4) * 1.0, np.arange(2000.0, 4000.0)) is not None
    twin = snap.loads(snap.dumps(s))  # a checkpoint right after the firing batch
    more = (rng.random(500) < 0.1) * 1.0
    s.update(more, np.arange(4000.0, 4500.0))
    twin.update(more, np.arange(4000.0, 4500.0))
    assert twin.evidence() == s.evidence() and twin.count == s.count


def test_a_restart_at_a_fix_leaves_out_the_broken_predictions_labels_then_clears_and_fires_again():
    """A break took the errors up and was fixed at t = 3000; labels keep arriving out of prediction order (the
    broken predictions' among the later ones). After the restart, only the labels of predictions made since the
    fix count: errors back at the reference level clear, a later rise fires on its own change point; the
    restart survives a snapshot."""
    from monitor.core import snapshot as snap

    s = ErrorStream("binary", ErrorTest(reference_events=500, min_events=200))
    rng = np.random.default_rng(4)
    s.update((rng.random(2000) < 0.1) * 1.0, np.arange(2000.0))  # the model: 10% errors
    assert s.update((rng.random(1000) < 0.5) * 1.0, np.arange(2000.0, 3000.0)) is not None  # the break
    s.restart(3000.0)
    s = snap.loads(snap.dumps(s))
    late_broken = (rng.random(600) < 0.5) * 1.0, rng.uniform(2000.0, 3000.0, 600)
    fixed = (rng.random(600) < 0.1) * 1.0, np.arange(3000.0, 3600.0)
    order = rng.permutation(1200)  # labels of both kinds, mixed as their delays mix them
    values = np.concatenate([late_broken[0], fixed[0]])[order]
    times = np.concatenate([late_broken[1], fixed[1]])[order]
    assert s.update(values, times) is None
    ev = s.evidence()
    assert ev.events == 600 and ev.change_time == 3000.0 and abs(ev.extra["statistic"]) < 0.05  # cleared
    hit = s.update((rng.random(2000) < 0.4) * 1.0, np.arange(3600.0, 5600.0))  # a genuine change later
    # located at the fix at the earliest, where a fixed break no longer explains it (incidents.broken_input)
    assert hit is not None and s.fired is not None and s.fired.change_time >= 3000.0


def test_the_estimate_is_calibrated_on_labels_so_an_over_confident_model_is_not_over_estimated():
    """Scores more extreme than the truth: raw max(p, 1-p) over-estimates accuracy; CBPE's calibration does not."""
    eng = PartitionEngine(load_config(environ={}), clock=lambda: T0)
    rng = np.random.default_rng(5)
    n = 20_000
    s = rng.random(n)
    truth = 0.5 + 0.5 * (s - 0.5)  # the real probability of class 1
    y = (rng.random(n) < truth).astype(int)
    for start in range(0, n, 2000):
        idx = range(start, start + 2000)
        eng.process_predictions(
            [
                orjson.dumps(
                    {
                        "prediction_id": f"p{i}",
                        "model": "m",
                        "features": {},
                        "prediction": float(s[i]),
                        "timestamp": T0 + i,
                    }
                )
                for i in idx
            ],
            [0.0] * 2000,
        )
        eng.process_labels(
            [orjson.dumps({"prediction_id": f"p{i}", "label": int(y[i]), "timestamp": T0 + i + 1}) for i in idx],
            [0.0] * 2000,
        )
    perf = eng.models["m", "unknown"].perf
    estimate, low, high, size = perf.estimated(("", ""))
    last = slice(n - size, n)
    true_accuracy = float(np.where(s[last] >= 0.5, truth[last], 1 - truth[last]).mean())
    raw = float(np.maximum(s[last], 1 - s[last]).mean())
    assert raw - true_accuracy > 0.1  # the raw scores are far off
    # within the noise of 5,000 calibration labels in 10 bins (about 0.007 sd), where raw scores are 0.1 off
    assert abs(estimate - true_accuracy) <= 0.015 and low <= true_accuracy <= high
    assert perf.trustworthy(("", "")) is True  # checked on the 15,000 labels the calibration did not see


def _segmented_change(tmp_path, affected: tuple[str, ...]) -> list[tuple[str, str]]:
    """30,000 predictions of a 95%-accurate model over three regions; from 15,000 the labels of the affected
    regions are wrong 40% of the time. Returns the label-based alerts that fired: (key, segment)."""
    rng = np.random.default_rng(5)
    n, change = 30_000, 15_000
    region = rng.choice(["north", "south", "west"], n)
    score = rng.random(n)
    wrong = rng.random(n) < np.where((np.arange(n) >= change) & np.isin(region, affected), 0.4, 0.05)
    y = np.where(wrong, score < 0.5, score >= 0.5).astype(int)
    preds, labs = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    preds.write_bytes(b"".join(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i,
        "features": {}, "segments": {"region": str(region[i])}, "prediction": float(score[i])}) + b"\n"
        for i in range(n)))  # fmt: skip
    labs.write_bytes(b"".join(orjson.dumps({"prediction_id": f"p{i}", "label": int(y[i]), "timestamp": T0 + i + 300})
        + b"\n" for i in range(n)))  # fmt: skip
    result = replay(load_config(environ={}), FileSource(preds, labs), progress=False)
    kinds = ("concept_drift", "performance")
    return [
        (a.key, str(a.segment)) for a in result.alerts if a.status == "firing" and a.kind in kinds
        and a.subject != "estimated_accuracy"
    ]  # fmt: skip


def test_errors_rising_in_every_segment_give_one_all_traffic_alert(tmp_path):
    fired = _segmented_change(tmp_path, ("north", "south", "west"))
    assert fired == [("m/unknown/concept_drift/accuracy/all", "{}")]


def test_errors_rising_in_one_segment_give_that_segment_alert_only(tmp_path):
    fired = _segmented_change(tmp_path, ("south",))
    assert [seg for _, seg in fired] == ["{'region': 'south'}"], fired


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rates=st.lists(st.floats(0.0, 0.6), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 3999), max_size=8),
    after_fires=st.booleans(),
    reference=st.sampled_from([1, 1, 300, 600]),
    length=st.sampled_from([150, 1000]),
)
@example(seed=0, rates=[0.0, 0.6, 0.6, 0.6], cuts=[], after_fires=True, reference=600, length=150)  # fires in it
def test_the_error_stream_drives_adwin_as_rivers_own_update_does(seed, rates, cuts, after_fires, reference, length):
    """ADWIN is driven through river's compiled window (all values up to a detection in one call): after
    every batch, its window and the flag it is left with match river's ADWIN fed the same values one by one
    (``after_fires``: batches also end on the values ADWIN fires on; ``reference``: a reference learned value
    by value first), and so do the detections and change points after the reference."""
    from monitor.core import river_drift

    rng = np.random.default_rng(seed)
    values = np.concatenate([(rng.random(length) < r) * 1.0 for r in rates])  # (150: changes within a reference)
    plain = river_drift.ADWIN(delta=0.002, clock=32)
    fires, after = [], []
    for i, v in enumerate(values.tolist()):
        plain.update(v)
        if plain.drift_detected:
            fires.append(i)
        after.append((plain.width, plain.total, plain.drift_detected))
    test = ErrorTest(reference_events=reference, min_events=50, adwin_delta=0.002, adwin_clock=32)
    s = ErrorStream("binary", test)
    cuts = [*cuts, *([i + 1 for i in fires] if after_fires else [])]
    bounds = [0, *sorted({c for c in cuts if c < values.size}), values.size]
    for a, b in itertools.pairwise(bounds):
        s.update(values[a:b], np.arange(a, b, dtype=np.float64))
        assert (s.adwin.width, s.adwin.total, s.adwin.drift_detected) == after[b - 1], (a, b)
    if reference == 1:
        assert s.detections == len(fires)
        assert s.change_seq in {0, *[i + 1 for i in fires]}
