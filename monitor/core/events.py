"""The event contract: what a prediction or label event may hold, the reasons a message is rejected, the
batches of columns decoded events become, and the per-message checks that name a rejection's reason
(:mod:`monitor.core.decoders` decodes; docs/contracts.md states the contract)."""

from __future__ import annotations

import math
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
    features: dict[str, list[Scalar] | np.ndarray]  # an array: a summary's float column (NaN where None)
    segments: dict[str, list[str | None]]
    latency_ms: np.ndarray
    scores: list[dict[str, float] | None] = field(default_factory=list)
    nulls: dict[str, list[int]] = field(default_factory=dict)  # rows where a feature was sent as an explicit null
    restamped: int = 0  # rows given their Kafka time, stamped too far after it (see _event_times)

    def __len__(self) -> int:
        return len(self.prediction_id)

    def by_model_version(self, *, sort: bool) -> list[tuple[tuple[str, str], np.ndarray | None]]:
        """The rows of each model version (None: every row), sorted or in order of first appearance. One model
        version (the common case: a summary holds one) is seen with two list counts, not a key per row."""
        n = len(self)
        first_model, first_version = self.model[0], self.model_version[0]
        if self.model.count(first_model) == n and self.model_version.count(first_version) == n:
            return [((first_model, first_version), None)]
        groups: dict[tuple[str, str], list[int]] = {}
        for r, key in enumerate(zip(self.model, self.model_version, strict=True)):
            groups.setdefault(key, []).append(r)
        keys = sorted(groups) if sort else list(groups)
        return [(key, np.asarray(groups[key], dtype=np.intp)) for key in keys]


@dataclass
class LabelBatch:
    """Valid label / outcome events as columns."""

    index: np.ndarray
    prediction_id: list[str]
    model: list[str | None]
    event_time: np.ndarray
    label: list[Scalar]
    outcomes: list[dict[str, float] | None]
    restamped: int = 0  # rows given their Kafka time, stamped too far after it (see _event_times)

    def __len__(self) -> int:
        return len(self.prediction_id)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_timestamp(value: Any, field_name: str = "timestamp") -> float:
    """Epoch seconds from a number or an ISO-8601 string (naive times are UTC).

    >>> parse_timestamp("2026-01-01T00:00:00Z")
    1767225600.0
    >>> parse_timestamp(1767225600)
    1767225600.0
    """
    if is_number(value):
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


UTF8_BOM = b"\xef\xbb\xbf"


def load_event(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    if value is None or len(value) == 0:
        raise DecodeError("empty", "message has no value")
    if len(value) > max_bytes:
        raise DecodeError("oversized", f"message is {len(value)} bytes, the limit is {max_bytes}")
    if value.startswith(UTF8_BOM):  # JSON parsers may ignore a byte order mark (RFC 8259), and some writers add one
        value = value[len(UTF8_BOM) :]
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "UTF-8" in text:
            raise DecodeError("invalid_utf8", "message is not valid UTF-8") from None
        at = value.decode("utf-8", "replace")[exc.pos : exc.pos + 9].lstrip("-")  # pos counts characters
        if at.startswith(("NaN", "Infinity")):
            raise DecodeError("non_finite", "NaN and infinity are not valid JSON numbers") from None
        if "infinity" in text:  # a number past the float range, written out in full
            raise DecodeError("non_finite", "a number beyond the float range (about 1.8e308) is not finite") from None
        raise DecodeError("invalid_json", f"not JSON: {text[:120]}") from None
    if not isinstance(obj, dict):
        raise DecodeError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def string_field(obj: dict[str, Any], name: str, *, required: bool, max_length: int = MAX_NAME_LENGTH) -> str | None:
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


def scalar_value(name: str, value: Any, *, allow_null: bool) -> Scalar:
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


def number_map(obj: dict[str, Any], name: str, max_fields: int) -> dict[str, float] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError("wrong_type", f"{name!r} must be an object of name -> number")
    if len(value) > max_fields:
        raise DecodeError("too_many_fields", f"{name!r} has {len(value)} entries, the limit is {max_fields}")
    for key, item in value.items():
        if not is_number(item):
            raise DecodeError("wrong_type", f"{name}.{key} must be a number")
        if not math.isfinite(item):
            raise DecodeError("non_finite", f"{name}.{key} is not finite")
    return value


def stamped_ahead(event_time: Any, kafka_time: Any, max_ahead_s: float) -> Any:
    """Whether an event (or each of an array's) is stamped more than ``max_ahead_s`` after its Kafka time, a
    known one (above 0): the rule the decoders restamp by (:mod:`monitor.core.decoders`), and ``monitor replay``
    orders labels by."""
    return (event_time - kafka_time > max_ahead_s) & (kafka_time > 0.0)
