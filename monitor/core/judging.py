"""Drift judging: which drift streams are judged, when, and their judgements on to the alert desk.

Two things end in a drift judgement: a batch that moved a model version's trackers, and a closed
false-discovery round that decided window tests. Either way only streams with something to judge are
judged (:func:`~monitor.core.judgements.needs_judging`), all traffic's stream beside any segment's so
that attribution sees one change once, and the subject's drifting flag follows the verdicts. What a
stream's evidence means is :mod:`monitor.core.judgements`'; lifecycle and attribution are
:class:`~monitor.core.alerting.Alerting`'s.
"""

from __future__ import annotations

from typing import Any

from monitor.core.alerting import Alerting
from monitor.core.judgements import drift_key, judge_drift, needs_judging
from monitor.core.model_state import PREDICTION, ModelState, Tracker
from monitor.core.rules import ALL, Alert
from monitor.core.settings import Settings
from monitor.core.significance import WindowResult

StreamToJudge = tuple[tuple[str, str], Tracker, float]  # (bucket, its tracker, the time it is judged at)


class DriftJudging:
    """Judges a partition's drift streams and hands the judgements to ``alerting``."""

    def __init__(self, config: Settings, alerting: Alerting) -> None:
        self.config = config
        self.alerting = alerting
        self._keys: dict[tuple[str, str, str, str, str], str] = {}  # derived from names, not state

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

    def decide(self, state: ModelState, name: str, touched: list[StreamToJudge]) -> list[Alert]:
        """Judge a subject's touched streams, set its drifting flag from them, and emit their transitions."""
        if not touched:
            return []  # nothing judged: the subject's drifting flag stays as its last judgement left it
        judged = [
            judge_drift(state, name, bucket, tracker, now, self.key(state, name, bucket), self.config)
            for bucket, tracker, now in touched
        ]
        subject = "prediction" if name == PREDICTION else name
        if any(j.fire for j in judged):
            state.drifting.add(subject)
        elif all(j.clear for j in judged):
            state.drifting.discard(subject)
        return self.alerting.emit(state.model, state.version, judged)

    def decide_round(
        self, decided: list[tuple[Any, WindowResult]], models: dict[tuple[str, str], ModelState]
    ) -> list[Alert]:
        """A closed Benjamini-Hochberg round: each stream's latest decided window goes to its judgement."""
        if not decided:
            return []
        touched: dict[tuple[str, str, str], list[StreamToJudge]] = {}
        for (model, version, name, attr, value), result in decided:
            state = models.get((model, version))
            if state is None:
                continue
            test = state.window_test((name, attr, value))
            tracker = state.tracker((name, attr, value))
            if test is None or tracker is None:
                continue
            test.pending = max(0, test.pending - 1)
            if test.last is None or result.seq >= test.last.seq:
                test.last = result
            if self.needs_judging(state, name, (attr, value), tracker):
                touched.setdefault((model, version, name), []).append(((attr, value), tracker, state.last_event_time))
        alerts: list[Alert] = []
        for (model, version, name), streams in touched.items():
            state = models[model, version]
            overall = state.tracker((name, *ALL))
            if overall is not None and all(b != ALL for b, _, _ in streams):
                streams.append((ALL, overall, state.last_event_time))  # attribution needs all traffic's view
            if any(_discovered(state, name, b) for b, _, _ in streams):  # what may fire: its attribution
                streams += self._segments_to_judge(state, name, streams)
            alerts += self.decide(state, name, streams)
        return alerts

    def _segments_to_judge(self, state: ModelState, name: str, streams: list[StreamToJudge]) -> list[StreamToJudge]:
        """A feature's segments with something to judge that the round did not decide: the verdicts it did
        decide are attributed with them in view (a segment may have found a larger change it cannot confirm
        yet, :func:`~monitor.core.alerting.pending_local_change`)."""
        judged = {b for b, _, _ in streams}
        extra: list[StreamToJudge] = []
        for attr, values in state.segment_codes.items():
            for value in values:
                bucket = (attr, value)
                tracker = state.tracker((name, attr, value))
                if bucket not in judged and tracker is not None and self.needs_judging(state, name, bucket, tracker):
                    extra.append((bucket, tracker, state.last_event_time))
        return extra


def _discovered(state: ModelState, name: str, bucket: tuple[str, str]) -> bool:
    """A stream's latest window verdict is a discovery."""
    test = state.window_test((name, *bucket))
    return test is not None and test.last is not None and bool(test.last.significant)
