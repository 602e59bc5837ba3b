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

from monitor.core.events import LabelBatch, LabelDecoder, PredictionBatch, PredictionDecoder

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
    times = [T0] * len(good)
    fast, fast_rejected = PredictionDecoder().decode(good, times)
    each, each_rejected = PredictionDecoder().decode_each(good, times)
    assert [(r.position, r.reason) for r in fast_rejected] == [(10, "invalid_json")]
    assert fast_rejected == each_rejected
    _same(fast, each)
    assert fast.nulls == {"x": [199]}
    assert fast.features["x"][:3] == [0, 1, 2] and type(fast.features["x"][0]) is int
    assert fast.features["x"][298:301] == [299, None, None]
    assert fast.event_time[299] == T0 and "e" in fast.prediction_id
