"""Keyed detection through a real broker (issue 14's measures): replicas of ``monitor run`` in one group.

* **Delay by partition count.** The traffic of ``benchmarks.partitions`` (20,000 predictions/s of event time,
  a 0.6 sd shift of feature x in a segment with 10% of the traffic) on topics of 1 and 12 partitions, read by
  1 and by 3 replicas. The delay is counted in predictions from the change to the alert's ``detected_at``.
* **Memory by partition count.** Peak RSS (VmHWM) of one replica reading the same traffic from 1 and from 12
  partitions.
* **Throughput by replica count.** The reference workload, prefilled once, read end to end by 1 replica and by
  2, with one detection shard and with two (``detection.shards``), each by a new consumer group: events per
  second over the whole run (judged) and between 10% and 90% of them, with the CPU the replicas, the broker and
  this driver used.

``python -m benchmarks.keyed`` prints the figures; ``make bench`` puts them in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks.partitions import T0, traffic
from monitor.io.broker import EmbeddedBroker, free_port
from monitor.io.kafka_clients import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


class Replica:
    """One ``monitor run`` process configured through the environment."""

    def __init__(self, bootstrap: str, names: dict[str, str], group: str, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "MONITOR_KAFKA__GROUP_ID": group,
            "MONITOR_KAFKA__PREDICTIONS_TOPIC": names["predictions"],
            "MONITOR_KAFKA__LABELS_TOPIC": names["labels"],
            "MONITOR_KAFKA__ALERTS_TOPIC": names["alerts"],
            "MONITOR_KAFKA__DLQ_TOPIC": names["dlq"],
            "MONITOR_KAFKA__SESSION_TIMEOUT_MS": "3000",
            "MONITOR_HTTP__HOST": "127.0.0.1",
            "MONITOR_HTTP__PORT": str(self.port),
            "MONITOR_AUDIT__ENABLED": "false",
            "MONITOR_DETECTION__IDLE_S": "5",
            **env,
        }
        full.pop("MONITOR_CONFIG", None)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"], env=full, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def progress(self) -> dict[str, float]:
        """Input partitions held, events profiled and monitored, rows pending, from ``/api/status`` (a few
        hundred bytes: polling /metrics instead, which renders every stream's series, cost each replica about
        35 ms of CPU a read at 240,000 events, and this process the parsing); empty while it is not serving."""
        try:
            doc = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status", timeout=3).read())
        except (urllib.error.URLError, OSError):
            return {}
        return {
            "partitions": len(doc["partitions"]),
            "profiled": doc["profiled"],
            "monitored": sum(m["events"] for m in doc["models"]),
            "pending_rows": doc["pending_rows"],
        }

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _topics(bootstrap: str, partitions: int) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    names = {r: f"{r}-{tag}" for r in ("predictions", "labels", "alerts", "dlq")}
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        {names["predictions"]: partitions, names["labels"]: partitions, names["alerts"]: 1, names["dlq"]: 1},
    )
    return names


def _produce(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                p.produce(topic, value=v, key=k)
                break
            except BufferError:
                p.poll(0.1)
    p.flush(120)


def _alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    try:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(out) < high and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    out.append(orjson.loads(m.value() or b"{}"))
        return out
    finally:
        c.close()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(
    bootstrap: str, partitions: int, replicas: int, keys: list[bytes], values: list[bytes], *, prefill: bool,
    env: dict[str, str] | None = None, timeout: float = 900.0, names: dict[str, str] | None = None,
    poll_s: float = 0.1, others: tuple[int, ...] = (), read_alerts: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Start ``replicas``, produce (before them with ``prefill``), wait until every event is monitored.
    ``names``: topics already holding ``values`` (read by a new group). ``poll_s``: how often the replicas'
    metrics are read (each read costs them and this process CPU). ``others``: processes whose CPU use over
    the run is reported besides the replicas' (the broker's). ``read_alerts``: False leaves the alerts topic
    unread (runs sharing topics would each read every earlier run's alerts)."""
    if names is None:
        names = _topics(bootstrap, partitions)
        if prefill:
            _produce(bootstrap, names["predictions"], keys, values)
    group = f"keyed-{uuid.uuid4().hex[:8]}"
    logs = Path(tempfile.mkdtemp(prefix="keyed-"))
    reps = [Replica(bootstrap, names, group, logs / f"r{i}.log", env or {}) for i in range(replicas)]
    try:
        deadline = time.monotonic() + timeout
        if not prefill:  # produce once the group has settled, so partitions are read as they fill
            while time.monotonic() < deadline:
                scraped = [r.progress() for r in reps]
                if all(scraped) and sum(m["partitions"] for m in scraped) == partitions:
                    break
                time.sleep(0.2)
            _produce(bootstrap, names["predictions"], keys, values)
        first: float | None = None
        reached: float | None = None  # every event monitored
        hold_s = float((env or {}).get("MONITOR_DETECTION__IDLE_S", "5"))
        samples: list[tuple[float, float]] = []  # (time, events monitored) while it runs
        cpu_at_first: list[float] = []
        while time.monotonic() < deadline:
            scraped = [r.progress() for r in reps]
            done = sum(m.get("monitored", 0) for m in scraped)
            pending = sum(m.get("pending_rows", 0) for m in scraped)
            profiled = sum(m.get("profiled", 0) for m in scraped)
            if profiled and first is None:  # consumption began (group join excluded); the events consumed so far
                first = time.perf_counter()  # still wait for detection, the slower stage: only those monitored
                first_done = done  # already are left out of the count
                cpu_at_first = [_cpu_seconds(p) for p in (*[r.proc.pid for r in reps], *others)]
                driver_at_first = time.process_time()
            if first is not None:
                samples.append((time.perf_counter(), done))
            if done >= len(values) and not pending:
                reached = time.perf_counter()
                break
            if any(r.proc.poll() is not None for r in reps):
                raise RuntimeError(
                    f"a replica exited: {[(logs / f'r{i}.log').read_text()[-2000:] for i in range(replicas)]}"
                )
            time.sleep(poll_s)
        if first is None or reached is None:
            raise RuntimeError(f"not every event was monitored within {timeout:.0f} s (logs in {logs})")
        cpu = [_cpu_seconds(p) - c for p, c in zip((*[r.proc.pid for r in reps], *others), cpu_at_first, strict=True)]
        rss = max(r.peak_rss_mb() for r in reps)
        alerts = _alerts(bootstrap, names["alerts"]) if read_alerts else []
        # at the end of the topics every partition stands still and the last rows wait idle_s: a stream's end,
        # not its rate, so that hold is not counted
        seconds = reached - first - hold_s
        result = {
            "alerts": alerts,
            "rss_mb": rss,
            "seconds": seconds,
            "events_per_s": (len(values) - first_done) / seconds if seconds > 0 else float("nan"),
            "steady_per_s": _steady_rate(samples, len(values)),
            "replica_cpu_s": sum(cpu[:replicas]),
            "replica_cpu_each_s": cpu[:replicas],
            "other_cores": sum(cpu[replicas:]) / (reached - first),
            "driver_cores": (time.process_time() - driver_at_first) / (reached - first),
        }
    except BaseException:
        for r in reps:
            r.stop()
        raise  # the logs stay for the message that names them
    for r in reps:
        r.stop()
    shutil.rmtree(logs, ignore_errors=True)
    return result


def _steady_rate(samples: list[tuple[float, float]], total: int) -> float:
    """Events monitored per second between the first samples past 10% and past 90% of ``total``: the run's
    steady rate, without its start (group join, first fetches) or its end (the last rows wait ``idle_s``)."""
    low = next(((t, d) for t, d in samples if d >= 0.1 * total), None)
    high = next(((t, d) for t, d in samples if d >= 0.9 * total), None)
    if low is None or high is None or high[0] <= low[0]:
        return float("nan")
    return (high[1] - low[1]) / (high[0] - low[0])


def _detected_delay(alerts: list[dict[str, Any]], change_time: float, rate: float) -> int | None:
    for a in alerts:
        if a["status"] == "firing" and a["key"].endswith("data_drift/x/segment=s0"):
            detected = datetime.fromisoformat(a["detected_at"].replace("Z", "+00:00")).timestamp()
            return round((detected - change_time) * rate)
    return None


CONFIGS = ((1, 1), (12, 1), (12, 3))  # (partitions, replicas): 3 replicas need more than one partition


def delays(
    bootstrap: str, *, n: int, change: int, shift: float, seeds: int,
    configs: tuple[tuple[int, int], ...] = CONFIGS,
) -> list[dict[str, Any]]:  # fmt: skip
    """The delay, alerts and peak RSS per (partitions, replicas)."""
    rate = 20_000.0
    out = []
    for seed in range(seeds):
        t = traffic(n, change, shift, rate=rate, seed=seed)
        keys = [i.encode() for i in t.ids]
        values = [
            orjson.dumps({
                "prediction_id": t.ids[i], "model": "m", "model_version": "v1", "timestamp": float(t.times[i]),
                "features": {"x": float(t.x[i]), "other": float(t.other[i])}, "segments": {"segment": t.segment[i]},
                "prediction": float(t.prediction[i]),
            })
            for i in range(n)
        ]  # fmt: skip
        for partitions, replicas in configs:
            r = _run(bootstrap, partitions, replicas, keys, values, prefill=False)
            firing = [a["key"] for a in r["alerts"] if a["status"] == "firing"]
            out.append({
                "seed": seed, "partitions": partitions, "replicas": replicas,
                "delay": _detected_delay(r["alerts"], T0 + change / rate, rate), "firing": firing,
                "rss_mb": r["rss_mb"],
            })  # fmt: skip
    return out


def throughput(
    bootstrap: str, *, n: int, partitions: int = 6, configs: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 2)),
    broker_pid: int | None = None, rounds: int = 3,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """End to end, the prefilled reference workload read by each (replicas, detection shards), keyed
    ``"<replicas>x<shards>"``: events per second over the whole run (from the first event profiled to the last
    monitored, less the end's idle hold) and between 10% and 90% of the events monitored, the CPU seconds the
    replicas used, and the cores the broker (``broker_pid``) and this process (producing nothing by then,
    reading the replicas' /api/status every 0.5 s) took meanwhile. The topics are filled once and read by a new
    consumer group for each run: ``rounds`` rounds of every configuration in turn (so that a slow spell of this
    shared machine falls on all of them), each configuration's fastest run reported, with every run's rate."""
    from benchmarks.workload import make

    w = make(n)
    names = _topics(bootstrap, partitions)
    _produce(bootstrap, names["predictions"], w.keys, w.predictions)
    del w.predictions[:]  # only their count is needed from here on
    count = [b""] * n
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):
        for replicas, shards in configs:
            env = {"MONITOR_DETECTION__IDLE_S": "1", "MONITOR_DETECTION__SHARDS": str(shards)}
            r = _run(bootstrap, partitions, replicas, w.keys, count, prefill=True, env=env, names=names, poll_s=0.5,
                     others=() if broker_pid is None else (broker_pid,), read_alerts=False)  # fmt: skip
            runs.setdefault(f"{replicas}x{shards}", []).append({
                "events_per_s": r["events_per_s"], "steady_per_s": r["steady_per_s"],
                "replica_cpu_s": r["replica_cpu_s"], "broker_cores": r["other_cores"], "driver_cores": r["driver_cores"],
            })  # fmt: skip
    return {
        key: {**max(each, key=lambda run: run["events_per_s"]), "runs": [run["events_per_s"] for run in each]}
        for key, each in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--change", type=int, default=40_000)
    ap.add_argument("--shift", type=float, default=0.6)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--throughput-events", type=int, default=480_000)
    args = ap.parse_args(argv)
    with EmbeddedBroker() as broker:
        result = {
            "delays": delays(broker.bootstrap, n=args.events, change=args.change, shift=args.shift, seeds=args.seeds),
            "throughput": throughput(broker.bootstrap, n=args.throughput_events, broker_pid=broker.pid),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
