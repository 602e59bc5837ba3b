"""Alert lifecycle, attribution and ownership: a batch's judgements in, alert transitions out.

Between a judge's verdict and an alert event stand three questions, answered here in this order:

1. **Attribution** (one change, one alert). When buckets of one (kind, subject) fire for the same change,
   only the bucket that explains the others alerts (:func:`explained_buckets`). Two rules need memory:
   a segment that fires while all traffic's incident of the same change is open (or cooling down) is
   covered by it unless its shift is ``explain_ratio`` times larger, and all traffic's drift or concept
   alert waits while a segment has found a larger change it cannot confirm yet (:func:`pending_local_change`).
2. **Ownership**. Every partition judges every stream on its share of the traffic, but exactly one
   partition, chosen by a stable hash of the key, runs a key's lifecycle (:func:`owns`).
3. **Lifecycle**. Each stable key fires when its condition holds; while it is firing, further detections
   are folded into the same incident; it resolves once the clear condition has held for
   ``resolve_after_s`` seconds *and* for ``resolve_after_events`` of the stream's events, and it cannot
   fire again for ``cooldown_s`` seconds and ``cooldown_events`` events after that (hysteresis and
   cooldown; counting events too keeps a slow stream, one event every few minutes, from flapping). Times
   are event times, so a replay of the same input produces the same transitions. A new incident always
   gets a new id, even when its detector reports the same change point as the last one.

Which alerts are one page (incidents, and the rules that join one change's alerts) is
:mod:`monitor.core.incidents`; the desk assigns each transition its incident. A labelled problem (concept
drift, a performance alert, a retrain recommendation resting on labels) that an input's break explains
(:func:`~monitor.core.incidents.broken_input`) joins the break's incident and asks to check the input while
the break is open (a retrain recommendation waits), and pages nothing once the break is fixed: the desk
remembers fixed breaks (``break_spans``) for that.

The vocabulary these share with the judges (:class:`~monitor.core.rules.Judgement`, keys, ids, the alert
event) stays in :mod:`monitor.core.rules`, so a judge never needs this module.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from monitor.core.incidents import (
    BREAK_KINDS,
    DAMAGING_CHECKS,
    LABEL_KINDS,
    Incidents,
    broken_input,
    incident_facet,
    same_change,
)
from monitor.core.messages import alert_message, retired_message
from monitor.core.rules import ALL, Alert, Judgement, alert_id, iso, parse_key, segment_label, version_scope

# Model versions whose retirements the desk remembers (the least recently retired go first), so that one that
# comes back gets new alert ids: about 100 bytes each.
RETIRED_VERSIONS = 100_000
# Detectors whose evidence is a window of values, dated by its first row: the window tests' statistics and the
# sequential categorical test's windows (chi2)
WINDOW_DETECTORS = ("chi2", "ks", "psi", "js")
# Resolved input breaks the desk remembers (Alerting.break_spans; the oldest go first): about 150 bytes each
BREAK_SPANS = 1_000
DRIFT_KINDS = ("data_drift", "prediction_drift")  # input and prediction drift: their segments wait for all traffic
# Kinds whose open alerts explain later ones of the same change: a local change's segment alert explains all
# traffic's and other attributes' (diluted) alerts that fire after it (labels come in batches of any size, so
# a segment's concept drift is often alerted before all traffic's test on the same change completes)
LOCAL_KINDS = (*DRIFT_KINDS, "concept_drift")
# A local change moves all traffic's mean by the segment's share of its own shift; this much more (sampling
# noise, a change point placed apart) still reads as that change diluted.
DILUTION_SLACK = 2.0
# What each kind of firing alert recommends; every other kind asks to investigate.
RECOMMENDATIONS = {"concept_drift": "retrain", "retrain_recommended": "retrain", "rollback_recommended": "rollback"}


@dataclass
class Incident:
    """State of one key: what is open, since when (time and stream position) the condition has been clear."""

    alert_id: str
    started_at: float
    clear_since: float | None = None
    detected_at: float = float("nan")
    clear_since_position: int | None = None
    # what the alert is about, for a resolution that no judgement brings (:meth:`Alerting.retire`); empty in
    # a snapshot of an older release, where the key tells it instead
    kind: str = ""
    subject: str = ""
    segment: dict[str, str] | None = None  # (not a default factory: a restored older Incident takes this one)
    detector: str = ""  # what fired it (a quality check resolves under the same name); empty in older snapshots
    share: float = 0.0  # a segment's share of the recent traffic when it fired (0: all traffic, or unknown)


@dataclass
class Transition:
    """What the lifecycle decided for one key on one evaluation."""

    status: Literal["firing", "resolved"]
    alert_id: str
    started_at: float
    detected_at: float = float("nan")
    incident_id: str | None = None
    broken_input: tuple[str, str] | None = None  # (field, check) of an open break that explains a labelled problem


@dataclass
class AlertLifecycle:
    """Firing / resolved state per key with hysteresis and cooldown.

    >>> lc = AlertLifecycle(resolve_after_s=10, cooldown_s=100)
    >>> lc.evaluate("k", fire=True, clear=False, now=0.0, incident_seq=7).status
    'firing'
    >>> lc.evaluate("k", fire=True, clear=False, now=1.0, incident_seq=9) is None   # same incident
    True
    >>> lc.evaluate("k", fire=False, clear=True, now=2.0, incident_seq=9) is None   # clear, not for long
    True
    >>> lc.evaluate("k", fire=False, clear=True, now=12.0, incident_seq=9).status
    'resolved'
    >>> lc.evaluate("k", fire=True, clear=False, now=50.0, incident_seq=11) is None  # cooling down
    True
    """

    resolve_after_s: float = 60.0
    cooldown_s: float = 300.0
    open: dict[str, Incident] = field(default_factory=dict)
    cooldown_until: dict[str, float] = field(default_factory=dict)
    resolve_after_events: int = 0
    cooldown_events: int = 0
    cooldown_until_position: dict[str, int] = field(default_factory=dict)
    last_start: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (incident_seq, repeats)
    resolved_at: dict[str, float] = field(default_factory=dict)  # key -> when its latest incident resolved

    def evaluate(
        self,
        key: str,
        *,
        fire: bool,
        clear: bool,
        now: float,
        incident_seq: int,
        started_at: float | None = None,
        position: int | None = None,
        life: int = 0,
    ) -> Transition | None:
        """Advance one key; ``started_at`` (default ``now``) is when the change began, ``position`` the
        stream's event count (None: the timers count seconds only), ``life`` how many times the key's model
        version was retired (:func:`~monitor.core.rules.alert_id`)."""
        incident = self.open.get(key)
        if incident is None:
            cooling = now < self.cooldown_until.get(key, float("-inf")) or (
                position is not None and position < self.cooldown_until_position.get(key, -1)
            )
            if fire and not cooling:
                began = now if started_at is None or started_at != started_at else started_at
                seq, repeats = self.last_start.get(key, (None, -1))
                repeat = repeats + 1 if seq == incident_seq else 0
                self.last_start[key] = (incident_seq, repeat)
                incident = self.open[key] = Incident(alert_id(key, incident_seq, repeat, life), began, detected_at=now)
                return Transition("firing", incident.alert_id, incident.started_at, now)
            return None
        if not clear:
            incident.clear_since = None
            incident.clear_since_position = None
            return None
        if incident.clear_since is None:
            incident.clear_since = now
            incident.clear_since_position = position
        held = incident.clear_since_position
        events_ok = position is None or held is None or position - held >= self.resolve_after_events
        if now - incident.clear_since >= self.resolve_after_s and events_ok:
            del self.open[key]
            self.cooldown_until[key] = now + self.cooldown_s
            self.resolved_at[key] = now
            if position is not None:
                self.cooldown_until_position[key] = position + self.cooldown_events
            return Transition("resolved", incident.alert_id, incident.started_at, incident.detected_at)
        return None

    def first_change(
        self, key: str, fire: np.ndarray, clear: np.ndarray, times: np.ndarray, positions: np.ndarray
    ) -> int | None:
        """The first of a run of evaluations (one per entry, in order) at which :meth:`evaluate` would move the
        key: open it, start its clear period, end that period, or resolve it; None if none would. A stream that
        can be judged at several points of one batch is judged at this one, so the batch does not choose when
        its alert moves."""
        incident = self.open.get(key)
        if incident is None:
            moves = fire & (times >= self.cooldown_until.get(key, -math.inf))
            moves &= positions >= self.cooldown_until_position.get(key, -1)
        elif incident.clear_since is None:
            moves = clear
        else:
            due = times - incident.clear_since >= self.resolve_after_s
            held = incident.clear_since_position
            if held is not None:
                due &= positions - held >= self.resolve_after_events
            moves = ~clear | due
        found = np.flatnonzero(moves)
        return int(found[0]) if found.size else None

    def is_firing(self, key: str) -> bool:
        return key in self.open

    def opened_by(self, key: str) -> str | None:
        """The detector that opened the key's alert ("" when a snapshot did not say), None when it is not open."""
        incident = self.open.get(key)
        return None if incident is None else incident.detector

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": {k: asdict(v) for k, v in self.open.items()},
            "cooldown_until": dict(self.cooldown_until),
            "cooldown_until_position": dict(self.cooldown_until_position),
            "last_start": {k: list(v) for k, v in self.last_start.items()},
            "resolved_at": dict(self.resolved_at),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.open = {k: Incident(**v) for k, v in data["open"].items()}
        self.cooldown_until = dict(data["cooldown_until"])
        self.cooldown_until_position = dict(data.get("cooldown_until_position", {}))
        self.last_start = {k: (int(v[0]), int(v[1])) for k, v in data.get("last_start", {}).items()}
        self.resolved_at = {k: float(v) for k, v in data.get("resolved_at", {}).items()}


def explained_buckets(judged: list[Judgement], ratio: float) -> set[tuple[str, str]]:
    """Buckets whose change is a spill-over of another bucket's, so one change gives one alert.

    All traffic wins when its shift is as large as any segment's (the change is everywhere); a
    segment wins over all traffic and over segments of *other* attributes when its shift is ``ratio``
    times theirs (the change is local and only diluted elsewhere). Segments of the same attribute never
    explain each other: two countries can change independently.
    """
    firing = [j for j in judged if j.fire]
    if len(firing) < 2:
        return set()
    explained: set[tuple[str, str]] = set()
    overall = next((j for j in firing if j.bucket == ALL), None)
    if overall is not None and any(j.shift >= ratio * overall.shift for j in firing if j.bucket != ALL):
        explained.add(ALL)
    for j in firing:
        if j.bucket == ALL:
            continue
        if overall is not None and ALL not in explained:
            explained.add(j.bucket)
        elif any(o.bucket != ALL and o.bucket[0] != j.bucket[0] and o.shift >= ratio * j.shift for o in firing):
            explained.add(j.bucket)
    return explained


def pending_local_change(judged: Judgement, group: list[Judgement], ratio: float) -> bool:
    """A segment found a change ``ratio`` times as large as ``judged``'s (all traffic's, or a segment's of
    another attribute) but has not had the events (or labels) its test needs yet: the change is local and
    only diluted in ``judged``, so that waits for the segment's alert (which then explains it) instead of
    paging first. A segment only has a share of the traffic, so its test completes later than all traffic's
    on the same change. The wait is bounded: once the segment has had its test's events without firing, it
    no longer holds the others back. Not a local change, so no wait: one that other segments of the same
    attribute show too (firing or unconfirmed), or one that does not account for ``judged``'s shift (a
    segment's change moves all traffic by about the segment's share of it: every region moved, one more).
    """
    attribute = None if judged.bucket == ALL else judged.bucket[0]
    whole = next((j for j in group if j.bucket == ALL), None)
    return any(
        j.bucket != ALL
        and j.bucket[0] != attribute
        and not j.fire
        and unconfirmed(j)
        and j.shift >= ratio * judged.shift
        and (whole is None or judged.shift <= DILUTION_SLACK * _share(j, whole) * j.shift)
        and not any(o.bucket[0] == j.bucket[0] and o.bucket != j.bucket and (o.fire or unconfirmed(o)) for o in group)
        for j in group
    )


def _share(segment: Judgement, whole: Judgement) -> float:
    """A segment's share of the recent traffic (``extra["share"]``, :func:`~monitor.core.model_state.recent_share`),
    else of all of it from the streams' counts (1 when neither is known)."""
    recent = segment.extra.get("share")
    if recent is not None:
        return float(recent)
    if not segment.position or not whole.position:
        return 1.0
    return min(1.0, segment.position / whole.position)


def unconfirmed(j: Judgement) -> bool:
    """A change found but short of its test's events. A drift judgement says so itself (``extra["pending"]``:
    significant and large enough already); on the label path, any change point since which the segment has
    had fewer than ``extra["min_events"]`` labels."""
    if "pending" in j.extra:
        return bool(j.extra["pending"])
    return j.evidence.detected and 0 < j.evidence.events < int(j.extra.get("min_events", 0))


def pending_overall_change(segment: Judgement, parent: Judgement, ratio: float) -> bool:
    """All traffic has found a change as large as the segment's, above its threshold, but not yet over the
    events its test needs (``extra["min_events"]``): the change is not local, so the segment waits for all
    traffic's alert (which then explains it) instead of paging first. A detector may place all traffic's
    change point later than a segment's, so all traffic can complete its test a batch or two after the
    segment on the same change. The wait is bounded: once all traffic has had its test's events, it fires
    or no longer holds the segment back."""
    return (
        segment.bucket != ALL
        and not parent.fire
        and parent.evidence.detected
        and parent.evidence.effect >= parent.threshold
        and 0 < parent.evidence.events < int(parent.extra.get("min_events", 0))
        and segment.shift < ratio * parent.shift
    )


def window_behind(segment: Judgement, parent: Judgement) -> bool:
    """A segment fired on a test window that ends after all traffic's latest window of the same test: all
    traffic has not yet been tested on the same events, and its next window, which comes sooner (it fills
    faster), covers them. The segment waits for that verdict, so attribution compares the same period.
    ``window_end``: the baseline window test's (a judgement with a ``statistic`` fired on it); ``test_end``:
    a categorical stream's own chi-square window."""
    name = "window_end" if segment.statistic is not None else "test_end"
    ends = segment.extra.get(name), parent.extra.get(name)
    return (
        segment.bucket != ALL
        and not parent.fire
        and ends[0] is not None
        and ends[1] is not None
        and ends[1] < ends[0]  # False when either is NaN (no window yet)
    )


def owns(key: str, partition: int, partitions: int) -> bool:
    """Whether ``partition`` (of ``partitions``) speaks for an alert key.

    Every partition holds a random share of the traffic (keyed by ``prediction_id``) and tracks
    every stream for its metrics, but exactly one partition, chosen by a stable hash of the key,
    runs the key's lifecycle and emits its alerts. One change therefore yields one alert however
    many partitions and replicas there are, and a replay yields the same one.

    >>> [owns("churn/v1/data_drift/income/all", p, 3) for p in range(3)].count(True)
    1
    """
    return zlib.crc32(key.encode()) % partitions == partition % partitions


class Alerting:
    """One partition's alert desk: attribution, ownership and lifecycle over a batch's judgements.

    ``lifecycle``, ``incidents``, ``incident_shift``, ``alerts_emitted``, ``lives`` and ``break_spans`` are state
    (the engine snapshots them, ``lives`` as ``alert_lives``); ``explain_ratio``, ``partition`` and
    ``partitions`` are settings, and ``clock`` only stamps each alert's ``emitted_at``.

    >>> from monitor.core.drift import DriftEvidence
    >>> ev = DriftEvidence(True, 1.0, 500, "adwin", 7, 10.0, 1e-6, {}, {})
    >>> whole = Judgement(ALL, "numeric", ev, 10.0, "m/v/data_drift/x/all", "data_drift", "x", {}, 0.5, 1.5,
    ...                   fire=True, clear=False, shift=2.0)
    >>> desk = Alerting(AlertLifecycle(), explain_ratio=1.75)
    >>> [(j.key, t.status) for j, t in desk.decide([whole])]
    [('m/v/data_drift/x/all', 'firing')]
    >>> desk.incident_shift
    {'m/v/data_drift/x/all': 2.0}
    """

    def __init__(
        self,
        lifecycle: AlertLifecycle,
        *,
        explain_ratio: float,
        partition: int = 0,
        partitions: int = 1,
        incident_window_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifecycle = lifecycle
        self.explain_ratio = explain_ratio
        self.incident_window_s = incident_window_s
        self.incidents = Incidents()
        self.partition = partition
        self.partitions = max(1, partitions)
        self.incident_shift: dict[str, float] = {}  # key -> the largest shift of its latest incident
        self.alerts_emitted: Counter[tuple[str, str]] = Counter()  # (kind, status)
        self.lives: dict[str, int] = {}  # version scope -> times retired (see retire), at most RETIRED_VERSIONS
        # all traffic's damaging input breaks that resolved: key -> [span start, resolved at]
        # (incidents.broken_input; a snapshot of an older release has none and starts empty)
        self.break_spans: dict[str, list[float]] = {}
        # breaks fixed in the latest decisions whose incident holds an open labelled problem: (version scope,
        # fixed at); the engine restarts those versions' error streams there (take_fixed_breaks; not state)
        self.fixed_breaks: list[tuple[str, float]] = []
        self.clock = clock

    def owns(self, key: str) -> bool:
        """Whether this partition runs the key's lifecycle (see :func:`owns`)."""
        return owns(key, self.partition, self.partitions)

    def recent(self, key: str, now: float) -> bool:
        """Whether a key is firing, or resolved so recently that it is still cooling down."""
        return self.lifecycle.is_firing(key) or now < self.lifecycle.cooldown_until.get(key, -math.inf)

    def decide(self, judged: list[Judgement]) -> list[tuple[Judgement, Transition]]:
        """Attribution within each (kind, subject), then the lifecycle of the keys this partition owns.

        Judgements are evaluated in order: a segment judged after all traffic sees the incident all
        traffic has just opened.
        """
        ratio = self.explain_ratio
        groups: dict[tuple[str, str], list[Judgement]] = {}
        for j in judged:
            groups.setdefault((j.kind, j.subject), []).append(j)
        explained: set[tuple[str, str, tuple[str, str]]] = set()
        for (kind, subject), group in groups.items():
            if kind == "fairness":  # gaps of different protected attributes are separate findings
                continue
            for bucket in explained_buckets(group, ratio):
                explained.add((kind, subject, bucket))
            for j in group:  # segments whose rows account for all traffic's change (core/local_change.py)
                if j.fire and j.extra.get("explains_all"):
                    explained.add((kind, subject, ALL))
                    explained.discard((kind, subject, j.bucket))
                if j.fire and j.extra.get("explained_by_open"):
                    explained.add((kind, subject, ALL))
        overall = {(j.kind, j.subject): j for j in judged if j.bucket == ALL}
        for j in judged:
            # on the label path all traffic only (a segment's label test is too weak to hold another segment)
            waits = j.kind in DRIFT_KINDS or (j.kind == "concept_drift" and j.bucket == ALL)
            if waits and j.fire and pending_local_change(j, groups[j.kind, j.subject], ratio):
                explained.add((j.kind, j.subject, j.bucket))
        out: list[tuple[Judgement, Transition]] = []
        for j in judged:
            parent = overall.get((j.kind, j.subject))
            if (
                j.fire
                and j.kind != "fairness"
                and parent is not None
                and j.bucket != ALL
                and not j.extra.get("explains_all")
                and (self.recent(parent.key, j.now) or self._began_before_resolved(j, parent.key))
                and j.shift < ratio * max(parent.shift, self.incident_shift.get(parent.key, 0.0))
            ):
                # all traffic fires, or fired within its cooldown, for the same change (window tests lag behind);
                # or its incident is over and the segment's evidence is still of the change it covered: a fix
                # shows in all traffic first, and its segments would page the change already over one by one
                explained.add((j.kind, j.subject, j.bucket))
            if (
                j.fire
                and j.kind in DRIFT_KINDS
                and parent is not None
                and (pending_overall_change(j, parent, ratio) or window_behind(j, parent))
            ):
                explained.add((j.kind, j.subject, j.bucket))
            if j.fire and j.kind in LOCAL_KINDS and j.bucket != ALL and self._diluted(j, judged, ratio):
                explained.add((j.kind, j.subject, j.bucket))
            if j.fire and j.kind in LOCAL_KINDS and j.bucket == ALL and self._local_open(j, groups[j.kind, j.subject]):
                explained.add((j.kind, j.subject, j.bucket))
            if not self.owns(j.key):
                continue
            cause, fixed = None, False
            by_labels = j.kind != "retrain_recommended" or (j.evidence.extra or {}).get("by_labels")
            if j.fire and j.kind in LABEL_KINDS and by_labels:  # (a retrain for drifting inputs rests on their
                # drift, which its message names)
                cause, fixed = broken_input(j, self.lifecycle.open, self.break_spans, self.incident_window_s)
            if cause is not None and (fixed or j.kind == "retrain_recommended"):
                # retraining on a broken feed would learn the break; one already fixed paged its own incident,
                # and the labels of predictions made while it lasted say nothing of the model
                explained.add((j.kind, j.subject, j.bucket))
                cause = None
            scope = j.key.split(f"/{j.kind}/", 1)[0]
            was = self.lifecycle.open.get(j.key)
            t = self.lifecycle.evaluate(
                j.key,
                fire=j.fire and (j.kind, j.subject, j.bucket) not in explained,
                clear=j.clear and not self._clear_before_change(j),
                now=j.now,
                incident_seq=j.evidence.change_seq,
                started_at=j.evidence.change_time,
                position=j.position,
                life=self.lives.get(scope, 0) if self.lives else 0,
            )
            if t is not None:
                join = (
                    (cause or same_change(j, self.lifecycle.open, self.incident_window_s))
                    if t.status == "firing"
                    else None
                )
                t.incident_id = self.incidents.assign(
                    scope, incident_facet(j), j.key, t.status, j.now, self.incident_window_s, alert_severity(j, t),
                    join=join,
                )  # fmt: skip
                fixed_break = t.status == "resolved" and was is not None and self._remember_break(j, was)
                if fixed_break and self._took_labels_down(scope, t.incident_id):
                    self.fixed_breaks.append((scope, j.now))
                if t.status == "firing" and cause is not None:
                    opened_by = self.lifecycle.open[cause]
                    t.broken_input = (opened_by.subject or parse_key(cause[len(scope) + 1 :])[1], opened_by.detector)
                if t.status == "firing":
                    self.incident_shift[j.key] = j.shift
                    opened = self.lifecycle.open[j.key]
                    opened.kind, opened.subject, opened.segment = j.kind, j.subject, dict(j.segment)
                    opened.detector = j.evidence.detector
                    whole = overall.get((j.kind, j.subject))
                    if (
                        whole is not None
                        and j.bucket != ALL
                        and (j.extra.get("share") or (j.position and whole.position))
                    ):
                        opened.share = _share(j, whole)
                else:
                    self.incident_shift[j.key] = max(self.incident_shift.get(j.key, 0.0), j.shift)
                out.append((j, t))
        return out

    def emit(self, model: str, version: str, judged: list[Judgement]) -> list[Alert]:
        """A model version's judgements to the alert events of their transitions (:meth:`decide`), counted by
        kind and status."""
        alerts = []
        for j, t in self.decide(judged):
            self.alerts_emitted[j.kind, t.status] += 1
            alerts.append(build_alert(model, version, j, t, emitted_at=self.clock()))
        return alerts

    def retire(
        self, model: str, version: str, now: float, idle_s: float, *, others: Collection[str] = ()
    ) -> list[Alert]:
        """A model version that has left service (no predictions for ``idle_s`` of event time until ``now``):
        each of its open alerts resolves, since no judgement of it will come again, and the desk forgets its
        cooldowns and incident memory. ``others``: the :func:`version_scope` of the versions that stay, whose
        keys may begin like this one's (version ``v1/canary`` beside ``v1``) and are left alone. The version's
        retirements are counted (:attr:`lives`): if it comes back, its stream positions start again, and the
        count keeps its new alert ids apart from the old ones."""
        scope = version_scope(model, version)
        self.lives[scope] = self.lives.pop(scope, 0) + 1
        if len(self.lives) > RETIRED_VERSIONS:
            del self.lives[next(iter(self.lives))]
        prefix = scope + "/"
        nested = tuple(o + "/" for o in others if o.startswith(prefix))

        def own(key: str) -> bool:
            return key.startswith(prefix) and not key.startswith(nested)

        alerts: list[Alert] = []
        lifecycle = self.lifecycle
        for key in [k for k in lifecycle.open if own(k)]:
            incident = lifecycle.open.pop(key)
            kind, subject, segment = incident.kind, incident.subject, incident.segment
            if not kind or segment is None:  # opened by an older release: the key tells what it is about
                kind, subject, segment = parse_key(key[len(prefix) :])
            facet = segment_label(segment) if segment else subject
            incident_id = self.incidents.assign(scope, facet, key, "resolved", now, self.incident_window_s, "info")
            self.alerts_emitted[kind, "resolved"] += 1
            alerts.append(
                Alert(
                    alert_id=incident.alert_id, key=key, status="resolved", kind=kind, severity="info", model=model,
                    model_version=version, subject=subject, segment=dict(segment), detector="retired",
                    statistic=None, threshold=None, p_value=None, baseline={}, current={},
                    window={"start": iso(incident.started_at), "end": iso(now), "events": 0}, recommendation="none",
                    message=retired_message(model, version, idle_s), started_at=iso(incident.started_at),
                    emitted_at=iso(self.clock()), detected_at=iso(incident.detected_at), incident_id=incident_id,
                    resolved_at=iso(now),
                )
            )  # fmt: skip
        for memory in (
            lifecycle.cooldown_until, lifecycle.cooldown_until_position, lifecycle.last_start, self.incident_shift,
            lifecycle.resolved_at, self.break_spans,
        ):  # fmt: skip
            for key in [k for k in memory if own(k)]:
                del memory[key]
        for name in [n for n, inc in self.incidents.open.items() if own(n) and not inc["keys"]]:
            del self.incidents.open[name]
        return alerts

    def _clear_before_change(self, j: Judgement) -> bool:
        """A window's clear verdict on an open alert, from a window that began before the change the alert covers
        (its located start): mostly rows from before the change, it says nothing of whether the change is over.
        Seen from outside: a segment's categorical drift, fired on its rows in all traffic's window, resolved on
        the segment's own window of mostly earlier rows while its feed was still broken, and fired again five
        minutes later. Window evidence only (its change time is the window's first row): a sequential
        detector's is the change point it last found."""
        opened = self.lifecycle.open.get(j.key)
        ev = j.evidence
        return opened is not None and ev.detector in WINDOW_DETECTORS and ev.change_time < opened.started_at

    def _remember_break(self, j: Judgement, was: Incident) -> bool:
        """All traffic's damaging input break resolved: its span, from its located start less its detection
        delay to now, explains labelled problems found later whose change began while it lasted
        (:func:`~monitor.core.incidents.broken_input`); kept as long as that reads it (``incident_window_s``
        after the fix), at most ``BREAK_SPANS``. False: not such a break."""
        if j.kind not in BREAK_KINDS or j.segment or was.detector not in DAMAGING_CHECKS:
            return False
        spans = self.break_spans
        spans.pop(j.key, None)
        spans[j.key] = [2 * was.started_at - was.detected_at, j.now]
        for key in [k for k, (_start, end) in spans.items() if not j.now - end <= self.incident_window_s]:
            del spans[key]
        while len(spans) > BREAK_SPANS:
            del spans[next(iter(spans))]
        return True

    def _took_labels_down(self, scope: str, incident_id: str | None) -> bool:
        """A concept drift or performance alert of the version is open in the fixed break's incident (the break
        took accuracy down: :func:`~monitor.core.incidents.broken_input` joined them), and no labelled problem
        of the version is open in another incident (a genuine change being followed, whose evidence and retrain
        recommendation a restart would disturb)."""
        if incident_id is None:
            return False
        prefix = scope + "/"
        labelled = [
            self.incidents.by_key.get(key) == incident_id
            for key in self.lifecycle.open
            if key.startswith(prefix) and parse_key(key[len(prefix) :])[0] in LABEL_KINDS
        ]
        return any(labelled) and all(labelled)

    def take_fixed_breaks(self) -> list[tuple[str, float]]:
        """The breaks fixed since the last call that had taken a version's accuracy down (see
        :attr:`fixed_breaks`)."""
        out, self.fixed_breaks = self.fixed_breaks, []
        return out

    def _began_before_resolved(self, j: Judgement, parent_key: str) -> bool:
        """The change ``j``'s evidence measures began before all traffic's latest incident (``parent_key``)
        resolved: that incident paged it, whatever a segment's slower test still shows of it."""
        resolved = self.lifecycle.resolved_at.get(parent_key)
        began = j.evidence.change_time
        return resolved is not None and began == began and began <= resolved

    def _local_open(self, whole: Judgement, group: list[Judgement]) -> bool:
        """A segment's alert is open for a local change that all traffic's shift only dilutes
        (:func:`pending_local_change`'s tests, with the shift and the share the segment's incident fired with):
        all traffic fires later on the same change, once its own test has had the events."""
        ratio, scope = self.explain_ratio, whole.key[: -len(segment_label(whole.segment))]
        segments = {key[len(scope) :]: key for key in self.lifecycle.open if key.startswith(scope)}
        for label, key in segments.items():
            if "=" not in label or "/" in label:  # all traffic's own key, or another subject's
                continue
            shift = self.incident_shift.get(key, 0.0)
            attribute = label.split("=", 1)[0]
            if (
                shift >= ratio * whole.shift
                and whole.shift <= DILUTION_SLACK * self.lifecycle.open[key].share * shift
                and not any(o != label and o.split("=", 1)[0] == attribute for o in segments)
                and not any(s.bucket[0] == attribute and s.key != key and (s.fire or unconfirmed(s)) for s in group)
            ):
                return True
        return False

    def _diluted(self, j: Judgement, judged: list[Judgement], ratio: float) -> bool:
        """A segment of another attribute fires, or fired within its cooldown, with ``ratio`` times this
        segment's shift, or (while it is open) with a shift its share of the traffic dilutes to this one's:
        this one only sees that change diluted (a change in country=SG moves gender=F a little), in this batch
        or a later one. The same-batch case is :func:`explained_buckets`'. Concept drift takes the second test
        only: a segment's error-rate rise is large (a flipped segment's, 0.3 and more), so by size alone it
        covered an independent, smaller change in any other attribute's segment, and for its whole cooldown."""
        own = segment_label(j.segment)
        scope = j.key[: len(j.key) - len(own)]  # model/version/kind/subject/
        attribute = own.split("=", 1)[0]
        now = {o.key: o.shift for o in judged if o.fire}
        for key, fired_with in self.incident_shift.items():
            if not key.startswith(scope):
                continue
            other = key[len(scope) :].split("=", 1)[0]
            if other == attribute or "/" in other or other == key[len(scope) :]:  # same attribute, not a segment
                continue
            if not self.recent(key, j.now):
                continue
            shift = max(fired_with, now.get(key, 0.0))
            if j.shift * ratio <= shift and j.kind in DRIFT_KINDS:
                return True
            opened = self.lifecycle.open.get(key)
            if opened is not None and j.shift < shift and j.shift <= DILUTION_SLACK * opened.share * shift:
                return True
        return False


def alert_severity(j: Judgement, t: Transition) -> str:
    """``critical`` when the effect reaches the judgement's critical level, else ``warning``; ``info`` once
    resolved."""
    if t.status == "resolved":
        return "info"
    size = j.evidence.effect if j.statistic is None else abs(j.statistic)
    return "critical" if size >= j.critical else "warning"


def build_alert(model: str, version: str, j: Judgement, t: Transition, emitted_at: float) -> Alert:
    """The alert event of one transition, as contract v1 puts it on the alerts topic."""
    ev = j.evidence
    severity = alert_severity(j, t)
    recommendation = RECOMMENDATIONS.get(j.kind, "investigate") if not t.broken_input else "investigate"
    return Alert(
        alert_id=t.alert_id,
        key=j.key,
        status=t.status,
        kind=j.kind,
        severity=severity,
        model=model,
        model_version=version,
        subject=j.subject,
        segment=j.segment,
        detector=ev.detector,
        statistic=round(ev.effect if j.statistic is None else j.statistic, 6),
        threshold=j.threshold,
        p_value=ev.p_value,
        baseline=_clean(ev.baseline),
        current=_clean(ev.current),
        window={"start": iso(ev.change_time), "end": iso(j.now), "events": ev.events},
        recommendation=recommendation if t.status == "firing" else "none",
        message=alert_message(model, version, j, t.status, broken_input=t.broken_input),
        started_at=iso(t.started_at),
        emitted_at=iso(emitted_at),
        detected_at=iso(t.detected_at),
        incident_id=t.incident_id,
        resolved_at=iso(j.now) if t.status == "resolved" else None,
    )


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe summary: NaN becomes null, floats are rounded for reading."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = None if not math.isfinite(v) else round(v, 6)
        else:
            out[k] = v
    return out
