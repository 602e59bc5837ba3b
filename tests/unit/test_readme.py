"""README stays true: every setting and every exported metric is documented, and nothing extra."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config import (
    AlertConfig,
    BaselineConfig,
    CheckpointConfig,
    DecisionsConfig,
    DetectorSettings,
    FairnessConfig,
    HttpConfig,
    KafkaConfig,
    LabelsConfig,
    MonitoringConfig,
    PerformanceConfig,
    QualityConfig,
    SignificanceConfig,
    load_config,
)
from monitor.io.exporter import register
from monitor.io.kafka import MonitorService

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_config_reference():
    for section, cls in (
        ("kafka", KafkaConfig),
        ("http", HttpConfig),
        ("monitoring", MonitoringConfig),
        ("detectors", DetectorSettings),
        ("alerts", AlertConfig),
        ("labels", LabelsConfig),
        ("performance", PerformanceConfig),
        ("checkpoint", CheckpointConfig),
        ("fairness", FairnessConfig),
        ("baseline", BaselineConfig),
        ("significance", SignificanceConfig),
        ("quality", QualityConfig),
        ("decisions", DecisionsConfig),
    ):
        for f in dataclasses.fields(cls):
            assert f"{section}.{f.name}" in README, f"{section}.{f.name} is not documented"


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    register(MonitorService(load_config(environ={})), registry)
    names = set()
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


def test_metrics_reference_matches_the_exporter():
    documented = set(re.findall(r"^\| `(monitor_[a-z_]+)` \|", README, flags=re.M))
    assert documented == _exported_names()
