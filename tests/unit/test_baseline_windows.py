"""Window tests against a baseline inside the engine: rounds independent of batching, profiles and their tails."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from monitor.config import load_config
from monitor.core import snapshot
from monitor.core.baseline import BaselineProfile, ProfileSet, StreamReference
from monitor.core.engine import PartitionEngine
from monitor.core.quality import FieldSchema
from monitor.core.significance import Reference
from monitor.simulate import TrafficGenerator

T0 = 1_767_225_600.0


def _events(n: int, seed: int = 0) -> list[bytes]:
    return [orjson.dumps(e) for e in TrafficGenerator(seed=seed).predictions(n, start_time=T0, rate=100.0)]


def _feed(engine: PartitionEngine, values: list[bytes], batch: int) -> list[Any]:
    alerts: list[Any] = []
    for i in range(0, len(values), batch):
        chunk = values[i : i + batch]
        alerts += engine.process_predictions(chunk, [0.0] * len(chunk)).alerts
    return alerts + engine.finish()


def test_benjamini_hochberg_rounds_do_not_depend_on_batch_boundaries() -> None:
    values = _events(30_000, seed=3)
    seen = {}
    for batch in (500, 1_700, 5_000):
        eng = PartitionEngine(load_config(environ={}), clock=lambda: T0)
        _feed(eng, values, batch)
        decided = {
            (k, r.seq, r.significant, round(r.adjusted_p or 0.0, 12))
            for st in eng.models.values()
            for k, t in st.tests.items()
            for r in [t.last]
            if r is not None
        }
        fdr = eng.model_monitor.fdr
        seen[batch] = (fdr.rounds, fdr.tests, fdr.discoveries, decided)
    assert seen[500][1] > 100
    assert seen[500] == seen[1_700] == seen[5_000]


def test_a_feature_constant_in_the_warm_up_still_shows_a_move() -> None:
    ref = Reference.numeric(np.full(1_000, 3.0), bins=10)
    assert ref.counts.tolist() == [0, 1_000, 0]
    assert ref.bin(np.array([2.0, 3.0, 4.0])).tolist() == [0, 1, 2]


def _long_tail_profile() -> BaselineProfile:
    kept = {f"z{i}": 500 for i in range(10)}
    ref = StreamReference("categorical", categories=kept, other=5_000)
    schema = {"zip": FieldSchema("categorical", 10_000, categories=sorted(kept), top_share=0.05, unseen_rate=0.5)}
    return BaselineProfile("m", "v1", 10_000, schema, {("zip", "", ""): ref})


def _zip_events(n: int, rng: np.random.Generator, start: int = 0) -> list[bytes]:
    out = []
    for i in range(n):
        z = f"z{rng.integers(0, 10)}" if rng.random() < 0.5 else f"t{rng.integers(0, 5_000)}"
        out.append(
            orjson.dumps(
                {
                    "prediction_id": str(start + i),
                    "model": "m",
                    "model_version": "v1",
                    "timestamp": T0 + (start + i) / 100,
                    "features": {"zip": z},
                    "prediction": 0.5,
                }
            )
        )
    return out


def test_a_profiles_long_tail_is_the_overflow_of_live_traffic_and_raises_nothing() -> None:
    """Half the traffic in 5,000 rare values the profile did not keep one by one: no drift, no unseen or
    constant alarm, although the live vocabulary holds only 20 names."""
    rng = np.random.default_rng(0)
    eng = PartitionEngine(load_config(environ={}), clock=lambda: T0, profiles=ProfileSet([_long_tail_profile()]))
    alerts = _feed(eng, _zip_events(20_000, rng), 1_000)
    assert [a.key for a in alerts] == []
    test = eng.models["m", "v1"].tests["zip", "", ""]
    assert test.from_profile and test.tests >= 19


def test_new_values_beyond_the_profiles_long_tail_are_unseen() -> None:
    """The profile listed half the traffic by name (a tail of rare values made the other half): a stream whose
    values are all new is flagged, against the tail's share, although the vocabulary is full."""
    rng = np.random.default_rng(1)
    eng = PartitionEngine(load_config(environ={}), clock=lambda: T0, profiles=ProfileSet([_long_tail_profile()]))
    values = _zip_events(3_000, rng)
    for i in range(3_000, 4_000):
        values.append(
            orjson.dumps(
                {
                    "prediction_id": str(i),
                    "model": "m",
                    "model_version": "v1",
                    "timestamp": T0 + i / 100,
                    "features": {"zip": f"new-{i % 7}"},
                    "prediction": 0.5,
                }
            )
        )
    alerts = [a for a in _feed(eng, values, 500) if a.kind == "data_quality"]
    assert [(a.subject, a.detector) for a in alerts][:1] == [("zip", "unseen_category")]
    assert alerts[0].current["example"].startswith("new-") and alerts[0].baseline["rate"] == 0.5


def test_a_profile_configured_after_a_restart_takes_over_from_the_learned_baseline() -> None:
    values = _events(6_000, seed=5)
    cfg = load_config(environ={})
    eng = PartitionEngine(cfg, clock=lambda: T0)
    _feed(eng, values[:3_000], 1_000)
    state = eng.models["churn", "v1"]
    assert state.quality is not None and not state.quality.from_profile
    profile = BaselineProfile(
        "churn",
        "v1",
        10_000,
        {"age": FieldSchema("numeric", 10_000, minimum=18.0, maximum=90.0)},
        {("age", "", ""): StreamReference("numeric", numeric=Reference.numeric(np.linspace(18, 90, 2_000), 10))},
    )
    data = snapshot.loads(snapshot.dumps(eng.snapshot()))
    twin = PartitionEngine.restore(cfg, data, clock=lambda: T0, profiles=ProfileSet([profile]))
    restored = twin.models["churn", "v1"]
    assert restored.quality is not None and restored.quality.from_profile
    assert ("age", "", "") not in restored.tests  # rebuilt against the profile on the next value
    _feed(twin, values[3_000:], 1_000)
    assert restored.window_test(("age", "", "")).from_profile


def test_a_profiles_scale_anchors_the_sequential_detectors_from_the_first_value() -> None:
    """The detectors standardised on a stream's first live values although a profile had the whole cycle: a
    stream that starts in a quiet hour (its level 0.8 sd under the profile's mean for 3,000 values) and then
    runs at the profile's level read as a rise, and Page-Hinkley and ADWIN paged it or held its alert open (seen
    from outside: 23 and 32 alerts of a daily and weekly cycle with a profile of four weeks; 4 and 10 now)."""
    rng = np.random.default_rng(5)
    history = rng.normal(50.0, 10.0, 20_000)
    ref = StreamReference("numeric", numeric=Reference.numeric(history, bins=10))
    schema = {"basket": FieldSchema("numeric", 20_000, minimum=float(history.min()), maximum=float(history.max()))}
    profile = BaselineProfile("m", "v1", 20_000, schema, {("basket", "", ""): ref})
    eng = PartitionEngine(load_config(environ={}), clock=lambda: T0, profiles=ProfileSet([profile]))
    level = np.r_[np.full(3_000, 42.0), np.full(30_000, 50.0)]
    values = [
        orjson.dumps({"prediction_id": str(i), "model": "m", "model_version": "v1", "timestamp": T0 + i / 100,
                      "features": {"basket": float(rng.normal(level[i], 10.0))}, "prediction": 0.5})
        for i in range(level.size)
    ]  # fmt: skip
    alerts = _feed(eng, values, 1_000)
    # the quiet hour is a move from the profile (its window test says so), and its end is the end of it: the
    # alert resolves, where the detectors standardised on the quiet hour held it open for good
    assert [(a.status, a.key) for a in alerts] == [("firing", "m/v1/data_drift/basket/all"),
                                                   ("resolved", "m/v1/data_drift/basket/all")]  # fmt: skip
    assert alerts[0].detector == "psi"
    table = eng.models["m", "v1"].numeric[""]
    i = table.index["basket", "", ""]
    assert table.base_mean[i] == ref.numeric.mean and table.detectors.mean[i] == ref.numeric.mean
