"""One change, one incident, through a real broker: a new category in one feature raises a data-quality
finding and a drift of that feature; both alert events on the topic and both open alerts in /api/overview
carry one incident_id, and the page groups them."""

from __future__ import annotations

import json
import urllib.request

import orjson

from monitor.app import Monitor
from monitor.simulate import TrafficGenerator

from .conftest import config_for, produce, read_to_end, wait_consumed


def test_a_new_category_is_one_incident_on_the_topic_and_in_the_api(broker, topics):
    names = topics(partitions=1)
    config = config_for(broker, names)
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    try:
        assert mon.wait_ready(30)
        events = list(TrafficGenerator(seed=3).predictions(6000, rate=100.0))
        for i, e in enumerate(events[3000:]):
            if i % 3 == 0:
                e["features"]["device"] = "smartwatch"
        records = [(e["prediction_id"].encode(), orjson.dumps(e)) for e in events]
        produce(broker.bootstrap, names["predictions"], records)
        wait_consumed(broker.bootstrap, config.kafka.group_id, [names["predictions"]], ports=[mon.http.port])
        alerts = [orjson.loads(m.value()) for m in read_to_end(broker.bootstrap, names["alerts"])]
        device = [a for a in alerts if a["status"] == "firing" and a["subject"] == "device"]
        assert {"data_quality", "data_drift"} <= {a["kind"] for a in device}, [a["key"] for a in alerts]
        assert len({a["incident_id"] for a in device}) == 1 and device[0]["incident_id"].startswith("churn/v1/device@")
        with urllib.request.urlopen(f"http://127.0.0.1:{mon.http.port}/api/overview", timeout=10) as resp:
            model = json.loads(resp.read())["models"][0]
        open_device = [a for a in model["open_alerts"] if a.get("subject") == "device"]
        assert len(open_device) >= 2 and {a["incident_id"] for a in open_device} == {device[0]["incident_id"]}
    finally:
        mon.stop()
    assert mon.error is None
