"""``monitor replay`` over files: it finds the drift the live monitor would, and only that; thresholds can be tuned."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import jsonschema
import numpy as np
import orjson
import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.core.engine import BatchResult
from monitor.core.rules import Alert
from monitor.errors import ConfigError
from monitor.replay import FileSource, parse_overrides, replay
from monitor.replay_report import ReplayResult, summary
from monitor.simulate import Drift, TrafficGenerator

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "monitor" / "schemas" / "alert.schema.json").read_text())
EVENTS = 8000
DRIFT_AT = 4000


def _write(tmp: Path, name: str, drift_at: int | None) -> tuple[Path, Path, int]:
    """Predictions at 100/s of event time, labels in time order, as a recording of the two topics would hold."""
    gen = TrafficGenerator(seed=3)
    preds, labels = [], []
    for i, event in enumerate(gen.predictions(EVENTS, rate=100.0)):
        if i == drift_at:
            gen.drifts.append(Drift("income", scale=1.6))
        preds.append(event)
        label = gen.label_for(event)
        if label is not None:
            labels.append(label)
    labels.sort(key=lambda e: e["timestamp"])
    p, lab = tmp / f"{name}.jsonl", tmp / f"{name}-labels.jsonl"
    p.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in preds))
    lab.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in labels))
    return p, lab, len(labels)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, int]]:
    tmp = tmp_path_factory.mktemp("replay")
    return {"drift": _write(tmp, "drift", DRIFT_AT), "flat": _write(tmp, "flat", None)}


def _config(**sets: str) -> Any:
    return load_config(environ={}, overrides=parse_overrides(f"{k}={v}" for k, v in sets.items()))


def test_replay_reports_the_injected_drift(files):
    preds, labels, n_labels = files["drift"]
    result = replay(_config(), FileSource(preds, labels), progress=False)
    assert (result.events, result.messages, result.labels, result.partitions) == (EVENTS, EVENTS, n_labels, 1)
    assert not result.rejected
    assert result.join["joined"] == n_labels  # each label reached the engine after its prediction
    firing = [a for a in result.alerts if a.status == "firing"]
    assert ("data_drift", "income", {}) in [(a.kind, a.subject, a.segment) for a in firing]
    assert {a.subject for a in firing} == {"income"}  # nothing else moved
    assert all(a.started_at and a.started_at >= "2026-01-01T00:00:40" for a in firing)  # after the change
    text = summary(result)
    assert "data_drift firing 1" in text and "churn/v1/data_drift/income/all" in text
    assert f"label join: joined {n_labels:,}" in text


def test_a_replay_without_labels_reports_no_label_join(files):
    """It said 'label join: evicted 100,000': the predictions waiting for labels that were never asked for."""
    preds, _, _ = files["flat"]
    result = replay(_config(**{"labels.max_pending": "1000"}), FileSource(preds, None), progress=False)
    assert result.join["evicted"] > 0  # (counted still, for the metrics)
    assert result.events == EVENTS and "label join" not in summary(result)


def test_stationary_replay_raises_nothing(files):
    preds, labels, _ = files["flat"]
    result = replay(_config(), FileSource(preds, labels), progress=False)
    assert result.events == EVENTS
    assert result.alerts == []
    assert "alerts: none" in summary(result)


def test_set_override_changes_the_outcome(files, capsys):
    preds, labels, _ = files["drift"]
    args = ["replay", "--predictions", str(preds), "--labels", str(labels), "--no-progress"]
    assert main(args) == 0
    assert "churn/v1/data_drift/income/all" in capsys.readouterr().out
    assert main([*args, "--set", "monitoring.ignore_features=income"]) == 0
    out = capsys.readouterr().out
    assert "alerts: none" in out and "income" not in out


def test_bad_set_field_fails_naming_it(files, capsys):
    preds, _, _ = files["flat"]
    code = main(["replay", "--predictions", str(preds), "--no-progress", "--set", "alerts.min_effect_sise=1"])
    err = capsys.readouterr().err
    assert code == 2 and "alerts.min_effect_sise" in err
    assert main(["replay", "--predictions", str(preds), "--set", "alerts"]) == 2
    assert "section.field=value" in capsys.readouterr().err


def test_out_file_holds_schema_valid_alert_events(files, tmp_path, capsys):
    preds, labels, _ = files["drift"]
    out = tmp_path / "alerts.jsonl"
    args = ["replay", "--predictions", str(preds), "--labels", str(labels), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    lines = out.read_bytes().splitlines()
    assert lines
    for line in lines:
        jsonschema.validate(orjson.loads(line), SCHEMA)
    assert {orjson.loads(line)["subject"] for line in lines} == {"income"}
    assert f"wrote {len(lines)} alert event" in capsys.readouterr().out


def test_progress_bar_goes_to_stderr_only(files, capsys):
    preds, _, _ = files["flat"]
    assert main(["replay", "--predictions", str(preds)]) == 0
    captured = capsys.readouterr()
    assert "replay" in captured.err and "100%" in captured.err and f"{EVENTS // 1000}.00k" in captured.err
    assert "%|" not in captured.out and captured.out.startswith("replayed 8,000 predictions")


def test_invalid_lines_are_counted_not_fatal(tmp_path):
    good = {"prediction_id": "1", "model": "m", "features": {"x": 1.0}, "prediction": 0.5, "timestamp": 1.0}
    path = tmp_path / "p.jsonl"
    path.write_bytes(orjson.dumps(good) + b"\n{not json\n\n" + orjson.dumps({"model": "m"}) + b"\n")
    result = replay(_config(), FileSource(path), progress=False)
    assert (result.events, result.messages) == (1, 3)  # the blank line is not a message
    assert dict(result.rejected) == {("predictions", "invalid_json"): 1, ("predictions", "missing_field"): 1}


class _Recorder:
    """Stands in for the engine to record the order in which batches reach it."""

    calls: ClassVar[list[tuple[str, list[float]]]] = []

    def __init__(self, *_: Any, **__: Any) -> None:
        self.last_event_time = float("nan")
        self.profile = SimpleNamespace(rejected={}, restamped={}, joiner=SimpleNamespace(counts={}))  # replay reads

    def process_predictions(self, values: list[bytes | None], kafka_times: list[float]) -> BatchResult:
        times = [float(orjson.loads(v or b"{}")["timestamp"]) for v in values]
        self.calls.append(("predictions", times))
        self.last_event_time = float(np.max(times))
        return BatchResult(processed=len(values))

    def process_labels(self, values: list[bytes | None], kafka_times: list[float]) -> BatchResult:
        times = [float(orjson.loads(v or b"{}").get("timestamp", -1.0)) for v in values]
        self.calls.append(("labels", times))
        return BatchResult(processed=len(values))

    def finish(self) -> list[Any]:
        return []


def test_labels_are_interleaved_in_event_time(tmp_path, monkeypatch):
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(b"".join(orjson.dumps({"timestamp": float(t)}) + b"\n" for t in range(30)))
    labels = tmp_path / "l.jsonl"
    stamps: list[dict[str, Any]] = [{"timestamp": 5.5}, {"timestamp": 15.5}, {}, {"timestamp": 25.5}, {"timestamp": 99}]
    labels.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in stamps))
    monkeypatch.setattr("monitor.replay.PartitionEngine", _Recorder)
    monkeypatch.setattr(_Recorder, "calls", [])
    result = replay(_config(), FileSource(preds, labels), batch_size=10, progress=False)
    assert (result.events, result.labels) == (30, 5)
    assert [(kind, times[0], times[-1]) for kind, times in _Recorder.calls] == [
        ("predictions", 0.0, 9.0),
        ("labels", 5.5, 5.5),
        ("predictions", 10.0, 19.0),
        ("labels", 15.5, -1.0),  # the label without a timestamp keeps its place after 15.5
        ("predictions", 20.0, 29.0),
        ("labels", 25.5, 99.0),  # the rest once the predictions are over
    ]


def test_labels_without_a_timestamp_are_counted_and_the_summary_says_what_to_do(files, tmp_path):
    """A label file without timestamps replayed every label ahead of every prediction: 40,695 of 42,115 could not
    join, and the summary only said 'unknown' (seen from outside)."""
    preds, labels, n_labels = files["flat"]
    bare = tmp_path / "bare-labels.jsonl"
    bare.write_bytes(
        b"".join(
            orjson.dumps({k: v for k, v in orjson.loads(line).items() if k != "timestamp"}) + b"\n"
            for line in labels.read_bytes().splitlines()
        )
        + b'{"prediction_id": "x", "label": 1, "timestamp": "not a time"}\n{"prediction_id": \n'
    )  # fmt: skip  (the two bad lines are rejected, not counted as without a timestamp)
    result = replay(_config(), FileSource(preds, bare), progress=False)
    assert result.untimed_labels == n_labels and result.join["joined"] < n_labels / 2
    assert f"labels without a timestamp: {n_labels:,}" in summary(result)
    timed = replay(_config(), FileSource(preds, labels), progress=False)
    assert timed.untimed_labels == 0 and "without a timestamp" not in summary(timed)


def test_parse_overrides_refuses_malformed_flags():
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        parse_overrides(["min_effect_size=1"])
    with pytest.raises(ConfigError, match=r"alerts\.min_events"):
        parse_overrides(["alerts.min_events=1", "alerts.min_events.x=2"])
    with pytest.raises(ConfigError, match=r"alerts\.min_events"):
        load_config(environ={}, overrides=parse_overrides(["alerts.min_events=many"]))


def _alert(status: str, end: str) -> Alert:
    return Alert(
        alert_id="a1",
        key="m/v1/data_drift/x/all",
        status=status,  # type: ignore[arg-type]
        kind="data_drift",
        severity="warning" if status == "firing" else "info",
        model="m",
        model_version="v1",
        subject="x",
        segment={},
        detector="adwin",
        statistic=0.8,
        threshold=0.5,
        p_value=1e-6,
        baseline={},
        current={},
        window={"start": "2026-01-01T00:00:00.000Z", "end": end, "events": 300},
        recommendation="investigate",
        message="X rose.",
        started_at="2026-01-01T00:00:00.000Z",
        emitted_at=None,
    )


def test_summary_shows_resolved_incidents():
    result = ReplayResult(events=10, alerts=[_alert("firing", "2026-01-01T00:01:00Z"), _alert("resolved", "T2")])
    [incident] = result.incidents()
    assert incident.resolved is not None
    text = summary(result)
    assert "data_drift firing 1, data_drift resolved 1" in text
    assert "resolved T2" in text and "X rose." in text


def test_summary_numbers_the_incidents_its_alerts_belong_to():
    """The table was headed "firing incidents (3)" over three alerts of one incident (seen from outside)."""
    alerts = []
    for key, incident in (("m/v1/data_drift/x/all", "m/v1/x@T0"), ("m/v1/prediction_drift/prediction/all",
                          "m/v1/x@T0"), ("m/v1/data_drift/y/all", "m/v1/y@T9")):  # fmt: skip
        alerts.append(replace(_alert("firing", "2026-01-01T00:01:00Z"), alert_id=key, key=key, incident_id=incident))
    text = summary(ReplayResult(events=10, alerts=alerts))
    assert "firing alerts (3) in 2 incidents:" in text
    rows = [line.split() for line in text.splitlines() if "m/v1/" in line]
    assert [(r[0], r[1]) for r in rows] == [
        ("1", "m/v1/data_drift/x/all"), ("1", "m/v1/prediction_drift/prediction/all"), ("2", "m/v1/data_drift/y/all")
    ]  # fmt: skip
