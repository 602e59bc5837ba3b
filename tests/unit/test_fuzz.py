"""Property-based fuzzing of the decoders and the partition engine with random and mutated messages.

Three kinds of input: arbitrary bytes, arbitrary JSON values (and JSON objects shaped like events), and
valid events from :class:`~monitor.simulate.TrafficGenerator` mutated field by field or byte by byte.
Whatever comes in, nothing may escape ``process_predictions`` / ``process_labels``, every message is
either processed or rejected once with a known reason, and valid events are counted exactly.

The long test feeds 10,000 examples in small batches to one engine (built once by a module-level
factory, warmed up on realistic traffic so the detectors and the lifecycle are live).
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.core import snapshot
from monitor.core.engine import BatchResult, PartitionEngine
from monitor.core.events import REASONS, LabelDecoder, PredictionDecoder
from monitor.simulate import Drift, TrafficGenerator

T0 = 1_767_225_600.0
CONFIG = load_config(environ={}, overrides={"detectors": {"warmup_events": 300}})


def _clock() -> float:
    return T0


# --------------------------------------------------------------------------- realistic traffic pools
def _traffic(seed: int, n: int, drift_after: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gen = TrafficGenerator(seed=seed, label_rate=0.8)
    events = list(gen.predictions(n if drift_after is None else drift_after, start_time=T0, rate=100.0))
    if drift_after is not None:
        gen.drifts.append(Drift("age", {}, shift=20.0))
        events += list(gen.predictions(n - drift_after, start_time=T0, rate=100.0))
    labels = [label for e in events if (label := gen.label_for(e)) is not None]
    return events, labels


PREDICTIONS, LABELS = _traffic(seed=7, n=3000)
DRIFT_PREDICTIONS, DRIFT_LABELS = _traffic(seed=11, n=3000, drift_after=1500)
DRIFT_LABEL_OF = {label["prediction_id"]: label for label in DRIFT_LABELS}


# --------------------------------------------------------------------------- strategies
# (b) arbitrary JSON values: huge integers (beyond 64 bits and beyond a double), floats without NaN.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# JSON objects with the contract's field names, so random values reach the field checks, not just the parser.
_field_values = st.one_of(json_values, st.text(min_size=1, max_size=12), st.floats(0, 2e9))
contract_objects = st.fixed_dictionaries(
    {},
    optional={
        "prediction_id": _field_values,
        "model": _field_values,
        "model_version": _field_values,
        "timestamp": _field_values,
        "features": st.dictionaries(st.text(max_size=8), json_scalars, max_size=5) | json_values,
        "prediction": _field_values,
        "scores": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3) | json_values,
        "segments": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3) | json_values,
        "latency_ms": _field_values,
        "label": _field_values,
        "outcomes": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3) | json_values,
    },
)


def _serialise(value: Any, ascii_only: bool = True) -> bytes:
    # surrogatepass: a lone surrogate from st.text() becomes invalid UTF-8, which the decoder must reject.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


arbitrary_json = st.builds(_serialise, json_values, st.booleans())
arbitrary_objects = st.builds(_serialise, contract_objects, st.booleans())

_NESTED = ("features", "segments", "scores", "outcomes")
_TIMESTAMPS = st.one_of(
    st.floats(min_value=-1e20, max_value=1e20, allow_nan=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "", "now"]),
    st.text(max_size=30),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1]),
)
_SEGMENT_VALUES = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.text()))


def _paths(event: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every top-level key and every key of the nested objects, as paths."""
    paths: list[tuple[str, ...]] = [(k,) for k in event]
    for name in _NESTED:
        if isinstance(event.get(name), dict):
            paths += [(name, k) for k in event[name]]
    return paths


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = event if len(path) == 1 else event[path[0]]
    target[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn, pool: list[dict[str, Any]]) -> bytes:
    """(c) A valid event with one to three mutations, then perhaps byte flips or a cut in its JSON text."""
    event = copy.deepcopy(draw(st.sampled_from(pool)))
    deep: dict[str, int] = {}
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(event)
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "retype",
                    "nan",
                    "deep",
                    "long",
                    "many",
                    "segment",
                    "timestamp",
                    "number",
                    "new_field",
                    "model",
                ]
            )
        )
        if op == "drop" and paths:
            path = draw(st.sampled_from(paths))
            del (event if len(path) == 1 else event[path[0]])[path[-1]]
        elif op == "retype" and paths:
            _set(event, draw(st.sampled_from(paths)), draw(json_values))
        elif op == "nan" and paths:
            _set(event, draw(st.sampled_from(paths)), draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        elif op == "deep" and paths:
            token = f"@@deep{len(deep)}@@"
            deep[token] = draw(st.sampled_from([1, 2, 100, 1023, 1024, 1025, 5000]))
            _set(event, draw(st.sampled_from(paths)), token)
        elif op == "long" and paths:
            n = draw(st.sampled_from([255, 256, 257, 5000, 60_000]))
            text = draw(st.sampled_from(["x", "é", "\U0001f600", "\x00"])) * n
            if draw(st.booleans()):
                _set(event, draw(st.sampled_from(paths)), text)
            else:  # a very long key
                name = draw(st.sampled_from(_NESTED))
                event.setdefault(name, {})
                if isinstance(event[name], dict):
                    event[name][text] = 1.0
        elif op == "many":
            n = draw(st.sampled_from([0, 250, 999, 1000, 1001, 3000]))
            name = draw(st.sampled_from(_NESTED))
            value: Any = draw(st.sampled_from([0.5, "a", None, True]))
            event[name] = {f"f{i}": (value if name == "features" else 0.5) for i in range(n)}
        elif op == "segment":
            segments = event.setdefault("segments", {})
            if isinstance(segments, dict):
                segments[draw(st.sampled_from(["country", "gender", "other"]))] = draw(_SEGMENT_VALUES)
        elif op == "timestamp":
            event["timestamp"] = draw(_TIMESTAMPS)
        elif op == "number" and paths:
            _set(event, draw(st.sampled_from(paths)), draw(_NUMBERS))
        elif op == "new_field":
            name = draw(st.sampled_from(_NESTED))
            event.setdefault(name, {})
            if isinstance(event[name], dict):
                key = draw(st.one_of(st.text(max_size=10), st.sampled_from(["__prediction__", "age", ""])))
                event[name][key] = draw(json_scalars)
        elif op == "model":
            event["model"] = draw(st.one_of(st.sampled_from(["churn", "fraud", "a\x00b", ""]), st.text(max_size=5)))
    raw = _serialise(event, ascii_only=draw(st.booleans()))
    for token, depth in deep.items():
        raw = raw.replace(json.dumps(token).encode(), b"[" * depth + b"1" + b"]" * depth)
    tail = draw(st.sampled_from(["none", "none", "flip", "cut"]))
    if tail == "flip" and raw:
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        raw = bytes(data)
    elif tail == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def _valid(pool: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(pool).map(orjson.dumps)


def _message(pool: list[dict[str, Any]]) -> st.SearchStrategy[tuple[bytes | None, bool]]:
    """A message and whether it is known to be valid."""
    invalid_or_unknown = st.one_of(
        st.binary(max_size=200),  # (a)
        arbitrary_json,  # (b)
        arbitrary_objects,  # (b), shaped like events
        mutated(pool),  # (c)
        mutated(pool),
        st.none(),
    )
    return st.one_of(invalid_or_unknown.map(lambda m: (m, False)), _valid(pool).map(lambda m: (m, True)))


prediction_messages = _message(PREDICTIONS)
label_messages = _message(LABELS)


# --------------------------------------------------------------------------- the properties
def _check(engine: PartitionEngine, role: str, messages: list[tuple[bytes | None, bool]]) -> BatchResult:
    """Feed one batch and check every per-batch property."""
    values = [m for m, _ in messages]
    times = [T0 + i for i in range(len(values))]
    events, capped, labels = engine.events_total(), engine.capped["model"], engine.labels_seen
    rejected_before = Counter({reason: n for (r, reason), n in engine.rejected.items() if r == role})
    process: Callable[..., BatchResult] = engine.process_predictions if role == "predictions" else engine.process_labels
    result = process(values, times)  # no exception may escape

    assert result.processed + len(result.rejected) == len(values)
    positions = [r.position for r in result.rejected]
    assert len(set(positions)) == len(positions), "a message was rejected twice"
    assert all(0 <= p < len(values) for p in positions)
    for r in result.rejected:
        assert r.reason in REASONS, r
        assert isinstance(r.detail, str) and r.detail.strip(), r
    known_valid = {i for i, (_, ok) in enumerate(messages) if ok}
    assert not known_valid & set(positions), f"valid events rejected: {result.rejected}"

    rejected_after = Counter({reason: n for (r, reason), n in engine.rejected.items() if r == role})
    assert rejected_after - rejected_before == Counter(r.reason for r in result.rejected)
    if role == "predictions":
        # Every valid event is counted once: in its model's state, or as turned away by the model cap.
        counted = engine.events_total() - events
        turned_away = engine.capped["model"] - capped
        assert counted + turned_away == result.processed
        if len(engine.models) < CONFIG.monitoring.max_models:
            assert turned_away == 0
    else:
        assert engine.labels_seen - labels == result.processed
    for alert in result.alerts:
        assert alert.to_dict()["status"] in ("firing", "resolved")
    return result


_ENGINES: dict[str, PartitionEngine] = {}


def shared_engine(name: str) -> PartitionEngine:
    """One engine per test (not per example), warmed up on realistic traffic so detectors are live."""
    engine = _ENGINES.get(name)
    if engine is None:
        engine = _ENGINES[name] = PartitionEngine(CONFIG, clock=_clock)
        _check(engine, "predictions", [(orjson.dumps(e), True) for e in PREDICTIONS[:1500]])
        _check(engine, "labels", [(orjson.dumps(e), True) for e in LABELS[:800]])
    return engine


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(
    predictions=st.lists(prediction_messages, max_size=6),
    labels=st.lists(label_messages, max_size=4),
)
def test_no_message_breaks_the_engine(predictions, labels):
    engine = shared_engine("no_message_breaks_the_engine")
    _check(engine, "predictions", predictions)
    _check(engine, "labels", labels)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=64), arbitrary_json, arbitrary_objects), max_size=8))
def test_the_decoders_reject_with_a_known_reason_or_accept(values):
    for decoder in (PredictionDecoder(), LabelDecoder(), PredictionDecoder(max_event_bytes=40, max_fields=1)):
        batch, rejected = decoder.decode(values, [T0] * len(values))
        assert len(batch) + len(rejected) == len(values)
        assert sorted([r.position for r in rejected] + batch.index.tolist()) == list(range(len(values)))
        assert all(r.reason in REASONS and r.detail for r in rejected)


@settings(max_examples=200, deadline=None, database=None)
@given(
    event=st.sampled_from(PREDICTIONS),
    field=st.sampled_from(["prediction_id", "model", "features", "prediction"]),
)
def test_dropping_a_required_field_is_reported_as_missing(event, field):
    value = orjson.dumps({k: v for k, v in event.items() if k != field})
    _, rejected = PredictionDecoder().decode([value], [T0])
    assert [r.reason for r in rejected] == ["missing_field"]


@settings(max_examples=300, deadline=None, database=None)
@given(
    event=st.sampled_from(PREDICTIONS),
    where=st.sampled_from(["features.age", "features.income", "prediction", "latency_ms", "scores.churn"]),
    literal=st.sampled_from(["NaN", "Infinity", "-Infinity"]),
    prediction_id=st.text(min_size=1, max_size=12),
)
def test_nan_and_infinity_text_is_reported_as_non_finite(event, where, literal, prediction_id):
    """Python's json writes NaN / Infinity; the contract's reason for them is ``non_finite``, wherever they are."""
    event = copy.deepcopy(event)
    event["prediction_id"] = prediction_id  # the first field, so any non-ASCII text comes before the NaN
    _set(event, tuple(where.split(".")), "@@nan@@")
    value = json.dumps(event, ensure_ascii=False).replace('"@@nan@@"', literal).encode("utf-8", "surrogatepass")
    _, rejected = PredictionDecoder().decode([value], [T0])
    if prediction_id.encode("utf-8", "surrogatepass") != prediction_id.encode("utf-8", "replace"):
        return  # a lone surrogate: invalid UTF-8 comes first
    assert [r.reason for r in rejected] == ["non_finite"], rejected


@pytest.mark.parametrize("timestamp", [1e15, "9999-12-31T23:59:59-14:00"], ids=["epoch_1e15", "iso_year_10000_utc"])
def test_a_far_future_event_time_does_not_break_alerting(timestamp):
    """A contract-valid timestamp beyond year 9999 (UTC) in a drifting stream: no exception may escape."""
    engine = PartitionEngine(CONFIG, clock=_clock)
    events = copy.deepcopy(DRIFT_PREDICTIONS)
    events[2000]["timestamp"] = timestamp  # after the drift started, in the batch where the alert fires
    rejected = []
    for i in range(0, len(events), 500):
        chunk = events[i : i + 500]
        rejected += engine.process_predictions([orjson.dumps(e) for e in chunk], [T0] * len(chunk)).rejected
    assert rejected == []


# --------------------------------------------------------------------------- snapshot fuzz
def _outputs(result: BatchResult) -> tuple[Any, ...]:
    return result.processed, [tuple(r) for r in result.rejected], [a.to_dict() for a in result.alerts]


def _feed(engine: PartitionEngine, batches: list[tuple[str, list[bytes | None]]]) -> list[Any]:
    out = []
    for role, values in batches:
        process = engine.process_predictions if role == "predictions" else engine.process_labels
        out.append(_outputs(process(values, [T0 + i for i in range(len(values))])))
    return out


def _valid_traffic(start: int, stop: int, size: int = 500) -> list[tuple[str, list[bytes | None]]]:
    """Drifting traffic in batches, each batch of predictions followed by the labels of the one before."""
    batches: list[tuple[str, list[bytes | None]]] = []
    previous: list[dict[str, Any]] = []
    for i in range(start, stop, size):
        chunk = DRIFT_PREDICTIONS[i : min(i + size, stop)]
        batches.append(("predictions", [orjson.dumps(e) for e in chunk]))
        labels = [DRIFT_LABEL_OF[e["prediction_id"]] for e in previous if e["prediction_id"] in DRIFT_LABEL_OF]
        batches.append(("labels", [orjson.dumps(x) for x in labels]))
        previous = chunk
    return batches


random_batch = st.one_of(
    st.lists(prediction_messages, max_size=6).map(lambda ms: ("predictions", [m for m, _ in ms])),
    st.lists(label_messages, max_size=4).map(lambda ms: ("labels", [m for m, _ in ms])),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    cut=st.integers(0, 2500),
    history=st.lists(random_batch, max_size=4),
    further=st.lists(random_batch, max_size=4),
)
def test_a_restored_engine_continues_exactly_after_random_traffic(cut, history, further):
    engine = PartitionEngine(CONFIG, clock=_clock)
    _feed(engine, _valid_traffic(0, cut) + history)
    raw = snapshot.dumps(engine.snapshot())
    twin = PartitionEngine.restore(CONFIG, snapshot.loads(raw), clock=_clock)
    assert snapshot.dumps(twin.snapshot()) == raw

    rest = further + _valid_traffic(cut, min(cut + 1000, len(DRIFT_PREDICTIONS)))
    assert _feed(twin, rest) == _feed(engine, rest)
    assert snapshot.dumps(twin.snapshot()) == snapshot.dumps(engine.snapshot())
