"""Command line: ``monitor run | demo | generate | check-config`` (wiring only)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from monitor.config import MonitorConfig, load_config
from monitor.errors import ConfigError, MonitorError, ProfileError
from monitor.signals import install_signals
from monitor.traffic import (
    DEMO_DRIFT_AFTER_S,
    DEMO_DRIFT_FEATURE,
    DEMO_DRIFT_FOR_S,
    DEMO_DRIFT_SCALE,
    DEMO_DRIFT_SEGMENT,
    DEMO_LABEL_DELAY_S,
    DEMO_RATE,
)

log = logging.getLogger("monitor")


def _config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> MonitorConfig:
    overrides: dict[str, Any] = dict(extra or {})
    kafka: dict[str, Any] = dict(overrides.pop("kafka", {}))
    if getattr(args, "bootstrap_servers", None):
        kafka["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "group_id", None):
        kafka["group_id"] = args.group_id
    if kafka:
        overrides["kafka"] = kafka
    if getattr(args, "http_port", None) is not None:
        overrides.setdefault("http", {})["port"] = args.http_port
    path = getattr(args, "config", None) or os.environ.get("MONITOR_CONFIG") or None
    return load_config(path, overrides=overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import Monitor
    from monitor.io.checkpoint import FAULT_INJECT_ENV, CrashAt
    from monitor.io.kafka_clients import require_bootstrap_servers

    config = _config(args, {"kafka": {"broker_wait_s": 0}} if args.wait_for_broker else None)
    require_bootstrap_servers(config)  # every setting is checked before anything binds or connects
    # Test-only switch: the crash tests run `monitor run` with MONITOR_FAULT_INJECT=step:n (docs/development.md).
    crash = os.environ.get(FAULT_INJECT_ENV, "")
    mon = Monitor(config, faults=CrashAt.parse(crash) if crash else None)
    install_signals(mon.stop_event)
    mon.run()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from monitor.io.kafka_clients import require_bootstrap_servers

    config = _config(args)
    require_bootstrap_servers(config)
    print(f"config OK: bootstrap={config.kafka.bootstrap_servers} group={config.kafka.group_id}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from monitor.io.kafka_clients import LIBRDKAFKA_LOG
    from monitor.simulate import Drift
    from monitor.traffic import DriftSchedule, produce_traffic

    for flag, value in (("--rate", args.rate), ("--duration", args.duration), ("--drift-for", args.drift_for)):
        if value < 0 or (flag == "--rate" and value == 0):
            print(f"monitor generate: {flag} must be {'> 0' if flag == '--rate' else '>= 0'}", file=sys.stderr)
            return 2
    schedules = []
    if args.drift_after is not None:
        if args.drift_after < 0:
            print("monitor generate: --drift-after must be >= 0", file=sys.stderr)
            return 2
        drift = Drift(DEMO_DRIFT_FEATURE, dict(DEMO_DRIFT_SEGMENT), scale=DEMO_DRIFT_SCALE)
        schedules.append(DriftSchedule(drift, after_s=args.drift_after, for_s=args.drift_for, announce=print))
    stop = threading.Event()
    install_signals(stop)
    sent = produce_traffic(
        {"bootstrap.servers": args.bootstrap_servers, "logger": LIBRDKAFKA_LOG},
        predictions_topic=args.predictions_topic,
        labels_topic=args.labels_topic,
        rate=args.rate,
        stop=stop,
        duration_s=args.duration,
        seed=args.seed,
        schedules=schedules,
        label_delay_s=DEMO_LABEL_DELAY_S,
    )
    print(f"produced {sent} predictions")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(args)


def _output(flag: str, path: str | None) -> None:
    """Check an output file's place before the work that fills it: a directory that does not exist or a path
    that is one ended a whole replay in a traceback."""
    if not path:
        return
    from pathlib import Path

    out = Path(path)
    if out.is_dir():
        raise ConfigError(flag, f"{path} is a directory, not a file")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(flag, f"cannot write {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(flag, f"cannot write {path}: permission denied")


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.io.kafka_clients import client_config
    from monitor.report import parse_time, write_report

    config = _config(args)
    _output("--out", args.out)
    try:
        since, until = parse_time(args.since), parse_time(args.until) if args.until else time.time()
    except ValueError as exc:
        print(f"monitor report: bad --since/--until: {exc}", file=sys.stderr)
        return 2
    topic = args.alerts_topic or config.kafka.alerts_topic
    if until <= since:
        raise ConfigError("--until", f"must be after --since ({args.since})")
    read, n = write_report(
        config,
        client_config(config),
        topic=topic,
        since=since,
        until=until,
        out_path=args.out,
        audit_topic=args.audit_topic or config.audit_topic,
    )
    incidents, events = f"{n} incident{'' if n == 1 else 's'}", f"{read} alert event{'' if read == 1 else 's'}"
    print(f"wrote {args.out}: {incidents} in the period ({events} read from {topic})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.allocator import settle_allocator
    from monitor.collector import settle_collector
    from monitor.replay import build_source, parse_overrides, replay, source_name
    from monitor.replay_report import summary, write_alerts
    from monitor.timeline import Timeline, write_timeline

    config = _config(args, parse_overrides(args.set))
    if args.timeline_every < 1:
        raise ConfigError("--timeline-every", "must be >= 1")
    _output("--out", args.out)
    _output("--timeline", args.timeline)
    perf = config.performance
    timeline = Timeline(args.timeline_every, threshold=perf.threshold, positive=perf.positive_label)
    source = build_source(
        config,
        predictions=args.predictions,
        labels=args.labels,
        predictions_topic=args.predictions_topic,
        labels_topic=args.labels_topic,
        idle_timeout_s=args.idle_timeout,
    )
    settle_collector()  # as a running monitor does: a replay allocates as much per batch
    settle_allocator()
    result = replay(
        config,
        source,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        timeline=timeline if args.timeline else None,
    )
    if args.out:
        write_alerts(args.out, result.alerts)
    if args.timeline:
        rows = timeline.rows()
        write_timeline(args.timeline, rows)
    print(summary(result))
    if args.out:
        n = len(result.alerts)
        print(f"wrote {n} alert event{'' if n == 1 else 's'} to {args.out}")
    if args.timeline:
        print(f"wrote {len(rows)} timeline row{'' if len(rows) == 1 else 's'} to {args.timeline}")
    if result.events == 0:
        read = source_name(source)
        what = f"all {result.messages:,} rejected (see above)" if result.messages else "none found"
        print(f"monitor replay: no valid prediction event in {read}: {what}", file=sys.stderr)
        return 2
    return 0


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def cmd_baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from monitor.baseline_cmd import profile_table, summary
    from monitor.io.tables import TableColumns

    # The profile being built may already be listed in baseline.profiles without existing yet.
    config = _config(args, {"baseline": {"profiles": []}})
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ProfileError(str(out), f"cannot write: directory {out.parent} does not exist")
    columns = TableColumns(
        prediction=args.prediction,
        label=args.label,
        segments=_names(args.segments),
        features=_names(args.features),
        ignore=_names(args.ignore),
        scores=_names(args.scores),
    )
    built = profile_table(
        args.data,
        model=args.model,
        model_version=args.model_version,
        columns=columns,
        bins=args.bins,
        sample_size=args.sample_size,
        format=args.format,
        progress=not args.no_progress,
        config=config,
    )
    try:
        built.profile.save(out)
    except OSError as exc:
        raise ProfileError(str(out), f"cannot write: {exc.strerror}") from None
    print(summary(built))
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Streaming model-monitoring sidecar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG)")
        p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides config)")
        p.add_argument("--group-id", help="consumer group id (overrides config)")
        p.add_argument("--http-port", type=int, help="port for /metrics, /healthz, /readyz")

    run = sub.add_parser("run", help="monitor the configured topics until stopped")
    common(run)
    run.add_argument(
        "--wait-for-broker",
        action="store_true",
        help="at start, wait as long as it takes for Kafka to answer (default: exit with code 2 after "
        "kafka.broker_wait_s, 10 s)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the config and exit")
    common(check)
    check.set_defaults(func=cmd_check_config)

    demo = sub.add_parser("demo", help="embedded broker + synthetic traffic + monitor, with an injected drift")
    common(demo)
    demo.add_argument("--rate", type=float, default=DEMO_RATE, help="predictions per second")
    demo.add_argument(
        "--drift-after", type=float, default=DEMO_DRIFT_AFTER_S, help="seconds before the drift is injected"
    )
    demo.add_argument("--drift-for", type=float, default=DEMO_DRIFT_FOR_S, help="seconds the drift lasts (0: forever)")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser(
        "generate",
        help="produce synthetic prediction and label events",
        description="Produce the prediction events of a synthetic churn model (model 'churn', version v1, "
        "8 features such as income and device, segments country and gender) keyed by prediction_id and, for "
        f"half of them, a label {DEMO_LABEL_DELAY_S:g} s later. With --drift-after, inject the demo's drift: "
        f"income x{DEMO_DRIFT_SCALE:g} for country=SG.",
    )
    gen.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap servers, e.g. kafka:9092 (required)")
    gen.add_argument(
        "--predictions-topic", default="predictions", help="topic of the prediction events (default: %(default)s)"
    )
    gen.add_argument(
        "--labels-topic", default="labels", help="topic of the label events, co-partitioned (default: %(default)s)"
    )
    gen.add_argument("--rate", type=float, default=500.0, help="predictions per second (default: %(default)g)")
    gen.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (default: 0, until Ctrl-C)"
    )
    gen.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same events (default: %(default)s)"
    )
    gen.add_argument(
        "--drift-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"inject a drift, income x{DEMO_DRIFT_SCALE:g} for country=SG, after this many seconds "
        "(default: no drift)",
    )
    gen.add_argument(
        "--drift-for",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long the drift lasts (default: 0, until the end)",
    )
    gen.set_defaults(func=cmd_generate)
    report = sub.add_parser("report", help="HTML audit report of a time range, from the alerts topic")
    report.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG); its checks are listed")
    report.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides config)")
    report.add_argument("--alerts-topic", help="alerts topic (default: kafka.alerts_topic)")
    report.add_argument(
        "--audit-topic", help="the monitor's config and coverage records (default: audit.topic, or <group_id>-audit)"
    )
    report.add_argument("--since", required=True, help="start of the period, ISO-8601 (UTC if no offset)")
    report.add_argument("--until", help="end of the period, ISO-8601 (default: now)")
    report.add_argument("--out", default="report.html", help="output HTML file")
    report.set_defaults(func=cmd_report)

    base = sub.add_parser("baseline", help="build a model version's reference profile from training or validation data")
    base.add_argument("data", help="table file: .csv, .tsv, .jsonl / .ndjson, .parquet (text formats may be .gz)")
    base.add_argument("--model", required=True, help="model name, as in the events")
    base.add_argument("--model-version", required=True, help="model version; '*' for every version of the model")
    base.add_argument("--out", required=True, metavar="PROFILE.json", help="profile file to write")
    base.add_argument("--format", metavar="{csv,tsv,jsonl,parquet}", help="table format (default: from the suffix)")
    base.add_argument("--prediction", metavar="COL", help="prediction column (default: none, no prediction stream)")
    base.add_argument("--label", metavar="COL", help="label column, for the metric levels")
    base.add_argument("--segments", metavar="A,B", help="segment columns (default: monitoring.segments)")
    base.add_argument("--features", metavar="A,B", help="feature columns (default: every other column)")
    base.add_argument("--ignore", metavar="A,B", help="columns that are not features (ids, timestamps...)")
    base.add_argument("--scores", metavar="CLASS=COL,...", help="class-probability columns")
    base.add_argument("--bins", type=int, help="quantile bins per numeric stream (default: significance.bins)")
    base.add_argument("--sample-size", type=int, default=20_000, help="values kept per numeric stream")
    base.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG) for the defaults")
    base.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    base.set_defaults(func=cmd_baseline)

    rep = sub.add_parser("replay", help="run the monitor over a recorded topic or file; report what it would alert")
    rep.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG)")
    rep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one setting, e.g. alerts.min_effect_size=0.3 (repeatable)",
    )
    source = rep.add_mutually_exclusive_group()
    source.add_argument("--predictions", metavar="FILE", help="prediction events, one JSON per line")
    source.add_argument("--predictions-topic", help="predictions topic (default: kafka.predictions_topic)")
    rep.add_argument("--labels", metavar="FILE", help="label events, one JSON per line (with --predictions)")
    rep.add_argument("--labels-topic", help="labels topic, co-partitioned with predictions (default: no labels)")
    rep.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (overrides config)")
    rep.add_argument("--batch-size", type=int, default=2000, help="prediction events per engine batch")
    rep.add_argument("--idle-timeout", type=float, default=5.0, help="seconds without a message that end a topic read")
    rep.add_argument("--out", metavar="FILE", help="write every alert event here, one JSON per line")
    rep.add_argument(
        "--timeline",
        metavar="FILE",
        help="write estimated and realized accuracy per chunk of predictions here, one JSON per line",
    )
    rep.add_argument(
        "--timeline-every", type=int, default=5000, metavar="N", help="predictions per timeline chunk (default 5000)"
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    rep.set_defaults(func=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        time.sleep(0)  # let daemon threads notice a stop before the interpreter exits
