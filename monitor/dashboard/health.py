"""The dashboard's words: a model version's health (healthy, watch, act) and why an open alert is still open,
in sentences a product manager reads (the package docstring of :mod:`monitor.dashboard` has the rules)."""

from __future__ import annotations

from typing import Any

from monitor.core.messages import number
from monitor.core.rules import segment_label

# Open alerts of these kinds mean the model's results are affected: the badge says Act.
RESULT_KINDS = frozenset(
    {"concept_drift", "performance", "business", "fairness", "rollback_recommended", "retrain_recommended"}
)
ACT_KINDS = RESULT_KINDS  # the former name
ACT_RECOMMENDATIONS = frozenset({"retrain", "rollback"})
KIND_WORDS = {
    "data_drift": "input drift",
    "prediction_drift": "prediction drift",
    "concept_drift": "concept drift",
    "performance": "performance",
    "fairness": "fairness gap",
    "schema": "schema change",
    "data_quality": "data quality",
    "latency": "latency",
    "business": "business outcome",
    "retrain_recommended": "retrain recommended",
    "rollback_recommended": "rollback recommended",
}


def _fmt(x: float) -> str:
    """Numbers as a person reads them (:func:`~monitor.core.messages.number`), with two decimals from 0.1 to 10:
    4,100 / 12.5 / 0.31 / 0.0312."""
    return f"{x:.2f}" if 0.1 <= abs(x) < 10 else number(x)


def affects_results(alert: dict[str, Any]) -> bool:
    """Whether an alert says the model's results are affected (or recommends retrain / rollback)."""
    return alert.get("kind") in RESULT_KINDS or alert.get("recommendation") in ACT_RECOMMENDATIONS


def describe(alert: dict[str, Any]) -> str:
    """``input drift on income in country=SG``: what an alert is about, in words.

    >>> describe({"kind": "data_drift", "subject": "income", "segment": {"country": "SG"}})
    'input drift on income in country=SG'
    """
    kind = str(alert.get("kind"))
    words = KIND_WORDS.get(kind, kind.replace("_", " "))
    segment = alert.get("segment")
    where = segment_label(segment) if isinstance(segment, dict) else None
    where_text = "" if where is None else (" in all traffic" if where == "all" else f" in {where}")
    return f"{words} on {alert.get('subject')}{where_text}"


def health(
    open_alerts: list[dict[str, Any]], accuracy: float | None = None, mae: float | None = None
) -> tuple[str, str]:
    """``(healthy | watch | act, reason)`` from the open incidents of one model version.

    The reason is about now: what is open, and whether the model's results are affected.
    ``accuracy`` (labelled, recent), or a regression model's ``mae``, is quoted when inputs changed and no
    result alert is open.

    >>> health([])
    ('healthy', 'No open alerts.')
    >>> state, reason = health([{"kind": "data_drift", "severity": "critical", "recommendation": "investigate",
    ...                          "subject": "income", "segment": {"country": "SG"}}], accuracy=0.871)
    >>> state
    'watch'
    >>> print(reason)
    Inputs changed: input drift on income in country=SG. No alert on the results; accuracy 87.1% (labelled, recent).
    >>> health([{"kind": "concept_drift", "severity": "warning", "recommendation": "retrain",
    ...          "subject": "accuracy", "segment": {}}])
    ('act', 'Results affected: concept drift on accuracy in all traffic (recommended: retrain).')
    """
    if not open_alerts:
        return "healthy", "No open alerts."
    urgent = [a for a in open_alerts if affects_results(a)]
    if urgent:
        rec = urgent[0].get("recommendation")
        tail = f" (recommended: {rec})" if rec in ACT_RECOMMENDATIONS else ""
        more = f" and {len(urgent) - 1} more" if len(urgent) > 1 else ""
        return "act", f"Results affected: {describe(urgent[0])}{more}{tail}."
    what = "; ".join(describe(a) for a in open_alerts[:3])
    if len(open_alerts) > 3:
        what += f" and {len(open_alerts) - 3} more"
    if accuracy is not None:
        acc = f"accuracy {100 * accuracy:.1f}% (labelled, recent)"
    elif mae is not None:  # a regression model: it has no accuracy, and "no labels" would be wrong
        acc = f"mean absolute error {mae:,.4g} (labelled, recent)"
    else:
        acc = "accuracy not measured yet (no labels)"
    return "watch", f"Inputs changed: {what}. No alert on the results; {acc}."


def now_sentence(detail: dict[str, Any]) -> str:
    """Why an open alert is still open, in one sentence about now.

    >>> now_sentence({"clear_since": None, "resolve_after_s": 10, "resolve_after_events": 200, "checks": [
    ...     {"name": "shift", "value": 0.11, "threshold": 0.5, "clears_below": 0.25, "unit": " sd", "holding": False},
    ...     {"name": "window PSI", "value": 1.0, "threshold": 0.2, "clears_below": 0.1, "unit": "", "holding": True}]})
    'Still open: window PSI 1.00 against 0.20 (clears below 0.10); shift 0.11 sd is back under 0.25 sd.'
    >>> now_sentence({"clear_since": "2026-01-01T00:00:00.000Z", "clear_for_s": 4.0, "resolve_after_s": 10,
    ...               "resolve_after_events": 0, "checks": []})
    'Back to normal for 4 s; it resolves after 10 s back to normal.'
    """
    checks = detail.get("checks") or []
    holding = [c for c in checks if c["holding"]]
    settled = [c for c in checks if not c["holding"] and c["value"] is not None]

    def stat(c: dict[str, Any]) -> str:
        return f"{c['name']} {_fmt(c['value'])}{c['unit']} against {_fmt(c['threshold'])}{c['unit']}"

    need = f"{detail['resolve_after_s']:g} s"
    if detail.get("resolve_after_events"):
        need += f" and {detail['resolve_after_events']:,} events"
    if detail.get("clear_since") is not None:
        held = detail.get("clear_for_s")
        since = f"for {held:.0f} s" if held is not None else "since " + str(detail["clear_since"])
        now = "; ".join(stat(c) for c in checks if c["value"] is not None)
        return f"Back to normal {since}{' (' + now + ')' if now else ''}; it resolves after {need} back to normal."
    if holding:
        parts = [f"{stat(c)} (clears below {_fmt(c['clears_below'])}{c['unit']})" for c in holding]
        text = "Still open: " + "; ".join(parts)
        if settled:
            text += "; " + "; ".join(
                f"{c['name']} {_fmt(c['value'])}{c['unit']} is back under {_fmt(c['clears_below'])}{c['unit']}"
                for c in settled
            )
        return text + "."
    if checks:
        now = "; ".join(stat(c) for c in checks if c["value"] is not None)
        return f"Still open: values are back ({now}); the change is confirmed clear at the stream's next evaluation."
    return "Still open: its condition has not cleared yet."
