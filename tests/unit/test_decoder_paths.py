"""The fast decoding path (msgspec structs, checked per chunk) against the per-message validator.

``decode`` must give exactly what ``decode_each`` gives: the same rows with the same values *and types*
(an int stays an int), the same columns and nulls, the same rejects with the same reason and detail.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.decoders import LabelDecoder, PredictionDecoder
from monitor.core.events import LabelBatch, PredictionBatch

T0 = 1_767_225_600.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T02:00:00+02:00", "1969-12-31T23:59:59Z", "soon", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
names = st.one_of(st.sampled_from(["x", "y", "plan", "age"]), st.text(max_size=4), st.just("n" * 257))
feature_maps = st.dictionaries(names, scalars, max_size=5)

predictions = st.fixed_dictionaries(
    {
        "prediction_id": st.one_of(st.sampled_from(["p-1", "p-2"]), st.just("x" * 257), st.just(""), values),
        "model": st.one_of(st.just("m"), values),
        "features": st.one_of(feature_maps, feature_maps, values),
        "prediction": st.one_of(scalars, values),
    },
    optional={
        "model_version": st.one_of(st.just("v1"), values),
        "timestamp": st.one_of(st.floats(min_value=0, max_value=4e10), st.integers(-5, 2**65), scalars),
        "segments": st.one_of(st.dictionaries(names, st.sampled_from(["DE", "US"]), max_size=4), values),
        "scores": st.one_of(st.dictionaries(names, st.floats(0, 1) | st.integers(0, 2**64), max_size=4), values),
        "latency_ms": st.one_of(st.floats(-1, 100), st.integers(-1, 2**64), values),
        "extra": values,
    },
)
labels = st.fixed_dictionaries(
    {"prediction_id": st.one_of(st.just("p-1"), st.just("x" * 257), values)},
    optional={
        "label": st.one_of(scalars, values),
        "outcomes": st.one_of(
            st.dictionaries(names, st.floats(-5, 5) | st.integers(-(2**70), 2**70), max_size=4), values
        ),
        "model": st.one_of(st.just("m"), values),
        "timestamp": st.one_of(st.floats(0, 4e10), scalars),
        "extra": values,
    },
)
raw = st.one_of(
    st.none(),
    st.binary(max_size=30),
    st.sampled_from([b"", b"null", b"[]", b'{"prediction_id": "a"}', b"\xef\xbb\xbf{}", b'{"a": 1e400}']),
)


def _messages(events: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[bytes | None]]:
    """Mostly valid-looking events (so rows are accepted), some mangled bytes, in batches that cross chunks."""
    encoded = events.map(lambda e: orjson.dumps(e, option=orjson.OPT_NON_STR_KEYS) if _encodable(e) else b"{")
    truncated = encoded.map(lambda b: b[: len(b) // 2])
    one = st.one_of(encoded, encoded, encoded, truncated, raw)
    return st.one_of(st.lists(one, max_size=12), st.lists(one, min_size=120, max_size=300))


def _encodable(event: dict[str, Any]) -> bool:
    try:
        orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def _typed(column: Any) -> Any:
    """Values with their types, so 1 and 1.0 (or True and 1) differ; NaN equal to NaN."""
    if isinstance(column, np.ndarray):
        return [("nan",) if isinstance(v, float) and math.isnan(v) else v for v in column.tolist()], str(column.dtype)
    if isinstance(column, dict):
        return [(k, _typed(v)) for k, v in column.items()]
    if isinstance(column, list):
        return [_typed(v) for v in column]
    return (type(column).__name__, column)


def _same(a: PredictionBatch | LabelBatch, b: PredictionBatch | LabelBatch) -> None:
    assert list(vars(a)) == list(vars(b))
    for name in vars(a):
        left, right = getattr(a, name), getattr(b, name)
        if name == "nulls":  # which rows held an explicit null; the order of names is not part of it
            assert left == right
            continue
        assert _typed(left) == _typed(right), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_messages(predictions))
def test_fast_predictions_match_the_per_message_validator(messages: list[bytes | None]) -> None:
    times = [T0 + i for i in range(len(messages))]
    for decoder in (PredictionDecoder(), PredictionDecoder(max_event_bytes=120, max_fields=2)):
        fast, fast_rejected = decoder.decode(messages, times)
        each, each_rejected = decoder.decode_each(messages, times)
        assert fast_rejected == each_rejected
        _same(fast, each)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_messages(labels))
def test_fast_labels_match_the_per_message_validator(messages: list[bytes | None]) -> None:
    times = [T0 + i for i in range(len(messages))]
    for decoder in (LabelDecoder(), LabelDecoder(max_event_bytes=60, max_fields=2)):
        fast, fast_rejected = decoder.decode(messages, times)
        each, each_rejected = decoder.decode_each(messages, times)
        assert fast_rejected == each_rejected
        _same(fast, each)


def test_a_bad_message_in_a_long_batch_leaves_its_neighbours_on_the_fast_path() -> None:
    """Chunks either side of a bad message, a null feature, an ISO time and a field outside the contract."""
    good = [
        orjson.dumps({"prediction_id": f"p{i}", "model": "m", "features": {"x": i, "c": "a"}, "prediction": 0.5})
        for i in range(400)
    ]
    good[10] = b"not json"
    good[200] = orjson.dumps({"prediction_id": "n", "model": "m", "features": {"x": None, "c": "b"}, "prediction": 1})
    good[300] = orjson.dumps(
        {
            "prediction_id": "t",
            "model": "m",
            "features": {"c": "a"},
            "prediction": 1,
            "timestamp": "2026-01-01T00:00:00Z",
        }
    )
    good[301] = orjson.dumps({"prediction_id": "e", "model": "m", "features": {}, "prediction": 1, "trace": [1]})
    times = [0.0] * len(good)
    fast, fast_rejected = PredictionDecoder().decode(good, times)
    each, each_rejected = PredictionDecoder().decode_each(good, times)
    assert [(r.position, r.reason) for r in fast_rejected] == [(10, "invalid_json")]
    assert fast_rejected == each_rejected
    _same(fast, each)
    assert fast.nulls == {"x": [199]}
    assert fast.features["x"][:3] == [0, 1, 2] and type(fast.features["x"][0]) is int
    assert fast.features["x"][298:301] == [299, None, None]
    assert fast.event_time[299] == T0 and "e" in fast.prediction_id


# --- learned shapes: events whose feature maps share their names ---------------------------------------
shape_names = st.lists(
    st.one_of(
        st.sampled_from(["x", "y", "plan", "age"]),
        st.sampled_from(["x", "y", "plan", "age"]),
        st.sampled_from(["", "é", 'a"b', "n" * 256, "n" * 257]),
        st.text(max_size=3),
    ),
    max_size=5,
    unique=True,
)
shape_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # orjson writes 64 bits; above int64 is the dict path
    st.sampled_from(["a", "b", True, False, None]),
)


@st.composite
def _shaped_batches(draw: st.DrawFn) -> list[list[bytes | None]]:
    """Batches of events over a few feature-name sets (sometimes in another key order) and one segment map
    per batch, so whole chunks share a shape, with events that differ (without segments, a name more or less,
    a null, a wrong type, an ISO or bad time, too many segments or scores, broken bytes) at a rate drawn per
    batch."""
    sets = draw(st.lists(shape_names, min_size=1, max_size=3))
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        size = draw(st.sampled_from([1, 5, 127, 128, 129, 300]))
        main = draw(st.sampled_from(sets))
        if draw(st.booleans()):  # the same names as another batch, in another order
            main = draw(st.permutations(main))
        spoil_one_in = draw(st.sampled_from([0, 300, 40]))  # 0: a clean batch
        other_one_in = draw(st.sampled_from([0, 100, 3]))  # how often an event uses another name set
        wild = draw(st.integers(0, 3)) == 0  # drawn values (nulls, big integers, strings) in some rows
        times = draw(st.sampled_from([None, 1.5e9, "2026-01-01T00:00:00Z"]))  # of every event in the batch
        segments = draw(
            st.sampled_from(
                [
                    {"country": "DE"},
                    {"a": "1", "b": "2", "c": "3"},
                    {"c": "3", "a": "1", "b": "2"},
                    {'a"b': "1"},
                    {},
                    None,
                ]
            )
        )
        bare_one_in = draw(st.sampled_from([0, 0, 30]))  # how often an event has no segments
        batch: list[bytes | None] = []
        for i in range(size):
            names = list(draw(st.sampled_from(sets)) if other_one_in and i % other_one_in == 1 else main)
            if i % 50 == 7 and draw(st.booleans()):
                names = draw(st.permutations(names))
            event: dict[str, Any] = {
                "prediction_id": f"p{i}",
                "model": "m",
                "features": {n: draw(shape_values) if wild and i % 7 == 3 else float(i) for n in names},
                "prediction": 0.5,
            }
            if segments is not None and not (bare_one_in and i % bare_one_in == 2):
                event["segments"] = segments
            if times is not None:
                event["timestamp"] = times
            spoil = draw(st.integers(0, spoil_one_in)) if spoil_one_in else -1
            if spoil == 0:
                event["features"]["extra"] = 1
            elif spoil == 1 and names:
                del event["features"][names[0]]
            elif spoil == 2:
                event["timestamp"] = draw(st.sampled_from(["2026-01-01T00:00:00Z", "soon", -1, 4e10, 1.5e9]))
            elif spoil == 3:
                event["segments"] = {"country": 1}
            elif spoil == 4:
                event["scores"] = {"a": 0.1, "b": 0.2, "c": 0.7}
            elif spoil == 5:
                event["features"] = [1]
            elif spoil == 9:
                event["segments"] = {}
            value = orjson.dumps(event)
            if spoil == 6:
                value = value[: len(value) // 2]
            batch.append(None if spoil == 7 else value)
        batches.append(batch)
    return batches


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_shaped_batches())
def test_learned_shapes_match_the_per_message_validator(batches: list[list[bytes | None]]) -> None:
    """A decoder that has learned shapes from earlier batches (and from earlier chunks of the same batch)
    gives the same rows, columns, column order and rejects as the per-message validator."""
    for decoder in (PredictionDecoder(), PredictionDecoder(max_fields=2)):
        for batch in batches + batches:  # each batch twice: the second time every shape is known
            times = [T0 + i for i in range(len(batch))]
            fast, fast_rejected = decoder.decode(batch, times)
            each, each_rejected = decoder.decode_each(batch, times)
            assert fast_rejected == each_rejected
            _same(fast, each)


def _event(i: int, features: dict[str, Any]) -> bytes:
    return orjson.dumps({"prediction_id": f"p{i}", "model": "m", "features": features, "prediction": 0.5})


def test_a_known_shape_keeps_the_order_of_the_first_event_of_the_batch() -> None:
    decoder = PredictionDecoder()
    decoder.decode([_event(i, {"b": 1.0, "a": "x"}) for i in range(200)], [0.0] * 200)
    assert list(decoder._shapes) == [(("b", "a"), ())]  # learned in this order
    batch, rejected = decoder.decode([_event(i, {"a": "y", "b": 2.0}) for i in range(200)], [0.0] * 200)
    assert rejected == [] and list(batch.features) == ["a", "b"]
    assert batch.features["a"] == ["y"] * 200 and batch.features["b"] == [2.0] * 200


def test_events_without_segments_in_a_known_shape_get_none_and_the_first_segment_map_gives_the_order() -> None:
    def event(i: int, segments: dict[str, str] | None) -> bytes:
        body = {"prediction_id": f"p{i}", "model": "m", "features": {"x": 1.0}, "prediction": 0.5}
        return orjson.dumps(body if segments is None else {**body, "segments": segments})

    decoder = PredictionDecoder()
    decoder.decode([event(i, {"country": "DE", "gender": "F"}) for i in range(200)], [0.0] * 200)
    batch_values = [event(0, None)] + [event(i, {"gender": "M", "country": "US"}) for i in range(1, 200)]
    batch_values[150] = event(150, None)
    batch, rejected = decoder.decode(batch_values, [0.0] * 200)
    each, _ = decoder.decode_each(batch_values, [0.0] * 200)
    _same(batch, each)
    assert rejected == [] and list(batch.segments) == ["gender", "country"]
    assert batch.segments["country"][:2] == [None, "US"] and batch.segments["gender"][150] is None


def test_a_bad_message_in_a_known_shape_is_dead_lettered_with_its_reason() -> None:
    decoder = PredictionDecoder()
    good = [_event(i, {"x": float(i), "c": "a"}) for i in range(300)]
    decoder.decode(good, [0.0] * 300)
    spoiled = list(good)
    spoiled[3] = good[3].replace(b'"prediction":0.5', b'"prediction":0.5,"timestamp":"soon"')
    spoiled[5] = _event(5, {"x": float("inf"), "c": "a"}).replace(b"null", b"1e999")
    spoiled[140] = _event(140, {"x": [1], "c": "a"})
    spoiled[141] = _event(141, {"x": None, "c": "a"})
    spoiled[299] = _event(299, {"x": 1.0, "c": "a", "n" * 257: 1.0})
    seen = _watch_dict_path(decoder)
    batch, rejected = decoder.decode(spoiled, [0.0] * 300)
    # No chunk took the dict path: the valid event holding a null decoded with the shape's nullable decoder,
    # and the bad messages slowed only themselves (the per-message validator named their reasons).
    assert seen == []
    assert [(r.position, r.reason) for r in rejected] == [
        (3, "invalid_value"),  # found by the per-chunk time check, after the decoding found 5
        (5, "non_finite"),
        (140, "wrong_type"),
        (299, "invalid_value"),
    ]
    assert rejected == decoder.decode_each(spoiled, [0.0] * 300)[1]
    assert len(batch) == 296 and batch.nulls == {"x": [138]} and batch.features["x"][:5] == [0.0, 1.0, 2.0, 4.0, 6.0]


def _watch_dict_path(decoder: PredictionDecoder) -> list[bytes]:
    seen: list[bytes] = []  # messages the dict path decoded

    def watched(decode: Any) -> Any:
        def watching(value: bytes) -> Any:
            seen.append(value)
            return decode(value)

        return watching

    decoder._fast = tuple(map(watched, decoder._fast))
    return seen


def test_nulls_in_a_known_shape_decode_with_it_and_are_recorded_as_nulls() -> None:
    decoder = PredictionDecoder()
    decoder.decode([_event(i, {"x": 1.0, "c": "a", "k": 2}) for i in range(200)], [0.0] * 200)
    seen = _watch_dict_path(decoder)
    rng = np.random.default_rng(3)
    values = [
        _event(i, {n: (None if rng.random() < 0.3 else v) for n, v in (("x", i / 7), ("c", "b"), ("k", i))})
        for i in range(400)
    ]
    values[7] = _event(7, {"x": None, "c": None, "k": None})  # every value null
    values[300] = b"not json"
    batch, rejected = decoder.decode(values, [0.0] * 400)
    each, each_rejected = decoder.decode_each(values, [0.0] * 400)
    assert seen == []  # no chunk took the dict path
    _same(batch, each)
    assert rejected == each_rejected and [r.position for r in rejected] == [300]
    assert sorted(batch.nulls) == ["c", "k", "x"] and 6 in batch.nulls["c"]  # row 6 holds message 7
    for name, rows in batch.nulls.items():
        assert rows == sorted(rows) and rows == [r for r, v in enumerate(batch.features[name]) if v is None]


def test_sparse_feature_maps_pivot_to_the_same_columns() -> None:
    """Each event carries a few of many optional names (the row-by-row pivot of a chunk's maps)."""
    rng = np.random.default_rng(5)
    names = [f"f{j}" for j in range(120)]
    values = [
        _event(i, {names[j]: (f"v{j}" if j % 5 == 0 else float(j + i)) for j in rng.choice(120, 6, replace=False)})
        for i in range(300)
    ]
    decoder = PredictionDecoder()
    batch, rejected = decoder.decode(values, [0.0] * 300)
    each, _ = decoder.decode_each(values, [0.0] * 300)
    _same(batch, each)
    assert rejected == [] and batch.nulls == {}
    first = orjson.loads(values[0])["features"]
    assert list(batch.features)[:6] == list(first)  # in order of first appearance
    assert sum(v is not None for column in batch.features.values() for v in column) == 300 * 6
