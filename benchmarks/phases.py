"""One benchmark phase per process, so each reports its own peak RSS: ``python -m benchmarks.phases NAME JSON``.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson

from benchmarks.workload import T0, make, off_shape
from monitor.allocator import settle_allocator
from monitor.collector import settle_collector
from monitor.config import load_config


def _rss_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited across exec from the parent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _consumer(bootstrap: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 10,
            "partition.assignment.strategy": "range",
        }
    )


def _monitor_config(args: dict[str, Any], detectors: dict[str, Any] | None = None, **kafka: Any) -> Any:
    """A monitor on the phase's topics, a fresh consumer group, HTTP on a free port."""
    overrides: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": args["bootstrap"],
            "group_id": f"bench-{uuid.uuid4().hex[:8]}",
            "predictions_topic": args["topic"],
            "labels_topic": args["labels_topic"],
            "alerts_topic": args["alerts_topic"],
            "dlq_topic": args["dlq_topic"],
            "session_timeout_ms": 2000,
            **kafka,
        },
        "http": {"host": "127.0.0.1", "port": 0},
    }
    if detectors:
        overrides["detectors"] = detectors
    for section, values in args.get("overrides", {}).items():  # a phase run with other settings, for comparison
        overrides.setdefault(section, {}).update(values)
    return load_config(environ={}, overrides=overrides)


def limit(args: dict[str, Any]) -> dict[str, Any]:
    """Consume the prefilled topic, then consume and decode it with orjson: nothing else."""
    out: dict[str, Any] = {}
    for mode in ("consume", "consume_decode"):
        c = _consumer(args["bootstrap"])
        c.subscribe([args["topic"]])
        n, counted, started = 0, 0, None
        while n < args["n"]:
            msgs = c.consume(10_000, 1.0)
            for m in msgs:
                if mode == "consume_decode":
                    orjson.loads(m.value())
            n += len(msgs)
            if started is None:
                if msgs:  # the clock starts after the first batch: group join and first fetch excluded
                    started = time.perf_counter()
            else:
                counted += len(msgs)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        out[mode] = counted / elapsed if elapsed > 0 and counted else float("nan")
        c.close()
    return out


def naive(args: dict[str, Any]) -> dict[str, Any]:
    """A per-event Python loop over river's ADWIN, Page-Hinkley, Mean and Var per numeric feature and bucket."""
    from river import drift, stats

    w = make(args["n"], seed=1)
    events = [orjson.loads(b) for b in w.predictions]
    state: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}
    settle_collector()  # the same collector and allocator settings as the engine's phase
    settle_allocator()
    started = time.perf_counter()
    for e in events:
        buckets = ("all", "country=" + e["segments"]["country"], "gender=" + e["segments"]["gender"])
        for name, value in e["features"].items():
            if type(value) is not float:
                continue
            for b in buckets:
                s = state.get((name, b))
                if s is None:
                    s = state[name, b] = (drift.ADWIN(), drift.PageHinkley(), stats.Mean(), stats.Var())
                s[0].update(value)
                s[1].update(value)
                s[2].update(value)
                s[3].update(value)
    elapsed = time.perf_counter() - started
    return {"events_per_s": len(events) / elapsed, "us_per_event": 1e6 * elapsed / len(events), "streams": len(state)}


def engine(args: dict[str, Any]) -> dict[str, Any]:
    """The monitor's core on decoded batches; decoding is timed apart and against orjson into dicts."""
    from monitor.core.engine import PartitionEngine

    overrides = args.get("overrides", {})
    eng = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: 0.0)
    settle_collector()  # as every monitor process runs (monitor run, monitor replay): see monitor/collector.py
    settle_allocator()  # and monitor/allocator.py
    batch = args.get("batch", 5000)
    shape = {
        "numeric": args.get("numeric", 20),
        "categorical": args.get("categorical", 4),
        "segment_values": args.get("segment_values", 6),
    }
    base_rss = _rss_mb()
    profiler = None
    if args.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
    decode_s = orjson_s = dropped_s = engine_s = 0.0
    done = 0
    # Generated and decoded one batch at a time, as a monitor sees them: peak RSS is the monitor's, not the
    # workload's. Only monitor_batch counts as engine time; decoding is timed apart, against orjson into the
    # batch's dicts, kept like the decoder's batch is kept (dropping each dict at once is timed too, for
    # reference: it reuses the same memory and was 1.4 to 1.6 times faster than keeping them).
    for k in range(0, args["n"], batch):
        w = make(min(batch, args["n"] - k), seed=2 + k, start=T0 + k / 10_000, **shape)
        gc.collect()  # the generator's garbage: with the monitor's thresholds, whichever timed step came next paid for it
        # the decoder and orjson take turns going first: the second finds the bytes in the CPU cache
        decoder_first = (k // batch) % 2 == 0
        if not decoder_first:
            t = time.perf_counter()
            dicts = [orjson.loads(b) for b in w.predictions]
            orjson_s += time.perf_counter() - t
            del dicts
        t = time.perf_counter()
        decoded = eng.profile.prediction_decoder.decode(w.predictions, [0.0] * len(w.predictions))[0]
        decode_s += time.perf_counter() - t
        if decoder_first:
            t = time.perf_counter()
            dicts = [orjson.loads(b) for b in w.predictions]
            orjson_s += time.perf_counter() - t
            del dicts
        t = time.perf_counter()
        for b in w.predictions:
            orjson.loads(b)
        dropped_s += time.perf_counter() - t
        if profiler is not None:
            profiler.start()
        t = time.perf_counter()
        eng.monitor_batch(decoded)
        engine_s += time.perf_counter() - t
        if profiler is not None:
            profiler.stop()
        done += len(w.predictions)
        del w, decoded
    profile_text = profiler.output_text(unicode=False, color=False, show_all=False) if profiler is not None else ""
    t = time.perf_counter()
    raw = orjson.dumps(eng.snapshot())  # what a checkpoint record holds (dumps_record: the plain data as it is)
    snapshot_s = time.perf_counter() - t
    return {
        "events_per_s": done / engine_s,
        "decode_per_s": done / decode_s,
        "orjson_per_s": done / orjson_s,
        "orjson_dropped_per_s": done / dropped_s,
        "base_rss_mb": base_rss,
        "streams": eng.model_monitor.stream_count,
        "snapshot_bytes": len(raw),
        "bytes_per_stream": len(raw) / max(1, eng.model_monitor.stream_count),
        "snapshot_s": snapshot_s,
        "peak_rss_mb": _rss_mb(),
        "profile": profile_text,
    }


def _waiting(stage: Any) -> int:
    """Prediction rows a detection stage holds that only the idle timeout may release at the end of the topics:
    those within one summary's span of the slowest source's progress (every source stands still there, and the
    last summaries wait ``detection.idle_s`` behind a source whose progress ties or trails them by less than a
    span: a stream's end, not its rate). Rows held further back (a backlog the watermark already lets through,
    or rows ahead of a source that lags) still have to be monitored, and counting them ended the timing before
    the detection work of a run whose partitions were read unevenly (up to half the rows), which then read up
    to 1.5 times too fast. A source that has reported nothing yet (progress -inf) sets no bound."""
    from monitor.core.profile import SUMMARY_SPAN_S

    bound = min((p for p in stage.progress.values() if p > -np.inf), default=np.inf) - SUMMARY_SPAN_S
    return sum(
        int(np.count_nonzero(s.rows.event_time >= bound))
        for parts in stage.pending.values()
        for s in parts
        if s.rows is not None
    )


def end_to_end(args: dict[str, Any]) -> dict[str, Any]:
    """Broker -> monitor (checkpoints on) -> alerts and metrics, on prefilled topics, at the default poll batch
    cap (``kafka.batch_max_messages``; 10,000 here while the default was 5,000)."""
    from monitor.app import Monitor

    config = _monitor_config(args)
    pauses = _GcPauses()
    mon = Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start()
    total = args["n"] + args["n_labels"]
    started, first = None, 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with mon.service.lock:
            # monitored, or merged and within a span of the slowest source's progress: at the end of the topics
            # every source stands still, and its last rows wait idle_s (a stream's end, not its rate)
            detected = sum(d.engine.events_total() + _waiting(d) for d in mon.service.detectors.values())
            done = detected + sum(e.profile.labels_seen for e in mon.service.engines.values())
        if done and started is None:
            started, first = time.perf_counter(), done  # group join and first batch excluded
        if done >= total:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    stats = mon.service.stats
    longest = stats.checkpoint_seconds_max  # read before stop(): the final checkpoint holds no consume loop
    longest_steps = dict(stats.longest_checkpoint)
    pauses.stop()
    cpu_max = stats.checkpoint_cpu_seconds_max
    with mon.service.lock:
        parts = [_snapshot_parts(e) for e in mon.service.engines.values()]
    mon.stop()
    return {
        "events_per_s": (total - first) / elapsed if elapsed > 0 and total > first else float("nan"),
        "checkpoints": stats.checkpoints,
        "checkpoint_s": stats.checkpoint_seconds,
        "checkpoint_s_max": longest,
        "checkpoint_longest": longest_steps,
        "checkpoint_cpu_s_max": cpu_max,
        "gc_full_collections": pauses.full,
        "gc_full_s_max": pauses.full_s_max,
        "gc_s": pauses.total_s,
        "checkpoint_bytes": stats.last_checkpoint_bytes,
        "snapshot_partition_bytes": max((p["total"] for p in parts), default=0),
        "snapshot_parts": max(parts, key=lambda p: p["total"], default={}),
        "peak_rss_mb": _rss_mb(),
    }


class _GcPauses:
    """The cyclic garbage collector's pauses in this process (they hold the consume loop wherever they land,
    a checkpoint included): count and longest of the full (generation 2) collections, and the total."""

    def __init__(self) -> None:
        import gc

        self.full = 0
        self.full_s_max = 0.0
        self.total_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.total_s += took
        if info["generation"] == 2:
            self.full += 1
            self.full_s_max = max(self.full_s_max, took)

    def stop(self) -> None:
        import gc

        gc.callbacks.remove(self._callback)


def _snapshot_parts(engine: Any) -> dict[str, Any]:
    """One partition's checkpoint record in bytes (uncompressed and compressed), split into model state, join store
    and the rest, and what each step costs, as the service does it (taken after the run, so it does not count in
    the checkpoint figures; the join store's unchanged chunks reuse their encoding, as in the loop)."""
    import zlib

    from monitor.core import snapshot
    from monitor.io.checkpoint import dumps_record

    t = time.perf_counter()
    data = engine.snapshot()
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    raw = dumps_record(["group", "topic"], {"predictions": 0, "labels": 0}, data, [], time.time())
    dumps_s = time.perf_counter() - t
    t = time.perf_counter()
    compressed = zlib.compress(raw, 1)  # for scale: the producer compresses snapshots with lz4
    compress_s = time.perf_counter() - t
    state = data["state"]
    models = len(snapshot.dumps(snapshot.Encoded(state["models"])))
    joiner = len(snapshot.dumps(snapshot.Encoded(state["joiner"])))
    return {
        "total": len(raw),
        "compressed": len(compressed),
        "models": models,
        "joiner": joiner,
        "rest": len(raw) - models - joiner,
        "encode_s": encode_s,
        "dumps_s": dumps_s,
        "compress_s": compress_s,
    }


def latency(args: dict[str, Any]) -> dict[str, Any]:
    """Offer a fixed load of the reference workload, predictions and their labels, with drifts injected; alert
    latency = alert received - newest event it covers. ``rate`` counts predictions and labels, as the end to end
    figure it is compared with does: labels come for half the predictions, ``label_delay`` seconds after each."""
    from confluent_kafka import Producer

    from monitor.app import Monitor

    rate, seconds, label_delay = args["rate"], args["seconds"], args.get("label_delay", 5.0)
    per_s = rate / 1.5  # predictions per second; labels add half as many
    n = int(per_s * seconds)
    start = time.time() + 3.0
    parts = []
    # stationary first half, then a drift in a different feature and country every slice
    half = n // 2
    parts.append(make(half, seed=3, rate=per_s, start=start, label_delay=label_delay))
    slices = 6
    per = (n - half) // slices
    for k in range(slices):
        country = ["US", "DE", "IN", "BR", "SG", "JP"][k]
        parts.append(make(
            per, seed=10 + k, rate=per_s, start=start + (half + k * per) / per_s, drift=(f"x{k}", country, 3.0),
            label_delay=label_delay,
        ))  # fmt: skip
    # one schedule in event-time order: each message goes out when its event time comes (less ``offset``)
    schedule = [
        (orjson.loads(value)["timestamp"], topic, key, value)
        for p in parts
        for topic, keys, values in (
            (args["topic"], p.keys, p.predictions),
            (args["labels_topic"], p.label_keys, p.labels),
        )
        for key, value in zip(keys, values, strict=True)
    ]
    schedule.sort(key=lambda m: m[0])
    due_at = np.asarray([m[0] - start for m in schedule])
    n = sum(len(p.predictions) for p in parts)
    n_labels = len(schedule) - n
    config = _monitor_config(args, batch_max_ms=100, detectors={"warmup_events": 300})
    received: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def read_alerts() -> None:  # the alert counts when it is on the topic, as a subscriber sees it
        c = _consumer(args["bootstrap"])
        c.subscribe([args["alerts_topic"]])
        while not stop.is_set():
            for m in c.consume(100, 0.05):
                if m.error() is None:
                    received.append((time.time(), orjson.loads(m.value())))
        c.close()

    reader = threading.Thread(target=read_alerts, daemon=True)
    reader.start()
    # The monitor's own consumer settings, as users run it (fetch.wait.max.ms 50). This phase used to shorten the
    # fetch wait to 10 ms: under live traffic the embedded broker then answered many more empty fetches, 0.87
    # against 0.67 of a core for a plain consumer of this load, on the 2 cores it shares with the monitor.
    mon = Monitor(config).start()
    if not mon.wait_ready(60):
        raise RuntimeError("the monitor was not ready within 60 s")
    # The schedule starts once the monitor is ready: message i goes out at begin + i / rate, so the load is the
    # offered rate from the first message, not a burst of what fell due while the workload was made and the
    # monitor started. The messages' event times lag that schedule by ``offset``, which the latency adds back.
    # (Produced from a forked process instead, the load competed for the 2 cores rather than for this process's
    # interpreter lock, and p99 was no better: 1.94 and 4.50 s against 2.25 and 4.47 s in alternating runs.)
    begin = time.time() + 0.2
    offset = begin - start
    producer = Producer({"bootstrap.servers": args["bootstrap"], "linger.ms": 5, "batch.num.messages": 10_000})
    i = 0
    while i < len(schedule):
        due = int(np.searchsorted(due_at, time.time() - begin, side="right"))
        while i < due:
            _ts, topic, key, value = schedule[i]
            try:
                producer.produce(topic, value=value, key=key)
                i += 1
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)
    produced_at = time.time()
    # let the monitor drain what it could not keep up with (its latency then shows the lag), at most 120 s
    while time.time() - produced_at < 120:
        with mon.service.lock:
            done = sum(d.engine.events_total() for d in mon.service.detectors.values())  # monitored, merged
        if done >= n:
            break
        time.sleep(0.2)
    drained_s = time.time() - produced_at
    time.sleep(2.0)
    stop.set()
    reader.join(5)
    mon.stop()
    import datetime as dt

    lat = []
    in_order = []  # (seconds since the schedule began, latency, alert key): does latency grow over the run?
    for t_recv, a in received:
        if a["status"] == "firing" and a["kind"] == "data_drift" and a["window"]["end"]:
            end = dt.datetime.fromisoformat(a["window"]["end"].replace("Z", "+00:00")).timestamp()
            lat.append(t_recv - (end + offset))  # end + offset: when the window's last event was produced
            in_order.append((round(t_recv - begin, 2), round(lat[-1], 3), a.get("key", "")))
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {
        "offered_per_s": rate,
        "predictions_per_s": per_s,
        "labels_per_s": n_labels / (n / per_s),
        "label_delay_s": label_delay,
        "alerts": len(lat),
        "p50_s": pct(0.5),
        "p99_s": pct(0.99),
        "max_s": max(lat) if lat else None,
        "every_s": [round(x, 3) for x in lat],
        "in_order": in_order,
        "drain_s": drained_s,
        "event_time_lag_s": offset,
    }


def decoders(args: dict[str, Any]) -> dict[str, Any]:
    """Decoder candidates on the same bytes (the reference workload, batches of 5,000), timed in turns so a
    noisy machine slows them alike; the best of ``rounds`` per candidate. The columnar readers are timed
    reading and turning the features into the engine's lists, without any contract check: an upper bound."""
    import io

    import msgspec

    from monitor.core.decoders import PredictionDecoder
    from monitor.core.event_structs import PredictionStruct

    batches = [make(5000, seed=2 + k).predictions for k in range(args["n"] // 5000)]
    times = [0.0] * 5000
    dec = PredictionDecoder()
    structs = msgspec.json.Decoder(PredictionStruct).decode
    candidates: dict[str, Any] = {
        "orjson into dicts": lambda b: [orjson.loads(x) for x in b],
        "msgspec structs, decode only": lambda b: list(map(structs, b)),
        "per-message validation (orjson + Python checks), columns": lambda b: dec.decode_each(b, times),
        "our decoder: learned shapes, msgspec fast path + per-message fallback, columns": lambda b: dec.decode(
            b, times
        ),
        "our decoder, a fresh one per batch (learning in its first chunk)": lambda b: PredictionDecoder().decode(
            b, times
        ),
    }
    try:
        import pyarrow.json as pj

        def arrow(b: list[bytes]) -> Any:
            table = pj.read_json(io.BytesIO(b"\n".join(b)), read_options=pj.ReadOptions(use_threads=False))
            f = table.column("features").combine_chunks()
            return {f.type.field(i).name: f.field(i).to_pylist() for i in range(f.type.num_fields)}

        candidates["pyarrow read_json (batch) + feature lists, no checks"] = arrow
    except ImportError:
        pass
    try:
        import polars as pl

        def polars(b: list[bytes]) -> Any:
            f = pl.read_ndjson(io.BytesIO(b"\n".join(b)))["features"].struct.unnest()
            return {c: f[c].to_list() for c in f.columns}

        candidates["polars read_ndjson (batch) + feature lists, no checks"] = polars
    except ImportError:
        pass
    best = dict.fromkeys(candidates, math.inf)
    for _ in range(args.get("rounds", 5)):
        for name, fn in candidates.items():
            t = time.perf_counter()
            for b in batches:
                fn(b)
            best[name] = min(best[name], time.perf_counter() - t)
    n = sum(map(len, batches))
    return {"events": n, "per_s": {name: n / s for name, s in best.items()}}


def checkpoint_steady(args: dict[str, Any]) -> dict[str, Any]:
    """A profile stage at steady state, checkpointed as the service does with every summary send while caught
    up (every ``detection.live_interval_s`` of event time): one input partition of the reference workload at ``rate`` predictions/s, labels for half
    of them ``label_delay`` s later, for ``seconds``, so that its join store fills (the unlabelled half waits
    until ``labels.max_pending``, and the joined ids are remembered up to as many). Each checkpoint's snapshot,
    record and pieces are written to a state topic on the broker; the figures are the last ``tail`` checkpoints':
    the snapshot's size, the bytes produced (pieces the partition held are not), and the loop thread's CPU."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from monitor.core.engine import PartitionEngine
    from monitor.io.checkpoint import CheckpointStore, record_parts
    from monitor.io.kafka_clients import ensure_topics

    rate, seconds, delay, tail = args["rate"], args["seconds"], args.get("label_delay", 5.0), args.get("tail", 20)
    tick = load_config(environ={}, overrides={}).detection.live_interval_s
    topic = f"state-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": args["bootstrap"]}), {topic: 1})
    producer = Producer({"bootstrap.servers": args["bootstrap"], "compression.type": "lz4"})
    store = CheckpointStore({"bootstrap.servers": args["bootstrap"]}, topic, producer=producer)
    engine = PartitionEngine(load_config(environ={}, overrides={}), partition=0, clock=lambda: 0.0, detect=False)
    w = make(int(rate * seconds), seed=1, rate=rate, label_delay=delay)
    prediction_times = np.asarray([orjson.loads(v)["timestamp"] for v in w.predictions])
    label_times = np.asarray([orjson.loads(v)["timestamp"] for v in w.labels])
    t, p0, l0 = T0, 0, 0
    rows: list[tuple[int, int, float]] = []  # (snapshot bytes, bytes produced, loop-thread CPU s)
    while p0 < len(w.predictions):
        t += tick
        p1 = int(np.searchsorted(prediction_times, t, side="right"))
        l1 = int(np.searchsorted(label_times, t, side="right"))
        if p1 > p0:
            engine.process_predictions(w.predictions[p0:p1], [t] * (p1 - p0))
        if l1 > l0:
            engine.process_labels(w.labels[l0:l1], [t] * (l1 - l0))
        p0, l0 = p1, l1
        cpu, written = time.thread_time(), store.bytes_written
        # in parts, as the service writes it (the join's unchanged chunks are not cut and digested again)
        payload = record_parts(["bench", topic, "profile"], {"predictions": p0}, engine.snapshot(), [], t)
        store.write(0, payload)
        cpu = time.thread_time() - cpu
        producer.flush(30)
        if store.failed:
            raise RuntimeError("a checkpoint was not acknowledged")
        store.confirm(0)
        rows.append((len(payload), store.bytes_written - written, cpu))
    last = rows[-tail:]
    joiner = engine.profile.joiner
    return {
        "rate": rate,
        "seconds": seconds,
        "tick_s": tick,
        "label_delay_s": delay,
        "pending": len(joiner.pending),
        "joined_ids": len(joiner.done),
        "snapshot_mb": float(np.mean([r[0] for r in last])) / 1e6,
        "written_mb": float(np.mean([r[1] for r in last])) / 1e6,
        "cpu_ms": 1000 * float(np.mean([r[2] for r in last])),
    }


def shape(args: dict[str, Any]) -> dict[str, Any]:
    """Decoding and the engine together (``process_predictions``) on traffic of one shape off the reference
    workload's (benchmarks/workload.py, SHAPES), timed after the first third of its events (the warm-ups)."""
    from monitor.core.engine import PartitionEngine

    eng = PartitionEngine(load_config(environ={}, overrides=args.get("overrides", {})), clock=lambda: 0.0)
    settle_collector()
    settle_allocator()
    n = args["n"]
    batch = min(args.get("batch", 5000), max(1, n // 3))  # (a short run still times two thirds of its batches)
    elapsed, timed, carried = 0.0, 0, 0
    for k in range(0, n, batch):
        values = off_shape(args["kind"], min(batch, n - k), seed=k, start=T0 + k / 5000)
        gc.collect()
        t = time.perf_counter()
        eng.process_predictions(values, [0.0] * len(values))
        if k >= n // 3:
            elapsed += time.perf_counter() - t
            timed += len(values)
            carried += sum(len(orjson.loads(v)["features"]) for v in values)
    return {
        "events_per_s": timed / elapsed,
        "values_per_s": carried / elapsed,
        "streams": eng.model_monitor.stream_count,
        "peak_rss_mb": _rss_mb(),
    }


PHASES = {
    "limit": limit,
    "naive": naive,
    "engine": engine,
    "end_to_end": end_to_end,
    "latency": latency,
    "decoders": decoders,
    "checkpoint_steady": checkpoint_steady,
    "shape": shape,
}

if __name__ == "__main__":
    print(json.dumps(PHASES[sys.argv[1]](json.loads(sys.argv[2]))))
