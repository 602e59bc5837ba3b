"""Drift judging: which drift streams are judged, when, and their judgements on to the alert desk.

Two things end in a drift judgement: a batch that moved a model version's trackers, and a closed
false-discovery round that decided window tests. Either way only streams with something to judge are
judged (:func:`~monitor.core.judgements.needs_judging`), all traffic's stream beside any segment's so
that attribution sees one change once, and the subject's drifting flag follows the verdicts. What a
stream's evidence means is :mod:`monitor.core.judgements`'; lifecycle and attribution are
:class:`~monitor.core.alerting.Alerting`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from monitor.core.alerting import Alerting, AlertLifecycle
from monitor.core.columns import Bucket
from monitor.core.judgements import drift_key, judge_drift, needs_judging
from monitor.core.local_change import local_change
from monitor.core.messages import shown
from monitor.core.model_state import PREDICTION, ModelState, Tracker, recent_share
from monitor.core.numeric_streams import NumericStream, NumericStreams
from monitor.core.rules import ALL, Alert, Judgement
from monitor.core.settings import Settings
from monitor.core.significance import WindowResult
from monitor.core.stats import OVERFLOW

StreamToJudge = tuple[tuple[str, str], Tracker, float]  # (bucket, its tracker, the time it is judged at)
MAX_ROUNDS = 8  # judgements of one numeric subject in one batch (each a move of some stream's alert)


def _moment(lifecycle: AlertLifecycle, key: str) -> tuple[bool, float | None]:
    """Where a key's lifecycle stands: open or not, and since when its clear period runs."""
    incident = lifecycle.open.get(key)
    return (incident is not None, None if incident is None else incident.clear_since)


class DriftJudging:
    """Judges a partition's drift streams and hands the judgements to ``alerting``."""

    def __init__(self, config: Settings, alerting: Alerting) -> None:
        self.config = config
        self.alerting = alerting
        self._keys: dict[tuple[str, str, str, str, str], str] = {}  # derived from names, not state
        # The latest event time at which this batch moved each alert key's lifecycle (opened it, started or
        # stopped its clearing, resolved it); not state: see begin_batch
        self.moved_at: dict[str, float] = {}

    def begin_batch(self) -> None:
        """A new batch: its judgements come after every earlier batch's in event time."""
        self.moved_at.clear()

    def forget(self, model: str, version: str) -> None:
        """A retired model version's cached keys go with it."""
        self._keys = {k: v for k, v in self._keys.items() if k[:2] != (model, version)}

    def key(self, state: ModelState, name: str, bucket: tuple[str, str]) -> str:
        """A drift stream's alert key, built once per stream (derived, never snapshotted)."""
        cache_key = (state.model, state.version, name, *bucket)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = drift_key(state.model, state.version, name, bucket)
        return key

    def needs_judging(self, state: ModelState, name: str, bucket: tuple[str, str], tracker: Tracker) -> bool:
        """Whether a stream has something to judge (see :func:`~monitor.core.judgements.needs_judging`)."""
        key = self.key(state, name, bucket)
        return needs_judging(state, name, bucket, tracker, key, self.alerting.lifecycle.is_firing)

    def numeric_to_judge(
        self, state: ModelState, name: str, block: NumericStreams, ids: np.ndarray, buckets: list[Bucket]
    ) -> list[int]:
        """The places in ``buckets`` of a numeric subject's streams (``ids`` in ``block``, -1: none) that
        :meth:`needs_judging`, read from the table's lists in one pass rather than one stream object each."""
        detected = block.detectors.last_detector
        met = block.detectors.size
        last = block.windows.last if block.windows is not None else None
        open_ = self.alerting.lifecycle.open
        out = []
        for k, i in enumerate(ids.tolist()):
            if i < 0:
                continue
            if (i < met and detected[i]) or (last is not None and (r := last[i]) is not None and r.significant):
                out.append(k)
            elif open_ and self.key(state, name, buckets[k][0]) in open_:
                out.append(k)
        return out

    def decide_numeric(
        self, state: ModelState, name: str, block: NumericStreams, streams: list[tuple[tuple[str, str], int, float]],
        overall: tuple[tuple[str, str], int, float] | None,
    ) -> list[Alert]:  # fmt: skip
        """Judge a numeric subject's streams of this batch (bucket, stream in ``block``, the batch's time for it)
        at the chunks where their alerts' lifecycles move (:meth:`numeric_stream`), all traffic's (``overall``)
        beside them for attribution. A stream whose lifecycle moved before its last chunk (an alert that opened
        and began to clear in one batch) is judged again from the next chunk, so each move keeps its own chunk,
        as in smaller batches. No stream is judged again at a chunk before the one it was last judged at (all
        traffic's, judged again beside a segment, had started to clear at a chunk before the one that opened
        its alert, and resolved before it fired)."""
        if streams and overall is not None and all(b != ALL for b, _, _ in streams):
            streams = [*streams, overall]
        lifecycle = self.alerting.lifecycle
        start: dict[tuple[str, str], int] = {}
        alerts: list[Alert] = []
        for _ in range(MAX_ROUNDS):
            touched, places = [], {}
            for bucket, i, now in streams:
                entry, places[bucket] = self.numeric_stream(state, name, bucket, block, i, now, start.get(bucket, 0))
                touched.append(entry)
            keys = {b: self.key(state, name, b) for b, _, _ in streams}
            before = {b: _moment(lifecycle, key) for b, key in keys.items()}
            alerts += self.decide(state, name, touched)
            moved = {b for b in keys if _moment(lifecycle, keys[b]) != before[b]}
            again = [
                (b, i, now) for b, i, now in streams if (at := places[b]) is not None and at[0] < at[1] and b in moved
            ]
            if not again:
                break
            for b, at in places.items():  # the next judgement from the next chunk if it moved, else from this one
                if at is not None:
                    start[b] = at[0] + (b in moved)
            streams = again
            if overall is not None and all(b != ALL for b, _, _ in streams):
                streams.append(overall)
        return alerts

    def numeric_stream(
        self, state: ModelState, name: str, bucket: tuple[str, str], block: NumericStreams, i: int, now: float,
        start: int = 0,
    ) -> tuple[StreamToJudge, tuple[int, int] | None]:  # fmt: skip
        """A numeric stream of this batch, judged at the first of its complete chunks from ``start`` on where its
        alert's lifecycle would move (open, start or stop clearing, resolve), else at its last one, at that
        chunk's time (:mod:`monitor.core.evidence_points`). A stream that completed none (or none from
        ``start``) is judged where its last complete chunk left it, whose time the lifecycle has seen already
        (``now`` if not known): the lifecycle moves at chunks, not at a batch's end. Also: (the chunk judged,
        the last) among this batch's chunks, or None."""
        found = block.chunks_of(i)
        if found is None or found[1].start + start >= found[1].stop:
            last = block.chunk_time(i)
            return (bucket, NumericStream(block, i), now if math.isnan(last) else last), None
        trail, chunks = found
        where = slice(chunks.start + start, chunks.stop)
        k = self.alerting.lifecycle.first_change(
            self.key(state, name, bucket), trail.fire[where], trail.clear[where], trail.time[where], trail.seq[where]
        )
        at = where.stop - 1 if k is None else where.start + k
        if k is None and bucket != ALL:
            at = trail.still_waiting(where, at)
        point = trail.point(at)
        when = now if math.isnan(point.time) else point.time  # (event times are never NaN once decoded)
        return (bucket, NumericStream(block, i, point), when), (at - chunks.start, chunks.stop - 1 - chunks.start)

    def decide(
        self, state: ModelState, name: str, touched: list[StreamToJudge], *, in_batch: bool = True
    ) -> list[Alert]:
        """Judge a subject's touched streams, set its drifting flag from them, and emit their transitions.
        ``in_batch``: the streams are the ones the batch held (not a window-test round's)."""
        if state.local_alerts:  # the local path's alerts still open (see _local_categorical)
            firing = self.alerting.lifecycle.is_firing
            state.local_alerts = {k for k in state.local_alerts if k[0] != name or firing(self.key(state, name, k[1:]))}
        if not touched:
            return []  # nothing judged: the subject's drifting flag stays as its last judgement left it
        waiting = self._waiting(state, name, touched)
        judged = [
            judge_drift(state, name, bucket, tracker, now, self.key(state, name, bucket), self.config)
            for bucket, tracker, now in touched + waiting
        ]
        judged = self._local_categorical(state, name, judged)
        for j in judged:
            if j.bucket != ALL:
                j.extra["share"] = recent_share(state, j.bucket)
        judged = self._note_pending(state, name, judged, len(touched) if in_batch else 0)
        subject = "prediction" if name == PREDICTION else name
        if any(j.fire for j in judged):
            state.drifting.add(subject)
        elif all(j.clear for j in judged):
            state.drifting.discard(subject)
        lifecycle = self.alerting.lifecycle
        before = [_moment(lifecycle, j.key) for j in judged]
        alerts = self.alerting.emit(state.model, state.version, judged)
        for j, was in zip(judged, before, strict=True):
            if _moment(lifecycle, j.key) != was and j.now > self.moved_at.get(j.key, -math.inf):
                self.moved_at[j.key] = j.now
        return alerts

    def decide_round(
        self, decided: list[tuple[Any, WindowResult]], times: Sequence[float] = (), rounds: Sequence[int] = (), *,
        models: dict[tuple[str, str], ModelState],
    ) -> list[Alert]:  # fmt: skip
        """Closed Benjamini-Hochberg rounds: each stream's latest decided window of a round goes to its judgement,
        judged at ``times`` (each window's round's last event time; NaN or none given: its model's last event),
        round after round (``rounds``: each window's round; none given: one round), so that a batch which
        closed several rounds judges what batches closing one each would have."""
        at = list(times) or [math.nan] * len(decided)
        numbers = list(rounds) or [0] * len(decided)
        alerts: list[Alert] = []
        start = 0
        for end in range(1, len(decided) + 1):
            if end == len(decided) or numbers[end] != numbers[start]:
                alerts += self._decide_one_round(decided[start:end], at[start:end], models)
                start = end
        return alerts

    def _decide_one_round(
        self, decided: list[tuple[Any, WindowResult]], at: list[float], models: dict[tuple[str, str], ModelState]
    ) -> list[Alert]:
        touched: dict[tuple[str, str, str], list[StreamToJudge]] = {}
        for ((model, version, name, attr, value), result), when in zip(decided, at, strict=True):
            state = models.get((model, version))
            if state is None:
                continue
            place = state.numeric_place((name, attr, value))
            tracker: Tracker | None
            if place is not None:  # most of a round: its table's arrays read and written in place
                tracker = self._numeric_round(state, name, (attr, value), *place, result)
            else:
                test = state.tests.get((name, attr, value))
                tracker = state.streams.get((name, attr, value))
                if test is None or tracker is None:
                    continue
                test.pending = max(0, test.pending - result.windows)
                if test.last is None or result.seq >= test.last.seq:
                    test.last = result
                if not self.needs_judging(state, name, (attr, value), tracker):
                    tracker = None
            if tracker is not None:
                now = self._not_before_moved(
                    state, name, (attr, value), state.last_event_time if math.isnan(when) else when
                )
                touched.setdefault((model, version, name), []).append(((attr, value), tracker, now))
        alerts: list[Alert] = []
        for (model, version, name), streams in touched.items():
            state = models[model, version]
            overall = state.tracker((name, *ALL))
            if overall is not None and all(b != ALL for b, _, _ in streams):
                now = self._not_before_moved(state, name, ALL, max(t for _, _, t in streams))
                streams.append((ALL, overall, now))  # attribution needs all traffic's view
            alerts += self.decide(state, name, streams, in_batch=False)
        return alerts

    def _numeric_round(
        self, state: ModelState, name: str, bucket: tuple[str, str], block: NumericStreams, i: int,
        result: WindowResult,
    ) -> NumericStream | None:  # fmt: skip
        """A numeric stream's decided window of a round: its test's pending count and latest verdict, as
        :class:`~monitor.core.windows.NumericWindow` would set them; the stream when it :meth:`needs_judging`
        (read from its table's arrays, as :meth:`numeric_to_judge` reads them: a round decides every stream whose
        window closed, and most have nothing to judge), else None."""
        windows = block.windows
        if windows is None:
            return None
        windows.pending[i] = max(0, int(windows.pending[i]) - result.windows)
        last = windows.last[i]
        if last is None or result.seq >= last.seq:
            windows.last[i] = last = result
        detectors = block.detectors
        if (
            (i < detectors.size and detectors.last_detector[i])
            or last.significant
            or (self.alerting.lifecycle.open and self.alerting.lifecycle.is_firing(self.key(state, name, bucket)))
        ):
            return NumericStream(block, i)
        return None

    def _not_before_moved(self, state: ModelState, name: str, bucket: tuple[str, str], now: float) -> float:
        """``now``, or the later time at which this batch moved the stream's alert already: a round judged at
        its earlier last event must not take a key's lifecycle back in time."""
        return max(now, self.moved_at.get(self.key(state, name, bucket), -math.inf))

    def _local_categorical(self, state: ModelState, name: str, judged: list[Judgement]) -> list[Judgement]:
        """All traffic fires on a categorical window that one segment's rows account for
        (:func:`~monitor.core.local_change.local_change`): that segment is judged on its rows there, unless its
        own window fires with a larger shift, and its judgement says it explains all traffic's
        (``extra["explains_all"]``, which attribution follows). When the segments whose alerts this opened, and
        that are still open, account for it, all traffic's judgement says so (``extra["explained_by_open"]``);
        segments that fired on their own windows do not count so (a change everywhere fires some of them too).
        Not once all traffic's own alert is open: that alert has the change already."""
        firing = self.alerting.lifecycle.is_firing
        whole = next((j for j in judged if j.bucket == ALL), None)
        tracker = state.streams.get((name, *ALL))
        if whole is None or not whole.fire or tracker is None or firing(whole.key):
            return judged  # (all traffic's alert open already: it has this change, and a second page would repeat it)
        labels = shown(state.vocab[name].labels())
        for attr in state.segment_attributes:
            breakdown = state.breakdowns.get((name, attr))
            if breakdown is None:
                continue
            values = {c: v for v, c in state.segment_codes[attr].items()}
            streams, settled = {}, set()
            for code in range(breakdown.open.shape[0]):
                bucket = (attr, values.get(code, OVERFLOW))
                segment = state.streams.get((name, *bucket))
                if segment is not None:
                    streams[code] = segment
                    if (name, *bucket) in state.local_alerts:  # (open: see above)
                        settled.add(code)
            found = local_change(
                tracker, breakdown, streams, labels, alpha=tracker.settings.categorical_alpha,
                min_distance=self.config.alerts.min_distance, ratio=self.config.alerts.explain_ratio,
                settled=frozenset(settled),
            )  # fmt: skip
            if found is None:
                continue
            which, evidence = found
            if which is None or evidence is None:  # the open segments' changes account for all traffic's
                return [replace(j, extra={**j.extra, "explained_by_open": True}) if j is whole else j for j in judged]
            bucket = (attr, values.get(which, OVERFLOW))
            key = self.key(state, name, bucket)
            local = judge_drift(state, name, bucket, streams[which], whole.now, key, self.config, evidence=evidence)
            own = next((j for j in judged if j.bucket == bucket), None)
            if own is not None and own.fire and own.shift >= local.shift:
                local = own  # its own window has the change as clearly
            local = replace(local, extra={**local.extra, "explains_all": True})
            if not firing(key):  # (one open on its own window was not opened by this)
                state.local_alerts.add((name, *bucket))
            return [j for j in judged if j.bucket != bucket] + [local]
        return judged

    def _waiting(self, state: ModelState, name: str, touched: list[StreamToJudge]) -> list[StreamToJudge]:
        """Segments of the subject with an unconfirmed change that ``touched`` leaves out (a batch without their
        rows, a round without their windows): attribution must see them beside all traffic. A segment stops
        counting once all traffic has had 50 times the events between two of its own since a batch last held
        it (its traffic stopped), so a wait cannot outlast it."""
        pending = state.pending_drift
        if not pending:
            return []
        whole = state.tracker((name, *ALL))
        if whole is None:
            return []
        judged = {b for b, _, _ in touched}
        now = next((t for b, _, t in touched if b == ALL), state.last_event_time)
        out: list[StreamToJudge] = []
        for key, (seen, _) in list(pending.items()):
            bucket = (key[1], key[2])
            if key[0] != name or bucket in judged:
                continue
            tracker = state.tracker(key)
            if tracker is None or not tracker.count or whole.count - seen > 50 * whole.count / tracker.count:
                del pending[key]
                continue
            out.append((bucket, tracker, now))
        return out

    @staticmethod
    def _note_pending(state: ModelState, name: str, judged: list[Judgement], in_batch: int) -> list[Judgement]:
        """Remember the subject's segments whose judgement is an unconfirmed change, forget the others; the
        first ``in_batch`` judgements come from a batch that held their streams, which dates them. A segment
        waiting when its detector places a new change point (nothing since it yet) goes on waiting with the
        shift it had: the judgements, with such ones marked so."""
        pending = state.pending_drift
        whole = state.tracker((name, *ALL))
        count = 0 if whole is None else int(whole.count)
        out = []
        for k, j in enumerate(judged):
            key = (name, *j.bucket)
            if j.bucket != ALL and key in pending and not j.fire and j.evidence.detected and j.evidence.events == 0:
                j = replace(j, shift=pending[key][1], extra={**j.extra, "pending": True})
            out.append(j)
            if j.bucket == ALL:
                continue
            if not j.extra.get("pending") or j.fire:
                pending.pop(key, None)
            else:  # dated by all traffic's count when a batch held it so
                pending[key] = (count if k < in_batch or key not in pending else pending[key][0], j.shift)
        return out
