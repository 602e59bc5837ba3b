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

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from itertools import repeat
from operator import contains, itemgetter
from typing import Any, Protocol

import numpy as np
import orjson

from monitor.core import kernels
from monitor.core.batch_rows import slice_rows, take_rows
from monitor.core.decoders import LabelDecoder, PredictionDecoder
from monitor.core.event_clock import VersionActivity
from monitor.core.events import PredictionBatch, Rejected
from monitor.core.float_columns import float_column
from monitor.core.join import Joined, LabelJoiner, Segments
from monitor.core.label_reading import binary_score, confidences, score_keys
from monitor.core.settings import Settings
from monitor.core.shards import shard_of
from monitor.core.stats import OVERFLOW
from monitor.core.summary import SUMMARY_BYTES, Summary

MAX_SUMMARY_ROWS = 2_000  # rows per summary at most
# and so that their input messages add up to at most this many bytes (the JSON estimate reads a part's first rows
# only): under the producer's default message.max.bytes less headroom, which the summary's wire bytes, compressed
# and without the messages' repeated names, stay below
SUMMARY_INPUT_BYTES = 800_000
MAX_SUMMARY_JOINED = 1_000  # joined labels per summary at most: with a full piece of rows, under 1 MB even as JSON
# A summary's rows span about SUMMARY_SPAN_S of event time once it has MIN_SPAN_ROWS rows: the merge orders
# summaries, not rows, so their span bounds how far apart in time the rows of one engine batch can be.
SUMMARY_SPAN_S = 0.1
MIN_SPAN_ROWS = 50
_NUMERIC_TYPES = frozenset({float, int, type(None)})


def positive_scores(preds: Sequence[Any], scores: Sequence[dict[str, float] | None], positive: str) -> np.ndarray:
    """Positive-class scores of a column of predictions (NaN where there is none): read from ``scores`` where a
    row has them (:func:`~monitor.core.label_reading.binary_score`). The two usual columns are read in C-level
    passes: every row's scores name the positive class, or no row's names a class that binary_score reads (its
    scores are another model's, say "churn" and "stay" with the positive label left at "1") and the predictions
    are numbers; any other column is read row by row."""
    named = list(filter(None, scores))
    if named:
        if len(named) == len(scores) and all(map(contains, named, repeat(positive))):
            return np.fromiter(map(itemgetter(positive), named), np.float64, len(named))
        if any(any(map(contains, named, repeat(key))) for key in score_keys(positive)):
            return _positive_scores_by_row(preds, scores, positive)
    if _NUMERIC_TYPES.issuperset(map(type, preds)):
        arr = np.array(preds, dtype=np.float64)
        arr[(arr < 0) | (arr > 1)] = np.nan
        return arr
    return _positive_scores_by_row(preds, scores, positive)


def _positive_scores_by_row(
    preds: Sequence[Any], scores: Sequence[dict[str, float] | None], positive: str
) -> np.ndarray:
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
