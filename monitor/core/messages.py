"""The sentences people read: every alert's ``message``, built from its judgement's numbers.

Wording lives in one module so it can be reviewed in one place and tested with examples; the engine
and the judges never write prose themselves.

>>> number(4147.2), number(12.54), number(0.3121), pct(0.125), pct(None)
('4,147', '12.5', '0.312', '12%', 'n/a')
"""

from __future__ import annotations

import math
from typing import Any

from monitor.core.metrics import CLASSIFIER_TASKS
from monitor.core.rules import Judgement, segment_label
from monitor.core.stats import OVERFLOW

OTHER_VALUES = "(other values)"
# Metric names as a sentence begins them, where spelling out the snake_case name would read wrong
METRIC_NAMES = {
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "mae": "MAE",
    "rmse": "RMSE",
    "mape": "MAPE",
    "macro_precision": "Macro-averaged precision",
    "macro_recall": "Macro-averaged recall",
    "macro_f1": "Macro-averaged F1",
}


def number(x: float) -> str:
    """Numbers as a person reads them: 4,100 / 12.5 / 0.312."""
    if x != x:
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:,.1f}"
    return f"{x:.3g}"


def pct(x: Any) -> str:
    """A share as a whole percentage (0.125 -> 12%); anything not a number reads "n/a"."""
    return "n/a" if not isinstance(x, int | float) or x != x else f"{100 * x:.0f}%"


# How a broken input reads in a labelled problem's message (monitor.core.incidents.broken_input)
BREAK_WORDS = {
    "missing_field": "is missing",
    "type_change": "arrives with another type",
    "null_rate": "arrives empty",
    "out_of_range": "arrives out of its usual range",
    "unseen_category": "arrives with categories never seen",
    "constant": "arrives with a single value",
}


def alert_message(
    model: str, version: str, j: Judgement, status: str, *, broken_input: tuple[str, str] | None = None
) -> str:
    """One plain sentence a product manager understands; ``broken_input`` (field, check): an open break of an
    input that explains a labelled problem, said after it with what to do first."""
    text = _alert_message(model, version, j, status, broken=broken_input is not None)
    if broken_input is None or status != "firing":
        return text
    field_name, check = broken_input
    return (
        f"{text} Input {field_name} {BREAK_WORDS.get(check, 'is broken')} (its own alert is open): if its feed "
        "is broken, fix it before retraining; a model retrained on it would learn the break."
    )


def _alert_message(model: str, version: str, j: Judgement, status: str, *, broken: bool = False) -> str:
    ev = j.evidence
    where = "across all traffic" if not j.segment else "in segment " + segment_label(j.segment)
    of_model = f"model {model} {version}"
    firing = status == "firing"
    if ev.detector == "withdrawn":  # opened while the model read as binary; its labels showed another task
        name = "Estimated accuracy" if j.subject == "estimated_accuracy" else "The accuracy alert"
        if j.kind == "performance" and j.subject not in ("estimated_accuracy", "accuracy_vs_baseline"):
            name = "The " + METRIC_NAMES.get(j.subject, j.subject.replace("_", " ")) + " floor"
        shown_by = "its predictions' scores" if ev.current.get("by") == "scores" else "its labels"
        was = "regression" if ev.current.get("was") == "regression" else "binary classifier"
        return (
            f"{name} of {of_model} {where} no longer applies: {shown_by} show a {ev.current.get('task')} model, "
            f"not the {was} its first predictions or labels were taken for."
        )
    if j.kind == "concept_drift":
        drifting = j.extra.get("inputs_drifting") or []
        inputs = (
            f"while input drift is also firing for {', '.join(drifting)}"
            if drifting
            else "with an input broken"  # (the sentence after it says which)
            if broken
            else "with no input drift alert open for this model version (the relation between inputs and outcome "
            "may have changed)"
        )
        if j.extra.get("task") in CLASSIFIER_TASKS:
            before = pct(1 - ev.baseline.get("mean", math.nan))
            now = pct(1 - ev.current.get("mean", math.nan))
            if firing:
                return (
                    f"Accuracy of {of_model} {where} fell from {before} to {now} over the last "
                    f"{ev.events:,} labelled predictions, {inputs}."
                )
            return f"Accuracy of {of_model} {where} is back near its usual level: {now} against {before} before."
        before, now = number(ev.baseline.get("mean", math.nan)), number(ev.current.get("mean", math.nan))
        if firing:
            return (
                f"The mean absolute error of {of_model} {where} grew from {before} to {now} over the last "
                f"{ev.events:,} labelled predictions, {inputs}."
            )
        return f"The mean absolute error of {of_model} {where} is back near its usual level ({now} against {before})."
    if j.kind == "performance" and j.subject == "accuracy_vs_baseline":
        before, now = pct(ev.baseline.get("accuracy")), pct(ev.current.get("accuracy"))
        if firing:
            return (
                f"Accuracy of {of_model} is {now} over the last {ev.events:,} labelled predictions against {before} "
                f"on its baseline data ({ev.baseline.get('source')}), a significant drop (p = {ev.p_value:.2g})."
            )
        return f"Accuracy of {of_model} is back near its baseline level ({now} against {before})."
    if j.kind == "performance" and j.subject == "estimated_accuracy":
        before = pct(ev.baseline.get("estimated_accuracy"))
        now = pct(ev.current.get("estimated_accuracy"))
        if firing:
            return (
                f"Estimated accuracy of {of_model} {where} fell from {before} to {now} over the last "
                f"{ev.events:,} predictions (estimated from the model's scores, before labels arrive)."
            )
        return f"Estimated accuracy of {of_model} {where} is back near its usual level ({now})."
    if j.kind == "performance":
        name = METRIC_NAMES.get(j.subject, j.subject.replace("_", " ").capitalize())
        value = ev.current.get(j.subject, math.nan)
        shown = pct(value) if j.subject not in ("log_loss", "brier", "mae", "rmse") else number(value)
        floor = pct(j.threshold) if j.subject not in ("log_loss", "brier", "mae", "rmse") else number(j.threshold)
        side = "above its ceiling" if ev.direction == "rose" else "below its floor"
        if firing:
            return (
                f"{name} of {of_model} {where} is {shown}, {side} of {floor} (last {ev.events:,} labelled predictions)."
            )
        return f"{name} of {of_model} {where} is back within its limit ({shown})."
    if j.kind == "business":
        before, now = number(ev.baseline.get("mean", math.nan)), number(ev.current.get("mean", math.nan))
        if firing:
            return (
                f"{j.subject.replace('_', ' ').capitalize()} for {of_model} {where} fell from a mean of {before} "
                f"to {now} over the last {ev.events:,} labelled predictions."
            )
        return f"{j.subject.replace('_', ' ').capitalize()} for {of_model} {where} is back near its usual level."
    if j.kind == "latency":
        before = number(ev.baseline.get("typical_ms", math.nan))
        now = number(ev.current.get("typical_ms", math.nan))
        if firing:
            return (
                f"Serving latency of {of_model} rose from a typical {before} ms to {now} ms "
                f"over the last {ev.events:,} predictions."
            )
        return f"Serving latency of {of_model} is back near its usual {before} ms."
    if j.kind == "fairness":
        return fairness_message(of_model, j, firing)
    if j.kind in ("schema", "data_quality"):
        return quality_message(of_model, j, firing)
    if j.kind == "retrain_recommended":
        if not firing:
            return f"The reasons to retrain {of_model} no longer hold."
        if j.extra.get("drifting") and ev.extra.get("by_drift"):
            names = ", ".join(j.extra["drifting"])
            return (
                f"Retrain {of_model}: {len(j.extra['drifting'])} of its important inputs drift significantly ({names})."
            )
        kind, _, subject = str(ev.current.get("problem", "")).partition(":")
        if kind == "concept_drift":
            problem = f"concept drift in {subject.replace('_', ' ')}"
        elif subject == "accuracy_vs_baseline":
            problem = "accuracy significantly below its baseline level"
        elif subject:
            problem = f"{subject.replace('_', ' ')} beyond its limit"
        else:
            problem = "a significant performance problem"
        return (
            f"Retrain {of_model}: {problem} has held for {ev.current.get('problem_checks')} "
            f"consecutive checks of {j.extra.get('window_labels')} labelled predictions each."
        )
    if j.kind == "rollback_recommended":
        prev = ev.baseline.get("version")
        metric = j.extra.get("metric", "accuracy")
        if not firing and prev is None:
            return f"Version {version} of {model} has no earlier version left to compare with (it was retired)."
        if not firing:
            return f"Version {version} of {model} is no longer significantly worse than {prev}."
        if metric == "accuracy":
            return (
                f"Roll back {model} from {version} to {prev}: {version} is right on {pct(ev.current.get('accuracy'))} "
                f"of its last {ev.events:,} labelled predictions against {pct(ev.baseline.get('accuracy'))} "
                f"for {prev} (one-sided two-proportion z-test, p = {ev.p_value:.2g})."
            )
        return (
            f"Roll back {model} from {version} to {prev}: its mean absolute error is "
            f"{number(ev.current.get('mae', math.nan))} against {number(ev.baseline.get('mae', math.nan))} "
            f"for {prev} (one-sided Welch t-test, p = {ev.p_value:.2g})."
        )
    # data and prediction drift
    what = f"The predictions of {of_model}" if j.subject == "prediction" else j.subject.replace("_", " ").capitalize()
    suffix = "" if j.subject == "prediction" else f" ({of_model})"
    if firing and ev.extra.get("window_test"):
        test = f"{ev.detector.upper()} {ev.effect:.2f} against the baseline, adjusted p = {ev.p_value:.2g}"
        if j.stream_kind == "numeric":
            before, now = number(ev.baseline.get("mean", math.nan)), number(ev.current.get("mean", math.nan))
            name = "the predictions" if j.subject == "prediction" else j.subject
            moved = ev.direction or "moved"
            return (
                f"The distribution of {name} {where}{suffix} moved away from its baseline over the last "
                f"{ev.events:,} predictions ({test}); its mean {moved} from {before} to {now}."
            )
        cat = ev.current.get("category", "?")
        return (
            f"The mix of {j.subject} values {where}{suffix} moved away from its baseline over the last "
            f"{ev.events:,} predictions ({test}); {j.subject}={cat} {ev.direction} from "
            f"{pct(ev.baseline.get('share'))} to {pct(ev.current.get('share'))}."
        )
    if j.stream_kind == "numeric":
        before, now = number(ev.baseline.get("mean", math.nan)), number(ev.current.get("mean", math.nan))
        if firing:
            return (
                f"{what} {where}{suffix} {ev.direction} from a mean of {before} to {now} "
                f"over the last {ev.events:,} predictions."
            )
        back = "are back near their" if j.subject == "prediction" else "is back near its"
        return f"{what} {where}{suffix} {back} usual level: mean {now} against {before} before."
    cat = ev.current.get("category", "?")
    if firing:
        return (
            f"The share of {j.subject}={cat} {where}{suffix} {ev.direction} from "
            f"{pct(ev.baseline.get('share'))} to {pct(ev.current.get('share'))} "
            f"over the last {ev.events:,} predictions."
        )
    return f"The mix of {j.subject} values {where}{suffix} is back near its usual shares."


# What each parity metric compares, and its name, as a product manager reads them.
FAIRNESS_WORDS = {
    "demographic_parity": ("Selection rate (share of positive predictions)", "demographic parity"),
    "equal_opportunity": ("True positive rate (share of actual positives the model catches)", "equal opportunity"),
    "equalized_odds": ("The larger error-rate gap (true or false positive rate)", "equalized odds"),
    "predictive_parity": ("Precision (share of positive predictions that are right)", "predictive parity"),
}


def fairness_message(of_model: str, j: Judgement, firing: bool) -> str:
    """A parity gap (or a four-fifths ratio) between a group and its reference group, with its interval."""
    ev = j.evidence
    attribute = j.extra.get("attribute", "")
    group = f"{attribute}={ev.current.get('group')}"
    ref = f"{attribute}={ev.baseline.get('group')}"
    low, high = j.extra.get("low", math.nan), j.extra.get("high", math.nan)
    if j.subject == "disparate_impact":
        ratio = j.statistic if j.statistic is not None else math.nan
        if firing:
            return (
                f"For {of_model}, {group} gets positive predictions at {ratio:.2f} times the rate of {ref} "
                f"({pct(ev.current.get('rate'))} against {pct(ev.baseline.get('rate'))}, interval {low:.2f} to "
                f"{high:.2f}): outside the four-fifths rule ({j.threshold:g})."
            )
        return f"For {of_model}, the selection rates of {group} and {ref} are back within the four-fifths rule."
    what, name = FAIRNESS_WORDS.get(j.subject, (j.subject, j.subject))
    gap = (j.statistic or 0.0) * 100
    if firing:
        return (
            f"{what} for {group} is {pct(ev.current.get('rate'))} against {pct(ev.baseline.get('rate'))} for {ref} "
            f"({of_model}): a gap of {gap:+.0f} points (interval {100 * low:+.0f} to {100 * high:+.0f}) over the "
            f"last {ev.events:,} {FAIRNESS_COUNTED.get(j.subject, 'predictions')} of the group, beyond the "
            f"{100 * j.threshold:.0f}-point limit for {name}."
        )
    return f"The {name} gap between {group} and {ref} ({of_model}) is no longer significantly beyond its limit."


# what a fairness gap's count is of: the trials of the rate compared (selection rate: predictions; true
# positive rate: labelled positives; ...), not the group's predictions
FAIRNESS_COUNTED = {
    "demographic_parity": "predictions",
    "equal_opportunity": "labelled positives",
    "equalized_odds": "labelled positives or negatives (the side of the larger gap)",
    "predictive_parity": "labelled positive predictions",
}


def quality_message(of_model: str, j: Judgement, firing: bool) -> str:
    """A schema or data-quality check that fired (or cleared) on a field, in the words of that check."""
    ev = j.evidence
    check, field_name = j.extra.get("check", ""), j.subject
    if not firing and j.extra.get("moved_to") == "missing_field":
        return (
            f"The null rate problem of field {field_name} ({of_model}) goes on as a missing field: the field "
            "is no longer sent (see its schema alert)."
        )
    if not firing:
        return f"The {check.replace('_', ' ')} problem of field {field_name} ({of_model}) has cleared."
    last = f"the last {ev.events:,} predictions of {of_model}"
    rate, base = pct(ev.current.get("rate")), pct(ev.baseline.get("rate"))
    if check == "missing_field":
        return f"Field {field_name} is missing from {rate} of {last} (baseline {base}): an upstream schema change."
    if check == "new_field":
        return f"A new field {field_name} appears in {rate} of {last}; the baseline schema does not have it."
    if check == "type_change":
        expected = "a number" if ev.current.get("expected") == "numeric" else "a category (string)"
        got = "a string" if ev.current.get("arrived") == "string" else "a number"
        return f"Field {field_name} arrives as {got} in {rate} of {last}; the baseline has it as {expected}."
    if check == "null_rate":
        return f"Field {field_name} is empty (null or absent) in {rate} of {last}, against {base} in the baseline."
    if check == "out_of_range":
        lo, hi = number(ev.baseline.get("min", math.nan)), number(ev.baseline.get("max", math.nan))
        return f"{rate} of {field_name} values in {last} are outside the baseline range {lo} to {hi}."
    if check == "unseen_category":
        example = ev.current.get("example") or "?"
        return f"{rate} of {field_name} values in {last} are categories the baseline never had (e.g. {example})."
    if check == "constant":
        return f"Field {field_name} has had a single value in {last}; in the baseline it varies."
    return f"Field {field_name} of {of_model} failed the {check} check."


def shown(labels: list[str]) -> list[str]:
    """Category names as people read them: the overflow code is "other values", not an internal name."""
    return [OTHER_VALUES if label == OVERFLOW else label for label in labels]


def duration(seconds: float) -> str:
    """A span of time in the largest whole unit that fits: 7 days, 3 hours, 90 seconds.

    >>> duration(7 * 86400), duration(3600), duration(5400), duration(90)
    ('7 days', '1 hour', '90 minutes', '90 seconds')
    """
    units = (("day", 86400), ("hour", 3600), ("minute", 60))
    for unit, size in units:
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    for unit, size in units:
        if seconds >= 2 * size:
            return f"{number(seconds / size)} {unit}s"
    return f"{seconds:,.0f} seconds" if seconds >= 10 else f"{seconds:g} seconds"


def retired_message(model: str, version: str, idle_s: float) -> str:
    """Why an alert resolves with no judgement behind it: its model version stopped receiving predictions."""
    return (
        f"Model {model} {version} has received no predictions for {duration(idle_s)}: it is no longer monitored, "
        "and this alert closes with it."
    )
