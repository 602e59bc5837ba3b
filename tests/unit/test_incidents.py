"""One change, one incident: alerts of one model version that share a segment (or subject) and move close
together in event time carry one ``incident_id``; unrelated changes get their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.core.incidents import Incidents
from monitor.core.rules import Alert
from monitor.simulate import TrafficGenerator

T0 = 1_767_225_600.0


def _firing(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.status == "firing"]


def test_a_bias_against_one_group_is_one_incident_across_its_alerts():
    """Approvals of gender=F fall: fairness gaps of several metrics and the group's prediction drift fire."""
    overrides = {"detectors": {"warmup_events": 300}, "fairness": {"attributes": ["gender"]}}
    engine = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
    rng = np.random.default_rng(0)
    alerts: list[Alert] = []
    for step in range(30):
        preds, labels = [], []
        for i in range(1000):
            g = str(rng.choice(["F", "M"]))
            pid = f"{step}-{i}"
            approve = rng.random() < (0.3 if step >= 15 and g == "F" else 0.5)
            preds.append({"prediction_id": pid, "model": "loans", "timestamp": T0 + step * 10 + i / 100,
                          "features": {"amount": float(rng.normal(1000, 200))},
                          "prediction": float(np.clip(rng.normal(0.8 if approve else 0.2, 0.05), 0, 1)),
                          "segments": {"gender": g}})  # fmt: skip
            if rng.random() < 0.5:
                labels.append({"prediction_id": pid, "label": int(rng.random() < 0.5)})
        alerts += engine.process_predictions([orjson.dumps(x) for x in preds], [0.0] * len(preds)).alerts
        alerts += engine.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    about_f = [a for a in _firing(alerts) if a.segment == {"gender": "F"}]
    assert len({a.kind for a in about_f}) >= 2 and len(about_f) >= 3, [a.key for a in about_f]
    assert {a.incident_id for a in about_f} == {about_f[0].incident_id}
    assert about_f[0].incident_id.startswith("loans/unknown/gender=F@")
    resolved = [a for a in alerts if a.status == "resolved" and a.segment == {"gender": "F"}]
    assert all(a.incident_id == about_f[0].incident_id for a in resolved)


def test_a_new_category_is_one_incident_of_its_feature():
    events = list(TrafficGenerator(seed=3).predictions(6000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[3000:]):
        if i % 3 == 0:
            e["features"]["device"] = "smartwatch"
    engine = PartitionEngine(load_config(environ={}), clock=lambda: T0)
    alerts: list[Alert] = []
    for i in range(0, len(events), 200):
        chunk = events[i : i + 200]
        alerts += engine.process_predictions([orjson.dumps(e) for e in chunk], [0.0] * len(chunk)).alerts
    device = [a for a in _firing(alerts) if a.subject == "device"]
    kinds = {a.kind for a in device}
    assert {"data_quality", "data_drift"} <= kinds, [a.key for a in device]
    assert {a.incident_id for a in device} == {device[0].incident_id}
    assert device[0].incident_id.startswith("churn/v1/device@")


def test_incidents_split_by_facet_and_by_time_and_forget_what_is_long_closed():
    inc = Incidents()
    window = 60.0

    def fire(facet: str, key: str, now: float) -> str:
        return inc.assign("m/v", facet, key, "firing", now, window)

    a = fire("income", "m/v/data_drift/income/all", 0.0)
    assert fire("age", "m/v/data_drift/age/all", 1.0) != a  # another facet: another incident
    assert inc.assign("m/v", "income", "m/v/data_drift/income/all", "resolved", 10.0, window) == a
    assert fire("income", "m/v/data_quality/income/all", 30.0) == a  # within the window of the last move
    inc.assign("m/v", "income", "m/v/data_quality/income/all", "resolved", 40.0, window)
    later = fire("income", "m/v/data_drift/income/all", 500.0)
    assert later != a and later.endswith("@1970-01-01T00:08:20.000Z")
    assert set(inc.open) == {"m/v/income", "m/v/age"}  # the first income incident is forgotten
    assert len(inc.by_key) == 2


def test_alert_events_carry_the_incident_id_in_the_schema():
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "monitor/schemas/alert.schema.json").read_text())
    event: dict[str, Any] = {"incident_id": "m/v/income@2026-01-01T00:00:00.000Z"}
    jsonschema.validate(event["incident_id"], schema["properties"]["incident_id"])


def _judgement(
    segment: dict[str, str],
    shift: float,
    now: float,
    *,
    fire: bool = True,
    kind: str = "concept_drift",
    subject: str = "accuracy",
    began: float | None = None,
    detector: str = "adwin",
    current: dict[str, Any] | None = None,
    by_labels: bool = False,
) -> Any:
    from monitor.core.drift import DriftEvidence
    from monitor.core.rules import Judgement, alert_key

    start = now if began is None else began  # where the change was located
    ev = DriftEvidence(fire, shift, 500, detector, int(start), start, 1e-9 if fire else 0.5, {}, current or {},
                       extra={"by_labels": by_labels})  # fmt: skip
    bucket = next(iter(segment.items())) if segment else ("", "")
    key = alert_key("m", kind, subject, segment, "v1")
    return Judgement(bucket, "error", ev, now, key, kind, subject, segment, 0.05, 0.2,
                     fire=fire, clear=not fire, shift=shift)  # fmt: skip


def test_one_change_alerted_in_all_traffic_and_later_in_its_segment_is_one_incident():
    """A concept change in half the traffic: all traffic's diluted alert first, then the segment's twice as
    large (not covered by it) paged again as an incident of its own (seen from outside, 5 of 8 seeds). The
    segment's alert joins the open incident; a segment of the same attribute stays apart (it may change on its
    own), and the joined incident closes when its last alert resolves."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    whole = desk.decide([_judgement({}, 0.065, 100.0)])
    segment = desk.decide([_judgement({"region": "B"}, 0.138, 200.0)])
    other = desk.decide([_judgement({"channel": "web"}, 0.2, 210.0)])
    assert [t.incident_id for _, t in whole + segment + other] == [whole[0][1].incident_id] * 3
    also = desk.decide([_judgement({"region": "C"}, 0.3, 220.0)])  # all traffic is open: C joins it too
    assert also[0][1].incident_id == whole[0][1].incident_id
    for seg in ({}, {"channel": "web"}, {"region": "C"}):
        assert desk.decide([_judgement(seg, 0.0, 300.0, fire=False)])[0][1].status == "resolved"
    late = desk.decide([_judgement({"region": "D"}, 0.3, 310.0)])  # only region=B open: D is apart from it
    assert late[0][1].incident_id != whole[0][1].incident_id
    resolved = desk.decide([_judgement({"region": "B"}, 0.0, 400.0, fire=False)])
    assert resolved[0][1].status == "resolved" and resolved[0][1].incident_id == whole[0][1].incident_id
    assert whole[0][1].incident_id not in {inc["id"] for inc in desk.incidents.open.values() if inc["keys"]}


def test_a_change_everywhere_first_alerted_in_one_segment_is_one_incident_with_all_traffics_alert():
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    first = desk.decide([_judgement({"device": "tablet"}, 0.5, 100.0)])
    whole = desk.decide([_judgement({}, 0.5, 120.0)])
    assert whole[0][1].incident_id == first[0][1].incident_id


def test_a_business_outcome_falling_everywhere_is_one_incident_across_its_segments_and_all_traffic():
    """Conversion halved everywhere: four segments of two attributes alerted before all traffic did, each as an
    incident of its own (five pages; seen from outside)."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    order = [{"gender": "M"}, {"age": "30-44"}, {"gender": "F"}, {"age": "45-64"}, {}]
    ids = [desk.decide([_judgement(seg, 0.1, 100.0 + k, kind="business")])[0][1].incident_id
           for k, seg in enumerate(order)]  # fmt: skip
    assert len(set(ids)) == 1


def test_an_alert_joins_neither_an_incident_opened_long_before_nor_another_when_its_own_facet_has_one():
    """A stranger's review: all traffic's alert 30 days after a lasting segment change joined that month-old
    incident; and a feature's drift joined a segment's incident away from its own quality finding's."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    segment = desk.decide([_judgement({"region": "B"}, 0.1, 0.0)])[0][1].incident_id
    month = desk.decide([_judgement({}, 0.1, 30 * 86400.0)])[0][1].incident_id
    assert month != segment
    inc = desk.incidents
    own = inc.assign("m/v1", "accuracy", "m/v1/data_quality/accuracy/all", "firing", 100.0, 3600.0)
    joined = inc.assign("m/v1", "accuracy", "m/v1/concept_drift/accuracy/all", "firing", 110.0, 3600.0,
                        join="m/v1/concept_drift/accuracy/region=B")  # fmt: skip
    assert joined == own


@pytest.mark.parametrize("broken", ["unit", "missing", "null"])
def test_prediction_drift_that_an_inputs_change_caused_is_one_incident_with_it(broken: str):
    """A feature's unit changed (metres to centimetres), or the feed stopped sending it, or sent nulls, and the
    scores moved: its alert and the prediction's were two pages (seen from outside; the prediction's judged
    first in the batch when the feed broke). All traffic's prediction drift and an input's alert of all traffic
    fired within ``alerts.incident_window_s`` of each other are one incident, whichever came first."""
    engine = PartitionEngine(load_config(environ={}, overrides={"detectors": {"warmup_events": 300}}), clock=lambda: T0)
    rng = np.random.default_rng(4)
    alerts: list[Alert] = []
    for step in range(40):
        events = []
        for i in range(500):
            height = float(rng.normal(1.7, 0.1))
            features: dict[str, Any] = {"height": height, "age": float(rng.normal(40, 10))}
            if step >= 20:
                height = 3.0 if broken == "unit" else 0.0  # what the model made of it
                if broken == "unit":
                    features["height"] *= 100.0
                elif broken == "missing":
                    del features["height"]
                else:
                    features["height"] = None
            events.append({"prediction_id": f"{step}-{i}", "model": "fit", "model_version": "v1",
                           "timestamp": T0 + step * 5 + i / 100, "features": features,
                           "prediction": float(1 / (1 + np.exp(-(height - 1.7) * 10)))})  # fmt: skip
        alerts += engine.process_predictions([orjson.dumps(e) for e in events], [0.0] * len(events)).alerts
    firing = _firing(alerts)
    assert "prediction_drift" in {a.kind for a in firing} and {a.subject for a in firing} == {"height", "prediction"}
    assert {a.incident_id for a in firing} == {firing[0].incident_id}, [(a.key, a.incident_id) for a in firing]


def test_prediction_drift_joins_only_an_inputs_incident_of_the_same_change():
    """Evaluated from outside: an open prediction drift took in an unrelated field's null alert 7 to 50 minutes
    later, and the prediction's own shift an unrelated unit change's 40 minutes before. Two alerts join only when
    their changes overlap (each from its located start to its detection)."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    def desk(**kw: Any) -> Alerting:
        return Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75, **kw)

    def fire(d: Alerting, kind: str, subject: str, now: float, began: float, segment: dict[str, str] | None = None):
        return d.decide([_judgement(segment or {}, 0.5, now, kind=kind, subject=subject, began=began)])[0][1]

    d = desk()
    feature = fire(d, "data_drift", "height", 100.0, 90.0).incident_id
    assert fire(d, "prediction_drift", "prediction", 200.0, 95.0).incident_id == feature
    assert fire(d, "data_quality", "clicks", 520.0, 500.0).incident_id != feature  # began after both were found
    d = desk()
    prediction = fire(d, "prediction_drift", "prediction", 100.0, 90.0).incident_id
    assert fire(d, "data_drift", "balance", 700.0, 650.0).incident_id != prediction
    d = desk(incident_window_s=600.0)
    feature = fire(d, "data_drift", "height", 100.0, 90.0).incident_id
    assert fire(d, "prediction_drift", "prediction", 800.0, 95.0).incident_id != feature  # past the window
    d = desk()
    feature = fire(d, "data_drift", "height", 100.0, 90.0).incident_id
    segment = fire(d, "prediction_drift", "prediction", 110.0, 95.0, {"region": "B"})
    assert segment.incident_id != feature  # a segment's prediction drift is its segment's incident


def test_an_inputs_alert_after_the_predictions_joins_its_incident_and_each_resolves_into_it():
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    prediction = desk.decide([_judgement({}, 0.5, 100.0, kind="prediction_drift", subject="prediction", began=90.0)])
    quality = desk.decide([_judgement({}, 0.5, 150.0, kind="data_quality", subject="height", began=95.0)])
    drift = desk.decide([_judgement({}, 0.5, 160.0, kind="data_drift", subject="age", began=92.0)])
    first = prediction[0][1].incident_id
    assert quality[0][1].incident_id == drift[0][1].incident_id == first
    other = desk.decide([_judgement({}, 0.5, 170.0, kind="concept_drift", subject="accuracy")])
    assert other[0][1].incident_id != first  # not an input's change
    ends = [desk.decide([_judgement({}, 0.0, 200.0 + k, fire=False, kind=kind, subject=subject)])[0][1]
            for k, (kind, subject) in enumerate([("data_quality", "height"), ("prediction_drift", "prediction"),
                                                 ("data_drift", "age")])]  # fmt: skip
    assert [(t.status, t.incident_id) for t in ends] == [("resolved", first)] * 3
    assert first not in {inc["id"] for inc in desk.incidents.open.values() if inc["keys"]}
    late = desk.decide([_judgement({}, 0.5, 300.0, kind="data_drift", subject="age")])
    assert late[0][1].incident_id != first


@pytest.mark.parametrize("broken", ["new_category", "unit"])
def test_a_break_in_one_segments_feed_is_one_incident_with_all_traffics_quality_alert(broken: str):
    """Seen from outside: a new category in one country's feed paged as the feature's quality alert (the checks
    watch all traffic) and again as that country's drift; a unit change in one country as a range alert and as
    the country's drift and prediction drift. One break, one incident."""
    engine = PartitionEngine(load_config(environ={}, overrides={"detectors": {"warmup_events": 300}}), clock=lambda: T0)
    rng = np.random.default_rng(7)
    countries = ["US", "DE", "IN", "BR"]
    alerts: list[Alert] = []
    for step in range(40):
        events = []
        for i in range(500):
            country = countries[int(rng.integers(0, 4))]
            height = float(rng.normal(1.7, 0.1))
            device = str(rng.choice(["phone", "tablet", "desktop"]))
            features: dict[str, Any] = {"height": height, "device": device}
            if step >= 20 and country == "DE":
                if broken == "unit":
                    features["height"] *= 100.0
                    height = 3.0  # what the model made of it
                elif i % 2:
                    features["device"] = "smartwatch"
            events.append({"prediction_id": f"{step}-{i}", "model": "fit", "model_version": "v1",
                           "timestamp": T0 + step * 5 + i / 100, "features": features,
                           "segments": {"country": country},
                           "prediction": float(1 / (1 + np.exp(-(height - 1.7) * 10)))})  # fmt: skip
        alerts += engine.process_predictions([orjson.dumps(e) for e in events], [0.0] * len(events)).alerts
    firing = _firing(alerts)
    keys = {a.key for a in firing}
    subject = "height" if broken == "unit" else "device"
    assert f"fit/v1/data_quality/{subject}/all" in keys, keys
    assert any(a.segment == {"country": "DE"} for a in firing), keys
    if broken == "unit":
        assert "fit/v1/prediction_drift/prediction/country=DE" in keys, keys
    assert {a.incident_id for a in firing} == {firing[0].incident_id}, [(a.key, a.incident_id) for a in firing]


def test_a_segments_alert_joins_all_traffics_break_only_for_the_same_input_or_an_overlapping_prediction_drift():
    from monitor.core.alerting import Alerting, AlertLifecycle

    def desk(**kw: Any) -> Alerting:
        return Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75, **kw)

    def fire(d: Alerting, kind: str, subject: str, now: float, began: float, segment: dict[str, str] | None = None):
        return d.decide([_judgement(segment or {}, 0.5, now, kind=kind, subject=subject, began=began)])[0][1]

    de = {"country": "DE"}
    d = desk()
    drift = fire(d, "data_drift", "device", 100.0, 99.0, de).incident_id  # the segment's drift first
    assert fire(d, "data_quality", "device", 130.0, 60.0).incident_id == drift
    d = desk()
    brk = fire(d, "schema", "height", 100.0, 90.0).incident_id
    assert fire(d, "data_drift", "age", 300.0, 290.0, de).incident_id != brk  # another input's drift
    assert fire(d, "prediction_drift", "prediction", 400.0, 350.0, {"country": "BR"}).incident_id != brk  # began
    # after the break was found: another change
    d = desk(incident_window_s=600.0)
    brk = fire(d, "data_quality", "height", 100.0, 90.0).incident_id
    assert fire(d, "data_drift", "height", 800.0, 790.0, de).incident_id != brk  # past the window
    d = desk()
    prediction = fire(d, "prediction_drift", "prediction", 200.0, 95.0, de).incident_id  # the segment's first
    assert fire(d, "data_quality", "height", 210.0, 92.0).incident_id == prediction
    assert fire(d, "data_drift", "height", 260.0, 240.0, de).incident_id == prediction


@pytest.mark.parametrize("fixed_at", [None, 40])
def test_accuracy_lost_to_a_broken_input_joins_its_incident_and_asks_to_fix_the_feed_not_to_retrain(fixed_at):
    """Seen from outside: a unit change in one input took accuracy down; the monitor paged the break, then a
    concept drift recommending a retrain, then a retrain recommendation: three incidents, two of them asking
    to retrain the model on the broken feed. And after the fix, labels of the predictions made while it lasted
    paged segments' concept drift and a retrain recommendation, both asking to retrain."""
    overrides = {"detectors": {"warmup_events": 300}, "monitoring": {"segments": ["country"]}}
    engine = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
    rng = np.random.default_rng(11)
    alerts: list[Alert] = []
    waiting: list[list[dict[str, Any]]] = []
    for step in range(80):
        preds, labels = [], []
        for i in range(500):
            pid = f"{step}-{i}"
            height = float(rng.normal(1.7, 0.1))
            broken = step >= 20 and (fixed_at is None or step < fixed_at)
            seen = height * 100.0 if broken else height  # metres to centimetres upstream
            score = float(1 / (1 + np.exp(-(min(seen, 3.0) - 1.7) * 30)))
            features = {"height": seen, "age": float(rng.normal(40, 10))}
            country = str(rng.choice(["US", "DE", "IN"]))
            preds.append({"prediction_id": pid, "model": "fit", "model_version": "v1", "features": features,
                          "timestamp": T0 + step * 5 + i / 100, "segments": {"country": country},
                          "prediction": score})  # fmt: skip
            truth = int(height + rng.normal(0, 0.03) > 1.7)
            labels.append({"prediction_id": pid, "label": truth, "timestamp": T0 + step * 5 + 30})
        waiting.append(labels)  # labels come 6 batches (about 30 s) after their predictions
        alerts += engine.process_predictions([orjson.dumps(x) for x in preds], [0.0] * len(preds)).alerts
        if len(waiting) > 6:
            due = waiting.pop(0)
            alerts += engine.process_labels([orjson.dumps(x) for x in due], [0.0] * len(due)).alerts
    firing = _firing(alerts)
    kinds = {a.kind for a in firing}
    assert {"data_quality", "concept_drift"} <= kinds, [a.key for a in firing]
    assert "retrain_recommended" not in kinds, [a.message for a in firing if a.kind == "retrain_recommended"]
    assert all(a.recommendation != "retrain" for a in firing), [(a.key, a.message) for a in firing]
    concept = next(a for a in firing if a.kind == "concept_drift")
    assert "fix it before retraining" in concept.message, concept.message
    assert {a.incident_id for a in firing} == {firing[0].incident_id}, [(a.key, a.incident_id) for a in firing]
    assert all(a.resolved_at is None for a in firing)
    if fixed_at is not None:
        resolved = {a.key: a for a in alerts if a.status == "resolved"}
        assert "fit/v1/data_quality/height/all" in resolved
        schema = orjson.loads((Path(__file__).resolve().parents[2] / "monitor" / "schemas" / "alert.schema.json")
                              .read_bytes())  # fmt: skip
        for a in resolved.values():  # the event time it resolved at, after the fix
            assert a.resolved_at == a.window["end"] and a.resolved_at > "2026-01-01T00:03:20", a
            jsonschema.validate(a.to_dict(), schema)


def test_labelled_problems_a_broken_input_explains_while_open_and_after_its_fix():
    """Seen from outside: an estimated-accuracy alert (located where it is found) never joined the open break;
    a concept change located after the break was found recommended a retrain; after the fix, labels of the
    broken predictions paged segments' concept drift and a retrain; a genuine concept change paged twice (the
    concept drift and the retrain recommendation)."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)

    def decide(kind: str, subject: str, now: float, began: float | None = None, *, fire: bool = True,
               segment: dict[str, str] | None = None, **kw: Any) -> Any:  # fmt: skip
        judged = [_judgement(segment or {}, 0.5 if fire else 0.0, now, fire=fire, kind=kind, subject=subject,
                             began=began, **kw)]  # fmt: skip
        out = desk.decide(judged)
        return out[0][1] if out else None

    brk = decide("data_quality", "height", 100.0, 95.0, detector="out_of_range")
    estimate = decide("performance", "estimated_accuracy", 300.0)  # located where found, after the break was
    assert estimate.incident_id == brk.incident_id and estimate.broken_input == ("height", "out_of_range")
    concept = decide("concept_drift", "accuracy", 400.0, 350.0)  # located after the break was found
    assert concept.incident_id == brk.incident_id
    retrain = {"current": {"problem": "concept_drift:accuracy"}, "by_labels": True}
    assert decide("retrain_recommended", "model", 450.0, 350.0, **retrain) is None  # waits while it is open
    new_field = decide("schema", "extra", 460.0, 455.0, detector="new_field")
    assert new_field.incident_id != brk.incident_id
    for kind, subject in [("performance", "estimated_accuracy"), ("concept_drift", "accuracy")]:
        decide(kind, subject, 500.0, fire=False)
    assert decide("data_quality", "height", 600.0, fire=False).status == "resolved"  # the feed is fixed
    # labels of predictions made while it lasted come after the fix: nothing pages, nothing asks to retrain
    assert decide("concept_drift", "accuracy", 700.0, 580.0, segment={"country": "DE"}) is None
    assert decide("retrain_recommended", "model", 720.0, 350.0, **retrain) is None
    # a change the labels locate after the fix is the model's own: retrain, and the recommendation rests on
    # the concept drift's incident
    later = decide("concept_drift", "accuracy", 900.0, 800.0)
    assert later.incident_id != brk.incident_id and later.broken_input is None
    again = decide("retrain_recommended", "model", 950.0, 800.0, **retrain)
    assert again.incident_id == later.incident_id


def test_a_labelled_problem_found_after_its_retrain_recommendation_joins_it():
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    retrain = _judgement({}, 0.5, 100.0, kind="retrain_recommended", subject="model", began=60.0,
                         current={"problem": "performance:accuracy_vs_baseline"}, by_labels=True)  # fmt: skip
    first = desk.decide([retrain])[0][1]
    concept = desk.decide([_judgement({}, 0.5, 130.0, kind="concept_drift", began=70.0)])[0][1]
    segment = desk.decide([_judgement({"region": "B"}, 0.5, 140.0, kind="performance", subject="f1")])[0][1]
    assert concept.incident_id == first.incident_id and segment.incident_id != first.incident_id


def test_a_break_explains_only_labelled_problems_that_began_with_it_in_its_own_version():
    """A stranger's review: any open break took over every labelled problem (a concept change located long
    before it included), a fixed one silenced a change located before it for good, a fixed break of v1/canary
    silenced v1's concept drift, and an open retrain recommendation took in problems found a month later."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    def desk() -> Alerting:
        return Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)

    def decide(d: Alerting, kind: str, subject: str, now: float, began: float | None = None, *, fire: bool = True,
               version: str = "v1", **kw: Any) -> Any:  # fmt: skip
        j = _judgement({}, 0.5 if fire else 0.0, now, fire=fire, kind=kind, subject=subject, began=began, **kw)
        if version != "v1":
            j.key = j.key.replace("m/v1/", f"m/{version}/")
        out = d.decide([j])
        return out[0][1] if out else None

    retrain = {"current": {"problem": "concept_drift:accuracy"}, "by_labels": True}
    d = desk()
    brk = decide(d, "data_quality", "minor", 10_000.0, 9_990.0, detector="constant")
    old = decide(d, "concept_drift", "accuracy", 10_500.0, 1_000.0)  # located long before the break began
    assert old.incident_id != brk.incident_id and old.broken_input is None
    assert decide(d, "retrain_recommended", "model", 10_600.0, 1_000.0, **retrain) is not None  # not held
    d = desk()
    decide(d, "data_quality", "minor", 10_000.0, 9_990.0, detector="constant")
    drifting = {"current": {"drifting_features": ["a", "b"]}, "by_labels": False}
    assert decide(d, "retrain_recommended", "model", 10_100.0, 10_050.0, **drifting) is not None  # its drift
    d = desk()
    decide(d, "data_quality", "minor", 10_000.0, 9_990.0, detector="constant")
    decide(d, "data_quality", "minor", 10_100.0, fire=False)  # fixed
    assert decide(d, "concept_drift", "accuracy", 11_000.0, 1_000.0) is not None  # began long before it
    d = desk()
    decide(d, "data_quality", "x", 10_000.0, 9_990.0, detector="null_rate", version="v1/canary")
    decide(d, "data_quality", "x", 10_100.0, fire=False, version="v1/canary")
    assert decide(d, "concept_drift", "accuracy", 10_200.0, 10_050.0) is not None  # another version's break
    d = desk()
    drifted = decide(d, "retrain_recommended", "model", 100.0, 100.0, current={}, by_labels=False)
    month = decide(d, "performance", "estimated_accuracy", 30 * 86400.0)
    assert month.incident_id != drifted.incident_id


def test_a_fixed_break_explains_a_labelled_problem_only_for_the_incident_window_after_its_fix():
    """Seen from outside: a genuine concept change right after a fix went on the retrain streak the break began,
    which the fixed break then held back for good: no retrain advice, ever."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75, incident_window_s=600.0)
    retrain = {"current": {"problem": "concept_drift:accuracy"}, "by_labels": True}
    desk.decide([_judgement({}, 0.5, 100.0, kind="data_quality", subject="height", began=95.0, detector="constant")])
    desk.decide([_judgement({}, 0.0, 200.0, fire=False, kind="data_quality", subject="height")])  # fixed at 200
    held = desk.decide(
        [_judgement({}, 0.5, 700.0, kind="retrain_recommended", subject="model", began=150.0, **retrain)]
    )
    assert held == []  # labels of the broken predictions, within the window after the fix
    late = desk.decide(
        [_judgement({}, 0.5, 900.0, kind="retrain_recommended", subject="model", began=150.0, **retrain)]
    )
    assert [t.status for _, t in late] == ["firing"]  # the problem held on past it: the model's own


def test_a_fixed_break_that_took_accuracy_down_is_handed_on_to_restart_the_error_streams():
    """Seen from outside: the concept drift a unit break opened stayed open after the fix (labels of the broken
    predictions kept coming), and a genuine concept change minutes later got no retrain advice. The desk hands
    such a fix on (take_fixed_breaks), once; a fixed break that took no labelled problem down is not."""
    from monitor.core.alerting import Alerting, AlertLifecycle

    def decide(desk: Alerting, kind: str, subject: str, now: float, began: float | None = None, *,
               fire: bool = True, **kw: Any) -> Any:  # fmt: skip
        out = desk.decide([_judgement({}, 0.5 if fire else 0.0, now, fire=fire, kind=kind, subject=subject,
                                      began=began, **kw)])  # fmt: skip
        return out[0][1] if out else None

    for took_labels_down in (True, False):
        desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
        brk = decide(desk, "data_quality", "height", 100.0, 95.0, detector="out_of_range")
        if took_labels_down:
            assert decide(desk, "concept_drift", "accuracy", 400.0, 350.0).incident_id == brk.incident_id
        assert desk.take_fixed_breaks() == []
        assert decide(desk, "data_quality", "height", 600.0, fire=False).status == "resolved"
        assert desk.take_fixed_breaks() == ([("m/v1", 600.0)] if took_labels_down else [])
        assert desk.take_fixed_breaks() == []
    # the restarted streams locate a change that outlived the fix at the fix: the model's own problem
    later = decide(desk, "concept_drift", "accuracy", 900.0, 600.0)
    assert later is not None and later.status == "firing" and later.broken_input is None
    # a genuine labelled problem open in its own incident: the fix restarts nothing (the restart would throw
    # away that change's labels and resolve its open retrain recommendation)
    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    genuine = decide(desk, "concept_drift", "accuracy", 50.0, 40.0)
    brk = decide(desk, "data_quality", "height", 100.0, 95.0, detector="out_of_range")
    assert genuine.incident_id != brk.incident_id
    assert decide(desk, "performance", "precision", 300.0, 250.0).incident_id == brk.incident_id
    assert decide(desk, "data_quality", "height", 600.0, fire=False).status == "resolved"
    assert desk.take_fixed_breaks() == []


@pytest.mark.parametrize("concept_at", [None, 95])
def test_after_a_fix_the_breaks_concept_alert_resolves_and_a_later_concept_change_recommends_a_retrain(concept_at):
    """Seen from outside: a unit break took accuracy down and opened concept drift in its incident; after the
    fix, labels of the broken predictions kept coming (label delays mix them with later ones) and held the
    alert open, and a genuine concept change minutes later got no retrain advice. Now the fix restarts the error
    streams: the alert resolves on the labels of predictions made since, and a later change is the model's."""
    overrides = {"detectors": {"warmup_events": 300}}
    engine = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
    rng = np.random.default_rng(12)
    alerts: list[Alert] = []
    waiting: list[tuple[float, bytes]] = []
    for step in range(170):
        preds = []
        for i in range(500):
            pid, t = f"{step}-{i}", T0 + step * 5 + i / 100
            height = float(rng.normal(1.7, 0.1))
            seen = height * 100.0 if 20 <= step < 60 else height  # metres to centimetres upstream, then fixed
            score = float(1 / (1 + np.exp(-(min(seen, 3.0) - 1.7) * 30)))
            features = {"height": seen, "age": float(rng.normal(40, 10))}
            preds.append({"prediction_id": pid, "model": "fit", "model_version": "v1", "timestamp": t,
                          "features": features, "prediction": score})  # fmt: skip
            truth = int(height + rng.normal(0, 0.03) > 1.7)
            if concept_at is not None and step >= concept_at and rng.random() < 0.4:
                truth = 1 - truth  # the relation between inputs and outcome changed for 40% of cases
            due = t + float(rng.uniform(10.0, 60.0))  # each label 10 s to a minute after its prediction
            waiting.append((due, orjson.dumps({"prediction_id": pid, "label": truth, "timestamp": due})))
        alerts += engine.process_predictions([orjson.dumps(x) for x in preds], [0.0] * len(preds)).alerts
        waiting.sort(key=lambda w: w[0])
        now = T0 + step * 5 + 5
        due = [w for _, w in waiting if _ <= now]
        waiting = waiting[len(due) :]
        alerts += engine.process_labels(due, [0.0] * len(due)).alerts
    concept = [a for a in alerts if a.key == "fit/v1/concept_drift/accuracy/all"]
    assert [a.status for a in concept[:2]] == ["firing", "resolved"], [(a.status, a.message) for a in concept]
    # resolved on the labels of predictions made after the fix (step 60), before any label of the change came
    assert concept[0].recommendation == "investigate" and concept[1].resolved_at < "2026-01-01T00:08:05"
    later = [a for a in _firing(alerts) if a.detected_at > concept[1].resolved_at]
    if concept_at is None:
        assert later == [], [(a.key, a.message) for a in later]
    else:
        # the retrain recommendation pages (the concept drift alert may still be cooling down from its
        # resolution), located after the fix was found (00:06:02; labels mixed by their delays locate a change
        # within about their spread), so no fixed break explains it
        assert "retrain_recommended" in {a.kind for a in later}, [(a.key, a.message) for a in later]
        assert all(a.recommendation == "retrain" and a.started_at >= "2026-01-01T00:06:03" for a in later)


def test_after_a_restart_the_retrain_streak_counts_an_open_alert_again_once_the_problem_held_on():
    """After a restart at a fixed break the open alert (the break's) does not count toward a retrain, but not for
    ever: once the restarted error stream has had its test's labels and the errors are neither back at their
    level nor past the threshold, the problem held on past the fix, and the open alert counts again (a
    stranger's review: it could stay uncounted for good, and no retrain ever came)."""
    from dataclasses import replace

    from monitor.core.judgements import decision_judgements

    engine = PartitionEngine(load_config(environ={}, overrides={}), clock=lambda: T0)
    state = engine._model("m", "v1")
    assert state is not None
    held = _judgement({}, 0.04, 1000.0, fire=False)
    band = replace(held, clear=False, extra={"min_events": 200}, evidence=replace(held.evidence, p_value=1e-6))
    state.retrain.restart()
    decision_judgements(state, [replace(band, evidence=replace(band.evidence, events=150))], [], engine.config,
                        lambda key: True, 1000.0)  # fmt: skip
    assert state.retrain.restarted and not state.retrain.problem  # too few labels since the fix to say
    decision_judgements(state, [band], [], engine.config, lambda key: True, 1000.0)
    decision_judgements(state, [band], [], engine.config, lambda key: True, 1000.0)
    assert not state.retrain.restarted and state.retrain.problem
    # errors back at their level (clear), or up by no more than noise: the open alert stays uncounted until it
    # resolves (a recovering stream's first labels gave a false retrain recommendation when noise counted)
    for calm in (replace(band, clear=True), replace(band, evidence=replace(band.evidence, p_value=0.2))):
        state.retrain.restart()
        for _ in range(3):
            decision_judgements(state, [calm], [], engine.config, lambda key: True, 1000.0)
        assert state.retrain.restarted and not state.retrain.problem
