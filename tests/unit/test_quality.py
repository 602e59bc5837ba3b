"""Schema and data-quality checks: each upstream break raises its alert within a few hundred events, loses nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.core.quality import FieldSchema, SchemaWatch
from monitor.core.rules import Alert
from monitor.simulate import TrafficGenerator

T0 = 1_767_225_600.0
BEFORE = 3_000
AFTER = 2_000
BATCH = 100


def _engine() -> PartitionEngine:
    return PartitionEngine(load_config(environ={}), clock=lambda: T0)


def _feed(engine: PartitionEngine, events: list[dict[str, Any]]) -> list[tuple[int, Alert]]:
    """Alerts with the number of events fed when each was emitted."""
    out: list[tuple[int, Alert]] = []
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        res = engine.process_predictions([orjson.dumps(e) for e in chunk], [0.0] * len(chunk))
        assert not res.rejected
        out += [(i + len(chunk), a) for a in res.alerts]
    return out


def _drop_income(e: dict[str, Any], _: int) -> None:
    del e["features"]["income"]


def _add_field(e: dict[str, Any], _: int) -> None:
    e["features"]["promo_code"] = "BF2026"


def _income_as_string(e: dict[str, Any], _: int) -> None:
    e["features"]["income"] = f"{e['features']['income']:.2f}"


def _income_nulls(e: dict[str, Any], i: int) -> None:
    if i % 10 < 3:
        e["features"]["income"] = None


def _age_out_of_range(e: dict[str, Any], i: int) -> None:
    if i % 10 == 0:
        e["features"]["age"] = 1_000.0


def _new_device(e: dict[str, Any], i: int) -> None:
    if i % 5 == 0:
        e["features"]["device"] = "smartwatch"


def _stuck_sessions(e: dict[str, Any], _: int) -> None:
    e["features"]["tenure_months"] = 12.0


CHANGES: list[tuple[str, Callable[[dict[str, Any], int], None], str]] = [
    ("missing_field", _drop_income, "churn/v1/schema/income/all"),
    ("new_field", _add_field, "churn/v1/schema/promo_code/all"),
    ("type_change", _income_as_string, "churn/v1/schema/income/all"),
    ("null_rate", _income_nulls, "churn/v1/data_quality/income/all"),
    ("out_of_range", _age_out_of_range, "churn/v1/data_quality/age/all"),
    ("unseen_category", _new_device, "churn/v1/data_quality/device/all"),
    ("constant", _stuck_sessions, "churn/v1/data_quality/tenure_months/all"),
]


@pytest.mark.parametrize(("check", "change", "key"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_schema_change_raises_its_alert_within_a_few_hundred_events_and_loses_nothing(
    check: str, change: Callable[[dict[str, Any], int], None], key: str
) -> None:
    events = list(TrafficGenerator(seed=3).predictions(BEFORE + AFTER, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE:]):
        change(e, i)
    engine = _engine()
    alerts = _feed(engine, events)
    quality = [(pos, a) for pos, a in alerts if a.kind in ("schema", "data_quality")]
    assert [(a.key, a.detector, a.status) for _, a in quality] == [(key, check, "firing")]
    pos, alert = quality[0]
    assert BEFORE < pos <= BEFORE + 400, f"{check} raised after {pos - BEFORE} events"
    assert alert.message and alert.recommendation == "investigate"
    if alert.p_value is not None:
        assert alert.p_value < 1e-6
    # nothing else is lost: every event counted, the other features still monitored on every event
    assert engine.events_total() == BEFORE + AFTER
    state = engine.models["churn", "v1"]
    assert state.tracker(("avg_basket", "", "")).count == BEFORE + AFTER
    assert state.tracker(("plan", "", "")).count == BEFORE + AFTER


def test_schema_alerts_name_the_problem_in_plain_words() -> None:
    events = list(TrafficGenerator(seed=5).predictions(BEFORE + AFTER, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE:]):
        _income_as_string(e, i)
    (_, alert), *_ = [x for x in _feed(_engine(), events) if x[1].kind == "schema"]
    assert re.fullmatch(
        r"Field income arrives as a string in \d+% of the last 200 predictions of model churn v1; "
        r"the baseline has it as a number\.",
        alert.message,
    )
    assert alert.severity == "critical"
    assert alert.current["rate"] >= 0.3 and alert.baseline["rate"] == 0.0


def test_a_stationary_stream_raises_no_schema_or_quality_alert() -> None:
    events = list(TrafficGenerator(seed=11).predictions(40_000, start_time=T0, rate=100.0))
    alerts = _feed(_engine(), events)
    assert [a.key for _, a in alerts if a.kind in ("schema", "data_quality")] == []


def test_a_quality_alert_resolves_once_the_field_is_back() -> None:
    events = list(TrafficGenerator(seed=6).predictions(BEFORE + AFTER + 12_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE : BEFORE + AFTER]):
        _income_nulls(e, i)
    cfg = load_config(environ={}, overrides={"alerts": {"resolve_after_s": 30.0}})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    statuses = [(a.key, a.status) for _, a in _feed(engine, events) if a.kind == "data_quality"]
    assert statuses == [
        ("churn/v1/data_quality/income/all", "firing"),
        ("churn/v1/data_quality/income/all", "resolved"),
    ]


def test_the_schema_is_learned_from_the_warm_up_when_there_is_no_profile() -> None:
    watch = SchemaWatch(
        window_events=100,
        baseline_events=200,
        min_rate_change=0.05,
        max_p_value=1e-6,
        range_tolerance=0.1,
        max_fields=10,
    )
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(0, 1, 100)
        watch.observe("x", x.tolist(), 0, "numeric", x)
        assert watch.end_batch(100, 0.0, 1.0, {"x": "numeric"}, {}) == []
    assert watch.schema is not None and set(watch.schema) == {"x"}
    f = watch.schema["x"]
    assert f.type == "numeric" and f.absent_rate == 0 and f.minimum < -2 and f.maximum > 2 and f.varies


def test_a_field_schema_round_trips_and_rejects_unknown_types() -> None:
    f = FieldSchema("categorical", 100, 0.01, 0.02, 0.0, categories=["a", "b"], top_share=0.6)
    assert FieldSchema.from_plain(f.to_plain()) == f
    with pytest.raises(ValueError, match="numeric or categorical"):
        FieldSchema.from_plain({"type": "text"})


def test_a_new_field_is_reported_once_then_adopted_and_resolves() -> None:
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 6_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE:]):
        _add_field(e, i)
    cfg = load_config(environ={}, overrides={"alerts": {"resolve_after_s": 20.0}})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    statuses = [(a.key, a.status, a.detector) for _, a in _feed(engine, events) if a.kind == "schema"]
    assert statuses[0] == ("churn/v1/schema/promo_code/all", "firing", "new_field")
    # it resolves under the check that opened it, though that check runs no more once the field is adopted
    assert statuses[1] == ("churn/v1/schema/promo_code/all", "resolved", "new_field") and len(statuses) == 2
    watch = engine.models["churn", "v1"].quality
    assert watch is not None and watch.schema is not None and watch.schema["promo_code"].categories == ["BF2026"]


def test_a_new_field_that_appears_late_in_a_window_is_adopted_from_a_whole_one() -> None:
    """Adopted from the window it appeared in (10 of its 200 events), the field was "absent 95% of the time"
    with a range of ten values: a false out_of_range that never resolved, and no missing_field once the
    producer dropped it again."""
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 9_000, start_time=T0, rate=100.0))
    rng = np.random.default_rng(3)
    appear = BEFORE + 290  # ten events before the end of the quality window it falls in (500 + 200 k)
    for e in events[appear : BEFORE + 6_000]:
        e["features"]["basket_value"] = float(rng.normal(50.0, 10.0))
    alerts_cfg = {"resolve_after_s": 20.0, "cooldown_s": 10.0, "cooldown_events": 100}
    cfg = load_config(environ={}, overrides={"alerts": alerts_cfg})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    alerts = [(n, a) for n, a in _feed(engine, events) if a.subject == "basket_value"]
    assert [(a.status, a.kind, a.detector) for _, a in alerts] == [
        ("firing", "schema", "new_field"),
        ("resolved", "schema", "new_field"),
        ("firing", "schema", "missing_field"),
    ]
    assert alerts[2][0] > BEFORE + 6_000
    watch = engine.models["churn", "v1"].quality
    assert watch is not None and watch.schema is not None
    assert watch.schema["basket_value"].absent_rate == 0.0 and watch.schema["basket_value"].minimum < 30.0


def test_a_new_field_rolled_out_in_stages_raises_no_range_alert() -> None:
    """Sent with 5% of predictions for a while, it is adopted with a range of a handful of values; at 100%
    later, the values it had all along are no data-quality break (a range of n values leaves about 2 / (n + 1)
    of new ones outside it)."""
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 8_000, start_time=T0, rate=100.0))
    rng = np.random.default_rng(4)
    for i, e in enumerate(events[BEFORE:]):
        if i >= 3_000 or rng.random() < 0.05:
            e["features"]["basket_value"] = float(rng.normal(50.0, 10.0))
    alerts = [(a.status, a.kind, a.detector) for _, a in _feed(_engine(), events) if a.subject == "basket_value"]
    assert alerts[0] == ("firing", "schema", "new_field")
    assert all(kind == "schema" for _, kind, _ in alerts), alerts


def test_a_new_field_sent_now_and_then_is_adopted_all_the_same() -> None:
    """Present for 300 predictions, absent for 300: its share never holds from one window to the next, and a
    field left unadopted keeps every window off the quiet path and its alert open for good."""
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 6_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE:]):
        if i % 600 < 300:
            e["features"]["promo_code"] = "BF2026"
    engine = _engine()
    _feed(engine, events)
    watch = engine.models["churn", "v1"].quality
    assert watch is not None and watch.schema is not None and "promo_code" in watch.schema
    assert watch.announced == {}


def test_a_new_field_gone_before_it_is_adopted_resolves() -> None:
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 3_000, start_time=T0, rate=100.0))
    for e in events[BEFORE + 100 : BEFORE + 200]:  # half of one window, then never again
        e["features"]["promo_code"] = "BF2026"
    cfg = load_config(environ={}, overrides={"alerts": {"resolve_after_s": 20.0}})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    statuses = [(a.status, a.detector) for _, a in _feed(engine, events) if a.subject == "promo_code"]
    assert statuses == [("firing", "new_field"), ("resolved", "new_field")]
    watch = engine.models["churn", "v1"].quality
    assert watch is not None and watch.schema is not None and "promo_code" not in watch.schema


def test_a_null_rate_alert_resolved_by_the_field_being_dropped_says_so() -> None:
    """Nulls first, then the producer stops sending the field: the schema alert takes over, and the null-rate
    alert's resolution must not tell the on-call engineer that the problem has cleared."""
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 6_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE : BEFORE + 1_500]):
        _income_nulls(e, i)
    for e in events[BEFORE + 1_500 :]:
        del e["features"]["income"]
    cfg = load_config(environ={}, overrides={"alerts": {"resolve_after_s": 20.0}})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    alerts = [a for _, a in _feed(engine, events) if a.subject == "income"]
    assert [(a.status, a.detector) for a in alerts] == [
        ("firing", "null_rate"),
        ("firing", "missing_field"),
        ("resolved", "null_rate"),
    ]
    assert "cleared" not in alerts[2].message and "missing field" in alerts[2].message, alerts[2].message


def test_a_quality_alert_resolves_under_the_check_that_opened_it() -> None:
    """A stuck field recovers: the resolution names the constant-value check, not the first check in order."""
    events = list(TrafficGenerator(seed=8).predictions(BEFORE + 6_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[BEFORE : BEFORE + 1_000]):
        _stuck_sessions(e, i)
    cfg = load_config(environ={}, overrides={"alerts": {"resolve_after_s": 20.0}})
    engine = PartitionEngine(cfg, clock=lambda: T0)
    alerts = [a for _, a in _feed(engine, events) if a.kind == "data_quality"]
    assert [(a.status, a.detector) for a in alerts] == [("firing", "constant"), ("resolved", "constant")]
    assert "constant" in alerts[1].message or "single value" in alerts[1].message, alerts[1].message


def test_windows_keep_their_size_whatever_the_batch_size() -> None:
    """A consumer batch of 3,000 events: the schema is learned from the first 500 only, and the break right
    after it is judged on 200-event windows, not hidden in the warm-up or diluted in one big window."""
    events = list(TrafficGenerator(seed=12).predictions(3_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events[600:]):
        _income_as_string(e, i)
    engine = _engine()
    res = engine.process_predictions([orjson.dumps(e) for e in events], [0.0] * len(events))
    schema = [a for a in res.alerts if a.kind == "schema"]
    assert [(a.key, a.detector) for a in schema] == [("churn/v1/schema/income/all", "type_change")]
    assert schema[0].window["events"] == 200 and schema[0].current["rate"] >= 0.5
    watch = engine.models["churn", "v1"].quality
    assert watch is not None and watch.schema is not None and watch.schema["income"].type == "numeric"
    assert watch.schema["income"].events == 500 and watch.windows == (3_000 - 500) // 200


def test_an_optional_field_is_part_of_the_learned_schema_not_a_new_field() -> None:
    events = list(TrafficGenerator(seed=13).predictions(6_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events):
        if i % 10 < 3:
            e["features"]["coupon"] = "C10"
    alerts = _feed(_engine(), events)
    assert [a.key for _, a in alerts if a.kind in ("schema", "data_quality")] == []


def test_a_field_left_out_where_the_baseline_table_had_nulls_is_not_a_dropped_field() -> None:
    """A table cannot tell an absent key from a null: 20% empty cells in training, 20% of events without the key
    live, is the same missingness and raises nothing."""
    schema = {
        "income": FieldSchema("numeric", 5_000, absent_rate=0.0, null_rate=0.2, minimum=0.0, maximum=20_000.0),
    }
    watch = SchemaWatch(
        window_events=200,
        baseline_events=500,
        min_rate_change=0.05,
        max_p_value=1e-6,
        range_tolerance=0.1,
        max_fields=10,
        schema=schema,
    )
    rng = np.random.default_rng(4)
    fired = []
    for _ in range(20):
        x = rng.normal(5_000, 500, 200)
        values: list[Any] = [None if rng.random() < 0.2 else float(v) for v in x]
        column = np.array([np.nan if v is None else v for v in values])
        watch.observe("income", values, 0, "numeric", column)  # the key was left out, not sent as null
        fired += [f.check for f in watch.end_batch(200, 0.0, 1.0, {"income": "numeric"}, {}) if f.fire]
    assert fired == []


def test_a_rare_flag_raises_no_constant_value_alert_and_one_stuck_at_its_rare_value_does():
    """A 0/1 flag with 2% ones has windows of 200 zeros by chance (0.98^200 = 1.8%): the check asks how likely
    one value throughout is by the baseline's most common value's share, so they pass; stuck at 1 fires."""
    rng = np.random.default_rng(2)

    def run(stuck_from: int) -> list[Any]:
        engine = _engine()
        alerts = []
        for start in range(0, 100_000, 2000):
            events = [
                {"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i, "prediction": 0.5,
                 "features": {"x": float(rng.normal()), "flag": 1 if i >= stuck_from else int(rng.random() < 0.02)}}
                for i in range(start, start + 2000)
            ]  # fmt: skip
            alerts += engine.process_predictions([orjson.dumps(e) for e in events], [0.0] * 2000).alerts
        return [(a.status, a.key, a.detector) for a in alerts if a.kind in ("schema", "data_quality")]

    assert run(stuck_from=10**9) == []
    assert run(stuck_from=60_000) == [("firing", "m/unknown/data_quality/flag/all", "constant")]


def test_a_profile_from_monitor_baseline_carries_a_numeric_fields_common_values(tmp_path: Path) -> None:
    """The rare flag's shares reach the profile too, so a schema from `monitor baseline` judges it the same."""
    from monitor.baseline_cmd import profile_table
    from monitor.io.tables import TableColumns

    rng = np.random.default_rng(2)
    path = tmp_path / "flag.csv"
    rows = "".join(f"{rng.normal():.4f},{int(rng.random() < 0.02)},0.5\n" for _ in range(20_000))
    path.write_text("x,flag,prediction\n" + rows)
    profile = profile_table(path, model="m", model_version="*", columns=TableColumns(prediction="prediction"),
                            progress=False).profile  # fmt: skip
    common = profile.schema["flag"].common
    assert [value for value, _ in common] == [0.0, 1.0] and 0.97 < common[0][1] < 0.99
    assert profile.schema["flag"].top_share == common[0][1]
    assert FieldSchema.from_plain(profile.schema["flag"].to_plain()) == profile.schema["flag"]


def _merchants(n: int, seed: int, new_from: int | None = None) -> list[dict[str, Any]]:
    """A long-tailed categorical field: 2,000 merchants with Zipf(1.1) shares (far more than the 20 categories a
    stream keeps); from ``new_from`` a third of the rows name a merchant never seen."""
    rng = np.random.default_rng(seed)
    shares = 1 / np.arange(1, 2001) ** 1.1
    drawn = rng.choice(2000, n, p=shares / shares.sum())
    return [
        {
            "prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i / 10,
            "features": {"merchant": f"new{i}" if new_from is not None and i >= new_from and i % 3 == 0
                         else f"m{drawn[i]}"},
            "prediction": 0.5,
        }
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_long_tailed_field_raises_no_unseen_category_on_its_own_tail(seed: int) -> None:
    """Its learned list was the first 20 merchants that came, rare ones among them, and its share outside them
    was counted while the list filled: windows of the steady tail fired critical 'categories the baseline never
    had (e.g. m10)', with m10 in the baseline (seen from outside)."""
    alerts = _feed(_engine(), _merchants(120_000, seed))
    assert [a.key for _, a in alerts if a.kind == "data_quality"] == []


def test_a_long_tailed_field_still_pages_when_new_values_take_a_large_share() -> None:
    """Without the unseen-category check on such a field, its drift test sees the new values in its overflow."""
    alerts = [(n, a) for n, a in _feed(_engine(), _merchants(60_000, 1, new_from=40_000)) if a.status == "firing"]
    assert [(a.kind, a.subject) for _, a in alerts] == [("data_drift", "merchant")]
    assert alerts[0][0] <= 42_000


def test_a_rename_reverted_resolves_and_the_renamed_field_going_again_pages_nothing() -> None:
    """The renamed field was adopted into the schema while it was sent; once the rename was reverted it went
    missing from every event, and a critical alert about it stayed open for good (seen from outside)."""
    rng = np.random.default_rng(6)
    events = []
    for i in range(12_000):
        name = "amount_usd" if 3_000 <= i < 6_000 else "amount"
        features = {name: float(rng.lognormal(3.0, 1.0)), "basket": float(rng.normal(50, 10))}
        events.append({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i, "features": features,
                       "prediction": 0.5})  # fmt: skip
    alerts = [(a.status, a.key, a.detector) for _, a in _feed(_engine(), events) if a.kind != "data_drift"]
    fired = [(k, d) for s, k, d in alerts if s == "firing"]
    assert fired == [("m/unknown/schema/amount/all", "missing_field"), ("m/unknown/schema/amount_usd/all", "new_field")]
    assert sorted((k, d) for s, k, d in alerts if s == "resolved") == sorted(fired)


def test_a_field_rolled_out_during_another_fields_outage_still_pages_when_dropped() -> None:
    """Adopted while basket was missing, then sent beside it for 8,000 events: not a rename, so its drop later is
    a missing field as any (it paged nothing once the rename rule held it; a stranger's review)."""
    rng = np.random.default_rng(6)
    events = []
    for i in range(20_000):
        features = {"amount": float(rng.lognormal(3.0, 1.0))}
        if not 3_000 <= i < 6_000:
            features["basket"] = float(rng.normal(50, 10))
        if 3_000 <= i < 14_000:
            features["score2"] = float(rng.normal(0, 1))
        events.append({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i, "features": features,
                       "prediction": 0.5})  # fmt: skip
    alerts = [(n, a.status, a.key, a.detector) for n, a in _feed(_engine(), events) if a.kind == "schema"]
    dropped = [(n, s) for n, s, k, d in alerts if k == "m/unknown/schema/score2/all" and d == "missing_field"]
    assert dropped and dropped[0][1] == "firing" and 14_000 < dropped[0][0] <= 14_600


def test_a_closed_field_with_one_rare_value_past_the_vocabulary_keeps_its_unseen_category_check() -> None:
    """20 common values and one at 0.2% (past the 20 kept): not a long tail, so a new value taking 30% of the rows
    is still an unseen category (it was a drift warning alone once any value overflowed; a stranger's review)."""
    rng = np.random.default_rng(2)
    values = [f"v{i}" for i in range(20)]
    events = []
    for i in range(30_000):
        value = "rare" if rng.random() < 0.002 else values[int(rng.integers(0, 20))]
        if i >= 20_000 and rng.random() < 0.3:
            value = "brand-new"
        events.append({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i / 10,
                       "features": {"cat": value}, "prediction": 0.5})  # fmt: skip
    fired = [(n, a.detector) for n, a in _feed(_engine(), events) if a.status == "firing" and a.kind == "data_quality"]
    assert fired and fired[0][1] == "unseen_category" and 20_000 < fired[0][0] <= 20_600


def test_a_rename_is_one_incident_and_a_later_schema_break_another() -> None:
    """A rename paged twice (amount missing, amount_usd new: two facets, seen from outside). All traffic's
    schema alerts of one model version close in event time are one incident; a break hours later is its own."""
    rng = np.random.default_rng(7)
    events = []
    for i in range(30_000):
        features = {"amount_usd" if i >= 3_000 else "amount": float(rng.lognormal(3.0, 1.0))}
        if i < 20_000:  # basket stops coming 17,000 s (more than alerts.incident_window_s) after the rename
            features["basket"] = float(rng.normal(50, 10))
        events.append({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i, "features": features,
                       "prediction": 0.5})  # fmt: skip
    fired = [a for _, a in _feed(_engine(), events) if a.status == "firing" and a.kind == "schema"]
    assert [(a.subject, a.detector) for a in fired] == [
        ("amount", "missing_field"), ("amount_usd", "new_field"), ("basket", "missing_field")
    ], [a.key for a in fired]  # fmt: skip
    assert fired[0].incident_id == fired[1].incident_id != fired[2].incident_id
