"""End to end through a real broker: events in, one drift alert out, bad messages dead-lettered, metrics scraped."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import jsonschema
import orjson
import pytest
from confluent_kafka.admin import AdminClient

from monitor.app import Monitor
from monitor.errors import SourceError
from monitor.io.alert_sink import DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC
from monitor.io.kafka import MonitorService
from monitor.simulate import Drift, TrafficGenerator

from .conftest import config_for as _config
from .conftest import produce, read_to_end, wait_consumed
from .conftest import scrape_metrics as _scrape
from .conftest import total as _total

SCHEMAS = Path(__file__).resolve().parents[2] / "monitor" / "schemas"

BAD_MESSAGES = [
    (b"not json at all", "invalid_json"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"model": "churn", "features": {}, "prediction": 1}', "missing_field"),
    (b'{"prediction_id": "x", "model": "churn", "features": {"age": NaN}, "prediction": 1}', "non_finite"),
    (b'{"prediction_id": "y", "model": "churn", "features": [], "prediction": 1}', "wrong_type"),
    (b"\xff\xfe\xfa", "invalid_utf8"),
]


@pytest.mark.parametrize("transactional", [False, True], ids=["at-least-once", "transactions"])
def test_drift_in_one_segment_gives_one_alert_and_bad_input_is_dead_lettered(broker, topics, transactional):
    names = topics(partitions=3)
    config = _config(broker, names)
    if transactional:  # alerts, dead letters, snapshots and offsets commit as one transaction per checkpoint
        config = _config(broker, names, kafka={**_kafka(config), "transactional_id": f"tx-{names['predictions']}"})
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    try:
        assert mon.wait_ready(30), "monitor did not get partitions"
        gen = TrafficGenerator(seed=7)
        records = []
        for ev in gen.predictions(12_000, rate=200.0):
            records.append((ev["prediction_id"].encode(), orjson.dumps(ev)))
        for i, (raw, _) in enumerate(BAD_MESSAGES):
            records.insert(1000 + i * 1500, (f"bad-{i}".encode(), raw))
        # the stationary part first, then (once all of it is read, summaries included) the drift: this replica's
        # detection stage then takes the summaries it sends as it sends them (asserted below)
        produce(broker.bootstrap, names["predictions"], records)
        inputs = [names["predictions"], names["labels"]]
        wait_consumed(broker.bootstrap, config.kafka.group_id, inputs, ports=[mon.http.port])
        gen.drifts.append(Drift("income", {"country": "SG"}, scale=1.6))
        records = []
        for ev in gen.predictions(9_000, start_time=1_767_225_600.0, rate=200.0):
            ev["timestamp"] = 1_767_225_600.0 + 60.0 + gen.produced / 200.0
            records.append((ev["prediction_id"].encode(), orjson.dumps(ev)))
        produce(broker.bootstrap, names["predictions"], records)
        valid = 21_000

        # Everything the monitor publishes about these events is on its topics once it has committed them.
        wait_consumed(broker.bootstrap, config.kafka.group_id, inputs, ports=[mon.http.port])
        done = _total(_scrape(mon.http.port), "monitor_events_total")
        assert done == valid

        alerts = [orjson.loads(m.value()) for m in read_to_end(broker.bootstrap, names["alerts"])]
        assert len(alerts) >= 1
        firing = [a for a in alerts if a["status"] == "firing"]
        target = [a for a in firing if a["subject"] == "income" and a["segment"] == {"country": "SG"}]
        assert len(target) == 1, alerts
        assert all(a["subject"] == "income" for a in alerts), [a["key"] for a in alerts]
        alert = target[0]
        schema = json.loads((SCHEMAS / "alert.schema.json").read_text())
        jsonschema.validate(alert, schema)
        assert alert["kind"] == "data_drift" and alert["model"] == "churn" and alert["model_version"] == "v1"
        assert alert["statistic"] >= alert["threshold"] and alert["p_value"] < 0.001
        assert alert["current"]["mean"] > alert["baseline"]["mean"] * 1.3
        assert "country=SG" in alert["message"] and "rose" in alert["message"]

        dlq = read_to_end(broker.bootstrap, names["dlq"])
        assert len(dlq) == len(BAD_MESSAGES)
        by_value = {m.value(): dict(m.headers()) for m in dlq}
        for raw, reason in BAD_MESSAGES:
            headers = by_value[raw]  # original bytes unchanged
            assert headers[DLQ_REASON].decode() == reason
            assert headers[DLQ_TOPIC].decode() == names["predictions"]
            assert int(headers[DLQ_PARTITION]) in range(3) and int(headers[DLQ_OFFSET]) >= 0

        metrics = _scrape(mon.http.port)
        assert _total(metrics, "monitor_events_total", model="churn", version="v1") == valid
        for _, reason in BAD_MESSAGES:
            assert _total(metrics, "monitor_invalid_events_total", topic="predictions", reason=reason) == 1
        assert _total(metrics, "monitor_feature_drift_firing", feature="income", segment="country=SG") == 1
        assert _total(metrics, "monitor_feature_drift_firing", feature="age") == 0
        assert _total(metrics, "monitor_alerts_emitted_total", kind="data_drift", status="firing") == 1
        assert _total(metrics, "monitor_assigned_partitions") == 3
        assert _total(metrics, "monitor_prediction_latency_seconds_count", model="churn") == valid
        by_country = [  # every prediction reports its latency and its country: each counted in one country's
            v for (n, lab), v in metrics.items()
            if n == "monitor_segment_prediction_latency_seconds_count" and dict(lab)["segment"].startswith("country=")
        ]  # fmt: skip
        assert len(by_country) >= 2 and sum(by_country) == valid
        for (name, lab), count in metrics.items():  # each segment's buckets cumulative, the last one its count
            if name != "monitor_segment_prediction_latency_seconds_count":
                continue
            rows = sorted(
                (float(dict(bucket_labels)["le"]), v)
                for (other, bucket_labels), v in metrics.items()
                if other == "monitor_segment_prediction_latency_seconds_bucket"
                and tuple(kv for kv in bucket_labels if kv[0] != "le") == lab
            )
            assert len(rows) == 12 and [v for _, v in rows] == sorted(v for _, v in rows)
            assert rows[-1] == (float("inf"), count)
        assert _total(metrics, "monitor_ready") == 1
        # one replica reads every summary it sent: most are taken from memory, none decoded twice
        consumed = _total(metrics, "monitor_summaries_total", direction="consumed")
        handed_over = _total(metrics, "monitor_summaries_total", direction="handed_over")
        assert 0 < handed_over <= consumed <= _total(metrics, "monitor_summaries_total", direction="produced")
        # and takes them as it sends them once it has read back the last it sent from their input partition
        # (every one of the drift's first summaries; before, the first from each partition went through the
        # topic); read back, they are known, not repeats (the exact totals above: each monitored once)
        taken = _total(metrics, "monitor_summaries_total", direction="taken_at_once")
        assert 3 <= taken <= consumed
        assert _total(metrics, "monitor_summaries_duplicate_total") == 0
        assert 0 <= _total(metrics, "monitor_handoff_rows") <= mon.config.detection.handoff_rows
        for path in ("/healthz", "/readyz"):
            assert urllib.request.urlopen(f"http://127.0.0.1:{mon.http.port}{path}", timeout=5).status == 200
    finally:
        mon.stop()
    assert mon.error is None


def _kafka(config) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(config.kafka).items() if k not in ("properties", "property_files")}


def test_topics_that_are_not_co_partitioned_fail_at_start(broker, topics):
    names = topics(partitions=3, labels_partitions=2)
    service = MonitorService(_config(broker, names))
    with pytest.raises(SourceError, match="not co-partitioned") as info:
        service.check_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), wait_s=5)
    assert info.value.fatal
