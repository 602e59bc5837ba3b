"""The decoders' fast path: the event contract as msgspec structs (JSON syntax, types, required fields and fixed
bounds checked in C), structs with one field per learned feature and segment name, chunks of messages decoded
together, and the pivot of their maps into columns (:mod:`monitor.core.decoders` uses them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
from msgspec import Meta

from monitor.core.events import MAX_EPOCH_S, MAX_ID_LENGTH, MAX_NAME_LENGTH, Rejected, parse_timestamp
from monitor.errors import DecodeError

# Integers stay within int64: orjson turns larger ones into floats, so those go the per-message way.
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Value = Int64 | float | str | bool
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Epoch = Annotated[float, Meta(ge=0, le=MAX_EPOCH_S)]
DECODE_ERRORS = (msgspec.DecodeError, TypeError)  # TypeError: a None value; ValidationError is a DecodeError


class PredictionStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Prediction contract v1 as far as a type says it, for events without a null feature. Feature-name
    length is checked per batch (a constrained key type costs msgspec a quarter of its speed); gc=False
    because a struct is never part of a cycle, and untracked allocations spare the collector."""

    prediction_id: Id
    model: Name
    features: dict[str, Value]
    prediction: Value
    model_version: Name | None = None
    timestamp: Epoch | str | None = None
    segments: dict[str, str] | None = None
    scores: dict[str, Int64 | float] | None = None
    latency_ms: Annotated[float, Meta(ge=0)] | None = None


class PredictionWithNulls(PredictionStruct):
    """An event with a null feature: tried second, so the common case needs no scan for nulls."""

    features: dict[str, Value | None]  # type: ignore[assignment]


WITHOUT_NULLS = frozenset({PredictionStruct})


# --- faster path: events of a known shape -------------------------------------------------------------
# Decoding a feature map into a dict costs msgspec about as much as the rest of the event (hashing every key
# into a fresh table), and gathering dicts into columns costs a lookup per value. A struct whose fields are
# exactly the feature names of a model decodes in well under that and comes out as a tuple in a fixed order,
# so a chunk of such events is transposed into columns by one zip; the same goes for the segment map. The
# shapes are learned from events the dict path accepted, so every name in a shape is a valid name and a
# shape never has more than max_fields names; the scores' limit is part of the type.
SHAPES = 8  # shapes kept at once (one per model and feature set, typically)
SHAPE_BUILDS = 64  # shapes built over a decoder's life: endless new name sets cost a bounded amount


class Shape(NamedTuple):
    """Feature and segment names in field order, and the decoder of an event whose feature map has exactly
    these feature names and whose segment map, if it has one, exactly these segment names; ``decode_nullable``
    also takes a null feature value (tried second, so a chunk without nulls needs no scan for them)."""

    features: tuple[str, ...]
    segments: tuple[str, ...]
    decode: Callable[[bytes], Any]
    decode_nullable: Callable[[bytes], Any]


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


def build_shape(features: tuple[str, ...], segments: tuple[str, ...], max_fields: int) -> Shape:
    """An event with a name more or less, a null feature or an empty segment map where names are expected
    fails to decode and takes the dict path. Raises ValueError for a name msgspec cannot rename to."""
    scores = Annotated[dict[str, Int64 | float], Meta(max_length=max_fields)]
    segment_struct = _named("_Segments", segments, str)

    def event(value_type: Any) -> Any:
        return msgspec.defstruct(
            "_ShapedPrediction",
            [
                ("features", _named("_Features", features, value_type)),
                ("segments", segment_struct | None, None),
                ("scores", scores | None, None),
            ],
            bases=(PredictionStruct,),
            forbid_unknown_fields=True,
            gc=False,
        )

    return Shape(
        features, segments, msgspec.json.Decoder(event(Value)).decode, msgspec.json.Decoder(event(Value | None)).decode
    )


class LabelStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Label contract v1 as far as a type says it (one of label / outcomes is checked per batch)."""

    prediction_id: Id
    label: Value | None = None
    outcomes: dict[str, Int64 | float] | None = None
    model: Name | None = None
    timestamp: Epoch | str | None = None


def decode_structs(
    decoders: Sequence[Callable[[bytes], Any]], values: Sequence[bytes | None], max_bytes: int
) -> list[Any]:
    """One struct per message from the first decoder that accepts it, None where none does. A clean batch
    (the common case) is one C-level map of the first decoder."""
    if None not in values and (not values or max(map(len, values)) <= max_bytes):  # type: ignore[arg-type]
        try:
            return list(map(decoders[0], values))  # type: ignore[arg-type]
        except DECODE_ERRORS:
            pass
    out: list[Any] = []
    for value in values:
        struct = None
        if value is not None and len(value) <= max_bytes:
            for decode in decoders:
                try:
                    struct = decode(value)
                    break
                except DECODE_ERRORS:
                    continue
        out.append(struct)
    return out


CHUNK = 128  # messages decoded and gathered together, while their objects are still in the CPU cache
# A chunk's maps are pivoted name by name while the names times the rows are at most this many times the values
# they hold, else row by row (about as fast per value looked up as one lookup per name and row is)
SPARSE = 4
_ASTUPLE = msgspec.structs.astuple


def too_many(maps: Sequence[dict[str, Any] | None], limit: int) -> bool:
    return max(map(len, filter(None, maps)), default=0) > limit


def epoch_times(structs: list[Any]) -> None:
    """ISO-8601 timestamps as epoch seconds in place; a struct whose time is invalid becomes None."""
    for i, s in enumerate(structs):
        if s is not None and type(s.timestamp) is str:
            try:
                s.timestamp = parse_timestamp(s.timestamp)
            except DecodeError:
                structs[i] = None


def column_part(maps: Sequence[dict[str, Any]]) -> list[tuple[str, Sequence[Any]]]:
    """A chunk's row maps as (name, values) per name, in order of first appearance, None where a row lacks
    the name. When every row has the first row's names (the common case) each row is read once in C
    (itemgetter) and transposed by zip: reading a column at a time would walk every dict once per name."""
    names = tuple(maps[0]) if maps else ()
    if len(names) > 1 and len(set(map(len, maps))) == 1:
        try:
            return list(zip(names, zip(*map(itemgetter(*names), maps), strict=True), strict=True))
        except KeyError:
            pass
    every = dict.fromkeys(chain.from_iterable(maps))
    if len(every) * len(maps) <= SPARSE * sum(map(len, maps)):
        get = dict.get
        return [(name, list(map(get, maps, repeat(name)))) for name in every]
    # sparse maps (each row a few of many optional names): row by row, each value once, instead of every name
    # looked up in every row
    columns: dict[str, list[Any]] = {name: [None] * len(maps) for name in every}
    for row, m in enumerate(maps):
        for name, value in m.items():
            columns[name][row] = value
    return list(columns.items())


def shaped_part(
    names: tuple[str, ...], structs: Sequence[Any], values: Sequence[Any], field: str, known: dict[str, list[Any]]
) -> list[tuple[str, Sequence[Any]]]:
    """:func:`column_part` for the maps of a chunk of shaped events (None where an event has no such map): the
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


class Pivot:
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


def settle(
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


def struct_chunks(
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
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        structs = [None] * len(chunk) if decoders is None else decode_structs(decoders, chunk, max_bytes)
        if screen(structs):
            yield structs, range(start, start + len(structs))
        else:
            yield settle(structs, values, kafka_times, start, validate, rejected)
