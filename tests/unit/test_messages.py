"""Alert sentences say what changed and which way, whichever detector decided."""

from __future__ import annotations

from monitor.core.drift import DriftEvidence
from monitor.core.messages import alert_message
from monitor.core.rules import Judgement


def _window_judgement(baseline_mean: float, current_mean: float, direction: str) -> Judgement:
    evidence = DriftEvidence(
        detected=True,
        effect=1.3,
        events=1_000,
        detector="psi",
        change_seq=5,
        change_time=0.0,
        p_value=1e-9,
        baseline={"mean": baseline_mean},
        current={"mean": current_mean},
        direction=direction,
        extra={"window_test": True},
    )
    return Judgement(
        bucket=("country", "SG"),
        stream_kind="numeric",
        evidence=evidence,
        now=0.0,
        key="k",
        kind="data_drift",
        subject="income",
        segment={"country": "SG"},
        threshold=0.2,
        critical=0.5,
        fire=True,
        clear=False,
        shift=1.0,
    )


def test_a_window_test_alert_says_which_way_the_mean_moved() -> None:
    rose = alert_message("churn", "v1", _window_judgement(4325.0, 6139.0, "rose"), "firing")
    assert "country=SG" in rose and "PSI 1.30" in rose and "its mean rose from 4,325 to 6,139" in rose
    fell = alert_message("churn", "v1", _window_judgement(4325.0, 3000.0, "fell"), "firing")
    assert "its mean fell from 4,325 to 3,000" in fell


def test_a_resolution_reads_as_a_sentence_for_the_predictions_and_for_a_feature() -> None:
    from dataclasses import replace

    feature = replace(_window_judgement(4325.0, 4300.0, "fell"), fire=False, clear=True)
    feature.evidence.extra.clear()
    assert "Income in segment country=SG (model churn v1) is back near its usual level" in alert_message(
        "churn", "v1", feature, "resolved"
    )
    predictions = replace(feature, subject="prediction", kind="prediction_drift")
    said = alert_message("churn", "v1", predictions, "resolved")
    assert said.startswith("The predictions of model churn v1 in segment country=SG are back near their usual level")
