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
from monitor.io.kafka_clients import ensure_topics
from monitor.simulate import TrafficGenerator

from .conftest import produce, scrape_metrics, total, wait_until

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
        {
            names["predictions"]: 2,
            names["labels"]: 2,
            names["alerts"]: 1,
            names["dlq"]: 1,
            **{f"g-{tag}-{internal}": 2 for internal in ("state", "summaries", "detection-state")},
        },
    )
    return names


def _events(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    return [(e["prediction_id"].encode(), orjson.dumps(e)) for e in TrafficGenerator(seed=seed).predictions(n)]


def _events_total(port: int) -> float:
    """Events processed, from /metrics as a user reads them (not from the engines)."""
    return total(scrape_metrics(port), "monitor_events_total")


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
        http = mon.http.port
        produce(broker.bootstrap, names["predictions"], _events(2000, 1))
        wait_until(lambda: _events_total(http) >= 2000, what="the monitor processed the first 2,000 events")
        assert _status(http, "/readyz") == 200

        broker.stop()
        outage_ends = time.monotonic() + OUTAGE_S  # the outage lasts this long by design: the scenario, not a wait

        def alive() -> None:
            assert _status(http, "/healthz") == 200  # alive and polling, not crashed
            assert mon.error is None

        def unready() -> bool:
            alive()
            return _status(http, "/readyz") == 503

        went_unready = wait_until(unready, OUTAGE_S, "readyz reports the outage (503)", interval=0.5)
        assert went_unready, "readyz never reported the outage"

        def outage_over() -> bool:
            alive()
            return time.monotonic() >= outage_ends

        wait_until(outage_over, OUTAGE_S + 5, f"the {OUTAGE_S:.0f} s outage is over, healthz 200 all along", 0.5)

        broker2 = EmbeddedBroker(port=port, log_path=str(tmp_path / "b2.log")).start()
        _topics(broker2.bootstrap, tag)  # memory storage: topics must be created again
        before = _events_total(http)
        produced = 0

        def recovered() -> bool:
            # The new broker starts the partitions at offset 0, below the monitor's positions: produce chunks
            # until the offsets pass them and the monitor consumes again.
            nonlocal produced
            produce(broker2.bootstrap, names["predictions"], _events(500, 2 + produced))
            produced += 1
            return _events_total(http) > before and _status(http, "/readyz") == 200

        wait_until(recovered, 90, "the monitor consumes from the restarted broker and is ready", interval=1.0)
        after = _events_total(http)
        assert after > before, (tmp_path / "b2.log").read_text()[-2000:]
        assert _status(http, "/readyz") == 200
        assert mon.error is None
    finally:
        mon.stop()
        if broker2 is not None:
            broker2.stop()
        broker.stop()
