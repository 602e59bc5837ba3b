"""The detection stage: the summaries of every input partition merged, then one engine over them.

Each model's summaries go to one detection stage (the summaries topic is keyed by model, see
:func:`summaries_partition`), so each stream's detectors, window tests, Benjamini-Hochberg rounds, alert
lifecycle, attribution, decisions and fairness run once, on all of its traffic, however many input
partitions and replicas there are. Summaries are merged in event time: by their progress (the newest
prediction time their source had seen), each released once no source still moving can send one before it,
so the merge is the same whatever order they arrive in (live, the rows of a held summary that are older than
every moving source's progress go ahead of the rest of it); a partition whose progress has not moved for
``idle_s`` stops holding the others back, unless its notes say it has input waiting (it is being read late,
not idle); when traffic comes back after every source was silent, each one gets ``idle_s`` again. Summaries
carry (source partition, sequence number); a repeat is dropped."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from monitor.core.baseline import ProfileSet
from monitor.core.batch_rows import concat_rows, slice_rows, take_rows
from monitor.core.engine import PartitionEngine
from monitor.core.join import Joined
from monitor.core.rules import Alert
from monitor.core.settings import Settings
from monitor.core.shards import SHARD_CUT, effective_shards, shard_here
from monitor.core.summary import ON_ITS_WAY, Summary


class DetectionStage:
    """One summaries partition's merge and engine.

    >>> from monitor.core.profile import ProfileStage
    >>> msg = b'{"prediction_id":"%d","model":"m","timestamp":%d,"features":{"x":1.0},"prediction":0.2}'
    >>> a, b = ProfileStage(Settings(), partition=0), ProfileStage(Settings(), partition=1)
    >>> stage = DetectionStage(Settings(), clock=lambda: 0.0, idle_clock=lambda: 0.0)
    >>> _ = [stage.add(s) for s in a.predictions([msg % (1, 10), msg % (2, 30)], [0.0, 0.0])[0]]
    >>> _ = [stage.add(s) for s in b.predictions([msg % (3, 20)], [0.0])[0]]
    >>> _ = stage.release()  # up to partition 1's progress (20): its row, and partition 0's row at 10
    >>> stage.engine.events_total(), stage.pending_rows()  # the row at 30 waits
    (2, 1)
    """

    def __init__(
        self,
        config: Settings,
        *,
        partition: int = 0,
        idle_s: float = 10.0,
        max_pending: int = 200_000,
        clock: Callable[[], float] = time.time,
        idle_clock: Callable[[], float] = time.monotonic,
        profiles: ProfileSet | None = None,
        coalesce: bool = True,
        batch_rows: int = 4000,
        summaries_partitions: int = 1,
        shards: int = 1,
    ) -> None:
        """``clock`` stamps alerts (the engine's); ``idle_clock`` times how long a source's progress stood still.
        ``coalesce``: the rows one release lets through are monitored in event-time order, in batches of at most
        ``batch_rows`` rows (see :meth:`_monitor_released`): a backlog released at once is still judged every
        ``batch_rows`` rows, and its arrays stay small. False:
        one batch per summary, so the batches themselves do not depend on when summaries arrived (a replay).
        ``summaries_partitions`` and ``shards``: which shard of each model this stage holds
        (:mod:`monitor.core.shards`)."""
        self.engine = PartitionEngine(config, partition=partition, partitions=1, clock=clock, profiles=profiles)
        self.partition = partition
        self.summaries_partitions = max(1, summaries_partitions)
        self.shards = effective_shards(shards, self.summaries_partitions)
        self._bind_shards()
        self.idle_s = idle_s
        self.max_pending = max_pending  # rows and joined labels held for the watermark at most (memory bound)
        self.coalesce = coalesce
        self.batch_rows = batch_rows
        self.clock = idle_clock
        self.pending: dict[int, list[Summary]] = {}  # per source partition, in arrival order
        self.progress: dict[int, float] = {}  # per source: the newest prediction event time it has reported
        self.label_progress: dict[int, float] = {}  # per source: the newest label event time it has reported
        self.last_seq: dict[int, int] = {}  # per source: the highest sequence number taken (older ones repeat)
        self.released_seq: dict[int, int] = {}  # per source: the sequence number of the last summary released
        self.split: dict[int, tuple[int, int]] = {}  # per source: (sequence, rows released) of a head cut short
        self.rows_split = 0  # rows released ahead of the rest of their summary (see _split_behind)
        self.moved: dict[int, float] = {}  # per source: clock time its progress last moved (not state)
        self.label_moved: dict[int, float] = {}  # per source: clock time its label progress last moved (not state)
        self.released_to = -math.inf  # the watermark released so far
        self.summaries = 0  # summaries taken
        self.duplicates = 0  # summaries dropped as repeats
        self.late_rows = 0  # rows that arrived behind the watermark already released (released at once)
        self.forced = 0  # releases the pending cap forced ahead of the watermark
        self.rows_released = 0  # rows released to the engine so far: its batches end at multiples of batch_rows
        self.misrouted = 0  # summaries dropped as cut for another shard count or for a shard not held here
        self.notes = 0  # notes taken: a source with input waiting (see add)
        self.backlog = False  # the last release stopped at its max_rows with summaries left (not state)

    def _bind_shards(self) -> None:
        """Tell the engine which shard of each model it holds (derived from the partition: not state)."""
        self.engine.shards = self.shards
        if self.shards > 1:
            partition, partitions, shards = self.partition, self.summaries_partitions, self.shards
            self.engine.shard_of_model = lambda model: shard_here(model, partition, partitions, shards)

    def expect(self, sources: list[int]) -> None:
        """Sources known to be coming (every input partition, live or in a replay): the merge waits for their
        first summary too, or until they have been silent for ``idle_s`` (a partition without traffic)."""
        now = self.clock()
        for src in sources:
            if src not in self.progress:
                self.progress[src] = -math.inf
                self.moved[src] = now

    def add(self, summary: Summary) -> bool:
        """Take a summary (False: a repeat of one already taken, or one for another shard layout, dropped)."""
        if not self._cut_here(summary):  # replicas that disagree on detection.shards, or an earlier release's
            self.misrouted += 1  # cut: never judged as if it were this stage's (counted)
            return False
        src = summary.source
        if summary.waiting:  # a note (ProfileStage.notes): the source has input waiting, so it still moves
            self.notes += 1
            if self._asleep():  # (a note often comes first: summaries wait for their source's checkpoint)
                self._wake()
            self.progress.setdefault(src, -math.inf)
            self.moved[src] = self.clock()
            return False
        if summary.seq <= self.last_seq.get(src, -1):
            self.duplicates += 1
            return False
        self.last_seq[src] = summary.seq
        self.summaries += 1
        # a summary cut short before the snapshot, read again after a restore: its rows released then are dropped
        seq, gone = self.split.get(src, (-1, 0))
        if seq == summary.seq and summary.rows is not None:
            summary = replace(summary, rows=slice_rows(summary.rows, gone, len(summary.rows)), wire=None)
        rows_moved = summary.progress > self.progress.get(src, -math.inf) or src not in self.progress
        labels_moved = summary.label_progress > self.label_progress.get(src, -math.inf)
        if (rows_moved or labels_moved) and self._asleep():
            self._wake()
        if rows_moved:
            self.progress[src] = summary.progress
            self.moved[src] = self.clock()
        if labels_moved:
            self.label_progress[src] = summary.label_progress
            self.label_moved[src] = self.clock()
        if len(summary):
            if summary.rows is not None and len(summary.rows):
                self.late_rows += int(np.count_nonzero(summary.rows.event_time < self.released_to))
            self.pending.setdefault(src, []).append(summary)
        return True

    def _asleep(self) -> bool:
        """Every source has been silent for ``idle_s`` and nothing is held: traffic stopped everywhere."""
        if self.pending:
            return False
        now = self.clock()
        return all(
            now - max(self.moved.get(src, now), self.label_moved.get(src, -math.inf)) >= self.idle_s
            for src in self.progress
        )

    def _wake(self) -> None:
        """Traffic comes back after a silence everywhere (or after the start, once ``idle_s`` has passed): every
        source gets ``idle_s`` again before it is left out. Otherwise the first source to send would find every
        other one idle, its rows would go at once, and each partition read a moment later (another replica,
        polled after it) would be monitored behind them, out of event-time order."""
        now = self.clock()
        for src in self.progress:
            self.moved[src] = now

    def _cut_here(self, summary: Summary) -> bool:
        """Whether the summary was cut for this stage: the same shard count, the shard held here and, with
        several shards, the rule of this release (:data:`monitor.core.shards.SHARD_CUT`)."""
        if summary.shards != self.shards:
            return False
        return self.shards == 1 or (
            summary.shard == self.engine.shard_of_model(summary.model) and summary.cut == SHARD_CUT
        )

    def watermark(self) -> float:
        """The slowest moving source's progress (+inf when all are idle): how far the merge has every source."""
        now = self.clock()
        moving = [
            p
            for src, p in self.progress.items()
            if now - max(self.moved.get(src, now), self.label_moved.get(src, -math.inf)) < self.idle_s
        ]
        return min(moving) if moving else math.inf

    def pending_rows(self) -> int:
        return sum(len(s) for parts in self.pending.values() for s in parts)

    def release(self, *, flush: bool = False, max_rows: int | None = None) -> list[Alert]:
        """Monitor the buffered summaries in merged order, by (progress, source, sequence): one batch per summary
        (its rows, then its joined labels), or coalesced (see :meth:`_monitor_released`). A summary goes once
        no source still moving can send one that comes before it (a source's next summary has at least its
        current progress), so the order, and with it every alert, is the same whatever order the summaries
        arrived in. While coalescing, the rows of the first summary held that are older than that bound go
        ahead of the rest of it (:meth:`_split_behind`). ``flush``: everything now. ``max_rows``: stop after
        the summary that brings the rows and labels taken to at least this many, leaving the rest for the next
        call (:attr:`backlog` says whether any is left), so that a long backlog does not hold its caller's loop
        for seconds; not while more than ``max_pending`` rows would stay held (memory stays bounded)."""
        alerts: list[Alert] = []
        taken: list[Summary] = []
        size = 0
        held = self.pending_rows()
        self.backlog = False
        now = self.clock()
        moving = {
            src: (p, src)
            for src, p in self.progress.items()
            if now - max(self.moved.get(src, now), self.label_moved.get(src, -math.inf)) < self.idle_s
        }
        while self.pending:
            src, head = min(((k, parts[0]) for k, parts in self.pending.items()), key=_order)
            if not flush:
                bound = min((b for other, b in moving.items() if other not in self.pending), default=None)
                if bound is not None and bound <= (head.progress, src):
                    if held <= self.max_pending:  # (the rows still pending: counted down as they go)
                        ahead = self._split_behind(src, head, bound[0]) if self.coalesce else None
                        if ahead is not None:
                            taken.append(ahead)
                            size += len(ahead)
                            held -= len(ahead)
                            self.released_to = max(self.released_to, ahead.progress)
                        break
                    self.forced += 1  # a source far behind must not hold memory without bound
            parts = self.pending[src]
            parts.pop(0)
            if not parts:
                del self.pending[src]
            self.released_seq[src] = head.seq
            self.split.pop(src, None)
            self.released_to = max(self.released_to, head.progress)
            if not self.coalesce:
                alerts += self.engine.apply([head])
            else:
                taken.append(head)
            size += len(head)
            held -= len(head)
            if max_rows is not None and size >= max_rows and self.pending and held <= self.max_pending:
                self.backlog = True
                break
        if taken:
            alerts += self._monitor_released(taken)
        return alerts

    def _split_behind(self, src: int, head: Summary, bound: float) -> Summary | None:
        """The leading rows of a held summary that are older than ``bound`` (every source still moving has
        reached it), cut off to go now; the rest, with its labels, stays at the head of its source's queue.

        A summary's rows span up to :data:`~monitor.core.profile.SUMMARY_SPAN_S` of event time, so waiting for
        its progress (its newest row) held its older rows until every other source had passed that too, often
        one more summary tick.
        Only while coalescing: the rows of a release are monitored in event-time order whatever summaries
        brought them, so this moves rows into an earlier release and nothing else (a replay, which monitors
        one summary at a time, keeps whole summaries). :attr:`split` remembers how many rows of the summary
        went, so a restored stage that reads it again off the topic drops them."""
        rows = head.rows
        if rows is None or not len(rows):
            return None
        behind = rows.event_time < bound
        n = int(behind.argmin()) if not behind.all() else len(rows)
        if n == 0 or n == len(rows):  # all of it: only when its progress is not its newest row's time; keep whole
            return None
        ahead = replace(head, rows=slice_rows(rows, 0, n), joined=[], wire=None,
                        progress=float(np.max(rows.event_time[:n])))  # fmt: skip
        self.pending[src][0] = replace(head, rows=slice_rows(rows, n, len(rows)), wire=None)
        seq, gone = self.split.get(src, (-1, 0))
        self.split[src] = (head.seq, n + (gone if seq == head.seq else 0))  # rows of the summary as sent
        self.rows_split += n
        return ahead

    def _monitor_released(self, taken: list[Summary]) -> list[Alert]:
        """One release's summaries (in merged order) monitored in event-time order, cut into batches that end
        where the stage's released row count reaches a multiple of ``batch_rows`` (and at the release's end):
        those ends do not depend on which summaries or sources the rows came in, so how the traffic is
        partitioned does not change what is judged when (where a release ends depends on arrival). A summary's
        joined labels are learned after the batch that holds its last row or any earlier summary's (labels keep
        the merged order); those of summaries ahead of every row of the release, before the first batch."""
        parts = [s.rows for s in taken if s.rows is not None and len(s.rows)]
        if not parts:
            return self.engine.apply(taken)
        rows = concat_rows(parts)
        order = np.argsort(rows.event_time, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        n = order.size
        first = self.batch_rows - self.rows_released % self.batch_rows
        stops = [*range(first, n, self.batch_rows), n]
        labels: list[list[Joined]] = [[] for _ in stops]
        before: list[Joined] = []  # labels of summaries ahead of every row of the release
        start, anchor = 0, -1  # anchor: the sorted place of the last row so far, in merged order
        for s in taken:
            size = 0 if s.rows is None else len(s.rows)
            if size:
                anchor = max(anchor, int(rank[start : start + size].max()))
                start += size
            if s.joined:
                (labels[bisect.bisect_right(stops, anchor)] if anchor >= 0 else before).extend(s.joined)
        self.rows_released += n
        alerts: list[Alert] = self.engine.apply_rows(None, before) if before else []
        # once for the release, then cut: linear in its rows and nulls (no copy when already in order)
        ordered = rows if np.array_equal(order, np.arange(n)) else take_rows(rows, order)
        del rows  # a long release's copy is held once, in order, not twice
        lo = 0
        for stop, joined in zip(stops, labels, strict=True):
            alerts += self.engine.apply_rows(slice_rows(ordered, lo, stop), joined)
            lo = stop
        return alerts

    # --------------------------------------------------------------- snapshots
    def rereadable(self) -> bool:
        """Whether every summary still waiting for the watermark can be read off the topic again after a
        restore: read from it (its offset known), or on its way to it (:data:`~monitor.core.summary.ON_ITS_WAY`,
        at or after the stage's read position)."""
        return all(s.offset >= 0 or s.offset == ON_ITS_WAY for parts in self.pending.values() for s in parts)

    def resume_offset(self) -> int | None:
        """The summaries-topic offset to read again from after a restore, when every summary still waiting for
        the watermark can be read again (:meth:`rereadable`): the oldest one's read off the topic (None: none
        was, or one came otherwise)."""
        if not self.rereadable():
            return None
        return min((s.offset for parts in self.pending.values() for s in parts if s.offset >= 0), default=None)

    def learn_offset(self, source: int, seq: int, offset: int) -> None:
        """A summary taken on its way (:data:`~monitor.core.summary.ON_ITS_WAY`) was read back at ``offset``:
        what of it still waits is now held at that offset (a snapshot must not leave it out once the read
        position has passed it)."""
        for s in reversed(self.pending.get(source, ())):  # in sequence order: taken ones last, read ones before
            if s.seq < seq:
                return
            if s.seq == seq and s.offset == ON_ITS_WAY:
                s.offset = offset

    def snapshot(self) -> dict[str, Any]:
        """The engine's snapshot, the merge's bookkeeping and the summaries still waiting for the watermark.

        When every waiting summary can be read off the summaries topic again (:meth:`rereadable`), they stay out:
        the stage's input offset is the oldest one's (or its read position, before any on its way), so a
        restored stage reads them again, and each of their sources is recorded as it stood before its oldest
        waiting summary (the sequence last released, that summary's progress), so the repeats of released ones
        are dropped and the merge waits for the rest as it did. A snapshot then stays a few kilobytes however
        much the watermark holds back (it rewrote the summaries on every checkpoint: 33 MB while catching up on
        the reference workload)."""
        progress, last_seq = dict(self.progress), dict(self.last_seq)
        pending: list[str] = []
        if not self.rereadable():
            pending = [s.to_stored() for parts in self.pending.values() for s in parts]
        else:
            for src, parts in self.pending.items():
                last_seq[src] = self.released_seq.get(src, -1)
                progress[src] = parts[0].progress
        return {
            "engine": self.engine.snapshot(),
            "pending": pending,
            "progress": [[src, None if math.isinf(p) else p] for src, p in progress.items()],
            "label_progress": [[src, None if math.isinf(p) else p] for src, p in self.label_progress.items()],
            "last_seq": [[src, seq] for src, seq in last_seq.items()],
            "released_to": None if math.isinf(self.released_to) else self.released_to,
            "split": [[src, seq, n] for src, (seq, n) in self.split.items()],
            "counts": [
                self.summaries,
                self.duplicates,
                self.late_rows,
                self.forced,
                self.rows_released,
                self.misrouted,
                self.rows_split,
                self.notes,
            ],
        }

    @classmethod
    def restore(
        cls,
        config: Settings,
        data: dict[str, Any],
        *,
        idle_s: float = 10.0,
        max_pending: int = 200_000,
        clock: Callable[[], float] = time.time,
        idle_clock: Callable[[], float] = time.monotonic,
        profiles: ProfileSet | None = None,
        batch_rows: int = 4000,
        summaries_partitions: int = 1,
        shards: int = 1,
    ) -> DetectionStage:
        """A stage that continues where the snapshotted one stopped; every source counts as just moved."""
        engine = PartitionEngine.restore(config, data["engine"], clock=clock, profiles=profiles)
        stage = cls(
            config, partition=engine.partition, idle_s=idle_s, max_pending=max_pending, clock=clock,
            idle_clock=idle_clock, profiles=profiles, batch_rows=batch_rows,
            summaries_partitions=summaries_partitions, shards=shards,
        )  # fmt: skip
        stage.engine = engine
        stage._bind_shards()
        dropped = 0
        for plain in data["pending"]:
            s = Summary.from_stored(plain)
            if stage._cut_here(s):
                stage.pending.setdefault(s.source, []).append(s)
            else:  # taken under an earlier release's cut (see add)
                dropped += 1
        now = idle_clock()
        for src, p in data["progress"]:
            stage.progress[int(src)] = -math.inf if p is None else float(p)
            stage.moved[int(src)] = now
        for src, p in data.get("label_progress", []):
            stage.label_progress[int(src)] = -math.inf if p is None else float(p)
            stage.label_moved[int(src)] = now
        stage.last_seq = {int(src): int(seq) for src, seq in data["last_seq"]}
        stage.released_seq = dict(stage.last_seq)  # what waits was kept or is read again: the rest was released
        released = data.get("released_to")
        stage.released_to = -math.inf if released is None else float(released)
        counts = [int(x) for x in data["counts"]] + [0] * 8  # fields later releases added start at 0
        stage.summaries, stage.duplicates, stage.late_rows, stage.forced, stage.rows_released = counts[:5]
        stage.misrouted = counts[5] + dropped
        stage.rows_split, stage.notes = counts[6], counts[7]
        stage.split = {int(src): (int(seq), int(n)) for src, seq, n in data.get("split", [])}
        return stage


def _order(item: tuple[int, Summary]) -> tuple[float, int, int]:
    """The merge's order of a source's next summary: its progress, then the source, then its sequence."""
    src, s = item
    return (s.progress, src, s.seq)
