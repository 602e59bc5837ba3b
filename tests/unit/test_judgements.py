"""The judgement functions on a model version's state, without an engine."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.judgements import (
    drift_key,
    quality_judgements,
    retrain_judgement,
    rollback_judgement,
)
from monitor.core.model_state import PREDICTION, ModelState
from monitor.core.quality import QualityFinding
from monitor.core.rules import ALL
from monitor.core.settings import DecisionsConfig, Settings


def _state(*features: str) -> ModelState:
    state = ModelState("fraud", "v2")
    state.kinds = {name: "numeric" for name in features}
    state.events, state.last_event_time = 5000, 1_700_000_100.0
    return state


def test_drift_keys_name_the_model_version_subject_and_segment():
    assert drift_key("m", "v1", "x", ("country", "DE")) == "m/v1/data_drift/x/country=DE"
    assert drift_key("m", "v1", PREDICTION, ALL) == "m/v1/prediction_drift/prediction/all"


def test_retrain_fires_when_enough_inputs_drift_and_clears_when_they_stop():
    cfg = replace(DecisionsConfig(), retrain_drift_features=2, important_features=[])
    state = _state("a", "b", "c")
    state.drifting = {"a"}
    one = retrain_judgement(state, cfg, watermark=0.0)
    assert not one.fire and one.clear and one.kind == "retrain_recommended"
    state.drifting = {"a", "c", "not_an_input"}
    two = retrain_judgement(state, cfg, watermark=0.0)
    assert two.fire and not two.clear
    assert two.evidence.current["drifting_features"] == ["a", "c"]
    assert two.key == "fraud/v2/retrain_recommended/model/all"
    assert two.now == state.last_event_time  # no label yet: how far predictions got


def test_no_rollback_judgement_before_the_version_has_labels():
    """Before any label there is nothing to compare, whatever versions came before (rollbacks themselves: the
    engine-level tests in test_decisions.py)."""
    state = _state("a")
    older = _state("a")
    older.version, older.first_event_time = "v1", 1_700_000_000.0
    assert rollback_judgement(state, [state, older], Settings(), watermark=0.0) is None


def _finding(check: str, fire: bool, feature: str = "amount", kind: str = "data_quality") -> QualityFinding:
    return QualityFinding(
        kind=kind,
        check=check,
        feature=feature,
        fire=fire,
        clear=not fire,
        statistic=0.4 if fire else 0.0,
        threshold=0.1,
        p_value=None,
        events=200,
        seq=200,
        start_time=1.0,
        end_time=2.0,
        baseline={"null_rate": 0.0},
        current={"null_rate": 0.4 if fire else 0.0},
    )


def test_quality_judgements_are_one_per_field_and_skip_what_is_neither_firing_nor_open():
    state = _state("amount")
    opened: dict[str, str] = {}  # open alert key -> the check that opened it
    assert quality_judgements(state, [_finding("null_rate", False)], opened.get) == []
    fired = quality_judgements(state, [_finding("null_rate", True)], opened.get)
    assert [(j.key, j.fire) for j in fired] == [("fraud/v2/data_quality/amount/all", True)]
    opened[fired[0].key] = "null_rate"
    cleared = quality_judgements(state, [_finding("null_rate", False)], opened.get)
    assert [(j.fire, j.clear) for j in cleared] == [(False, True)]  # an open alert is judged, so it can resolve


def test_one_judgement_per_field_named_by_the_first_firing_check_and_a_dropped_field_is_a_schema_alert():
    state = _state("amount")
    never_open: dict[str, str] = {}
    two = quality_judgements(state, [_finding("constant", True), _finding("out_of_range", True)], never_open.get)
    assert [(j.key, j.extra["check"]) for j in two] == [("fraud/v2/data_quality/amount/all", "out_of_range")]
    dropped = [
        _finding("missing_field", True, kind="schema"),
        _finding("null_rate", True),
        _finding("out_of_range", True),
    ]
    judged = {j.kind: j.extra["check"] for j in quality_judgements(state, dropped, never_open.get)}
    assert judged == {"schema": "missing_field", "data_quality": "out_of_range"}  # its nulls are not a second alert
