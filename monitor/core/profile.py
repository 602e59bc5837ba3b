"""The profile stage: one input partition's messages in, one summary per model version out.

It decodes and validates (rejects go back to the caller, for the dead-letter topic), joins labels to the
predictions of its partition (the two topics are co-partitioned by ``prediction_id``, so the join is
local) and hands each model version's accepted rows and joined labels on as a :class:`Summary`. It keeps
no per-stream state: every stream's detectors run once, in the detection stage that owns the model
version, on the summaries of every input partition merged (``monitor.core.detect``).

A summary carries the rows' values rather than per-stream aggregates: the value-exact windows and the
sequential detectors need each value in event-time order, and one row serves all of its streams (all
traffic and each segment) at once. ``docs/engine-v2.md`` says what pre-aggregating would change.
"""

from __future__ import annotations

import base64
import bisect
import math
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, Protocol

import lz4.frame
import numpy as np
import orjson

from monitor.core import kernels
from monitor.core.event_clock import VersionActivity
from monitor.core.events import LabelDecoder, PredictionBatch, PredictionDecoder, Rejected
from monitor.core.float_columns import as_values, float_column, pack, packed_size, unpack, wire_types
from monitor.core.join import Joined, LabelJoiner, PendingPrediction, Segments, nan_as_none, new_tuple
from monitor.core.label_reading import binary_score, confidences
from monitor.core.settings import Settings
from monitor.core.shards import SHARD_CUT, shard_of
from monitor.core.stats import OVERFLOW

SUMMARY_FORMAT = 1  # the plain form (to_plain), and the wire's when it carries no joined labels
JOINED_COLUMNS_FORMAT = 2  # the wire's with joined labels as columns (joined_columns): earlier releases refuse it
WIRE_FLOATS = b"\n"  # between a summary's JSON header and its float columns on the wire
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"  # how an lz4 frame starts (a zlib stream starts with 0x78, JSON with '{')
MAX_SUMMARY_ROWS = 2_000  # rows per summary at most
SUMMARY_BYTES = 500_000  # rows per summary are cut so that its JSON is about this large
# and so that their input messages add up to at most this many bytes (the JSON estimate reads a part's first rows
# only): under the producer's default message.max.bytes less headroom, which the summary's wire bytes, compressed
# and without the messages' repeated names, stay below
SUMMARY_INPUT_BYTES = 800_000
MAX_WIRE_TEXT_BYTES = 64 * SUMMARY_BYTES  # a summary's payload read off the topic: far above any made here
MAX_SUMMARY_JOINED = 1_000  # joined labels per summary at most: with a full piece of rows, under 1 MB even as JSON
# A summary's rows span about SUMMARY_SPAN_S of event time once it has MIN_SPAN_ROWS rows: the merge orders
# summaries, not rows, so their span bounds how far apart in time the rows of one engine batch can be.
SUMMARY_SPAN_S = 0.1
MIN_SPAN_ROWS = 50
_NUMERIC_TYPES = frozenset({float, int, type(None)})


@dataclass
class Summary:
    """What one input partition (``source``) hands on for one model version: its ``seq``-th summary.

    ``progress`` is the newest prediction event time the source had seen when it sent this, and
    ``label_progress`` the newest label event time: the detection stage releases rows (joined labels) older
    than the slowest source's progress (label progress), the watermark. A summary without rows or joined
    labels is a heartbeat that only moves the progress. A summary that is ``waiting`` is a note (see
    :meth:`ProfileStage.notes`): the source's rows are on their way (input it has not processed, or summaries
    waiting for their checkpoint); it carries nothing else.
    """

    model: str
    version: str
    source: int
    seq: int
    progress: float
    rows: PredictionBatch | None = None
    joined: list[Joined] = field(default_factory=list)
    label_progress: float = -math.inf
    shard: int = 0  # the detection shard it goes to (monitor.core.shards): 0 also has ids, predictions, labels
    shards: int = 1  # how many shards its model version was cut into (a stage drops one cut otherwise)
    cut: int = SHARD_CUT  # the rule it was cut by (monitor.core.shards.SHARD_CUT; 1 when the wire form has none)
    waiting: bool = False  # a note: the source has input waiting (no rows, no progress, sequence -1)
    wire: bytes | None = field(default=None, repr=False, compare=False)  # encode()'s bytes, once made or read
    offset: int = field(default=-1, repr=False, compare=False)  # where the summaries topic holds it (-1: unknown)

    def __len__(self) -> int:
        return (0 if self.rows is None else len(self.rows)) + len(self.joined)

    def to_plain(self) -> dict[str, Any]:
        """Plain data (JSON types only): the form earlier releases sent and snapshots kept."""
        return self._plain(None)

    def _plain(
        self,
        floats: list[np.ndarray] | None,
        types: list[str] | None = None,
        joined_floats: list[np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """:meth:`to_plain`, or with ``floats`` (a list to fill) the wire's header: the rows' times, latencies
        and float feature columns (:func:`~monitor.core.float_columns.float_column`) go into ``floats`` in
        that order; the times and latencies stand as null in the header, each float feature column as its
        type on the wire (:func:`~monitor.core.float_columns.wire_types`), which ``types`` gets, column by
        column. With ``joined_floats`` the joined labels go as columns (:func:`joined_columns`), their float
        columns into ``joined_floats``."""
        out: dict[str, Any] = {
            "format": SUMMARY_FORMAT,
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "seq": self.seq,
            "progress": None if math.isinf(self.progress) else self.progress,
            "label_progress": None if math.isinf(self.label_progress) else self.label_progress,
        }
        if self.shards > 1:
            out["shard"], out["shards"], out["cut"] = self.shard, self.shards, self.cut
        if self.waiting:
            out["waiting"] = True
        b = self.rows
        if b is not None and len(b):
            features: dict[str, Any] = {}
            if floats is None:
                times: list[float] | None = b.event_time.tolist()
                latency = nan_as_none(b.latency_ms)
                features = {name: as_values(column) for name, column in b.features.items()}
            else:
                times, latency = None, None
                floats += [b.event_time] if self.shard else [b.event_time, b.latency_ms]
                packed = {name: float_column(column) for name, column in b.features.items()}
                numeric = [column for column in packed.values() if column is not None]
                codes = wire_types(numeric)
                named = iter(codes)
                for name, column in b.features.items():
                    features[name] = column if packed[name] is None else next(named)
                if types is not None:
                    types += ["f8"] * len(floats) + codes  # times (and latencies), then the features
                floats += numeric
            if self.shard:  # another shard judges its features only: no ids, scores
                out["rows"] = {"n": len(b), "time": times, "features": features, "segments": b.segments,
                               "nulls": b.nulls}  # fmt: skip
            else:
                out["rows"] = {
                    "id": b.prediction_id,
                    "time": times,
                    "prediction": b.prediction,
                    "features": features,
                    "segments": b.segments,
                    "latency": latency,
                    "scores": b.scores,
                    "nulls": b.nulls,
                }
        if self.joined and joined_floats is not None:
            out["format"] = JOINED_COLUMNS_FORMAT
            out["joined"] = joined_columns(self.joined, joined_floats)
        elif self.joined:
            out["joined"] = _entries(self.joined)
        return out

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Summary:
        if data.get("format") not in (SUMMARY_FORMAT, JOINED_COLUMNS_FORMAT):
            raise ValueError(
                f"summary format {data.get('format')!r} is not {SUMMARY_FORMAT} or {JOINED_COLUMNS_FORMAT}"
            )
        model, version = str(data["model"]), str(data["version"])
        progress, label_progress = data.get("progress"), data.get("label_progress")
        rows = None
        r = data.get("rows")
        if r is not None and "id" not in r:  # a shard copy (see to_plain)
            n = int(r["n"])
            rows = PredictionBatch(
                index=np.arange(n), prediction_id=[""] * n, model=[model] * n, model_version=[version] * n,
                event_time=np.asarray(r["time"], dtype=np.float64), prediction=[None] * n, features=r["features"],
                segments=r["segments"], latency_ms=np.full(n, math.nan), scores=[], nulls=r["nulls"],
            )  # fmt: skip
        elif r is not None:
            n = len(r["id"])
            rows = PredictionBatch(
                index=np.arange(n),
                prediction_id=r["id"],
                model=[model] * n,
                model_version=[version] * n,
                event_time=np.asarray(r["time"], dtype=np.float64),
                prediction=r["prediction"],
                features=r["features"],
                segments=r["segments"],
                latency_ms=(
                    r["latency"]
                    if isinstance(r["latency"], np.ndarray)
                    else np.array([math.nan if v is None else v for v in r["latency"]], dtype=np.float64)
                ),
                scores=r["scores"],
                nulls=r["nulls"],
            )
        entries = data.get("joined", ())
        if isinstance(entries, dict) != (data["format"] == JOINED_COLUMNS_FORMAT and "joined" in data):
            raise ValueError(f"summary format {data['format']} with joined labels as {type(entries).__name__}")
        if isinstance(entries, dict):  # as columns (this release's wire)
            joined = joined_from_columns(model, version, entries)
        else:  # a multiclass model's confidence ends the entry (an earlier release's entries have none)
            joined = [
                Joined(pid, PendingPrediction(model, version, tuple(map(tuple, segs)), pred, score, t, *sure), label,
                       outcomes, delay)
                for pid, segs, pred, score, t, label, outcomes, delay, *sure in entries
            ]  # fmt: skip
        return cls(
            model, version, int(data["source"]), int(data["seq"]),
            -math.inf if progress is None else float(progress), rows, joined,
            -math.inf if label_progress is None else float(label_progress), int(data.get("shard", 0)),
            int(data.get("shards", 1)), int(data.get("cut", 1)), data.get("waiting") is True,
        )  # fmt: skip

    def encode(self) -> bytes:
        """The summaries topic's message value, in an lz4 frame: a JSON header (:meth:`to_plain` with its times
        and latencies null and each number-only feature column's place holding its wire type), a newline (JSON
        text holds none), then those columns raw: times and latencies as float64, each feature column as its
        type (:mod:`monitor.core.float_columns`), then the joined labels' float columns as float64 (their other
        fields are columns in the header: :func:`joined_columns`). Made once and kept: a summary is not changed
        once made, and the same bytes go to the topic and into snapshots (every summary is in a profile
        snapshot before it is sent: sent as plain JSON and compressed by the producer instead, those snapshots
        were about five times larger). lz4 rather than zlib: on 5,000 reference events (1.14 MB of JSON) zlib
        at level 1 took 9.4 ms to compress and 3.7 ms to read back, lz4 2.5 and 0.4 ms, for 0.65 MB against
        0.43 MB."""
        if self.wire is None:
            floats: list[np.ndarray] = []
            types: list[str] = []  # the times (and latencies) as float64, each float feature column as named
            joined_floats: list[np.ndarray] = []  # the joined labels' float columns, float64, after the rows'
            payload = orjson.dumps(self._plain(floats, types, joined_floats))
            if floats or joined_floats:
                payload += WIRE_FLOATS + pack(floats, types) + pack(joined_floats, ["f8"] * len(joined_floats))
            self.wire = lz4.frame.compress(payload, content_checksum=True)
        return self.wire

    @classmethod
    def decode(cls, value: bytes) -> Summary:
        """The inverse of :meth:`encode` (float columns as arrays); also reads earlier releases' JSON (in lz4 or
        zlib, or plain)."""
        summary = cls.from_plain(wire_plain(value, as_arrays=True))
        summary.wire = value
        return summary

    def to_stored(self) -> str:
        """The form a snapshot keeps: the topic's bytes in base64 (the rows are not encoded again)."""
        return base64.b64encode(self.encode()).decode("ascii")

    @classmethod
    def from_stored(cls, data: str | dict[str, Any]) -> Summary:
        """The inverse of :meth:`to_stored`; also reads the plain form that snapshots of earlier releases kept,
        and a summary kept as JSON text."""
        if isinstance(data, dict):
            return cls.from_plain(data)
        return cls.decode(data.encode() if data[:1] == "{" else base64.b64decode(data))


def wire_header(value: bytes) -> dict[str, Any]:
    """A summaries-topic value's JSON header: its plain form with its times and latencies null and each raw
    feature column's place holding its wire type (earlier releases': the plain form)."""
    return _split(value)[0]


def _split(value: bytes) -> tuple[dict[str, Any], bytes]:
    """A summaries-topic value's JSON header and the raw columns after it (none in earlier releases')."""
    text = wire_text(value)
    header, _, floats = text.partition(WIRE_FLOATS)
    try:
        data = orjson.loads(header)
    except orjson.JSONDecodeError:
        data, floats = orjson.loads(text), b""  # JSON with line breaks (not this release's)
    if not isinstance(data, dict):  # never ours: skipped and counted like any unreadable message
        raise ValueError(f"a summary is a JSON object, not {type(data).__name__}")
    return data, floats


def wire_plain(value: bytes, *, as_arrays: bool = False) -> dict[str, Any]:
    """A summaries-topic value as plain data: the float columns in their header's places, as lists (None for
    NaN), or with ``as_arrays`` as float64 arrays (what :meth:`Summary.decode` keeps). Joined labels sent as
    columns stay columns with ``as_arrays`` (:meth:`Summary.from_plain` reads them), else they become the
    entries of :meth:`Summary.to_plain`. ValueError, zlib.error, or KeyError or TypeError for a header without
    the fields its form needs, for anything unreadable (see :func:`wire_text`)."""
    data, floats = _split(value)
    rows = data.get("rows")
    joined = data.get("joined")
    if isinstance(rows, dict) and rows.get("time") is None:  # float columns after the header
        floats = _rows_floats(rows, floats, as_arrays)
    if isinstance(joined, dict):
        names = _joined_float_names(joined)
        size = _joined_size(joined)
        for name, column in zip(names, unpack(floats, ["f8"] * len(names), size), strict=True):
            joined[name] = column
        floats = b""
        if not as_arrays:
            data["format"] = SUMMARY_FORMAT
            data["joined"] = joined_entries(joined)
    if floats:
        raise ValueError(f"summary floats: {len(floats)} bytes after the columns")
    return data


def _rows_floats(rows: dict[str, Any], floats: bytes, as_arrays: bool) -> bytes:
    """The rows' float columns read from the front of ``floats`` into their places in ``rows``; the bytes after
    them (the joined labels' columns)."""
    features = rows.get("features", {})
    if not isinstance(features, dict):
        raise ValueError("summary rows without a features table")
    # each float column's place names its wire type (null: float64, as this release's first builds wrote)
    raw = [(name, code or "f8") for name, code in features.items() if code is None or isinstance(code, str)]
    named = ["time"] if "id" not in rows else ["time", "latency"]
    size = int(rows["n"]) if "id" not in rows else len(rows["id"])
    types = ["f8"] * len(named) + [code for _, code in raw]
    length = packed_size(types, size)
    table = unpack(floats[:length], types, size)
    for k, name in enumerate(named):
        rows[name] = table[k] if as_arrays else as_values(table[k])
    for k, (name, _) in enumerate(raw, start=len(named)):
        features[name] = table[k] if as_arrays else as_values(table[k])
    return floats[length:]


_JOINED_FLOATS = ("score", "time", "delay")  # a joined column sent as float64 after the header (NaN: None)
_PREDICTION_OF = attrgetter("prediction")
_JOINED_FIELDS = attrgetter("prediction_id", "label", "outcomes", "delay_s")
_PENDING_FIELDS = attrgetter("segments", "prediction", "score", "event_time", "confidence")


def joined_columns(joined: Sequence[Joined], floats: list[np.ndarray]) -> dict[str, Any]:
    """Joined labels as columns for the wire: ids, predictions, labels and outcomes as lists; each distinct
    segment combination once (``segments``) and each label's as its index (``combo``); the scores, prediction
    times, delays (and a multiclass model's confidences, if any label has one) as float64 columns appended to
    ``floats``, standing as null in the columns. Entries as :meth:`Summary.to_plain` writes them (a list per
    label, its segments remade per label) cost two to three times as much to write and to read back.
    """
    ids, labels, outcomes, delays = (list(column) for column in zip(*map(_JOINED_FIELDS, joined), strict=True))
    segments, predictions, scores, times, confidence = (
        list(column) for column in zip(*map(_PENDING_FIELDS, map(_PREDICTION_OF, joined)), strict=True)
    )
    combos: dict[Segments, int] = {}
    codes = [combos.setdefault(combo, len(combos)) for combo in segments]
    out: dict[str, Any] = {
        "id": ids, "segments": [[list(pair) for pair in combo] for combo in combos], "combo": codes,
        "prediction": predictions, "label": labels, "outcomes": outcomes, "score": None, "time": None, "delay": None,
    }  # fmt: skip
    floats += [np.array(scores, dtype=np.float64), np.array(times, dtype=np.float64), np.array(delays, np.float64)]
    if confidence.count(None) != len(confidence):
        out["confidence"] = None
        floats.append(np.array(confidence, dtype=np.float64))
    return out


def _joined_float_names(columns: dict[str, Any]) -> list[str]:
    return [*_JOINED_FLOATS, *(("confidence",) if "confidence" in columns else ())]


def _joined_size(columns: dict[str, Any]) -> int:
    """The number of joined labels in :func:`joined_columns`' columns; ValueError for columns that are not lists
    of one length, or codes that are not integers (never read as something else)."""
    for name in ("id", "segments", "combo", "prediction", "label", "outcomes"):
        if type(columns[name]) is not list:
            raise ValueError(f"summary joined columns: {name} is not a list")
    size = len(columns["id"])
    for name in ("combo", "prediction", "label", "outcomes"):
        if len(columns[name]) != size:
            raise ValueError(f"summary joined columns: {name} has {len(columns[name])} of {size} labels")
    if not {int}.issuperset(map(type, columns["combo"])):
        raise ValueError("summary joined columns: a segment combination code is not an integer")
    return size


def joined_from_columns(model: str, version: str, columns: dict[str, Any]) -> list[Joined]:
    """The joined labels of :func:`joined_columns` (its float columns read back as arrays), as the join made
    them: a score or confidence that was None is None again."""
    size = _joined_size(columns)
    combos = [tuple(map(tuple, combo)) for combo in columns["segments"]]
    if any(type(combo) is not list for combo in columns["segments"]) or any(
        len(pair) != 2 or not all(type(x) is str for x in pair) for combo in combos for pair in combo
    ):
        raise ValueError("summary joined columns: a segment combination is not a list of (attribute, value) pairs")
    codes = columns["combo"]
    if codes and not 0 <= min(codes) <= max(codes) < len(combos):
        raise ValueError(f"summary joined columns: segment combinations {min(codes)} to {max(codes)} of {len(combos)}")
    segments = [combos[c] for c in codes]
    scores = nan_as_none(np.asarray(columns["score"], dtype=np.float64))
    sure = (
        nan_as_none(np.asarray(columns["confidence"], dtype=np.float64)) if "confidence" in columns else [None] * size
    )
    times = np.asarray(columns["time"], dtype=np.float64).tolist()
    delays = np.asarray(columns["delay"], dtype=np.float64).tolist()
    pending = map(
        new_tuple,
        repeat(PendingPrediction),
        zip(repeat(model), repeat(version), segments, columns["prediction"], scores, times, sure, strict=False),
    )
    rows = zip(columns["id"], pending, columns["label"], columns["outcomes"], delays, strict=True)
    return list(map(new_tuple, repeat(Joined), rows))


def joined_entries(columns: dict[str, Any]) -> list[list[Any]]:
    """The joined labels of :func:`joined_columns` as the entries of :meth:`Summary.to_plain` (float columns
    read back as arrays)."""
    return _entries(joined_from_columns("", "", columns))


def _entries(joined: Sequence[Joined]) -> list[list[Any]]:
    """Joined labels as :meth:`Summary.to_plain` writes them, a list each (a multiclass model's confidence ends
    its entry)."""
    return [
        [j.prediction_id, [list(s) for s in j.prediction.segments], j.prediction.prediction, j.prediction.score,
         j.prediction.event_time, j.label, j.outcomes, j.delay_s,
         *(() if j.prediction.confidence is None else (j.prediction.confidence,))]
        for j in joined
    ]  # fmt: skip


def readable_size(value: bytes) -> bool:
    """Whether :func:`wire_text` would accept the size an lz4 frame claims (True for any other value)."""
    if value[:4] != LZ4_FRAME_MAGIC:
        return True
    try:
        _frame_size(value)
    except (RuntimeError, ValueError):
        return False
    return True


def _frame_size(value: bytes) -> int:
    """The payload size an lz4 frame claims; ValueError when none could be read (a frame's header may claim any
    size: never allocate it blindly), RuntimeError for a damaged header."""
    size = int(lz4.frame.get_frame_info(value)["content_size"])
    if not 0 < size <= MAX_WIRE_TEXT_BYTES:
        raise ValueError(f"lz4 frame claims {size} bytes (at most {MAX_WIRE_TEXT_BYTES})")
    return size


def wire_text(value: bytes) -> bytes:
    """The payload of a summaries-topic value: an lz4 frame's (this release's header and floats, or an earlier
    release's JSON), zlib's (earlier releases) or the JSON text itself. A damaged or implausibly large frame
    raises ValueError, anything else that is not zlib zlib.error: the detection stage skips and counts either as
    unreadable."""
    if value[:1] == b"{":
        return value
    if value[:4] == LZ4_FRAME_MAGIC:
        try:
            _frame_size(value)
            return bytes(lz4.frame.decompress(value))
        except (RuntimeError, MemoryError) as exc:  # lz4's error for a damaged frame or checksum
            raise ValueError(f"damaged lz4 frame: {exc}") from exc
    return zlib.decompress(value)


def take_rows(batch: PredictionBatch, rows: np.ndarray) -> PredictionBatch:
    """The rows ``rows`` of a batch, in that order, as a batch of their own."""
    picks = rows.tolist()
    nulls: dict[str, list[int]] = {}
    if batch.nulls:
        where = {int(r): k for k, r in enumerate(picks)}
        nulls = {name: sorted(where[i] for i in at if i in where) for name, at in batch.nulls.items()}
    return _select(batch, _picker(picks), rows, nulls)


def _picker(picks: list[int]) -> Callable[[list[Any]], list[Any]]:
    """Items ``picks`` of a list column, in that order (one C call a column: a batch has several)."""
    if len(picks) > 1:
        get = itemgetter(*picks)
        return lambda column: list(get(column))
    return lambda column: [column[i] for i in picks]


def slice_rows(batch: PredictionBatch, lo: int, hi: int) -> PredictionBatch:
    """Rows ``lo`` to ``hi`` (exclusive) of a batch as a batch of their own, as :func:`take_rows` gives them
    (its nulls must be sorted, as that and the decoder leave them): cutting a long batch this way is linear."""
    nulls = {
        name: [i - lo for i in at[bisect.bisect_left(at, lo) : bisect.bisect_left(at, hi)]]
        for name, at in batch.nulls.items()
    }
    return _select(batch, lambda column: column[lo:hi], slice(lo, hi), nulls)


def _select(
    batch: PredictionBatch, take: Callable[[list[Any]], list[Any]], rows: np.ndarray | slice,
    nulls: dict[str, list[int]],
) -> PredictionBatch:  # fmt: skip
    """Some rows of a batch: its list columns through ``take``, its arrays indexed by ``rows``."""
    return PredictionBatch(
        index=batch.index[rows],
        prediction_id=take(batch.prediction_id),
        model=take(batch.model),
        model_version=take(batch.model_version),
        event_time=batch.event_time[rows],
        prediction=take(batch.prediction),
        features={name: c[rows] if isinstance(c, np.ndarray) else take(c) for name, c in batch.features.items()},
        segments={name: take(col) for name, col in batch.segments.items()},
        latency_ms=batch.latency_ms[rows],
        scores=take(batch.scores) if batch.scores else [],
        nulls={name: at for name, at in nulls.items() if at},
    )


def concat_rows(parts: Sequence[PredictionBatch]) -> PredictionBatch:
    """Batches one after another as one batch; a feature or segment a part lacks is absent (None) there. A
    feature that every part which has it brings as floats stays floats (NaN where a part lacks it)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [len(p) for p in parts]
    offsets = np.cumsum([0, *sizes]).tolist()
    as_lists = {name for p in parts for name, col in p.features.items() if not isinstance(col, np.ndarray)}
    features: dict[str, Any] = {}
    segments: dict[str, list[Any]] = {}
    nulls: dict[str, list[int]] = {}
    for k, p in enumerate(parts):
        for name, col in p.features.items():
            column = features.get(name)
            if column is None:
                column = features[name] = [None] * offsets[-1] if name in as_lists else np.full(offsets[-1], math.nan)
            column[offsets[k] : offsets[k + 1]] = as_values(col) if name in as_lists else col
        for name, values in p.segments.items():
            segment = segments.get(name)
            if segment is None:
                segment = segments[name] = [None] * offsets[-1]
            segment[offsets[k] : offsets[k + 1]] = values
        for name, at in p.nulls.items():
            nulls.setdefault(name, []).extend(i + offsets[k] for i in at)
    scores: list[Any] = []
    if any(p.scores for p in parts):
        for p in parts:
            scores.extend(p.scores if p.scores else [None] * len(p))
    return PredictionBatch(
        index=np.arange(offsets[-1]),
        prediction_id=list(chain.from_iterable(p.prediction_id for p in parts)),
        model=list(chain.from_iterable(p.model for p in parts)),
        model_version=list(chain.from_iterable(p.model_version for p in parts)),
        event_time=np.concatenate([p.event_time for p in parts]),
        prediction=list(chain.from_iterable(p.prediction for p in parts)),
        features=features,
        segments=segments,
        latency_ms=np.concatenate([p.latency_ms for p in parts]),
        scores=scores,
        nulls=nulls,
    )


def positive_scores(preds: Sequence[Any], scores: Sequence[dict[str, float] | None], positive: str) -> np.ndarray:
    """Positive-class scores of a column of predictions (NaN where there is none): read from ``scores`` where a
    row has them (:func:`~monitor.core.label_reading.binary_score`)."""
    if not any(scores) and _NUMERIC_TYPES.issuperset(map(type, preds)):
        arr = np.array(preds, dtype=np.float64)
        arr[(arr < 0) | (arr > 1)] = np.nan
        return arr
    out = [binary_score(p, sc, positive) for p, sc in zip(preds, scores, strict=True)]
    return np.array([math.nan if v is None else v for v in out], dtype=np.float64)


def kept_scores(
    preds: Sequence[Any], scores: Sequence[dict[str, float] | None], positive: str, task: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the label join keeps of each prediction's scores, and the label-free estimate reads: the
    positive-class probability (:func:`positive_scores`, a binary model's), and each prediction's confidence
    where its scores name more than two classes (the probability they give the predicted class, a multiclass
    model's: :func:`confidences`; None when no row has one, or the task is set to another than multiclass).
    Which one a model's estimate reads is decided where its task is known
    (:meth:`~monitor.core.performance.ModelPerformance.observe_predictions`)."""
    confident = confidences(preds, scores) if task in ("auto", "multiclass") else None
    return positive_scores(preds, scores, positive), confident


def join_segment_caps(max_attributes: int, max_values: int) -> tuple[int, int]:
    """The segment attributes and values per attribute a partition's join keeps with each prediction.

    Well above the streams' caps: the detection engine caps the values it is sent by what it saw first of the
    merged traffic, which one partition's first values need not be; this bound only keeps the join's table
    of segment combinations finite whatever arrives."""
    return max(4 * max_attributes, 32), max(20 * max_values, 1_000)


class SegmentCaps:
    """The segment values this partition's join keeps per model version (:func:`join_segment_caps`; the rest
    ``OVERFLOW``)."""

    def __init__(self) -> None:
        self.attributes: dict[tuple[str, str], list[str]] = {}
        self.values: dict[tuple[str, str, str], set[str]] = {}

    def combos(
        self, model: str, version: str, segments: dict[str, list[Any]], n: int, wanted: Sequence[str],
        max_attributes: int, max_values: int,
    ) -> tuple[list[Segments], np.ndarray]:  # fmt: skip
        """Each row's segments as a code into the batch's distinct combinations (tuples of pairs)."""
        attrs = self.attributes.setdefault((model, version), [])
        for attr in wanted or list(segments):
            if attr not in attrs and attr in segments and len(attrs) < max_attributes:
                attrs.append(attr)
        columns: list[tuple[str, list[Any]]] = []
        for attr in attrs:
            column = segments.get(attr)
            if column is None:
                continue
            known = self.values.setdefault((model, version, attr), set())
            if not known.issuperset(column):
                capped = list(column)
                for i, v in enumerate(capped):
                    if v is None or v in known:
                        continue
                    if len(known) < max_values:
                        known.add(v)
                    else:
                        capped[i] = OVERFLOW
                column = capped
            columns.append((attr, column))
        if not columns:
            return [()], np.zeros(n, dtype=np.int64)
        # codes of the rows' value tuples first (one dict lookup a row), then each distinct tuple's combination
        # once: a position stands for one attribute and None for its absence, so tuples and combinations match
        codes, seen = kernels.row_codes([c for _, c in columns], n)
        names = [a for a, _ in columns]
        combos = [tuple((a, v) for a, v in zip(names, values, strict=True) if v is not None) for values in seen]
        return combos, codes

    def forget(self, model: str, version: str) -> None:
        """A retired model version's caps go: if it comes back, it keeps the values it meets first again."""
        for attr in self.attributes.pop((model, version), []):
            self.values.pop((model, version, attr), None)


class EngineObserver(Protocol):
    """Sees each model version's registered predictions and every joined label (``monitor replay --timeline``)."""

    def predictions(
        self, model: str, version: str, index: np.ndarray, ids: list[str], scores: np.ndarray, times: np.ndarray,
        confidences: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """``index``: each prediction's message position in its batch; ``scores``: positive-class scores;
        ``confidences``: see :func:`kept_scores`."""

    def joined(self, items: list[Joined]) -> None:
        """Predictions with their labels, as they are joined."""


class ProfileStage:
    """One input partition's decode, validation and label join; model versions' summaries out.

    >>> stage = ProfileStage(Settings(), partition=2)
    >>> out, rejected = stage.predictions(
    ...     [b'{"prediction_id":"1","model":"m","features":{"x":1.0},"prediction":0.2}', b"{"], [1.0, 1.0])
    >>> [(s.model, s.source, s.seq, len(s.rows)) for s in out], [r.reason for r in rejected]
    ([('m', 2, 0, 1)], ['invalid_json'])
    """

    def __init__(self, config: Settings, *, partition: int = 0) -> None:
        self.config = config
        self.partition = partition
        mon = config.monitoring
        self.prediction_decoder = PredictionDecoder(mon.max_event_bytes, mon.max_fields, mon.max_ahead_s)
        self.label_decoder = LabelDecoder(mon.max_event_bytes, mon.max_fields, mon.max_ahead_s)
        lab = config.labels
        self.joiner = LabelJoiner(lab.ttl_s, lab.max_pending, lab.early_ttl_s, lab.max_early)
        self.rejected: Counter[tuple[str, str]] = Counter()  # (topic role, reason)
        self.restamped: Counter[str] = Counter()  # per topic role: events given their Kafka time (too far ahead)
        self.labels_seen = 0
        self.watermark = -math.inf  # newest event time seen on the partition
        self.prediction_time = -math.inf  # newest prediction event time: early labels expire against it
        self.label_time = -math.inf  # newest label event time: pending predictions expire against it
        self.seq = 0  # the next summary's sequence number
        self.segment_caps = SegmentCaps()
        self.keys: dict[tuple[str, str], None] = {}  # model versions seen, in order: each gets heartbeats
        self.events: Counter[tuple[str, str]] = Counter()  # predictions accepted per model version
        self.activity = VersionActivity()  # which model versions are idle here (monitor.core.event_clock)
        self.observer: EngineObserver | None = None  # monitor replay --timeline; not state
        self.shards = 1  # detection shards the summaries go to (monitor.core.shards); config, not state

    @property
    def bookkeeping(self) -> dict[str, Any]:
        """The stage's state besides the join and its counters: its summary sequence, join clock, segment caps
        and the model versions it has seen (the engine snapshots it as ``profile_state``)."""
        return {
            "seq": self.seq, "watermark": self.watermark, "caps": self.segment_caps, "keys": list(self.keys),
            "events": self.events, "activity": self.activity,
        }  # fmt: skip

    @bookkeeping.setter
    def bookkeeping(self, value: dict[str, Any]) -> None:
        self.seq, self.watermark, self.segment_caps = int(value["seq"]), float(value["watermark"]), value["caps"]
        self.keys = {(m, v): None for m, v in value["keys"]}
        self.events = value.get("events") or Counter()
        # (an older release's snapshot: its versions count as arriving at the first reading; see retire_idle)
        self.activity = value.get("activity") or VersionActivity()  # (an older release's: see retire_idle)

    # ------------------------------------------------------------------ ingest
    def predictions(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[list[Summary], list[Rejected]]:
        """Decode and validate prediction messages, register them for the join; summaries per model version."""
        batch, rejected = self.prediction_decoder.decode(values, kafka_times)
        for r in rejected:
            self.rejected["predictions", r.reason] += 1
        return self.register(batch, message_sizes(values) if len(batch) else None), rejected

    def register(self, batch: PredictionBatch, sizes: np.ndarray | None = None) -> list[Summary]:
        """An already decoded batch (the benchmarks time this apart from decoding). Its number-only feature
        columns become float64 arrays in place (:func:`_float_features`), for its summaries and for a caller
        that monitors the batch itself. ``sizes``: the byte size of each input message (by ``batch.index``), so
        that a summary's rows add up to at most :data:`SUMMARY_INPUT_BYTES` of them however their sizes vary."""
        if not len(batch):
            return []
        batch.features = _float_features(batch.features)
        if batch.restamped:
            self.restamped["predictions"] += batch.restamped
        out: list[Summary] = []
        before = self.prediction_time
        newest = float(np.fmax.reduce(batch.event_time))
        self.watermark = max(self.watermark, newest)
        self.prediction_time = max(self.prediction_time, newest)  # joins and expiry see the whole batch
        self.activity.sample(batch.event_time)
        groups = batch.by_model_version(sort=False)
        arriving = {key for key, _ in groups}
        idle_s = self.config.monitoring.retire_after_s
        for (model, version), rows in groups:
            part = batch if rows is None else take_rows(batch, rows)
            self.events[model, version] += len(part)
            if idle_s:
                self.activity.came((model, version), float(np.fmax.reduce(part.event_time)))
            joined = self._join_predictions(model, version, part)
            n = len(part)
            if n > 1 and bool((np.diff(part.event_time) < 0).any()):
                part = take_rows(part, np.argsort(part.event_time, kind="stable"))
            pieces = _pieces(part.event_time, _rows_per_summary(part), None if sizes is None else sizes[part.index])
            for k, (start, end) in enumerate(pieces):
                piece = part if (start, end) == (0, n) else slice_rows(part, start, end)
                # each piece's progress is its own newest time, so the merge interleaves sources piece by piece;
                # a running maximum over the batch (model versions too), as a source's progress never goes back
                before = max(before, float(np.fmax.reduce(piece.event_time)))
                last = k == len(pieces) - 1  # joined labels after the rows they may belong to, as before the cut
                whole = piece if self.shards == 1 else _shard_columns(piece, model, 0, self.shards)
                out += self._summaries(model, version, whole, joined if last else [], progress=before)
                for shard in range(1, self.shards):  # the other shards: their features' columns, times, segments
                    columns = _shard_columns(piece, model, shard, self.shards)
                    out.append(self._summary(model, version, columns, [], progress=before, shard=shard))
        self.retire_idle(arriving)
        self.joiner.expire(self.prediction_time, labels_now=self.label_time)
        return out

    def retire_idle(self, arriving: Collection[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Model versions idle on this partition for ``monitoring.retire_after_s`` by the batches since they last
        came (:mod:`monitor.core.event_clock`, as the detection stage retires them) leave its bookkeeping: their
        segment caps, their heartbeats and the join's table entries no pending prediction holds, so that
        versions taken out of service do not add to every snapshot for good. Their counts stay (the audit
        reports them)."""
        idle_s = self.config.monitoring.retire_after_s
        if not idle_s:
            self.activity.clear()
            return []
        gone = self.activity.idle(self.segment_caps.attributes, idle_s, keep=arriving)
        for key in gone:
            self.activity.forget(key)
            self.keys.pop(key, None)
            self.segment_caps.forget(*key)
        if gone:
            self.joiner.forget(set(gone))
        return gone

    def labels(
        self, values: Sequence[bytes | None], kafka_times: Sequence[float]
    ) -> tuple[list[Summary], list[Rejected], int]:
        """Decode labels and join them to their predictions: summaries of joined labels per model version, the
        rejected messages and how many labels were valid."""
        batch, rejected = self.label_decoder.decode(values, kafka_times)
        for r in rejected:
            self.rejected["labels", r.reason] += 1
        self.labels_seen += len(batch)
        if batch.restamped:
            self.restamped["labels"] += batch.restamped
        if not len(batch):
            return [], rejected, 0
        newest = float(np.max(batch.event_time))
        self.watermark = max(self.watermark, newest)
        joined = self.joiner.add_labels(
            batch.prediction_id, batch.label, batch.outcomes, batch.event_time, batch.model, now=self.watermark
        )
        self.label_time = max(self.label_time, newest)
        self.joiner.expire(self.prediction_time, labels_now=self.label_time)
        if joined and self.observer is not None:
            self.observer.joined(joined)
        by_key: dict[tuple[str, str], list[Joined]] = {}
        for j in joined:
            by_key.setdefault((j.prediction.model, j.prediction.model_version), []).append(j)
        out = [s for (m, v), items in by_key.items() for s in self._summaries(m, v, None, items)]
        return out, rejected, len(batch)

    def heartbeats(self, besides: Sequence[Summary] = ()) -> list[Summary]:
        """A summary without rows for every model version seen and each of its shards, but those ``besides``
        already has one for: moves this partition's progress everywhere."""
        have = {(s.model, s.version, s.shard) for s in besides}
        return [
            self._summary(m, v, None, [], seen=False, shard=k)
            for m, v in list(self.keys)
            for k in range(self.shards)
            if (m, v, k) not in have
        ]

    def notes(self) -> list[Summary]:
        """A note for every model version seen and each of its shards: this partition's rows are on their way
        (input it has not processed, or summaries waiting for their checkpoint; the service sends notes while
        it sends no summary of the partition, see :meth:`monitor.io.kafka.MonitorService.send_notes`). A
        detection stage keeps a source that sends them in its watermark, where a source whose progress stood
        still for ``detection.idle_s`` would be left out and its rows, read later, monitored out of order. A
        note is no state: it carries no rows, no progress and no sequence number (-1, which a detection stage
        of an earlier release drops as a repeat)."""
        return [
            Summary(m, v, self.partition, -1, -math.inf, shard=k, shards=self.shards, waiting=True)
            for m, v in list(self.keys)
            for k in range(self.shards)
        ]

    def _join_predictions(self, model: str, version: str, part: PredictionBatch) -> list[Joined]:
        mon = self.config.monitoring
        combos, codes = self.segment_caps.combos(
            model, version, part.segments, len(part), mon.segments, *join_segment_caps(mon.max_segment_attributes,
                                                                                       mon.max_segment_values),
        )  # fmt: skip
        perf = self.config.performance
        scores, sure = kept_scores(part.prediction, part.scores, perf.positive_label, perf.task)
        if self.observer is not None:
            self.observer.predictions(model, version, part.index, part.prediction_id, scores, part.event_time, sure)
        joined = self.joiner.add_predictions(
            part.prediction_id, model, version, combos, codes, part.prediction, scores, part.event_time,
            now=self.watermark, confidences=sure,
        )  # fmt: skip
        if joined and self.observer is not None:
            self.observer.joined(joined)
        return joined

    def _summaries(
        self, model: str, version: str, rows: PredictionBatch | None, joined: list[Joined], *,
        progress: float | None = None,
    ) -> list[Summary]:  # fmt: skip
        """One summary, or several when the joined labels are many (the first one carries the rows)."""
        if len(joined) <= MAX_SUMMARY_JOINED:
            return [self._summary(model, version, rows, joined, progress=progress)]
        return [
            self._summary(model, version, rows if k == 0 else None, joined[k : k + MAX_SUMMARY_JOINED],
                          progress=progress)
            for k in range(0, len(joined), MAX_SUMMARY_JOINED)
        ]  # fmt: skip

    def _summary(
        self, model: str, version: str, rows: PredictionBatch | None, joined: list[Joined], *, seen: bool = True,
        progress: float | None = None, shard: int = 0,
    ) -> Summary:  # fmt: skip
        key = (model, version)
        # the most recently seen model versions get heartbeats, at most max_models of them (not a retired
        # version's, whose late labels still make summaries)
        if seen and (key in self.activity.arrived or not self.config.monitoring.retire_after_s):
            self.keys.pop(key, None)
            self.keys[key] = None
            if len(self.keys) > self.config.monitoring.max_models:
                del self.keys[next(iter(self.keys))]
        at = self.prediction_time if progress is None else progress
        s = Summary(model, version, self.partition, self.seq, at, rows, joined, self.label_time, shard, self.shards)
        self.seq += 1
        return s


def _shard_columns(rows: PredictionBatch, model: str, shard: int, shards: int) -> PredictionBatch:
    """The rows as one detection shard needs them: the columns of its features only (it judges their drift and
    their schema and quality checks). Shard 0 keeps the rest of the rows (ids, predictions, scores, latency);
    another shard's copy has the times and segments besides its features (the wire form leaves out the rest,
    see :meth:`Summary.to_plain`), and is sent even with none of its features in the rows: its schema checks
    count every row, so a feature that stops arriving is seen as missing."""
    keep = {name for name in rows.features if shard_of(model, name, shards) == shard}
    features = {name: col for name, col in rows.features.items() if name in keep}
    nulls = {name: at for name, at in rows.nulls.items() if name in keep}
    return replace(rows, features=features, nulls=nulls, scores=rows.scores if shard == 0 else [])


def _float_features(features: dict[str, Any]) -> dict[str, Any]:
    """Feature columns with each number-only one as float64 (:func:`float_column`), the form the summaries topic
    carries them in: converted once per batch, its summaries are cut from the arrays and encoded without
    converting again, and a summary handed over in process (:mod:`monitor.core.handoff`) or monitored in
    process is the same as one read back from the topic."""
    out = {}
    for name, column in features.items():
        floats = float_column(column)
        out[name] = column if floats is None else floats
    return out


def message_sizes(values: Sequence[bytes | None]) -> np.ndarray:
    """Each input message's size in bytes (a missing value: 0), for :meth:`ProfileStage.register`."""
    return np.fromiter(map(_size, values), dtype=np.int64, count=len(values))


def _size(value: bytes | None) -> int:
    return 0 if value is None else len(value)


def _pieces(times: np.ndarray, size: int, row_bytes: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Consecutive (start, end) row ranges of an event-time-sorted part: at most ``size`` rows each (messages
    of the summaries topic stay well under its 1 MB limit), and cut where a new :data:`SUMMARY_SPAN_S` of event
    time begins once a piece has :data:`MIN_SPAN_ROWS` rows, so that a poll batch that spans minutes of one
    partition's traffic (a backlog) reaches the merge as pieces it can interleave with other partitions'.
    ``row_bytes``: each row's input message size; a piece is also cut before its rows' sizes add up to more
    than :data:`SUMMARY_INPUT_BYTES` (one row may alone). ``size`` is judged from a part's first rows, so without this
    a part whose later rows are far larger made summaries the producer refused or readers could not read."""
    n = times.size
    if n == 0:
        return []
    if row_bytes is not None and int(row_bytes.sum()) > SUMMARY_INPUT_BYTES:
        return [cut for start, end in _pieces(times, size) for cut in _by_bytes(row_bytes, start, end)]
    slot = np.floor((times - times[0]) / SUMMARY_SPAN_S)
    slot[np.isnan(slot)] = 0.0
    cuts = (np.flatnonzero(np.diff(slot) > 0) + 1).tolist()
    out: list[tuple[int, int]] = []
    start = 0
    for cut in [*cuts, n]:
        while cut - start > size:
            out.append((start, start + size))
            start += size
        if cut - start >= MIN_SPAN_ROWS or cut == n:
            if cut > start:
                out.append((start, cut))
            start = cut
    return out


def _by_bytes(row_bytes: np.ndarray, start: int, end: int) -> list[tuple[int, int]]:
    """Rows ``start`` to ``end`` cut, greedily in order, into ranges whose sizes add up to at most
    :data:`SUMMARY_INPUT_BYTES` (a range of one row may exceed it)."""
    total = np.cumsum(row_bytes[start:end])
    if not total.size or int(total[-1]) <= SUMMARY_INPUT_BYTES:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    at, base = 0, 0
    while at < total.size:
        stop = max(at + 1, int(np.searchsorted(total, base + SUMMARY_INPUT_BYTES, side="right")))
        out.append((start + at, start + stop))
        at, base = stop, int(total[stop - 1])
    return out


def _rows_per_summary(part: PredictionBatch) -> int:
    """How many of the part's rows make a summary of about :data:`SUMMARY_BYTES`, judged from its first rows."""
    sample = min(len(part), 32)
    head = part if sample == len(part) else take_rows(part, np.arange(sample))
    plain = Summary("", "", 0, 0, 0.0, head).to_plain()
    per_row = max(1.0, len(orjson.dumps(plain)) / sample)
    return max(1, min(MAX_SUMMARY_ROWS, int(SUMMARY_BYTES / per_row)))
