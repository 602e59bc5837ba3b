"""Decode message values into column batches and reject what breaks the event contract.

Decoding is the one per-event loop we cannot avoid (JSON is per message); everything after it works on
columns. A rejected message keeps its index so the I/O edge can dead-letter the original bytes with
the reason; the rest of the batch goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import orjson

from monitor.errors import DecodeError

MAX_ID_LENGTH = 256
MAX_EPOCH_S = 32_503_680_000.0  # 3000-01-01: later "seconds" are almost always milliseconds
MAX_NAME_LENGTH = 256

# Stable reason codes: they appear in metrics labels and dead-letter headers.
REASONS = (
    "empty",
    "oversized",
    "invalid_utf8",
    "invalid_json",
    "non_finite",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "too_many_fields",
)

Scalar = float | int | str | bool | None
_SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})
_STR_ONLY = frozenset({str})


class Rejected(NamedTuple):
    """A message that is not a valid event: its index in the input, a reason code and a sentence."""

    position: int
    reason: str
    detail: str


@dataclass
class PredictionBatch:
    """Valid prediction events as columns; ``index`` maps each row back to its input message."""

    index: np.ndarray
    prediction_id: list[str]
    model: list[str]
    model_version: list[str]
    event_time: np.ndarray
    prediction: list[Scalar]
    features: dict[str, list[Scalar]]
    segments: dict[str, list[str | None]]
    latency_ms: np.ndarray
    scores: list[dict[str, float] | None] = field(default_factory=list)
    nulls: dict[str, list[int]] = field(default_factory=dict)  # rows where a feature was sent as an explicit null

    def __len__(self) -> int:
        return len(self.prediction_id)


@dataclass
class LabelBatch:
    """Valid label / outcome events as columns."""

    index: np.ndarray
    prediction_id: list[str]
    model: list[str | None]
    event_time: np.ndarray
    label: list[Scalar]
    outcomes: list[dict[str, float] | None]

    def __len__(self) -> int:
        return len(self.prediction_id)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_timestamp(value: Any, field_name: str = "timestamp") -> float:
    """Epoch seconds from a number or an ISO-8601 string (naive times are UTC).

    >>> parse_timestamp("2026-01-01T00:00:00Z")
    1767225600.0
    >>> parse_timestamp(1767225600)
    1767225600.0
    """
    if _is_number(value):
        ts = float(value)
        if not math.isfinite(ts) or ts < 0:
            raise DecodeError("invalid_value", f"{field_name} must be a non-negative finite number")
        if ts > MAX_EPOCH_S:
            raise DecodeError("invalid_value", f"{field_name} is after year 3000 (milliseconds instead of seconds?)")
        return ts
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError("invalid_value", f"{field_name} is not an ISO-8601 time: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
        if ts < 0:
            raise DecodeError("invalid_value", f"{field_name} is before 1970")
        if ts > MAX_EPOCH_S:
            raise DecodeError("invalid_value", f"{field_name} is after year 3000")
        return ts
    raise DecodeError("wrong_type", f"{field_name} must be a number or an ISO-8601 string")


def _load(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    if value is None or len(value) == 0:
        raise DecodeError("empty", "message has no value")
    if len(value) > max_bytes:
        raise DecodeError("oversized", f"message is {len(value)} bytes, the limit is {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "UTF-8" in text:
            raise DecodeError("invalid_utf8", "message is not valid UTF-8") from None
        at = value.decode("utf-8", "replace")[exc.pos : exc.pos + 9].lstrip("-")  # pos counts characters
        if "infinity" in text or at.startswith(("NaN", "Infinity")):
            raise DecodeError("non_finite", "NaN and infinity are not valid JSON numbers") from None
        raise DecodeError("invalid_json", f"not JSON: {text[:120]}") from None
    if not isinstance(obj, dict):
        raise DecodeError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _string(obj: dict[str, Any], name: str, *, required: bool, max_length: int = MAX_NAME_LENGTH) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise DecodeError("missing_field", f"required field {name!r} is missing")
        return None
    if not isinstance(value, str):
        raise DecodeError("wrong_type", f"{name!r} must be a string, got {type(value).__name__}")
    if not value or len(value) > max_length:
        raise DecodeError("invalid_value", f"{name!r} must be 1 to {max_length} characters")
    return value


def _scalar(name: str, value: Any, *, allow_null: bool) -> Scalar:
    if value is None:
        if allow_null:
            return None
        raise DecodeError("wrong_type", f"{name} must not be null")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise DecodeError("non_finite", f"{name} is not finite")
        return value
    raise DecodeError("wrong_type", f"{name} must be a number, string or bool, got {type(value).__name__}")


def _number_map(obj: dict[str, Any], name: str, max_fields: int) -> dict[str, float] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError("wrong_type", f"{name!r} must be an object of name -> number")
    if len(value) > max_fields:
        raise DecodeError("too_many_fields", f"{name!r} has {len(value)} entries, the limit is {max_fields}")
    for key, item in value.items():
        if not _is_number(item):
            raise DecodeError("wrong_type", f"{name}.{key} must be a number")
        if not math.isfinite(item):
            raise DecodeError("non_finite", f"{name}.{key} is not finite")
    return value


def _validate_all(
    validate: Callable[[bytes | None, float], dict[str, Any]],
    values: Sequence[bytes | None],
    kafka_times: Sequence[float],
) -> tuple[list[dict[str, Any]], list[int], list[Rejected]]:
    """Validate each message; valid rows with their input positions, and the rejects with their reasons."""
    rows: list[dict[str, Any]] = []
    index: list[int] = []
    rejected: list[Rejected] = []
    for i, value in enumerate(values):
        try:
            rows.append(validate(value, kafka_times[i]))
            index.append(i)
        except DecodeError as exc:
            rejected.append(Rejected(i, exc.reason, exc.detail))
    return rows, index, rejected


class PredictionDecoder:
    """Validate prediction events (contract v1) and gather them into a :class:`PredictionBatch`.

    >>> dec = PredictionDecoder()
    >>> batch, bad = dec.decode(
    ...     [b'{"prediction_id":"a","model":"m","features":{"x":1.5},"prediction":0.9}', b"not json"],
    ...     [1700000000.0, 1700000001.0])
    >>> (len(batch), batch.features["x"], batch.model_version, [r.reason for r in bad])
    (1, [1.5], ['unknown'], ['invalid_json'])
    """

    def __init__(self, max_event_bytes: int = 1_000_000, max_fields: int = 1000) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_fields = max_fields

    def validate(self, value: bytes | None, kafka_time: float) -> dict[str, Any]:
        """One event as a checked dict; raises :class:`DecodeError` naming the broken field."""
        obj = _load(value, self.max_event_bytes)
        pid = _string(obj, "prediction_id", required=True, max_length=MAX_ID_LENGTH)
        model = _string(obj, "model", required=True)
        version = _string(obj, "model_version", required=False) or "unknown"
        features = obj.get("features")
        if features is None:
            raise DecodeError("missing_field", "required field 'features' is missing")
        if not isinstance(features, dict):
            raise DecodeError("wrong_type", "'features' must be an object of name -> value")
        if len(features) > self.max_fields:
            raise DecodeError("too_many_fields", f"'features' has {len(features)} entries, limit {self.max_fields}")
        # Fast path: one C-level pass over the value types (orjson never yields NaN or infinity, so a
        # float is always finite); the slow loop only runs to name the broken field.
        if not _SCALAR_TYPES.issuperset(map(type, features.values())):
            for key, item in features.items():
                _scalar(f"features.{key}", item, allow_null=True)
        if features and max(map(len, features)) > MAX_NAME_LENGTH:
            raise DecodeError("invalid_value", "a feature name is longer than 256 characters")
        if "prediction" not in obj or obj["prediction"] is None:
            raise DecodeError("missing_field", "required field 'prediction' is missing")
        prediction = _scalar("prediction", obj["prediction"], allow_null=False)
        segments = obj.get("segments")
        if segments is not None:
            if not isinstance(segments, dict):
                raise DecodeError("wrong_type", "'segments' must be an object of name -> string")
            if len(segments) > self.max_fields:
                raise DecodeError("too_many_fields", f"'segments' has {len(segments)} entries")
            if not _STR_ONLY.issuperset(map(type, segments.values())):
                bad = next(k for k, v in segments.items() if not isinstance(v, str))
                raise DecodeError("wrong_type", f"segments.{bad} must be a string")
        scores = _number_map(obj, "scores", self.max_fields)
        latency = obj.get("latency_ms")
        if latency is not None:
            if not _is_number(latency):
                raise DecodeError("wrong_type", "'latency_ms' must be a number")
            if not math.isfinite(latency):
                raise DecodeError("non_finite", "'latency_ms' is not finite")
            if latency < 0:
                raise DecodeError("invalid_value", "'latency_ms' must be >= 0")
        ts = obj.get("timestamp")
        event_time = kafka_time if ts is None else parse_timestamp(ts)
        return {
            "prediction_id": pid,
            "model": model,
            "model_version": version,
            "event_time": event_time,
            "features": features,
            "prediction": prediction,
            "segments": segments or {},
            "scores": scores,
            "latency_ms": math.nan if latency is None else float(latency),
        }

    def decode(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[PredictionBatch, list[Rejected]]:
        rows, index, rejected = _validate_all(self.validate, values, kafka_times)
        n = len(rows)
        features: dict[str, list[Scalar]] = {}
        segments: dict[str, list[str | None]] = {}
        nulls: dict[str, list[int]] = {}  # absent and null are both None in a column; schema checks tell them apart
        for row_no, row in enumerate(rows):
            for name, value in row["features"].items():
                col = features.get(name)
                if col is None:
                    col = features[name] = [None] * n
                if value is None:
                    nulls.setdefault(name, []).append(row_no)
                else:
                    col[row_no] = value
            for name, value in row["segments"].items():
                seg = segments.get(name)
                if seg is None:
                    seg = segments[name] = [None] * n
                seg[row_no] = value
        batch = PredictionBatch(
            index=np.asarray(index, dtype=np.int64),
            prediction_id=[r["prediction_id"] for r in rows],
            model=[r["model"] for r in rows],
            model_version=[r["model_version"] for r in rows],
            event_time=np.fromiter((r["event_time"] for r in rows), dtype=np.float64, count=n),
            prediction=[r["prediction"] for r in rows],
            features=features,
            segments=segments,
            latency_ms=np.fromiter((r["latency_ms"] for r in rows), dtype=np.float64, count=n),
            scores=[r["scores"] for r in rows],
            nulls=nulls,
        )
        return batch, rejected


class LabelDecoder:
    """Validate label / outcome events (contract v1).

    >>> batch, bad = LabelDecoder().decode([b'{"prediction_id":"a","label":1}', b'{"prediction_id":"b"}'], [1.0, 2.0])
    >>> (batch.label, [(r.reason, r.detail) for r in bad])
    ([1], [('missing_field', "one of 'label' or 'outcomes' is required")])
    """

    def __init__(self, max_event_bytes: int = 1_000_000, max_fields: int = 1000) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_fields = max_fields

    def validate(self, value: bytes | None, kafka_time: float) -> dict[str, Any]:
        obj = _load(value, self.max_event_bytes)
        pid = _string(obj, "prediction_id", required=True, max_length=MAX_ID_LENGTH)
        label = obj.get("label")
        if label is not None:
            label = _scalar("label", label, allow_null=False)
        outcomes = _number_map(obj, "outcomes", self.max_fields)
        if label is None and not outcomes:
            raise DecodeError("missing_field", "one of 'label' or 'outcomes' is required")
        model = _string(obj, "model", required=False)
        ts = obj.get("timestamp")
        event_time = kafka_time if ts is None else parse_timestamp(ts)
        return {"prediction_id": pid, "model": model, "event_time": event_time, "label": label, "outcomes": outcomes}

    def decode(self, values: Sequence[bytes | None], kafka_times: Sequence[float]) -> tuple[LabelBatch, list[Rejected]]:
        rows, index, rejected = _validate_all(self.validate, values, kafka_times)
        batch = LabelBatch(
            index=np.asarray(index, dtype=np.int64),
            prediction_id=[r["prediction_id"] for r in rows],
            model=[r["model"] for r in rows],
            event_time=np.fromiter((r["event_time"] for r in rows), dtype=np.float64, count=len(rows)),
            label=[r["label"] for r in rows],
            outcomes=[r["outcomes"] for r in rows],
        )
        return batch, rejected
