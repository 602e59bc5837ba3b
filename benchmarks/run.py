"""`make bench`: the reference workload through the limit, the naive loop, the engine and end to end.

Every figure comes from this one run on this machine; ratios are what to quote. Writes BENCHMARKS.md and
benchmarks/scaling.png. ``--quick`` runs tiny sizes (the smoke test in `make test` uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from benchmarks import ceiling, keyed
from benchmarks.workload import SHAPES, make
from monitor.io.broker import EmbeddedBroker
from monitor.io.kafka_clients import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


def phase(name: str, **args: Any) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.phases", name, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def topics(bootstrap: str, partitions: int = 6) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    names = {
        "topic": f"pred-{tag}",
        "labels_topic": f"lab-{tag}",
        "alerts_topic": f"al-{tag}",
        "dlq_topic": f"dlq-{tag}",
    }
    ensure_topics(
        AdminClient({"bootstrap.servers": bootstrap}),
        {
            names["topic"]: partitions,
            names["labels_topic"]: partitions,
            names["alerts_topic"]: 1,
            names["dlq_topic"]: 1,
        },
    )
    return names


def fill(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> None:
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                p.produce(topic, value=v, key=k)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{pkg} {metadata.version(pkg)}" for pkg in ("numpy", "river", "orjson", "confluent-kafka", "scipy")
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}; {versions}"


def scaling(quick: bool) -> dict[str, list[dict[str, Any]]]:
    n = 2000 if quick else 20_000
    features = [5, 20] if quick else [5, 20, 50, 100, 200]
    values = [1, 10] if quick else [1, 10, 100, 1000]
    big = {"monitoring": {"max_segment_values": 2000, "max_streams": 1_000_000, "max_features_per_model": 1000}}
    by_features = []
    for f in features:
        r = phase("engine", n=n, numeric=f, categorical=max(1, f // 5), overrides=big)
        by_features.append(
            {
                "features": f + max(1, f // 5),
                **{k: r[k] for k in ("events_per_s", "streams", "peak_rss_mb", "bytes_per_stream")},
            }
        )
    by_values = []
    for v in values:
        r = phase("engine", n=max(n, 4 * v * 10 if not quick else n), segment_values=v, overrides=big)
        by_values.append(
            {"segment_values": v, **{k: r[k] for k in ("events_per_s", "streams", "peak_rss_mb", "bytes_per_stream")}}
        )
    return {"features": by_features, "segment_values": by_values}


def plot(scale: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "features", "features per event"),
        (axes[1], "segment_values", "values of one segment attribute"),
    ):
        rows = scale[key]
        xs = [r[key] for r in rows]
        ax.plot(xs, [r["events_per_s"] for r in rows], "o-", label="events/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("engine events/s")
        ax2 = ax.twinx()
        ax2.plot(xs, [r["peak_rss_mb"] for r in rows], "s--", color="tab:red", label="peak RSS MB")
        ax2.set_ylabel("peak RSS (MB)")
        ax.set_title(f"Engine vs {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def end_to_end_only(n: int) -> dict[str, Any]:
    """The end_to_end phase alone, on the same topics and workload as in a full run (7+ minutes less)."""
    with EmbeddedBroker() as broker:
        names = topics(broker.bootstrap)
        w = make(n, seed=0)
        fill(broker.bootstrap, names["topic"], w.predictions, w.keys)
        fill(broker.bootstrap, names["labels_topic"], w.labels, w.label_keys)
        return phase("end_to_end", bootstrap=broker.bootstrap, n=n, n_labels=len(w.labels), **names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--png", default=str(ROOT / "benchmarks" / "scaling.png"))
    ap.add_argument(
        "--end-to-end-only",
        action="store_true",
        help="run only the end_to_end phase on freshly filled topics and print its JSON (writes nothing)",
    )
    args = ap.parse_args(argv)
    q = args.quick
    n = 3000 if q else 200_000
    if args.end_to_end_only:
        print(json.dumps(end_to_end_only(n), indent=1))
        return 0
    started = time.time()
    results: dict[str, Any] = {}
    with EmbeddedBroker() as broker:
        b = broker.bootstrap
        names = topics(b)
        w = make(n, seed=0)
        fill(b, names["topic"], w.predictions, w.keys)
        fill(b, names["labels_topic"], w.labels, w.label_keys)
        results["labels"] = len(w.labels)
        results["limit"] = phase("limit", bootstrap=b, topic=names["topic"], n=n)
        results["naive"] = phase("naive", n=1000 if q else 20_000)
        results["engine"] = phase("engine", n=n if q else 100_000)
        if not q:  # the profiler slows the engine by about a third: the timed run goes without it
            results["engine"]["profile"] = phase("engine", n=100_000, profile=True)["profile"]
        results["decoders"] = phase("decoders", n=5000 if q else 20_000, rounds=2 if q else 5)
        results["end_to_end"] = phase("end_to_end", bootstrap=b, n=n, n_labels=len(w.labels), **names)
        # the smoke run's source partitions fall quiet together after 3 s: the last summaries then wait for
        # detection.idle_s (10 s) before they are merged, so it waits 2 s instead
        drain = {"overrides": {"detection": {"idle_s": 2.0}}} if q else {}
        results["latency"] = phase(
            "latency", bootstrap=b, rate=2000 if q else 50_000, seconds=3 if q else 12, **topics(b), **drain
        )
        # the load: half the measured end-to-end throughput
        sustainable = 1000 if q else max(1000, int(0.5 * results["end_to_end"]["events_per_s"]))
        results["latency_sustainable"] = phase(
            "latency", bootstrap=b, rate=sustainable, seconds=3 if q else 20, **topics(b), **drain
        )
        results["checkpoint_steady"] = phase(
            "checkpoint_steady", bootstrap=b, rate=2300, seconds=10 if q else 150, tail=5 if q else 20
        )
        results["keyed"] = keyed_figures(b, q, broker.pid)
    big = {"monitoring": {"max_segment_values": 2000, "max_streams": 1_000_000}}
    results["shapes_events"] = 3000 if q else 60_000
    kinds = ["base", "nulls"] if q else list(SHAPES)  # (the smoke run: the table's code, not its figures)
    results["shapes"] = {kind: phase("shape", kind=kind, n=results["shapes_events"]) for kind in kinds}
    results["memory_10k"] = phase("engine", n=2000 if q else 60_000, segment_values=40 if q else 400, overrides=big)
    results["scaling"] = scaling(q)
    plot(results["scaling"], Path(args.png))
    Path(args.out).write_text(report(results, time.time() - started, quick=q, png=Path(args.png)))
    print(f"wrote {args.out} and {args.png}")
    return 0


def _ratio(per_s: dict[str, float], prefix: str, base: float) -> str:
    eps = next((v for k, v in per_s.items() if k.startswith(prefix)), None)
    return "not measured" if eps is None else f"{eps / base:.2f}x"


def decoder_table(d: dict[str, Any]) -> list[str]:
    """The decoder candidates, each on the same bytes in the same process, and why we chose ours."""
    per_s = d["per_s"]
    base = per_s["orjson into dicts"]
    return [
        "## Decoder candidates",
        "",
        f"{d['events']:,} reference-workload predictions in batches of 5,000, each candidate timed in turns with "
        "the others (best of 5) in one process:",
        "",
        "| candidate | events/s | ratio to orjson into dicts |",
        "|---|---:|---:|",
        *[f"| {name} | {eps:,.0f} | {eps / base:.2f} |" for name, eps in per_s.items()],
        "",
        "Chosen: msgspec structs, the only candidate that keeps the contract exactly. Its types, required fields "
        "and fixed bounds are checked in C while decoding, and the rows are gathered into columns 128 messages at "
        "a time, while they are still in the CPU cache. The decoder learns the feature and segment names of the "
        "events it accepts (up to 8 name sets at once): a chunk whose events all have one learned set decodes those "
        "maps into structs with one field per name instead of dicts, and its columns are one transpose of the "
        "structs' field tuples. Any other chunk (another name set, a null feature, a bad message) takes the dict "
        "path, and a message that path does not accept goes through the per-message validator, so every dead "
        "letter keeps its exact reason and detail. A fresh decoder per batch, which learns from its first chunk, "
        f"reaches {_ratio(per_s, 'our decoder, a fresh one', base)}. Decoding a chunk as one JSON array "
        "instead of one call per message was measured too: no faster. The columnar readers, timed here without "
        f"any contract check, reach {_ratio(per_s, 'pyarrow', base)} (pyarrow) and {_ratio(per_s, 'polars', base)} "
        f"(polars), against {_ratio(per_s, 'our decoder: learned', base)} for ours with every check; they cannot "
        "keep what the contract needs: an integer in a float column comes back a float, an explicit null looks "
        "like an absent field, and one bad message fails the whole batch's read.",
        "",
    ]


def _steady(c: dict[str, Any]) -> str:
    """A profile stage's checkpoint once its join store is full, as a caught-up service writes one on each tick."""
    return (
        f"- A profile stage's checkpoint at steady state (one partition, {c['rate']:,} predictions/s, labels for half "
        f"{c['label_delay_s']:g} s later, after {c['seconds']} s: {c['pending']:,} predictions waiting, "
        f"{c['joined_ids']:,} joined ids remembered; the last checkpoints, one every {c.get('tick_s', 0.5):g} s as "
        f"with summaries while caught up): "
        f"{c['snapshot_mb']:.2f} MB of snapshot, {c['written_mb']:.2f} MB produced (the pieces the state partition "
        f"did not hold), {c['cpu_ms']:.0f} ms of the loop thread's CPU (snapshot, record, pieces)."
    )


def _load(lat: dict[str, Any]) -> str:
    """What an offered load is made of: the reference workload's predictions and their labels, counted together
    as in the end to end figure."""
    return (
        f"{lat['predictions_per_s']:,.0f} predictions/s and {lat['labels_per_s']:,.0f} labels/s, each label "
        f"{lat['label_delay_s']:g} s after its prediction"
    )


def _longest(e2e: dict[str, Any]) -> str:
    """What the longest checkpoint was made of: partitions, bytes, thread CPU and its slowest steps."""
    c = e2e.get("checkpoint_longest") or {}
    if not c:
        return ""
    steps = ", ".join(
        f"{name} {c[name] * 1000:.0f} ms" for name in ("snapshot", "dumps", "write", "flush", "commit") if name in c
    )
    return (
        f": {len(c['partitions'])} partition(s), {c['bytes'] / 1e6:.1f} MB, {c['thread_cpu'] * 1000:.0f} ms of the "
        f"loop thread's CPU ({steps}; write = produce; the producer compresses with lz4 in its own threads)"
    )


def _partition_snapshot(e2e: dict[str, Any]) -> str:
    """One partition's snapshot after the run, split, and the garbage collector's pauses during the phase."""
    p = e2e.get("snapshot_parts") or {}
    if not p:
        return ""
    return (
        f"The largest partition's snapshot after the run: {p['total'] / 1e6:.2f} MB of JSON "
        f"({p['compressed'] / 1e6:.2f} MB with zlib level 1, for scale): model state {p['models'] / 1e6:.2f} MB, join store "
        f"{p['joiner'] / 1e6:.2f} MB, the rest {p['rest'] / 1e3:.1f} KB. Full garbage collections during the phase: "
        f"{e2e['gc_full_collections']}, the longest {e2e['gc_full_s_max'] * 1000:.0f} ms (a pause that lands in a "
        "checkpoint counts in its time)."
    )


def results_labels(r: dict[str, Any]) -> str:
    return f"{r.get('labels', 0):,}"


def keyed_figures(bootstrap: str, quick: bool, broker_pid: int | None = None) -> dict[str, Any]:
    """Issue 14's measures through the broker, with ``monitor run`` replicas (benchmarks/keyed.py)."""
    if quick:  # the smoke run: one configuration, too small to detect anything
        return {
            "delays": keyed.delays(bootstrap, n=3000, change=1500, shift=0.6, seeds=1, configs=((12, 3),)),
            "throughput": {},
            "ceiling": ceiling.ceiling(n=2000, batch=1000, rounds=1),
        }
    return {
        "delays": keyed.delays(bootstrap, n=100_000, change=40_000, shift=0.6, seeds=2),
        "throughput": keyed.throughput(bootstrap, n=480_000, broker_pid=broker_pid),
        "ceiling": ceiling.ceiling(n=100_000, rounds=5),
    }


def keyed_lines(k: dict[str, Any]) -> list[str]:
    """The keyed-detection section of the report, with issue 14's targets."""
    lines = [
        "## Keyed detection (issue 14)",
        "",
        "The traffic of benchmarks/partitions.py (20,000 predictions/s of event time, feature x shifted by 0.6 sd in a "
        "segment with 10% of the traffic after 40,000 predictions) produced to topics of 1 and 12 partitions and read "
        "by `monitor run` replicas in one group. Delay: predictions from the change to the alert's `detected_at`.",
        "",
        "| seed | partitions | replicas | delay (predictions) | firing alerts | peak RSS of a replica (MB) |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for d in k["delays"]:
        lines.append(
            f"| {d['seed']} | {d['partitions']} | {d['replicas']} | {d['delay']} | {', '.join(d['firing']) or '-'} "
            f"| {d['rss_mb']:.0f} |"
        )
    t = k["throughput"]
    if t:
        lines += [
            "", "End to end, the reference workload (one model version, 480,000 predictions) prefilled once on 6 "
            "partitions and read by a new consumer group per run, three rounds of every configuration in turn; each "
            "configuration's fastest run is shown, with every run's whole-run rate. Whole run: from the first event profiled "
            "to the last monitored, less the end's idle hold (the judged figure); steady: events monitored per second "
            "between 10% and 90% of them (a prefilled topic is profiled ahead of detection, so this leaves out much of "
            "the profile work and reads high). Replica CPU: user and system seconds of all replicas over the run; the "
            "broker and this driver (reading each replica's /api/status every 0.5 s) run on the same 2 cores. With "
            "one shard a model's "
            "detection runs in one replica, so a second replica takes over profile work only; `detection.shards = 2` "
            "splits its features over two detection stages (docs/engine-v2.md, \"Detection shards\"). A replica takes the "
            "summaries it sent to its own detection stages from memory instead of decoding them (core/handoff.py): one "
            "replica reads all of its summaries that way, each of two replicas about half, the rest decoded.", "",
            "| replicas × shards | whole run (events/s) | steady (events/s) | replica CPU (s) | broker (cores) "
            "| driver (cores) | every run (events/s) |",
            "|---|---:|---:|---:|---:|---:|---|",
            *(f"| {n} | {f['events_per_s']:,.0f} | {f['steady_per_s']:,.0f} | {f['replica_cpu_s']:.1f} | "
              f"{f['broker_cores']:.2f} | {f['driver_cores']:.2f} | "
              f"{', '.join(f'{x:,.0f}' for x in f.get('runs', []))} |" for n, f in t.items()),
            "",
        ]  # fmt: skip
    by = {(d["seed"], d["partitions"], d["replicas"]): d for d in k["delays"]}
    seeds = sorted({d["seed"] for d in k["delays"]})
    rows = []
    for replicas in (1, 3):
        ratios = []
        for s in seeds:
            one, many = by.get((s, 1, 1)), by.get((s, 12, replicas))
            if one and many and one["delay"] and many["delay"]:
                ratios.append(many["delay"] / one["delay"])
            elif one and many:
                ratios.append(float("inf"))
        if ratios:
            worst = max(ratios)
            rows.append(f"| delay on 12 partitions ≤ 1.25 × on 1, {replicas} replica(s) | worst {worst:.2f} × | "
                        f"{'met' if worst <= 1.25 else '**not met**'} |")  # fmt: skip
    rss = [(by[s, 12, 1]["rss_mb"] / by[s, 1, 1]["rss_mb"]) for s in seeds if (s, 12, 1) in by and (s, 1, 1) in by]
    if rss:
        rows.append(f"| RSS on 12 partitions ≤ 1.2 × on 1 (1 replica) | worst {max(rss):.2f} × | "
                    f"{'met' if max(rss) <= 1.2 else '**not met**'} |")  # fmt: skip
    singles = [f["events_per_s"] for n, f in t.items() if n.startswith("1x")]
    if singles and "2x2" in t:  # against the faster single replica, so a shard's own cost cannot flatter the ratio
        ratio = t["2x2"]["events_per_s"] / max(singles)
        rows.append(
            f"| end to end, 2 replicas ≥ 1.7 × 1 replica (fastest whole runs; 2 replicas with 2 shards, against the "
            f"faster of 1 replica with 1 or 2 shards) | {ratio:.2f} × | {'met' if ratio >= 1.7 else '**not met**'} |"
        )
    c = k.get("ceiling")
    if c:
        rows.append(
            f"| two processes of the engine's work at once against one alone, no broker (the machine's ceiling for "
            f"the line above; median of {len(c['rounds'])} alternating rounds: "
            f"{', '.join(format(x['ratio'], '.2f') for x in c['rounds'])}) | {c['median_ratio']:.2f} × | |"
        )
    if "1x1" in t and "2x2" in t:
        rows.append(
            f"| replica CPU for the same events, 2 replicas with 2 shards against 1 replica with 1 (for reference) | "
            f"{t['2x2']['replica_cpu_s'] / t['1x1']['replica_cpu_s']:.2f} × | |"
        )
    if rows:
        lines += ["| target | measured | |", "|---|---|---|", *rows, ""]
    return lines


def report(r: dict[str, Any], seconds: float, *, quick: bool, png: Path) -> str:
    lim, nai, eng, e2e, lat, mem = r["limit"], r["naive"], r["engine"], r["end_to_end"], r["latency"], r["memory_10k"]
    lat2 = r["latency_sustainable"]
    limit = lim["consume_decode"]

    def row(name: str, eps: float, note: str = "") -> str:
        return f"| {name} | {eps:,.0f} | {eps / limit:.2f} | {eps / nai['events_per_s']:.1f} | {note} |"

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {seconds:.0f} s"
        + (" (**quick smoke run, sizes too small to quote**)" if quick else "")
        + ".",
        f"Machine: {machine()}. Shared and noisy: quote the ratios, measured in this one run.",
        "",
        "Reference workload (GUIDE section 7): 20 numeric and 4 categorical features, segments country (6 values) "
        "and gender (2), a binary classifier's score, latency, labels for half the predictions. Streams per event: "
        "25 subjects (24 features + the prediction) x 3 buckets (all traffic, its country, its gender).",
        "",
        "| path | events/s | ratio to limit | ratio to naive | notes |",
        "|---|---:|---:|---:|---|",
        row("limit: consume only", lim["consume"], "broker to Python, nothing else"),
        row("limit: consume + orjson decode", limit, "the limit the targets refer to"),
        row(
            "naive river loop",
            nai["events_per_s"],
            f"{nai['us_per_event']:.0f} µs/event, {nai['streams']} streams, numeric only",
        ),
        row("engine on decoded batches", eng["events_per_s"], f"{eng['streams']} streams, batches of 5,000"),
        row(
            "our decoder (validate + columns)",
            eng["decode_per_s"],
            f"orjson into dicts alone: {eng['orjson_per_s']:,.0f}/s "
            f"({eng['orjson_dropped_per_s']:,.0f}/s dropping each dict at once)",
        ),
        row("end to end (broker → monitor, checkpoints on)", e2e["events_per_s"], "predictions and labels"),
        "",
        f"- Peak RSS (the whole process: interpreter and libraries take {eng['base_rss_mb']:.0f} MB before any "
        f"stream): engine phase {eng['peak_rss_mb']:.0f} MB; end to end {e2e['peak_rss_mb']:.0f} MB (with the "
        f"Kafka clients and the label join); with {mem['streams']:,} monitored streams: {mem['peak_rss_mb']:.0f} MB.",
        f"- State: {eng['bytes_per_stream']:,.0f} bytes of snapshot per monitored stream "
        f"({eng['snapshot_bytes'] / 1e6:.1f} MB for {eng['streams']} streams, uncompressed JSON, snapshot {eng['snapshot_s']:.2f} s); "
        f"{mem['bytes_per_stream']:,.0f} bytes per stream at {mem['streams']:,} streams.",
        f"- Checkpoints during end to end: {e2e['checkpoints']}, the longest while consuming held the loop "
        f"{e2e['checkpoint_s_max'] * 1000:.0f} ms (snapshot, flush, alerts, commit){_longest(e2e)}; the last (on "
        f"stop, every partition) took {e2e['checkpoint_s'] * 1000:.0f} ms for {e2e['checkpoint_bytes'] / 1e6:.1f} MB. "
        f"{_partition_snapshot(e2e)}",
        f"- Alert latency (event produced → alert on the topic) at an offered load of {lat['offered_per_s']:,.0f} events/s "
        f"({_load(lat)}): "
        f"{lat['alerts']} drift alerts, p50 {lat['p50_s']:.2f} s, p99 {lat['p99_s']:.2f} s; the monitor needed "
        f"{lat['drain_s']:.0f} s after the producer stopped to catch up (up to idle_s, 10 s, of it the last rows' wait for the watermark). "
        f"At {lat2['offered_per_s']:,.0f} events/s ({_load(lat2)}; {'the quick run' if quick else 'half its end-to-end throughput'}): {lat2['alerts']} alerts, p50 {lat2['p50_s']:.2f} s, p99 {lat2['p99_s']:.2f} s.",
        _steady(r["checkpoint_steady"]),
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| engine ≥ 200,000 events/s on decoded batches | {eng['events_per_s']:,.0f} | {verdict(eng['events_per_s'] >= 200_000)} |",
        f"| engine ≥ 40 × naive | {eng['events_per_s'] / nai['events_per_s']:.1f} × | {verdict(eng['events_per_s'] >= 40 * nai['events_per_s'])} |",
        f"| end to end ≥ half the limit | {e2e['events_per_s'] / limit:.2f} × limit | {verdict(e2e['events_per_s'] >= limit / 2)} |",
        f"| decoder ≥ 0.8 × orjson into dicts | {eng['decode_per_s'] / eng['orjson_per_s']:.2f} × orjson | {verdict(eng['decode_per_s'] >= 0.8 * eng['orjson_per_s'])} |",
        f"| peak RSS ≤ 400 MB at 10,000 streams | {mem['peak_rss_mb']:.0f} MB at {mem['streams']:,} streams | {verdict(mem['peak_rss_mb'] <= 400)} |",
        f"| snapshot ≤ 2 KB per stream | {mem['bytes_per_stream']:,.0f} bytes at {mem['streams']:,} streams | {verdict(mem['bytes_per_stream'] <= 2048)} |",
        f"| checkpoint stall ≤ 250 ms | longest while consuming {e2e['checkpoint_s_max'] * 1000:.0f} ms | {verdict(e2e['checkpoint_s_max'] <= 0.25)} |",
        f"| alert latency p99 ≤ 2 s at half the end-to-end throughput | {lat2['p99_s']:.2f} s at {lat2['offered_per_s']:,.0f}/s | {verdict(lat2['p99_s'] <= 2 and lat2['offered_per_s'] >= 0.5 * e2e['events_per_s'] - 1)} |",
        f"| alert latency at 50,000 events/s (reported) | p99 {lat['p99_s']:.2f} s at {lat['offered_per_s']:,.0f}/s | - |",
        "",
        *(keyed_lines(r["keyed"]) if "keyed" in r else []),
        "## What bounds the figures",
        "",
        f"- **Engine.** Every event updates 75 streams (25 subjects x 3 buckets). The numeric streams of a model "
        f"version are one table (core/numeric_streams.py, core/windows.py): moments, histograms, chunks, Page-Hinkley "
        f"and the window tests' counts cost a fixed number of numpy calls per batch; a value's window bin is read from "
        f"its histogram cell (core/cells.py). Still per stream: river's ADWIN "
        f"(one call per 32 values of a stream, through one map), the result object of each stream's latest decided "
        f"window (closed windows go to their false-discovery round as columns), the categorical streams (one "
        f"chi-square window and one window test object each, a subject's streams counted with one bincount a batch and "
        f"the windows a batch closed tested together) and "
        f"the judgement of streams with something to judge; the loops over a batch's values that numpy cannot "
        f"vectorise or that took several passes (column conversion, segment and category codes, cells, window "
        f"codes, counts by run, the layout by stream, chunk sums, moments, Page-Hinkley over chunks) are compiled "
        f"(core/_kernels.pyx, Cython, built at install; core/kernels.py). Both engine phases run under the collector and allocator "
        f"settings of a monitor process (monitor/collector.py, monitor/allocator.py: a batch's freed arrays are kept "
        f"for the next instead of being faulted in again), as the naive loop does. The profile below "
        f"shows where the time goes. The engine does {eng['events_per_s'] / nai['events_per_s']:.1f}x the naive loop "
        f"while also running categorical tests, the prediction stream, the label join, score-based estimates and the "
        f"alert lifecycle, which the naive loop does not. docs/engine-v2.md has the plan for the rest.",
        f"- **Decoding** runs at {eng['decode_per_s'] / eng['orjson_per_s']:.2f}x orjson into a batch of dicts in the "
        f"engine's process ({eng['decode_per_s'] / eng['orjson_dropped_per_s']:.2f}x orjson dropping each dict at once, "
        "which reuses the same memory); see the candidates below.",
        f"- **End to end** adds the consumer, decoding, the label join of {results_labels(r)} labels and checkpoints "
        f"(the snapshot of the join store is the bulk of each checkpoint's bytes) on the same core.",
        "- **Memory** stays bounded by the caps (streams, segment values, join store, windows); the figures above "
        f"include the Python interpreter, numpy, scipy and river ({eng['base_rss_mb']:.0f} MB before any stream; "
        "river's example data sets, which would bring pandas, are left unimported: monitor/core/river_drift.py).",
        "",
        *decoder_table(r["decoders"]),
        "## Scaling",
        "",
        f"![scaling]({png.relative_to(ROOT) if png.is_relative_to(ROOT) else png})",
        "",
        "| features per event | streams | engine events/s | peak RSS MB | bytes/stream |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {x['features']} | {x['streams']} | {x['events_per_s']:,.0f} | {x['peak_rss_mb']:.0f} | {x['bytes_per_stream']:,.0f} |"
            for x in r["scaling"]["features"]
        ],
        "",
        "| values of one segment attribute | streams | engine events/s | peak RSS MB | bytes/stream |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {x['segment_values']} | {x['streams']} | {x['events_per_s']:,.0f} | {x['peak_rss_mb']:.0f} | {x['bytes_per_stream']:,.0f} |"
            for x in r["scaling"]["segment_values"]
        ],
        "",
        "## Off the reference shape",
        "",
        "Decoding and the engine together (`process_predictions`, batches of 5,000) on traffic that leaves the reference "
        "workload's shape one way at a time (benchmarks/workload.py, `SHAPES`), timed after the first third of "
        f"{r['shapes_events']:,} events; the ratios are to the base shape. Feature values (nulls included) show "
        "what a wider or sparser event costs for what it carries.",
        "",
        "| shape | events/s | ratio to base | feature values/s | ratio to base | streams |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {SHAPES[k]} | {x['events_per_s']:,.0f} | {x['events_per_s'] / base['events_per_s']:.2f} "
            f"| {x['values_per_s']:,.0f} | {x['values_per_s'] / base['values_per_s']:.2f} | {x['streams']:,} |"
            for k, x in r["shapes"].items()
            for base in [r["shapes"]["base"]]
        ],
        "",
        "## Where the engine's time goes (pyinstrument, a second engine phase run: its times include the profiler's overhead)",
        "",
        "```",
        *(eng.get("profile") or "(not profiled in quick mode)").splitlines()[:60],
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
