"""`monitor run` as a user starts it: only bootstrap servers in the environment, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from monitor.io.broker import free_port
from monitor.io.kafka_clients import ensure_topics
from monitor.simulate import TrafficGenerator

from .conftest import produce, wait_until


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def test_zero_config_run_processes_events_and_stops_cleanly_on_sigterm(broker, tmp_path):
    # Default topic names: this is the only test that uses them.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    ensure_topics(admin, {"predictions": 2, "labels": 2, "alerts": 1, "monitor-dlq": 1})
    gen = TrafficGenerator(seed=3)
    produce(
        broker.bootstrap, "predictions", [(e["prediction_id"].encode(), orjson.dumps(e)) for e in gen.predictions(3000)]
    )
    port = free_port()
    env = {
        **os.environ,
        "MONITOR_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "MONITOR_KAFKA__SESSION_TIMEOUT_MS": "2000",
        "MONITOR_HTTP__PORT": str(port),
        "MONITOR_HTTP__HOST": "127.0.0.1",
    }
    env.pop("MONITOR_CONFIG", None)

    def processed() -> float:
        """monitor_events_total over HTTP. The test waits on it, not on committed offsets: the commit at
        SIGTERM is what the last check proves (checkpoints are 10 s apart by default)."""
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        if status != 200:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("monitor_events_total{")
        )

    log = open(tmp_path / "monitor.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: processed() >= 3000,
            what=lambda: f"monitor run processed 3,000 events; log: {(tmp_path / 'monitor.log').read_text()[-3000:]}",
        )
        assert processed() == 3000, (tmp_path / "monitor.log").read_text()[-3000:]
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    # Offsets were committed for everything processed (default group id).
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "model-monitor"})
    committed = consumer.committed([TopicPartition("predictions", p) for p in range(2)], timeout=10)
    consumer.close()
    assert sum(tp.offset for tp in committed) == 3000
