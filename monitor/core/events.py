"""Decode message values into column batches and reject what breaks the event contract.

Decoding is the one per-event loop we cannot avoid (JSON is per message); everything after it works on
columns. A rejected message keeps its index so the I/O edge can dead-letter the original bytes with
the reason; the rest of the batch goes on.

Three paths with one answer. The fast path decodes each message into a msgspec struct, so JSON syntax,
types, required fields and fixed bounds are checked in C; the limits set at run time (message size,
fields per map, feature-name length) and ISO-8601 times are checked per chunk. Before it, a chunk whose
events all carry a feature and segment name set learned from earlier accepted events decodes those maps
into structs with one field per name, which is faster to decode and to pivot than dicts. Any message the
fast path does not accept goes through the per-message validator (``validate``), which names the reason
exactly as it always has: the fast paths only decide *that* a message is valid, never *why* one is not.
It is strict where msgspec is lenient (it skips the values of unknown fields without checking them), so
an event with a field outside the contract takes the per-message path.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import orjson
from msgspec import Meta

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


UTF8_BOM = b"\xef\xbb\xbf"


def _load(value: bytes | None, max_bytes: int) -> dict[str, Any]:
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


# --- fast path: msgspec structs -------------------------------------------------------------------------
# Integers stay within int64: orjson turns larger ones into floats, so those go the per-message way.
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Value = _Int | float | str | bool
_Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Epoch = Annotated[float, Meta(ge=0, le=MAX_EPOCH_S)]
_DECODE_ERRORS = (msgspec.DecodeError, TypeError)  # TypeError: a None value; ValidationError is a DecodeError


class _Prediction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Prediction contract v1 as far as a type says it, for events without a null feature. Feature-name
    length is checked per batch (a constrained key type costs msgspec a quarter of its speed); gc=False
    because a struct is never part of a cycle, and untracked allocations spare the collector."""

    prediction_id: _Id
    model: _Name
    features: dict[str, _Value]
    prediction: _Value
    model_version: _Name | None = None
    timestamp: _Epoch | str | None = None
    segments: dict[str, str] | None = None
    scores: dict[str, _Int | float] | None = None
    latency_ms: Annotated[float, Meta(ge=0)] | None = None


class _PredictionWithNulls(_Prediction):
    """An event with a null feature: tried second, so the common case needs no scan for nulls."""

    features: dict[str, _Value | None]  # type: ignore[assignment]


_WITHOUT_NULLS = frozenset({_Prediction})


# --- faster path: events of a known shape -------------------------------------------------------------
# Decoding a feature map into a dict costs msgspec about as much as the rest of the event (hashing every key
# into a fresh table), and gathering dicts into columns costs a lookup per value. A struct whose fields are
# exactly the feature names of a model decodes in well under that and comes out as a tuple in a fixed order,
# so a chunk of such events is transposed into columns by one zip; the same goes for the segment map. The
# shapes are learned from events the dict path accepted, so every name in a shape is a valid name and a
# shape never has more than max_fields names; the scores' limit is part of the type.
_SHAPES = 8  # shapes kept at once (one per model and feature set, typically)
_SHAPE_BUILDS = 64  # shapes built over a decoder's life: endless new name sets cost a bounded amount


class _Shape(NamedTuple):
    """Feature and segment names in field order, and the decoder of an event whose feature map has exactly
    these feature names and whose segment map, if it has one, exactly these segment names."""

    features: tuple[str, ...]
    segments: tuple[str, ...]
    decode: Callable[[bytes], Any]


def _named(struct_name: str, names: tuple[str, ...], value_type: Any) -> Any:
    """A struct with one required field per name (renamed, so almost any string works as a name)."""
    fields = [f"f{i}" for i in range(len(names))]
    return msgspec.defstruct(
        struct_name,
        [(f, value_type) for f in fields],
        rename=dict(zip(fields, names, strict=True)),
        forbid_unknown_fields=True,
        gc=False,
    )


def _shape(features: tuple[str, ...], segments: tuple[str, ...], max_fields: int) -> _Shape:
    """An event with a name more or less, a null feature or an empty segment map where names are expected
    fails to decode and takes the dict path. Raises ValueError for a name msgspec cannot rename to."""
    scores = Annotated[dict[str, _Int | float], Meta(max_length=max_fields)]
    event = msgspec.defstruct(
        "_ShapedPrediction",
        [
            ("features", _named("_Features", features, _Value)),
            ("segments", _named("_Segments", segments, str) | None, None),
            ("scores", scores | None, None),
        ],
        bases=(_Prediction,),
        forbid_unknown_fields=True,
        gc=False,
    )
    return _Shape(features, segments, msgspec.json.Decoder(event).decode)


class _Label(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Label contract v1 as far as a type says it (one of label / outcomes is checked per batch)."""

    prediction_id: _Id
    label: _Value | None = None
    outcomes: dict[str, _Int | float] | None = None
    model: _Name | None = None
    timestamp: _Epoch | str | None = None


def _decode_structs(
    decoders: Sequence[Callable[[bytes], Any]], values: Sequence[bytes | None], max_bytes: int
) -> list[Any]:
    """One struct per message from the first decoder that accepts it, None where none does. A clean batch
    (the common case) is one C-level map of the first decoder."""
    if None not in values and (not values or max(map(len, values)) <= max_bytes):  # type: ignore[arg-type]
        try:
            return list(map(decoders[0], values))  # type: ignore[arg-type]
        except _DECODE_ERRORS:
            pass
    out: list[Any] = []
    for value in values:
        struct = None
        if value is not None and len(value) <= max_bytes:
            for decode in decoders:
                try:
                    struct = decode(value)
                    break
                except _DECODE_ERRORS:
                    continue
        out.append(struct)
    return out


_CHUNK = 128  # messages decoded and gathered together, while their objects are still in the CPU cache
_EMPTY: dict[str, Any] = {}
_FEATURES = attrgetter("features")
_ASTUPLE = msgspec.structs.astuple


def _too_many(maps: Sequence[dict[str, Any] | None], limit: int) -> bool:
    return max(map(len, filter(None, maps)), default=0) > limit


def _epoch_times(structs: list[Any]) -> None:
    """ISO-8601 timestamps as epoch seconds in place; a struct whose time is invalid becomes None."""
    for i, s in enumerate(structs):
        if s is not None and type(s.timestamp) is str:
            try:
                s.timestamp = parse_timestamp(s.timestamp)
            except DecodeError:
                structs[i] = None


def _part(maps: Sequence[dict[str, Any]]) -> list[tuple[str, Sequence[Any]]]:
    """A chunk's row maps as (name, values) per name, in order of first appearance, None where a row lacks
    the name. When every row has the first row's names (the common case) each row is read once in C
    (itemgetter) and transposed by zip: reading a column at a time would walk every dict once per name."""
    names = tuple(maps[0]) if maps else ()
    if len(names) > 1 and len(set(map(len, maps))) == 1:
        try:
            return list(zip(names, zip(*map(itemgetter(*names), maps), strict=True), strict=True))
        except KeyError:
            pass
    get = dict.get
    return [(name, list(map(get, maps, repeat(name)))) for name in dict.fromkeys(chain.from_iterable(maps))]


def _shaped_part(
    names: tuple[str, ...], structs: Sequence[Any], values: Sequence[Any], field: str, known: dict[str, list[Any]]
) -> list[tuple[str, Sequence[Any]]]:
    """:func:`_part` for the maps of a chunk of shaped events (None where an event has no such map): the
    columns are one transpose of the structs' field tuples. Names the batch has not seen yet are put in the
    order of the first event's JSON that has the map, as the dict path puts them."""
    if not names:
        return []
    if None in structs:
        blank = (None,) * len(names)
        tuples = [blank if m is None else _ASTUPLE(m) for m in structs]
    else:
        tuples = list(map(_ASTUPLE, structs))
    part: list[tuple[str, Sequence[Any]]] = list(zip(names, zip(*tuples, strict=True), strict=True))
    if not all(map(known.__contains__, names)):
        first = next((i for i, m in enumerate(structs) if m is not None), None)
        if first is None:
            return []
        columns = dict(part)
        part = [(name, columns[name]) for name in orjson.loads(values[first])[field]]
    return part


class _Pivot:
    """Chunks of (name, values) gathered into one list per name, padded with None where a chunk lacks it."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, part: list[tuple[str, Sequence[Any]]], rows: int) -> None:
        columns = self.columns
        for name, values in part:
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * self.rows
            column.extend(values)
        self.rows += rows
        if len(part) < len(columns):
            for column in columns.values():
                if len(column) < self.rows:
                    column.extend(repeat(None, rows))


def _settle(
    structs: list[Any],
    values: Sequence[bytes | None],
    kafka_times: Sequence[float],
    start: int,
    validate: Callable[[bytes | None, float], Any],
    rejected: list[Rejected],
) -> tuple[list[Any], list[int]]:
    """Send every message of a chunk the fast path left out (None) through the per-message validator: its
    struct if it is valid after all, else its reject with the reason. Valid rows with their input positions."""
    rows: list[Any] = []
    index: list[int] = []
    for i, struct in enumerate(structs, start):
        if struct is None:
            try:
                struct = validate(values[i], kafka_times[i])
            except DecodeError as exc:
                rejected.append(Rejected(i, exc.reason, exc.detail))
                continue
        rows.append(struct)
        index.append(i)
    return rows, index


def _chunks(
    decoders: Sequence[Callable[[bytes], Any]] | None,
    screen: Callable[[list[Any]], bool],
    validate: Callable[[bytes | None, float], Any],
    values: Sequence[bytes | None],
    kafka_times: Sequence[float],
    max_bytes: int,
    rejected: list[Rejected],
) -> Iterator[tuple[list[Any], list[int] | range]]:
    """Per chunk of messages: its valid rows as structs and their input positions. ``screen`` says whether
    the fast path took the whole chunk; without decoders every message goes through ``validate``."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        structs = [None] * len(chunk) if decoders is None else _decode_structs(decoders, chunk, max_bytes)
        if screen(structs):
            yield structs, range(start, start + len(structs))
        else:
            yield _settle(structs, values, kafka_times, start, validate, rejected)


def stamped_ahead(event_time: Any, kafka_time: Any, max_ahead_s: float) -> Any:
    """Whether an event (or each of an array's) is stamped more than ``max_ahead_s`` after its Kafka time, a
    known one (above 0): the rule :func:`_event_times` restamps by, and ``monitor replay`` orders labels by."""
    return (event_time - kafka_time > max_ahead_s) & (kafka_time > 0.0)


def _event_times(
    times: list[np.ndarray], index: np.ndarray, kafka_times: Sequence[float], max_ahead_s: float
) -> tuple[np.ndarray, int]:
    """Epoch seconds per row, and how many rows were restamped. A row takes its message's Kafka time where the
    event has none (numpy turned None into NaN). A row stamped more than ``max_ahead_s`` after its Kafka time
    (0: never) takes the earlier of that Kafka time and the median time of the batch's other rows: an event
    cannot happen after it was sent, so such a stamp is a clock ahead, a wrong year or a wrong zone, and left as
    it is it would move every clock that follows event time (the label join's expiry, the merge's watermark)
    far ahead of the rest. The batch's median keeps a backfill (events of last month sent today) in its own
    time. A Kafka time of 0 or less is unknown (a file, a broker without timestamps) and changes nothing.

    >>> _event_times([np.array([100.0, 5000.0, np.nan])], np.arange(3), [90.0, 200.0, 300.0], 60.0)
    (array([100., 200., 300.]), 1)
    >>> _event_times([np.array([100.0, 101.0, 5000.0])], np.arange(3), [900.0, 900.0, 900.0], 60.0)
    (array([100. , 101. , 100.5]), 1)
    """
    out = np.concatenate(times) if times else np.empty(0, dtype=np.float64)
    if not out.size:
        return out, 0
    kafka = np.asarray(kafka_times, dtype=np.float64)[index]
    missing = np.isnan(out)
    if missing.any():
        out[missing] = kafka[missing]
    if not max_ahead_s:
        return out, 0
    ahead = stamped_ahead(out, kafka, max_ahead_s)
    restamped = int(np.count_nonzero(ahead))
    if restamped:
        to = kafka[ahead]
        if restamped < out.size:
            to = np.minimum(to, float(np.median(out[~ahead])))
        out[ahead] = to
    return out, restamped


_TIMESTAMP = attrgetter("timestamp")
_PREDICTION_FIELDS = attrgetter(
    "prediction_id", "model", "model_version", "timestamp", "prediction", "segments", "scores", "latency_ms"
)
_LABEL_FIELDS = attrgetter("prediction_id", "model", "timestamp", "label", "outcomes")


class PredictionDecoder:
    """Validate prediction events (contract v1) and gather them into a :class:`PredictionBatch`.

    >>> dec = PredictionDecoder()
    >>> batch, bad = dec.decode(
    ...     [b'{"prediction_id":"a","model":"m","features":{"x":1.5},"prediction":0.9}', b"not json"],
    ...     [1700000000.0, 1700000001.0])
    >>> (len(batch), batch.features["x"], batch.model_version, [r.reason for r in bad])
    (1, [1.5], ['unknown'], ['invalid_json'])
    """

    def __init__(self, max_event_bytes: int = 1_000_000, max_fields: int = 1000, max_ahead_s: float = 0.0) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_fields = max_fields
        self.max_ahead_s = max_ahead_s  # see _event_times
        self._fast = (msgspec.json.Decoder(_Prediction).decode, msgspec.json.Decoder(_PredictionWithNulls).decode)
        # Learned shapes by (feature names, segment names), least recently used first.
        self._shapes: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], _Shape] = OrderedDict()
        self._shape_builds = 0
        self._unshapeable: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()  # at most _SHAPE_BUILDS

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

    def _struct(self, value: bytes | None, kafka_time: float) -> _Prediction:
        """The per-message validator's verdict as a struct (raises :class:`DecodeError` with the reason)."""
        row = self.validate(value, kafka_time)
        return _PredictionWithNulls(
            prediction_id=row["prediction_id"],
            model=row["model"],
            features=row["features"],
            prediction=row["prediction"],
            model_version=row["model_version"],
            timestamp=row["event_time"],
            segments=row["segments"],
            scores=row["scores"],
            latency_ms=row["latency_ms"],
        )

    def _fits(self, s: _Prediction) -> bool:
        limit = self.max_fields
        return (
            len(s.features) <= limit
            and (not s.features or max(map(len, s.features)) <= MAX_NAME_LENGTH)
            and (s.segments is None or len(s.segments) <= limit)
            and (s.scores is None or len(s.scores) <= limit)
        )

    def _screen(self, structs: list[Any], *, shaped: bool = False) -> bool:
        """What the struct type cannot say, checked per chunk in C-level maps; True if every message passed.
        A struct that fails becomes None (the per-message validator then names the reason). Shaped events
        need only their times checked: their names are valid and few enough, and their type limits scores."""
        live = structs if None not in structs else [s for s in structs if s is not None]
        iso_times = str in set(map(type, map(_TIMESTAMP, live)))  # before any struct becomes None
        limit = self.max_fields
        if not shaped and (
            _too_many(features := list(map(_FEATURES, live)), limit)
            or max(map(len, chain.from_iterable(features)), default=0) > MAX_NAME_LENGTH
            or _too_many(list(map(attrgetter("segments"), live)), limit)
            or _too_many(list(map(attrgetter("scores"), live)), limit)
        ):
            for i, s in enumerate(structs):
                if s is not None and not self._fits(s):
                    structs[i] = None
        if iso_times:
            _epoch_times(structs)
        return None not in structs

    def _shape_of(self, chunk: Sequence[bytes | None]) -> _Shape | None:
        """The most recently used learned shape that fits the chunk's first or last message."""
        for shape in reversed(list(self._shapes.values())):
            for probe in (chunk[0], chunk[-1]):
                if probe is not None and len(probe) <= self.max_event_bytes:
                    try:
                        shape.decode(probe)
                    except _DECODE_ERRORS:
                        continue
                    self._shapes.move_to_end((shape.features, shape.segments))
                    return shape
        return None

    def _shaped(
        self, chunk: Sequence[bytes | None], start: int, kafka_times: Sequence[float], rejected: list[Rejected]
    ) -> tuple[_Shape, list[Any], list[int] | range, Sequence[bytes | None]] | None:
        """The chunk decoded with one learned shape: the shape, the valid rows, their input positions and their
        messages. A message the shape does not take goes through the per-message validator at once: rejected,
        it is dead-lettered with its reason and the rest of the chunk stays on this path; valid after all
        (another name set, a null feature), the whole chunk takes the dict path instead (None)."""
        shape = self._shape_of(chunk) if self._shapes else None
        if shape is None:
            return None
        bad: dict[int, Rejected] = {}

        def rejects(i: int) -> bool:
            try:
                self._struct(chunk[i], kafka_times[start + i])
            except DecodeError as exc:
                bad[i] = Rejected(start + i, exc.reason, exc.detail)
                return True
            return False

        rows: list[Any]
        limit = self.max_event_bytes
        try:
            if None in chunk or max(map(len, chunk)) > limit:  # type: ignore[arg-type]
                raise TypeError
            rows = list(map(shape.decode, chunk))  # type: ignore[arg-type]
        except _DECODE_ERRORS:
            rows = []
            for i, value in enumerate(chunk):
                try:
                    if value is None or len(value) > limit:
                        raise TypeError
                    rows.append(shape.decode(value))
                except _DECODE_ERRORS:
                    if not rejects(i):
                        return None
                    rows.append(None)
        if not self._screen(rows, shaped=True) and not all(
            i in bad or rejects(i) for i, row in enumerate(rows) if row is None
        ):
            return None
        if not bad:
            return shape, rows, range(start, start + len(rows)), chunk
        rejected.extend(sorted(bad.values()))
        kept = [i for i, row in enumerate(rows) if row is not None]
        return shape, [rows[i] for i in kept], [start + i for i in kept], [chunk[i] for i in kept]

    def _learn(self, row: Any) -> None:
        """Keep the names of an accepted event as a shape, so later chunks of its kind decode faster."""
        key = (tuple(row.features), tuple(row.segments or ()))
        if key in self._shapes or key in self._unshapeable or self._shape_builds >= _SHAPE_BUILDS:
            return
        self._shape_builds += 1
        try:
            self._shapes[key] = _shape(*key, self.max_fields)
        except ValueError:  # msgspec cannot rename a field to a name with a quote, backslash or control character
            self._unshapeable.add(key)
            return
        if len(self._shapes) > _SHAPES:
            self._shapes.popitem(last=False)

    def decode(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[PredictionBatch, list[Rejected]]:
        """Valid events as columns and the rest rejected with their reasons, each keeping its input position."""
        return self._decode(values, kafka_times, fast=True)

    def decode_each(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[PredictionBatch, list[Rejected]]:
        """:meth:`decode` with every message through the per-message validator: the reference the fast path
        must match (tests compare the two; the benchmarks time both)."""
        return self._decode(values, kafka_times, fast=False)

    def _decode(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float], *, fast: bool
    ) -> tuple[PredictionBatch, list[Rejected]]:
        rejected: list[Rejected] = []
        index: list[int] = []
        ids: list[str] = []
        models: list[str] = []
        versions: list[str] = []
        predictions: list[Scalar] = []
        scores: list[dict[str, float] | None] = []
        times: list[np.ndarray] = []
        latency: list[np.ndarray] = []
        features, segments = _Pivot(), _Pivot()
        # Absent and null are both None in a column; schema checks tell them apart. Only an event that needed
        # the nullable struct, or came through the per-message validator, can hold a null.
        nulls: dict[str, list[int]] = {}
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            shaped = self._shaped(chunk, start, kafka_times, rejected) if fast else None
            positions: list[int] | range
            if shaped is not None:
                shape, rows, positions, messages = shaped
                if not rows:
                    continue
                feature_part = _shaped_part(
                    shape.features, list(map(_FEATURES, rows)), messages, "features", features.columns
                )
            else:
                structs = _decode_structs(self._fast, chunk, self.max_event_bytes) if fast else [None] * len(chunk)
                if self._screen(structs):
                    rows, positions = structs, range(start, start + len(structs))
                else:
                    rows, positions = _settle(structs, values, kafka_times, start, self._struct, rejected)
                if not rows:
                    continue
                if fast:
                    self._learn(rows[0])
                feature_part = _part(list(map(_FEATURES, rows)))
            first_row = len(ids)
            index.extend(positions)
            c_ids, c_models, c_versions, c_times, c_predictions, c_segments, c_scores, c_latency = zip(
                *map(_PREDICTION_FIELDS, rows), strict=True
            )
            ids.extend(c_ids)
            models.extend(c_models)
            versions.extend(
                c_versions if None not in c_versions else ["unknown" if v is None else v for v in c_versions]
            )
            predictions.extend(c_predictions)
            scores.extend(c_scores)
            times.append(np.array(c_times, dtype=np.float64))
            latency.append(np.array(c_latency, dtype=np.float64))
            features.add(feature_part, len(rows))
            if shaped is not None:
                segment_part = _shaped_part(shaped[0].segments, c_segments, messages, "segments", segments.columns)
            else:
                segment_part = _part(c_segments if None not in c_segments else [m or _EMPTY for m in c_segments])
            segments.add(segment_part, len(rows))
            if shaped is None and not _WITHOUT_NULLS.issuperset(map(type, rows)):
                for row_no, row in enumerate(rows, first_row):
                    for name, value in row.features.items():
                        if value is None:
                            nulls.setdefault(name, []).append(row_no)
        positions_array = np.asarray(index, dtype=np.int64)
        event_time, restamped = _event_times(times, positions_array, kafka_times, self.max_ahead_s)
        batch = PredictionBatch(
            index=positions_array,
            prediction_id=ids,
            model=models,
            model_version=versions,
            event_time=event_time,
            prediction=predictions,
            features=dict(features.columns),
            segments=segments.columns,
            latency_ms=np.concatenate(latency) if latency else np.empty(0, dtype=np.float64),
            scores=scores,
            nulls=nulls,
            restamped=restamped,
        )
        return batch, rejected


class LabelDecoder:
    """Validate label / outcome events (contract v1).

    >>> batch, bad = LabelDecoder().decode([b'{"prediction_id":"a","label":1}', b'{"prediction_id":"b"}'], [1.0, 2.0])
    >>> (batch.label, [(r.reason, r.detail) for r in bad])
    ([1], [('missing_field', "one of 'label' or 'outcomes' is required")])
    """

    def __init__(self, max_event_bytes: int = 1_000_000, max_fields: int = 1000, max_ahead_s: float = 0.0) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_fields = max_fields
        self.max_ahead_s = max_ahead_s  # see _event_times
        self._fast = (msgspec.json.Decoder(_Label).decode,)

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

    def _struct(self, value: bytes | None, kafka_time: float) -> _Label:
        """The per-message validator's verdict as a struct (raises :class:`DecodeError` with the reason)."""
        row = self.validate(value, kafka_time)
        return _Label(
            prediction_id=row["prediction_id"],
            label=row["label"],
            outcomes=row["outcomes"],
            model=row["model"],
            timestamp=row["event_time"],
        )

    def _screen(self, structs: list[Any]) -> bool:
        """What the struct type cannot say (see :meth:`PredictionDecoder._screen`)."""
        live = structs if None not in structs else [s for s in structs if s is not None]
        iso_times = str in set(map(type, map(_TIMESTAMP, live)))  # before any struct becomes None
        limit = self.max_fields
        if _too_many(list(map(attrgetter("outcomes"), live)), limit) or None in list(map(attrgetter("label"), live)):
            for i, s in enumerate(structs):
                if s is not None and (
                    (s.label is None and not s.outcomes) or (s.outcomes is not None and len(s.outcomes) > limit)
                ):
                    structs[i] = None
        if iso_times:
            _epoch_times(structs)
        return None not in structs

    def decode(self, values: Sequence[bytes | None], kafka_times: Sequence[float]) -> tuple[LabelBatch, list[Rejected]]:
        """Valid labels as columns and the rest rejected with their reasons, each keeping its input position."""
        return self._decode(values, kafka_times, fast=True)

    def decode_each(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[LabelBatch, list[Rejected]]:
        """:meth:`decode` with every message through the per-message validator (the fast path's reference)."""
        return self._decode(values, kafka_times, fast=False)

    def _decode(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float], *, fast: bool
    ) -> tuple[LabelBatch, list[Rejected]]:
        rejected: list[Rejected] = []
        index: list[int] = []
        ids: list[str] = []
        models: list[str | None] = []
        times: list[np.ndarray] = []
        labels: list[Scalar] = []
        outcomes: list[dict[str, float] | None] = []
        decoders = self._fast if fast else None
        chunks = _chunks(decoders, self._screen, self._struct, values, kafka_times, self.max_event_bytes, rejected)
        for rows, positions in chunks:
            if not rows:
                continue
            index.extend(positions)
            c_ids, c_models, c_times, c_labels, c_outcomes = zip(*map(_LABEL_FIELDS, rows), strict=True)
            ids.extend(c_ids)
            models.extend(c_models)
            times.append(np.array(c_times, dtype=np.float64))
            labels.extend(c_labels)
            outcomes.extend(c_outcomes)
        positions_array = np.asarray(index, dtype=np.int64)
        event_time, restamped = _event_times(times, positions_array, kafka_times, self.max_ahead_s)
        batch = LabelBatch(
            index=positions_array,
            prediction_id=ids,
            model=models,
            event_time=event_time,
            label=labels,
            outcomes=outcomes,
            restamped=restamped,
        )
        return batch, rejected
