"""The alert vocabulary: readable keys and times (the lifecycle's tests are in test_alerting.py)."""

from __future__ import annotations

from monitor.core.rules import Alert, alert_key, in_decision_order, iso


def test_keys_and_times_are_readable():
    assert alert_key("m", "data_drift", "x", {}, "v1") == "m/v1/data_drift/x/all"
    assert alert_key("m", "data_drift", "x", {"b": "2", "a": "1"}) == "m/data_drift/x/a=1,b=2"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z" and iso(float("nan")) is None


def _alert(key: str, status: str, detected: float, resolved: float | None = None) -> Alert:
    return Alert(
        alert_id=key, key=key, status=status, kind="data_drift", severity="warning", model="m", model_version="v1",
        subject=key, segment={}, detector="psi", statistic=None, threshold=None, p_value=None, baseline={},
        current={}, window={}, recommendation="", message="", started_at=None, emitted_at=None,
        detected_at=iso(detected), resolved_at=iso(resolved),
    )  # fmt: skip


def test_a_batchs_alerts_go_out_in_the_event_time_order_of_their_decisions():
    a_fires, b_fires = _alert("a", "firing", 10.0), _alert("b", "firing", 20.0)
    a_resolves = _alert("a", "resolved", 10.0, 15.0)  # (decided at 15: before b fired)
    ordered = in_decision_order([a_fires, b_fires, a_resolves])  # as a batch judged a, then b, then a's round
    assert [(x.key, x.status) for x in ordered] == [("a", "firing"), ("a", "resolved"), ("b", "firing")]
    ties = [_alert("c", "firing", 5.0), _alert("d", "firing", 5.0)]
    assert in_decision_order(ties) == ties  # stable
    timeless = [_alert("e", "firing", 9.0), _alert("f", "firing", float("nan"))]
    assert in_decision_order(timeless) == timeless  # one without a time: left as they came


def test_the_events_of_one_alert_keep_their_order_whatever_their_times():
    opened = _alert("g", "firing", 50.0)
    resolved = _alert("g", "resolved", 50.0, 30.0)  # dated before it opened (a round at an earlier event)
    other = _alert("h", "firing", 40.0)
    ordered = in_decision_order([opened, other, resolved])
    assert [(x.key, x.status) for x in ordered] == [("h", "firing"), ("g", "firing"), ("g", "resolved")]
