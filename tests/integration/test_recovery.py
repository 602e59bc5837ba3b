"""Replicas, crashes and restarts against the real broker: state totals stay exact, no alert is lost,
and an alert seen twice is an exact repeat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.io.broker import free_port
from monitor.simulate import Drift, TrafficGenerator

from .conftest import produce, read_all


class Replica:
    """One `monitor run` process, configured through the environment only."""

    def __init__(self, broker, names, group: str, log_dir: Path, name: str, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        env = {
            **os.environ,
            "MONITOR_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "MONITOR_KAFKA__GROUP_ID": group,
            "MONITOR_KAFKA__PREDICTIONS_TOPIC": names["predictions"],
            "MONITOR_KAFKA__LABELS_TOPIC": names["labels"],
            "MONITOR_KAFKA__ALERTS_TOPIC": names["alerts"],
            "MONITOR_KAFKA__DLQ_TOPIC": names["dlq"],
            "MONITOR_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "MONITOR_KAFKA__BATCH_MAX_MS": "100",
            "MONITOR_HTTP__HOST": "127.0.0.1",
            "MONITOR_HTTP__PORT": str(self.port),
            "MONITOR_DETECTORS__WARMUP_EVENTS": "300",
            "MONITOR_CHECKPOINT__EVERY_S": "1",
            **(extra_env or {}),
        }
        env.pop("MONITOR_CONFIG", None)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3).read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[s.name, tuple(sorted(s.labels.items()))] = s.value
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _sum(replicas: list[Replica], name: str, **labels: str) -> float:
    total = 0.0
    for r in replicas:
        for (n, lab), v in r.metrics().items():
            if n == name and all(dict(lab).get(k) == x for k, x in labels.items()):
                total += v
    return total


def _traffic(n_before: int, n_after: int, seed: int) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    gen = TrafficGenerator(seed=seed)
    events = list(gen.predictions(n_before, rate=200.0))
    gen.drifts.append(Drift("income", {"country": "SG"}, scale=1.6))
    events += list(gen.predictions(n_after, rate=200.0))
    per_segment: Counter[str] = Counter()
    for e in events:
        per_segment["all"] += 1
        for k, v in e["segments"].items():
            per_segment[f"{k}={v}"] += 1
    return [(e["prediction_id"].encode(), orjson.dumps(e)) for e in events], per_segment


def _wait_for_total(replicas: list[Replica], expected: int, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        seen = _sum(replicas, "monitor_events_total")
        if seen >= expected and _sum(replicas, "monitor_assigned_partitions") > 0:
            time.sleep(1.5)  # let any over-count show up before we compare
            return _sum(replicas, "monitor_events_total")
        time.sleep(0.5)
    return seen


def _check_alerts(broker, topic: str) -> list[dict]:
    msgs = read_all(broker.bootstrap, topic, until=lambda m: False, timeout=4)
    by_id: dict[str, set[bytes]] = {}
    for m in msgs:
        by_id.setdefault(orjson.loads(m.value())["alert_id"] + orjson.loads(m.value())["status"], set()).add(m.value())
    repeats = {k: v for k, v in by_id.items() if len(v) > 1}
    assert not repeats, f"an alert appeared twice with different contents: {repeats}"
    return [orjson.loads(m.value()) for m in msgs]


def test_replicas_killed_restarted_and_added_keep_exact_totals_and_alerts(broker, topics, tmp_path):
    names = topics(partitions=6)
    group = f"g-{uuid.uuid4().hex[:8]}"
    records, per_segment = _traffic(24_000, 36_000, seed=21)
    replicas = [Replica(broker, names, group, tmp_path, f"r{i}") for i in range(3)]
    try:
        deadline = time.monotonic() + 60
        while _sum(replicas, "monitor_assigned_partitions") < 6 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _sum(replicas, "monitor_assigned_partitions") == 6
        third = len(records) // 3
        produce(broker.bootstrap, names["predictions"], records[:third])
        time.sleep(2.0)  # mid-stream: checkpoints have happened, more is in flight
        replicas[0].kill()
        produce(broker.bootstrap, names["predictions"], records[third : 2 * third])
        time.sleep(1.0)
        replicas[0] = Replica(broker, names, group, tmp_path, "r0-restarted")
        replicas.append(Replica(broker, names, group, tmp_path, "r3"))
        produce(broker.bootstrap, names["predictions"], records[2 * third :])

        live = [r for r in replicas if r.proc.poll() is None]
        total = _wait_for_total(live, len(records))
        assert total == len(records), [r.log_path.read_text()[-2000:] for r in replicas]
        for segment, count in per_segment.items():
            assert _sum(live, "monitor_stream_events_total", feature="prediction", segment=segment) == count, segment
        alerts = _check_alerts(broker, names["alerts"])
        firing = {a["alert_id"] for a in alerts if a["status"] == "firing" and a["key"].endswith("income/country=SG")}
        assert len(firing) == 1, [a["key"] for a in alerts]
    finally:
        for r in replicas:
            r.stop()


@pytest.mark.parametrize(
    "fault",
    ["before_snapshot_flush+alerts:1", "after_snapshot+alerts:1", "after_alerts+alerts:1", "after_commit:3"],
)
def test_a_crash_at_any_checkpoint_step_loses_nothing_and_repeats_exactly(broker, topics, tmp_path, fault):
    names = topics(partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    records, per_segment = _traffic(8_000, 12_000, seed=5)
    produce(broker.bootstrap, names["predictions"], records)
    crashing = Replica(broker, names, group, tmp_path, "crashing", {"MONITOR_FAULT_INJECT": fault})
    try:
        assert crashing.proc.wait(90) == 137, crashing.log_path.read_text()[-3000:]
    finally:
        crashing.stop()
    survivor = Replica(broker, names, group, tmp_path, "survivor")
    try:
        total = _wait_for_total([survivor], len(records))
        assert total == len(records), survivor.log_path.read_text()[-3000:]
        for segment, count in per_segment.items():
            assert _sum([survivor], "monitor_stream_events_total", feature="prediction", segment=segment) == count
        alerts = _check_alerts(broker, names["alerts"])
        firing = {a["alert_id"] for a in alerts if a["status"] == "firing" and a["key"].endswith("income/country=SG")}
        assert len(firing) == 1, [a["key"] for a in alerts]
    finally:
        survivor.stop()
