"""Bounded prediction-label join: labels arrive late, early, twice or never.

Times are event times supplied by the caller (``now``, the partition's watermark), so expiry is
deterministic on replay and tests drive it without sleeping. Every store has a cap; what a cap or a TTL
pushes out is counted, never silently dropped.

Pending predictions are kept as columns, not one object per prediction: a batch is registered with a few
numpy writes and one dict update, and the store is cut into chunks of fixed size so that a snapshot
re-encodes only the chunks that changed since the last one. A chunk that only lost predictions since its
last encoding (their labels came: the common change) keeps that encoding, its *body*, and the snapshot adds
which of the body's rows are still pending, a bitmap of the chunk's slots; the body is encoded afresh once
more than half its rows are gone. Labels come for a chunk's predictions over several checkpoints, and
re-encoding the chunk at each wrote it again every time (in the bench's live run the profile stages'
checkpoints wrote 156 MB of new pieces for about 400,000 predictions).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import orjson

from monitor.core import snapshot as snap
from monitor.core.batch_rows import list_picker
from monitor.core.joined_ids import JoinedIds

Segments = tuple[tuple[str, str], ...]
CHUNK_SLOTS = 4096  # pending predictions per chunk: the unit a snapshot re-encodes when it changed


def kept_together(values: Sequence[Any]) -> Sequence[Any]:
    """Equal copies of a batch's ids or prediction values, allocated one after another.

    The decoder's objects of a batch are allocated interleaved with the rest of the batch's (feature values,
    structs), which are freed after it. Kept as they are, the few a store holds for long pin small holes in
    most of the allocator's pools, and every later batch's objects are then scattered over them: measured on
    the reference workload, decoding ran 1.3-1.6x slower beside such a store than without one. Copies made in
    one pass fill pools of their own. When JSON cannot carry them all unchanged (a lone surrogate in a string,
    an integer beyond 64 bits, a NaN, which would come back null; the decoders let none of these through), the
    batch's values are kept as they are."""
    original = values if isinstance(values, list) else list(values)
    try:
        copies: list[Any] = orjson.loads(orjson.dumps(original))
    except orjson.JSONEncodeError:
        return values
    return copies if copies == original else values


class PendingPrediction(NamedTuple):
    """What the join keeps of a prediction until its label arrives (a tuple: there can be many)."""

    model: str
    model_version: str
    segments: Segments
    prediction: Any
    score: float | None
    event_time: float
    # a multiclass model's: the probability its scores give the predicted class (profile.kept_scores)
    confidence: float | None = None


class PendingLabel(NamedTuple):
    """A label that arrived before its prediction."""

    label: Any
    outcomes: dict[str, float] | None
    event_time: float
    model: str | None


class Joined(NamedTuple):
    """A prediction with its ground truth; ``delay_s`` is label time minus prediction time (a tuple: a summary
    read off the topic makes one per label, and a tuple is made in about half a dataclass's time)."""

    prediction_id: str
    prediction: PendingPrediction
    label: Any
    outcomes: dict[str, float] | None
    delay_s: float


new_tuple = tuple.__new__  # a named tuple made from its fields without a Python call per row
_EVENT_TIME = attrgetter("event_time")
_LABEL = attrgetter("label")
_OUTCOMES = attrgetter("outcomes")


def nan_as_none(values: np.ndarray) -> list[float | None]:
    """A float column as a list, NaN as None (how the join keeps a score or confidence that was not given)."""
    return [None if v != v else v for v in values.tolist()]


class _Chunk:
    """Slots ``[k * size, (k + 1) * size)`` of the pending store, one column per field."""

    __slots__ = (
        "alive", "body", "body_live", "body_rewrites", "combo", "confidence", "ids", "live", "prediction", "rewrites",
        "score", "time",
    )  # fmt: skip

    def __init__(self, size: int) -> None:
        self.ids: list[str | None] = [None] * size
        self.combo = np.zeros(size, dtype=np.int32)  # index into the joiner's (model, version, segments) table
        self.prediction: list[Any] = [None] * size
        self.score = np.full(size, math.nan)  # NaN: no score
        self.confidence: np.ndarray | None = None  # NaN: none; made once a row has one (a multiclass model's)
        self.time = np.full(size, math.nan)
        self.alive = np.zeros(size, dtype=bool)
        self.live = 0
        self.rewrites = 0  # bumped on every change but a removal: a snapshot encodes a new body only then
        # The slots of the encoded body (None: none yet) and what it held: a removed prediction in them keeps its
        # id and value until the next body, so that the body can be encoded again from the chunk (same bytes).
        self.body: np.ndarray | None = None
        self.body_live = 0
        self.body_rewrites = 0

    def clear(self, idx: np.ndarray) -> None:
        """Drop the id and value of the removed predictions in slots ``idx``, but those the body holds."""
        if self.body is not None:
            idx = idx[~self.body[idx]]
        ids, held = self.ids, self.prediction
        for i in idx.tolist():
            ids[i] = held[i] = None


class PendingView(Mapping[str, PendingPrediction]):
    """The pending predictions as a read-only mapping, oldest first (what ``pending`` was as a dict)."""

    def __init__(self, joiner: LabelJoiner) -> None:
        self._joiner = joiner

    def __len__(self) -> int:
        return len(self._joiner._slot)

    def __contains__(self, prediction_id: object) -> bool:
        return prediction_id in self._joiner._slot

    def __getitem__(self, prediction_id: str) -> PendingPrediction:
        return self._joiner._peek(self._joiner._slot[prediction_id])

    def __iter__(self) -> Iterator[str]:
        for c in list(self._joiner._chunks.values()):
            ids = c.ids
            for i in np.flatnonzero(c.alive).tolist():
                yield ids[i]  # type: ignore[misc]


class LabelJoiner:
    """Join labels to predictions by ``prediction_id`` within bounded memory.

    >>> j = LabelJoiner(ttl_s=60, max_pending=2)
    >>> p = PendingPrediction("m", "v1", (), 0.9, 0.9, 100.0)
    >>> j.add_prediction("a", p, now=100.0)
    []
    >>> [x.label for x in j.add_label("a", 1, None, 130.0, None, now=130.0)]
    [1]
    >>> j.add_label("a", 1, None, 131.0, None, now=131.0)      # duplicate: counted once
    []
    >>> dict(j.counts)
    {'joined': 1, 'duplicate': 1}
    """

    def __init__(
        self,
        ttl_s: float = 7 * 86400.0,
        max_pending: int = 200_000,
        early_ttl_s: float = 3600.0,
        max_early: int = 50_000,
        chunk_slots: int = CHUNK_SLOTS,
    ) -> None:
        if not (ttl_s > 0 and early_ttl_s > 0):  # written so that NaN fails too
            raise ValueError("ttl_s and early_ttl_s must be > 0")
        if max_pending < 1 or max_early < 1 or chunk_slots < 1:
            raise ValueError("max_pending, max_early and chunk_slots must be >= 1")
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.early_ttl_s = early_ttl_s
        self.max_early = max_early
        self.chunk_slots = chunk_slots
        # Pending predictions: slot numbers grow with insertion, so slot order is event order and the oldest
        # entry is the first live slot of the first chunk. Chunks are created in slot order and dropped when
        # empty, so the dict's order is slot order.
        self._slot: dict[str, int] = {}
        self._chunks: dict[int, _Chunk] = {}
        self._next_slot = 0
        self._combos: list[tuple[str, str, Segments]] = []  # the distinct (model, version, segments) seen
        self._combo_code: dict[tuple[str, str, Segments], int] = {}
        self.retired: set[tuple[str, str]] = set()  # forgotten versions whose pending predictions hold combinations
        # pending predictions removed since the retired versions' combinations were last looked at: :meth:`expire`
        # looks again once they are an eighth of what was pending then, a cost of a few ns each (state: a restore
        # must look when the original does)
        self._removed = 0
        self._pending_at_look = 0
        # not state: chunk -> (its body's size, its encoding), dropped when the chunk gets a new body
        self._encoded: dict[int, tuple[int, snap.Encoded]] = {}
        self.early: OrderedDict[str, PendingLabel] = OrderedDict()
        self.done = JoinedIds()  # recently joined ids, to spot duplicates
        self.counts: Counter[str] = Counter()

    @property
    def pending(self) -> PendingView:
        """Predictions waiting for their label, oldest first."""
        return PendingView(self)

    # ------------------------------------------------------------- the column store
    def _code(self, model: str, version: str, segments: Segments) -> int:
        if self.retired:
            self.retired.discard((model, version))  # it came back: its combinations are in use again
        key = (model, version, segments)
        code = self._combo_code.get(key)
        if code is None:
            code = self._combo_code[key] = len(self._combos)
            self._combos.append(key)
        return code

    def forget(self, versions: Collection[tuple[str, str]] = ()) -> None:
        """Retired model versions (:meth:`monitor.core.profile.ProfileStage.retire_idle`) leave the table of
        segment combinations; a combination their pending predictions still hold stays until they leave too
        (:meth:`expire` looks again as pending predictions leave). What stays is numbered afresh, so every
        chunk is encoded afresh at the next snapshot (a version retires rarely)."""
        self.retired.update(versions)
        self._removed, self._pending_at_look = 0, len(self._slot)
        gone = {i for i, (m, v, _) in enumerate(self._combos) if (m, v) in self.retired}
        held = set()
        for c in self._chunks.values():
            if gone:
                held.update(np.unique(c.combo[c.alive]).tolist())
        self.retired = {self._combos[i][:2] for i in gone & held}
        gone -= held
        if not gone:
            return
        kept = [i for i in range(len(self._combos)) if i not in gone]
        renumber = np.zeros(len(self._combos), dtype=np.int32)  # an empty slot's code is never read
        renumber[kept] = np.arange(len(kept), dtype=np.int32)
        for c in self._chunks.values():
            c.combo = renumber[c.combo]
            c.rewrites += 1
        self._combos = [self._combos[i] for i in kept]
        self._combo_code = {key: i for i, key in enumerate(self._combos)}

    def _chunk(self, k: int) -> _Chunk:
        c = self._chunks.get(k)
        if c is None:
            c = self._chunks[k] = _Chunk(self.chunk_slots)
            self._encoded.pop(k, None)  # a chunk emptied and made again: its old encoding is stale
        return c

    def _write(
        self,
        ids: Sequence[str],
        combo: np.ndarray,
        predictions: Sequence[Any],
        scores: np.ndarray,
        times: np.ndarray,
        keep: np.ndarray | None,
        confidences: np.ndarray | None = None,
    ) -> None:
        """Put rows in the next slots (``keep`` False: the slot stays empty); the caller maps the ids."""
        size = self.chunk_slots
        base, n = self._next_slot, len(ids)
        done = 0
        while done < n:
            k, at = divmod(base + done, size)
            m = min(n - done, size - at)
            if keep is not None and not keep[done : done + m].any():
                done += m
                continue
            c = self._chunk(k)
            c.ids[at : at + m] = ids[done : done + m]
            c.prediction[at : at + m] = predictions[done : done + m]
            c.combo[at : at + m] = combo[done : done + m]
            c.score[at : at + m] = scores[done : done + m]
            if confidences is not None and c.confidence is None and not np.isnan(confidences[done : done + m]).all():
                c.confidence = np.full(size, math.nan)
            if c.confidence is not None:
                c.confidence[at : at + m] = math.nan if confidences is None else confidences[done : done + m]
            c.time[at : at + m] = times[done : done + m]
            if keep is None:
                c.alive[at : at + m] = True
                c.live += m
            else:
                part = keep[done : done + m]
                c.alive[at : at + m] = part
                c.live += int(part.sum())
            c.rewrites += 1
            done += m
        self._next_slot = base + n

    def _put(self, prediction_id: str, p: PendingPrediction) -> None:
        combo = np.array([self._code(p.model, p.model_version, p.segments)], dtype=np.int32)
        score = math.nan if p.score is None else p.score
        confidence = math.nan if p.confidence is None else p.confidence
        self._slot[prediction_id] = self._next_slot
        self._write(
            [prediction_id], combo, [p.prediction], np.array([score]), np.array([p.event_time]), None,
            np.array([confidence]),
        )  # fmt: skip

    def _peek(self, slot: int) -> PendingPrediction:
        c = self._chunks[slot // self.chunk_slots]
        i = slot % self.chunk_slots
        model, version, segments = self._combos[int(c.combo[i])]
        score = float(c.score[i])
        confidence = math.nan if c.confidence is None else float(c.confidence[i])
        return PendingPrediction(
            model, version, segments, c.prediction[i], None if score != score else score, float(c.time[i]),
            None if confidence != confidence else confidence,
        )  # fmt: skip

    def _take(self, slot: int) -> PendingPrediction:
        """The prediction in ``slot``, removed from its chunk (its id is already unmapped)."""
        p = self._peek(slot)
        k, i = divmod(slot, self.chunk_slots)
        c = self._chunks[k]
        c.alive[i] = False
        c.clear(np.array([i]))
        c.live -= 1
        self._removed += 1
        if not c.live:
            del self._chunks[k]
        return p

    def _compact(self) -> None:
        """Merge neighbouring written-out chunks that hold at most half a chunk together, in one sweep from the
        oldest (after every batch: :meth:`expire`, so that labels one at a time or in a batch leave the same
        store). A chunk's columns take its full size however few predictions are left, so a store whose labels
        come for all but a few predictions kept a chunk per few predictions (measured: 489 chunks, 114 MB, for
        2,000 pending). After the sweep no two written-out neighbours fit together (a chunk the sweep has passed
        only grows), so a second sweep changes nothing, and two neighbours hold more than half a chunk: the
        chunks stay fewer than ``4 * pending / chunk_slots + 2``. The later chunk's predictions follow the
        earlier one's in its first slots, so slot order stays arrival order; the chunk being written is never
        touched."""
        size = self.chunk_slots
        written = self._next_slot // size  # chunks before this one get no more rows
        if not any(k < written and 4 * c.live <= size for k, c in self._chunks.items()):
            return  # (two chunks fit together only if one holds at most a quarter)
        keys = [k for k in self._chunks if k < written]
        at = 0
        while at + 1 < len(keys):
            if self._fits(keys[at], keys[at + 1]):
                self._merge(keys[at], keys.pop(at + 1))
            else:
                at += 1

    def _fits(self, first: int, second: int) -> bool:
        return 2 * (self._chunks[first].live + self._chunks[second].live) <= self.chunk_slots

    def _merge(self, first: int, second: int) -> None:
        """Chunk ``first`` becomes its pending predictions followed by those of the later chunk ``second``, in
        its first slots; ``second`` goes."""
        a, b = self._chunks[first], self._chunks.pop(second)
        ia, ib = np.flatnonzero(a.alive), np.flatnonzero(b.alive)
        m = ia.size + ib.size
        c = _Chunk(self.chunk_slots)
        c.ids[:m] = [*map(a.ids.__getitem__, ia.tolist()), *map(b.ids.__getitem__, ib.tolist())]
        c.prediction[:m] = [*map(a.prediction.__getitem__, ia.tolist()), *map(b.prediction.__getitem__, ib.tolist())]
        c.combo[:m] = np.concatenate([a.combo[ia], b.combo[ib]])
        c.score[:m] = np.concatenate([a.score[ia], b.score[ib]])
        c.time[:m] = np.concatenate([a.time[ia], b.time[ib]])
        if a.confidence is not None or b.confidence is not None:
            c.confidence = np.full(self.chunk_slots, math.nan)
            for j, (old, idx) in enumerate(((a, ia), (b, ib))):
                if old.confidence is not None:
                    c.confidence[j * ia.size : j * ia.size + idx.size] = old.confidence[idx]
        c.alive[:m] = True
        c.live = m
        self._chunks[first] = c  # (in place: the dict keeps slot order)
        self._encoded.pop(first, None)
        self._encoded.pop(second, None)
        base = first * self.chunk_slots
        self._slot.update(zip(c.ids[:m], range(base, base + m), strict=True))  # type: ignore[arg-type]

    def _oldest_ids(self) -> Iterator[str]:
        return iter(PendingView(self))

    def _drop_oldest(self, most: int, *, label_now: float | None = None) -> int:
        """Remove up to ``most`` of the oldest pending predictions; with ``label_now``, stop at the first one
        that has not yet expired against it (as popping from the front of an ordered dict did)."""
        removed = 0
        for k, c in list(self._chunks.items()):
            if removed >= most:
                break
            idx = np.flatnonzero(c.alive)
            stopped = False
            if label_now is not None:
                kept = np.flatnonzero(label_now - c.time[idx] <= self.ttl_s)
                if kept.size:
                    idx, stopped = idx[: kept[0]], True
            if idx.size > most - removed:
                idx, stopped = idx[: most - removed], True
            if idx.size:
                slots, ids = self._slot, c.ids
                for i in idx.tolist():
                    del slots[ids[i]]  # type: ignore[arg-type]
                c.clear(idx)
                c.alive[idx] = False
                c.live -= idx.size
                self._removed += idx.size
                removed += idx.size
                if not c.live:
                    del self._chunks[k]
            if stopped:
                break
        return removed

    # ------------------------------------------------------------------ the join
    def add_prediction(self, prediction_id: str, prediction: PendingPrediction, *, now: float) -> list[Joined]:
        """Keep a prediction until its label comes; join at once if the label came first."""
        early = self.early.pop(prediction_id, None)
        if early is not None:
            return [self._join_early(prediction_id, prediction, early, now)]
        if prediction_id in self._slot or prediction_id in self.done:
            self.counts["duplicate_prediction"] += 1
            return []
        self._put(prediction_id, prediction)
        if len(self._slot) > self.max_pending:
            self._drop_oldest(1)
            self.counts["evicted"] += 1
        return []

    def _join_early(self, prediction_id: str, prediction: PendingPrediction, early: PendingLabel, now: float) -> Joined:
        if early.model is not None and early.model != prediction.model:
            self.counts["model_mismatch"] += 1
        self._mark_done(prediction_id, now)
        self.counts["joined"] += 1
        self.counts["joined_early"] += 1
        return Joined(prediction_id, prediction, early.label, early.outcomes, early.event_time - prediction.event_time)

    def add_predictions(
        self,
        ids: Sequence[str],
        model: str,
        version: str,
        segments: Sequence[Segments],
        segment_code: np.ndarray,
        predictions: Sequence[Any],
        scores: np.ndarray,
        times: np.ndarray,
        *,
        now: float,
        confidences: np.ndarray | None = None,
    ) -> list[Joined]:
        """:meth:`add_prediction` for a batch of one model version, as columns: row ``r`` has the segments
        ``segments[segment_code[r]]``, score ``scores[r]`` and confidence ``confidences[r]`` (NaN: none)."""
        n = len(ids)
        ids, predictions = kept_together(ids), kept_together(predictions)
        codes = np.array([self._code(model, version, s) for s in segments], dtype=np.int32)
        combo = codes[segment_code] if n else np.zeros(0, dtype=np.int32)
        scores = np.asarray(scores, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        sure = np.full(n, math.nan) if confidences is None else np.asarray(confidences, dtype=np.float64)
        slots = self._slot
        # Early labels waiting make a batch's rows count one by one, evictions included (as the store always
        # did); only where an eviction could let a repeated id back in must the rows go one by one here too.
        rowwise = bool(self.done) and not self.done.isdisjoint(ids)  # a repeat of a joined id
        if self.early and not rowwise and len(slots) + n > self.max_pending:
            rowwise = len(set(ids)) < n or not slots.keys().isdisjoint(ids)
        early = bool(self.early) and not self.early.keys().isdisjoint(ids)
        if rowwise:
            return self._add_predictions_rowwise(
                ids, segments, segment_code, combo, predictions, scores, times, now, sure
            )
        joined: list[Joined] = []
        keep: np.ndarray | None = None
        if early:
            keep, joined = self._join_early_rows(
                ids, segments, segment_code, combo, predictions, scores, times, now, sure
            )
        base = self._next_slot
        if keep is None:
            new = dict(zip(ids, range(base, base + n), strict=True))
            if len(new) == n and slots.keys().isdisjoint(new.keys()):
                slots.update(new)  # the common case: every row new, none stored
            else:
                keep = np.ones(n, dtype=bool)
        if keep is not None:  # row by row: a row whose id is stored (by an earlier row too) is a repeat
            for r in np.flatnonzero(keep).tolist():
                pid = ids[r]
                if pid in slots:
                    keep[r] = False
                    self.counts["duplicate_prediction"] += 1
                else:
                    slots[pid] = base + r
        self._write(ids, combo, predictions, scores, times, keep, sure)
        over = len(slots) - self.max_pending
        if over > 0:
            self._drop_oldest(over)
            self.counts["evicted"] += over
        return joined

    def _row(
        self,
        r: int,
        segments: Sequence[Segments],
        segment_code: np.ndarray,
        combo: np.ndarray,
        predictions: Sequence[Any],
        scores: np.ndarray,
        times: np.ndarray,
        confidences: np.ndarray,
    ) -> PendingPrediction:
        """Row ``r`` of a batch of :meth:`add_predictions` as one prediction (for a join with an early label)."""
        model, version, _ = self._combos[int(combo[r])]
        score, confidence = float(scores[r]), float(confidences[r])
        return PendingPrediction(
            model, version, segments[int(segment_code[r])], predictions[r], None if score != score else score,
            float(times[r]), None if confidence != confidence else confidence,
        )  # fmt: skip

    def _join_early_rows(
        self,
        ids: Sequence[str],
        segments: Sequence[Segments],
        segment_code: np.ndarray,
        combo: np.ndarray,
        predictions: Sequence[Any],
        scores: np.ndarray,
        times: np.ndarray,
        now: float,
        confidences: np.ndarray,
    ) -> tuple[np.ndarray, list[Joined]]:
        """The rows whose label came first, joined in order, and the rows left to store (none of the batch's ids
        was joined before this batch: a row whose early label an earlier row took is a repeat). Joined as
        columns unless an id comes twice among them."""
        early_labels = self.early
        keep = ~np.fromiter(map(early_labels.__contains__, ids), dtype=bool, count=len(ids))
        rows = np.flatnonzero(~keep)
        at = rows.tolist()
        pids = list(map(ids.__getitem__, at))
        if len(set(pids)) < len(pids):  # an id comes twice among them: row by row
            joined: list[Joined] = []
            for r in at:
                pid = ids[r]
                early = early_labels.pop(pid, None)
                if early is None:  # an earlier row took it: a repeat, unless the memory of joined ids let it go
                    if pid in self.done:
                        self.counts["duplicate_prediction"] += 1
                    else:
                        keep[r] = True
                    continue
                p = self._row(r, segments, segment_code, combo, predictions, scores, times, confidences)
                joined.append(self._join_early(pid, p, early, now))
            return keep, joined
        earlies: list[PendingLabel] = list(map(early_labels.pop, pids))
        model, version, _ = self._combos[int(combo[at[0]])]  # (one model version's batch)
        preds = list(map(new_tuple, repeat(PendingPrediction), zip(
            repeat(model), repeat(version), map(segments.__getitem__, segment_code[rows].tolist()),
            map(predictions.__getitem__, at), nan_as_none(scores[rows]), times[rows].tolist(),
            nan_as_none(confidences[rows]), strict=False,
        )))  # fmt: skip
        delays = (np.fromiter(map(_EVENT_TIME, earlies), dtype=np.float64, count=len(at)) - times[rows]).tolist()
        joined = list(map(new_tuple, repeat(Joined), zip(
            pids, preds, map(_LABEL, earlies), map(_OUTCOMES, earlies), delays, strict=True,
        )))  # fmt: skip
        mismatched = sum(1 for e in earlies if e.model is not None and e.model != model)
        first_mismatched = earlies[0].model is not None and earlies[0].model != model
        if first_mismatched:  # (the counters' order, which snapshots and metrics show, as row by row)
            self.counts["model_mismatch"] += mismatched
        self.done.add_many(pids, now)
        while len(self.done) > self.max_pending:  # as marking each done in turn leaves it
            self.done.pop_oldest()
        self.counts["joined"] += len(at)
        self.counts["joined_early"] += len(at)
        if mismatched and not first_mismatched:
            self.counts["model_mismatch"] += mismatched
        return keep, joined

    def _add_predictions_rowwise(
        self,
        ids: Sequence[str],
        segments: Sequence[Segments],
        segment_code: np.ndarray,
        combo: np.ndarray,
        predictions: Sequence[Any],
        scores: np.ndarray,
        times: np.ndarray,
        now: float,
        confidences: np.ndarray,
    ) -> list[Joined]:
        """Some ids have an early label or were joined already: decide row by row, in order, as
        :meth:`add_prediction` would (evictions included), then write the rows kept as columns."""
        joined: list[Joined] = []
        slots, done, early_labels = self._slot, self.done, self.early
        new: dict[str, int] = {}  # id -> row, for the rows put in the store
        existing = self._oldest_ids()
        evicted: set[str] = set()
        n_evicted = 0
        for r, pid in enumerate(ids):
            early = early_labels.pop(pid, None)
            if early is not None:
                p = self._row(r, segments, segment_code, combo, predictions, scores, times, confidences)
                joined.append(self._join_early(pid, p, early, now))
                continue
            if (pid in slots and pid not in evicted) or pid in new or pid in done:
                self.counts["duplicate_prediction"] += 1
                continue
            new[pid] = r
            if len(slots) - len(evicted) + len(new) > self.max_pending:
                victim = next(existing, None)
                if victim is not None:
                    evicted.add(victim)
                else:  # the store held only this batch's rows: the oldest of them goes
                    del new[next(iter(new))]
                n_evicted += 1
        if evicted:
            self._drop_oldest(len(evicted))
        if n_evicted:
            self.counts["evicted"] += n_evicted
        if new:
            base = self._next_slot
            keep = np.zeros(len(ids), dtype=bool)
            rows = np.fromiter(new.values(), dtype=np.intp, count=len(new))
            keep[rows] = True
            slots.update((pid, base + r) for pid, r in new.items())
            self._write(ids, combo, predictions, scores, times, keep, confidences)
        return joined

    def add_label(
        self,
        prediction_id: str,
        label: Any,
        outcomes: dict[str, float] | None,
        event_time: float,
        model: str | None,
        *,
        now: float,
    ) -> list[Joined]:
        """Join a label; a label for an unseen prediction waits ``early_ttl_s`` for it."""
        slot = self._slot.pop(prediction_id, None)
        if slot is not None:
            prediction = self._take(slot)
            if model is not None and model != prediction.model:
                self.counts["model_mismatch"] += 1
            self._mark_done(prediction_id, now)
            self.counts["joined"] += 1
            return [Joined(prediction_id, prediction, label, outcomes, event_time - prediction.event_time)]
        if prediction_id in self.done or prediction_id in self.early:
            self.counts["duplicate"] += 1
            return []
        self.early[prediction_id] = PendingLabel(label, outcomes, event_time, model)
        if len(self.early) > self.max_early:
            self.early.popitem(last=False)
            self.counts["unknown"] += 1
        return []

    def add_labels(
        self,
        ids: Sequence[str],
        labels: Sequence[Any],
        outcomes: Sequence[dict[str, float] | None],
        times: np.ndarray,
        models: Sequence[str | None],
        *,
        now: float,
    ) -> list[Joined]:
        """:meth:`add_label` for a batch, with the same results in the same order: every id's slot is looked up
        in one pass and the joined predictions are read out of their chunks as columns; only the
        bookkeeping of ``done`` and ``early``, which later rows of the batch read, stays row by row."""
        n = len(ids)
        if not n:
            return []
        ids = kept_together(ids)  # the joined ids are remembered (``done``): see kept_together
        pop = self._slot.pop
        slots = [pop(pid, -1) for pid in ids]  # an id twice in the batch finds its slot only the first time
        slot_array = np.array(slots, dtype=np.int64)
        found = np.flatnonzero(slot_array >= 0)
        times = np.asarray(times, dtype=np.float64)
        predictions, prediction_times = self._take_many(slot_array[found])
        delays = (times[found] - prediction_times).tolist()
        done, early, cap = self.done, self.early, self.max_pending
        joined: list[Joined] = []
        first: dict[str, int] = {}  # counter -> first row that moved it: counters appear in add_label's order
        if found.size == n and done.isdisjoint(ids):
            # Every label finds its prediction and none was joined before: nothing in the batch reads ``done``,
            # so it takes the batch at once and then drops its oldest over the cap, as row by row would.
            mismatched = [
                r for r, (m, p) in enumerate(zip(models, predictions, strict=True)) if m is not None and m != p.model
            ]
            joined = [Joined(*row) for row in zip(ids, predictions, labels, outcomes, delays, strict=True)]
            done.add_many(ids, now)
            done.drop_over(cap)
            n_mismatch, n_duplicate, n_unknown = len(mismatched), 0, 0
            if mismatched:
                first["model_mismatch"] = mismatched[0]
        else:
            n_mismatch = n_duplicate = n_unknown = 0
            label_times = times.tolist()
            f = 0
            for r, pid in enumerate(ids):
                if slots[r] >= 0:
                    p = predictions[f]
                    model = models[r]
                    if model is not None and model != p.model:
                        n_mismatch += 1
                        first.setdefault("model_mismatch", r)
                    done.add(pid, now)
                    if len(done) > cap:
                        done.pop_oldest()
                    joined.append(Joined(pid, p, labels[r], outcomes[r], delays[f]))
                    f += 1
                elif pid in done or pid in early:
                    n_duplicate += 1
                    first.setdefault("duplicate", r)
                else:
                    early[pid] = PendingLabel(labels[r], outcomes[r], label_times[r], models[r])
                    if len(early) > self.max_early:
                        early.popitem(last=False)
                        n_unknown += 1
                        first.setdefault("unknown", r)
        if found.size:
            first["joined"] = int(found[0])
        moved = {"model_mismatch": n_mismatch, "joined": len(joined), "duplicate": n_duplicate, "unknown": n_unknown}
        # on the same row model_mismatch moves before joined: the sort is stable and lists it first
        for name in sorted(first, key=first.__getitem__):
            self.counts[name] += moved[name]
        return joined

    def _take_many(self, slots: np.ndarray) -> tuple[list[PendingPrediction], np.ndarray]:
        """The predictions in ``slots`` (distinct), in that order, removed from their chunks (their ids are
        already unmapped), and their event times as an array."""
        n = slots.size
        size = self.chunk_slots
        combo = np.empty(n, dtype=np.int32)
        score = np.empty(n, dtype=np.float64)
        confidence = np.empty(n, dtype=np.float64)
        time = np.empty(n, dtype=np.float64)
        values: list[Any] = [None] * n
        if n:
            chunk_of, at = np.divmod(slots, size)
            order = np.argsort(chunk_of, kind="stable")
            keys, starts = np.unique(chunk_of[order], return_index=True)
            bounds = [*starts.tolist(), n]
            for j, k in enumerate(keys.tolist()):
                rows = order[bounds[j] : bounds[j + 1]]
                idx = at[rows]
                c = self._chunks[k]
                combo[rows] = c.combo[idx]
                score[rows] = c.score[idx]
                confidence[rows] = math.nan if c.confidence is None else c.confidence[idx]
                time[rows] = c.time[idx]
                held = c.prediction
                for r, i in zip(rows.tolist(), idx.tolist(), strict=True):
                    values[r] = held[i]
                c.clear(idx)
                c.alive[idx] = False
                c.live -= idx.size
                self._removed += idx.size
                if not c.live:
                    del self._chunks[k]
        if not n:
            return [], time
        models, versions, segments = zip(*map(self._combos.__getitem__, combo.tolist()), strict=True)
        scores: Sequence[float | None] = score.tolist()
        if np.isnan(score).any():
            scores = [None if s != s else s for s in scores]
        known = ~np.isnan(confidence)
        sure: Sequence[float | None] = [None] * n
        if known.any():
            sure = [c if k else None for c, k in zip(confidence.tolist(), known.tolist(), strict=True)]
        entries = zip(models, versions, segments, values, scores, time.tolist(), sure, strict=True)
        return list(map(new_tuple, repeat(PendingPrediction), entries)), time

    def _mark_done(self, prediction_id: str, now: float) -> None:
        self.done.add(prediction_id, now)
        if len(self.done) > self.max_pending:
            self.done.pop_oldest()

    def expire(self, now: float, *, labels_now: float | None = None) -> None:
        """Drop predictions older than ``ttl_s`` and early labels older than ``early_ttl_s``.

        ``now`` is how far the predictions have come (early labels wait for it); ``labels_now`` how far the
        labels have come (default ``now``). A prediction expires against the labels' time, so no prediction
        is given up before every label stamped up to its deadline has been fed, however the two streams
        were cut into batches.
        """
        label_now = now if labels_now is None else labels_now
        if self._slot:
            expired = self._drop_oldest(len(self._slot), label_now=label_now)
            if expired:
                self.counts["expired"] += expired
        if self.retired and 8 * self._removed >= self._pending_at_look:
            self.forget()
        self._compact()
        while self.early:
            lab = next(iter(self.early.values()))
            if now - lab.event_time <= self.early_ttl_s:
                break
            self.early.popitem(last=False)
            self.counts["unknown"] += 1
        while self.done:
            if max(now, label_now) - self.done.oldest_time() <= self.ttl_s:
                break
            self.done.pop_oldest()

    def apply_caps(self) -> None:
        """Hold the caps after they were lowered (a restart with a smaller config): oldest entries go first."""
        over = len(self._slot) - self.max_pending
        if over > 0:
            self._drop_oldest(over)
            self.counts["evicted"] += over
        self._compact()
        while len(self.early) > self.max_early:
            self.early.popitem(last=False)
            self.counts["unknown"] += 1

    # ------------------------------------------------------------------ snapshots
    def _chunk_plain(self, k: int, c: _Chunk) -> dict[str, Any]:
        """The chunk's body: the predictions in its body's slots."""
        at = np.flatnonzero(c.body if c.body is not None else c.alive)
        rows = at.tolist()
        pick = list_picker(rows)  # (one C call per column: a chunk is re-encoded at every checkpoint that changed it)
        predictions = pick(c.prediction)
        plain = {
            "k": k,
            "at": at.astype(np.int32),
            "ids": pick(c.ids),
            "combo": c.combo[at],
            "predictions": predictions,
            "scores": c.score[at],
            "times": c.time[at],
        }
        if c.confidence is not None and not np.isnan(c.confidence[at]).all():  # a multiclass model's
            plain["confidences"] = c.confidence[at]
        if set(map(type, predictions)) <= {float}:  # a score per prediction: one array, not a list of floats
            plain["predictions"] = np.array(predictions, dtype=np.float64)
        return plain

    def _new_body(self, c: _Chunk) -> None:
        """The chunk's pending predictions become its body (the removed ones its last body held let go)."""
        gone = np.flatnonzero(c.body & ~c.alive) if c.body is not None else None
        c.body = c.alive.copy()
        c.body_live, c.body_rewrites = c.live, c.rewrites
        if gone is not None:
            c.clear(gone)  # (none of them is in the new body)

    def to_plain(self, *, incremental: bool = True) -> dict[str, Any]:
        """Columns, one body per chunk of the store, and for each chunk that lost predictions since its body
        was made, a bitmap of the slots still pending (``alive``). A chunk gets a new body when something but a
        removal changed it, or once more than half its body's predictions are gone. A body made before reuses
        the encoding made then (``incremental=False`` encodes every body afresh: same result)."""
        chunks: list[Any] = []
        alive: list[Any] = []
        cache: dict[int, tuple[int, snap.Encoded]] = {}
        for k, c in self._chunks.items():
            if c.body is None or c.body_rewrites != c.rewrites or 2 * c.live < c.body_live:
                self._new_body(c)
                self._encoded.pop(k, None)
            hit = self._encoded.get(k) if incremental else None
            if hit is None:
                hit = (c.body_live, snap.Encoded(snap.encode(self._chunk_plain(k, c))))
            cache[k] = hit
            chunks.append(hit[1])
            if c.live < c.body_live:
                alive.append([k, np.packbits(c.alive)])
        self._encoded = cache  # chunks dropped since the last snapshot leave the cache
        return {
            "params": [self.ttl_s, self.max_pending, self.early_ttl_s, self.max_early],
            "chunk_slots": self.chunk_slots,
            "next_slot": self._next_slot,
            "combos": [[m, v, [list(x) for x in segs]] for (m, v, segs) in self._combos],
            "retired": [[m, v] for m, v in sorted(self.retired)],
            "chunks": chunks,
            "alive": alive,
            "early_ids": list(self.early),
            "early": [[e.label, e.outcomes, e.event_time, e.model] for e in self.early.values()],
            "done": self.done.to_plain(),
            "counts": dict(self.counts),
            "look": [self._removed, self._pending_at_look],
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> LabelJoiner:
        if "chunks" not in data:
            data = _upgrade_plain(data)
        ttl_s, max_pending, early_ttl_s, max_early = data["params"]
        joiner = cls(ttl_s, max_pending, early_ttl_s, max_early, chunk_slots=int(data["chunk_slots"]))
        joiner._next_slot = int(data["next_slot"])
        for m, v, segs in data["combos"]:
            joiner._code(m, v, tuple((a, b) for a, b in segs))
        joiner.retired = {(m, v) for m, v in data.get("retired", [])}
        size = joiner.chunk_slots
        pending = {int(k): np.unpackbits(np.asarray(bits, dtype=np.uint8), count=size).astype(bool)
                   for k, bits in data.get("alive", [])}  # fmt: skip
        for plain in data["chunks"]:
            k = int(plain["k"])
            at = np.asarray(plain["at"], dtype=np.intp)
            c = joiner._chunks[k] = _Chunk(size)
            ids = list(plain["ids"])
            predictions = plain["predictions"]
            predictions = predictions.tolist() if isinstance(predictions, np.ndarray) else list(predictions)
            for i, pid, p in zip(at.tolist(), ids, predictions, strict=True):
                c.ids[i], c.prediction[i] = pid, p
            c.combo[at] = np.asarray(plain["combo"], dtype=np.int32)
            c.score[at] = np.asarray(plain["scores"], dtype=np.float64)
            if "confidences" in plain:
                c.confidence = np.full(size, math.nan)
                c.confidence[at] = np.asarray(plain["confidences"], dtype=np.float64)
            c.time[at] = np.asarray(plain["times"], dtype=np.float64)
            c.alive[at] = True
            c.body, c.body_live = c.alive.copy(), int(at.size)  # the same body: the next snapshot writes it again
            if k in pending:  # predictions its body holds that left since (their labels came)
                c.alive &= pending[k]
            c.live = int(c.alive.sum())
            if not c.live:
                del joiner._chunks[k]
                continue
            at = np.flatnonzero(c.alive)
            pending_ids: list[str] = [c.ids[i] for i in at.tolist()]  # type: ignore[misc]
            joiner._slot.update(zip(pending_ids, (k * size + at).tolist(), strict=True))
        joiner.early = OrderedDict(
            (pid, PendingLabel(*row)) for pid, row in zip(data["early_ids"], data["early"], strict=True)
        )
        if "done" in data:
            joiner.done = JoinedIds.from_plain(data["done"])
        else:  # an earlier release's ordered dict
            joiner.done = JoinedIds.from_pairs(data["done_ids"], np.asarray(data["done_times"]).tolist())
        joiner.counts = Counter(data["counts"])
        look = data.get("look", (0, len(joiner._slot)))  # an earlier release's: as if just looked
        joiner._removed, joiner._pending_at_look = int(look[0]), int(look[1])
        return joiner

    def snapshot(self) -> dict[str, Any]:
        """:meth:`to_plain` as JSON-ready data (arrays encoded as :mod:`monitor.core.snapshot` does)."""
        return dict(snap.encode(self.to_plain())["$d"])

    def restore(self, data: dict[str, Any]) -> None:
        if "chunks" in data:  # what snapshot() gives: encoded values
            data = {k: snap.decode(v) for k, v in data.items()}
        other = self.from_plain(data)
        for name in (
            "chunk_slots", "_slot", "_chunks", "_next_slot", "_combos", "_combo_code", "retired", "early", "done",
            "_removed", "_pending_at_look",
        ):  # fmt: skip
            setattr(self, name, getattr(other, name))
        self.counts = other.counts
        self._encoded = {}


def _upgrade_plain(data: dict[str, Any]) -> dict[str, Any]:
    """An older release's join store (one flat column per field, no chunks) in the chunked form: the same
    predictions in the same order, in the first slots."""
    size = CHUNK_SLOTS
    n = len(data["pending_ids"])
    ids = list(data["pending_ids"])
    combo = np.asarray(data["combo_index"], dtype=np.int32).reshape(-1)
    scores = np.asarray(data["scores"], dtype=np.float64).reshape(-1)
    times = np.asarray(data["times"], dtype=np.float64).reshape(-1)
    chunks = []
    for k, start in enumerate(range(0, n, size)):
        stop = min(n, start + size)
        chunks.append(
            {
                "k": k,
                "at": np.arange(stop - start, dtype=np.int32),
                "ids": ids[start:stop],
                "combo": combo[start:stop],
                "predictions": list(data["predictions"][start:stop]),
                "scores": scores[start:stop],
                "times": times[start:stop],
            }
        )
    return {**data, "chunk_slots": size, "next_slot": n, "chunks": chunks}
