"""`monitor run` as a user starts it: only bootstrap servers in the environment, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from monitor.io.broker import free_port
from monitor.io.kafka import ensure_topics
from monitor.simulate import TrafficGenerator

from .conftest import produce


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
    log = open(tmp_path / "monitor.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        processed = 0.0
        while time.monotonic() < deadline:
            status, text = _get(f"http://127.0.0.1:{port}/metrics")
            if status == 200:
                processed = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("monitor_events_total{")
                )
                if processed >= 3000:
                    break
            time.sleep(0.3)
        assert processed == 3000, (tmp_path / "monitor.log").read_text()[-3000:]
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
