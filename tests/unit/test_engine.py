"""The partition engine on synthetic streams: one alert per change, quiet otherwise, caps hold."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.core.rules import Alert
from monitor.core.view import build_view
from monitor.simulate import DEVICE_WEIGHTS, Drift, TrafficGenerator, choice_bounds, pick

T0 = 1_767_225_600.0
DEVICE_BOUNDS = choice_bounds(DEVICE_WEIGHTS)  # the phone, desktop and tablet shares of _devices


def _engine(partition: int = 0, partitions: int = 1, **sections: Any) -> PartitionEngine:
    overrides = {"detectors": {"warmup_events": 300}, "alerts": {"resolve_after_s": 20.0, "cooldown_s": 600.0}}
    for name, table in sections.items():
        overrides[name] = {**overrides.get(name, {}), **table}
    return PartitionEngine(
        load_config(environ={}, overrides=overrides), partition=partition, partitions=partitions, clock=lambda: T0
    )


def _feed(engine: PartitionEngine, events: list[dict[str, Any]], batch: int = 1000) -> list[Alert]:
    alerts: list[Alert] = []
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        # no Kafka time (0): the events carry their own
        res = engine.process_predictions([orjson.dumps(e) for e in chunk], [0.0] * len(chunk))
        assert not res.rejected
        alerts += res.alerts
    return alerts


def _made_once(make: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """``make``'s traffic generated once per test process for the same arguments, each caller getting its own
    copy of the same events: parametrized tests share it (generating it was a fifth of this file's time)."""
    made: dict[str, bytes] = {}

    @functools.wraps(make)
    def traffic(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        key = repr((args, sorted(kwargs.items())))
        if key not in made:
            if len(made) >= 4:  # a few at a time: 25,000 events are about 6 MB
                made.pop(next(iter(made)))
            made[key] = orjson.dumps(make(*args, **kwargs))
        events: list[dict[str, Any]] = orjson.loads(made[key])
        return events

    return traffic


@_made_once
def _stream(n_before: int, n_after: int, drift: Drift | None, seed: int = 1, n_back: int = 0) -> list[dict[str, Any]]:
    gen = TrafficGenerator(seed=seed)
    events = list(gen.predictions(n_before, start_time=T0, rate=100.0))
    if drift is not None:
        gen.drifts.append(drift)
    events += list(gen.predictions(n_after, start_time=T0, rate=100.0))
    if drift is not None:
        gen.drifts.remove(drift)
    events += list(gen.predictions(n_back, start_time=T0, rate=100.0))
    return events


def test_drift_in_one_segment_raises_exactly_one_alert_for_it():
    events = _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6))
    alerts = _feed(_engine(), events)
    assert [(a.status, a.key) for a in alerts] == [("firing", "churn/v1/data_drift/income/country=SG")]
    a = alerts[0]
    assert a.kind == "data_drift" and a.detector in ("adwin", "page_hinkley") and a.segment == {"country": "SG"}
    assert a.statistic >= a.threshold and a.p_value < 1e-3 and a.recommendation == "investigate"
    assert a.current["mean"] > 1.4 * a.baseline["mean"]
    assert a.message.startswith("Income in segment country=SG (model churn v1) rose from a mean of")


@pytest.mark.parametrize("batch", [20, 100, 1000])
@pytest.mark.parametrize("scale", [3.0, 5.0])
def test_a_large_change_in_one_segment_raises_that_segments_alert_only(scale, batch):
    """All traffic, and gender=F, see the change diluted and reach their tests' events before the segment
    does; they wait for its alert instead of paging first (it raised three alerts for one change)."""
    events = _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=scale))
    drift = [(a.status, a.key) for a in _feed(_engine(), events, batch=batch) if a.kind == "data_drift"]
    assert drift == [("firing", "churn/v1/data_drift/income/country=SG")]


@_made_once
def _regions(
    share: float, extra_sd: float, seed: int, *, early_share: float | None = None, change_at: int = 20_000
) -> list[dict[str, Any]]:
    """One feature, region r0 with ``share`` of the traffic (``early_share`` of the first 20,000 events, when
    given) shifted ``extra_sd`` from event ``change_at``; another attribute (dev) beside it."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(change_at + 6_000):
        now = share if early_share is None or i >= 20_000 else early_share
        region = 0 if rng.random() < now else int(rng.integers(1, 5))
        dev = "ab"[int(rng.integers(0, 2))]
        amount = float(rng.normal(100.0, 15.0)) + (extra_sd * 15.0 if i >= change_at and region == 0 else 0.0)
        events.append(
            {
                "prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i / 10.0,
                "features": {"amount": amount}, "prediction": 0.5, "segments": {"region": f"r{region}", "dev": dev},
            }
        )  # fmt: skip
    return events


@pytest.mark.parametrize(("share", "extra_sd", "seed"), [(0.2, 4.0, 1), (0.5, 3.0, 2), (0.5, 4.0, 2)])
def test_a_local_change_raises_one_alert_through_new_change_points_and_large_shares(share, extra_sd, seed):
    """r0's detector placed a new change point while all traffic waited (nothing since it: the wait went on);
    at half the traffic, dev=b sees r0's change diluted by about half, under explain_ratio's 1.75."""
    config = load_config(environ={}, overrides={"quality": {"enabled": False}})
    engine = PartitionEngine(config, clock=lambda: T0)
    drift = [
        (a.status, a.key) for a in _feed(engine, _regions(share, extra_sd, seed), batch=100) if a.kind == "data_drift"
    ]
    assert drift == [("firing", "m/v1/data_drift/amount/region=r0")]


@pytest.mark.parametrize("batch", [100, 1000])
def test_a_local_change_in_a_segment_whose_share_grew_raises_its_alert_only(batch):
    """A canary region carried 2% of the traffic, then 40%: its share since the version began (11%) made its
    change look too small to explain all traffic's, which paged too."""
    config = load_config(environ={}, overrides={"quality": {"enabled": False}})
    engine = PartitionEngine(config, clock=lambda: T0)
    events = _regions(0.4, 4.0, 1, early_share=0.02, change_at=25_000)
    drift = [(a.status, a.key) for a in _feed(engine, events, batch=batch) if a.kind == "data_drift"]
    assert drift == [("firing", "m/v1/data_drift/amount/region=r0")]


@pytest.mark.parametrize("batch", [100, 1000])
def test_a_change_everywhere_larger_in_one_segment_raises_all_traffics_alert(batch):
    """Every country's income moved, SG's more: not a local change, so all traffic does not wait for SG (had
    it waited, SG's alert would have explained it and every other country would have paged on its own)."""
    gen = TrafficGenerator(seed=1)
    events = list(gen.predictions(15_000, start_time=T0, rate=100.0))
    gen.drifts += [Drift("income", {}, scale=1.3), Drift("income", {"country": "SG"}, scale=2.0)]
    events += list(gen.predictions(10_000, start_time=T0, rate=100.0))
    drift = [(a.status, a.key) for a in _feed(_engine(), events, batch=batch) if a.kind == "data_drift"]
    assert drift[0] == ("firing", "churn/v1/data_drift/income/all")
    assert {k for _, k in drift} <= {"churn/v1/data_drift/income/all", "churn/v1/data_drift/income/country=SG"}


@_made_once
def _devices(
    share: float,
    seed: int,
    *,
    everywhere: float = 0.0,
    to: str = "tablet",
    part: float = 1.0,
    n: int = 25_000,
    r1_from: int | None = None,
    missing: float = 0.0,
    campaign: float = 1.0,
    until: int | None = None,
) -> list[dict[str, Any]]:
    """Traffic whose region r0 (``share`` of it) changes a share ``part`` of its devices to ``to`` after 15,000
    events, and every region a share ``everywhere``; region r1 all of its devices to "watch" from ``r1_from``.
    Another attribute (dev) beside region, carried by a share ``campaign`` of the rows; a share ``missing``
    of the rows without a device."""  # fmt: skip
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        region = 0 if rng.random() < share else int(rng.integers(1, 5))
        carries = campaign == 1.0 or rng.random() < campaign  # a row without the attribute is in no region
        device: str | None = ("phone", "desktop", "tablet")[pick(rng, DEVICE_BOUNDS)]
        changing = i >= 15_000 and (until is None or i < until)
        if changing and ((carries and region == 0 and rng.random() < part) or rng.random() < everywhere):
            device = to
        if r1_from is not None and i >= r1_from and region == 1:
            device = "watch"
        if rng.random() < missing:
            device = None
        segments = {"region": f"r{region}"} if carries else {}
        segments["dev"] = "ab"[int(rng.integers(0, 2))]
        events.append(
            {
                "prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i / 100.0,
                "features": {"device": device}, "prediction": 0.5, "segments": segments,
            }
        )  # fmt: skip
    return events


@pytest.mark.parametrize("batch", [7, 100, 1000, 3000, 5000])
@pytest.mark.parametrize(("share", "to"), [(0.2, "tablet"), (0.3, "tablet"), (0.5, "phone"), (0.1, "watch")])
def test_a_categorical_change_in_one_segment_raises_that_segments_alert_only(batch, share, to):
    """A segment's categorical window fills at its share of the traffic: all traffic's window fired first on the
    diluted change and the segment's alert came later (two pages). All traffic's window, split by region,
    shows the change is r0's: r0 fires on its rows there, when all traffic would have."""
    engine = PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0)
    events, drift = _devices(share, 1, to=to), []
    for end in range(batch, len(events) + batch, batch):
        drift += [
            (end, a.status, a.key)
            for a in _feed(engine, events[end - batch : end], batch=batch)
            if a.kind == "data_drift"
        ]
    assert [(s, k) for _, s, k in drift] == [("firing", "m/v1/data_drift/device/region=r0")]
    assert drift[0][0] <= 15_000 + 2_000 + batch  # when all traffic's window fired (r0's own fills slower)


def _drift_alerts(events: list[dict[str, Any]], batch: int) -> list[tuple[str, str]]:
    engine = PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0)
    return [(a.status, a.key) for a in _feed(engine, events, batch=batch) if a.kind == "data_drift"]


@pytest.mark.parametrize(
    ("batch", "options"),
    [
        (700, {"share": 0.5, "part": 0.3}),  # a partial change in half the traffic: all traffic's shift is half of it
        (1000, {"share": 0.5, "missing": 0.1}),  # missing values: all traffic's windows end inside batches
        (10, {"share": 0.7, "campaign": 0.12, "to": "watch"}),  # region on 12% of rows: batches without it end windows
    ],
)
def test_a_categorical_change_in_one_segment_is_one_alert_however_windows_and_batches_fall(batch, options):
    """The segment is judged on its rows of all traffic's window until its own window fires as clearly; every
    batch counts in the split, whether or not its rows carry the attribute; and while the segment's alert is
    open, all traffic's windows that its rows account for stay explained."""
    assert _drift_alerts(_devices(seed=3, n=30_000, **options), batch) == [
        ("firing", "m/v1/data_drift/device/region=r0")
    ]


@_made_once
def _everywhere(seed: int, regions: int, local: bool, rate: float = 0.12) -> list[dict[str, Any]]:
    """Region r0 has 10% of the traffic with ``local`` (every device of r0 turns tablet from event 15,000, then
    15% of every row's devices turn desktop from 22,000), else a share 1/``regions`` (a share ``rate`` of every
    row's devices turn desktop from 15,000); the other regions share the rest evenly."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(32_000 if local else 30_000):
        region = 0 if rng.random() < (0.1 if local else 1 / regions) else int(rng.integers(1, regions))
        device = ("phone", "desktop", "tablet")[pick(rng, DEVICE_BOUNDS)]
        dev = "ab"[int(rng.integers(0, 2))]
        if local and i >= 15_000 and region == 0:
            device = "tablet"
        elif i >= (22_000 if local else 15_000) and rng.random() < (0.15 if local else rate):
            device = "desktop"
        events.append(
            {
                "prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i / 100.0,
                "features": {"device": device}, "prediction": 0.5, "segments": {"region": f"r{region}", "dev": dev},
            }
        )  # fmt: skip
    return events


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_change_everywhere_after_a_local_ones_alert_still_pages_all_traffic(seed: int) -> None:
    """r0's local alert is open when every region moves: put back with r0, all traffic still shows a change (the
    open alerts do not account for it), and no segment is told local by chance from all traffic's window."""
    alerts = [
        (a.status, a.key.split("/")[-1], a.current["events"])
        for a in _feed(
            PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0),
            _everywhere(seed, 5, local=True),
        )
        if a.kind == "data_drift"
    ]
    assert alerts[0][:2] == ("firing", "region=r0") and ("firing", "all", 1000) in alerts
    assert all(events == 1000 for _, key, events in alerts[1:])  # later ones on their own windows


@pytest.mark.parametrize(("regions", "rate", "seed"), [(3, 0.12, 3), (3, 0.12, 11), (3, 0.12, 14), (3, 0.08, 11),
                                                     (2, 0.12, 8), (5, 0.08, 5)])  # fmt: skip
def test_a_change_everywhere_is_never_one_segments_by_chance(regions: int, rate: float, seed: int) -> None:
    """One value of an attribute can be significant in all traffic's window by chance while the others just miss:
    the others must show no sign of a change, and its change must be explain_ratio times all traffic's and, diluted
    by its share, account for it, before one value is said to."""
    alerts = _feed(
        PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0),
        _everywhere(seed, regions, local=False, rate=rate),
    )
    assert all(a.current["events"] == 1000 for a in alerts if a.kind == "data_drift")


def test_all_traffics_window_is_split_by_segment_in_every_batch_even_one_without_the_attribute() -> None:
    """A batch none of whose rows carries the attribute can end all traffic's window: the split must end it too,
    or its next window holds rows of several (a change read from them was diluted, and all traffic paged)."""
    engine = PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0)
    events, checked = _devices(0.3, 2, n=8_000, campaign=0.2), 0
    for lo in range(0, len(events), 10):
        _feed(engine, events[lo : lo + 10], batch=10)
        state = next(iter(engine.models.values()))
        breakdown = state.breakdowns.get(("device", "region"))
        if breakdown is not None and breakdown.closed is not None:
            assert breakdown.closed_time == state.streams["device", "", ""].last_time
            assert breakdown.closed.sum() <= 1_000
            checked += 1
    assert checked > 500


def test_a_local_alert_that_resolved_is_forgotten() -> None:
    """The segments whose alerts the local path opened count as at their reference only while those are open: one
    that resolved is dropped, whether or not all traffic fires again."""
    engine = PartitionEngine(load_config(environ={}, overrides={"quality": {"enabled": False}}), clock=lambda: T0)
    alerts = _feed(engine, _devices(0.3, 1, n=60_000, until=20_000))
    assert [(a.status, a.key.split("/")[-1]) for a in alerts if a.kind == "data_drift"] == [
        ("firing", "region=r0"),
        ("resolved", "region=r0"),
    ]
    assert not next(iter(engine.models.values())).local_alerts


def test_a_second_segments_change_while_the_first_ones_alert_is_open_is_its_own() -> None:
    """r0's change goes on while r1's begins: put back to their references with r0's open alert, all traffic
    shows r1's change only (it paged for the two together)."""
    assert _drift_alerts(_devices(0.2, 1, n=28_000, r1_from=18_000), 1000) == [
        ("firing", "m/v1/data_drift/device/region=r0"),
        ("firing", "m/v1/data_drift/device/region=r1"),
    ]


@pytest.mark.parametrize("batch", [100, 1000])
@pytest.mark.parametrize(("everywhere", "to"), [(0.2, "tablet"), (0.08, "watch")])
def test_a_categorical_change_everywhere_larger_in_one_segment_keeps_all_traffics_alert(batch, everywhere, to):
    """Every region moved, r0 entirely: put back to r0's reference, all traffic still shows a change, so it is
    not r0's alone and all traffic pages (a new category in 8% of every region's rows too)."""
    config = load_config(environ={}, overrides={"quality": {"enabled": False}})
    events = _devices(0.1, 2, everywhere=everywhere, to=to)
    drift = [(a.status, a.key) for a in _feed(PartitionEngine(config, clock=lambda: T0), events, batch=batch)]
    drift = [d for d in drift if "/data_drift/" in d[1]]
    assert drift[0] == ("firing", "m/v1/data_drift/device/all")
    assert {k for _, k in drift} <= {"m/v1/data_drift/device/all", "m/v1/data_drift/device/region=r0"}


def test_a_segment_is_never_judged_without_all_traffic(monkeypatch):
    """Only streams with something to judge are judged, but attribution (one change, one alert) needs all
    traffic's judgement beside every segment's: a segment judged alone could page while all traffic's alert
    is in its cooldown."""
    engine = _engine()
    calls: list[list[tuple[str, str]]] = []
    decide = engine.judging.decide

    def spy(state, name, touched, **kw):
        calls.append([bucket for bucket, _, _ in touched])
        return decide(state, name, touched, **kw)

    monkeypatch.setattr(engine.judging, "decide", spy)
    _feed(engine, _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6)))
    with_segments = [c for c in calls if any(b != ("", "") for b in c)]
    assert with_segments, "the drifting segment was never judged"
    assert all(("", "") in c for c in with_segments)
    assert any(len(c) < 9 for c in calls if c)  # and the gate did leave out streams with nothing to judge


def test_a_stationary_stream_raises_nothing():
    assert _feed(_engine(), _stream(80_000, 0, None, seed=4)) == []


def test_an_alert_resolves_with_the_same_id_once_the_feature_is_back_for_long_enough():
    events = _stream(10_000, 8_000, Drift("age", {}, shift=15.0), n_back=12_000)
    alerts = _feed(_engine(), events)
    assert [(a.status, a.key) for a in alerts] == [
        ("firing", "churn/v1/data_drift/age/all"),
        ("resolved", "churn/v1/data_drift/age/all"),
    ]
    assert alerts[0].alert_id == alerts[1].alert_id
    assert alerts[1].severity == "info" and "back near its usual level" in alerts[1].message


def test_alert_ids_do_not_depend_on_batch_boundaries():
    events = _stream(10_000, 8_000, Drift("income", {"country": "SG"}, scale=1.6), n_back=20_000)
    ids = {
        b: [(a.status, a.key, a.alert_id, a.started_at) for a in _feed(_engine(), events, batch=b)]
        for b in (250, 1000, 4096)
    }
    assert ids[250] and ids[250] == ids[1000] == ids[4096]


def test_categorical_and_prediction_drift_are_caught():
    gen = TrafficGenerator(seed=9)
    events = list(gen.predictions(8_000, start_time=T0, rate=100.0))
    later = list(gen.predictions(6_000, start_time=T0, rate=100.0))
    for e in later:
        e["features"]["device"] = "tablet"
        e["prediction"] = min(1.0, e["prediction"] + 0.3)
    keys = {a.key for a in _feed(_engine(), events + later) if a.status == "firing"}
    assert "churn/v1/data_drift/device/all" in keys
    assert "churn/v1/prediction_drift/prediction/all" in keys


def test_exactly_one_partition_speaks_for_each_alert_key():
    events = _stream(10_000, 8_000, Drift("income", {"country": "SG"}, scale=1.6))
    per_partition = [_feed(_engine(partition=p, partitions=3), events) for p in range(3)]
    assert sorted(len(a) for a in per_partition) == [0, 0, 1]


def test_segment_values_beyond_the_cap_share_one_overflow_bucket():
    eng = _engine(monitoring={"max_segment_values": 2})
    _feed(eng, _stream(3_000, 0, None))
    state = eng.models["churn", "v1"]
    segments = {(a, v) for (_, a, v) in state.streams}
    assert ("country", "__other__") in segments
    assert len({v for a, v in segments if a == "country"}) == 3  # two tracked values + overflow
    assert eng.model_monitor.capped["segment_value"] > 0


def test_a_value_named_as_the_overflow_bucket_is_that_bucket_not_a_second_one():
    """A profile stage's cap (or an event) can send the overflow bucket's name as a value. Learned as a value of
    its own, it made a second bucket with the same key beside the real overflow, whose streams then came in two
    runs of one batch (the compiled chunker wrote past its arrays there)."""
    events = _stream(6_000, 0, None)
    values = ["__other__", "a", "b", "c"]
    for i, e in enumerate(events):
        e["segments"] = {**e["segments"], "country": values[i] if i < 2 else values[i % 4]}
    eng = _engine(monitoring={"max_segment_values": 2})
    _feed(eng, events)
    state = eng.models["churn", "v1"]
    assert state.segment_codes["country"] == {"a": 0, "b": 1}  # the overflow's name is never learned as a value
    assert {v for (_, a, v) in state.streams if a == "country"} == {"a", "b", "__other__"}
    block = next(b for b in state.numeric.values() if ("income", "country", "__other__") in b.index)
    other, alone = block.index["income", "country", "__other__"], block.index["income", "country", "a"]
    assert int(block.n[other]) == 3_000 and int(block.n[alone]) == 1_500  # "__other__" and "c" rows together
    assert int(block.chunker.count[other]) == 3_000 - 300  # every value past the warm-up chunked, once


def test_a_segment_attribute_without_a_name_is_not_a_second_all_traffic_bucket():
    """All traffic's bucket is ("", ""): an attribute named "" with the value "" made a second bucket with its
    key, and every all-traffic value after the warm-up was chunked twice."""
    events = _stream(3_000, 0, None)
    for e in events:
        e["segments"] = {**e["segments"], "": ""}
    eng = _engine()
    _feed(eng, events)
    state = eng.models["churn", "v1"]
    assert "" not in state.segment_attributes
    block = next(b for b in state.numeric.values() if ("income", "", "") in b.index)
    i = block.index["income", "", ""]
    assert int(block.n[i]) == 3_000 and int(block.chunker.count[i]) == 3_000 - 300


def test_a_restart_with_a_lower_segment_cap_keeps_the_overflow_apart_from_learned_values():
    """Values learned under a higher ``monitoring.max_segment_values`` keep their codes after a restart with a
    lower one; the overflow's code must lie past them all, or new values' rows joined the bucket of the value
    whose code equals the new cap, under that value's name."""
    events = _stream(4_000, 0, None)
    for i, e in enumerate(events):
        e["segments"] = {**e["segments"], "country": "abcd"[i % 4]}
    eng = _engine(monitoring={"max_segment_values": 4})
    _feed(eng, events)
    lower = _engine(monitoring={"max_segment_values": 2}).config
    twin = PartitionEngine.restore(lower, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    later = _stream(2_000, 0, None, seed=2)
    for i, e in enumerate(later):
        e["segments"] = {**e["segments"], "country": "ce"[i % 2]}  # c learned (code 2, the new cap), e new
    _feed(twin, later)
    state = twin.models["churn", "v1"]
    block = next(b for b in state.numeric.values() if ("income", "country", "c") in b.index)
    assert int(block.n[block.index["income", "country", "c"]]) == 1_000 + 1_000  # its own rows only
    assert int(block.n[block.index["income", "country", "__other__"]]) == 1_000  # e's rows


def test_streams_features_and_models_are_capped_and_counted():
    eng = _engine(monitoring={"max_streams": 10, "max_features_per_model": 3, "max_models": 1})
    events = _stream(2_000, 0, None)
    other = [{**e, "model": "fraud"} for e in events[:100]]
    _feed(eng, events + other)
    assert eng.model_monitor.stream_count == 10
    assert len(eng.models["churn", "v1"].kinds) == 3
    assert set(eng.models) == {("churn", "v1")}
    capped = eng.model_monitor.capped
    assert capped["stream"] > 0 and capped["feature"] > 0 and capped["model"] == 100


def _version(events: list[dict[str, Any]], version: str, shift_s: float) -> list[dict[str, Any]]:
    return [
        {
            **e,
            "model_version": version,
            "prediction_id": f"{version}-{e['prediction_id']}",
            "timestamp": e["timestamp"] + shift_s,
        }
        for e in events
    ]


def test_a_model_version_without_predictions_for_retire_after_s_is_retired_and_its_alert_resolves():
    eng = _engine(monitoring={"retire_after_s": 3600.0, "max_models": 1})
    old = _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6))  # 250 s of event time
    fired = _feed(eng, old, batch=5_000)  # (few batches: the clock, a median of batches, then moves sooner)
    assert [(a.status, a.key) for a in fired] == [("firing", "churn/v1/data_drift/income/country=SG")]
    v1_streams = eng.model_monitor.stream_count
    assert v1_streams > 0

    # v2 starts while v1 still serves: the cap of one version turns it away, and v1 stays
    early = _version(_stream(500, 0, None, seed=2), "v2", 100.0)
    assert _feed(eng, early) == []
    assert set(eng.models) == {("churn", "v1")} and eng.model_monitor.capped["model"] == 500

    # an hour after v1's last prediction, v1 is retired before v2's batch takes its place
    later = _version(_stream(2_000, 0, None, seed=3), "v2", 250.0 + 3_600.0)
    alerts = _feed(eng, later, batch=100)  # (the clock moves once a tenth of its recent batches are later)
    assert [(a.status, a.key, a.detector, a.severity) for a in alerts] == [
        ("resolved", "churn/v1/data_drift/income/country=SG", "retired", "info")
    ]
    resolved = alerts[0]
    assert resolved.alert_id == fired[0].alert_id and resolved.incident_id == fired[0].incident_id
    assert resolved.model_version == "v1" and resolved.segment == {"country": "SG"} and resolved.subject == "income"
    assert resolved.message == (
        "Model churn v1 has received no predictions for 1 hour: it is no longer monitored, "
        "and this alert closes with it."
    )
    # (v2's first later batches still found v1 in place: the clock lags by about half its recent batches)
    assert set(eng.models) == {("churn", "v2")} and eng.model_monitor.capped["model"] >= 500
    assert eng.models["churn", "v2"].events + eng.model_monitor.capped["model"] == 2_500
    assert eng.retired == {"versions": 1, "events": 25_000}
    assert eng.events_total() == 25_000 + eng.models["churn", "v2"].events  # the retired version's still count
    assert eng.model_monitor.stream_count == eng.models["churn", "v2"].stream_count() > 0
    assert not any(k.startswith("churn/v1/") for k in eng.alerting.lifecycle.cooldown_until)
    assert not any(n.startswith("churn/v1/") for n in eng.alerting.incidents.open)
    view = build_view(eng)  # what /metrics reads: monitor_models_retired_total
    assert view.retired_versions == 1 and set(view.models) == {("churn", "v2")}
    twin = PartitionEngine.restore(eng.config, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    assert twin.retired == eng.retired and twin.activity.seen == eng.activity.seen
    assert twin.activity.active == eng.activity.active


def test_the_profile_stage_lets_a_retired_version_go_too():
    """The partition's segment caps, heartbeats and join table forget a retired version (its counts stay for
    the audit); the join keeps its combinations while its predictions wait for labels, and lets them go after."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    old = _stream(1_000, 0, None)
    _feed(eng, old)
    _feed(eng, _version(_stream(1_500, 0, None, seed=2), "v2", 3_600.0 + 100.0), batch=100)
    profile = eng.profile
    assert ("churn", "v1") not in profile.segment_caps.attributes and ("churn", "v1") not in profile.keys
    assert not any(key[:2] == ("churn", "v1") for key in profile.segment_caps.values)
    assert set(profile.activity.arrived) == {("churn", "v2")} and profile.events["churn", "v1"] == 1_000
    held = {c[:2] for c in profile.joiner._combos}
    assert held == {("churn", "v1"), ("churn", "v2")} and profile.joiner.retired == {("churn", "v1")}
    labels = [
        {"prediction_id": e["prediction_id"], "model": "churn", "label": 1, "timestamp": e["timestamp"] + 3_700.0}
        for e in old
    ]
    res = eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels))
    assert res.processed == 1_000 and not res.rejected
    assert {c[:2] for c in profile.joiner._combos} == {("churn", "v2")} and not profile.joiner.retired
    assert ("churn", "v1") not in profile.keys  # its labels' summaries bring back no heartbeats
    twin = PartitionEngine.restore(eng.config, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    assert twin.profile.activity.arrived == profile.activity.arrived
    assert twin.profile.activity.active == profile.activity.active


def test_a_restart_with_a_raised_fdr_computes_p_values_exactly_up_to_it():
    """Window tests compute a KS p-value exactly only where it can be at most the fdr; the level comes from
    the config a restart runs with, not from the snapshot (a raised fdr must not lose discoveries)."""
    eng = _engine(significance={"fdr": 0.05})
    _feed(eng, _stream(2_000, 0, None))
    tables = [b.windows for b in eng.models["churn", "v1"].numeric.values()]
    assert tables and {t.exact_p_below for t in tables if t is not None} == {0.05}
    raised = _engine(significance={"fdr": 0.1}).config
    twin = PartitionEngine.restore(raised, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    state = twin.models["churn", "v1"]
    assert {b.windows.exact_p_below for b in state.numeric.values() if b.windows is not None} == {0.1}
    assert state.tests and {t.exact_p_below for t in state.tests.values()} == {0.1}


def test_events_stamped_far_in_the_future_or_late_retire_nothing():
    """The clock is the median of the last thousand batches' median times: an event from a broken client
    clock, alone in its batch or not, does not move it far, and a version whose late rows still come is kept."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    v1, v2 = _stream(3_000, 0, None), _version(_stream(3_000, 0, None, seed=2), "v2", 0.0)
    future = {**v2[0], "prediction_id": "future", "timestamp": T0 + 10 * 365 * 86400.0}
    late = {**v1[0], "prediction_id": "late", "timestamp": T0 - 2 * 3600.0}
    for k in range(0, 3_000, 500):
        _feed(eng, v1[k : k + 500] + v2[k : k + 500])
        _feed(eng, [future if k % 1000 else late], batch=1)  # one message polled alone
        future = {**future, "prediction_id": f"future-{k}"}
        late = {**late, "prediction_id": f"late-{k}"}
    assert set(eng.models) == {("churn", "v1"), ("churn", "v2")} and not eng.retired
    assert set(eng.profile.activity.arrived) == {("churn", "v1"), ("churn", "v2")}


def _at(events: list[dict[str, Any]], start: float, every_s: float, tag: str) -> list[dict[str, Any]]:
    return [{**e, "prediction_id": f"{tag}-{i}", "timestamp": start + i * every_s} for i, e in enumerate(events)]


def test_a_version_stamped_hours_behind_the_rest_is_kept_while_it_predicts():
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    v1 = _stream(20_000, 0, None)
    behind = _version(_stream(20_000, 0, None, seed=2), "v2", -2 * 3600.0)  # a client stamping two hours late
    for k in range(0, 20_000, 500):
        _feed(eng, v1[k : k + 500] + behind[k : k + 500], batch=1_000)
    assert set(eng.models) == {("churn", "v1"), ("churn", "v2")} and not eng.retired


def test_a_version_stamped_behind_the_rest_in_batches_of_its_own_is_kept_while_it_predicts():
    """Its batches' samples are its own lagging times: its activity is the rest's recent time then, so the
    rest's next batches do not make it look idle."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    v1 = _at(_stream(40_000, 0, None), T0, 0.01, "v1")  # 100 rows a second
    behind = _version(_at(_stream(2_000, 0, None, seed=2), T0 - 2 * 3600.0, 0.2, "behind"), "v2", 0.0)
    for k in range(400):
        _feed(eng, v1[100 * k : 100 * k + 100], batch=100)
        if k % 20 == 19:
            _feed(eng, behind[100 * (k // 20) : 100 * (k // 20) + 100], batch=100)  # a poll of its own
    assert set(eng.models) == {("churn", "v1"), ("churn", "v2")} and not eng.retired


def test_a_version_retires_by_its_own_newest_time_when_the_rest_pass_it():
    """A version stamped two hours ahead of the rest (a time-zone bug) is idle only once the rest of the
    traffic has passed its own newest time by retire_after_s: kept longer, never retired early."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    ahead = _version(_stream(1_000, 0, None), "v1", 2 * 3600.0)  # T0 + 2 h to T0 + 2 h + 10 s
    _feed(eng, ahead, batch=100)
    rest = _version(_at(_stream(3_000, 0, None, seed=2), T0 + 10.0, 10.0, "rest"), "v2", 0.0)  # 30,000 s
    retired_at = None
    for k in range(0, 3_000, 10):
        _feed(eng, rest[k : k + 10], batch=10)
        if eng.retired and retired_at is None:
            retired_at = rest[k + 9]["timestamp"]
    assert retired_at is not None and retired_at >= ahead[-1]["timestamp"] + 3_600.0
    assert set(eng.models) == {("churn", "v2")} and eng.retired["versions"] == 1


def test_a_slow_version_is_kept_when_a_busy_one_starts_beside_it():
    """A version predicting every 10 minutes stays while a version at 10 a second starts: the clock lags the
    newest times, and a version is idle only once the clock has passed its own newest prediction."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    slow = _at(_stream(300, 0, None), T0, 600.0, "slow")  # 50 hours
    busy = _version(_at(_stream(18_000, 0, None, seed=2), T0 + 48 * 3600.0, 0.1, "busy"), "v2", 0.0)
    events = sorted(slow + busy, key=lambda e: e["timestamp"])
    assert [a for a in _feed(eng, events, batch=100) if a.detector == "retired"] == []
    assert set(eng.models) == {("churn", "v1"), ("churn", "v2")} and not eng.retired


def test_a_version_retires_when_the_rest_of_the_traffic_is_a_trickle():
    """When the busy version stops and one prediction a minute goes on, it retires within retire_after_s plus
    what about a tenth of the clock's thousand recent predictions span (the clock's lag)."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    busy = _at(_stream(10_000, 0, None), T0, 0.1, "busy")  # stops at T0 + 1,000 s
    trickle = _version(_at(_stream(400, 0, None, seed=2), T0 + 1_000.0, 60.0, "trickle"), "v2", 0.0)
    _feed(eng, busy, batch=1_000)
    retired_at = None
    for e in trickle:
        _feed(eng, [e], batch=1)
        if eng.retired and retired_at is None:
            retired_at = e["timestamp"]
    assert retired_at is not None
    assert T0 + 1_000.0 + 3_600.0 <= retired_at <= T0 + 1_000.0 + 3_600.0 + 110 * 60.0


def test_a_snapshot_from_before_the_event_clock_restores_without_retiring_anything_early():
    """An older release's snapshot has no clock: none is read until a hundred predictions have come, so a
    late row first after the restore cannot set anything back, and the versions' own times carry over."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    v1 = _stream(2_000, 0, None)
    v2 = _version(_stream(2_000, 0, None, seed=2), "v2", 0.0)
    _feed(eng, sorted(v1 + v2, key=lambda e: e["timestamp"]))
    data = orjson.loads(orjson.dumps(eng.snapshot()))
    for name in ("version_activity", "retired", "alert_lives"):
        del data["state"][name]
    older = data["state"]["profile_state"]["$d"]
    data["state"]["profile_state"]["$d"] = [kv for kv in older if kv[0] != "activity"]
    twin = PartitionEngine.restore(eng.config, data, clock=lambda: T0)
    late = {**v1[0], "prediction_id": "late", "timestamp": T0 - 2 * 3600.0}
    _feed(twin, [late], batch=1)
    more = _version(_at(_stream(3_000, 0, None, seed=3), T0 + 25.0, 0.01, "more"), "v2", 0.0)
    _feed(twin, more)  # v1 stopped 5 s before v2's 30 s more: an hour has not passed
    assert set(twin.models) == {("churn", "v1"), ("churn", "v2")} and not twin.retired


def test_a_version_whose_name_begins_like_a_retired_ones_keeps_its_alerts():
    """Retiring churn/v1 leaves churn/v1/canary alone, though its keys begin with "churn/v1/" too."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    v1 = _stream(2_000, 0, None)
    canary = _version(_stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6), seed=3), "v1/canary", 0.0)
    canary = sorted(canary + v1, key=lambda e: e["timestamp"])
    fired = _feed(eng, canary, batch=5_000)
    assert [(a.status, a.model_version) for a in fired] == [("firing", "v1/canary")]
    key = fired[0].key
    assert key.startswith("churn/v1/") and eng.alerting.lifecycle.is_firing(key)
    later = _version(_stream(2_000, 0, None, seed=4), "v1/canary", 3_600.0 + 300.0)
    assert _feed(eng, later, batch=100) == []  # v1 retires (it had no alert); the canary's stays open, with its memory
    assert set(eng.models) == {("churn", "v1/canary")} and eng.retired["versions"] == 1
    assert eng.alerting.lifecycle.is_firing(key) and key in eng.alerting.incident_shift


def test_a_version_that_comes_back_after_it_was_retired_gets_new_alert_ids():
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    first = _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6))
    fired = _feed(eng, first, batch=5_000)
    _feed(eng, _version(_stream(1_500, 0, None, seed=2), "v2", 250.0 + 3_600.0), batch=100)
    assert eng.retired["versions"] == 1 and ("churn", "v1") not in eng.models
    shift = 2 * 3_600.0 + 250.0
    again = [{**e, "prediction_id": f"again-{e['prediction_id']}", "timestamp": e["timestamp"] + shift} for e in first]
    refired = [a for a in _feed(eng, again) if a.status == "firing" and a.model_version == "v1"]
    assert [a.key for a in refired] == [fired[0].key]  # the same change at the same place of the same stream
    assert refired[0].alert_id != fired[0].alert_id


def test_an_incident_restored_from_an_older_release_can_be_snapshotted_and_retired():
    """An Incident an older release wrote has no kind, subject or segment: the key tells them."""
    eng = _engine(monitoring={"retire_after_s": 3600.0})
    fired = _feed(eng, _stream(15_000, 10_000, Drift("income", {"country": "SG"}, scale=1.6)), batch=5_000)
    twin = PartitionEngine.restore(eng.config, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    assert twin.alerting.lifecycle.open
    for incident in twin.alerting.lifecycle.open.values():  # as restored from an older release's snapshot
        for name in ("kind", "subject", "segment"):
            del incident.__dict__[name]
    twin.snapshot()  # every field readable
    alerts = _feed(twin, _version(_stream(1_500, 0, None, seed=2), "v2", 250.0 + 3_600.0), batch=100)
    assert [(a.status, a.kind, a.subject, a.segment) for a in alerts] == [
        ("resolved", "data_drift", "income", {"country": "SG"})
    ]
    assert alerts[0].alert_id == fired[0].alert_id


def test_versions_are_never_retired_with_retire_after_s_zero():
    eng = _engine(monitoring={"retire_after_s": 0.0})
    _feed(eng, _stream(500, 0, None) + _version(_stream(500, 0, None, seed=2), "v2", 30 * 86400.0))
    assert set(eng.models) == {("churn", "v1"), ("churn", "v2")} and not eng.retired


def test_a_value_of_the_wrong_type_is_counted_and_treated_as_missing():
    eng = _engine()
    events = _stream(500, 0, None)
    for e in events[5::10]:
        e["features"]["age"] = "forty"
    _feed(eng, events)
    state = eng.models["churn", "v1"]
    assert state.type_mismatch["age"] == 50
    assert state.tracker(("age", "", "")).view()["missing"] == 50


def test_ignored_and_selected_features():
    eng = _engine(monitoring={"features": ["age", "income"], "watch_prediction": False})
    _feed(eng, _stream(500, 0, None))
    assert set(eng.models["churn", "v1"].kinds) == {"age", "income"}
    eng = _engine(monitoring={"ignore_features": ["age"]})
    _feed(eng, _stream(500, 0, None))
    assert "age" not in eng.models["churn", "v1"].kinds


def test_a_feature_named_like_the_predictions_streams_leaves_them_alone():
    """``__prediction__`` names the prediction's own streams: a feature of that name (seen from outside) fed
    them a second column, twice a batch, and counted twice their windows' detections."""

    def events(extra: bool) -> list[dict]:
        rng = np.random.default_rng(5)
        out = []
        for i in range(3_000):
            features = {"c0": "ab"[int(rng.random() < 0.5)]}
            odd = "uv"[int(rng.random() < (0.2 if i < 1_500 else 0.8))]
            if extra:
                features["__prediction__"] = odd
            out.append({"prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i,
                        "features": features, "prediction": "dog" if rng.random() < 0.3 else "cat"})  # fmt: skip
        return out

    def streams(extra: bool) -> dict:
        eng = _engine()
        _feed(eng, events(extra))
        state = eng.models["m", "v1"]
        return {k: (t.count, t.counts.tolist(), dict(t.detections)) for k, t in state.streams.items()}

    assert streams(True) == streams(False)
    assert streams(True)[("__prediction__", "", "")][0] == 3_000


@pytest.mark.parametrize("segments", [["country"], []])
def test_configured_segments_limit_the_buckets(segments):
    eng = _engine(monitoring={"segments": segments})
    _feed(eng, _stream(1_000, 0, None))
    attrs = {a for (_, a, _) in eng.models["churn", "v1"].streams if a}
    assert attrs == ({"country"} if segments else {"country", "gender"})


def test_a_model_version_is_one_state_whether_its_rows_come_alone_or_mixed_with_others():
    """Names are kept as they come (a separator inside one used to split a mixed batch's keys differently)."""
    engine = PartitionEngine(load_config(environ={}), clock=lambda: 0.0)

    def event(i: int, model: str, version: str) -> bytes:
        return orjson.dumps({"prediction_id": f"{i}", "model": model, "model_version": version, "timestamp": 1e9 + i,
                             "features": {"x": float(i)}, "prediction": 0.5})  # fmt: skip

    engine.process_predictions([event(i, "a", "b\x00v") for i in range(3)], [0.0] * 3)
    mixed = [event(3, "a", "b\x00v"), event(4, "c", "v"), event(5, "a", "b\x00v"), event(6, "a\x00b", "v")]
    engine.process_predictions(mixed, [0.0] * 4)
    assert {key: state.events for key, state in engine.models.items()} == {
        ("a", "b\x00v"): 5, ("c", "v"): 1, ("a\x00b", "v"): 1,
    }  # fmt: skip


def test_stationary_heavy_tailed_features_raise_no_drift_alert():
    """Lognormal amounts (sigma 2) and Pareto ones (infinite variance) keep their tails in the baseline: cut at
    ten robust standard deviations, the lognormal's baseline mean was 40% low and every later window a rise."""
    rng = np.random.default_rng(0)
    eng = _engine()
    alerts: list[Alert] = []
    n = 50_000
    lognormal, pareto = rng.lognormal(10.0, 2.0, n), np.round(rng.pareto(1.5, n) * 100, 2)
    for start in range(0, n, 1000):
        events = [
            {"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i / 100,
             "features": {"income": float(lognormal[i]), "amount": float(pareto[i])}, "prediction": 0.5}
            for i in range(start, start + 1000)
        ]  # fmt: skip
        alerts += eng.process_predictions([orjson.dumps(e) for e in events], [0.0] * 1000).alerts
    alerts += eng.finish()
    assert eng.events_total() == n
    assert [a.key for a in alerts] == []


@pytest.mark.parametrize("seed", [1, 2])
def test_a_fixed_change_everywhere_resolves_once_and_its_segments_do_not_page_it_afterwards(seed):
    """All traffic's alert resolves first when a change everywhere is fixed (its detector has the most events);
    its segments' slower evidence still showed the change, and once all traffic's cooldown was over each of
    them paged the change already fixed, one by one (19 pages after one fix, seen from outside)."""
    events = _stream(10_000, 20_000, Drift("age", {}, shift=15.0), seed=seed, n_back=40_000)
    engine = _engine(alerts={"cooldown_s": 10.0, "cooldown_events": 500})
    drift = [(a.status, a.key) for a in _feed(engine, events) if a.kind == "data_drift"]
    assert drift == [("firing", "churn/v1/data_drift/age/all"), ("resolved", "churn/v1/data_drift/age/all")]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_fixed_categorical_change_everywhere_resolves_once_and_its_segments_do_not_page_it(seed):
    """As above for a category: a segment's chi-square window that began before the fix is of the same change."""
    events = _devices(0.2, seed, everywhere=0.4, to="watch", part=0.0, n=70_000, until=35_000)
    engine = PartitionEngine(
        load_config(environ={}, overrides={"quality": {"enabled": False}, "alerts": {"cooldown_s": 10.0,
                                                                                       "cooldown_events": 500}}),
        clock=lambda: T0,
    )  # fmt: skip
    drift = [(a.status, a.key) for a in _feed(engine, events) if a.kind == "data_drift"]
    assert drift == [("firing", "m/v1/data_drift/device/all"), ("resolved", "m/v1/data_drift/device/all")]
    # the alert's window starts at the first event of the tested window: windows of 1,000 values after a
    # warm-up of 1,000, one event every 10 ms, so at a whole multiple of 10 s (it started at the window's last)
    config = load_config(environ={}, overrides={"quality": {"enabled": False}})
    fired = next(a for a in _feed(PartitionEngine(config, clock=lambda: T0), events[:20_000]))
    start = datetime.fromisoformat(fired.window["start"].replace("Z", "+00:00")).timestamp() - T0
    assert start >= 10.0 and abs(start / 10.0 - round(start / 10.0)) < 1e-4, start


def test_a_snapshot_from_before_resolution_times_restores_and_resolves_its_open_alert():
    """An alert open in a snapshot of the release before ``AlertLifecycle.resolved_at``: its resolution raised
    AttributeError out of the batch (a stranger's review)."""
    from monitor.core import snapshot

    events = _stream(10_000, 8_000, Drift("age", {}, shift=15.0), n_back=12_000)
    engine = _engine()
    fired = _feed(engine, events[:18_000])
    assert [(a.status, a.key) for a in fired if a.kind == "data_drift"] == [("firing", "churn/v1/data_drift/age/all")]
    data = snapshot.loads(snapshot.dumps(engine.snapshot()))

    def drop(node: object) -> int:
        if isinstance(node, dict):
            found = int(node.get("$o") == "AlertLifecycle" and node.get("f", {}).pop("resolved_at", None) is not None)
            return found + sum(drop(v) for v in node.values())
        return sum(drop(v) for v in node) if isinstance(node, list) else 0

    assert drop(data) == 1
    twin = PartitionEngine.restore(engine.config, data, clock=lambda: T0)
    rest = [(a.status, a.key) for a in _feed(twin, events[18_000:]) if a.kind == "data_drift"]
    assert rest == [("resolved", "churn/v1/data_drift/age/all")]


def test_a_categorical_bucket_the_stream_cap_turned_away_gets_no_window_test():
    """The cap reached partway through a categorical subject's buckets: the buckets with a tracker get their
    window tests and breakdown, the others neither (a window test without its stream would judge traffic the
    cap turned away)."""
    numeric = sum(b.size for b in _fed_state(_engine()).numeric.values())
    eng = _engine(monitoring={"max_streams": numeric + 3})
    state = _fed_state(eng)
    assert eng.model_monitor.capped["stream"] > 0
    assert 0 < len(state.streams) <= 3
    assert set(state.tests) == set(state.streams)
    assert all(t.seen > 0 for t in state.tests.values())


def _fed_state(eng: PartitionEngine) -> Any:
    _feed(eng, _stream(3_000, 0, None))
    return eng.models["churn", "v1"]


def test_numeric_stream_ids_kept_between_batches_follow_new_segment_values_and_features(monkeypatch):
    """A numeric table keeps the last batch's stream ids (subjects x buckets) while no stream is added: batches
    whose segment values, features and order change (a value seen first late, a feature that comes and goes)
    feed every stream as an engine that finds each stream by its key on every batch does."""
    from monitor.core.numeric_streams import NumericStreams

    rng = np.random.default_rng(11)
    events = []
    for i in range(6_000):
        features: dict[str, Any] = {"x": float(rng.normal()), "y": float(rng.normal(5.0, 2.0))}
        if 2_000 <= i < 4_000 and i % 3:
            features["z"] = float(rng.normal(-1.0))
        countries = ["DE", "US"] if i < 1_500 else ["DE", "US", "SG"] if i < 4_500 else ["US", "BR"]
        events.append({"prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i,
                       "features": features, "prediction": float(rng.random()),
                       "segments": {"country": countries[int(rng.integers(len(countries)))]}})  # fmt: skip

    def streams(keep: bool) -> dict[Any, Any]:
        if not keep:
            monkeypatch.setattr(NumericStreams, "known_ids", lambda self, names, buckets: None)
        eng = _engine()
        _feed(eng, events, batch=250)
        monkeypatch.undo()
        block = eng.models["m", "v1"].numeric[""]
        return {
            key: (int(block.count[i]), float(block.mean[i]), block.histogram[i].tolist(), block.quantiles(i))
            for key, i in block.index.items()
        }

    kept, found = streams(True), streams(False)
    assert ("z", "country", "SG") in kept and ("x", "country", "BR") in kept
    assert kept == found


@_made_once
def _devices_everywhere() -> list[dict[str, Any]]:
    """A third of every region's devices turn tablet from event 15,000 to 22,000 (100 events a second)."""
    return _devices(0.0, 4, everywhere=0.3, n=30_000, until=22_000)


@pytest.mark.parametrize("significance", [False, True])
def test_a_categorical_alert_opens_at_the_window_that_shows_the_change_however_many_a_batch_closes(significance):
    """A batch larger than ``detectors.categorical_window`` closes several of all traffic's windows: each is
    judged in turn, so the alert opens (and, judged by its detector alone, resolves) at the same window as with
    small batches. Judged at the batch's latest window alone, it opened 2,000 events later at 3,000-event
    batches and 4,000 at 5,000. With the baseline window test on, a stream is judged with the round verdicts
    decided before its batch, so only the opening is compared there."""
    events = _devices_everywhere()
    overrides = {"quality": {"enabled": False}, "alerts": {"resolve_after_s": 20.0}}
    overrides["significance"] = {"enabled": significance}

    def alerts(batch: int) -> list[tuple[str, str, str | None, str | None]]:
        engine = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
        found = [a.to_dict() for a in _feed(engine, events, batch=batch) if a.kind == "data_drift"]
        return [(a["status"], a["key"], a["detected_at"], a["resolved_at"]) for a in found]

    small = alerts(250)
    assert [(s, k) for s, k, _, _ in small] == [
        ("firing", "m/v1/data_drift/device/all"),
        ("resolved", "m/v1/data_drift/device/all"),
    ]
    for batch in (3000, 5000):
        large = alerts(batch)
        assert (large if not significance else large[:1]) == (small if not significance else small[:1]), batch


@functools.cache
def _reference_workload_segment_shifts() -> tuple[bytes, ...]:
    """The latency benchmark's traffic (benchmarks/phases.py, 20,000 events a second) up to its fourth change:
    133,333 predictions of the reference workload as usual, then 22,222 each with a 3 sd shift of x0 in
    country=US, x1 in DE, x2 in IN and x3 in BR (a sixth of the traffic each)."""
    from benchmarks.workload import make

    rate, usual, each = 20_000 / 1.5, 133_333, 22_222
    parts = [make(usual, seed=3, rate=rate, start=T0, label_delay=5.0)]
    for k, country in enumerate(["US", "DE", "IN", "BR"]):
        start = T0 + (usual + k * each) / rate
        parts.append(make(each, seed=10 + k, rate=rate, start=start, drift=(f"x{k}", country, 3.0), label_delay=5.0))
    return tuple(p for w in parts for p in w.predictions)


@pytest.mark.parametrize("batch", [333, 1000])
def test_a_segments_change_found_by_two_detectors_in_one_batch_still_holds_all_traffics_alert(batch):
    """Page-Hinkley finds BR's change first (pending: too few values to fire), ADWIN places a later change point
    in the same batch, so at the batch's last chunk the segment had nothing since it to wait with, and all
    traffic paged the diluted change before the segment's own alert (two pages, at 1,000-row batches). The
    segment is judged at its last chunk still waiting, as smaller batches note it between them."""
    engine = _engine(detectors={"warmup_events": 300})
    predictions = _reference_workload_segment_shifts()
    alerts = []
    for i in range(0, len(predictions), batch):
        chunk = list(predictions[i : i + batch])
        alerts += engine.process_predictions(chunk, [0.0] * len(chunk)).alerts
    firing = [a.key.split("/data_drift/")[1] for a in alerts if a.kind == "data_drift" and a.status == "firing"]
    assert firing == ["x0/country=US", "x1/country=DE", "x2/country=IN", "x3/country=BR"]


@pytest.mark.parametrize("batch", [1000, 4000])
def test_a_data_quality_alert_resolves_at_the_same_window_however_many_a_batch_holds(batch):
    """A null burst in x opens its alert in one schema window; the batch's later windows must see it open (or
    they are skipped as quiet and its clearing starts late: resolved 4 and 14 s later at 1,000 and 4,000-event
    batches when the watch asked the alert desk once a batch)."""
    rng = np.random.default_rng(0)
    events = []
    for i in range(12_000):
        features: dict[str, Any] = {"x": float(rng.normal()), "y": float(rng.normal())}
        if 6_000 <= i < 6_400:
            features["x"] = None
        events.append(
            {"prediction_id": f"p{i}", "model": "m", "model_version": "v1", "timestamp": T0 + i / 100.0,
             "features": features, "prediction": 0.5, "segments": {}}
        )  # fmt: skip

    def quality(size: int) -> list[tuple[str, str, str | None, str | None]]:
        engine = PartitionEngine(
            load_config(environ={}, overrides={"alerts": {"resolve_after_s": 5.0}}), clock=lambda: T0
        )
        found = [a for a in _feed(engine, events, batch=size) if a.kind in ("schema", "data_quality")]
        return [(a.status, a.key, a.detected_at, a.resolved_at) for a in found]

    small = quality(200)
    assert [(s, k) for s, k, _, _ in small] == [
        ("firing", "m/v1/data_quality/x/all"),
        ("resolved", "m/v1/data_quality/x/all"),
    ]
    assert quality(batch) == small
