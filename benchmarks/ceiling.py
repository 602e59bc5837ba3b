"""What two processes at once get out of this machine: the ceiling under the two-replica target.

Two replicas can go at most as much faster than one as two processes doing the monitor's own work at once go
faster than one doing it alone. Each process here runs the engine on decoded batches of the reference workload
(no broker, no I/O: the same work in each, made before the clock starts), and all start together on a signal.
One alone and two at once take turns for a few rounds, so a slow spell of the shared machine falls on both.

``python -m benchmarks.ceiling`` prints the figures; ``make bench`` puts them beside the two-replica target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def member(n: int, batch: int) -> None:
    """One process: make and decode ``n`` events, say ``ready``, wait for a line on stdin, run the engine over
    them, print the seconds and this process's CPU seconds it took."""
    from benchmarks.workload import T0, make
    from monitor.allocator import settle_allocator
    from monitor.collector import settle_collector
    from monitor.config import load_config
    from monitor.core.engine import PartitionEngine

    engine = PartitionEngine(load_config(environ={}), clock=lambda: 0.0)
    batches = []
    for k in range(0, n, batch):
        w = make(min(batch, n - k), seed=2 + k, start=T0 + k / 10_000)
        batches.append(engine.profile.prediction_decoder.decode(w.predictions, [0.0] * len(w.predictions))[0])
    settle_collector()
    settle_allocator()
    print("ready", flush=True)
    sys.stdin.readline()
    started, cpu = time.perf_counter(), time.process_time()
    for b in batches:
        engine.monitor_batch(b)
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}), flush=True)


def _together(count: int, n: int, batch: int) -> list[dict[str, float]]:
    """``count`` members started on one signal once all are ready; each one's figures."""
    command = [sys.executable, "-m", "benchmarks.ceiling", "--member", "--events", str(n), "--batch", str(batch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        for _ in range(count)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a ceiling member did not start")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            stdout, _ = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"a ceiling member failed with exit code {p.returncode}")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def ceiling(n: int = 60_000, batch: int = 5000, rounds: int = 3) -> dict[str, Any]:
    """Per round, the events per second of one process alone and of two at once (both runs' events over the
    slower one's seconds, as the two-replica target counts a whole run), and their ratio; the median ratio."""
    out = []
    for r in range(rounds):
        order = (1, 2) if r % 2 == 0 else (2, 1)
        rates = {}
        for count in order:
            runs = _together(count, n, batch)
            rates[count] = count * n / max(x["seconds"] for x in runs)
        out.append({"one": rates[1], "two": rates[2], "ratio": rates[2] / rates[1]})
    return {"events": n, "rounds": out, "median_ratio": statistics.median(x["ratio"] for x in out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--member", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    if args.member:
        member(args.events, args.batch)
        return 0
    print(json.dumps(ceiling(args.events, args.batch, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
