"""Alert lifecycle, attribution and ownership, tested directly on hand-made judgements.

The lifecycle's tests moved here from test_rules.py; the engine's tests (test_engine, test_performance...)
check the same rules end to end on synthetic streams.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest

from monitor.core.alerting import (
    Alerting,
    AlertLifecycle,
    Transition,
    build_alert,
    explained_buckets,
    owns,
    pending_local_change,
    pending_overall_change,
    window_behind,
)
from monitor.core.drift import DriftEvidence
from monitor.core.rules import ALL, Judgement, alert_id, alert_key

SG, DE, WEB = ("country", "SG"), ("country", "DE"), ("channel", "web")


def _judge(
    bucket: tuple[str, str] = ALL,
    *,
    shift: float = 1.0,
    fire: bool = True,
    clear: bool = False,
    kind: str = "data_drift",
    subject: str = "income",
    now: float = 100.0,
    detected: bool | None = None,
    events: int = 500,
    change_seq: int = 7,
    position: int | None = None,
    **extra: Any,
) -> Judgement:
    segment = {} if bucket == ALL else {bucket[0]: bucket[1]}
    ev = DriftEvidence(
        detected=fire if detected is None else detected,
        effect=shift,
        events=events,
        detector="adwin",
        change_seq=change_seq,
        change_time=now - 10.0,
        p_value=1e-6,
        baseline={"mean": 1.0},
        current={"mean": 1.0 + shift},
        direction="rose",
    )
    return Judgement(
        bucket=bucket,
        stream_kind="numeric",
        evidence=ev,
        now=now,
        key=alert_key("churn", kind, subject, segment, "v1"),
        kind=kind,
        subject=subject,
        segment=segment,
        threshold=0.5,
        critical=1.5,
        fire=fire,
        clear=clear,
        shift=shift,
        extra=extra,
        position=position,
    )


def _desk(**kw: Any) -> Alerting:
    return Alerting(AlertLifecycle(resolve_after_s=10.0, cooldown_s=100.0), explain_ratio=1.75, **kw)


def _fired(desk: Alerting, judged: list[Judgement]) -> list[tuple[tuple[str, str], str]]:
    return [(j.bucket, t.status) for j, t in desk.decide(judged)]


def test_one_incident_until_clear_for_long_enough_then_cooldown():
    lc = AlertLifecycle(resolve_after_s=30, cooldown_s=100)
    first = lc.evaluate("k", fire=True, clear=False, now=0, incident_seq=5)
    assert first is not None and first.status == "firing" and first.alert_id == alert_id("k", 5)
    # more detections while firing: folded into the same incident
    assert lc.evaluate("k", fire=True, clear=False, now=5, incident_seq=8) is None
    # clear, then not clear again: the resolve timer restarts (hysteresis)
    assert lc.evaluate("k", fire=False, clear=True, now=10, incident_seq=8) is None
    assert lc.evaluate("k", fire=False, clear=False, now=35, incident_seq=8) is None
    assert lc.evaluate("k", fire=False, clear=True, now=36, incident_seq=8) is None
    assert lc.evaluate("k", fire=False, clear=True, now=60, incident_seq=8) is None
    resolved = lc.evaluate("k", fire=False, clear=True, now=66, incident_seq=8)
    assert resolved is not None and resolved.status == "resolved" and resolved.alert_id == first.alert_id
    # cooldown: a new change within 100 s of the resolve is not a new alert; after it, it is
    assert lc.evaluate("k", fire=True, clear=False, now=120, incident_seq=9) is None
    again = lc.evaluate("k", fire=True, clear=False, now=170, incident_seq=9)
    assert again is not None and again.status == "firing" and again.alert_id != first.alert_id


def test_keys_are_independent_and_snapshot_round_trips():
    lc = AlertLifecycle(resolve_after_s=0, cooldown_s=0)
    assert lc.evaluate("a", fire=True, clear=False, now=1, incident_seq=1) is not None
    assert lc.evaluate("b", fire=False, clear=True, now=1, incident_seq=1) is None
    twin = AlertLifecycle(resolve_after_s=0, cooldown_s=0)
    twin.restore(lc.snapshot())
    assert twin.is_firing("a") and not twin.is_firing("b")
    assert twin.evaluate("a", fire=False, clear=True, now=2, incident_seq=1).status == "resolved"


# ---------------------------------------------------------------- attribution within one batch
def test_all_traffic_explains_segments_that_moved_no_more_than_it():
    judged = [_judge(ALL, shift=1.0), _judge(SG, shift=1.2), _judge(WEB, shift=0.9)]
    assert explained_buckets(judged, 1.75) == {SG, WEB}


def test_a_segment_that_moved_ratio_times_more_explains_all_traffic_and_other_attributes():
    judged = [_judge(ALL, shift=0.3), _judge(SG, shift=2.0), _judge(WEB, shift=0.4)]
    assert explained_buckets(judged, 1.75) == {ALL, WEB}


def test_segments_of_one_attribute_never_explain_each_other():
    assert explained_buckets([_judge(SG, shift=3.0), _judge(DE, shift=0.5)], 1.75) == set()
    # ... but one of another attribute does, when its shift is ratio times larger
    assert explained_buckets([_judge(SG, shift=3.0), _judge(WEB, shift=0.5)], 1.75) == {WEB}


def test_nothing_is_explained_when_fewer_than_two_fire():
    assert explained_buckets([_judge(ALL), _judge(SG, fire=False, shift=5.0)], 1.75) == set()


def test_desk_gives_one_alert_for_a_change_everywhere():
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=1.0), _judge(SG, shift=1.1), _judge(WEB, shift=0.9)]) == [(ALL, "firing")]


def test_desk_gives_the_segments_alert_for_a_local_change():
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=0.3), _judge(SG, shift=2.0)]) == [(SG, "firing")]


def test_fairness_gaps_are_never_attributed():
    desk = _desk()
    judged = [
        _judge(ALL, kind="fairness", subject="demographic_parity", shift=0.3),
        _judge(SG, kind="fairness", subject="demographic_parity", shift=0.2),
    ]
    assert _fired(desk, judged) == [(ALL, "firing"), (SG, "firing")]


# ---------------------------------------------------------------- attribution with memory
def test_a_segment_firing_later_is_covered_by_all_traffics_open_incident():
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=1.0, now=100.0)]) == [(ALL, "firing")]
    # the segment's window test completes a batch later, for the same change, when all traffic no longer fires
    quiet = {"shift": 0.8, "fire": False}
    assert _fired(desk, [_judge(ALL, now=110.0, **quiet), _judge(SG, shift=1.5, now=110.0)]) == []
    # a segment that moved ratio times more than the incident is a change of its own
    assert _fired(desk, [_judge(ALL, now=120.0, **quiet), _judge(DE, shift=1.8, now=120.0)]) == [(DE, "firing")]


def test_the_incident_keeps_the_largest_shift_it_saw_until_it_resolved():
    desk = _desk()
    key = _judge(ALL).key
    desk.decide([_judge(ALL, shift=1.0, now=100.0)])
    assert desk.incident_shift == {key: 1.0}
    desk.decide([_judge(ALL, shift=0.1, fire=False, clear=True, now=110.0)])
    resolved = desk.decide([_judge(ALL, shift=0.1, fire=False, clear=True, now=125.0)])
    assert [t.status for _, t in resolved] == ["resolved"] and desk.incident_shift == {key: 1.0}
    # cooling down, all traffic's shift has fallen: a segment at the incident's size is still covered by it
    assert desk.recent(key, 130.0) and not desk.recent(key, 300.0)
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False, now=130.0), _judge(SG, shift=1.5, now=130.0)]) == []
    # after the cooldown the segment speaks for itself
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False, now=300.0), _judge(SG, shift=1.5, now=300.0)]) == [
        (SG, "firing")
    ]


def test_all_traffics_concept_alert_waits_for_a_segment_that_found_a_larger_change():
    whole = _judge(ALL, kind="concept_drift", subject="error_rate", shift=0.1)
    need = {"min_events": 200}  # the segment's test needs 200 labels since its change point
    pending = _judge(SG, kind="concept_drift", subject="error_rate", shift=0.3, fire=False, detected=True, events=120,
                     **need)  # fmt: skip
    assert pending_local_change(whole, [whole, pending], 1.75)
    assert _fired(_desk(), [whole, pending]) == []
    # not for a segment whose change is no larger, has no labels yet, found nothing, or had its test's labels
    # and did not fire (the wait is bounded)
    for other in (
        _judge(SG, kind="concept_drift", subject="error_rate", shift=0.15, fire=False, detected=True, events=120,
               **need),
        _judge(SG, kind="concept_drift", subject="error_rate", shift=0.3, fire=False, detected=True, events=0, **need),
        _judge(SG, kind="concept_drift", subject="error_rate", shift=0.3, fire=False, detected=False, events=120,
               **need),
        _judge(SG, kind="concept_drift", subject="error_rate", shift=0.3, fire=False, detected=True, events=200,
               **need),
    ):  # fmt: skip
        assert not pending_local_change(whole, [whole, other], 1.75)
        assert _fired(_desk(), [whole, other]) == [(ALL, "firing")]
    # data drift waits only for a change its judge marked pending (significant and large enough already)
    data = _judge(ALL, shift=0.1)
    assert _fired(_desk(), [data, _judge(SG, shift=0.3, fire=False, detected=True)]) == [(ALL, "firing")]


def test_drift_waits_for_a_segment_with_a_larger_change_short_of_its_events():
    """A large shift in one segment: all traffic (and a segment of another attribute, which only sees it
    diluted) gets enough events first; both wait for the segment's alert, which then explains them."""
    F = ("gender", "F")
    pending = _judge(SG, shift=3.0, fire=False, detected=True, events=90, min_events=200, pending=True)
    for first in (_judge(ALL, shift=0.5), _judge(F, shift=1.0)):
        assert pending_local_change(first, [first, pending], 1.75)
        assert _fired(_desk(), [first, pending]) == []
        # not for a change that is not pending, no larger, or of the same attribute (countries are independent)
        for other in (
            _judge(SG, shift=3.0, fire=False, detected=True, events=90, min_events=200, pending=False),
            _judge(SG, shift=0.6, fire=False, detected=True, events=90, min_events=200, pending=True),
        ):
            assert _fired(_desk(), [first, other]) == [(first.bucket, "firing")]
    us = _judge(("country", "US"), shift=1.0)
    assert _fired(_desk(), [us, pending]) == [(("country", "US"), "firing")]
    # not when another segment of the pending one's attribute moved too: every country changed, one more
    for sibling in (_judge(DE, shift=0.6), _judge(DE, shift=0.6, fire=False, detected=True, events=90, pending=True)):
        whole = _judge(ALL, shift=0.5)
        assert not pending_local_change(whole, [whole, pending, sibling], 1.75)
        assert (ALL, "firing") in _fired(_desk(), [whole, pending, sibling])
    # on the label path a segment's test is too weak to hold another segment back (all traffic waits, as before)
    need = {"min_events": 200}
    labels_f = _judge(F, kind="concept_drift", subject="error_rate", shift=0.1)
    noisy = _judge(SG, kind="concept_drift", subject="error_rate", shift=0.2, fire=False, detected=True, events=12,
                   **need)  # fmt: skip
    assert _fired(_desk(), [labels_f, noisy]) == [(F, "firing")]
    # once the segment fires it explains all traffic in the same batch
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=0.5), _judge(SG, shift=3.0, events=210, min_events=200)]) == [(SG, "firing")]


def test_all_traffic_firing_later_is_covered_by_a_segments_open_alert_for_a_local_change():
    """The segment's alert opened first; all traffic reaches its test's events a batch later, when the
    segment's detector has just placed a new change point (nothing since: shift 0). Its shift is the
    segment's diluted by its share, so the open alert covers it; not when other countries moved too."""
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=0.3, fire=False, position=1000), _judge(SG, shift=3.0, position=100)]) == [
        (SG, "firing")
    ]
    later = [
        _judge(ALL, shift=0.3, now=101.0, position=1100),
        _judge(SG, shift=0.0, fire=False, now=101.0, position=110),
    ]
    assert _fired(desk, later) == []
    desk = _desk()
    _fired(desk, [_judge(ALL, shift=0.3, fire=False, position=1000), _judge(SG, shift=3.0, position=100)])
    moved = [*later, _judge(DE, shift=0.4, now=101.0, position=300)]
    assert (ALL, "firing") in _fired(desk, moved)
    # nor when all traffic moved more than the segment's share of its change accounts for (every region moved)
    desk = _desk()
    _fired(desk, [_judge(ALL, shift=0.3, fire=False, position=1000), _judge(SG, shift=3.0, position=100)])
    assert _fired(desk, [_judge(ALL, shift=1.0, now=101.0, position=1100), later[1]]) == [(ALL, "firing")]


def test_a_segment_waits_for_all_traffic_that_found_as_large_a_change_but_lacks_its_tests_events():
    need = {"min_events": 200}  # all traffic's test needs 200 events since its change point
    maturing = _judge(ALL, shift=1.0, fire=False, detected=True, events=120, **need)
    segment = _judge(("gender", "F"), shift=1.1, events=250)
    assert pending_overall_change(segment, maturing, 1.75)
    assert _fired(_desk(), [maturing, segment]) == []
    # the segment speaks when its change is local (ratio times all traffic's), or all traffic found nothing, is
    # below its threshold, has no events yet, or had its test's events and did not fire (the wait is bounded)
    for parent, seg in (
        (maturing, _judge(("gender", "F"), shift=1.8, events=250)),
        (_judge(ALL, shift=1.0, fire=False, detected=False, events=120, **need), segment),
        (_judge(ALL, shift=0.4, fire=False, detected=True, events=120, **need), _judge(("gender", "F"), shift=0.6)),
        (_judge(ALL, shift=1.0, fire=False, detected=True, events=0, **need), segment),
        (_judge(ALL, shift=1.0, fire=False, detected=True, events=200, **need), segment),
    ):
        assert not pending_overall_change(seg, parent, 1.75)
        assert _fired(_desk(), [parent, seg]) == [(("gender", "F"), "firing")]
    # concept drift has its own rule (all traffic waits for a local change), and categorical streams carry no
    # test length: neither waits here
    concept = _judge(ALL, kind="concept_drift", subject="error_rate", fire=False, detected=True, events=120, **need)
    assert _fired(_desk(), [concept, _judge(SG, kind="concept_drift", subject="error_rate", shift=1.1)]) == [
        (SG, "firing")
    ]
    assert _fired(_desk(), [_judge(ALL, fire=False, detected=True, events=120), segment]) == [
        (("gender", "F"), "firing")
    ]


def test_a_segment_whose_window_ends_after_all_traffics_latest_waits_for_all_traffics_next_window():
    whole = _judge(ALL, fire=False, detected=False, window_end=100.0, test_end=100.0)
    by_window = _judge(("gender", "F"), shift=1.1, window_end=130.0)
    by_window = Judgement(**{**by_window.__dict__, "statistic": 0.3})  # fired on its baseline window test
    by_chi2 = _judge(("gender", "F"), shift=1.1, test_end=130.0)  # fired on its own chi-square window
    for seg in (by_window, by_chi2):
        assert window_behind(seg, whole)
        assert _fired(_desk(), [whole, seg]) == []
    # all traffic tested on the same events (or later), firing itself, or without any window yet: no wait
    for parent in (
        _judge(ALL, fire=False, detected=False, window_end=130.0, test_end=130.0),
        _judge(ALL, fire=False, detected=False, window_end=math.nan, test_end=math.nan),
        _judge(ALL, fire=False, detected=False),
    ):
        assert not window_behind(by_chi2, parent) and not window_behind(by_window, parent)
        assert _fired(_desk(), [parent, by_chi2]) == [(("gender", "F"), "firing")]
    assert not window_behind(by_chi2, _judge(ALL, shift=1.0, window_end=100.0, test_end=100.0))


def test_a_segment_that_only_sees_another_attributes_open_change_diluted_gives_no_second_alert():
    female = ("gender", "F")
    desk = _desk()
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False), _judge(SG, shift=2.0, now=100.0)]) == [(SG, "firing")]
    # later batches: gender=F sees a tenth of SG's change; its own change of SG's size, or another country, pages
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False, now=110.0), _judge(female, shift=0.3, now=110.0)]) == []
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False, now=115.0), _judge(DE, shift=0.3, now=115.0)]) == [
        (DE, "firing")
    ]
    assert _fired(desk, [_judge(ALL, shift=0.2, fire=False, now=120.0), _judge(female, shift=1.9, now=120.0)]) == [
        (female, "firing")
    ]
    # after SG's cooldown, gender=F speaks for itself
    later = _desk()
    assert _fired(later, [_judge(SG, shift=2.0, now=100.0)]) == [(SG, "firing")]
    _fired(later, [_judge(SG, shift=0.0, fire=False, clear=True, now=105.0)])
    _fired(later, [_judge(SG, shift=0.0, fire=False, clear=True, now=120.0)])
    assert _fired(later, [_judge(female, shift=0.3, now=400.0)]) == [(female, "firing")]


def test_an_open_concept_drift_covers_another_attributes_segment_only_by_its_diluted_share():
    """Concept drift: country=IN's labels all flipped (an error-rate rise of 0.33, a fifth of the traffic). In
    gender=F it shows diluted, about 0.07: covered. An independent rise of 0.16 in channel=A is more than IN's
    share can explain and pages, while IN is open and after it resolved; by size alone (ratio 1.75) it was covered
    for IN's whole cooldown and never paged."""
    india, female, channel = ("country", "IN"), ("gender", "F"), ("channel", "A")

    def concept(bucket: tuple[str, str], shift: float, now: float, **kw: Any) -> Judgement:
        return _judge(bucket, shift=shift, now=now, kind="concept_drift", subject="accuracy", **kw)

    desk = _desk()
    everyone = concept(ALL, 0.07, 100.0, fire=False)
    assert _fired(desk, [everyone, concept(india, 0.33, 100.0, share=0.2)]) == [(india, "firing")]
    assert _fired(desk, [concept(ALL, 0.07, 110.0, fire=False), concept(female, 0.07, 110.0)]) == []
    assert _fired(desk, [concept(ALL, 0.09, 120.0, fire=False), concept(channel, 0.16, 120.0)]) == [(channel, "firing")]
    later = _desk()
    assert _fired(later, [everyone, concept(india, 0.33, 100.0, share=0.2)]) == [(india, "firing")]
    _fired(later, [concept(india, 0.0, 105.0, fire=False, clear=True)])
    _fired(later, [concept(india, 0.0, 120.0, fire=False, clear=True)])
    assert not later.lifecycle.is_firing(alert_key("churn", "concept_drift", "accuracy", {"country": "IN"}, "v1"))
    assert _fired(later, [concept(ALL, 0.03, 130.0, fire=False), concept(channel, 0.16, 130.0)]) == [
        (channel, "firing")
    ]


# ---------------------------------------------------------------- ownership
@pytest.mark.parametrize("partitions", [1, 2, 3, 6])
def test_exactly_one_partition_owns_each_key(partitions: int):
    keys = [alert_key("churn", "data_drift", f"f{i}", {"country": c}, "v1") for i in range(20) for c in "ABC"]
    for key in keys:
        assert sum(owns(key, p, partitions) for p in range(partitions)) == 1
        assert owns(key, zlib.crc32(key.encode()) % partitions, partitions)  # stable: a hash of the key alone


def test_a_partition_emits_only_the_keys_it_owns_but_attributes_with_all_judgements():
    judged = [_judge(ALL, shift=1.0), _judge(SG, shift=1.1)]
    owner_of = {j.bucket: next(p for p in range(4) if owns(j.key, p, 4)) for j in judged}
    emitted = {p: _fired(_desk(partition=p, partitions=4), judged) for p in range(4)}
    assert emitted[owner_of[ALL]] == [(ALL, "firing")]  # the segment is explained on its owner too
    assert sum(len(e) for e in emitted.values()) == 1
    assert _desk(partition=5, partitions=4).owns(judged[0].key) == owns(judged[0].key, 1, 4)


# ---------------------------------------------------------------- the alert event
def test_build_alert_carries_the_transition_and_readable_evidence():
    j = _judge(SG, shift=2.0, kind="concept_drift", subject="error_rate", task="binary")
    j.evidence.baseline["nan"] = math.nan
    firing = build_alert("churn", "v1", j, Transition("firing", "abc", 90.0, 100.0), emitted_at=0.0)
    assert (firing.status, firing.severity, firing.recommendation) == ("firing", "critical", "retrain")
    assert firing.baseline["nan"] is None and firing.window["events"] == 500
    assert firing.started_at == "1970-01-01T00:01:30.000Z" and firing.emitted_at == "1970-01-01T00:00:00.000Z"
    assert firing.message.startswith("Accuracy of model churn v1 in segment country=SG fell")
    resolved = build_alert("churn", "v1", j, Transition("resolved", "abc", 90.0, 100.0), emitted_at=0.0)
    assert (resolved.severity, resolved.recommendation) == ("info", "none")
    assert alert_id(j.key, 7) != firing.alert_id  # the id is the transition's, not rebuilt here


def _incident(key: str, seq: int, now: float, *, fire: bool) -> Judgement:
    ev = DriftEvidence(fire, 1.0, 500, "adwin", seq, now, 1e-6, {}, {})
    kind, subject = key.split("/")[-3:-1]
    return Judgement(ALL, "numeric", ev, now, key, kind, subject, {}, 0.5, 1.5, fire=fire, clear=not fire, shift=2.0)


def test_a_retired_version_that_comes_back_never_reuses_an_alert_id() -> None:
    """Its stream positions start again, so incidents at the positions of its first life's (the first of
    them too, not only the latest) must still get new ids; a version whose name begins like it keeps its own."""
    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    key, canary = "churn/v1/data_drift/income/all", "churn/v1/canary/data_drift/income/all"
    ids: list[str] = []
    now = 0.0
    for life in range(3):
        for seq in (100, 500):
            now += 10.0
            fired = desk.decide([_incident(key, seq, now, fire=True)])
            ids += [t.alert_id for _, t in fired]
            assert [t.status for _, t in fired] == ["firing"]
            assert [t.status for _, t in desk.decide([_incident(key, seq, now + 1, fire=False)])] == ["resolved"]
        at = 1_000 * (life + 1)  # the canary's own stream goes on
        canary_fired = desk.decide([_incident(canary, at, now + 2, fire=True)])
        assert [t.alert_id for _, t in canary_fired] == [alert_id(canary, at)]
        desk.retire("churn", "v1", now + 5.0, 3600.0, others=["churn/v1/canary"])
        assert desk.lives == {"churn/v1": life + 1} and desk.lifecycle.is_firing(canary)
        desk.decide([_incident(canary, at, now + 6, fire=False)])
    assert len(ids) == len(set(ids)) == 6


def test_a_clear_window_that_began_before_the_change_does_not_resolve_its_alert():
    """Seen from outside: a segment's categorical drift fired on its rows in all traffic's window, resolved on the
    segment's own window of mostly earlier rows while its feed was still broken, and fired again 5 minutes on."""
    from dataclasses import replace

    desk = Alerting(AlertLifecycle(resolve_after_s=0.0, cooldown_s=0.0), explain_ratio=1.75)
    opened = _judge(("country", "BR"), now=100.0)  # located at 90
    assert _fired(desk, [opened]) == [(("country", "BR"), "firing")]

    def clear(now: float, window_start: float, detector: str) -> Judgement:
        j = _judge(("country", "BR"), shift=0.0, fire=False, clear=True, now=now)
        return replace(j, evidence=replace(j.evidence, detector=detector, change_time=window_start))

    assert _fired(desk, [clear(120.0, 60.0, "chi2")]) == []  # a window mostly of rows before the change
    assert _fired(desk, [clear(130.0, 60.0, "adwin")]) == [(("country", "BR"), "resolved")]  # a change point
    assert _fired(desk, [_judge(("country", "BR"), now=200.0)]) == [(("country", "BR"), "firing")]  # located 190
    assert _fired(desk, [clear(260.0, 195.0, "chi2")]) == [(("country", "BR"), "resolved")]  # a window after it
