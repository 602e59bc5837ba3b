"""Static checks of the shipped deployment files and event schemas.

Nothing here starts a container: the JSON Schemas are read from ``monitor/schemas/`` by path, and the
compose, Prometheus, Grafana, Alertmanager and Kubernetes files are parsed and checked for the wiring that
breaks silently (a mount of a missing file, an unpublished port, a scrape target on the wrong port, a
probe on the wrong path, a query of a metric that does not exist). Only the metric-name check and the
ConfigMap check import ``monitor`` (to collect the exported names from a fresh registry, and to load the
embedded TOML with the real config loader).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "monitor" / "schemas"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"

SCHEMA_NAMES = ("prediction", "label", "alert")
COMPOSE_SERVICES = (
    "kafka",
    "kafka-init",
    "monitor",
    "demo-traffic",
    "prometheus",
    "grafana",
    "alertmanager",
)
MONITOR_PORT = 9308


# --------------------------------------------------------------------------------------- schemas


def _load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(name: str, event: Any) -> list[str]:
    return [error.message for error in _validator(name).iter_errors(event)]


VALID_PREDICTION: dict[str, Any] = {
    "prediction_id": "p-000001",
    "model": "churn",
    "model_version": "2024-06-01",
    "timestamp": 1717200000.25,
    "features": {"age": 42, "income": 51000.5, "plan": "premium", "is_new": False, "referrer": None},
    "prediction": 0.87,
    "scores": {"churn": 0.87, "stay": 0.13},
    "segments": {"country": "FR", "gender": "f"},
    "latency_ms": 12.5,
}

VALID_LABEL: dict[str, Any] = {
    "prediction_id": "p-000001",
    "label": True,
    "outcomes": {"converted": 1, "revenue": 12.5},
    "model": "churn",
    "timestamp": "2024-06-02T08:30:00Z",
}

VALID_ALERT: dict[str, Any] = {
    "schema_version": 1,
    "alert_id": "7f3c2a9e1b",
    "key": "churn/data_drift/income/country=FR",
    "status": "firing",
    "kind": "data_drift",
    "severity": "warning",
    "model": "churn",
    "model_version": "2024-06-01",
    "subject": "income",
    "segment": {"country": "FR"},
    "detector": "adwin",
    "statistic": 0.82,
    "threshold": 0.5,
    "p_value": None,
    "baseline": {"mean": 50000.0, "std": 12000.0},
    "current": {"mean": 59800.0},
    "window": {"start": "2024-06-01T10:00:00Z", "end": "2024-06-01T10:05:00Z", "events": 1840},
    "recommendation": "investigate",
    "message": "The income of customers in France rose by 20% in the last 5 minutes.",
    "started_at": "2024-06-01T10:05:00Z",
    "emitted_at": "2024-06-01T10:05:01Z",
}


def _without(event: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name not in fields}


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed.update(changes)
    return changed


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = _load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://")
    assert schema.get("title")
    assert schema.get("description")


@pytest.mark.parametrize(
    ("name", "event"),
    [
        pytest.param("prediction", VALID_PREDICTION, id="prediction-full"),
        pytest.param(
            "prediction",
            {"prediction_id": "p-2", "model": "churn", "features": {}, "prediction": "stay"},
            id="prediction-minimal",
        ),
        pytest.param(
            "prediction",
            _with(VALID_PREDICTION, timestamp="2024-06-01T10:00:00+02:00", prediction=True),
            id="prediction-iso-timestamp",
        ),
        pytest.param("label", VALID_LABEL, id="label-full"),
        pytest.param("label", {"prediction_id": "p-1", "label": "churn"}, id="label-only-label"),
        pytest.param("label", {"prediction_id": "p-1", "outcomes": {"revenue": 3}}, id="label-only-outcomes"),
        pytest.param("alert", VALID_ALERT, id="alert-firing"),
        pytest.param(
            "alert",
            _with(
                VALID_ALERT,
                status="resolved",
                kind="rollback_recommended",
                severity="critical",
                segment={},
                statistic=None,
                threshold=None,
                p_value=0.0001,
                window={"start": None, "end": None, "events": 0},
                recommendation="rollback",
            ),
            id="alert-resolved-nulls",
        ),
    ],
)
def test_valid_events_validate(name: str, event: dict[str, Any]) -> None:
    assert _errors(name, event) == []


@pytest.mark.parametrize(
    ("name", "event"),
    [
        pytest.param("prediction", _without(VALID_PREDICTION, "prediction_id"), id="no-prediction-id"),
        pytest.param("prediction", _with(VALID_PREDICTION, prediction_id="x" * 257), id="long-prediction-id"),
        pytest.param("prediction", _without(VALID_PREDICTION, "features"), id="no-features"),
        pytest.param("prediction", _without(VALID_PREDICTION, "prediction"), id="no-prediction"),
        pytest.param("prediction", _with(VALID_PREDICTION, features={"tags": ["a"]}), id="list-feature"),
        pytest.param("prediction", _with(VALID_PREDICTION, scores={"churn": 1.2}), id="score-above-1"),
        pytest.param("prediction", _with(VALID_PREDICTION, segments={"age": 30}), id="numeric-segment"),
        pytest.param("prediction", _with(VALID_PREDICTION, latency_ms=-1), id="negative-latency"),
        pytest.param("prediction", _with(VALID_PREDICTION, timestamp=-5), id="negative-timestamp"),
        pytest.param("label", {"prediction_id": "p-1", "model": "churn"}, id="label-neither"),
        pytest.param("label", {"label": 1}, id="label-no-prediction-id"),
        pytest.param("label", _with(VALID_LABEL, outcomes={"plan": "gold"}), id="label-string-outcome"),
        pytest.param("alert", _with(VALID_ALERT, status="open"), id="alert-status-open"),
        pytest.param("alert", _with(VALID_ALERT, schema_version=2), id="alert-schema-version-2"),
        pytest.param("alert", _with(VALID_ALERT, kind="drift"), id="alert-unknown-kind"),
        pytest.param("alert", _with(VALID_ALERT, recommendation="panic"), id="alert-unknown-recommendation"),
        pytest.param("alert", _without(VALID_ALERT, "p_value"), id="alert-no-p-value"),
        pytest.param("alert", _with(VALID_ALERT, window={"start": None, "end": None}), id="alert-window-no-events"),
    ],
)
def test_invalid_events_fail(name: str, event: dict[str, Any]) -> None:
    assert _errors(name, event)


# --------------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def _bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths of a service's relative bind mounts, in short (``./a:/b:ro``) or long syntax."""
    sources = []
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("./"):
            sources.append(source)
    return sources


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).split("/", 1)[0].rsplit(":", 1)[-1]))
    return ports


def test_compose_has_services(compose: dict[str, Any]) -> None:
    assert set(COMPOSE_SERVICES) <= set(compose["services"])


def test_compose_kafka_is_apache_kafka_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "kafka:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka


def _created_topics(compose: dict[str, Any]) -> dict[str, int]:
    """Topic -> partitions, as kafka-init's script creates them."""
    init = compose["services"]["kafka-init"]
    script = init["command"] if isinstance(init["command"], str) else " ".join(init["command"])
    return {m[0]: int(m[1]) for m in re.findall(r"--create .*?--topic (\S+) --partitions (\d+)", script)}


def test_compose_kafka_init_creates_the_topics_the_monitor_uses(compose: dict[str, Any]) -> None:
    """The names come from the monitor's own config (its compose environment and mounted file), so a topic
    created under another name (the state topic was once ``monitor-state`` against ``model-monitor-state``)
    fails here."""
    from monitor.config import load_config

    init = compose["services"]["kafka-init"]
    assert init["image"].startswith("apache/kafka")
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    monitor = compose["services"]["monitor"]
    environ = {k: str(v) for k, v in monitor["environment"].items() if k != "MONITOR_CONFIG"}
    mounted = {target: source for source, target, *_ in (v.split(":") for v in monitor["volumes"])}
    config = load_config(ROOT / mounted[monitor["environment"]["MONITOR_CONFIG"]], environ=environ)
    k = config.kafka
    created = _created_topics(compose)
    for topic in (k.predictions_topic, k.labels_topic, k.alerts_topic, k.dlq_topic, config.state_topic):
        assert topic in created, f"the monitor uses topic {topic!r}, kafka-init creates {sorted(created)}"
    assert created[k.labels_topic] == created[k.predictions_topic], "co-partitioned"
    assert created[config.state_topic] >= created[k.predictions_topic]
    from monitor.cli import build_parser

    generate = build_parser().parse_args(compose["services"]["demo-traffic"]["command"])
    assert (generate.predictions_topic, generate.labels_topic) == (k.predictions_topic, k.labels_topic)


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    mounts = [(name, source) for name, service in compose["services"].items() for source in _bind_sources(service)]
    assert mounts, "expected bind mounts of deploy/ files"
    missing = [f"{name}: {source}" for name, source in mounts if not (ROOT / source).exists()]
    assert missing == []


def test_compose_monitor_publishes_metrics_port(compose: dict[str, Any]) -> None:
    monitor = compose["services"]["monitor"]
    assert MONITOR_PORT in _container_ports(monitor)
    assert str(monitor["environment"]["MONITOR_HTTP__PORT"]) == str(MONITOR_PORT)
    assert monitor["environment"]["MONITOR_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert monitor["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", ["monitor", "demo-traffic"])
def test_compose_build_dockerfile_exists(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = ROOT / build.get("context", ".")
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file()
    text = dockerfile.read_text(encoding="utf-8")
    assert f"EXPOSE {MONITOR_PORT}" in text
    assert 'ENTRYPOINT ["monitor"]' in text
    assert "USER " in text


def test_compose_demo_traffic_generates(compose: dict[str, Any]) -> None:
    command = compose["services"]["demo-traffic"]["command"]
    assert command[0] == "generate"
    assert "kafka:9092" in command


# ------------------------------------------------------------------------------------ prometheus


def test_prometheus_scrapes_monitor_port() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    ]
    assert any(target.rsplit(":", 1)[-1] == str(MONITOR_PORT) for target in targets), targets
    assert config["rule_files"]
    alertmanagers = config["alerting"]["alertmanagers"]
    assert any("alertmanager:9093" in s["targets"] for am in alertmanagers for s in am["static_configs"])


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(ROOT).as_posix() for pattern in ("*.yml", "*.yaml") for p in (ROOT / "deploy").rglob(pattern)),
)
def test_deploy_yaml_files_parse(path: str) -> None:
    documents = [doc for doc in yaml.safe_load_all((ROOT / path).read_text(encoding="utf-8")) if doc]
    assert documents
    assert all(isinstance(doc, dict) for doc in documents)


def test_prometheus_rules_have_monitor_down() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/monitor.rules.yml").read_text(encoding="utf-8"))
    groups = {group["name"]: group for group in rules["groups"]}
    alerts = {rule.get("alert"): rule for rule in groups["monitor"]["rules"]}
    assert alerts["MonitorDown"]["expr"] == 'up{job="model-monitor"} == 0'
    assert alerts["MonitorDown"]["for"] == "2m"


def test_prometheus_rules_cover_the_conditions_of_issue_8() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/monitor.rules.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name in (
        "MonitorDown",
        "MonitorNotReady",
        "MonitorConsumerLagHigh",
        "ModelDriftFiring",
        "ModelConceptDrift",
        "ModelAccuracyDrop",
        "ModelFairnessGap",
    ):
        assert name in alerts, name
        assert alerts[name]["labels"]["severity"] in ("warning", "critical")
        assert alerts[name]["annotations"]["summary"]
    assert "monitor_fairness_gap_firing" in alerts["ModelFairnessGap"]["expr"]
    assert 'metric="accuracy"' in alerts["ModelAccuracyDrop"]["expr"]
    # every alert has a promtool unit test
    tests = (ROOT / "deploy/prometheus/tests/monitor.rules.test.yml").read_text(encoding="utf-8")
    for name in alerts:
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"


def _relabel(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabelling (keep, drop, replace) of one discovered target; None when it is dropped."""
    out = dict(labels)
    for rule in configs:
        action = rule.get("action", "replace")
        value = rule.get("separator", ";").join(out.get(name, "") for name in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$(\d+)", r"\\\1", str(rule.get("replacement", "$1")))
            out[rule["target_label"]] = match.expand(replacement)
    return out


def _annotations_as_meta(prefix: str, annotations: dict[str, str]) -> dict[str, str]:
    return {prefix + re.sub(r"[^a-zA-Z0-9_]", "_", name): value for name, value in annotations.items()}


def _monitor_down_job() -> str:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/monitor.rules.yml").read_text(encoding="utf-8"))
    expr = next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "MonitorDown")
    return re.search(r'job="([^"]+)"', expr).group(1)  # type: ignore[union-attr]


def test_rules_on_monitor_metrics_match_any_job() -> None:
    """Annotation-based scrapes name the job after themselves (kubernetes-pods...): only ``up`` may need one."""
    for expr in _rule_exprs():
        if "job=" in expr:
            assert _metric_names(expr) == {"up"}, expr


@pytest.mark.parametrize(
    ("manifest", "kind", "job_name", "prefix"),
    [
        ("sidecar.yaml", "Deployment", "kubernetes-pods", "__meta_kubernetes_pod_annotation_"),
        ("standalone.yaml", "Service", "kubernetes-service-endpoints", "__meta_kubernetes_service_annotation_"),
    ],
)
def test_annotation_scrape_of_the_manifests_gives_the_job_monitor_down_matches(
    manifest: str, kind: str, job_name: str, prefix: str
) -> None:
    """The target Prometheus discovers from each manifest's annotations, relabelled as
    deploy/prometheus/kubernetes.yml says, is scraped on the monitor's port and path under the job of
    ``MonitorDown``."""
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/kubernetes.yml").read_text(encoding="utf-8"))
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == job_name)
    doc = _k8s(manifest)[kind]
    meta = doc["spec"]["template"]["metadata"] if kind == "Deployment" else doc["metadata"]
    discovered = {
        "job": job_name,
        "__address__": "10.1.2.3:8080",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": "models",
        "__meta_kubernetes_pod_name": "pod-1",
        **_annotations_as_meta(prefix, meta["annotations"]),
    }
    target = _relabel(discovered, job["relabel_configs"])
    assert target is not None, "the monitor is not scraped"
    assert target["job"] == _monitor_down_job()
    assert target["__address__"] == f"10.1.2.3:{MONITOR_PORT}" and target["__metrics_path__"] == "/metrics"
    unannotated = {k: v for k, v in discovered.items() if not k.startswith(prefix)}
    assert _relabel(unannotated, job["relabel_configs"]) is None, "pods and services without annotations are skipped"


def test_make_image_builds_the_image_the_manifests_run() -> None:
    images = {
        _container(_k8s(name)["Deployment"]["spec"]["template"]["spec"], "monitor")["image"]
        for name in ("sidecar.yaml", "standalone.yaml")
    }
    assert len(images) == 1
    dry_run = subprocess.run(["make", "-n", "image"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    (command,) = [line for line in dry_run.stdout.splitlines() if line.startswith("docker build")]
    assert command.split() == ["docker", "build", "-f", "deploy/Dockerfile", "-t", images.pop(), "."], command
    for doc in ("README.md", "docs/operations.md"):
        assert "make image" in (ROOT / doc).read_text(encoding="utf-8"), doc


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore``'s ``patterns`` leave ``path`` (relative, with /) out of the build context: a
    pattern matches the path or one of its directories; ``*`` and ``?`` stay within a name and a leading
    ``**/`` matches any depth (Docker's rules for the patterns the file uses; it has no ``!`` exceptions)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            return True
    return False


_LOCAL_DIRS = frozenset(
    {".git", ".venv", ".peers", ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache", "artifacts", "build"}
)


def _source_files() -> Iterator[str]:
    """The checkout's files, less what it builds or caches (walked, not asked of git: a checkout may be an
    unpacked archive)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _LOCAL_DIRS and d != "__pycache__" and not d.endswith(".egg-info")]
        for name in files:
            if not (name.endswith((".pyc", ".so")) or name == "_kernels.c"):
                yield os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")


def test_the_image_build_context_holds_the_sources_and_none_of_the_local_builds() -> None:
    """`make image` and `docker compose up --build` send the repository as the build context: every source
    file goes (the wheel is built from them), and what a checkout builds or caches does not (a 1 GB venv, and a
    compiled module built in place for this machine, which the image's build stage compiles afresh)."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # (the matcher above has no exceptions)
    sources = list(_source_files())
    assert "monitor/core/_kernels.pyx" in sources and "pyproject.toml" in sources and len(sources) > 200
    assert [f for f in sources if _docker_ignored(f, patterns)] == []
    local = [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv/pycache/work/main/monitor/cli.cpython-311.pyc",
        ".peers/nannyml/bin/python",
        "monitor/__pycache__/cli.cpython-311.pyc",
        "tests/unit/__pycache__/test_engine.cpython-311-pytest-9.2.0.pyc",
        "monitor/core/_kernels.c",
        "monitor/core/_kernels.cpython-311-x86_64-linux-gnu.so",
        "stream_model_monitor.egg-info/PKG-INFO",
        "artifacts/stress/round-1.xml",
        "build/lib/monitor/cli.py",
        ".mypy_cache/3.11/cache.db",
        ".hypothesis/examples/x",
    ]
    assert [f for f in local if not _docker_ignored(f, patterns)] == []
    assert not _docker_ignored("monitor/core/_kernels.pyx", patterns)  # the source the build stage compiles


# ------------------------------------------------------------------------- metric names in queries

GRAFANA_DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "model-monitor.json"
# Names a query may use before the exporter has them. Listed explicitly so the exception stays visible;
# a name is only excused while the exporter does not export it (once it does, it is checked like the rest).
UPCOMING_METRICS = frozenset({"monitor_fairness_gap_firing", "monitor_fairness_gap"})
NON_MONITOR_METRICS = frozenset({"up"})
_FUNCTIONS_AND_KEYWORDS = frozenset(
    [
        "sum",
        "avg",
        "max",
        "min",
        "count",
        "topk",
        "bottomk",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "rate",
        "irate",
        "increase",
        "histogram_quantile",
        "label_replace",
        "vector",
        "or",
        "and",
        "unless",
        "bool",
        "offset",
        "delta",
        "deriv",
        "abs",
        "clamp_min",
        "clamp_max",
        "time",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "absent",
        "humanize",
        "humanizePercentage",
        "le",
    ]
)


def _exported_sample_names() -> set[str]:
    from prometheus_client import CollectorRegistry

    from monitor.config import load_config
    from monitor.io.exporter import register
    from monitor.io.kafka import MonitorService

    registry = CollectorRegistry()
    register(MonitorService(load_config(environ={})), registry)
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that name series (labels in braces, strings and functions dropped)."""
    stripped = re.sub(r'"[^"]*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    idents = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", stripped))
    return {i for i in idents if i not in _FUNCTIONS_AND_KEYWORDS and not re.fullmatch(r"\d.*|e\d*", i)}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/monitor.rules.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_metric_name_parser() -> None:
    assert _metric_names(
        'histogram_quantile(0.95, sum by (le, model) (rate(monitor_label_delay_seconds_bucket{job="x"}[5m])))'
    ) == {"monitor_label_delay_seconds_bucket"}
    assert _metric_names('max by (a) (monitor_x{k="v"}) - on() up == 1 or vector(0)') == {"monitor_x", "up"}


@pytest.mark.parametrize("source", ["grafana", "rules"])
def test_every_query_names_an_exported_metric(source: str) -> None:
    exprs = _dashboard_exprs() if source == "grafana" else _rule_exprs()
    assert exprs
    exported = _exported_sample_names()
    used = set().union(*(_metric_names(e) for e in exprs))
    unknown = used - exported - NON_MONITOR_METRICS
    assert unknown <= UPCOMING_METRICS, f"queries name metrics the exporter does not export: {sorted(unknown)}"
    assert all(_metric_names(e) for e in exprs), "a query without a metric"


# ----------------------------------------------------------------------------------------- grafana


def test_grafana_dashboard_structure() -> None:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"][0]
    assert dashboard["uid"] and dashboard["title"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[0].startswith("Overview"), rows
    assert len(rows) >= 3, "an overview row for product managers and detail rows for engineers"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text(encoding="utf-8")
    )["providers"][0]
    grafana = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]


# ------------------------------------------------------------------------------- compose and image


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"


def test_compose_ports_are_unique_and_prometheus_mounts_rules(compose: dict[str, Any]) -> None:
    published = [str(p).split(":")[0] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), published
    prom = compose["services"]["prometheus"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prom["volumes"]
    assert 9090 in _container_ports(prom) and 3000 in _container_ports(compose["services"]["grafana"])


def test_dashboard_files_ship_in_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["monitor"]
    shipped = {p.relative_to(ROOT / "monitor").as_posix() for pat in patterns for p in (ROOT / "monitor").glob(pat)}
    for name in ("index.html", "app.css", "app.js"):
        assert f"dashboard/{name}" in shipped
    html = (ROOT / "monitor/dashboard/index.html").read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://', "") and "https://" not in html, "no CDN: works offline"


# -------------------------------------------------------------------------------------- kubernetes

K8S = ROOT / "deploy" / "kubernetes"


def _k8s(name: str) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]
    return {d["kind"]: d for d in docs}


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def _check_monitor_container(pod: dict[str, Any], container: dict[str, Any]) -> None:
    assert container["image"].startswith("stream-model-monitor:")
    assert _port_number(container, container["livenessProbe"]["httpGet"]["port"]) == MONITOR_PORT
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    secret_file = env["MONITOR_KAFKA_PROPERTY_FILE__SASL_PASSWORD"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in container["volumeMounts"] if secret_file.startswith(m["mountPath"] + "/"))
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"]
    assert any(item["path"] == secret_file.rsplit("/", 1)[1] for item in secret["items"])
    assert not any("PASSWORD" in name and "FILE" not in name for name in env), "passwords only from secret files"
    assert pod.get("terminationGracePeriodSeconds", 30) >= 30


def test_kubernetes_standalone_deployment(tmp_path: Path) -> None:
    docs = _k8s("standalone.yaml")
    deployment, service, configmap = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] >= 2
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pod = deployment["spec"]["template"]["spec"]
    monitor = _container(pod, "monitor")
    _check_monitor_container(pod, monitor)
    assert monitor["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert _port_number(monitor, service["spec"]["ports"][0]["targetPort"]) == MONITOR_PORT
    # the config file comes from the ConfigMap, and it is a valid monitor config
    env = {e["name"]: e.get("value") for e in monitor["env"]}
    config_mount = next(m for m in monitor["volumeMounts"] if env["MONITOR_CONFIG"].startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == config_mount["name"])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][env["MONITOR_CONFIG"].rsplit("/", 1)[1]]
    toml = tomllib.loads(text)
    assert toml["http"]["port"] == MONITOR_PORT and toml["kafka"]["group_id"]

    from monitor.config import load_config

    (tmp_path / "monitor.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "monitor.toml", environ={})
    assert config.http.port == MONITOR_PORT and config.kafka.group_id == toml["kafka"]["group_id"]


def test_kubernetes_sidecar_pod_runs_model_server_and_monitor() -> None:
    deployment = _k8s("sidecar.yaml")["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["containers"]]
    assert len(names) == 2 and "monitor" in names, names
    monitor = _container(pod, "monitor")
    _check_monitor_container(pod, monitor)
    env = {e["name"]: e.get("value") for e in monitor["env"]}
    assert env["MONITOR_HTTP__PORT"] == str(MONITOR_PORT) and env["MONITOR_KAFKA__GROUP_ID"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(MONITOR_PORT)


def test_alertmanager_pages_once_per_incident() -> None:
    """Grouped by incident, and the per-kind model alerts held back by an open incident of the same version:
    every inhibited alert name and the incident alert exist in the rules."""
    am = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    assert "incident_id" in am["route"]["group_by"]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "monitor.rules.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert "ModelIncident" in names
    by_source = {tuple(r["source_matchers"]): r for r in am["inhibit_rules"]}
    critical = by_source['alertname="ModelIncident"', 'severity="critical"']
    warning = by_source['alertname="ModelIncident"', 'severity="warning"']
    assert warning["target_matchers"][1:] == ['severity="warning"']  # a warning never hides a critical alert
    for rule in (critical, warning):
        held = re.fullmatch(r'alertname=~"(.+)"', rule["target_matchers"][0])
        assert held is not None and set(held.group(1).split("|")) <= names
        assert rule["equal"] == ["model", "version"]
