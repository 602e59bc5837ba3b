"""When each task of a replica checkpoints, and when its profile stages' summaries go: the consume loop's schedule.

A task is an input partition's profile stage or a summaries partition's detection stage. Checkpoints fall due
by ``checkpoint.every_events`` or ``every_s``; a profile stage's waiting summaries go with its checkpoint, on a
tick (every ``detection.live_interval_s``) while the replica is caught up and as each has waited
``detection.summary_interval_s`` while it catches up.
What falls due together is spread over loop iterations within a budget of the loop's time, so that no iteration
holds the loop for every partition's snapshot at once. Plain bookkeeping, kept apart from the consumer and the producer
that act on it (:class:`monitor.io.kafka.MonitorService`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

PROFILE = "profile"  # a task: an input partition's profile stage (predictions and labels partition p)
DETECT = "detect"  # a task: a summaries partition's detection stage
Task = tuple[str, int]

# Checkpoints that fall due together are spread over loop iterations: each iteration takes tasks while the loop
# seconds their last snapshots took (taking the state and encoding it) add up to at most this (at least one task),
# so a checkpoint holds the consume loop for a few snapshots, not all of them. Seconds, not bytes: a profile
# stage's label-join store re-encodes only the chunks that changed, so 7.5 MB took 16 ms at steady state and a
# first 4-6 MB 45-60 ms in the bench's end-to-end run; writing and flushing add about as much again. A task never
# written counts as the whole budget, or, when it sends summaries, as the costliest last snapshot of its kind (a
# third of the budget while none was written: CheckpointSchedule.cost).
DUE_SECONDS_PER_ITERATION = 0.06
# A replica whose input partitions lag by fewer messages than this counts as caught up (live traffic): its profile
# stages then send on one tick. About what one poll takes at the default prefetch (4 MB holds some 8,000
# reference-workload predictions); it was tied to kafka.batch_max_messages while that cap defaulted to 5,000. At
# 18,000 events/s, with the cap at 20,000, a threshold of 5,000 gave alert latencies no worse than one of 20,000
# (mean 0.79/1.14/1.16 s against 0.89/1.12/1.44 s), and a backlog of 5,000-20,000 messages keeps the catch-up
# schedule, whose checkpoints are spread over loop iterations.
CAUGHT_UP_MESSAGES = 5_000


@dataclass
class CheckpointSchedule:
    """Each task's messages and time since its last checkpoint, what its last snapshot cost the loop, and since
    when each input partition's summaries wait; times are ``time.monotonic()``."""

    every_events: int  # checkpoint.every_events
    every_s: float  # checkpoint.every_s
    summary_interval_s: float  # detection.summary_interval_s
    live_interval_s: float | None = None  # detection.live_interval_s (None: summary_interval_s)
    since: dict[Task, int] = field(default_factory=dict)  # messages since the task's last checkpoint
    last: dict[Task, float] = field(default_factory=dict)  # when the task last checkpointed
    cost_s: dict[Task, float] = field(default_factory=dict)  # the loop seconds its last snapshot took
    ticking: set[Task] = field(default_factory=set)  # profile stages of the last tick that have not yet sent
    waiting_since: dict[int, float] = field(default_factory=dict)  # per input partition: its oldest waiting summary
    sent_at: dict[int, float] = field(default_factory=dict)  # per input partition: when it last sent summaries or notes
    moved_at: dict[int, float] = field(default_factory=dict)  # per input partition: when messages of it were processed
    tick_at: float = field(default_factory=time.monotonic)  # the last tick while caught up (the first: one interval in)

    def assign(self, tasks: list[Task], now: float) -> None:
        """Tasks taken on: time-due checkpoints start spread over ``every_s``, not all due one period from now."""
        for i, task in enumerate(tasks):
            self.since.setdefault(task, 0)
            self.last.setdefault(task, now - self.every_s * i / len(tasks))

    def drop(self, task: Task) -> None:
        self.since.pop(task, None)
        self.last.pop(task, None)
        self.cost_s.pop(task, None)
        self.ticking.discard(task)
        if task[0] == PROFILE:
            for per_partition in (self.waiting_since, self.sent_at, self.moved_at):
                per_partition.pop(task[1], None)

    def count(self, task: Task, messages: int) -> None:
        """``messages`` more processed for ``task`` since its last checkpoint."""
        self.since[task] = self.since.get(task, 0) + messages

    def fall_due(self, task: Task) -> None:
        """Something changed without new messages (held summaries released): its checkpoint falls due by time."""
        if not self.since.get(task):
            self.since[task] = 1

    def summaries_waiting(self, partition: int, now: float) -> None:
        self.waiting_since.setdefault(partition, now)

    def summaries_sent(self, partition: int) -> None:
        self.waiting_since.pop(partition, None)

    def notes_due(
        self, partitions: Iterable[int], *, idle_s: float, backlog: bool, input_waiting: Callable[[int], bool],
        now: float,
    ) -> list[int]:  # fmt: skip
        """The input partitions that send a note now (:meth:`monitor.io.kafka.MonitorService.send_notes` says why):
        those that sent nothing for ``summary_interval_s`` and whose summaries wait for their checkpoint (once they
        have sent before: a first send is expected for ``idle_s`` anyway), or that have input waiting while they
        are read (their messages processed within ``idle_s``) or while the replica works off a ``backlog``."""
        due = []
        for p in partitions:
            if now - self.sent_at.get(p, -math.inf) < self.summary_interval_s:
                continue
            if p in self.waiting_since:
                if p not in self.sent_at:
                    continue
            elif not ((backlog or now - self.moved_at.get(p, -math.inf) < idle_s) and input_waiting(p)):
                continue
            due.append(p)
        return due

    def checkpointed(self, task: Task, cost_s: float, now: float) -> None:
        """``task`` checkpointed at ``now``; taking and encoding its snapshot held the loop ``cost_s``."""
        self.since[task] = 0
        self.last[task] = now
        self.cost_s[task] = cost_s
        self.ticking.discard(task)

    def sending_due(self, urgent: Collection[Task], *, caught_up: bool, now: float) -> set[Task]:
        """Profile stages whose summaries go now (with their checkpoints).

        While the replica is caught up (live traffic), summaries go on a tick, every ``live_interval_s`` since
        the last one, and every profile stage with summaries waiting goes on it: a detection stage's watermark is
        its slowest source, so it moves no sooner than the tick's last part, and a tick timed from the oldest
        waiting summary (which comes a poll after the tick) would come a poll later every time. At steady state a
        tick's checkpoints are cheap (the label join re-encodes only its changed chunks) and go in one iteration;
        those that took longer last time (the first after catching up) go over the next iterations, within
        :data:`DUE_SECONDS_PER_ITERATION`, the longest waiting first (a tick that sent 15 MB of first snapshots at
        once held the loop 322 ms).

        While catching up, a partition goes once its oldest waiting summary has waited the interval: the longest
        waiting first, within the same budget with the urgent ones, and always the longest waiting. Partitions
        that started waiting together then checkpoint one after another instead of in one long stall. A tick would
        not do here: a backlog comes a partition at a time, so the clocks drift apart and the tick would checkpoint
        the partitions that just started waiting early, more checkpoints for the same rows (catch-up throughput
        fell by up to a third)."""
        every = self.summary_interval_s
        if caught_up:
            tick = every if self.live_interval_s is None else self.live_interval_s
            if now - self.tick_at >= tick and any((PROFILE, p) not in urgent for p in self.waiting_since):
                self.tick_at = now
                self.ticking = {(PROFILE, p) for p in self.waiting_since}
            self.ticking = {t for t in self.ticking if t[1] in self.waiting_since and t not in urgent}
            ordered = sorted(self.ticking, key=lambda task: self.waiting_since[task[1]])
            chosen = self._within_budget(ordered, urgent, first=True, sending=True) if ordered else set()
            self.ticking -= chosen
            return chosen
        self.ticking.clear()
        due = sorted(
            ((PROFILE, p) for p, t in self.waiting_since.items() if now - t >= every and (PROFILE, p) not in urgent),
            key=lambda task: self.waiting_since[task[1]],
        )
        return self._within_budget(due, urgent, first=True, sending=True) if due else set()

    def due(self, urgent: Collection[Task], now: float) -> set[Task]:
        """The tasks to checkpoint now besides ``urgent`` (checkpointed in this iteration anyway): of those due
        by ``every_events`` or ``every_s``, the most overdue first, while the last checkpoints of these and the
        urgent ones took at most :data:`DUE_SECONDS_PER_ITERATION` together, and the most overdue always when
        nothing is urgent or once it is twice overdue (urgent checkpoints, in every iteration while a replica
        catches up, would otherwise hold it off for good, or go with it over the budget). The others wait for the
        next iterations, so tasks that fall due together are checkpointed one after another instead of in one long
        stall. A task twice overdue (by its messages or its time) goes before those merely overdue."""

        def overdue(t: Task, times: int) -> bool:
            return self.since[t] >= times * self.every_events or now - self.last.get(t, now) >= times * self.every_s

        due = sorted(
            (t for t, n in self.since.items() if n and t not in urgent and overdue(t, 1)),
            key=lambda t: (not overdue(t, 2), self.last.get(t, now)),
        )
        if not due:
            return set()
        return self._within_budget(due, urgent, first=not urgent or overdue(due[0], 2))

    def cost(self, task: Task, *, sending: bool = False) -> float:
        """What ``task``'s checkpoint is expected to hold the loop: its last snapshot's seconds. One never written
        counts as the whole budget, or, when it sends summaries (which detection waits for), as the costliest last
        snapshot of its kind, a third of the budget while none of its kind was written. Counted as nothing, three
        profile stages that caught up together sent their first summaries in one checkpoint (11.7-13 MB, the loop
        held 240-275 ms in the bench's end-to-end run); counted as the whole budget, a replica's first summaries
        went one partition per loop iteration, and detection waited for them."""
        known = self.cost_s.get(task)
        if known is not None:
            return known
        same = [c for (role, _p), c in self.cost_s.items() if role == task[0]] if sending else []
        return max(same) if same else DUE_SECONDS_PER_ITERATION / 3 if sending else DUE_SECONDS_PER_ITERATION

    def _within_budget(
        self, ordered: Iterable[Task], urgent: Collection[Task], *, first: bool, sending: bool = False
    ) -> set[Task]:
        """The first of ``ordered`` whose last checkpoints' costs, with the urgent ones', add up to at most
        :data:`DUE_SECONDS_PER_ITERATION`, and the first whatever its cost if ``first`` (:meth:`cost`)."""
        budget = DUE_SECONDS_PER_ITERATION - sum(self.cost(t, sending=sending) for t in urgent)
        chosen: set[Task] = set()
        for t in ordered:
            cost = self.cost(t, sending=sending)
            if cost > budget + 1e-9 and (chosen or not first):  # (a third of it, three times, fits)
                break
            chosen.add(t)
            budget -= cost
        return chosen


def caught_up(lag: dict[tuple[str, int], int], summaries_topic: str) -> bool:
    """Whether the input partitions' lag, as last seen, adds up to less than :data:`CAUGHT_UP_MESSAGES`."""
    return sum(n for (topic, _partition), n in lag.items() if topic != summaries_topic) < CAUGHT_UP_MESSAGES
