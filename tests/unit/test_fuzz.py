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
from monitor.core.decoders import LabelDecoder, PredictionDecoder
from monitor.core.engine import BatchResult, PartitionEngine
from monitor.core.events import REASONS
from monitor.simulate import Drift, TrafficGenerator

T0 = 1_767_225_600.0
CONFIG = load_config(environ={}, overrides={"detectors": {"warmup_events": 300}})
# The fuzzing engines skip four of the generator's six numeric features (age and income stay numeric, device
# and plan categorical, so every kind of stream is fuzzed; the skipped ones are still decoded and validated) and
# watch at most 16 features per model (mutations add new names: the cap is fuzzed too). A small batch then
# costs a few milliseconds, not a hundred.
FUZZ_CONFIG = load_config(
    environ={},
    overrides={
        "detectors": {"warmup_events": 300},
        "monitoring": {
            "ignore_features": ["tenure_months", "sessions_7d", "avg_basket", "days_since_login"],
            "max_features_per_model": 16,
        },
    },
)


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
    max_leaves=8,
)
# JSON objects with the contract's field names, so random values reach the field checks, not just the parser.
CONTRACT_FIELDS = (
    "prediction_id",
    "model",
    "model_version",
    "timestamp",
    "features",
    "prediction",
    "scores",
    "segments",
    "latency_ms",
    "label",
    "outcomes",
)
_field_values = st.one_of(
    json_scalars,
    st.text(min_size=1, max_size=12),
    st.floats(0, 2e9),
    st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
    json_values,
)
contract_objects = st.dictionaries(st.sampled_from(CONTRACT_FIELDS), _field_values, max_size=6)


def _serialise(value: Any, ascii_only: bool = True) -> bytes:
    # surrogatepass: a lone surrogate from st.text() becomes invalid UTF-8, which the decoder must reject.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


arbitrary_json = st.builds(_serialise, json_values, st.booleans())
arbitrary_objects = st.builds(_serialise, contract_objects, st.booleans())

_NESTED = ("features", "segments", "scores", "outcomes")
_OPS = ("drop", "retype", "nan", "deep", "long", "many", "segment", "timestamp", "number", "new_field", "model")
_DEPTHS = (1, 2, 100, 1023, 1024, 1025, 5000)  # orjson refuses nesting beyond 1,024
_LONG_SIZES = (255, 256, 257, 5000, 60_000)
_LONG_CHARS = ("x", "é", "\U0001f600", "\x00")
_MANY_SIZES = (0, 250, 999, 1000, 1001, 3000)  # max_fields is 1,000
_MANY_VALUES = (0.5, "a", None, True)
_SEGMENT_NAMES = ("country", "gender", "other")
_TAILS = ("none", "none", "flip", "cut")

# What a mutation writes, by kind: hypothesis strategies for the structured mutator, and a fixed menu of
# awkward values for the byte-driven one (a fuzzing dictionary).
_HUGE = (10**30, -(10**30), 2**64, -(2**63) - 1, 10**400)
_VALUE_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "retyped": st.one_of(
        json_scalars, st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=4), json_scalars, max_size=3)
    ),
    "non_finite": st.sampled_from([math.nan, math.inf, -math.inf]),
    "number": st.one_of(
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, *_HUGE]),
    ),
    "timestamp": st.one_of(
        st.floats(min_value=-1e20, max_value=1e20, allow_nan=False),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.datetimes().map(lambda d: d.isoformat()),
        st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "now"]),
        st.text(max_size=30),
    ),
    "segment": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.text())),
    "name": st.one_of(st.text(max_size=10), st.sampled_from(["__prediction__", "age", ""])),
    "scalar": json_scalars,
    "model": st.one_of(st.sampled_from(["churn", "fraud", "a\x00b", ""]), st.text(max_size=5)),
}
_VALUE_MENUS: dict[str, tuple[Any, ...]] = {
    "retyped": (None, True, False, 0, -1, 1.5, "", "x", "NaN", "1e400", [], [1, "a"], {}, {"a": {"b": [None]}}, *_HUGE),
    "non_finite": (math.nan, math.inf, -math.inf),
    "number": (0, -0.0, -1, 0.5, 1, 2, 1e308, -1e308, 5e-324, 1e-300, 123456789.123, *_HUGE),
    "timestamp": (
        0,
        -1,
        1e15,
        1e300,
        2**70,
        T0 - 86400 * 365,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+05:30",
        "2026-01-01 00:00:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "1969-12-31T23:59:59Z",
        "2026-02-30T00:00:00Z",
        "now",
        "",
        True,
        None,
        [],
    ),
    "segment": (1, 0.5, True, None, [], {"a": "b"}, ["US"]),
    "name": ("", " ", "age", "__prediction__", "é", "\x00", "a.b", "x" * 300, "\ud800"),
    "scalar": (None, True, 0, -1.5, "", "US", "é\x00", *_HUGE),
    "model": ("churn", "fraud", "a\x00b", "", "é", "x" * 257, "m/1", 5, None),
}


class _Draws:
    """Mutation choices from hypothesis draws: structured, rich values, and the best shrinking."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def index(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1))

    def value(self, kind: str) -> Any:
        return self.draw(_VALUE_STRATEGIES[kind])


class _Bytes:
    """Mutation choices read from hypothesis-drawn bytes, as a fuzzer's data provider does.

    One draw per message instead of a dozen keeps 10,000 examples fast; hypothesis still shrinks the bytes,
    and running out of bytes means choice 0, the simplest.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def index(self, n: int) -> int:
        width = max(1, ((n - 1).bit_length() + 7) // 8)
        chunk = self.data[self.pos : self.pos + width]
        self.pos += width
        return int.from_bytes(chunk, "big") % n if chunk else 0

    def value(self, kind: str) -> Any:
        menu = _VALUE_MENUS[kind]
        return menu[self.index(len(menu))]


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


def _nested(event: dict[str, Any], name: str) -> dict[str, Any] | None:
    target = event.setdefault(name, {})
    return target if isinstance(target, dict) else None


def _mutate(pool: list[dict[str, Any]], c: _Draws | _Bytes) -> bytes:
    """(c) A valid event with one or two mutations, then perhaps byte flips or a cut in its JSON text."""
    event = copy.deepcopy(pool[c.index(len(pool))])
    deep: dict[str, int] = {}
    for _ in range(1 + c.index(2)):
        paths = _paths(event)
        op = _OPS[c.index(len(_OPS))]
        path = paths[c.index(len(paths))] if paths else ("prediction",)
        if op == "drop" and paths:
            del (event if len(path) == 1 else event[path[0]])[path[-1]]
        elif op == "retype":
            _set(event, path, c.value("retyped"))
        elif op == "nan":  # json.dumps writes NaN, Infinity and -Infinity as bare words
            _set(event, path, c.value("non_finite"))
        elif op == "deep":
            token = f"@@deep{len(deep)}@@"
            deep[token] = _DEPTHS[c.index(len(_DEPTHS))]
            _set(event, path, token)
        elif op == "long":
            text = _LONG_CHARS[c.index(len(_LONG_CHARS))] * _LONG_SIZES[c.index(len(_LONG_SIZES))]
            target = _nested(event, _NESTED[c.index(len(_NESTED))])
            if c.index(2) and target is not None:
                target[text] = 1.0  # a very long key
            else:
                _set(event, path, text)
        elif op == "many":
            name = _NESTED[c.index(len(_NESTED))]
            value = _MANY_VALUES[c.index(len(_MANY_VALUES))] if name == "features" else 0.5
            event[name] = {f"f{i}": value for i in range(_MANY_SIZES[c.index(len(_MANY_SIZES))])}
        elif op == "segment":
            target = _nested(event, "segments")
            if target is not None:
                target[_SEGMENT_NAMES[c.index(len(_SEGMENT_NAMES))]] = c.value("segment")
        elif op == "timestamp":
            event["timestamp"] = c.value("timestamp")
        elif op == "number":
            _set(event, path, c.value("number"))
        elif op == "new_field":
            target = _nested(event, _NESTED[c.index(len(_NESTED))])
            if target is not None:
                target[c.value("name")] = c.value("scalar")
        elif op == "model":
            event["model"] = c.value("model")
    raw = _serialise(event, ascii_only=bool(c.index(2)))
    for token, depth in deep.items():
        raw = raw.replace(json.dumps(token).encode(), b"[" * depth + b"1" + b"]" * depth)
    tail = _TAILS[c.index(len(_TAILS))]
    if tail == "flip" and raw:
        data = bytearray(raw)
        for _ in range(1 + c.index(4)):
            data[c.index(len(data))] ^= 1 + c.index(255)
        raw = bytes(data)
    elif tail == "cut":
        raw = raw[: c.index(len(raw) + 1)]
    return raw


def _json_value(c: _Bytes, depth: int = 0) -> Any:
    """(b) for the byte-driven mix: a random JSON value, nesting up to 6 levels."""
    kind = c.index(8 if depth < 6 else 6)
    if kind == 6:
        return [_json_value(c, depth + 1) for _ in range(c.index(4))]
    if kind == 7:
        return {c.value("name"): _json_value(c, depth + 1) for _ in range(c.index(4))}
    return c.value("retyped" if kind < 3 else "scalar")


def _json_object(c: _Bytes) -> dict[str, Any]:
    """(b) shaped like an event: contract field names with random values."""
    return {CONTRACT_FIELDS[c.index(len(CONTRACT_FIELDS))]: _json_value(c, 1) for _ in range(c.index(7))}


def mutated(pool: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Mutated events, every choice a hypothesis draw."""
    return st.composite(lambda draw: _mutate(pool, _Draws(draw)))()


def mutated_fast(pool: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Mutated events, every choice read from one drawn byte string."""
    return st.binary(min_size=1, max_size=40).map(lambda data: _mutate(pool, _Bytes(data)))


# Valid events as the producer writes them; mutated ones are written by json.dumps (other spacing), so a
# message is known to be valid exactly when it is one of these.
VALID = {orjson.dumps(e) for e in PREDICTIONS + LABELS}


def _valid(pool: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(pool) - 1).map(lambda i: orjson.dumps(pool[i]))


def _message(pool: list[dict[str, Any]], fast: bool) -> st.SearchStrategy[bytes | None]:
    """A message value.

    Repeated branches weigh the mix: (c) mutated events 8, (a) bytes 4 (and None 2), valid events 2, (b) JSON
    values 1 and JSON objects 1. With ``fast``, mutations and JSON are built from one drawn byte string each:
    hypothesis's recursive strategy costs about 20 ms a draw here, too slow for 10,000 examples (the decoder
    and structured-mutation tests below draw it).
    """
    binary = st.binary(max_size=200)
    if fast:
        mutations = mutated_fast(pool)
        values = st.binary(min_size=1, max_size=40).map(lambda d: _serialise(_json_value(_Bytes(d)), d[0] % 2 == 0))
        objects = st.binary(min_size=1, max_size=40).map(lambda d: _serialise(_json_object(_Bytes(d)), d[0] % 2 == 0))
    else:
        mutations, values, objects = mutated(pool), arbitrary_json, arbitrary_objects
    unknown = (*[binary] * 4, st.none(), st.none(), *[mutations] * 8, values, objects)
    return st.one_of(*[_valid(pool)] * 2, *unknown)


# --------------------------------------------------------------------------- the properties
def _check(engine: PartitionEngine, role: str, values: list[bytes | None]) -> BatchResult:
    """Feed one batch and check every per-batch property."""
    times = [T0 + i for i in range(len(values))]
    events, capped, labels = engine.events_total(), engine.model_monitor.capped["model"], engine.profile.labels_seen
    rejected_before = Counter({reason: n for (r, reason), n in engine.profile.rejected.items() if r == role})
    process: Callable[..., BatchResult] = engine.process_predictions if role == "predictions" else engine.process_labels
    result = process(values, times)  # no exception may escape

    assert result.processed + len(result.rejected) == len(values)
    positions = [r.position for r in result.rejected]
    assert len(set(positions)) == len(positions), "a message was rejected twice"
    assert all(0 <= p < len(values) for p in positions)
    for r in result.rejected:
        assert r.reason in REASONS, r
        assert isinstance(r.detail, str) and r.detail.strip(), r
    known_valid = {i for i, value in enumerate(values) if value in VALID}
    assert not known_valid & set(positions), f"valid events rejected: {result.rejected}"

    rejected_after = Counter({reason: n for (r, reason), n in engine.profile.rejected.items() if r == role})
    assert rejected_after - rejected_before == Counter(r.reason for r in result.rejected)
    if role == "predictions":
        # Every valid event is counted once: in its model's state, or as turned away by the model cap.
        counted = engine.events_total() - events
        turned_away = engine.model_monitor.capped["model"] - capped
        assert counted + turned_away == result.processed
        if len(engine.models) < engine.config.monitoring.max_models:
            assert turned_away == 0
    else:
        assert engine.profile.labels_seen - labels == result.processed
    for alert in result.alerts:
        assert orjson.loads(orjson.dumps(alert.to_dict()))["status"] in ("firing", "resolved")
    return result


_ENGINES: dict[str, PartitionEngine] = {}


def shared_engine(name: str) -> PartitionEngine:
    """One engine per test (not per example), warmed up on realistic traffic so detectors are live."""
    engine = _ENGINES.get(name)
    if engine is None:
        engine = _ENGINES[name] = PartitionEngine(FUZZ_CONFIG, clock=_clock)
        _check(engine, "predictions", [orjson.dumps(e) for e in PREDICTIONS[:1500]])
        _check(engine, "labels", [orjson.dumps(e) for e in LABELS[:800]])
    return engine


def _batch(role: str, messages: st.SearchStrategy[bytes | None], size: int) -> st.SearchStrategy:
    return st.lists(messages, min_size=1, max_size=size).map(lambda ms: (role, ms))


def _batches(fast: bool, size: int) -> st.SearchStrategy[tuple[str, list[bytes | None]]]:
    """One small batch of 1 to ``size`` messages: two of predictions for one of labels."""
    predictions, labels = _message(PREDICTIONS, fast), _message(LABELS, fast)
    return st.one_of(
        _batch("predictions", predictions, size),
        _batch("predictions", predictions, size),
        _batch("labels", labels, size),
    )


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(batch=_batches(fast=True, size=3))
def test_no_message_breaks_the_engine(batch):
    """10,000 small batches into one engine; mutations are byte-driven here to keep generation cheap."""
    role, values = batch
    _check(shared_engine("no_message_breaks_the_engine"), role, values)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(batch=_batches(fast=False, size=4))
def test_no_structured_mutation_breaks_the_engine(batch):
    """The same properties with every mutation choice a hypothesis draw (richer values, better shrinking)."""
    role, values = batch
    _check(shared_engine("no_structured_mutation_breaks_the_engine"), role, values)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=64), arbitrary_json, arbitrary_objects), max_size=8))
def test_the_decoders_reject_with_a_known_reason_or_accept(values):
    for decoder in (PredictionDecoder(), LabelDecoder(), PredictionDecoder(max_event_bytes=40, max_fields=1)):
        batch, rejected = decoder.decode(values, [0.0] * len(values))
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
    value = json.dumps(event, ensure_ascii=False).replace('"@@nan@@"', literal).encode()
    _, rejected = PredictionDecoder().decode([value], [T0])
    assert [r.reason for r in rejected] == ["non_finite"], rejected


@pytest.mark.parametrize("timestamp", [1e15, "9999-12-31T23:59:59-14:00"], ids=["epoch_1e15", "iso_year_10000_utc"])
def test_a_far_future_event_time_does_not_break_alerting(timestamp):
    """A contract-valid timestamp beyond year 9999 (UTC) in the batch where a drift alert fires.

    Whether the engine accepts such an event or rejects it, no exception may escape and the drift must
    still be reported.
    """
    engine = PartitionEngine(CONFIG, clock=_clock)
    events = copy.deepcopy(DRIFT_PREDICTIONS)
    events[1500]["timestamp"] = timestamp  # the first drifted event; its batch fires the age alert
    keys = []
    for i in range(0, len(events), 500):
        values = [orjson.dumps(e) for e in events[i : i + 500]]
        result = engine.process_predictions(values, [0.0] * len(values))
        assert result.processed + len(result.rejected) == len(values)
        keys += [(a.status, a.key) for a in result.alerts]
    assert ("firing", "churn/v1/data_drift/age/all") in keys


@pytest.mark.parametrize("outlier", [1e6, 1e150, 1e200, 1e308])
def test_one_extreme_value_in_the_warm_up_does_not_blind_drift_detection(outlier):
    """A finite number is a valid feature value; one of them in a stream's warm-up must not hide a later drift.

    (Found from the overflow warnings of the fuzz test: the baseline's mean and variance absorb the value.)
    """
    engine = PartitionEngine(CONFIG, clock=_clock)
    events = copy.deepcopy(DRIFT_PREDICTIONS)
    events[100]["features"]["age"] = outlier
    keys = []
    for i in range(0, len(events), 500):
        values = [orjson.dumps(e) for e in events[i : i + 500]]
        keys += [(a.status, a.key) for a in engine.process_predictions(values, [0.0] * len(values)).alerts]
    assert ("firing", "churn/v1/data_drift/age/all") in keys


def test_a_stream_whose_warm_up_is_all_near_the_float_limit_goes_on_being_monitored():
    """Every value of a stream's warm-up near 1e300 (finite, so valid): its baseline's spread overflows to
    infinity. Binning its values on that scale stopped the engine with a ValueError from np.bincount (found by a
    review); they now land in the outermost cells, and the other streams go on."""
    engine = PartitionEngine(CONFIG, clock=_clock)
    events = copy.deepcopy(DRIFT_PREDICTIONS)
    for i, e in enumerate(events):
        e["features"]["huge"] = 1e300 * (i % 97)
    keys = []
    for i in range(0, len(events), 500):
        values = [orjson.dumps(e) for e in events[i : i + 500]]
        result = engine.process_predictions(values, [0.0] * len(values))
        assert result.processed == len(values)
        keys += [(a.status, a.key) for a in result.alerts]
    assert ("firing", "churn/v1/data_drift/age/all") in keys


# --------------------------------------------------------------------------- snapshot fuzz
def _feed(engine: PartitionEngine, batches: list[tuple[str, list[bytes | None]]]) -> str:
    """Every batch's outputs as JSON text (NaN written as NaN, so equal outputs compare equal)."""
    out = []
    for role, values in batches:
        process = engine.process_predictions if role == "predictions" else engine.process_labels
        result = process(values, [T0 + i for i in range(len(values))])
        out.append([result.processed, result.rejected, [a.to_dict() for a in result.alerts]])
    return json.dumps(out)


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


random_batch = _batches(fast=False, size=4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    cut=st.integers(0, 1500),
    history=st.lists(random_batch, max_size=4),
    further=st.lists(random_batch, max_size=4),
)
def test_a_restored_engine_continues_exactly_after_random_traffic(cut, history, further):
    """Random valid and invalid traffic, snapshot through bytes, restore: the twin's outputs are the original's."""
    engine = PartitionEngine(FUZZ_CONFIG, clock=_clock)
    _feed(engine, _valid_traffic(0, cut) + history)
    raw = snapshot.dumps(engine.snapshot())
    twin = PartitionEngine.restore(FUZZ_CONFIG, snapshot.loads(raw), clock=_clock)
    assert snapshot.dumps(twin.snapshot()) == raw

    rest = further + _valid_traffic(cut, cut + 1000)  # the drift (at 1,500) fires within this for some cuts
    assert _feed(twin, rest) == _feed(engine, rest)
    assert snapshot.dumps(twin.snapshot()) == snapshot.dumps(engine.snapshot())
