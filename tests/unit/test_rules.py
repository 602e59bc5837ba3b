"""The alert vocabulary: readable keys and times (the lifecycle's tests are in test_alerting.py)."""

from __future__ import annotations

from monitor.core.rules import alert_key, iso


def test_keys_and_times_are_readable():
    assert alert_key("m", "data_drift", "x", {}, "v1") == "m/v1/data_drift/x/all"
    assert alert_key("m", "data_drift", "x", {"b": "2", "a": "1"}) == "m/data_drift/x/a=1,b=2"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z" and iso(float("nan")) is None
