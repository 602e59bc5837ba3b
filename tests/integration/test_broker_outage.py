"""The broker goes away and comes back: the monitor stays alive, reports not-ready, and recovers by itself.

The test broker keeps data in memory, so the restarted broker is empty: the test re-creates the topics
and checks behaviour and health, not old data.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import orjson
from confluent_kafka.admin import AdminClient

from monitor.app import Monitor
from monitor.config import load_config
from monitor.io.broker import EmbeddedBroker, free_port
from monitor.io.kafka import ensure_topics
from monitor.simulate import TrafficGenerator

from .conftest import produce

OUTAGE_S = 15.0


def _status(port: int, path: str) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3).status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _topics(bootstrap: str, tag: str) -> dict[str, str]:
    names = {r: f"{r}-{tag}" for r in ("predictions", "labels", "alerts", "dlq")}
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        {names["predictions"]: 2, names["labels"]: 2, names["alerts"]: 1, names["dlq"]: 1, f"g-{tag}-state": 2},
    )
    return names


def _events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    return [(e["prediction_id"].encode(), orjson.dumps(e)) for e in TrafficGenerator(seed=seed).predictions(n)]


def test_monitor_survives_a_broker_outage_and_recovers(tmp_path):
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    broker = EmbeddedBroker(port=port, log_path=str(tmp_path / "b1.log")).start()
    names = _topics(broker.bootstrap, tag)
    config = load_config(
        environ={},
        overrides={
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "group_id": f"g-{tag}",
                "predictions_topic": names["predictions"],
                "labels_topic": names["labels"],
                "alerts_topic": names["alerts"],
                "dlq_topic": names["dlq"],
                "session_timeout_ms": 2000,
                "batch_max_ms": 100,
                "produce_timeout_s": 5,
            },
            "http": {"host": "127.0.0.1", "port": 0},
        },
    )
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    broker2 = None
    try:
        assert mon.wait_ready(30)
        produce(broker.bootstrap, names["predictions"], _events(2000, 1))
        deadline = time.monotonic() + 30
        while sum(e.events_total() for e in mon.service.engines.values()) < 2000 and time.monotonic() < deadline:
            time.sleep(0.2)
        http = mon.http.port
        assert _status(http, "/readyz") == 200

        broker.stop()
        deadline = time.monotonic() + OUTAGE_S
        went_unready = False
        while time.monotonic() < deadline:
            went_unready |= _status(http, "/readyz") == 503
            assert _status(http, "/healthz") == 200  # alive and polling, not crashed
            assert mon.error is None
            time.sleep(0.5)
        assert went_unready, "readyz never reported the outage"

        broker2 = EmbeddedBroker(port=port, log_path=str(tmp_path / "b2.log")).start()
        _topics(broker2.bootstrap, tag)  # memory storage: topics must be created again
        before = sum(e.events_total() for e in mon.service.engines.values())
        deadline = time.monotonic() + 90
        produced = 0
        while time.monotonic() < deadline:
            produce(broker2.bootstrap, names["predictions"], _events(500, 2 + produced))
            produced += 1
            time.sleep(2.0)
            with mon.service.lock:
                after = sum(e.events_total() for e in mon.service.engines.values())
            if after > before and _status(http, "/readyz") == 200:
                break
        assert after > before, (tmp_path / "b2.log").read_text()[-2000:]
        assert _status(http, "/readyz") == 200
        assert mon.error is None
    finally:
        mon.stop()
        if broker2 is not None:
            broker2.stop()
        broker.stop()
