"""Baseline profiles through a real broker: built by `monitor baseline`, loaded at start, used from the first event.

A profile built from the training table gives the monitor the schema from the first event, so a field
that starts arriving with the wrong type is one ``schema`` alert, with no warm-up in between; a profile
the monitor cannot use stops ``monitor run`` at start with a message that names the field.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest

from monitor.app import Monitor
from monitor.cli import main
from monitor.core.baseline import BaselineProfile
from monitor.io.alert_sink import DLQ_REASON, DLQ_TOPIC
from monitor.io.broker import free_port
from monitor.simulate import TrafficGenerator

from .conftest import config_for, produce, read_to_end, scrape_metrics, total, wait_consumed

SCHEMAS = Path(__file__).resolve().parents[2] / "monitor" / "schemas"
TRAINING_ROWS = 5_000
NORMAL_EVENTS = 3_000
BROKEN_EVENTS = 2_000  # income arrives as a string
MALFORMED = [
    (b"not json at all", "invalid_json"),
    (b'{"model": "churn", "features": {}, "prediction": 1}', "missing_field"),
]
SCHEMA_KEY = "churn/v1/schema/income/all"


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn/v1 profile, built with `monitor baseline` from a training CSV of generated traffic."""
    tmp = tmp_path_factory.mktemp("baseline")
    data, out = tmp / "train.csv", tmp / "churn-v1.json"
    events = list(TrafficGenerator(seed=101).predictions(TRAINING_ROWS))
    columns = [*events[0]["features"], "prediction", "country", "gender"]
    with data.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for ev in events:
            writer.writerow({**ev["features"], "prediction": ev["prediction"], **ev["segments"]})
    argv = ["baseline", str(data), "--model", "churn", "--model-version", "v1", "--prediction", "prediction"]
    assert main([*argv, "--segments", "country,gender", "--no-progress", "--out", str(out)]) == 0
    profile = BaselineProfile.load(out)
    assert (profile.model, profile.model_version, profile.events) == ("churn", "v1", TRAINING_ROWS)
    assert profile.schema["income"].type == "numeric" and profile.schema["income"].mismatch_rate == 0.0
    assert profile.schema["plan"].type == "categorical" and "country" not in profile.schema
    assert ("income", "country", "SG") in profile.streams and ("prediction", "", "") in profile.streams
    return out


def test_profile_at_start_and_a_type_change_through_kafka(broker, topics, profile_path):
    names = topics(partitions=3)
    config = config_for(broker, names, baseline={"profiles": [str(profile_path)]})
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    try:
        assert mon.wait_ready(30), "monitor did not get partitions"
        assert len(mon.service.profiles) == 1
        gen = TrafficGenerator(seed=7)  # same model, other draws than the training table
        records = [(ev["prediction_id"].encode(), orjson.dumps(ev)) for ev in gen.predictions(NORMAL_EVENTS)]
        for i, (raw, _) in enumerate(MALFORMED):
            records.insert(500 + i * 1000, (f"bad-{i}".encode(), raw))
        for ev in gen.predictions(BROKEN_EVENTS):
            ev["features"]["income"] = f"{ev['features']['income']:.2f}"  # an upstream change: numbers as text
            records.append((ev["prediction_id"].encode(), orjson.dumps(ev)))
        produce(broker.bootstrap, names["predictions"], records)
        valid = NORMAL_EVENTS + BROKEN_EVENTS

        # Everything the monitor publishes about these events is on its topics once it has committed them.
        wait_consumed(
            broker.bootstrap, config.kafka.group_id, [names["predictions"], names["labels"]], ports=[mon.http.port]
        )
        assert total(scrape_metrics(mon.http.port), "monitor_events_total") == valid

        def schema_alerts(messages):
            return [m for m in messages if orjson.loads(m.value())["kind"] == "schema"]

        # Read to the end offsets: a second (wrong) schema alert would be there by now.
        messages = read_to_end(broker.bootstrap, names["alerts"])
        assert len(schema_alerts(messages)) >= 1
        alerts = [orjson.loads(m.value()) for m in messages]
        firing = [a for a in alerts if a["status"] == "firing"]
        schema_firing = [a for a in firing if a["kind"] == "schema"]
        assert [a["key"] for a in schema_firing] == [SCHEMA_KEY], [a["key"] for a in alerts]
        # Nothing else fires: the profile matches the normal traffic, and the strings are no drift or quality issue.
        assert [a["key"] for a in firing] == [SCHEMA_KEY], [a["key"] for a in alerts]
        alert = schema_firing[0]
        jsonschema.validate(alert, json.loads((SCHEMAS / "alert.schema.json").read_text()))
        assert alert["detector"] == "type_change" and alert["subject"] == "income" and alert["segment"] == {}
        assert (alert["model"], alert["model_version"]) == ("churn", "v1")
        assert alert["current"]["expected"] == "numeric" and alert["current"]["arrived"] == "string"
        # The first quality window that holds enough strings fires (it may also hold the last numbers).
        assert alert["baseline"]["rate"] == 0.0 and alert["threshold"] == pytest.approx(config.quality.min_rate_change)
        assert alert["statistic"] == alert["current"]["rate"] >= alert["threshold"] and alert["p_value"] < 1e-6
        assert alert["baseline"]["events"] == TRAINING_ROWS  # the schema came from the profile, not a warm-up
        by_key = {m.key(): orjson.loads(m.value()) for m in messages}
        assert by_key[SCHEMA_KEY.encode()]["alert_id"] == alert["alert_id"]

        dlq = read_to_end(broker.bootstrap, names["dlq"])
        assert sorted(m.value() for m in dlq) == sorted(raw for raw, _ in MALFORMED)
        for m in dlq:
            headers = dict(m.headers())
            assert headers[DLQ_REASON].decode() == dict(MALFORMED)[m.value()]
            assert headers[DLQ_TOPIC].decode() == names["predictions"]

        metrics = scrape_metrics(mon.http.port)  # over real HTTP
        assert total(metrics, "monitor_events_total", model="churn", version="v1") == valid
        assert total(metrics, "monitor_events_total") == valid
        assert total(metrics, "monitor_invalid_events_total", topic="predictions") == len(MALFORMED)
        for _, reason in MALFORMED:
            assert total(metrics, "monitor_invalid_events_total", topic="predictions", reason=reason) == 1
        assert total(metrics, "monitor_baseline_source", model="churn", version="v1", source="profile") == 1
        assert total(metrics, "monitor_baseline_source", model="churn", version="v1", source="learned") == 0
        # A quality window closes with the batch that completes it (>= quality.window_events): at least one
        # per partition (each got about 1,700 events), at most one per 200 events.
        windows = total(metrics, "monitor_quality_windows_total", model="churn", version="v1")
        assert 3 <= windows <= valid // config.quality.window_events, windows
        assert total(metrics, "monitor_window_tests_total") > 0
        assert total(metrics, "monitor_alerts_emitted_total", kind="schema", status="firing") == 1
    finally:
        mon.stop()
    assert mon.error is None


def _start_monitor(broker, profiles: str, tmp_path: Path) -> subprocess.Popen[str]:
    """`monitor run` as a user starts it, with the profiles in the environment."""
    env = {
        **os.environ,
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "MONITOR_KAFKA__PREDICTIONS_TOPIC": f"predictions-{tmp_path.name}",  # never created: no profile, no start
        "MONITOR_HTTP__HOST": "127.0.0.1",
        "MONITOR_HTTP__PORT": str(free_port()),
        "MONITOR_BASELINE__PROFILES": profiles,
    }
    env.pop("MONITOR_CONFIG", None)
    cmd = [sys.executable, "-m", "monitor", "run"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _exit(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """(exit code, stderr) of a monitor started by :func:`_start_monitor`.

    Whether it stopped at the profile, before anything else, is read from its log, not from a stopwatch:
    a monitor that got past the profiles would log that it waits for the (never created) predictions topic.
    """
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_a_bad_profile_stops_monitor_run_at_start_naming_the_field(broker, profile_path, tmp_path):
    future = tmp_path / "future.json"
    data = json.loads(profile_path.read_text())
    data["profile_version"] = 99  # a profile from a later release; everything else is valid
    future.write_text(json.dumps(data))
    missing = tmp_path / "nope.json"
    runs = {  # started together: each pays the interpreter start once
        "future": _start_monitor(broker, str(future), tmp_path),
        "missing first": _start_monitor(broker, str(missing), tmp_path),
        "missing second": _start_monitor(broker, f"{profile_path},{missing}", tmp_path),
    }
    results = {name: _exit(started) for name, started in runs.items()}

    code, err = results["future"]
    assert code == 2 and "waiting for topic" not in err, err[-2000:]
    assert f"{future}: profile_version" in err and "99 is not supported" in err, err[-2000:]
    assert "Traceback" not in err

    code, err = results["missing first"]
    assert code == 2 and "waiting for topic" not in err, err[-2000:]
    assert "'baseline.profiles[0]'" in err and f"file not found: {missing}" in err, err[-2000:]
    assert "Traceback" not in err

    code, err = results["missing second"]  # the valid first profile is not blamed
    assert code == 2 and "'baseline.profiles[1]'" in err and "baseline.profiles[0]" not in err, err[-2000:]
