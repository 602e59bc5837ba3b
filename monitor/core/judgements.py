"""Judgements: a stream's evidence turned into what the alert rules decide on (fire, clear, how large).

The engine gathers the streams with something to judge; these functions say, for each, whether its drift
condition holds (sequential detectors or the baseline window test), and build the quality, retrain and
rollback judgements. They read a model version's state and settings and change nothing else in it (quality
judgements show a constant category's name in place of its code; decision judgements keep the retrain
streak): the alert lifecycle (``is_firing``) and the time of the partition's progress (``watermark``) are
passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace

from monitor.core.decisions import compare_versions, comparison_metric
from monitor.core.drift import CategoricalDriftTracker, DriftEvidence
from monitor.core.messages import shown
from monitor.core.model_state import PREDICTION, ModelState, Tracker
from monitor.core.numeric_streams import NumericStream
from monitor.core.quality import CHECKS, QualityFinding
from monitor.core.rules import ALL, Judgement, alert_key
from monitor.core.settings import DecisionsConfig, Settings
from monitor.core.significance import WindowResult


def drift_key(model: str, version: str, name: str, bucket: tuple[str, str]) -> str:
    """A drift stream's alert key."""
    kind = "prediction_drift" if name == PREDICTION else "data_drift"
    subject = "prediction" if name == PREDICTION else name
    segment = {} if bucket == ALL else {bucket[0]: bucket[1]}
    return alert_key(model, kind, subject, segment, version)


def needs_judging(
    state: ModelState, name: str, bucket: tuple[str, str], tracker: Tracker, key: str, is_firing: Callable[[str], bool]
) -> bool:
    """Only a stream with something to judge is judged on a batch: a detector has fired on it (ever), its
    latest window verdict is a discovery, or its alert (``key``) is open. Any other stream's judgement could
    neither open nor close an alert."""
    if isinstance(tracker, NumericStream):  # its table holds its window test too: no look-up by name
        block, i = tracker.streams, tracker.i
        if i < block.detectors.size and block.detectors.last_detector[i]:
            return True
        last = None if block.windows is None else block.windows.last[i]
        return (last is not None and last.significant) or is_firing(key)
    if tracker.last is not None and tracker.last.p_value < tracker.settings.categorical_alpha:
        return True
    test = state.window_test((name, *bucket))
    if test is not None and test.last is not None and test.last.significant:
        return True
    return is_firing(key)


def judge_drift(
    state: ModelState,
    name: str,
    bucket: tuple[str, str],
    tracker: Tracker,
    now: float,
    key: str,
    config: Settings,
    *,
    evidence: DriftEvidence | None = None,
) -> Judgement:
    """A drift stream's judgement: its sequential detectors' evidence, or its latest decided baseline window.
    ``evidence``: a categorical stream's, found elsewhere than in its own window (its rows in all traffic's
    window, :mod:`monitor.core.local_change`)."""
    cfg = config.alerts
    if isinstance(tracker, NumericStream):
        ev = tracker.judged_evidence()
        threshold, critical = cfg.min_effect_size, cfg.critical_effect_size
        enough = ev.events >= cfg.min_events
        shift = abs(ev.current.get("mean", 0.0) - ev.baseline.get("mean", 0.0)) if ev.events else 0.0
    else:
        ev = evidence if evidence is not None else tracker.evidence(shown(state.vocab[name].labels()))
        threshold, critical = cfg.min_distance, cfg.critical_distance
        enough = ev.events > 0
        shift = ev.effect
    significant = ev.p_value is not None and ev.p_value < cfg.max_p_value
    kind = "prediction_drift" if name == PREDICTION else "data_drift"
    subject = "prediction" if name == PREDICTION else name
    segment = {} if bucket == ALL else {bucket[0]: bucket[1]}
    fire = ev.detected and enough and significant and ev.effect >= threshold
    # a change found, significant and large enough, that has not had its test's events: attribution lets all
    # traffic wait for it when it is local (alerting.pending_local_change)
    pending = ev.detected and 0 < ev.events < cfg.min_events and significant and ev.effect >= threshold
    clear = enough and ev.effect < threshold * cfg.resolve_ratio
    statistic: float | None = None
    test = state.window_test((name, *bucket))
    verdict = test.last if test is not None else None
    if verdict is not None and verdict.significant is not None:
        # The baseline window test: a discovery of its round whose effect reaches the threshold.
        sig = config.significance
        stat = sig.numeric_statistic if tracker.kind == "numeric" else sig.categorical_statistic
        value, limit = verdict.statistic(stat), sig.threshold(stat)
        window_fire = verdict.significant and value >= limit
        clear = clear and value < limit * cfg.resolve_ratio
        if window_fire and not fire:
            # a window that straddles the change dilutes it: a change point the sequential detector found
            # already measures its size better, so attribution compares like with like across buckets
            found = shift if ev.detected and enough and shift == shift else 0.0
            fire, ev, statistic = True, window_evidence(state, name, tracker.kind, verdict, stat), value
            threshold, critical = limit, limit * sig.critical_ratio
            if tracker.kind == "numeric":
                shift = max(found, abs(verdict.current["mean"] - verdict.baseline["mean"]))
            else:  # total variation distance, as the sequential categorical detector's shift
                shift = max(found, float(verdict.current.get("distance", value)))
    return Judgement(
        bucket=bucket,
        stream_kind=tracker.kind,
        evidence=ev,
        now=now,
        key=key,
        kind=kind,
        subject=subject,
        segment=segment,
        threshold=threshold,
        critical=critical,
        fire=fire,
        clear=clear,
        shift=shift if shift == shift else 0.0,
        statistic=statistic,
        extra={
            **({"min_events": cfg.min_events, "pending": pending} if tracker.kind == "numeric" else {}),
            **({"window_end": verdict.time} if verdict is not None else {}),  # its latest window's last event
            **(
                {"test_end": tracker.last_time if evidence is None else evidence.change_time}
                if isinstance(tracker, CategoricalDriftTracker)
                else {}
            ),
        },
        position=tracker.position if isinstance(tracker, NumericStream) else tracker.count,
    )


def window_evidence(state: ModelState, name: str, kind: str, r: WindowResult, stat: str) -> DriftEvidence:
    """A decided baseline window as alert evidence; ``p_value`` is its Benjamini-Hochberg adjusted p-value."""
    tests = {"psi": round(r.psi, 6), "js": round(r.js, 6), "test": r.test, "p_value_raw": r.p_value}
    if r.ks is not None:
        tests["ks"] = round(r.ks, 6)
    if kind == "numeric":
        baseline = dict(r.baseline)
        current = {**r.current, **tests}
        direction = "rose" if r.current["mean"] > r.baseline["mean"] else "fell"
    else:
        labels = shown(state.vocab[name].labels())
        code = int(r.current["code"])
        category = labels[code] if code < len(labels) else str(code)
        baseline = {"category": category, "share": r.baseline["share"], "events": r.baseline["events"]}
        current = {"category": category, "share": r.current["share"], "events": r.events, **tests}
        direction = "rose" if r.current["rose"] else "fell"
    return DriftEvidence(
        detected=True,
        effect=r.statistic(stat),
        events=r.events,
        detector=stat,
        change_seq=r.seq,
        change_time=r.start_time if r.start_time == r.start_time else r.time,
        p_value=r.adjusted_p,
        baseline=baseline,
        current=current,
        direction=direction,
        extra={"window_test": True},
    )


def quality_judgements(
    state: ModelState, findings: list[QualityFinding], opened_by: Callable[[str], str | None]
) -> list[Judgement]:
    """One judgement per (kind, field): the first firing check in priority order names it, and an open alert
    with none firing is judged by the check that opened it (``opened_by``: None when not open), so that it
    resolves under its own name ("the constant value problem has cleared", not the first check's)."""
    by_key: dict[tuple[str, str], list[QualityFinding]] = {}
    for f in findings:
        by_key.setdefault((f.kind, f.feature), []).append(f)
    missing = {f.feature for f in findings if f.check == "missing_field" and f.fire}
    order = list(CHECKS)
    out: list[Judgement] = []
    for (kind, feature), group in by_key.items():
        group.sort(key=lambda f: order.index(f.check))
        if kind == "data_quality" and feature in missing:  # a dropped field is one schema alert, not two
            group = [f for f in group if f.check != "null_rate"] or group
        firing = [f for f in group if f.fire]
        key = alert_key(state.model, kind, feature, {}, state.version)
        opened = opened_by(key)
        if not firing and opened is None:
            continue  # nothing to open and nothing open to clear: most fields, most windows
        # (an opening check that runs no more, a new field adopted once reported: the rest say it cleared)
        f = (firing[0] if firing else next((g for g in group if g.check == opened), None)) or (
            replace(group[0], check=opened) if opened in CHECKS else group[0]
        )
        value = f.current.get("value")
        if f.check == "constant" and state.kinds.get(feature) == "categorical" and isinstance(value, int):
            names = state.vocab[feature].labels()
            f.current["value"] = names[value] if value < len(names) else str(value)
        ev = DriftEvidence(
            detected=bool(firing),
            effect=f.statistic,
            events=f.events,
            detector=f.check,
            change_seq=f.seq,
            change_time=f.start_time,
            p_value=f.p_value,
            baseline=f.baseline,
            current=f.current,
            direction="rose",
        )
        critical = math.inf if f.check in ("new_field", "constant") else 0.0 if kind == "schema" else 0.5
        out.append(
            Judgement(
                bucket=ALL,
                stream_kind=state.kinds.get(feature, ""),
                evidence=ev,
                now=f.end_time,
                key=key,
                kind=kind,
                subject=feature,
                segment={},
                threshold=f.threshold,
                critical=critical,
                fire=bool(firing),
                clear=all(g.clear for g in group),
                shift=f.statistic,
                statistic=f.statistic,
                extra={
                    "check": f.check,
                    # a null-rate alert cleared because the field stopped arriving: the schema alert goes on
                    **({"moved_to": "missing_field"} if opened == "null_rate" and feature in missing else {}),
                },
            )
        )
    return out


def retrain_judgement(state: ModelState, cfg: DecisionsConfig, watermark: float) -> Judgement:
    """Retrain when the labelled problem held at ``retrain_windows`` checks, or enough key inputs drift."""
    r = state.retrain
    important = cfg.important_features or sorted(n for n in state.kinds if n != PREDICTION)
    drifting = sorted(set(important) & state.drifting)
    by_drift = bool(cfg.retrain_drift_features) and len(drifting) >= cfg.retrain_drift_features
    by_labels = r.streak >= cfg.retrain_windows
    labelled = state.perf.buckets[ALL].labelled if state.perf is not None and ALL in state.perf.buckets else 0
    # The check happens when its last label is known: that label's time, not how far predictions got.
    perf = state.perf
    now = perf.buckets[ALL].last_label_time if perf is not None and ALL in perf.buckets else math.nan
    if now != now:
        now = max(state.last_event_time, watermark)
    # (predictions run ahead of the labels that date the check: no window may start after it ends)
    since = r.problem_since if by_labels else min(state.last_event_time, now)
    ev = DriftEvidence(
        detected=by_labels or by_drift,
        effect=float(r.streak if by_labels else len(drifting)),
        events=labelled,
        detector="retrain_policy",
        change_seq=labelled if by_labels else state.events,
        change_time=since,
        p_value=r.evidence.get("p_value") if by_labels else None,  # type: ignore[arg-type]
        baseline={k: v for k, v in r.evidence.items() if k.startswith("baseline_")},
        current={
            "problem_checks": r.streak,
            "drifting_features": drifting,
            **{k: v for k, v in r.evidence.items() if k.startswith("current_") or k == "problem"},
        },
        direction="",
        extra={"by_labels": by_labels, "by_drift": by_drift},
    )
    return Judgement(
        bucket=ALL,
        stream_kind="decision",
        evidence=ev,
        now=now,
        key=alert_key(state.model, "retrain_recommended", "model", {}, state.version),
        kind="retrain_recommended",
        subject="model",
        segment={},
        threshold=float(cfg.retrain_windows if by_labels else cfg.retrain_drift_features),
        critical=math.inf,
        fire=by_labels or by_drift,
        clear=r.streak == 0 and not by_drift,
        shift=0.0,
        statistic=ev.effect,
        extra={"drifting": drifting, "window_labels": cfg.window_labels},
    )


def rollback_judgement(
    state: ModelState, versions: Iterable[ModelState], config: Settings, watermark: float
) -> Judgement | None:
    """Compare this version's labelled window with the previous version's (the latest of ``versions`` started
    before it)."""
    cfg = config.decisions
    perf = state.perf
    if perf is None or perf.task is None or ALL not in perf.buckets:
        return None
    previous = _earlier_versions(state, versions)
    if not previous:
        return None
    prev = max(previous, key=lambda s: s.first_event_time)
    assert prev.perf is not None
    rows_new = perf.buckets[ALL].window.ring.rows()
    rows_prev = prev.perf.buckets[ALL].window.ring.rows()
    enough = min(rows_new.shape[0], rows_prev.shape[0]) >= cfg.rollback_min_labels
    if not enough:
        return None
    c = compare_versions(perf.task, rows_prev, rows_new, config.performance.threshold)
    worse = c.worse_by >= cfg.rollback_min_difference and c.p_value < cfg.rollback_max_p_value
    ev = DriftEvidence(
        detected=worse,
        effect=c.worse_by,
        events=c.new_events,
        detector=c.test,
        change_seq=perf.buckets[ALL].labelled,
        change_time=state.first_event_time,
        p_value=c.p_value,
        baseline={"version": prev.version, c.metric: c.previous, "events": c.previous_events},
        current={"version": state.version, c.metric: c.new, "events": c.new_events},
        direction="fell" if c.metric == "accuracy" else "rose",
    )
    return Judgement(
        bucket=ALL,
        stream_kind="decision",
        evidence=ev,
        now=watermark,
        key=alert_key(state.model, "rollback_recommended", c.metric, {}, state.version),
        kind="rollback_recommended",
        subject=c.metric,
        segment={},
        threshold=cfg.rollback_min_difference,
        critical=0.0,
        fire=worse,
        clear=c.worse_by < cfg.rollback_min_difference / 2 or c.p_value > 0.5,
        shift=0.0,
        statistic=c.worse_by,
        extra={"previous_version": prev.version, "metric": c.metric},
    )


def _earlier_versions(state: ModelState, versions: Iterable[ModelState]) -> list[ModelState]:
    """The versions of the same model, with labelled windows of the same task, that started before ``state``."""
    perf = state.perf
    assert perf is not None
    return [
        s
        for s in versions
        if s.model == state.model
        and s is not state
        and s.first_event_time < state.first_event_time
        and s.perf is not None
        and s.perf.task == perf.task
        and ALL in s.perf.buckets
    ]


def rollback_withdrawn(
    state: ModelState, versions: Iterable[ModelState], is_firing: Callable[[str], bool], watermark: float
) -> Judgement | None:
    """A rollback recommendation of ``state`` that is open while no earlier version is left to compare with
    (the one it named was retired): its condition no longer holds, so it resolves as any other would."""
    perf = state.perf
    if perf is None or perf.task is None or ALL not in perf.buckets:
        return None
    metric = comparison_metric(perf.task)
    key = alert_key(state.model, "rollback_recommended", metric, {}, state.version)
    if not is_firing(key) or _earlier_versions(state, versions):
        return None
    ev = DriftEvidence(
        detected=False, effect=0.0, events=0, detector="none", change_seq=perf.buckets[ALL].labelled,
        change_time=state.first_event_time, p_value=None, baseline={"version": None},
        current={"version": state.version},
    )  # fmt: skip
    return Judgement(
        bucket=ALL, stream_kind="decision", evidence=ev, now=watermark, key=key, kind="rollback_recommended",
        subject=metric, segment={}, threshold=0.0, critical=0.0, fire=False, clear=True, shift=0.0,
        extra={"previous_version": None, "metric": metric},
    )  # fmt: skip


def _errors(j: Judgement) -> bool:
    """Concept drift: judged on the error stream, which a fixed break restarts (a performance alert's window
    is not)."""
    return j.kind == "concept_drift"


def decision_judgements(
    state: ModelState,
    judged: list[Judgement],
    versions: Iterable[ModelState],
    config: Settings,
    is_firing: Callable[[str], bool],
    watermark: float,
) -> list[Judgement]:
    """After a labelled batch's ``judged``: the retrain bookkeeping (``state.retrain``), then the retrain and
    rollback judgements that are due."""
    cfg = config.decisions
    overall = [j for j in judged if j.bucket == ALL and j.kind in ("concept_drift", "performance")]
    overall = [j for j in overall if j.subject != "estimated_accuracy"]
    r = state.retrain
    if overall:
        # A problem holds while its condition fires or its alert is still open (a fresh change point inside
        # an open incident is no recovery), so the streak does not depend on where batches were cut.
        # After a restart at a fixed break (RetrainState.restarted) only the restarted error stream's own test
        # counts: the open alert was the break's, and a performance window still holds its labels. That lasts
        # until the test fires, the break's alerts have resolved, or the stream has had its test's labels since
        # the fix and the errors are significantly up, short of the threshold (a problem that held on; noise on
        # its first labels is not, or a recovering stream would count its open alert before it clears).
        restarted = r.restarted
        problem = next(
            (j for j in overall if (j.fire or is_firing(j.key)) and (not restarted or (j.fire and _errors(j)))),
            None,
        )
        held_on = any(
            _errors(j)
            and j.evidence.events >= int(j.extra.get("min_events", 0))
            and not j.clear
            and j.evidence.p_value is not None
            and j.evidence.p_value < config.alerts.max_p_value
            for j in overall
        )
        if restarted and (problem is not None or held_on or not any(is_firing(j.key) for j in overall)):
            r.restarted = False
        if problem is not None and not r.problem:
            r.problem_since = problem.evidence.change_time
        r.problem = problem is not None
        if problem is not None:
            ev = problem.evidence
            r.evidence = {
                "problem": f"{problem.kind}:{problem.subject}",
                "p_value": ev.p_value if ev.p_value is not None else math.nan,
                **{f"baseline_{k}": v for k, v in ev.baseline.items() if isinstance(v, int | float)},
                **{f"current_{k}": v for k, v in ev.current.items() if isinstance(v, int | float)},
            }
    perf = state.perf
    labelled = perf.buckets[ALL].labelled if perf is not None and ALL in perf.buckets else 0
    out: list[Judgement] = []
    if r.check(labelled, cfg.window_labels):
        out.append(retrain_judgement(state, cfg, watermark))
    versions = list(versions)
    rollback = rollback_judgement(state, versions, config, watermark)
    if rollback is None:
        rollback = rollback_withdrawn(state, versions, is_firing, watermark)
    if rollback is not None:
        out.append(rollback)
    return out
