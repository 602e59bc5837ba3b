"""Detection delay by input partition count: the two stages in process against one engine per partition.

The same traffic (``rate`` predictions/s, a numeric feature, a segment attribute of ``segments`` equal
values) is spread over ``partitions`` input partitions by prediction id, as a keyed producer would. Each
partition is read in slices of ``slice_s`` seconds of event time. Two ways of monitoring it:

* **two stages** (what the monitor runs): one profile stage per partition, every summary to one detection
  stage, which releases merged rows behind the watermark after each slice;
* **per partition** (what it ran before): one engine per partition on its share, alerts owned by hash.

A mean shift of ``shift`` standard deviations starts in one segment at ``change``; the delay is counted in
predictions (all traffic) from the change to the first alert for that segment's stream.
``python -m benchmarks.partitions`` prints the table; tests/unit/test_two_stages.py runs a smaller one.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.config import load_config
from monitor.core.detect import DetectionStage
from monitor.core.engine import PartitionEngine
from monitor.core.events import PredictionBatch
from monitor.core.profile import ProfileStage
from monitor.core.rules import Alert
from monitor.core.settings import Settings
from monitor.core.shards import summaries_partition
from monitor.core.summary import Summary

T0 = 1_767_225_600.0


@dataclass
class Traffic:
    ids: list[str]
    x: np.ndarray
    other: np.ndarray
    segment: list[str]
    times: np.ndarray
    prediction: np.ndarray
    model: str = "m"


def traffic(
    n: int, change: int, shift: float, *, segments: int = 10, rate: float = 20_000.0, seed: int = 0, model: str = "m"
) -> Traffic:
    """``n`` predictions of ``model``; from ``change`` on, feature x of segment s0 has its mean moved by ``shift``
    sd."""
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, segments, n)
    x = rng.normal(0.0, 1.0, n)
    x[change:][seg[change:] == 0] += shift
    return Traffic(
        ids=[f"p{seed}-{i}" for i in range(n)],
        x=x,
        other=rng.normal(5.0, 2.0, n),
        segment=[f"s{v}" for v in seg.tolist()],
        times=T0 + np.arange(n) / rate,
        prediction=rng.uniform(0, 1, n),
        model=model,
    )


def _batch(t: Traffic, rows: np.ndarray) -> PredictionBatch:
    r = rows.tolist()
    return PredictionBatch(
        index=np.arange(len(r)),
        prediction_id=[t.ids[i] for i in r],
        model=[t.model] * len(r),
        model_version=["v1"] * len(r),
        event_time=t.times[rows],
        prediction=t.prediction[rows].tolist(),
        features={"x": t.x[rows].tolist(), "other": t.other[rows].tolist()},
        segments={"segment": [t.segment[i] for i in r]},
        latency_ms=np.full(len(r), np.nan),
        scores=[None] * len(r),
    )


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"alerts": {"resolve_after_s": 600.0, "cooldown_s": 600.0}}
    base.update(overrides)
    return load_config(environ={}, overrides=base)


def _slices(t: Traffic, partitions: int, slice_s: float) -> list[list[np.ndarray]]:
    """Per time slice, each partition's rows in it (partition by a stable hash of the prediction id)."""
    part = np.array([zlib.crc32(i.encode()) % partitions for i in t.ids])
    edges = np.arange(t.times[0], t.times[-1] + slice_s, slice_s)
    cut = np.searchsorted(t.times, edges[1:], side="left")
    out: list[list[np.ndarray]] = []
    start = 0
    for stop in [*cut.tolist(), t.times.size]:
        if stop <= start:
            continue
        rows = np.arange(start, stop)
        out.append([rows[part[rows] == p] for p in range(partitions)])
        start = stop
    return out


def run_two_stages(t: Traffic, partitions: int, config: Settings, slice_s: float = 0.05,
                   wire: bool = False, shards: int = 1,
                   stages: list[DetectionStage] | None = None) -> list[tuple[int, Alert]]:  # fmt: skip
    """Alerts, each with the number of predictions read when it was raised. ``wire``: summaries through
    their bytes, as the summaries topic carries them. ``shards``: the model's detection shards, each in a
    detection stage of its own (one summaries partition each); ``stages`` receives those stages."""
    profiles = [ProfileStage(config, partition=p) for p in range(partitions)]
    for profile in profiles:
        profile.shards = shards
    detects = [
        DetectionStage(
            config, partition=d, clock=lambda: 0.0, idle_clock=lambda: 0.0, summaries_partitions=shards, shards=shards
        )
        for d in range(shards)
    ]
    if stages is not None:
        stages += detects
    out: list[tuple[int, Alert]] = []
    read = 0
    for rows_of in _slices(t, partitions, slice_s):
        for p, rows in enumerate(rows_of):
            if rows.size:
                for s in profiles[p].register(_batch(t, rows)):
                    d = summaries_partition(s.model, shards, s.shard, shards)
                    detects[d].add(Summary.decode(s.encode()) if wire else s)
            read += rows.size
        for detect in detects:
            out += [(read, a) for a in detect.release()]
    for detect in detects:
        out += [(read, a) for a in detect.release(flush=True)]
        out += [(read, a) for a in detect.engine.finish()]
    return out


def run_per_partition(t: Traffic, partitions: int, config: Settings, slice_s: float = 0.05) -> list[tuple[int, Alert]]:
    """The same traffic through one engine per partition (the layout before the two stages)."""
    engines = [
        PartitionEngine(config, partition=p, partitions=partitions, clock=lambda: 0.0) for p in range(partitions)
    ]
    out: list[tuple[int, Alert]] = []
    read = 0
    for rows_of in _slices(t, partitions, slice_s):
        for p, rows in enumerate(rows_of):
            if rows.size:
                out += [(read + rows.size, a) for a in engines[p].monitor_batch(_batch(t, rows))]
            read += rows.size
    for e in engines:
        out += [(read, a) for a in e.finish()]
    return out


def delay(alerts: list[tuple[int, Alert]], change: int, key_part: str = "data_drift/x/segment=s0") -> int | None:
    """Predictions from the change to the first firing alert whose key contains ``key_part``."""
    for read, a in alerts:
        if a.status == "firing" and key_part in a.key:
            return read - change
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--change", type=int, default=60_000)
    ap.add_argument("--shift", type=float, default=0.6)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--partitions", type=int, nargs="*", default=[1, 6, 12])
    args = ap.parse_args(argv)
    config = settings()
    print("| partitions | seed | two stages: delay (predictions) | alerts | one engine per partition: delay | alerts |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seed in range(args.seeds):
        t = traffic(args.events, args.change, args.shift, seed=seed)
        for p in args.partitions:
            two = run_two_stages(t, p, config)
            old = run_per_partition(t, p, config)
            n_two = sum(a.status == "firing" for _, a in two)
            n_old = sum(a.status == "firing" for _, a in old)
            print(f"| {p} | {seed} | {delay(two, args.change)} | {n_two} | {delay(old, args.change)} | {n_old} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
