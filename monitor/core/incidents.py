"""Incidents: which alerts of a model version are one page.

An incident groups the alerts one change causes. Alerts of one model version share one when they share a facet
(a segment, or without one a subject: :func:`incident_facet`) within ``alerts.incident_window_s``; an alert also
joins another facet's incident when a rule below finds it is the same change seen elsewhere: the same kind and
subject in another bucket (:func:`same_change`), an input's change and the prediction drift it caused
(:func:`input_change`), a break in one segment's feed that the all-traffic quality checks found
(:func:`segment_break`), a labelled problem that a broken input explains (:func:`broken_input`), and a
retrain recommendation beside the labelled problem it rests on. Times are event times, so a replay gives the
same ids. The rules read the open alerts (``AlertLifecycle.open`` in :mod:`monitor.core.alerting`) and, for
:func:`broken_input`, the desk's memory of fixed breaks (``Alerting.break_spans``), nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.core.rules import Judgement, iso, parse_key, segment_label

if TYPE_CHECKING:
    from monitor.core.alerting import Incident

# Kinds whose alerts join another bucket's open alert of the same kind and subject (:func:`same_change`)
JOINING_KINDS = ("data_drift", "prediction_drift", "concept_drift", "business")
# An alert joins another bucket's open incident of the same kind and subject (:func:`same_change`) only while
# that alert began less than this long ago (or alerts.incident_window_s, if longer): labels come hours late, so
# one change can reach all traffic's test hours after a segment's, but not weeks
JOIN_WITHIN_S = 86400.0
# An input's change (its drift, its schema, its quality) moves the predictions: all traffic's prediction drift
# and such an alert of all traffic whose changes overlap share one incident (:func:`input_change`), and so do
# all traffic's schema alerts of one version
INPUT_KINDS = ("data_drift", "schema", "data_quality")
# for all traffic's alert of each kind, the kinds of the other subjects' alerts whose incident it joins
RELATED: dict[str, tuple[str, ...]] = {
    "prediction_drift": INPUT_KINDS,
    "data_drift": ("prediction_drift",),
    "data_quality": ("prediction_drift",),
    "schema": ("prediction_drift", "schema"),
}
# Breaks the schema and quality checks find; they watch all traffic only, so a break in one segment's feed is
# all traffic's alert beside that segment's drift (:func:`segment_break`)
BREAK_KINDS = ("schema", "data_quality")
# The checks among them whose break can take a model's accuracy down (a new field cannot: the model never reads it)
DAMAGING_CHECKS = ("missing_field", "type_change", "null_rate", "out_of_range", "unseen_category", "constant")
# Labelled problems that a broken input explains: they join its incident and ask to fix the feed, not to retrain
# (a model retrained on a broken feed learns the break); the retrain recommendation waits (:func:`broken_input`)
LABEL_KINDS = ("concept_drift", "performance", "retrain_recommended")


def incident_facet(j: Judgement) -> str:
    """What correlated alerts of one model version share: the segment when there is one (a bias against
    gender=f moves its fairness gaps and its predictions), else the subject (a new category in ``device`` is
    a data-quality finding and a drift of ``device``)."""
    return segment_label(j.segment) if j.segment else j.subject


@dataclass
class Incidents:
    """Groups alerts into incidents: one per model version and facet, while any of its alerts is open or
    its last one moved less than ``window_s`` of event time ago. The id is the facet and the event time of
    the incident's first alert, so a replay gives the same ids.

    >>> inc = Incidents()
    >>> a = inc.assign("m/v", "gender=f", "m/v/fairness/tpr/gender=f", "firing", 100.0, 3600.0)
    >>> b = inc.assign("m/v", "gender=f", "m/v/prediction_drift/prediction/gender=f", "firing", 400.0, 3600.0)
    >>> a == b, a
    (True, 'm/v/gender=f@1970-01-01T00:01:40.000Z')
    """

    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # model/version/facet -> id, keys, last
    by_key: dict[str, str] = field(default_factory=dict)  # alert key -> incident id, while it is open

    def assign(
        self, scope: str, facet: str, key: str, status: str, now: float, window_s: float, severity: str = "warning",
        *, join: str | None = None,
    ) -> str | None:  # fmt: skip
        """The incident of one alert transition (``scope`` is ``model/version``); ``severity`` is the alert's,
        and an incident is as severe as its most severe open alert. ``join``: an alert key whose open incident a
        firing alert joins instead of its facet's (one change seen in another bucket)."""
        name = f"{scope}/{facet}"
        own = self.open.get(name)
        if join is not None and status == "firing" and (own is None or not own["keys"]):
            # (an open incident of its own facet keeps it: a feature's quality finding and its drift stay one)
            joined = self._named(self.by_key.get(join))
            name = joined if joined is not None else name
        inc = self.open.get(name)
        if status != "firing" and (inc is None or inc["id"] != self.by_key.get(key)):
            name = self._named(self.by_key.get(key)) or name  # it joined another facet's incident
            inc = self.open.get(name)
        if status == "firing":
            if inc is None or (not inc["keys"] and now - inc["last"] > window_s):
                inc = self.open[name] = {"id": f"{name}@{iso(now)}", "keys": [], "last": now}
            if key not in inc["keys"]:
                inc["keys"].append(key)
            inc.setdefault("severity", {})[key] = severity
            inc["last"] = max(inc["last"], now)
            self.by_key[key] = inc["id"]
            self._prune(now, window_s)
            return str(inc["id"])
        ident = self.by_key.pop(key, None)
        if inc is not None and inc["id"] == ident:
            inc["keys"] = [k for k in inc["keys"] if k != key]
            inc.get("severity", {}).pop(key, None)
            inc["last"] = max(inc["last"], now)
        return ident  # None: the alert fired before incidents existed (a snapshot from an older release)

    def _named(self, ident: str | None) -> str | None:
        """The name (``scope/facet``) under which incident ``ident`` is open, if it is."""
        if ident is None:
            return None
        return next((name for name, inc in self.open.items() if inc["id"] == ident), None)

    def _prune(self, now: float, window_s: float) -> None:
        """Forget incidents with nothing open whose window has passed: memory stays bounded."""
        for name in [n for n, i in self.open.items() if not i["keys"] and now - i["last"] > window_s]:
            del self.open[name]


def same_change(j: Judgement, open_alerts: Mapping[str, Incident], window_s: float) -> str | None:
    """The open alert of the same kind and subject in a bucket that one change shows too (all traffic beside
    a segment, or a segment of another attribute): ``j``'s alert joins its incident, so one change is one
    page even when both buckets alert (a segment's local change found after all traffic's diluted alert, a
    change everywhere that one segment showed first). Not two segments of one attribute: those change
    independently. All traffic's alert first, then the earliest opened. All traffic's schema alerts, and its
    prediction drift without such an alert, look for another subject's (:func:`input_change`)."""
    if j.kind == "retrain_recommended":
        return _retrain_problem(j, open_alerts)
    related = RELATED.get(j.kind, ()) if not j.segment else ()
    if j.kind not in JOINING_KINDS:
        return (
            _open_retrain(j, open_alerts)
            or segment_break(j, open_alerts, window_s)
            or (input_change(j, related, open_alerts, window_s) if related else None)
        )
    own = segment_label(j.segment)
    scope = j.key[: len(j.key) - len(own)]  # model/version/kind/subject/
    attributes = set(j.segment)  # empty: all traffic
    found: list[tuple[int, float, str]] = []
    for key, incident in open_alerts.items():
        label = key[len(scope) :]
        if key == j.key or not key.startswith(scope) or "/" in label:
            continue
        if j.now - incident.started_at > max(window_s, JOIN_WITHIN_S):  # a later change is another
            continue
        other = parse_key(f"k/s/{label}")[2]
        if set(other) == attributes:  # itself (all traffic), or a segment of the same attribute
            continue
        found.append((1 if other else 0, incident.started_at, key))
    if found:
        return min(found)[2]
    return (
        _open_retrain(j, open_alerts)
        or segment_break(j, open_alerts, window_s)
        or (input_change(j, related, open_alerts, window_s) if related else None)
    )


def _retrain_problem(j: Judgement, open_alerts: Mapping[str, Incident]) -> str | None:
    """The open alert of all traffic's labelled problem a retrain recommendation rests on (its evidence's
    ``problem``, ``kind:subject``): a concept change paged as the concept drift and again as the recommendation
    to retrain, two incidents (seen from outside)."""
    kind, _, subject = str(j.evidence.current.get("problem", "")).partition(":")
    for key, _incident, other_kind, other_subject, segment in _version_alerts(j, open_alerts):
        if (other_kind, other_subject) == (kind, subject) and not segment:
            return key
    return None


def _open_retrain(j: Judgement, open_alerts: Mapping[str, Incident]) -> str | None:
    """For all traffic's labelled problem (concept drift, a performance alert): the version's open retrain
    recommendation whose problem overlaps its change (:func:`overlap`), which the policy found first on the same
    labels (:func:`_retrain_problem` the other way round). A recommendation for drifting inputs is dated where
    it was made, so a problem found days later is not its."""
    if j.kind not in ("concept_drift", "performance") or j.segment:
        return None
    began = _began(j)
    for key, incident, kind, _subject, _segment in _version_alerts(j, open_alerts):
        if kind == "retrain_recommended" and overlap(incident.started_at, incident.detected_at, began, j.now):
            return key
    return None


def _version_alerts(
    j: Judgement, open_alerts: Mapping[str, Incident]
) -> Iterator[tuple[str, Incident, str, str, dict[str, str]]]:
    """The open alerts of ``j``'s model version besides its own: key, state, kind, subject and segment."""
    scope = j.key.split(f"/{j.kind}/", 1)[0] + "/"
    for key, incident in open_alerts.items():
        if key.startswith(scope) and key != j.key:
            kind, subject, segment = parse_key(key[len(scope) :])
            yield key, incident, kind, subject, segment


def _began(j: Judgement) -> float:
    """Where ``j``'s change was located, or when it was judged when that is not known."""
    return j.evidence.change_time if j.evidence.change_time == j.evidence.change_time else j.now


def segment_break(j: Judgement, open_alerts: Mapping[str, Incident], window_s: float) -> str | None:
    """The open alert of the other side of one segment's broken feed, whichever fired first: all traffic's
    schema or quality alert (:data:`BREAK_KINDS`; those checks have no segments) and the segment's drift.
    The segment's drift of the same input joins it when the break was found at most
    ``alerts.incident_window_s`` before or after, with no overlap asked (a window test locates a change at
    its window, minutes after the first unseen category); the segment's prediction drift joins a break of
    any input whose change overlaps its own (:func:`overlap`, as :func:`input_change`). Seen from outside:
    a new category in one country's feed paged as ``device``'s quality and as that country's drift, a unit
    change in one country as a range alert and as that country's drift and prediction drift."""
    if j.kind not in (*BREAK_KINDS, "data_drift", "prediction_drift") or (j.kind in BREAK_KINDS) == bool(j.segment):
        return None
    began = _began(j)
    found: list[tuple[float, str]] = []
    for key, incident, kind, subject, segment in _version_alerts(j, open_alerts):
        if j.segment:  # the segment's drift: all traffic's break
            if segment or kind not in BREAK_KINDS:
                continue
            same = subject == j.subject
        else:  # all traffic's break: a segment's drift
            if not segment or kind not in ("data_drift", "prediction_drift"):
                continue
            same = kind == "data_drift" and subject == j.subject
        if not abs(j.now - incident.detected_at) <= window_s:  # (never for an unknown time, NaN)
            continue
        prediction = "prediction_drift" in (kind, j.kind)
        if (prediction and overlap(incident.started_at, incident.detected_at, began, j.now)) or (
            not prediction and same
        ):
            found.append((incident.detected_at, key))
    return min(found)[1] if found else None


def input_change(
    j: Judgement, kinds: tuple[str, ...], open_alerts: Mapping[str, Incident], window_s: float
) -> str | None:
    """The earliest open all-traffic alert of ``kinds`` about another subject of ``j``'s model version whose
    change overlaps ``j``'s in event time (:func:`overlap`; the other fired at most
    ``alerts.incident_window_s`` before): one upstream change (:data:`RELATED`). An input's change (its
    drift, schema or quality) moves the predictions, so all traffic's prediction drift and that input's alert
    are one page, whichever fired first (a unit change, a broken feed); schema alerts of one version are one
    page (a rename: a field missing and a new one). A change that began after the other was detected is
    another change (an unrelated field breaking minutes later). A segment's alerts share their segment's
    incident already (the facet is the segment). Within one detection shard (``detection.shards``: the
    prediction is shard 0's)."""
    began = _began(j)
    found: list[tuple[float, str]] = []
    for key, incident, kind, subject, segment in _version_alerts(j, open_alerts):
        if kind not in kinds or segment or subject == j.subject:
            continue
        if not j.now - incident.detected_at <= window_s:  # (never for an unknown time, NaN)
            continue
        if overlap(incident.started_at, incident.detected_at, began, j.now):
            found.append((incident.detected_at, key))
    return min(found)[1] if found else None


def broken_input(
    j: Judgement, open_alerts: Mapping[str, Incident], fixed: Mapping[str, Sequence[float]], window_s: float
) -> tuple[str | None, bool]:
    """All traffic's damaging input break (:data:`DAMAGING_CHECKS`) of ``j``'s model version that explains its labelled
    problem (:data:`LABEL_KINDS`), and whether it is fixed (resolved). The problem's change must have begun after
    the break did (the break's located start less its detection delay), give or take half the problem's own
    detection delay (labels locate a change loosely): an open break then explains it, the earliest found first; a
    fixed one (``fixed``: key -> [span start, resolved at], fixed at most ``window_s``,
    ``alerts.incident_window_s``, ago) when the labels locate the change before the fix (labels of predictions made
    while it lasted arrive later, and say nothing of the model). Seen from outside: a unit change took accuracy
    down, and the monitor paged the break, then a concept drift recommending a retrain, then a retrain
    recommendation; after the fix, segments' concept drift and a retrain recommendation from labels of the broken
    predictions, up to 20 minutes on."""
    began = _began(j)
    slack = max(0.0, j.now - began) / 2  # (NaN times compare False below: nothing explained)
    found: list[tuple[float, str]] = []
    for key, incident, kind, _subject, segment in _version_alerts(j, open_alerts):
        if kind not in BREAK_KINDS or segment or incident.detector not in DAMAGING_CHECKS:
            continue
        if began + slack >= 2 * incident.started_at - incident.detected_at:
            found.append((incident.detected_at, key))
    if found:
        return min(found)[1], False
    scope = j.key.split(f"/{j.kind}/", 1)[0] + "/"
    for key, (start, resolved) in fixed.items():
        if (
            key.startswith(scope)
            and parse_key(key[len(scope) :])[0] in BREAK_KINDS  # (not a nested version's: v1/canary beside v1)
            and began + slack >= start
            and began < resolved  # (at the fix: found by the error streams restarted there, after it)
            and j.now - resolved <= window_s  # (later, a problem that holds on is the model's: a retrain held
        ):  # since the break, say, on the labels of a concept change right after the fix)
            return key, True
    return None, False


def overlap(start: float, detected: float, other_start: float, other_detected: float) -> bool:
    """Whether two changes may be one: each spans from its located start, less its detection delay (a located
    start is about that uncertain: a change point found in chunks, a quality window that began before the break),
    to its detection, and the spans meet.

    >>> overlap(90.0, 100.0, 95.0, 200.0), overlap(102.0, 105.0, 99.0, 101.0), overlap(90.0, 100.0, 500.0, 520.0)
    (True, True, False)
    """
    return 2 * start - detected <= other_detected and 2 * other_start - other_detected <= detected
