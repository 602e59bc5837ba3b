"""``monitor report`` against the real broker: alerts produced to a 2-partition topic, read back with assign + seek."""

from __future__ import annotations

import re
import uuid

import orjson
from confluent_kafka.admin import AdminClient

from monitor.cli import main
from monitor.io.kafka import ensure_topics
from monitor.report import incidents, parse_time

from .conftest import produce


def _alert(key: str, status: str, emitted: str, started: str, **extra) -> dict:
    model, version, kind, subject, segment = key.split("/")
    return {
        "schema_version": 1,
        "alert_id": "id-" + key.replace("/", "-"),
        "key": key,
        "status": status,
        "kind": kind,
        "severity": extra.pop("severity", "warning"),
        "model": model,
        "model_version": version,
        "subject": subject,
        "segment": {} if segment == "all" else dict([segment.split("=")]),
        "detector": "adwin",
        "statistic": 0.93,
        "threshold": 0.5,
        "p_value": 1e-6,
        "baseline": {"mean": 4100.0, "std": 1000.0},
        "current": {"mean": 6900.0},
        "window": {"start": started, "end": emitted, "events": 236},
        "recommendation": extra.pop("recommendation", "investigate"),
        "message": extra.pop("message", f"{subject} changed"),
        "started_at": started,
        "emitted_at": emitted,
        **extra,
    }


DRIFT = "churn/v1/data_drift/income/country=SG"
CONCEPT = "churn/v2/concept_drift/error/all"
LATER = "fraud/v7/data_drift/amount/all"
BEFORE = "churn/v1/latency/latency/all"


def test_report_lists_incidents_evidence_and_actions(broker, tmp_path):
    topic = f"alerts-report-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {topic: 2})
    events = [
        _alert(BEFORE, "firing", "2026-01-01T08:00:00.000Z", "2026-01-01T08:00:00.000Z"),
        _alert(BEFORE, "resolved", "2026-01-01T08:30:00.000Z", "2026-01-01T08:00:00.000Z"),
        _alert(DRIFT, "firing", "2026-01-01T10:00:00.000Z", "2026-01-01T09:59:00.000Z", severity="critical",
               message="Income in segment country=SG rose from 4,100 to 6,900."),
        _alert(DRIFT, "firing", "2026-01-01T10:00:00.000Z", "2026-01-01T09:59:00.000Z", severity="critical",
               message="Income in segment country=SG rose from 4,100 to 6,900."),  # an exact replay
        _alert(DRIFT, "resolved", "2026-01-01T10:20:00.000Z", "2026-01-01T09:59:00.000Z"),
        _alert(CONCEPT, "firing", "2026-01-01T11:00:00.000Z", "2026-01-01T11:00:00.000Z", severity="critical",
               recommendation="rollback", message="Accuracy of churn v2 fell from 81% to 66%."),
        _alert(LATER, "firing", "2026-01-02T09:00:00.000Z", "2026-01-02T09:00:00.000Z"),
    ]  # fmt: skip
    records = [(e["key"].encode(), orjson.dumps(e)) for e in events]
    records.append((b"junk", b"not json"))
    produce(broker.bootstrap, topic, records)

    out = tmp_path / "report.html"
    rc = main(
        [
            "report",
            "--bootstrap-servers", broker.bootstrap,
            "--alerts-topic", topic,
            "--since", "2026-01-01T09:00:00Z",
            "--until", "2026-01-01T12:00:00Z",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "<script" not in html and not re.search(r"(src|href)=['\"]?https?://", html), "readable offline"
    assert DRIFT in html and CONCEPT in html
    assert LATER not in html and BEFORE not in html  # outside the period
    assert html.count(f"<code>{DRIFT}</code>") == 1, "a replayed event is the same incident"
    assert "resolved 2026-01-01 10:20:00 UTC" in html and "open at end of period" in html
    assert "Income in segment country=SG rose from 4,100 to 6,900." in html
    assert "statistic 0.93 vs threshold 0.5" in html and "p-value 1e-06" in html and "mean=4100" in html
    assert "Roll back to the previous model version" in html and "Investigate the change" in html
    assert "alerts.min_effect_size" in html and "detectors.adwin_delta" in html  # checks configured
    for model, version in (("churn", "v1"), ("churn", "v2"), ("fraud", "v7")):
        assert f"<td>{model}</td><td>{version}</td>" in html
    assert "<b>2</b>incidents fired" in html and "<b>1</b>incidents resolved" in html


def test_incidents_overlapping_the_period():
    events = [
        _alert(DRIFT, "firing", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z"),  # open across the start
        _alert(CONCEPT, "firing", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z"),
        _alert(CONCEPT, "resolved", "2026-01-01T08:10:00Z", "2026-01-01T08:00:00Z"),  # over before the start
    ]
    found = incidents(events, parse_time("2026-01-01T09:00:00Z"), parse_time("2026-01-01T10:00:00Z"))
    assert [i.first["key"] for i in found] == [DRIFT]
    assert found[0].status == "open"
