"""/metrics and the dashboard read published engine views: they answer while the engine's lock is held.

Real broker, real HTTP. The test holds the service lock (the lock the consume loop holds while a batch
runs through the engines): every scrape and API request still answers, with the state of the last
published view, and the loop cannot process anything until the lock is released.
"""

from __future__ import annotations

import json
import urllib.request

import orjson

from monitor.app import Monitor
from monitor.simulate import TrafficGenerator

from .conftest import config_for, produce, scrape_metrics, total, wait_consumed

TIMEOUT_S = 5.0  # a request that waited for the lock would time out here


def _get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT_S) as res:
        assert res.status == 200, path
        return json.loads(res.read())


def _records(gen: TrafficGenerator, n: int) -> list[tuple[bytes, bytes]]:
    return [(ev["prediction_id"].encode(), orjson.dumps(ev)) for ev in gen.predictions(n, rate=200.0)]


def test_scrapes_and_api_answer_while_the_engine_lock_is_held(broker, topics):
    names = topics(partitions=2)
    config = config_for(broker, names)
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    try:
        assert mon.wait_ready(30), "monitor did not get partitions"
        gen = TrafficGenerator(seed=3)
        produce(broker.bootstrap, names["predictions"], _records(gen, 2_000))
        wait_consumed(broker.bootstrap, config.kafka.group_id, [names["predictions"]], ports=[mon.http.port])
        port = mon.http.port
        # What is committed is in the published views (they are published before offsets are committed).
        assert total(scrape_metrics(port), "monitor_events_total") == 2_000
        assert mon.service.stats.views_published > 0

        with mon.service.lock:  # the consume loop cannot run a batch now
            produce(broker.bootstrap, names["predictions"], _records(gen, 500))
            metrics = scrape_metrics(port)
            assert total(metrics, "monitor_events_total") == 2_000  # the last published view, whole
            assert total(metrics, "monitor_assigned_partitions") == 2
            assert total(metrics, "monitor_stream_events_total", segment="all") > 0
            overview = _get_json(port, "/api/overview")
            assert [m["events"] for m in overview["models"]] == [2_000]
            assert overview["partitions"] == [0, 1] and overview["models"][0]["drift"]
            status = _get_json(port, "/api/status")
            assert [m["events"] for m in status["models"]] == [2_000]
            assert (status["profiled"], status["pending_rows"], status["partitions"]) == (2_000, 0, [0, 1])
            loop = {part: total(metrics, "monitor_loop_seconds_total", part=part) for part in
                    ("poll", "checkpoint", "checkpoint_wait")}  # fmt: skip
            assert loop["poll"] > 0 and loop["checkpoint"] > 0 and 0 <= loop["checkpoint_wait"] <= loop["checkpoint"]
            assert _get_json(port, "/api/alerts")["open"] == []
            assert mon.sampler.views.sample()  # the history sampler reads views too
            assert total(scrape_metrics(port), "monitor_events_total") == 2_000  # still blocked: nothing new

        wait_consumed(broker.bootstrap, config.kafka.group_id, [names["predictions"]], ports=[mon.http.port])
        assert total(scrape_metrics(port), "monitor_events_total") == 2_500
    finally:
        mon.stop()
    assert mon.error is None
