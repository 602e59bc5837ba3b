"""Replicas, crashes and restarts against the real broker: state totals stay exact, no alert is lost,
and an alert seen twice is an exact repeat.

Every step waits for the monitors' progress, read from their /metrics (as Prometheus would) and from the
group's committed offsets, never for wall time: replicas are killed once they have processed and
checkpointed, added once the survivors have taken over, and counted once the group has committed the end
of the input with a settled assignment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

from .conftest import Metrics, produce, read_to_end, total, wait_consumed, wait_until


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
            "MONITOR_DETECTION__IDLE_S": "5",
            **(extra_env or {}),
        }
        env.pop("MONITOR_CONFIG", None)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def metrics(self) -> Metrics:
        """Its /metrics over HTTP; empty while it is not serving (starting, or gone)."""
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
        self._log.close()  # a killed replica is replaced, not stopped

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _sum(scraped: list[Metrics], name: str, **labels: str) -> float:
    return sum(total(m, name, **labels) for m in scraped)


def _scrape(replicas: list[Replica]) -> list[Metrics]:
    return [r.metrics() for r in replicas]


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


def _owned(scraped: list[Metrics]) -> list[float]:
    return [total(m, "monitor_assigned_partitions") for m in scraped]


def _wait_owned(replicas: list[Replica], partitions: int, what: str) -> None:
    """Wait until ``replicas`` together own all ``partitions``, each at least one (a finished rebalance)."""

    def owned() -> bool:
        scraped = _scrape(replicas)
        return all(scraped) and sum(_owned(scraped)) == partitions and min(_owned(scraped)) >= 1

    wait_until(owned, what=what)


def _settled(broker, names, group: str, replicas: list[Replica], partitions: int) -> list[Metrics]:
    """The replicas' metrics once the group has committed the end of the input and no rebalance is under way.

    Two scrapes in a row must agree on who owns what and on the totals, each replica owning at least one
    of the ``partitions``; any over-count is in these totals by then, since nothing is left to process.
    """
    wait_consumed(broker.bootstrap, group, [names["predictions"], names["labels"]])

    def stable() -> list[Metrics] | None:
        first, second = _scrape(replicas), _scrape(replicas)
        if not all(first) or not all(second):
            return None
        if sum(_owned(second)) != partitions or min(_owned(second)) < 1 or _owned(first) != _owned(second):
            return None
        if _sum(first, "monitor_events_total") != _sum(second, "monitor_events_total"):
            return None
        if _sum(second, "monitor_merge_pending_rows") or _sum(second, "monitor_detection_partitions") != partitions:
            return None  # a detection stage still holds rows back, or a summaries partition is not owned yet
        return second

    return wait_until(stable, what=f"{len(replicas)} replicas own the {partitions} partitions, totals unchanged")


def _check_alerts(broker, topic: str) -> list[dict]:
    """Every alert on the topic (read to its end offsets), after checking that repeats are exact copies."""
    msgs = read_to_end(broker.bootstrap, topic)
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
        _wait_owned(replicas, 6, "3 replicas own the 6 partitions")
        assert _sum(_scrape(replicas), "monitor_assigned_partitions") == 6
        third = len(records) // 3
        tail = len(records) - 600  # produced once the group is settled, so the last owners commit the end
        produce(broker.bootstrap, names["predictions"], records[:third])

        def r0_checkpointed() -> bool:  # mid-stream: it has processed and checkpointed, more may be in flight
            m = replicas[0].metrics()
            return total(m, "monitor_profiled_events_total") >= 1000 and total(m, "monitor_checkpoints_total") >= 1

        wait_until(r0_checkpointed, what="r0 processed 1,000 events and wrote a checkpoint")
        replicas[0].kill()
        produce(broker.bootstrap, names["predictions"], records[third : 2 * third])
        _wait_owned(replicas[1:], 6, "r1 and r2 took over the partitions of the killed r0")
        replicas[0] = Replica(broker, names, group, tmp_path, "r0-restarted")
        replicas.append(Replica(broker, names, group, tmp_path, "r3"))
        produce(broker.bootstrap, names["predictions"], records[2 * third : tail])
        _wait_owned(replicas, 6, "4 replicas (r0 restarted, r3 added) share the 6 partitions")
        produce(broker.bootstrap, names["predictions"], records[tail:])

        live = [r for r in replicas if r.proc.poll() is None]
        assert len(live) == 4, [r.log_path.read_text()[-2000:] for r in replicas]
        scraped = _settled(broker, names, group, live, 6)
        total_events = _sum(scraped, "monitor_events_total")
        assert total_events == len(records), [r.log_path.read_text()[-2000:] for r in replicas]
        for segment, count in per_segment.items():
            assert _sum(scraped, "monitor_stream_events_total", feature="prediction", segment=segment) == count, segment
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
    # The last records come after the survivor took over, so it has input after its restore and commits the
    # end: a crash after the snapshot but before the commit leaves the committed offsets behind until then.
    tail = len(records) - 200
    produce(broker.bootstrap, names["predictions"], records[:tail])
    crashing = Replica(broker, names, group, tmp_path, "crashing", {"MONITOR_FAULT_INJECT": fault})
    try:
        assert crashing.proc.wait(180) == 137, crashing.log_path.read_text()[-3000:]
    finally:
        crashing.stop()
    survivor = Replica(broker, names, group, tmp_path, "survivor")
    try:
        _wait_owned([survivor], 2, "the survivor owns both partitions")
        produce(broker.bootstrap, names["predictions"], records[tail:])
        scraped = _settled(broker, names, group, [survivor], 2)
        total_events = _sum(scraped, "monitor_events_total")
        assert total_events == len(records), survivor.log_path.read_text()[-3000:]
        for segment, count in per_segment.items():
            assert _sum(scraped, "monitor_stream_events_total", feature="prediction", segment=segment) == count
        alerts = _check_alerts(broker, names["alerts"])
        firing = {a["alert_id"] for a in alerts if a["status"] == "firing" and a["key"].endswith("income/country=SG")}
        assert len(firing) == 1, [a["key"] for a in alerts]
    finally:
        survivor.stop()
