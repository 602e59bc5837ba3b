"""Event contract v1: decoding prediction and label messages into columns, rejecting the rest with a reason."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.core.decoders import LabelDecoder, PredictionDecoder
from monitor.core.events import REASONS, LabelBatch, PredictionBatch, Rejected, parse_timestamp

JAN_1_2026 = 1767225600.0  # 2026-01-01T00:00:00Z
KAFKA_TIME = 1767300000.0

MAX_BYTES = 2000
MAX_FIELDS = 3

BASE: dict[str, Any] = {
    "prediction_id": "p-1",
    "model": "churn",
    "features": {"income": 52000.5, "plan": "gold"},
    "prediction": 0.83,
}


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _with(**changes: Any) -> bytes:
    return _dumps({**BASE, **changes})


def _without(*keys: str) -> bytes:
    return _dumps({k: v for k, v in BASE.items() if k not in keys})


def _decoder() -> PredictionDecoder:
    return PredictionDecoder(max_event_bytes=MAX_BYTES, max_fields=MAX_FIELDS)


def _reject_one(decoder: PredictionDecoder | LabelDecoder, value: bytes | None) -> Rejected:
    batch, rejected = decoder.decode([value], [KAFKA_TIME])
    assert len(batch) == 0, "expected the message to be rejected"
    assert len(batch.index) == 0
    assert len(rejected) == 1
    return rejected[0]


# --- valid predictions -------------------------------------------------------------------------------


def test_valid_predictions_decode_into_columns() -> None:
    full = {
        "prediction_id": "p-1",
        "model": "churn",
        "model_version": "v2",
        "timestamp": "2026-01-01T00:00:00Z",
        "features": {"income": 52000.5, "plan": "gold", "is_member": True},
        "prediction": 0.83,
        "scores": {"yes": 0.83, "no": 0.17},
        "segments": {"country": "DE", "age_band": "30-39"},
        "latency_ms": 12.5,
    }
    minimal_numeric_ts = {
        "prediction_id": "p-2",
        "model": "churn",
        "timestamp": JAN_1_2026 + 100,
        "features": {"income": 1, "tenure": None},
        "prediction": "yes",
    }
    no_timestamp = {
        "prediction_id": "p-3",
        "model": "fraud",
        "features": {},
        "prediction": False,
        "segments": {"country": "FR"},
        "latency_ms": 0,
    }
    values = [_dumps(full), _dumps(minimal_numeric_ts), _dumps(no_timestamp)]
    batch, rejected = PredictionDecoder().decode(values, [1.0, 2.0, KAFKA_TIME])

    assert rejected == []
    assert isinstance(batch, PredictionBatch)
    assert len(batch) == 3
    assert batch.index.tolist() == [0, 1, 2]
    assert batch.index.dtype == np.int64
    assert batch.prediction_id == ["p-1", "p-2", "p-3"]
    assert batch.model == ["churn", "churn", "fraud"]
    assert batch.model_version == ["v2", "unknown", "unknown"]
    assert batch.prediction == [0.83, "yes", False]

    # event time: ISO string, epoch number, and the Kafka time when the event has none
    assert batch.event_time.dtype == np.float64
    assert batch.event_time.tolist() == [JAN_1_2026, JAN_1_2026 + 100, KAFKA_TIME]

    # features: one list per name, aligned with rows; absent and null are both None
    assert batch.features == {
        "income": [52000.5, 1, None],
        "plan": ["gold", None, None],
        "is_member": [True, None, None],
        "tenure": [None, None, None],
    }
    assert all(len(col) == len(batch) for col in batch.features.values())

    assert batch.segments == {"country": ["DE", None, "FR"], "age_band": ["30-39", None, None]}

    assert batch.latency_ms.dtype == np.float64
    assert batch.latency_ms[0] == 12.5
    assert math.isnan(batch.latency_ms[1])
    assert batch.latency_ms[2] == 0.0

    assert batch.scores == [{"yes": 0.83, "no": 0.17}, None, None]


def test_empty_input_gives_an_empty_batch() -> None:
    batch, rejected = PredictionDecoder().decode([], [])
    assert len(batch) == 0
    assert rejected == []
    assert batch.index.shape == (0,)
    assert batch.event_time.shape == (0,)
    assert batch.latency_ms.shape == (0,)
    assert batch.features == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", JAN_1_2026),
        ("2026-01-01T00:00:00", JAN_1_2026),  # naive is UTC
        ("2026-01-01T02:00:00+02:00", JAN_1_2026),
        ("2026-01-01T00:00:00.250Z", JAN_1_2026 + 0.25),
        (JAN_1_2026, JAN_1_2026),
        (int(JAN_1_2026), JAN_1_2026),
        (0, 0.0),
    ],
)
def test_parse_timestamp(value: Any, expected: float) -> None:
    assert parse_timestamp(value) == expected


def test_prediction_id_of_exactly_256_characters_is_accepted() -> None:
    batch, rejected = _decoder().decode([_with(prediction_id="x" * 256)], [KAFKA_TIME])
    assert rejected == []
    assert batch.prediction_id == ["x" * 256]


def test_max_fields_features_exactly_at_the_limit_is_accepted() -> None:
    batch, rejected = _decoder().decode([_with(features={"a": 1, "b": 2, "c": 3})], [KAFKA_TIME])
    assert rejected == []
    assert batch.features == {"a": [1], "b": [2], "c": [3]}


def test_message_exactly_at_the_size_limit_is_accepted() -> None:
    value = _with(model="m" * 10)
    decoder = PredictionDecoder(max_event_bytes=len(value), max_fields=MAX_FIELDS)
    batch, rejected = decoder.decode([value], [KAFKA_TIME])
    assert rejected == []
    assert len(batch) == 1
    assert _reject_one(PredictionDecoder(max_event_bytes=len(value) - 1), value).reason == "oversized"


# --- rejected predictions -----------------------------------------------------------------------------

BAD_PREDICTIONS = [
    pytest.param(None, "empty", id="none"),
    pytest.param(b"", "empty", id="empty-bytes"),
    pytest.param(_with(model="m" * (MAX_BYTES + 1)), "oversized", id="oversized"),
    pytest.param(b"\xff\xfe{}", "invalid_utf8", id="invalid-utf8-bytes"),
    pytest.param(
        b'{"prediction_id": "\xff", "model": "m", "features": {}, "prediction": 1}',
        "invalid_utf8",
        id="invalid-utf8-in-string",
    ),
    pytest.param(b"not json", "invalid_json", id="not-json"),
    pytest.param(b'{"prediction_id": "a", "model": "m"', "invalid_json", id="truncated-json"),
    pytest.param(
        b'{"prediction_id": "a", "model": "m", "features": {"x": NaN}, "prediction": 1}', "non_finite", id="nan-literal"
    ),
    pytest.param(
        b'{"prediction_id": "a", "model": "m", "features": {"x": 1e400}, "prediction": 1}', "non_finite", id="1e400"
    ),
    pytest.param(
        b'{"prediction_id": "a", "model": "m", "features": {}, "prediction": -Infinity}',
        "non_finite",
        id="minus-infinity",
    ),
    pytest.param(b'[{"prediction_id": "a"}]', "not_object", id="json-array"),
    pytest.param(b'"just a string"', "not_object", id="json-string"),
    pytest.param(b"42", "not_object", id="json-number"),
    pytest.param(b"null", "not_object", id="json-null"),
    pytest.param(_without("prediction_id"), "missing_field", id="missing-prediction-id"),
    pytest.param(_with(prediction_id=None), "missing_field", id="null-prediction-id"),
    pytest.param(_without("model"), "missing_field", id="missing-model"),
    pytest.param(_without("features"), "missing_field", id="missing-features"),
    pytest.param(_without("prediction"), "missing_field", id="missing-prediction"),
    pytest.param(_with(prediction=None), "missing_field", id="null-prediction"),
    pytest.param(_with(prediction_id=123), "wrong_type", id="prediction-id-number"),
    pytest.param(_with(model=["churn"]), "wrong_type", id="model-list"),
    pytest.param(_with(model_version=2), "wrong_type", id="model-version-number"),
    pytest.param(_with(features=[1, 2]), "wrong_type", id="features-list"),
    pytest.param(_with(features={"x": {"nested": 1}}), "wrong_type", id="feature-value-object"),
    pytest.param(_with(features={"x": [1, 2]}), "wrong_type", id="feature-value-list"),
    pytest.param(_with(prediction={"class": 1}), "wrong_type", id="prediction-object"),
    pytest.param(_with(segments={"country": 49}), "wrong_type", id="segment-value-number"),
    pytest.param(_with(segments={"country": None}), "wrong_type", id="segment-value-null"),
    pytest.param(_with(segments=["DE"]), "wrong_type", id="segments-list"),
    pytest.param(_with(latency_ms="12ms"), "wrong_type", id="latency-string"),
    pytest.param(_with(latency_ms=True), "wrong_type", id="latency-bool"),
    pytest.param(_with(scores={"yes": "0.8"}), "wrong_type", id="scores-value-string"),
    pytest.param(_with(scores={"yes": True}), "wrong_type", id="scores-value-bool"),
    pytest.param(_with(scores=[0.2, 0.8]), "wrong_type", id="scores-list"),
    pytest.param(_with(timestamp=True), "wrong_type", id="timestamp-bool"),
    pytest.param(_with(latency_ms=-0.5), "invalid_value", id="negative-latency"),
    pytest.param(_with(prediction_id="x" * 257), "invalid_value", id="prediction-id-too-long"),
    pytest.param(_with(prediction_id=""), "invalid_value", id="prediction-id-empty"),
    pytest.param(_with(model=""), "invalid_value", id="model-empty"),
    pytest.param(_with(features={"x" * 257: 1}), "invalid_value", id="feature-name-too-long"),
    pytest.param(_with(timestamp="yesterday"), "invalid_value", id="bad-iso-timestamp"),
    pytest.param(_with(timestamp="2026-13-01T00:00:00Z"), "invalid_value", id="iso-month-13"),
    pytest.param(_with(timestamp=-1), "invalid_value", id="negative-epoch"),
    pytest.param(_with(features={"a": 1, "b": 2, "c": 3, "d": 4}), "too_many_fields", id="too-many-features"),
    pytest.param(_with(segments={"a": "1", "b": "2", "c": "3", "d": "4"}), "too_many_fields", id="too-many-segments"),
    pytest.param(_with(scores={"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}), "too_many_fields", id="too-many-scores"),
]

BAD_LABELS = [
    pytest.param(b'{"prediction_id": "a"}', "missing_field", id="neither-label-nor-outcomes"),
    pytest.param(b'{"prediction_id": "a", "label": null, "outcomes": null}', "missing_field", id="both-null"),
    pytest.param(b'{"label": 1}', "missing_field", id="missing-prediction-id"),
    pytest.param(b'{"prediction_id": "a", "outcomes": {"revenue": "12.5"}}', "wrong_type", id="outcome-string"),
    pytest.param(b'{"prediction_id": "a", "outcomes": {"converted": true}}', "wrong_type", id="outcome-bool"),
    pytest.param(b'{"prediction_id": "a", "outcomes": [1]}', "wrong_type", id="outcomes-list"),
    pytest.param(b'{"prediction_id": "a", "label": {"y": 1}}', "wrong_type", id="label-object"),
    pytest.param(b'{"prediction_id": "a", "label": 1, "model": 7}', "wrong_type", id="model-number"),
    pytest.param(b'{"prediction_id": "a", "label": 1, "timestamp": "soon"}', "invalid_value", id="bad-timestamp"),
    pytest.param(
        b'{"prediction_id": "a", "outcomes": {"a": 1, "b": 2, "c": 3, "d": 4}}',
        "too_many_fields",
        id="too-many-outcomes",
    ),
    pytest.param(b'{"prediction_id": "a", "outcomes": {"revenue": 1e400}}', "non_finite", id="outcome-1e400"),
    pytest.param(b"[]", "not_object", id="array"),
    pytest.param(None, "empty", id="none"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_PREDICTIONS)
def test_bad_prediction_is_rejected_with_reason(value: bytes | None, reason: str) -> None:
    rejected = _reject_one(_decoder(), value)
    assert rejected.position == 0
    assert rejected.reason == reason
    assert isinstance(rejected.detail, str)
    assert rejected.detail


def test_mixed_batch_keeps_valid_events_and_positions() -> None:
    values = [
        b"not json",  # 0
        _with(prediction_id="a"),  # 1
        None,  # 2
        _with(prediction_id="b", features={"income": 10.0}, segments={"country": "DE"}),  # 3
        _without("model"),  # 4
        _with(prediction_id="c", latency_ms=-1),  # 5
        _with(prediction_id="d", model_version="v3"),  # 6
    ]
    kafka_times = [float(i) for i in range(len(values))]
    batch, rejected = _decoder().decode(values, kafka_times)

    assert batch.index.tolist() == [1, 3, 6]
    assert batch.prediction_id == ["a", "b", "d"]
    assert batch.model_version == ["unknown", "unknown", "v3"]
    # each row keeps the Kafka time of its own input message
    assert batch.event_time.tolist() == [1.0, 3.0, 6.0]
    assert batch.features["income"] == [52000.5, 10.0, 52000.5]
    assert batch.features["plan"] == ["gold", None, "gold"]
    assert batch.segments == {"country": [None, "DE", None]}
    assert [(r.position, r.reason) for r in rejected] == [
        (0, "invalid_json"),
        (2, "empty"),
        (4, "missing_field"),
        (5, "invalid_value"),
    ]
    # every input position is accounted for exactly once
    assert sorted([*batch.index.tolist(), *(r.position for r in rejected)]) == list(range(len(values)))
    # the index points back at the input message of each row
    for row, pos in enumerate(batch.index):
        assert orjson.loads(values[pos])["prediction_id"] == batch.prediction_id[row]


def test_all_rejected_batch_has_empty_columns() -> None:
    batch, rejected = _decoder().decode([None, b"[]"], [1.0, 2.0])
    assert len(batch) == 0
    assert batch.features == {}
    assert batch.segments == {}
    assert [r.position for r in rejected] == [0, 1]


# --- labels -------------------------------------------------------------------------------------------


def test_label_decoder_accepts_label_only_outcomes_only_and_both() -> None:
    values = [
        b'{"prediction_id": "a", "label": 1}',
        b'{"prediction_id": "b", "outcomes": {"converted": 1, "revenue": 12.5}}',
        b'{"prediction_id": "c", "label": false, "model": "churn", "timestamp": "2026-01-01T00:00:00Z"}',
        b'{"prediction_id": "d", "label": "spam", "outcomes": {"satisfaction": 4}, "timestamp": 1767225600}',
    ]
    batch, rejected = LabelDecoder().decode(values, [10.0, 20.0, 30.0, 40.0])

    assert rejected == []
    assert isinstance(batch, LabelBatch)
    assert len(batch) == 4
    assert batch.index.tolist() == [0, 1, 2, 3]
    assert batch.prediction_id == ["a", "b", "c", "d"]
    assert batch.label == [1, None, False, "spam"]
    assert batch.outcomes == [None, {"converted": 1, "revenue": 12.5}, None, {"satisfaction": 4}]
    assert batch.model == [None, None, "churn", None]
    assert batch.event_time.tolist() == [10.0, 20.0, JAN_1_2026, JAN_1_2026]


@pytest.mark.parametrize(("value", "reason"), BAD_LABELS)
def test_bad_label_is_rejected_with_reason(value: bytes | None, reason: str) -> None:
    rejected = _reject_one(LabelDecoder(max_event_bytes=MAX_BYTES, max_fields=MAX_FIELDS), value)
    assert rejected.position == 0
    assert rejected.reason == reason
    assert rejected.detail


def test_label_mixed_batch_positions() -> None:
    values = [b'{"prediction_id": "b"}', b'{"prediction_id": "a", "label": 0}', b"{"]
    batch, rejected = LabelDecoder().decode(values, [1.0, 2.0, 3.0])
    assert batch.index.tolist() == [1]
    assert batch.label == [0]
    assert [(r.position, r.reason) for r in rejected] == [(0, "missing_field"), (2, "invalid_json")]


# --- reason codes -------------------------------------------------------------------------------------


def test_every_reason_code_is_exercised() -> None:
    """Decode every bad case above and check the observed reasons are exactly the documented codes."""
    seen: set[str] = set()
    for case in BAD_PREDICTIONS:
        (value, expected) = case.values
        seen.add(_reject_one(_decoder(), value).reason)
        assert expected in REASONS
    label_decoder = LabelDecoder(max_event_bytes=MAX_BYTES, max_fields=MAX_FIELDS)
    for case in BAD_LABELS:
        (value, expected) = case.values
        seen.add(_reject_one(label_decoder, value).reason)
        assert expected in REASONS
    assert seen == set(REASONS)
    assert len(REASONS) == len(set(REASONS))


# --- behaviour that looks wrong in the code under test (these tests fail until it is fixed) ---------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b'{"prediction_id": "NaN-1", "model": }', id="NaN-inside-a-string"),
        pytest.param(b'{"prediction_id": "a", "model": "Infinity"', id="Infinity-inside-a-string"),
    ],
)
def test_broken_json_that_merely_mentions_nan_is_invalid_json(value: bytes) -> None:
    """``_load`` looks for the bytes ``NaN``/``Infinity`` anywhere in the message, so any malformed JSON
    containing those words (e.g. in an id or model name) is reported as ``non_finite`` instead of
    ``invalid_json``, with a misleading DLQ reason."""
    assert _reject_one(_decoder(), value).reason == "invalid_json"


def test_iso_timestamp_before_the_epoch_is_rejected_like_a_negative_number() -> None:
    """A numeric timestamp of -1 is ``invalid_value``, but the same instant as an ISO string is accepted
    and yields a negative event time."""
    assert _reject_one(_decoder(), _with(timestamp=-1)).reason == "invalid_value"
    assert _reject_one(_decoder(), _with(timestamp="1969-12-31T23:59:59Z")).reason == "invalid_value"


def test_a_byte_order_mark_is_ignored_and_a_number_past_the_float_range_says_so():
    """A leading UTF-8 byte order mark (some writers add one; RFC 8259 lets parsers ignore it) was dead-lettered
    as invalid UTF-8; a 400-digit integer as 'NaN and infinity are not valid JSON numbers' (seen from outside)."""
    good = _with(model="m")
    batch, rejected = PredictionDecoder().decode([b"\xef\xbb\xbf" + good], [0.0])
    assert not rejected and len(batch) == 1
    big = b'{"prediction_id": "a", "model": "m", "features": {"x": ' + b"9" * 400 + b'}, "prediction": 1}'
    error = _reject_one(PredictionDecoder(), big)
    assert error.reason == "non_finite" and "float range" in error.detail and "NaN" not in error.detail
