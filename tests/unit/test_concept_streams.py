"""Concept drift on river's drift generators and on stationary accurate models (a small `make peers`).

The full run (100,000 predictions per stream, more generators, gradual changes) is ``python -m
benchmarks.concept``; these are the same functions on shorter streams.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from benchmarks.concept import SCENARIOS, run
from monitor.config import load_config
from monitor.core.concept import ErrorStream, ErrorTest
from monitor.core.engine import PartitionEngine

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
            orjson.dumps({"prediction_id": f"p{base + i}", "model": "m", "features": {},
                          "prediction": float(score[i]), "timestamp": T0 + base + i})
            for i in range(n)
        ]
        labels = [
            orjson.dumps({"prediction_id": f"p{base + i}", "label": int(y[i]), "timestamp": T0 + base + i + 300})
            for i in range(n)
        ]
        alerts += eng.process_predictions(preds, [T0] * n).alerts
        alerts += eng.process_labels(labels, [T0] * n).alerts
    label_based = [a.key for a in alerts if a.kind in ("concept_drift", "performance", "retrain_recommended")]
    assert label_based == []
    assert eng.joiner.counts["joined"] == 200_000


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
