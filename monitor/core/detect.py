"""The detection stage: the summaries of every input partition merged, then one engine over them.

Each model version's summaries go to one detection stage (the summaries topic is keyed by model version),
so each stream's detectors, window tests, Benjamini-Hochberg rounds, alert lifecycle, attribution,
decisions and fairness run once, on all of its traffic, however many input partitions and replicas there
are. Rows are merged in event time behind a watermark: the slowest input partition's progress, leaving out
a partition whose progress has not moved for ``idle_s`` (it neither blocks detection forever nor, while it
moves, lets it reorder). Summaries carry (source partition, sequence number); a repeat is dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from monitor.core.baseline import ProfileSet
from monitor.core.engine import PartitionEngine
from monitor.core.profile import Summary, concat_rows, take_rows
from monitor.core.rules import Alert
from monitor.core.settings import Settings


class DetectionStage:
    """One summaries partition's merge and engine.

    >>> from monitor.core.profile import ProfileStage
    >>> msg = b'{"prediction_id":"%d","model":"m","timestamp":%d,"features":{"x":1.0},"prediction":0.2}'
    >>> a, b = ProfileStage(Settings(), partition=0), ProfileStage(Settings(), partition=1)
    >>> stage = DetectionStage(Settings(), clock=lambda: 0.0, idle_clock=lambda: 0.0)
    >>> _ = [stage.add(s) for s in a.predictions([msg % (1, 10), msg % (2, 30)], [0.0, 0.0])[0]]
    >>> _ = [stage.add(s) for s in b.predictions([msg % (3, 20)], [0.0])[0]]
    >>> _ = stage.release()  # older than partition 1's progress (20): the row at 10
    >>> stage.engine.events_total(), stage.pending_rows()
    (1, 2)
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
    ) -> None:
        """``clock`` stamps alerts (the engine's); ``idle_clock`` times how long a source's progress stood still."""
        self.engine = PartitionEngine(config, partition=partition, partitions=1, clock=clock, profiles=profiles)
        self.partition = partition
        self.idle_s = idle_s
        self.max_pending = max_pending  # rows and joined labels held for the watermark at most (memory bound)
        self.clock = idle_clock
        self.pending: dict[int, list[Summary]] = {}  # per source partition, in arrival order
        self.progress: dict[int, float] = {}  # per source: the newest prediction event time it has reported
        self.label_progress: dict[int, float] = {}  # per source: the newest label event time it has reported
        self.last_seq: dict[int, int] = {}  # per source: the highest sequence number taken (older ones repeat)
        self.moved: dict[int, float] = {}  # per source: clock time its progress last moved (not state)
        self.label_moved: dict[int, float] = {}  # per source: clock time its label progress last moved (not state)
        self.released_to = -math.inf  # the watermark released so far
        self.summaries = 0  # summaries taken
        self.duplicates = 0  # summaries dropped as repeats
        self.late_rows = 0  # rows that arrived behind the watermark already released (released at once)
        self.forced = 0  # releases the pending cap forced ahead of the watermark

    def add(self, summary: Summary) -> bool:
        """Take a summary (False: a repeat of one already taken, dropped)."""
        src = summary.source
        if summary.seq <= self.last_seq.get(src, -1):
            self.duplicates += 1
            return False
        self.last_seq[src] = summary.seq
        self.summaries += 1
        if summary.progress > self.progress.get(src, -math.inf) or src not in self.progress:
            self.progress[src] = summary.progress
            self.moved[src] = self.clock()
        if summary.label_progress > self.label_progress.get(src, -math.inf):
            self.label_progress[src] = summary.label_progress
            self.label_moved[src] = self.clock()
        if len(summary):
            if summary.rows is not None and len(summary.rows):
                self.late_rows += int(np.count_nonzero(summary.rows.event_time < self.released_to))
            self.pending.setdefault(src, []).append(summary)
        return True

    def watermark(self) -> float:
        """Rows older than this can be released: the slowest moving source's progress (+inf when all are idle).
        A source promises no row older than its progress; one as old may still come, so release is strict."""
        return self._mark(self.progress, self.moved)

    def label_watermark(self) -> float:
        """The same for joined labels, by their label time and the sources' label progress (a source whose labels
        stand still for ``idle_s`` no longer holds them back, even while its predictions move)."""
        return self._mark(self.label_progress, self.label_moved)

    def _mark(self, progress: dict[int, float], moved: dict[int, float]) -> float:
        now = self.clock()
        moving = [p for src, p in progress.items() if now - moved.get(src, now) < self.idle_s]
        return min(moving) if moving else math.inf

    def pending_rows(self) -> int:
        return sum(len(s) for parts in self.pending.values() for s in parts)

    def release(self, *, flush: bool = False) -> list[Alert]:
        """Monitor every buffered row and joined label up to the watermark (everything with ``flush``), merged
        in event time (ties: source partition, then sequence)."""
        if not self.pending:
            return []
        mark = math.inf if flush else self.watermark()
        label_mark = math.inf if flush else self.label_watermark()
        held = self.pending_rows()
        if held > self.max_pending and mark < math.inf:
            # A source far behind (or a row stamped far ahead) must not hold memory without bound: release the
            # oldest rows down to the cap, ahead of the watermark.
            times = np.concatenate([_held_times(s) for parts in self.pending.values() for s in parts])
            cut = float(np.partition(times, held - self.max_pending - 1)[held - self.max_pending - 1])
            if cut >= mark:
                mark = label_mark = float(np.nextafter(cut, math.inf))
                self.forced += 1
        out: list[Summary] = []
        for src in sorted(self.pending):
            keep: list[Summary] = []
            for s in self.pending[src]:
                now_part, later = _split(s, mark, label_mark)
                if now_part is not None:
                    out.append(now_part)
                if later is not None:
                    keep.append(later)
            if keep:
                self.pending[src] = keep
            else:
                del self.pending[src]
        if not out:
            return []
        newest = max(float(np.max(_held_times(s), initial=-math.inf)) for s in out)
        self.released_to = max(self.released_to, mark if math.isfinite(mark) else newest)
        parts = [s.rows for s in out if s.rows is not None and len(s.rows)]
        rows = None
        if parts:
            rows = concat_rows(parts)
            order = np.argsort(_times(rows.event_time), kind="stable")
            if (np.diff(order) != 1).any():
                rows = take_rows(rows, order)
        joined = sorted((j for s in out for j in s.joined), key=lambda j: j.prediction.event_time + j.delay_s)
        merged = Summary("", "", -1, -1, mark, None, joined)
        return self.engine.apply([merged], rows=rows) if rows is not None or joined else []

    # --------------------------------------------------------------- snapshots
    def snapshot(self) -> dict[str, Any]:
        """The engine's snapshot, the summaries still waiting for the watermark and the merge's bookkeeping."""
        return {
            "engine": self.engine.snapshot(),
            "pending": [s.to_plain() for parts in self.pending.values() for s in parts],
            "progress": [[src, None if math.isinf(p) else p] for src, p in self.progress.items()],
            "label_progress": [[src, None if math.isinf(p) else p] for src, p in self.label_progress.items()],
            "last_seq": [[src, seq] for src, seq in self.last_seq.items()],
            "released_to": None if math.isinf(self.released_to) else self.released_to,
            "counts": [self.summaries, self.duplicates, self.late_rows, self.forced],
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
    ) -> DetectionStage:
        """A stage that continues where the snapshotted one stopped; every source counts as just moved."""
        engine = PartitionEngine.restore(config, data["engine"], clock=clock, profiles=profiles)
        stage = cls(
            config, partition=engine.partition, idle_s=idle_s, max_pending=max_pending, clock=clock,
            idle_clock=idle_clock, profiles=profiles,
        )  # fmt: skip
        stage.engine = engine
        for plain in data["pending"]:
            s = Summary.from_plain(plain)
            stage.pending.setdefault(s.source, []).append(s)
        now = idle_clock()
        for src, p in data["progress"]:
            stage.progress[int(src)] = -math.inf if p is None else float(p)
            stage.moved[int(src)] = now
        for src, p in data.get("label_progress", []):
            stage.label_progress[int(src)] = -math.inf if p is None else float(p)
            stage.label_moved[int(src)] = now
        stage.last_seq = {int(src): int(seq) for src, seq in data["last_seq"]}
        released = data.get("released_to")
        stage.released_to = -math.inf if released is None else float(released)
        counts = [int(x) for x in data["counts"]] + [0]
        stage.summaries, stage.duplicates, stage.late_rows, stage.forced = counts[:4]
        return stage


def _held_times(s: Summary) -> np.ndarray:
    """The event times a summary's rows and joined labels wait for (a missing time: at once)."""
    rows = _times(s.rows.event_time) if s.rows is not None and len(s.rows) else np.zeros(0)
    joined = np.array([j.prediction.event_time + j.delay_s for j in s.joined], dtype=np.float64)
    return np.concatenate([rows, _times(joined)]) if joined.size else rows


def _times(t: np.ndarray) -> np.ndarray:
    """Event times with a missing one first (NaN sorts last otherwise)."""
    return np.where(np.isnan(t), -math.inf, t)


def _split(s: Summary, mark: float, label_mark: float) -> tuple[Summary | None, Summary | None]:
    """The part of a summary older than the marks (rows by ``mark``, joined labels by ``label_mark``), and the
    rest."""
    rows_now = rows_later = None
    if s.rows is not None and len(s.rows):
        at = _times(s.rows.event_time) < mark
        if at.all():
            rows_now = s.rows
        elif not at.any():
            rows_later = s.rows
        else:
            rows_now, rows_later = take_rows(s.rows, np.flatnonzero(at)), take_rows(s.rows, np.flatnonzero(~at))
    joined_now = [j for j in s.joined if j.prediction.event_time + j.delay_s < label_mark]
    joined_later = [j for j in s.joined if not j.prediction.event_time + j.delay_s < label_mark]
    now = Summary(s.model, s.version, s.source, s.seq, s.progress, rows_now, joined_now, s.label_progress)
    later = Summary(s.model, s.version, s.source, s.seq, s.progress, rows_later, joined_later, s.label_progress)
    return (now if len(now) else None), (later if len(later) else None)
