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
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from monitor.core.event_structs import (
    CHUNK,
    DECODE_ERRORS,
    SHAPE_BUILDS,
    SHAPES,
    WITHOUT_NULLS,
    LabelStruct,
    Pivot,
    PredictionStruct,
    PredictionWithNulls,
    Shape,
    build_shape,
    column_part,
    decode_structs,
    epoch_times,
    settle,
    shaped_part,
    struct_chunks,
    too_many,
)
from monitor.core.events import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    LabelBatch,
    PredictionBatch,
    Rejected,
    Scalar,
    is_number,
    load_event,
    number_map,
    parse_timestamp,
    scalar_value,
    stamped_ahead,
    string_field,
)
from monitor.errors import DecodeError

_SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})
_STR_ONLY = frozenset({str})
_EMPTY: dict[str, Any] = {}
_FEATURES = attrgetter("features")


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
        self._fast = (msgspec.json.Decoder(PredictionStruct).decode, msgspec.json.Decoder(PredictionWithNulls).decode)
        # Learned shapes by (feature names, segment names), least recently used first.
        self._shapes: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], Shape] = OrderedDict()
        self._shape_builds = 0
        self._unshapeable: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()  # at most SHAPE_BUILDS

    def validate(self, value: bytes | None, kafka_time: float) -> dict[str, Any]:
        """One event as a checked dict; raises :class:`DecodeError` naming the broken field."""
        obj = load_event(value, self.max_event_bytes)
        pid = string_field(obj, "prediction_id", required=True, max_length=MAX_ID_LENGTH)
        model = string_field(obj, "model", required=True)
        version = string_field(obj, "model_version", required=False) or "unknown"
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
                scalar_value(f"features.{key}", item, allow_null=True)
        if features and max(map(len, features)) > MAX_NAME_LENGTH:
            raise DecodeError("invalid_value", "a feature name is longer than 256 characters")
        if "prediction" not in obj or obj["prediction"] is None:
            raise DecodeError("missing_field", "required field 'prediction' is missing")
        prediction = scalar_value("prediction", obj["prediction"], allow_null=False)
        segments = obj.get("segments")
        if segments is not None:
            if not isinstance(segments, dict):
                raise DecodeError("wrong_type", "'segments' must be an object of name -> string")
            if len(segments) > self.max_fields:
                raise DecodeError("too_many_fields", f"'segments' has {len(segments)} entries")
            if not _STR_ONLY.issuperset(map(type, segments.values())):
                bad = next(k for k, v in segments.items() if not isinstance(v, str))
                raise DecodeError("wrong_type", f"segments.{bad} must be a string")
        scores = number_map(obj, "scores", self.max_fields)
        latency = obj.get("latency_ms")
        if latency is not None:
            if not is_number(latency):
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

    def _struct(self, value: bytes | None, kafka_time: float) -> PredictionStruct:
        """The per-message validator's verdict as a struct (raises :class:`DecodeError` with the reason)."""
        row = self.validate(value, kafka_time)
        return PredictionWithNulls(
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

    def _fits(self, s: PredictionStruct) -> bool:
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
            too_many(features := list(map(_FEATURES, live)), limit)
            or max(map(len, chain.from_iterable(features)), default=0) > MAX_NAME_LENGTH
            or too_many(list(map(attrgetter("segments"), live)), limit)
            or too_many(list(map(attrgetter("scores"), live)), limit)
        ):
            for i, s in enumerate(structs):
                if s is not None and not self._fits(s):
                    structs[i] = None
        if iso_times:
            epoch_times(structs)
        return None not in structs

    def _shape_of(self, chunk: Sequence[bytes | None]) -> Shape | None:
        """The most recently used learned shape that fits the chunk's first or last message."""
        for shape in reversed(list(self._shapes.values())):
            for probe in (chunk[0], chunk[-1]):
                if probe is not None and len(probe) <= self.max_event_bytes:
                    try:
                        shape.decode_nullable(probe)
                    except DECODE_ERRORS:
                        continue
                    self._shapes.move_to_end((shape.features, shape.segments))
                    return shape
        return None

    def _shaped(
        self, chunk: Sequence[bytes | None], start: int, kafka_times: Sequence[float], rejected: list[Rejected]
    ) -> tuple[Shape, list[Any], list[int] | range, Sequence[bytes | None], bool] | None:
        """The chunk decoded with one learned shape: the shape, the valid rows, their input positions, their
        messages, and whether a row may hold a null feature value (decoded by the shape's nullable decoder, tried
        when the strict one fails). A message the shape does not take goes through the per-message validator at
        once: rejected, it is dead-lettered with its reason and the rest of the chunk stays on this path; valid
        after all (another name set), the whole chunk takes the dict path instead (None)."""
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
        nullable = False
        whole = None not in chunk and max(map(len, chunk)) <= limit  # type: ignore[arg-type]
        try:
            if not whole:
                raise TypeError
            rows = list(map(shape.decode, chunk))  # type: ignore[arg-type]
        except DECODE_ERRORS:
            nullable = True
            try:
                if not whole:
                    raise TypeError
                rows = list(map(shape.decode_nullable, chunk))  # type: ignore[arg-type]
            except DECODE_ERRORS:
                rows = []
                for i, value in enumerate(chunk):
                    try:
                        if value is None or len(value) > limit:
                            raise TypeError
                        rows.append(shape.decode_nullable(value))
                    except DECODE_ERRORS:
                        if not rejects(i):
                            return None
                        rows.append(None)
        if not self._screen(rows, shaped=True) and not all(
            i in bad or rejects(i) for i, row in enumerate(rows) if row is None
        ):
            return None
        if not bad:
            return shape, rows, range(start, start + len(rows)), chunk, nullable
        rejected.extend(sorted(bad.values()))
        kept = [i for i, row in enumerate(rows) if row is not None]
        return shape, [rows[i] for i in kept], [start + i for i in kept], [chunk[i] for i in kept], nullable

    def _learn(self, row: Any) -> None:
        """Keep the names of an accepted event as a shape, so later chunks of its kind decode faster."""
        key = (tuple(row.features), tuple(row.segments or ()))
        if key in self._shapes or key in self._unshapeable or self._shape_builds >= SHAPE_BUILDS:
            return
        self._shape_builds += 1
        try:
            self._shapes[key] = build_shape(*key, self.max_fields)
        except ValueError:  # msgspec cannot rename a field to a name with a quote, backslash or control character
            self._unshapeable.add(key)
            return
        if len(self._shapes) > SHAPES:
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
        features, segments = Pivot(), Pivot()
        # Absent and null are both None in a column; schema checks tell them apart. Only an event that needed
        # the nullable struct, or came through the per-message validator, can hold a null.
        nulls: dict[str, list[int]] = {}
        for start in range(0, len(values), CHUNK):
            chunk = values[start : start + CHUNK]
            shaped = self._shaped(chunk, start, kafka_times, rejected) if fast else None
            positions: list[int] | range
            if shaped is not None:
                shape, rows, positions, messages, nullable = shaped
                if not rows:
                    continue
                feature_part = shaped_part(
                    shape.features, list(map(_FEATURES, rows)), messages, "features", features.columns
                )
                if nullable:  # every row has every name: a None is a null
                    for name, column in feature_part:
                        if None in column:
                            at = nulls.setdefault(name, [])
                            at += [row_no for row_no, v in enumerate(column, len(ids)) if v is None]
            else:
                structs = decode_structs(self._fast, chunk, self.max_event_bytes) if fast else [None] * len(chunk)
                if self._screen(structs):
                    rows, positions = structs, range(start, start + len(structs))
                else:
                    rows, positions = settle(structs, values, kafka_times, start, self._struct, rejected)
                if not rows:
                    continue
                if fast:
                    self._learn(rows[0])
                feature_part = column_part(list(map(_FEATURES, rows)))
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
                segment_part = shaped_part(shaped[0].segments, c_segments, messages, "segments", segments.columns)
            else:
                segment_part = column_part(c_segments if None not in c_segments else [m or _EMPTY for m in c_segments])
            segments.add(segment_part, len(rows))
            if shaped is None and not WITHOUT_NULLS.issuperset(map(type, rows)):
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
        self._fast = (msgspec.json.Decoder(LabelStruct).decode,)

    def validate(self, value: bytes | None, kafka_time: float) -> dict[str, Any]:
        obj = load_event(value, self.max_event_bytes)
        pid = string_field(obj, "prediction_id", required=True, max_length=MAX_ID_LENGTH)
        label = obj.get("label")
        if label is not None:
            label = scalar_value("label", label, allow_null=False)
        outcomes = number_map(obj, "outcomes", self.max_fields)
        if label is None and not outcomes:
            raise DecodeError("missing_field", "one of 'label' or 'outcomes' is required")
        model = string_field(obj, "model", required=False)
        ts = obj.get("timestamp")
        event_time = kafka_time if ts is None else parse_timestamp(ts)
        return {"prediction_id": pid, "model": model, "event_time": event_time, "label": label, "outcomes": outcomes}

    def _struct(self, value: bytes | None, kafka_time: float) -> LabelStruct:
        """The per-message validator's verdict as a struct (raises :class:`DecodeError` with the reason)."""
        row = self.validate(value, kafka_time)
        return LabelStruct(
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
        if too_many(list(map(attrgetter("outcomes"), live)), limit) or None in list(map(attrgetter("label"), live)):
            for i, s in enumerate(structs):
                if s is not None and (
                    (s.label is None and not s.outcomes) or (s.outcomes is not None and len(s.outcomes) > limit)
                ):
                    structs[i] = None
        if iso_times:
            epoch_times(structs)
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
        chunks = struct_chunks(
            decoders, self._screen, self._struct, values, kafka_times, self.max_event_bytes, rejected
        )
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
