"""A summary: what one input partition's profile stage hands on for one model version, and its wire form.

The profile stage (:mod:`~monitor.core.profile`) makes summaries, the detection stage
(:mod:`~monitor.core.detect`) merges them, and the summaries topic carries them between replicas. On the
wire a summary is a JSON header, then its rows' float columns and its joined labels' float columns as
packed float64 (:mod:`~monitor.core.float_columns`), compressed with lz4; earlier forms (plain JSON, zlib,
joined labels as one list per label) are still read.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

import lz4.frame
import numpy as np
import orjson

from monitor.core.events import PredictionBatch
from monitor.core.float_columns import as_values, float_column, pack, packed_size, unpack, wire_types
from monitor.core.join import Joined, PendingPrediction, Segments, nan_as_none, new_tuple
from monitor.core.shards import SHARD_CUT

SUMMARY_FORMAT = 1  # the plain form (to_plain), and the wire's when it carries no joined labels
JOINED_COLUMNS_FORMAT = 2  # the wire's with joined labels as columns (joined_columns): earlier releases refuse it
WIRE_FLOATS = b"\n"  # between a summary's JSON header and its float columns on the wire
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"  # how an lz4 frame starts (a zlib stream starts with 0x78, JSON with '{')
SUMMARY_BYTES = 500_000  # the profile stage cuts a summary's rows so that its JSON is about this large
MAX_WIRE_TEXT_BYTES = 64 * SUMMARY_BYTES  # a summary's payload read off the topic: far above any made here


# A summary's offset while it is on its way: sent by this replica to a summaries partition it also reads, and
# taken by that partition's detection stage before it was read back (monitor.io.kafka). The topic will hold it at
# or after the stage's read position, so a snapshot may leave it out like one read off the topic.
ON_ITS_WAY = -2


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
    # where the summaries topic holds it: -1 unknown (came otherwise, kept in snapshots), ON_ITS_WAY (see there)
    offset: int = field(default=-1, repr=False, compare=False)

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
