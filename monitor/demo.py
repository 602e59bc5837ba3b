"""``monitor demo``: embedded broker, synthetic model traffic, the monitor, and a drift injected on a timer.

Alerts are read back from the alerts topic (the same path an on-call tool uses) and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from monitor.app import Monitor
from monitor.config import load_config
from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka_clients import LIBRDKAFKA_LOG, ensure_topics
from monitor.signals import install_signals
from monitor.simulate import Drift
from monitor.traffic import (
    DEMO_DRIFT_FEATURE,
    DEMO_DRIFT_SCALE,
    DEMO_DRIFT_SEGMENT,
    DEMO_PARTITIONS,
    DriftSchedule,
    produce_traffic,
)

log = logging.getLogger(__name__)

DEMO_SETTINGS: dict[str, Any] = {
    "alerts": {"resolve_after_s": 10.0, "cooldown_s": 60.0},
    "detectors": {"warmup_events": 300},
}


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _print_alerts(bootstrap: str, topic: str, stop: threading.Event) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-printer-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            alert = orjson.loads(msg.value() or b"{}")
            mark = "FIRING  " if alert.get("status") == "firing" else "RESOLVED"
            _say(f"ALERT {mark} [{alert.get('severity')}] {alert.get('key')}\n           {alert.get('message')}")
    finally:
        consumer.close()


def run_demo(args: argparse.Namespace) -> int:
    """Order on Ctrl-C (or ``--duration``): the traffic stops, the monitor flushes its alerts, checkpoints and
    commits, then the embedded broker stops. The broker runs in its own session, so the terminal's SIGINT
    reaches only this process; a second Ctrl-C kills the broker and exits at once."""
    stop = threading.Event()
    logging.getLogger("monitor").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        broker = None if bootstrap else EmbeddedBroker()
        if broker is not None:
            bootstrap = broker.bootstrap
        overrides = {**DEMO_SETTINGS, "kafka": {"bootstrap_servers": bootstrap, "session_timeout_ms": 2000}}
        overrides["http"] = {"port": 9308 if args.http_port is None else args.http_port, "host": "127.0.0.1"}
        config = load_config(args.config, overrides=overrides)  # every setting checked before anything starts
        mon = Monitor(config)  # binds the HTTP port: a busy one fails here, naming http.port
        stack.callback(mon.http.httpd.server_close)
        if broker is not None:
            stack.enter_context(broker)  # stopped last, when the stack unwinds
            _say(f"embedded Kafka-protocol broker (Tansu) on {bootstrap}")
        install_signals(stop, on_force_exit=broker.stop if broker is not None else None)
        k = config.kafka
        admin_config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG}
        admin = AdminClient(admin_config)
        n = DEMO_PARTITIONS
        ensure_topics(admin, {k.predictions_topic: n, k.labels_topic: n, k.alerts_topic: 1, k.dlq_topic: 1})

        mon.stop_event = stop
        mon.start()
        _say(f"dashboard: http://127.0.0.1:{mon.http.port}/  (metrics: /metrics, JSON: /api/overview)")
        printer = threading.Thread(target=_print_alerts, args=(bootstrap, k.alerts_topic, stop), daemon=True)
        printer.start()

        drift = Drift(DEMO_DRIFT_FEATURE, dict(DEMO_DRIFT_SEGMENT), scale=DEMO_DRIFT_SCALE)
        schedule = DriftSchedule(drift, after_s=args.drift_after, for_s=args.drift_for, announce=_say)
        _say(
            f"producing {args.rate:.0f} predictions/s of model 'churn' (labels for half, delayed); "
            f"drift in income for country=SG after {args.drift_after:.0f} s. Ctrl-C stops."
        )
        producer_config: dict[str, object] = {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG}
        traffic = threading.Thread(
            target=produce_traffic,
            kwargs={
                "producer_config": producer_config,
                "predictions_topic": k.predictions_topic,
                "labels_topic": k.labels_topic,
                "rate": args.rate,
                "stop": stop,
                "schedules": [schedule],
            },
            daemon=True,
        )
        traffic.start()
        started = time.monotonic()
        while not stop.is_set():
            if mon.error is not None:
                break
            if args.duration and time.monotonic() - started >= args.duration:
                stop.set()
            time.sleep(0.2)
        stop.set()
        if mon.error is None:
            _say("stopping: the monitor flushes its alerts, checkpoints and commits, then the broker stops")
        traffic.join(15)
        mon.stop()
        printer.join(5)
        if mon.error is not None:
            _say(f"monitor failed: {mon.error}")
            return 1
    _say("stopped")
    return 0
