"""Bounded prediction-label join: labels arrive late, early, twice or never.

Times are event times supplied by the caller (``now``, the partition's watermark), so expiry is
deterministic on replay and tests drive it without sleeping. Every store has a cap; what a cap or a TTL
pushes out is counted, never silently dropped.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class PendingPrediction(NamedTuple):
    """What the join keeps of a prediction until its label arrives (a tuple: there can be many)."""

    model: str
    model_version: str
    segments: tuple[tuple[str, str], ...]
    prediction: Any
    score: float | None
    event_time: float


class PendingLabel(NamedTuple):
    """A label that arrived before its prediction."""

    label: Any
    outcomes: dict[str, float] | None
    event_time: float
    model: str | None


@dataclass(frozen=True)
class Joined:
    """A prediction with its ground truth; ``delay_s`` is label time minus prediction time."""

    prediction_id: str
    prediction: PendingPrediction
    label: Any
    outcomes: dict[str, float] | None
    delay_s: float


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
    ) -> None:
        if not (ttl_s > 0 and early_ttl_s > 0):  # written so that NaN fails too
            raise ValueError("ttl_s and early_ttl_s must be > 0")
        if max_pending < 1 or max_early < 1:
            raise ValueError("max_pending and max_early must be >= 1")
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.early_ttl_s = early_ttl_s
        self.max_early = max_early
        # Insertion order is event order, so the oldest entry is always first: expiry and eviction are O(1).
        self.pending: OrderedDict[str, PendingPrediction] = OrderedDict()
        self.early: OrderedDict[str, PendingLabel] = OrderedDict()
        self.done: OrderedDict[str, float] = OrderedDict()  # recently joined ids, to spot duplicates
        self.counts: Counter[str] = Counter()

    def add_prediction(self, prediction_id: str, prediction: PendingPrediction, *, now: float) -> list[Joined]:
        """Keep a prediction until its label comes; join at once if the label came first."""
        early = self.early.pop(prediction_id, None)
        if early is not None:
            if early.model is not None and early.model != prediction.model:
                self.counts["model_mismatch"] += 1
            self._mark_done(prediction_id, now)
            self.counts["joined"] += 1
            self.counts["joined_early"] += 1
            return [
                Joined(prediction_id, prediction, early.label, early.outcomes, early.event_time - prediction.event_time)
            ]
        if prediction_id in self.pending or prediction_id in self.done:
            self.counts["duplicate_prediction"] += 1
            return []
        self.pending[prediction_id] = prediction
        if len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.counts["evicted"] += 1
        return []

    def add_predictions(self, ids: list[str], predictions: list[PendingPrediction], *, now: float) -> list[Joined]:
        """:meth:`add_prediction` for a batch (one call instead of one per event)."""
        if not self.early and not self.done.keys() & ids:
            pending = self.pending
            dupes = 0
            for pid, p in zip(ids, predictions, strict=True):
                if pid in pending:
                    dupes += 1
                    continue
                pending[pid] = p
            if dupes:
                self.counts["duplicate_prediction"] += dupes
            over = len(pending) - self.max_pending
            if over > 0:
                for _ in range(over):
                    pending.popitem(last=False)
                self.counts["evicted"] += over
            return []
        joined: list[Joined] = []
        for pid, p in zip(ids, predictions, strict=True):
            joined += self.add_prediction(pid, p, now=now)
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
        prediction = self.pending.pop(prediction_id, None)
        if prediction is not None:
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

    def _mark_done(self, prediction_id: str, now: float) -> None:
        self.done[prediction_id] = now
        if len(self.done) > self.max_pending:
            self.done.popitem(last=False)

    def expire(self, now: float, *, labels_now: float | None = None) -> None:
        """Drop predictions older than ``ttl_s`` and early labels older than ``early_ttl_s``.

        ``now`` is how far the predictions have come (early labels wait for it); ``labels_now`` how far the
        labels have come (default ``now``). A prediction expires against the labels' time, so no prediction
        is given up before every label stamped up to its deadline has been fed, however the two streams
        were cut into batches.
        """
        label_now = now if labels_now is None else labels_now
        while self.pending:
            p = next(iter(self.pending.values()))
            if label_now - p.event_time <= self.ttl_s:
                break
            self.pending.popitem(last=False)
            self.counts["expired"] += 1
        while self.early:
            lab = next(iter(self.early.values()))
            if now - lab.event_time <= self.early_ttl_s:
                break
            self.early.popitem(last=False)
            self.counts["unknown"] += 1
        while self.done:
            t = next(iter(self.done.values()))
            if max(now, label_now) - t <= self.ttl_s:
                break
            self.done.popitem(last=False)

    def to_plain(self) -> dict[str, Any]:
        """Columns, not one object per entry: a join store can hold hundreds of thousands of predictions.

        Model, version and segments repeat across entries, so each entry stores an index into a small
        table of their distinct combinations; times and scores are float arrays.
        """
        combos: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        index = np.empty(len(self.pending), dtype=np.int32)
        for i, p in enumerate(self.pending.values()):
            index[i] = combos.setdefault((p.model, p.model_version, p.segments), len(combos))
        pending = list(self.pending.values())
        return {
            "params": [self.ttl_s, self.max_pending, self.early_ttl_s, self.max_early],
            "pending_ids": list(self.pending),
            "combos": [[m, v, [list(x) for x in segs]] for (m, v, segs) in combos],
            "combo_index": index,
            "predictions": [p.prediction for p in pending],
            "scores": np.array([math.nan if p.score is None else p.score for p in pending], dtype=np.float64),
            "times": np.array([p.event_time for p in pending], dtype=np.float64),
            "early_ids": list(self.early),
            "early": [[e.label, e.outcomes, e.event_time, e.model] for e in self.early.values()],
            "done_ids": list(self.done),
            "done_times": np.array(list(self.done.values()), dtype=np.float64),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> LabelJoiner:
        joiner = cls(*data["params"])
        combos = [(m, v, tuple((a, b) for a, b in segs)) for m, v, segs in data["combos"]]
        scores = [None if s != s else s for s in np.asarray(data["scores"]).tolist()]
        joiner.pending = OrderedDict(
            (pid, PendingPrediction(combos[c][0], combos[c][1], combos[c][2], pred, score, t))
            for pid, c, pred, score, t in zip(
                data["pending_ids"],
                np.asarray(data["combo_index"]).tolist(),
                data["predictions"],
                scores,
                np.asarray(data["times"]).tolist(),
                strict=True,
            )
        )
        joiner.early = OrderedDict(
            (pid, PendingLabel(*row)) for pid, row in zip(data["early_ids"], data["early"], strict=True)
        )
        joiner.done = OrderedDict(zip(data["done_ids"], np.asarray(data["done_times"]).tolist(), strict=True))
        joiner.counts = Counter(data["counts"])
        return joiner

    def snapshot(self) -> dict[str, Any]:
        """:meth:`to_plain` with plain lists instead of arrays (JSON as it is)."""
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.to_plain().items()}

    def restore(self, data: dict[str, Any]) -> None:
        other = self.from_plain(data)
        self.pending, self.early, self.done, self.counts = other.pending, other.early, other.done, other.counts
