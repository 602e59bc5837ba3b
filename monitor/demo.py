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
from monitor.io.kafka import ensure_topics
from monitor.simulate import Drift
from monitor.traffic import DriftSchedule, produce_traffic

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
    stop = threading.Event()
    from monitor.cli import _install_signals

    _install_signals(stop)
    logging.getLogger("monitor").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap
            _say(f"embedded Kafka-protocol broker (Tansu) on {bootstrap}")
        overrides = {**DEMO_SETTINGS, "kafka": {"bootstrap_servers": bootstrap, "session_timeout_ms": 2000}}
        if args.http_port is None:
            overrides["http"] = {"port": 9308, "host": "127.0.0.1"}
        else:
            overrides["http"] = {"port": args.http_port, "host": "127.0.0.1"}
        config = load_config(args.config, overrides=overrides)
        k = config.kafka
        admin = AdminClient({"bootstrap.servers": bootstrap})
        ensure_topics(admin, {k.predictions_topic: 3, k.labels_topic: 3, k.alerts_topic: 1, k.dlq_topic: 1})

        mon = Monitor(config)
        mon.stop_event = stop
        mon.start()
        _say(f"monitor metrics: http://127.0.0.1:{mon.http.port}/metrics  status: /api/status")
        printer = threading.Thread(target=_print_alerts, args=(bootstrap, k.alerts_topic, stop), daemon=True)
        printer.start()

        drift = Drift("income", {"country": "SG"}, scale=1.6)
        schedule = DriftSchedule(drift, after_s=args.drift_after, for_s=args.drift_for, announce=_say)
        _say(
            f"producing {args.rate:.0f} predictions/s of model 'churn' (labels for half, delayed); "
            f"drift in income for country=SG after {args.drift_after:.0f} s. Ctrl-C stops."
        )
        traffic = threading.Thread(
            target=produce_traffic,
            kwargs={
                "producer_config": {"bootstrap.servers": bootstrap},
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
                _say(f"monitor failed: {mon.error}")
                stop.set()
                return 1
            if args.duration and time.monotonic() - started >= args.duration:
                stop.set()
            time.sleep(0.2)
        _say("stopping: flushing alerts, committing offsets")
        traffic.join(15)
        mon.stop()
        printer.join(5)
    return 0
