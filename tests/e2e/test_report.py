"""``monitor report`` against the real broker: alerts produced to a 2-partition topic, read back with assign + seek."""

from __future__ import annotations

import re
import uuid

import orjson
from confluent_kafka.admin import AdminClient

from monitor.cli import main
from monitor.io.kafka_clients import ensure_topics
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
               recommendation="rollback", message="Accuracy of churn v2 fell from 81% to 66%.",
               incident_id="churn/v2/accuracy@2026-01-01T11:00:00.000Z"),
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
            "--audit-topic", f"audit-none-{uuid.uuid4().hex[:8]}",  # no audit topic here, whatever ran before
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
    assert "<b>2</b>incidents fired" in html and "<b>1</b>incident resolved" in html  # plurals
    assert "incident <code class='muted'>churn/v2/accuracy@2026-01-01T11:00:00.000Z</code>" in html
    assert "alert <code class='muted'>id-churn-v2-concept_drift-error-all</code>" in html
    assert "<b>2</b>incidents (alerts of one change grouped)" in html
    assert "No coverage records" in html and "watched every prediction event" not in html  # no audit topic here
    assert "These are the report's own settings" in html


def test_incidents_overlapping_the_period():
    events = [
        _alert(DRIFT, "firing", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z"),  # open across the start
        _alert(CONCEPT, "firing", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z"),
        _alert(CONCEPT, "resolved", "2026-01-01T08:10:00Z", "2026-01-01T08:00:00Z"),  # over before the start
    ]
    found = incidents(events, parse_time("2026-01-01T09:00:00Z"), parse_time("2026-01-01T10:00:00Z"))
    assert [i.first["key"] for i in found] == [DRIFT]
    assert found[0].status == "open"


def test_an_incident_resolves_at_its_event_time_when_the_event_says_it():
    """A replay's (or a late consumer's) resolved event is produced long after it resolved in event time: the
    report dated the resolution by ``emitted_at`` while it dates the firing by ``detected_at``."""
    fired = _alert(CONCEPT, "firing", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z")
    late = {**_alert(CONCEPT, "resolved", "2026-01-03T00:00:00Z", "2026-01-01T08:00:00Z"),
            "resolved_at": "2026-01-01T08:30:00Z"}  # fmt: skip
    found = incidents([fired, late], parse_time("2026-01-01T09:00:00Z"), parse_time("2026-01-01T10:00:00Z"))
    assert found == []  # over before the period began
    older = {k: v for k, v in late.items() if k != "resolved_at"}  # an event of an older release
    found = incidents([fired, older], parse_time("2026-01-01T09:00:00Z"), parse_time("2026-01-01T10:00:00Z"))
    assert [i.first["key"] for i in found] == [CONCEPT]


def test_until_before_since_is_one_line_and_rc_2(capsys):
    rc = main(["report", "--bootstrap-servers", "127.0.0.1:1", "--since", "2026-01-02", "--until", "2026-01-01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--until" in err[0] and "Traceback" not in err[0]


def test_large_numbers_read_plainly():
    from monitor.report import _e

    assert _e(604800.0) == "604,800" and _e(0.25) == "0.25" and _e({"n": 123456.0}) == "n=123,456"


def test_the_report_shows_the_monitors_config_and_a_gap_while_it_was_stopped(broker, topics, tmp_path):
    """Two runs of a monitor with a stop between them: the report's config is the monitor's (warm-up 300,
    not the report's own 500) and the stop is a gap; the periods covered are the runs."""
    import time

    from monitor.app import Monitor
    from monitor.report import read_audit
    from monitor.simulate import TrafficGenerator

    from .conftest import config_for, wait_consumed, wait_until

    names = topics(partitions=2)
    config = config_for(broker, names, audit={"interval_s": 0.5}, alerts={"cooldown_s": 77.0})
    gen = TrafficGenerator(seed=4)
    audit_topic = config.audit_topic
    since = time.time()

    def run_once(n: int) -> float:
        mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
        try:
            assert mon.wait_ready(30)
            preds = [(e["prediction_id"].encode(), orjson.dumps(e)) for e in gen.predictions(n, rate=100.0)]
            produce(broker.bootstrap, names["predictions"], preds)
            wait_consumed(broker.bootstrap, config.kafka.group_id, [names["predictions"]], ports=[mon.http.port])
            began = time.time()
            wait_until(  # both partitions covered in an interval that began after the traffic was consumed
                lambda: (
                    {
                        r["partition"]
                        for r in read_audit({"bootstrap.servers": broker.bootstrap}, audit_topic, idle_s=0.2) or []
                        if r.get("type") == "coverage" and r["interval_start"] >= began
                    }
                    == {0, 1}
                ),
                what="coverage records of both partitions",
            )
        finally:
            mon.stop()
        assert mon.error is None
        return time.time()

    stopped = run_once(500)
    wait_until(lambda: time.time() > stopped + 3.0, what="three seconds with the monitor stopped (the gap)")
    until = run_once(500) + 0.01

    out = tmp_path / "report.html"
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    iso = lambda t: time.strftime(fmt.replace(".%f", ""), time.gmtime(t))  # noqa: E731
    rc = main(
        ["report", "--bootstrap-servers", broker.bootstrap, "--alerts-topic", names["alerts"],
         "--audit-topic", audit_topic, "--since", iso(since), "--until", iso(until + 1), "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    html = out.read_text(encoding="utf-8")
    assert "As the monitor published it" in html and "These are the report's own settings" not in html
    assert "<td>alerts.cooldown_s</td><td>77</td>" in html  # the monitor's setting, not the report's default 300
    assert "<td>detectors.warmup_events</td><td>300</td>" in html
    assert "<h3>Gaps</h3>" in html and "the monitor was not running" in html
    assert "watched every prediction event" not in html
    from monitor.report import coverage

    cov = coverage(read_audit({"bootstrap.servers": broker.bootstrap}, audit_topic) or [], since, until)
    assert any(a <= stopped + 1.0 and b >= stopped + 2.5 for a, b, _ in cov.gaps), cov.gaps  # the stop
    assert cov.periods and 0 < cov.share < 1 and cov.partitions == 2


def _cov(partition: int, start: float, step: float, total: int) -> dict:
    return {"type": "coverage", "partition": partition, "partitions_total": total, "interval_start": start,
            "interval_s": step, "config_hash": f"h{step:g}"}  # fmt: skip


def test_coverage_follows_each_records_own_interval_and_partition_count():
    from monitor.report import coverage

    # 60 s records for an hour, then 300 s records: no false gaps where the interval changed
    recs = [_cov(p, t, 60.0, 2) for t in range(0, 3600, 60) for p in (0, 1)]
    recs += [_cov(p, t, 300.0, 2) for t in range(3600, 7200, 300) for p in (0, 1)]
    c = coverage(recs, 0.0, 7200.0)
    assert c.gaps == [] and c.covered_s == 7200.0 and c.periods == [(0.0, 7200.0, ["h300", "h60"])]
    # the topic grew from 2 to 4 partitions at 3600: the first hour needed only two
    grown = [_cov(p, t, 60.0, 2) for t in range(0, 3600, 60) for p in (0, 1)]
    grown += [_cov(p, t, 60.0, 4) for t in range(3600, 7200, 60) for p in (0, 1, 2)]  # partition 3 missing
    g = coverage(grown, 0.0, 7200.0)
    assert g.covered_s == 3600.0 and g.gaps == [(3600.0, 7200.0, "partitions [3] of 4 not covered")]
