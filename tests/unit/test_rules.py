"""Alert lifecycle: hysteresis, resolve delay, cooldown, deterministic ids."""

from __future__ import annotations

from monitor.core.rules import AlertLifecycle, alert_id, alert_key, iso


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


def test_keys_and_times_are_readable():
    assert alert_key("m", "data_drift", "x", {}, "v1") == "m/v1/data_drift/x/all"
    assert alert_key("m", "data_drift", "x", {"b": "2", "a": "1"}) == "m/data_drift/x/a=1,b=2"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z" and iso(float("nan")) is None
