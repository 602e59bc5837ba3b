"""Static checks of the shipped deployment files and event schemas.

Nothing here starts a container or imports the ``monitor`` package: the JSON Schemas are read from
``monitor/schemas/`` by path, and the compose, Prometheus, Grafana and Alertmanager files are parsed as
YAML and checked for the wiring that breaks silently (a mount of a missing file, an unpublished port, a
scrape target on the wrong port).
"""

from __future__ import annotations

import copy
import json
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


def test_compose_kafka_init_creates_topics(compose: dict[str, Any]) -> None:
    init = compose["services"]["kafka-init"]
    assert init["image"].startswith("apache/kafka")
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = init["command"] if isinstance(init["command"], str) else " ".join(init["command"])
    for topic in ("predictions", "labels", "alerts", "monitor-dlq", "monitor-state"):
        assert f"--topic {topic} " in script, topic


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
