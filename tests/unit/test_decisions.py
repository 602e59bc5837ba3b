"""Retrain and rollback recommendations: raised on significant sustained evidence, never on a stationary stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from monitor.config import load_config
from monitor.core.decisions import RetrainState, compare_versions
from monitor.core.engine import PartitionEngine
from monitor.core.rules import Alert
from monitor.simulate import TrafficGenerator

T0 = 1_767_225_600.0
Event = dict[str, Any]
SCHEMA = orjson.loads(Path("monitor/schemas/alert.schema.json").read_bytes())


def _engine(**sections: Any) -> PartitionEngine:
    overrides: dict[str, Any] = {"detectors": {"warmup_events": 300}}
    overrides.update(sections)
    return PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)


def _run(
    eng: PartitionEngine,
    steps: int,
    *,
    seed: int = 2,
    version_of: Callable[[int, int], str] = lambda step, i: "v1",
    corrupt: Callable[[str], bool] = lambda version: False,
    flip_from: int | None = None,
) -> list[Alert]:
    """1,000 predictions per step with their labels; ``corrupt`` versions predict a wrong score 30% of the time."""
    gen = TrafficGenerator(seed=seed)
    rng = np.random.default_rng(seed)
    alerts: list[Alert] = []
    for step in range(steps):
        preds = list(gen.predictions(1000, start_time=T0, rate=100.0))
        labels = []
        for i, p in enumerate(preds):
            lab = gen.label_for(p)
            p["model_version"] = version_of(step, i)
            if corrupt(p["model_version"]) and rng.random() < 0.3:
                p["prediction"] = round(1 - p["prediction"], 6)
                p["scores"] = {"churn": p["prediction"], "stay": round(1 - p["prediction"], 6)}
            if lab is None:
                continue
            if flip_from is not None and step >= flip_from:
                lab["label"] = 1 - lab["label"]
            labels.append(lab)
        rng.shuffle(labels)
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    return alerts


def _decisions(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.kind, a.status, a.model_version) for a in alerts if a.kind.endswith("_recommended")]


def test_a_rollout_of_a_worse_version_raises_rollback_recommended() -> None:
    alerts = _run(_engine(), 30, version_of=lambda step, i: "v1" if step < 12 else "v2", corrupt=lambda v: v == "v2")
    assert _decisions(alerts)[:1] == [("rollback_recommended", "firing", "v2")]
    a = next(a for a in alerts if a.kind == "rollback_recommended")
    assert a.recommendation == "rollback" and a.detector == "two_proportion_z"
    assert a.baseline["version"] == "v1" and a.current["version"] == "v2"
    assert a.baseline["accuracy"] - a.current["accuracy"] == pytest.approx(a.statistic, abs=1e-6)
    assert a.statistic >= 0.03 and a.p_value < 1e-3
    assert a.message.startswith("Roll back churn from v2 to v1: v2 is right on")
    jsonschema.validate(a.to_dict(), SCHEMA)


def test_versions_served_side_by_side_are_compared_too() -> None:
    alerts = _run(
        _engine(),
        24,
        version_of=lambda step, i: "v1" if step < 4 or i % 2 else "v2",
        corrupt=lambda v: v == "v2",
    )
    assert ("rollback_recommended", "firing", "v2") in _decisions(alerts)


def test_a_rollback_recommendation_resolves_once_the_version_it_named_is_retired() -> None:
    """The previous version retires (no predictions for retire_after_s): nothing is left to roll back to, so
    the open recommendation resolves, though the new version is still worse, and the events say why."""
    eng = _engine(monitoring={"retire_after_s": 150.0})
    alerts = _run(eng, 90, version_of=lambda step, i: "v1" if step < 12 else "v2", corrupt=lambda v: v == "v2")
    rollback = [a for a in alerts if a.kind == "rollback_recommended"]
    assert [(a.status, a.model_version) for a in rollback] == [("firing", "v2"), ("resolved", "v2")]
    assert rollback[1].message == "Version v2 of churn has no earlier version left to compare with (it was retired)."
    assert rollback[1].alert_id == rollback[0].alert_id
    assert set(eng.models) == {("churn", "v2")} and eng.retired["versions"] == 1
    assert not any("/rollback_recommended/" in k for k in eng.alerting.lifecycle.open)
    for a in alerts:
        jsonschema.validate(a.to_dict(), SCHEMA)


def test_an_equally_good_new_version_raises_no_rollback() -> None:
    alerts = _run(_engine(), 30, version_of=lambda step, i: "v1" if step < 12 else "v2")
    assert _decisions(alerts) == []


def test_a_sustained_concept_drift_raises_retrain_recommended() -> None:
    alerts = _run(_engine(), 40, flip_from=20)
    decisions = _decisions(alerts)
    assert decisions[:1] == [("retrain_recommended", "firing", "v1")]
    kinds = [(x.kind, x.status) for x in alerts]
    a = next(a for a in alerts if a.kind == "retrain_recommended")
    # the concept drift alert comes first; the recommendation once it held for 3 checks of 500 labels
    assert kinds.index(("concept_drift", "firing")) < kinds.index(("retrain_recommended", "firing"))
    assert a.window["start"] <= a.window["end"]
    assert a.recommendation == "retrain" and a.current["problem_checks"] >= 3
    assert a.current["problem"] == "concept_drift:accuracy"
    assert "Retrain model churn v1: concept drift in accuracy has held for" in a.message
    jsonschema.validate(a.to_dict(), SCHEMA)


def test_drift_in_k_important_features_raises_retrain_recommended() -> None:
    eng = _engine(decisions={"important_features": ["income", "age", "tenure_months"], "retrain_drift_features": 2})
    gen = TrafficGenerator(seed=4)
    events = list(gen.predictions(8_000, start_time=T0, rate=100.0))
    for e in events[4_000:]:
        e["features"]["income"] *= 1.8
        e["features"]["age"] += 15
    alerts: list[Alert] = []
    for i in range(0, len(events), 500):
        chunk = events[i : i + 500]
        alerts += eng.process_predictions([orjson.dumps(e) for e in chunk], [0.0] * len(chunk)).alerts
    retrain = [a for a in alerts if a.kind == "retrain_recommended"]
    assert [a.status for a in retrain] == ["firing"]
    assert retrain[0].current["drifting_features"] == ["age", "income"]
    assert "2 of its important inputs drift significantly (age, income)" in retrain[0].message


def test_a_stationary_labelled_stream_raises_neither() -> None:
    alerts = _run(_engine(decisions={"retrain_drift_features": 1}), 40)
    assert _decisions(alerts) == []


def test_compare_versions_regression_uses_a_one_sided_welch_test() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 3000)
    prev = np.column_stack([y, y + rng.normal(0, 0.5, 3000)])
    new = np.column_stack([y, y + rng.normal(0, 0.8, 3000)])
    c = compare_versions("regression", prev, new)
    assert c.test == "welch_t" and c.worse_by > 0.4 and c.p_value < 1e-10
    assert compare_versions("regression", new, prev).p_value > 0.99  # better is not worse


def test_the_retrain_streak_counts_checks_and_resets() -> None:
    r = RetrainState()
    r.problem = True
    assert r.check(499, 500) is False and r.streak == 0
    assert r.check(1000, 500) is True and r.streak == 1  # two windows passed at once: still one observation
    r.problem = False
    assert r.check(1500, 500) is True and r.streak == 0


def _with_profile_accuracy(accuracy: float) -> PartitionEngine:
    from monitor.core.baseline import BaselineProfile, ProfileSet

    profile = BaselineProfile("churn", "v1", 10_000, {}, {}, metrics={"accuracy": accuracy}, source="validation.csv")
    cfg = load_config(environ={}, overrides={"detectors": {"warmup_events": 300}})
    return PartitionEngine(cfg, clock=lambda: T0, profiles=ProfileSet([profile]))


def test_live_accuracy_significantly_below_the_profiles_level_raises_a_performance_alert() -> None:
    alerts = [a for a in _run(_with_profile_accuracy(0.9), 8) if a.subject == "accuracy_vs_baseline"]
    assert [(a.kind, a.status) for a in alerts] == [("performance", "firing")]
    a = alerts[0]
    assert a.baseline["accuracy"] == 0.9 and a.current["accuracy"] < 0.8 and a.p_value < 1e-3
    assert a.message.startswith("Accuracy of model churn v1 is ") and "validation.csv" in a.message


def test_live_accuracy_at_or_above_the_profiles_level_raises_nothing() -> None:
    alerts = _run(_with_profile_accuracy(0.6), 8)
    assert [a for a in alerts if a.subject == "accuracy_vs_baseline"] == []


def test_a_retrain_recommendation_resolved_while_labels_lag_has_a_window_that_ends_after_it_starts() -> None:
    """The check is dated by its last label; its window started at the newest prediction, which runs ahead of
    the labels: every resolution seen from outside had its window start after its end."""
    eng, gen, rng = _engine(), TrafficGenerator(seed=3), np.random.default_rng(3)
    waiting: list[list[Event]] = []
    alerts: list[Alert] = []
    for step in range(90):
        preds = list(gen.predictions(1000, start_time=T0, rate=100.0))
        labels = []
        for p in preds:
            lab = gen.label_for(p)
            if lab is None:
                continue
            lab["timestamp"] = p["timestamp"] + 5.0
            labels.append(lab)
            if 20 <= step < 35:
                lab["label"] = 1 - lab["label"]
        rng.shuffle(labels)
        waiting.append(labels)
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        if step >= 10:  # labels (5 s after their predictions) read ten batches, 100 s of event time, behind them
            late = waiting[step - 10]
            alerts += eng.process_labels([orjson.dumps(x) for x in late], [0.0] * len(late)).alerts
    retrain = [a for a in alerts if a.kind == "retrain_recommended"]
    assert [a.status for a in retrain] == ["firing", "resolved"]
    for a in retrain:
        assert a.window["start"] <= a.window["end"], a.window
