"""Snapshot and restore: the twin test over every stateful core class and the partition engine.

Each case runs a stream, snapshots mid-stream through bytes (``snapshot.dumps`` then ``snapshot.loads``),
then feeds the original and its twin the same remaining input: every output must be identical, and so
must the final snapshot bytes. Classes that draw random numbers are snapshotted together with their
generator (the engine's snapshot carries its own generator the same way).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.config import DetectorSettings, load_config
from monitor.core import snapshot
from monitor.core.alerting import AlertLifecycle
from monitor.core.detectors import ChunkedADWIN, PageHinkley, WindowedChiSquare
from monitor.core.drift import CategoricalDriftTracker, NumericDriftTracker
from monitor.core.engine import BatchResult, PartitionEngine
from monitor.core.join import LabelJoiner, PendingPrediction
from monitor.core.metrics import PerformanceWindow
from monitor.core.rules import Alert
from monitor.core.stats import CategoryVocabulary, ReservoirQuantiles, RunningMoments
from monitor.simulate import Drift, TrafficGenerator

T0 = 1_767_225_600.0
RESTORE_POINTS = (0.1, 0.35, 0.6)  # fraction of the input fed before the snapshot
SETTINGS = DetectorSettings(warmup_events=200, categorical_window=200)


def _canon(x: Any) -> Any:
    """A comparable form: NaN equals NaN, 1 differs from 1.0, arrays keep dtype and shape."""
    if isinstance(x, Alert):
        return _canon(x.to_dict())
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return ["@" + type(x).__name__, [[f.name, _canon(getattr(x, f.name))] for f in dataclasses.fields(x)]]
    if isinstance(x, np.ndarray):
        return ["@nd", str(x.dtype), list(x.shape), _canon(x.tolist())]
    if isinstance(x, np.generic):
        return _canon(x.item())
    if isinstance(x, float):
        return ["@float", repr(x)]
    if isinstance(x, dict):
        return ["@dict", [[_canon(k), _canon(v)] for k, v in x.items()]]
    if isinstance(x, list | tuple):
        return [type(x).__name__, [_canon(v) for v in x]]
    return x


# --------------------------------------------------------------------------- input streams
def _sizes(n: int, seed: int, high: int = 300) -> list[int]:
    """Batch sizes from 1 to ``high`` that add up to ``n`` (not multiples of ADWIN's chunk)."""
    r = random.Random(seed)
    sizes = []
    while n > 0:
        sizes.append(min(n, r.randint(1, high)))
        n -= sizes[-1]
    return sizes


def _split(x: np.ndarray, seed: int) -> list[np.ndarray]:
    cuts = np.cumsum(_sizes(x.size, seed))[:-1]
    return np.split(x, cuts)


def _levels(seed: int, n: int = 8000, levels: tuple[float, ...] = (0.0, 2.5, -1.0, 3.0)) -> np.ndarray:
    """Normal values whose mean moves at each quarter of the stream: a change after every restore point."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, 1.0, n // len(levels)) for m in levels])


def _numeric_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    x = _levels(3) * 2.0 + 10.0
    x[::97] = np.nan  # some missing values
    times = T0 + np.arange(x.size, dtype=np.float64)
    return list(zip(_split(x, 4), _split(times, 4), strict=True))


def _codes(seed: int, n: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixes = ((0.5, 0.3, 0.2, 0.0), (0.2, 0.2, 0.2, 0.4), (0.6, 0.3, 0.1, 0.0), (0.1, 0.1, 0.1, 0.7))
    codes = np.concatenate([rng.choice(4, size=n // 4, p=p) for p in mixes])
    codes[::89] = -1  # missing
    return codes


def _join_plan(n: int = 1500) -> list[tuple[str, str, float]]:
    """Predictions, labels (late, early, duplicated, never) and expiry sweeps, about a second apart."""
    r = random.Random(6)
    plan, t = [], T0
    for i in range(n):
        t += r.expovariate(1.0)
        u = r.random()
        if u < 0.45:
            plan.append(("prediction", f"p{i if r.random() < 0.95 else r.randrange(i + 1)}", t))
        elif u < 0.85:
            target = i - r.randrange(0, 80) if r.random() < 0.85 else i + r.randrange(1, 10)  # late or early
            plan.append(("label", f"p{max(target, 0)}", t))
        else:
            plan.append(("expire", "", t))
    return plan


def _lifecycle_plan(n: int = 3000) -> list[tuple[str, bool, bool, float, int, float | None]]:
    """Three keys whose conditions flap with different periods, evaluated once a second."""
    plan = []
    for i in range(n):
        key = f"m/v1/data_drift/x{i % 3}/all"
        period = (40, 90, 150)[i % 3]
        fire = (i // period) % 3 == 0
        clear = (i // period) % 3 == 2
        started = None if i % 7 else (math.nan if i % 2 else T0 + i - 5)
        plan.append((key, fire, clear, T0 + i, i // period, started))
    return plan


# --------------------------------------------------------------------------- the twin cases
@dataclass
class Case:
    """A stateful object: how to build it (with its generator, if any), its input, and one step."""

    make: Callable[[], dict[str, Any]]
    inputs: Callable[[], list[Any]]
    step: Callable[[dict[str, Any], Any], Any]
    eventful: Callable[[list[Any]], bool]  # did something happen after the restore point?


def _grows(key: Callable[[Any], float]) -> Callable[[list[Any]], bool]:
    return lambda outs: key(outs[-1]) > key(outs[0])


def _tracker_out(t: NumericDriftTracker | CategoricalDriftTracker) -> dict[str, Any]:
    return {"evidence": t.evidence(), "view": t.view()}


def _numeric_tracker_step(s: dict[str, Any], batch: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    s["obj"].update(batch[0].copy(), batch[1].copy(), rng=s["rng"])
    return _tracker_out(s["obj"])


def _categorical_tracker_step(s: dict[str, Any], batch: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    s["obj"].update(batch[0].copy(), batch[1].copy())
    return _tracker_out(s["obj"])


def _reservoir_step(s: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    q: ReservoirQuantiles = s["obj"]
    q.update(x.copy(), s["rng"])
    return {"sample": q.sample.copy(), "seen": q.seen, "quantiles": q.quantiles([0.1, 0.5, 0.9])}


def _moments_step(s: dict[str, Any], x: np.ndarray) -> tuple[Any, ...]:
    m: RunningMoments = s["obj"]
    m.update(x.copy())
    return (m.n, m.mean, m.m2, m.minimum, m.maximum, m.variance)


def _vocabulary_step(s: dict[str, Any], column: list[Any]) -> dict[str, Any]:
    return {"codes": s["obj"].encode(column), "labels": s["obj"].labels()}


def _vocabulary_columns() -> list[list[Any]]:
    """Columns whose set of values keeps growing: past the vocabulary's capacity of 10 late in the stream."""
    r = random.Random(8)
    values: list[Any] = [None, True, False, *"abcdefghijk"]
    return [[r.choice(values[: 3 + i // 7]) for _ in range(r.randint(0, 12))] for i in range(90)]


def _join_step(s: dict[str, Any], op: tuple[str, str, float]) -> dict[str, Any]:
    j: LabelJoiner = s["obj"]
    kind, pid, t = op
    joined: list[Any] = []
    if kind == "prediction":
        segs = (("country", "US" if len(pid) % 2 else "DE"),)
        joined = j.add_prediction(pid, PendingPrediction("m", "v1", segs, 0.7, 0.7, t), now=t)
    elif kind == "label":
        outcomes = {"revenue": 2.5} if len(pid) % 3 == 0 else None
        joined = j.add_label(pid, len(pid) % 2, outcomes, t, "m" if len(pid) % 4 else "other", now=t)
    else:
        j.expire(t)
    return {"joined": joined, "counts": dict(j.counts), "sizes": (len(j.pending), len(j.early), len(j.done))}


def _performance_batches(task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(12)
    out = []
    for i, n in enumerate(_sizes(6000, 13, high=150)):
        score = rng.uniform(0, 1, n)
        degrade = 0.35 if (i // 10) % 2 else 0.0  # the model gets worse and better again
        if task == "binary":
            y = (rng.uniform(0, 1, n) < np.clip(score + degrade * (1 - 2 * score), 0, 1)).astype(np.float64)
            out.append((y, score))
        else:
            y = rng.normal(50, 10, n)
            out.append((y, y + rng.normal(0, 1 + 20 * degrade, n)))
    return out


def _performance_step(s: dict[str, Any], batch: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    w: PerformanceWindow = s["obj"]
    w.add(batch[0].copy(), batch[1].copy())
    return {"window": w.window_metrics(), "total": w.total_metrics(), "ece": w.calibration_error(), "count": w.count}


def _lifecycle_step(s: dict[str, Any], op: tuple[str, bool, bool, float, int, float | None]) -> Any:
    key, fire, clear, now, seq, started = op
    return s["obj"].evaluate(key, fire=fire, clear=clear, now=now, incident_seq=seq, started_at=started)


def _detector_batches(seed: int) -> list[np.ndarray]:
    return _split(_levels(seed), seed + 1)


CASES: dict[str, Case] = {
    "PageHinkley": Case(
        make=lambda: {"obj": PageHinkley(threshold=20.0)},
        inputs=lambda: _detector_batches(1),
        step=lambda s, x: s["obj"].update_many(x.copy()),
        eventful=lambda outs: any(outs),
    ),
    "ChunkedADWIN": Case(
        make=lambda: {"obj": ChunkedADWIN(delta=0.002, chunk=8)},
        inputs=lambda: _detector_batches(2),
        step=lambda s, x: {"hits": s["obj"].update_many(x.copy()), "mean": s["obj"].estimation, "w": s["obj"].width},
        eventful=lambda outs: any(o["hits"] for o in outs),
    ),
    "WindowedChiSquare": Case(
        make=lambda: {"obj": WindowedChiSquare(n_codes=4, window=200)},
        inputs=lambda: _split(_codes(3), 5),
        step=lambda s, x: s["obj"].update_many(x.copy()),
        eventful=lambda outs: any(r.p_value < 1e-3 for o in outs for r in o),
    ),
    "NumericDriftTracker": Case(
        make=lambda: {"obj": NumericDriftTracker(SETTINGS, quantile_sample_size=64), "rng": np.random.default_rng(9)},
        inputs=_numeric_batches,
        step=_numeric_tracker_step,
        eventful=_grows(lambda o: sum(o["view"]["detections"].values())),
    ),
    "CategoricalDriftTracker": Case(
        make=lambda: {"obj": CategoricalDriftTracker(SETTINGS, n_codes=4)},
        inputs=lambda: list(zip(_split(_codes(4), 6), _split(T0 + np.arange(8000, dtype=np.float64), 6), strict=True)),
        step=_categorical_tracker_step,
        eventful=_grows(lambda o: o["view"]["detections"]["chi2"]),
    ),
    "RunningMoments": Case(
        make=lambda: {"obj": RunningMoments()},
        inputs=lambda: _detector_batches(7),
        step=_moments_step,
        eventful=_grows(lambda o: o[0]),
    ),
    "ReservoirQuantiles": Case(
        make=lambda: {"obj": ReservoirQuantiles(size=64), "rng": np.random.default_rng(10)},
        inputs=lambda: _detector_batches(8),
        step=_reservoir_step,
        eventful=_grows(lambda o: o["seen"]),
    ),
    "CategoryVocabulary": Case(
        make=lambda: {"obj": CategoryVocabulary(capacity=10)},
        inputs=_vocabulary_columns,
        step=_vocabulary_step,
        eventful=lambda outs: len(outs[-1]["labels"]) > len(outs[0]["labels"]) and 10 in outs[-1]["codes"],
    ),
    "LabelJoiner": Case(
        make=lambda: {"obj": LabelJoiner(ttl_s=60.0, max_pending=40, early_ttl_s=20.0, max_early=8)},
        inputs=_join_plan,
        step=_join_step,
        eventful=lambda outs: any(o["joined"] for o in outs) and _grows(lambda o: o["counts"].get("expired", 0))(outs),
    ),
    "PerformanceWindow-binary": Case(
        make=lambda: {"obj": PerformanceWindow("binary", window=100)},
        inputs=lambda: _performance_batches("binary"),
        step=_performance_step,
        eventful=_grows(lambda o: o["count"]),
    ),
    "PerformanceWindow-regression": Case(
        make=lambda: {"obj": PerformanceWindow("regression", window=100)},
        inputs=lambda: _performance_batches("regression"),
        step=_performance_step,
        eventful=_grows(lambda o: o["count"]),
    ),
    "AlertLifecycle": Case(
        make=lambda: {"obj": AlertLifecycle(resolve_after_s=10.0, cooldown_s=30.0)},
        inputs=_lifecycle_plan,
        step=_lifecycle_step,
        eventful=lambda outs: {t.status for t in outs if t is not None} == {"firing", "resolved"},
    ),
}


@pytest.mark.parametrize("restore_at", RESTORE_POINTS)
@pytest.mark.parametrize("name", list(CASES))
def test_a_restored_twin_continues_exactly(name, restore_at):
    case = CASES[name]
    inputs = case.inputs()
    cut = int(len(inputs) * restore_at)
    original = case.make()
    for x in inputs[:cut]:
        case.step(original, x)

    raw = snapshot.dumps(original)
    twin = snapshot.loads(raw)
    assert type(twin["obj"]) is type(original["obj"])
    assert snapshot.dumps(twin) == raw, "decode then encode must give the same bytes"

    outputs = []
    for i, x in enumerate(inputs[cut:]):
        out = case.step(original, x)
        assert _canon(case.step(twin, x)) == _canon(out), f"{name} diverged {i} steps after the restore point"
        outputs.append(out)
    assert case.eventful(outputs), f"nothing happened to {name} after the restore point: a weak test"
    assert snapshot.dumps(twin) == snapshot.dumps(original)


# --------------------------------------------------------------------------- the engine twin
# Fairness on: its trackers are engine state too.
CONFIG = load_config(
    environ={},
    overrides={
        "detectors": {"warmup_events": 300},
        "alerts": {"resolve_after_s": 30.0},
        "fairness": {"attributes": ["gender", "country"]},
    },
)
BATCH = 500
JUNK: list[bytes | None] = [b"{", b"", None, b'{"prediction_id":"x"}', b"[1,2]", b'{"prediction_id":"y","label":NaN}']


def _engine_batches() -> list[tuple[str, list[bytes | None]]]:
    """Predictions (an age drift that comes and goes) and their labels two batches later, with junk mixed in."""
    gen = TrafficGenerator(seed=21, label_rate=0.6)
    events = list(gen.predictions(4000, start_time=T0, rate=20.0))
    gen.drifts.append(Drift("age", {}, shift=15.0))
    events += list(gen.predictions(3000, start_time=T0, rate=20.0))
    gen.drifts.clear()
    events += list(gen.predictions(4000, start_time=T0, rate=20.0))
    labels = [gen.label_for(e) for e in events]
    batches: list[tuple[str, list[bytes | None]]] = []
    for k, i in enumerate(range(0, len(events), BATCH)):
        values: list[bytes | None] = [orjson.dumps(e) for e in events[i : i + BATCH]]
        values.insert(k % len(values), JUNK[k % len(JUNK)])
        batches.append(("predictions", values))
        late = [orjson.dumps(x) for x in labels[i - 2 * BATCH : i - BATCH] if x is not None] if i >= 2 * BATCH else []
        batches.append(("labels", [*late, JUNK[(k + 3) % len(JUNK)]]))
    return batches


ENGINE_BATCHES = _engine_batches()


def _clock() -> float:
    return T0


def _run(engine: PartitionEngine, batches: list[tuple[str, list[bytes | None]]]) -> list[Any]:
    out = []
    for role, values in batches:
        process = engine.process_predictions if role == "predictions" else engine.process_labels
        result: BatchResult = process(values, [0.0] * len(values))  # no Kafka time: events carry theirs
        out.append((role, result.processed, [tuple(r) for r in result.rejected], [a.to_dict() for a in result.alerts]))
    return out


@pytest.mark.parametrize("restore_at", RESTORE_POINTS)
def test_a_restored_engine_continues_exactly(restore_at):
    cut = 2 * int(len(ENGINE_BATCHES) // 2 * restore_at)  # between a batch of labels and one of predictions
    engine = PartitionEngine(CONFIG, clock=_clock)
    _run(engine, ENGINE_BATCHES[:cut])

    raw = snapshot.dumps(engine.snapshot())
    twin = PartitionEngine.restore(CONFIG, snapshot.loads(raw), clock=_clock)
    assert snapshot.dumps(twin.snapshot()) == raw

    rest = ENGINE_BATCHES[cut:]
    expected = _run(engine, rest)
    assert _canon(_run(twin, rest)) == _canon(expected)
    alerts = [(a["status"], a["key"]) for *_, batch_alerts in expected for a in batch_alerts]
    assert ("firing", "churn/v1/data_drift/age/all") in alerts or ("resolved", "churn/v1/data_drift/age/all") in alerts
    assert any(rejected for _, _, rejected, _ in expected)
    assert _canon(list(twin.streams())) == _canon(list(engine.streams()))
    assert twin.events_total() == engine.events_total()
    assert snapshot.dumps(twin.snapshot()) == snapshot.dumps(engine.snapshot())


# Measured on this input (11,000 predictions at 20 per second, 60% labelled, fairness on two attributes,
# 81 streams): 2,222,175 bytes, about 27.4 KB per stream. Per stream, the label metrics of each (model,
# bucket) take 11.3 KB (their windows are encoded at full capacity), fairness 6.4 KB, the join store 4.8 KB
# (5,024 predictions waiting for labels: it grows with traffic and ``labels.ttl_s``) and the drift trackers
# themselves 4.5 KB.
MAX_BYTES_PER_STREAM = 40_000


def test_snapshot_size_per_monitored_stream():
    engine = PartitionEngine(CONFIG, clock=_clock)
    _run(engine, ENGINE_BATCHES)
    total = len(orjson.dumps(engine.snapshot()))  # as a checkpoint record holds it: plain data already
    n = engine.model_monitor.stream_count
    parts = {
        "join store": len(snapshot.dumps(engine.profile.joiner)),
        "label metrics": sum(len(snapshot.dumps(m.perf)) for m in engine.models.values()),
        "drift trackers": sum(len(snapshot.dumps(t)) for m in engine.models.values() for t in m.streams.values()),
        "fairness": sum(len(snapshot.dumps(m.fairness)) for m in engine.models.values()),
    }
    per_stream = total / n
    print(
        f"\nsnapshot: {total:,} bytes for {n} streams = {per_stream:,.0f} bytes per stream; per stream: "
        + ", ".join(f"{name} {size / n:,.0f}" for name, size in parts.items())
        + f" ({len(engine.profile.joiner.pending):,} predictions pending)"
    )
    assert n > 50
    assert per_stream < MAX_BYTES_PER_STREAM


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((2, 1000), dtype=np.int64),  # all zero: sparse
        np.random.default_rng(0).integers(0, 5, (300, 66)),  # small counts: dense, one byte each
        np.random.default_rng(1).integers(-3, 3, 100).astype(np.int32),  # negative values
        np.arange(70_000, dtype=np.int64),  # needs 32 bits, and a 32-bit index if sparse
        (np.random.default_rng(2).random((70, 70)) < 0.01).astype(np.uint64) * 7,  # sparse, unsigned
        np.array([2**40] * 20),  # does not narrow: as it is
        np.array([-(2**63)] + [0] * 20),  # the extreme of int64: as it is
        np.zeros(0, dtype=np.int64),
        np.arange(5, dtype=np.int64),  # too short to look at
        np.array(7),  # 0-d stays 0-d
        np.asfortranarray(np.arange(600).reshape(20, 30) % 7),  # Fortran order
        np.arange(2000, dtype=np.int64)[::3],  # not contiguous
        np.array([2**63 + 5] * 10, dtype=np.uint64),  # above int64's range: as it is
    ],
)
def test_integer_arrays_are_packed_losslessly(array):
    plain = snapshot.encode(array)
    back = snapshot.decode(json.loads(json.dumps(plain)))
    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    as_is = {"$nd": [str(array.dtype), list(array.shape), base64.b64encode(array.tobytes()).decode()]}
    assert len(json.dumps(plain)) <= len(json.dumps(as_is))
    if array.size >= 1000 and array.dtype.itemsize == 8:
        assert len(json.dumps(plain)) < 0.51 * len(json.dumps(as_is))  # 64-bit counts: about halved at least
    assert np.array_equal(snapshot.decode(as_is), array)  # the form earlier snapshots hold still reads


_R = np.random.default_rng(3)


@pytest.mark.parametrize(
    ("array", "scaled"),
    [
        (np.round(_R.normal(size=1000), 4), True),  # four decimals: 32-bit scaled integers, half the bytes
        (np.round(_R.normal(size=(30, 40)) * 1e5, 2), True),  # prices: two decimals, 2-D
        (np.arange(20.0), True),  # whole numbers
        (np.array([12.5] + [0.1234] * 9), True),  # the first value has fewer decimals than the rest
        (_R.normal(size=1000), False),  # full precision: raw floats
        (np.array([0.0, -0.0] * 5), False),  # -0.0 would come back as 0.0
        (np.array([1.5] * 7 + [np.nan]), False),
        (np.array([3.0] * 8 + [np.inf]), False),
        (np.array([1e300] * 9), False),
        (np.array([2.0**40] * 9), False),  # beyond 32-bit integers
        (np.arange(2000.0)[::3] / 4, True),  # not contiguous
        (np.asfortranarray(np.arange(600.0).reshape(20, 30) / 8), True),  # Fortran order
        (np.arange(5.0), False),  # too short to look at
        (np.array([0.0] * 4 + [1.5e308, -1.7e308] + [2.0] * 4), False),  # scaling overflows: no warning, raw
        (np.array([5e-324, 1e-310] + [0.0] * 8), False),  # subnormals
        (np.array([3.0] + [0.123456789012] * 9), False),  # a short first value, then long ones
        (np.array([3.0] + [0.12] * 9), True),  # a short first value, then longer decimals
    ],
)
def test_float_arrays_of_decimals_are_packed_losslessly(array, scaled):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow while trying a scale is no warning
        plain = snapshot.encode(array)
    back = snapshot.decode(json.loads(json.dumps(plain)))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(np.ascontiguousarray(back).view(np.int64), np.ascontiguousarray(array).view(np.int64))
    assert ("$ndd" in plain) is scaled
    as_is = {"$nd": [str(array.dtype), list(array.shape), base64.b64encode(array.tobytes()).decode()]}
    assert len(json.dumps(plain)) <= len(json.dumps(as_is))
    if array.size >= 1000 and scaled:
        assert len(json.dumps(plain)) < 0.51 * len(json.dumps(as_is))


class _Text(str):
    """A str subclass (encode keeps it as it is, never as a plain str)."""


@pytest.mark.parametrize(
    "values",
    [
        ["a", None, True, "b"],
        [0, -(2**63), 2**64 - 1],
        [1, 2**64],  # beyond what orjson writes: a node
        [-(2**63) - 1],
        [0.5, -2.25, 1e308],
        [1e308, 1e308],  # finite values whose sum is not
        [1.5, math.nan],
        [math.inf, -math.inf],
        [1, 2.0],
        ["a", 1],
        [True, 1],
        [[1.0], ["x"]],
        [_Text("sub"), "str"],  # a str subclass is not written as it is by every path
    ],
)
def test_a_list_is_encoded_value_for_value(values):
    """Lists of plain values skip the per-value walk (one pass over their types): same result as the walk."""
    encoded = snapshot.encode(values)
    assert encoded == [snapshot.encode(v) for v in values]
    assert encoded is not values  # a copy: the caller's list may change after the snapshot


# --------------------------------------------------------------------------- what restore refuses
def test_decode_refuses_a_class_outside_the_allow_list():
    with pytest.raises(ValueError, match="not allowed"):
        snapshot.decode({"$o": "os.system", "f": {"command": "true"}})
    with pytest.raises(ValueError, match="not allowed"):
        snapshot.loads(b'{"$o":"Popen","p":["true"]}')


def test_decode_refuses_an_unknown_node():
    with pytest.raises(ValueError, match="unknown snapshot node"):
        snapshot.decode({"$eval": "1+1"})
    with pytest.raises(ValueError, match="unknown snapshot node"):
        snapshot.loads(b'[1, {"x": 1}]')


def test_encode_refuses_an_unregistered_class_even_with_a_registered_name():
    class PageHinkley:  # same name as an allowed class, different class
        pass

    with pytest.raises(TypeError):
        snapshot.dumps(PageHinkley())
    with pytest.raises(TypeError):
        snapshot.dumps(object())


def test_decode_of_a_generator_calls_no_other_numpy_function():
    """``$rng`` names a bit generator; a snapshot naming any other numpy.random attribute must be refused."""
    np.random.seed(1)
    before = np.random.get_state()
    state = {"bit_generator": "seed", "state": {"state": 1, "inc": 1}, "has_uint32": 0, "uinteger": 0}
    with pytest.raises(ValueError):
        snapshot.decode({"$rng": state})
    after = np.random.get_state()
    assert after[1].tolist() == before[1].tolist() and after[2:] == before[2:], "np.random.seed() was called"


def test_restore_refuses_another_snapshot_version():
    engine = PartitionEngine(CONFIG, clock=_clock)
    _run(engine, ENGINE_BATCHES[:2])
    data = snapshot.loads(snapshot.dumps(engine.snapshot()))
    for version in (snapshot.SNAPSHOT_VERSION + 1, 0, None, "1"):
        with pytest.raises(ValueError, match="snapshot version"):
            PartitionEngine.restore(CONFIG, {**data, "version": version}, clock=_clock)
    without = {k: v for k, v in data.items() if k != "version"}
    with pytest.raises(ValueError, match="snapshot version"):
        PartitionEngine.restore(CONFIG, without, clock=_clock)
    assert PartitionEngine.restore(CONFIG, data, clock=_clock).events_total() == engine.events_total()


def test_a_snapshot_from_before_baselines_restores_and_continues():
    """Snapshots written before window tests, schema checks and decisions existed still restore: the new
    state starts fresh (window tests learn their reference again) and the stream goes on."""
    engine = PartitionEngine(CONFIG, clock=_clock)
    half = len(ENGINE_BATCHES) // 2
    _run(engine, ENGINE_BATCHES[:half])
    data = snapshot.loads(snapshot.dumps(engine.snapshot()))
    for name in ("fdr", "incident_shift"):
        del data["state"][name]
    old_attrs = ("tests", "quality", "first_event_time", "retrain")
    for node in data["state"]["models"]["$d"]:
        fields = node[1]["f"]
        for attr in old_attrs:
            del fields[attr]
    twin = PartitionEngine.restore(CONFIG, data, clock=_clock)
    state = next(iter(twin.models.values()))
    assert state.tests == {} and state.quality is not None and state.retrain.streak == 0
    before = twin.events_total()
    rest = _run(twin, ENGINE_BATCHES[half:])
    assert twin.events_total() == before + sum(n for role, n, *_ in rest if role == "predictions")
    assert state.tests and twin.model_monitor.fdr.tests > 0  # the new checks started on the restored partition


def _drop_fields(node: object, cls: str, names: tuple[str, ...]) -> int:
    """Remove fields of every encoded object of class ``cls`` in a plain snapshot; returns how many objects."""
    found = 0
    if isinstance(node, dict):
        if node.get("$o") == cls and "f" in node:
            for name in names:
                node["f"].pop(name, None)
            found += 1
        for value in node.values():
            found += _drop_fields(value, cls, names)
    elif isinstance(node, list):
        for value in node:
            found += _drop_fields(value, cls, names)
    return found


def test_a_snapshot_from_before_isotonic_calibration_and_incidents_restores_and_continues():
    """Snapshots written before incidents and the isotonic calibration (no ``incidents`` state, calibrations
    without ``frozen`` and ``map``) restore, and the partition goes on estimating and alerting."""
    engine = PartitionEngine(CONFIG, clock=_clock)
    half = len(ENGINE_BATCHES) // 2
    _run(engine, ENGINE_BATCHES[:half])
    data = snapshot.loads(snapshot.dumps(engine.snapshot()))
    del data["state"]["incidents"]
    assert _drop_fields(data, "ScoreCalibration", ("frozen", "map")) >= 1
    twin = PartitionEngine.restore(CONFIG, data, clock=_clock)
    perf = next(iter(twin.models.values())).perf
    assert perf is not None and perf.calibration.map.size == perf.calibration.bins
    before = twin.events_total()
    rest = _run(twin, ENGINE_BATCHES[half:])
    assert twin.events_total() == before + sum(n for role, n, *_ in rest if role == "predictions")
    assert twin.alerting.incidents.open is not None
    snapshot.dumps(twin.snapshot())  # and it snapshots again
