"""Typed, validated settings: a TOML file plus environment overrides.

Every error names the offending field (``detectors.adwin_delta``), so a bad deployment fails at
start instead of misbehaving later. Environment variables override any field with the pattern
``MONITOR_<SECTION>__<FIELD>`` (``MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092``); librdkafka
properties such as security settings use ``MONITOR_KAFKA_PROPERTY__<NAME>`` where ``_`` in the name
becomes ``.`` (``MONITOR_KAFKA_PROPERTY__SASL_PASSWORD`` sets ``sasl.password``), and
``MONITOR_KAFKA_PROPERTY_FILE__<NAME>`` reads a property's value from a file (mounted secrets).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError

ENV_PREFIX = "MONITOR_"
KAFKA_PROPERTY_PREFIX = "MONITOR_KAFKA_PROPERTY__"
KAFKA_PROPERTY_FILE_PREFIX = "MONITOR_KAFKA_PROPERTY_FILE__"


@dataclass(frozen=True)
class KafkaConfig:
    """Where to read and write; ``properties`` go to librdkafka unchanged (TLS, SASL...)."""

    bootstrap_servers: str = ""
    group_id: str = "model-monitor"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    alerts_topic: str = "alerts"
    dlq_topic: str = "monitor-dlq"
    batch_max_messages: int = 5000
    batch_max_ms: int = 200
    session_timeout_ms: int = 10000
    produce_timeout_s: float = 30.0
    transactional_id: str = ""  # set (unique per replica) for exactly-once effects on brokers with transactions
    broker_wait_s: float = 10.0  # at start, exit (code 2) if no broker answers for this long; 0: wait forever
    properties: dict[str, str] = field(default_factory=dict, repr=False)
    property_files: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        _positive("kafka.batch_max_messages", self.batch_max_messages)
        _positive("kafka.batch_max_ms", self.batch_max_ms)
        _positive("kafka.session_timeout_ms", self.session_timeout_ms)
        _positive("kafka.produce_timeout_s", self.produce_timeout_s)
        if self.broker_wait_s < 0:
            raise ConfigError("kafka.broker_wait_s", f"must be >= 0 (0: wait forever), got {self.broker_wait_s}")
        for name in ("predictions_topic", "labels_topic", "alerts_topic", "dlq_topic", "group_id"):
            if not getattr(self, name):
                raise ConfigError(f"kafka.{name}", "must not be empty")
        if self.labels_topic == self.predictions_topic:
            raise ConfigError("kafka.labels_topic", "must differ from kafka.predictions_topic")
        for prop, path in self.property_files.items():
            if not os.path.isfile(path):
                raise ConfigError(f"kafka.property_files.{prop}", f"file not found: {path}")

    def client_properties(self) -> dict[str, str]:
        """librdkafka properties, with secrets read from their files (never logged)."""
        props = dict(self.properties)
        for prop, path in self.property_files.items():
            with open(path, encoding="utf-8") as fh:
                props[prop] = fh.read().strip()
        return props


@dataclass(frozen=True)
class HttpConfig:
    """The port serving /metrics, /healthz, /readyz and /api/status, optionally with TLS and basic auth.

    With ``basic_auth_user`` set, every path but /healthz and /readyz (which orchestrator probes call)
    needs the credentials. The password comes from ``basic_auth_password`` (better: the environment,
    ``MONITOR_HTTP__BASIC_AUTH_PASSWORD``) or from ``basic_auth_password_file``.
    """

    host: str = "0.0.0.0"  # noqa: S104 - a sidecar must be reachable by the Prometheus scraper
    port: int = 9308
    tls_cert_file: str = ""
    tls_key_file: str = ""
    basic_auth_user: str = ""
    basic_auth_password: str = field(default="", repr=False)
    basic_auth_password_file: str = ""

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("http.port", f"must be between 0 and 65535, got {self.port}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("http.tls_key_file", "give both http.tls_cert_file and http.tls_key_file, or neither")
        for name in ("tls_cert_file", "tls_key_file", "basic_auth_password_file"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ConfigError(f"http.{name}", f"file not found: {path}")
        if self.basic_auth_user and not (self.basic_auth_password or self.basic_auth_password_file):
            raise ConfigError("http.basic_auth_password", "basic_auth_user is set but no password is given")

    def password(self) -> str:
        if self.basic_auth_password_file:
            with open(self.basic_auth_password_file, encoding="utf-8") as fh:
                return fh.read().strip()
        return self.basic_auth_password


@dataclass(frozen=True)
class MonitoringConfig:
    """What to watch and the caps that bound memory.

    Empty ``features`` / ``segments`` mean "infer from the events": every feature is watched and every
    attribute in the events' ``segments`` object is a segment attribute, up to the caps.
    """

    features: list[str] = field(default_factory=list)
    ignore_features: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    watch_prediction: bool = True
    max_models: int = 20
    max_features_per_model: int = 200
    max_segment_attributes: int = 8
    max_segment_values: int = 50
    max_streams: int = 20000
    max_categories: int = 20
    max_event_bytes: int = 1_000_000
    max_fields: int = 1000
    quantile_sample_size: int = 256

    def validate(self) -> None:
        for name in (
            "max_models",
            "max_features_per_model",
            "max_segment_values",
            "max_streams",
            "max_categories",
            "max_event_bytes",
            "max_fields",
            "quantile_sample_size",
        ):
            _positive(f"monitoring.{name}", getattr(self, name))
        if self.max_segment_attributes < 0:
            raise ConfigError("monitoring.max_segment_attributes", "must be >= 0")
        overlap = set(self.features) & set(self.ignore_features)
        if overlap:
            raise ConfigError("monitoring.ignore_features", f"also listed in features: {sorted(overlap)}")


@dataclass(frozen=True)
class DetectorSettings:
    """Detector hyperparameters for one feature (or the defaults for all).

    Numeric values are standardised against the stream's warm-up window (its first ``warmup_events``
    values), so thresholds are in standard deviations and the same defaults fit every feature.
    """

    warmup_events: int = 500
    adwin_delta: float = 0.002
    adwin_chunk: int = 32
    adwin_clock: int = 1
    page_hinkley_delta: float = 0.25
    page_hinkley_threshold: float = 50.0
    page_hinkley_alpha: float = 1.0
    page_hinkley_min_instances: int = 30
    categorical_window: int = 1000
    categorical_alpha: float = 0.001

    def validate(self, prefix: str) -> None:
        _positive(f"{prefix}.warmup_events", self.warmup_events)
        if not 0 < self.adwin_delta < 1:
            raise ConfigError(f"{prefix}.adwin_delta", f"must be in (0, 1), got {self.adwin_delta}")
        _positive(f"{prefix}.adwin_chunk", self.adwin_chunk)
        _positive(f"{prefix}.adwin_clock", self.adwin_clock)
        if self.page_hinkley_delta < 0:
            raise ConfigError(f"{prefix}.page_hinkley_delta", "must be >= 0")
        _positive(f"{prefix}.page_hinkley_threshold", self.page_hinkley_threshold)
        if not 0 < self.page_hinkley_alpha <= 1:
            raise ConfigError(f"{prefix}.page_hinkley_alpha", "must be in (0, 1]")
        _positive(f"{prefix}.page_hinkley_min_instances", self.page_hinkley_min_instances)
        if self.categorical_window < 50:
            raise ConfigError(f"{prefix}.categorical_window", "must be at least 50 events")
        if not 0 < self.categorical_alpha < 1:
            raise ConfigError(f"{prefix}.categorical_alpha", "must be in (0, 1)")


@dataclass(frozen=True)
class DetectorConfig:
    """Default detector settings plus per-feature overrides (``[detectors.features.income]``)."""

    default: DetectorSettings = field(default_factory=DetectorSettings)
    features: dict[str, DetectorSettings] = field(default_factory=dict)

    def for_feature(self, name: str) -> DetectorSettings:
        return self.features.get(name, self.default)

    def validate(self) -> None:
        self.default.validate("detectors")
        for name, settings in self.features.items():
            settings.validate(f"detectors.features.{name}")


@dataclass(frozen=True)
class AlertConfig:
    """When a detection becomes an alert, and when the alert resolves.

    A numeric stream fires when a detector has fired and the mean since that change point differs from
    the warm-up baseline by at least ``min_effect_size`` standard deviations over at least
    ``min_events`` events (effect size *and* evidence, never a p-value alone). A categorical stream fires
    when a window's chi-square test is significant and its total variation distance from the baseline is
    at least ``min_distance``. An alert resolves once the effect stays below ``resolve_ratio`` times its
    threshold for ``resolve_after_s`` seconds of event time and ``resolve_after_events`` of the stream's
    events; after that, the same stream cannot fire again for ``cooldown_s`` seconds and ``cooldown_events``
    events (counting events too keeps a slow stream from flapping).

    One change, one alert: when several segments of a feature drift at once, the alert goes to the
    segment (or all traffic) that explains the others; ``explain_ratio`` is how much larger its mean
    shift (numeric) or distance (categorical) must be for a segment to explain a diluted one.
    """

    min_effect_size: float = 0.5
    critical_effect_size: float = 1.5
    min_distance: float = 0.1
    critical_distance: float = 0.3
    min_events: int = 200
    max_p_value: float = 0.001
    resolve_ratio: float = 0.5
    resolve_after_s: float = 60.0
    cooldown_s: float = 300.0
    resolve_after_events: int = 200
    cooldown_events: int = 1000
    explain_ratio: float = 1.75

    def validate(self) -> None:
        _positive("alerts.min_effect_size", self.min_effect_size)
        if self.explain_ratio < 1:
            raise ConfigError("alerts.explain_ratio", "must be >= 1")
        if self.critical_effect_size < self.min_effect_size:
            raise ConfigError("alerts.critical_effect_size", "must be >= alerts.min_effect_size")
        if not 0 < self.min_distance <= 1:
            raise ConfigError("alerts.min_distance", "must be in (0, 1]")
        if not self.min_distance <= self.critical_distance <= 1:
            raise ConfigError("alerts.critical_distance", "must be in [alerts.min_distance, 1]")
        _positive("alerts.min_events", self.min_events)
        if not 0 < self.max_p_value < 1:
            raise ConfigError("alerts.max_p_value", "must be in (0, 1)")
        if not 0 < self.resolve_ratio <= 1:
            raise ConfigError("alerts.resolve_ratio", "must be in (0, 1]")
        if self.resolve_after_s < 0:
            raise ConfigError("alerts.resolve_after_s", "must be >= 0")
        if self.cooldown_s < 0:
            raise ConfigError("alerts.cooldown_s", "must be >= 0")
        if self.resolve_after_events < 0:
            raise ConfigError("alerts.resolve_after_events", "must be >= 0")
        if self.cooldown_events < 0:
            raise ConfigError("alerts.cooldown_events", "must be >= 0")


@dataclass(frozen=True)
class LabelsConfig:
    """The prediction-label join: how long and how many predictions wait for their labels."""

    ttl_s: float = 7 * 86400.0
    max_pending: int = 200_000
    early_ttl_s: float = 3600.0
    max_early: int = 50_000

    def validate(self) -> None:
        _positive("labels.ttl_s", self.ttl_s)
        _positive("labels.max_pending", self.max_pending)
        _positive("labels.early_ttl_s", self.early_ttl_s)
        _positive("labels.max_early", self.max_early)


@dataclass(frozen=True)
class AuditConfig:
    """Evidence of oversight for ``monitor report``: the effective config (secrets redacted) and a coverage
    record per owned partition every ``interval_s`` seconds, on a compacted topic (``topic``; empty:
    ``"<kafka.group_id>-audit"``, created at start)."""

    enabled: bool = True
    topic: str = ""
    interval_s: float = 60.0

    def validate(self) -> None:
        _positive("audit.interval_s", self.interval_s)


@dataclass(frozen=True)
class CheckpointConfig:
    """Per-partition state snapshots on a state topic, with the input offsets they cover.

    A checkpoint is written every ``every_events`` events or ``every_s`` seconds per partition, and
    always before the alerts of a batch are published (so a replay repeats them exactly). Offsets are
    committed only with a checkpoint.
    """

    enabled: bool = True
    state_topic: str = ""  # empty: "<kafka.group_id>-state", so two deployments never share state
    every_events: int = 50_000
    every_s: float = 10.0
    max_chunk_bytes: int = 512_000

    def validate(self) -> None:
        _positive("checkpoint.every_events", self.every_events)
        _positive("checkpoint.every_s", self.every_s)
        if self.max_chunk_bytes < 1024:
            raise ConfigError("checkpoint.max_chunk_bytes", "must be at least 1024")


@dataclass(frozen=True)
class FairnessConfig:
    """Protected attributes (segment attributes) and the limits on gaps between their groups.

    ``crosses`` are attribute combinations written ``"gender x age_band"``. The reference group of an
    attribute is the best-off group, the one with the highest selection rate (``reference = "best"``, so
    alerts name the disadvantaged group), the largest group (``"largest"``), or the one named in
    ``reference_groups``.
    """

    attributes: list[str] = field(default_factory=list)
    crosses: list[str] = field(default_factory=list)
    reference: str = "best"
    reference_groups: dict[str, str] = field(default_factory=dict)
    window: int = 2000
    min_group_size: int = 100
    confidence: float = 0.95
    max_difference: float = 0.1
    min_ratio: float = 0.8
    max_groups: int = 50

    def validate(self) -> None:
        if self.reference not in ("largest", "best"):
            raise ConfigError("fairness.reference", f"must be 'largest' or 'best', got {self.reference!r}")
        for cross in self.crosses:
            parts = [p.strip() for p in cross.split(" x ")]
            if len(parts) < 2 or not all(parts):
                raise ConfigError("fairness.crosses", f"write a cross as 'attr1 x attr2', got {cross!r}")
        if self.window < 10:
            raise ConfigError("fairness.window", "must be at least 10")
        _positive("fairness.min_group_size", self.min_group_size)
        if not 0.5 <= self.confidence < 1:
            raise ConfigError("fairness.confidence", "must be in [0.5, 1)")
        if not 0 < self.max_difference < 1:
            raise ConfigError("fairness.max_difference", "must be in (0, 1)")
        if not 0 < self.min_ratio < 1:
            raise ConfigError("fairness.min_ratio", "must be in (0, 1)")
        _positive("fairness.max_groups", self.max_groups)

    def cross_attributes(self) -> list[list[str]]:
        return [[p.strip() for p in cross.split(" x ")] for cross in self.crosses]


TASKS = ("auto", "binary", "regression")


@dataclass(frozen=True)
class PerformanceConfig:
    """Model metrics, concept drift, label-free estimates, business outcomes and latency.

    ``floors`` maps a metric (accuracy, precision, recall, f1, roc_auc, log_loss, brier, mae, rmse,
    mape) to the level that raises a ``performance`` alert: a minimum, or a maximum for the metrics
    where lower is better (losses and errors).
    """

    task: str = "auto"
    threshold: float = 0.5
    positive_label: str = "1"
    window: int = 2000
    min_labels: int = 200
    reference_labels: int = 500
    min_accuracy_drop: float = 0.05
    min_error_rise: float = 0.25
    calibration_max_error: float = 0.05
    calibration_labels: int = 5000
    business_min_effect: float = 0.2
    latency_min_effect: float = 0.5
    max_outcomes: int = 10
    floors: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        from monitor.core.metrics import BINARY_METRICS, REGRESSION_METRICS

        if self.task not in TASKS:
            raise ConfigError("performance.task", f"must be one of {list(TASKS)}, got {self.task!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError("performance.threshold", "must be in (0, 1)")
        if self.window < 10:
            raise ConfigError("performance.window", "must be at least 10")
        _positive("performance.min_labels", self.min_labels)
        _positive("performance.reference_labels", self.reference_labels)
        _positive("performance.min_error_rise", self.min_error_rise)
        if not 0 < self.min_accuracy_drop < 1:
            raise ConfigError("performance.min_accuracy_drop", "must be in (0, 1)")
        _positive("performance.calibration_max_error", self.calibration_max_error)
        _positive("performance.calibration_labels", self.calibration_labels)
        _positive("performance.business_min_effect", self.business_min_effect)
        _positive("performance.latency_min_effect", self.latency_min_effect)
        _positive("performance.max_outcomes", self.max_outcomes)
        for metric in self.floors:
            if metric not in BINARY_METRICS + REGRESSION_METRICS:
                known = list(BINARY_METRICS + REGRESSION_METRICS)
                raise ConfigError(f"performance.floors.{metric}", f"unknown metric; known metrics: {known}")


@dataclass(frozen=True)
class BaselineConfig:
    """Reference profiles built by ``monitor baseline`` (one JSON file per model version, loaded at start).

    A stream without a profile learns its reference from its own first
    ``significance.baseline_events`` values, and a model version without one learns its schema from its
    first ``quality.baseline_events`` predictions.
    """

    profiles: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for i, path in enumerate(self.profiles):
            if not os.path.isfile(path):
                raise ConfigError(f"baseline.profiles[{i}]", f"file not found: {path}")


SIGNIFICANCE_STATISTICS = ("psi", "js", "ks")


@dataclass(frozen=True)
class SignificanceConfig:
    """Window tests of every stream against its baseline, with false-discovery control across streams.

    Each tumbling window of ``window_events`` values (also the minimum sample per test) is compared with
    the reference in ``bins`` quantile bins: the effect is ``numeric_statistic`` (psi, js or ks) for
    numbers and ``categorical_statistic`` (psi or js) for categories; the p-value is ``numeric_test``
    (ks, or chi2 on the bins) or chi-square. The tests completed within ``round_events`` partition events
    form one family, decided together by Benjamini-Hochberg at false-discovery rate ``fdr``. A window
    fires when it is a discovery *and* its effect reaches the statistic's threshold; ``critical_ratio``
    times the threshold makes it critical.
    """

    enabled: bool = True
    window_events: int = 1000
    baseline_events: int = 1000
    bins: int = 10
    numeric_statistic: str = "psi"
    categorical_statistic: str = "psi"
    numeric_test: str = "ks"
    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    ks_threshold: float = 0.1
    critical_ratio: float = 2.0
    fdr: float = 0.05
    round_events: int = 1000

    def threshold(self, statistic: str) -> float:
        return float(getattr(self, f"{statistic}_threshold"))

    def validate(self) -> None:
        if self.window_events < 50:
            raise ConfigError("significance.window_events", "must be at least 50 events")
        if self.baseline_events < 50:
            raise ConfigError("significance.baseline_events", "must be at least 50 events")
        if not 2 <= self.bins <= 100:
            raise ConfigError("significance.bins", f"must be in [2, 100], got {self.bins}")
        if self.numeric_statistic not in SIGNIFICANCE_STATISTICS:
            raise ConfigError("significance.numeric_statistic", f"must be one of {list(SIGNIFICANCE_STATISTICS)}")
        if self.categorical_statistic not in ("psi", "js"):
            raise ConfigError("significance.categorical_statistic", "must be one of ['psi', 'js']")
        if self.numeric_test not in ("ks", "chi2"):
            raise ConfigError("significance.numeric_test", "must be one of ['ks', 'chi2']")
        for name in ("psi_threshold", "js_threshold", "ks_threshold"):
            _positive(f"significance.{name}", getattr(self, name))
        if self.js_threshold > 1 or self.ks_threshold > 1:
            raise ConfigError(
                "significance.js_threshold" if self.js_threshold > 1 else "significance.ks_threshold", "must be <= 1"
            )
        if self.critical_ratio < 1:
            raise ConfigError("significance.critical_ratio", "must be >= 1")
        if not 0 < self.fdr < 1:
            raise ConfigError("significance.fdr", f"must be in (0, 1), got {self.fdr}")
        _positive("significance.round_events", self.round_events)


@dataclass(frozen=True)
class QualityConfig:
    """Schema and data-quality checks per model version against the baseline schema.

    Each tumbling window of ``window_events`` predictions is checked per field: missing, new or
    mistyped fields (``schema`` alerts), null rate, values outside the baseline range widened by
    ``range_tolerance`` times its width, unseen categories, a varying field turned constant
    (``data_quality`` alerts). A rate check fires when the rate rose by ``min_rate_change`` over the
    baseline's and a one-sided binomial test gives p below ``max_p_value``.
    """

    enabled: bool = True
    window_events: int = 200
    baseline_events: int = 500
    min_rate_change: float = 0.05
    max_p_value: float = 1e-6
    range_tolerance: float = 0.1

    def validate(self) -> None:
        if self.window_events < 20:
            raise ConfigError("quality.window_events", "must be at least 20 events")
        if self.baseline_events < 20:
            raise ConfigError("quality.baseline_events", "must be at least 20 events")
        if not 0 < self.min_rate_change <= 1:
            raise ConfigError("quality.min_rate_change", "must be in (0, 1]")
        if not 0 < self.max_p_value < 1:
            raise ConfigError("quality.max_p_value", "must be in (0, 1)")
        if self.range_tolerance < 0:
            raise ConfigError("quality.range_tolerance", "must be >= 0")


@dataclass(frozen=True)
class DecisionsConfig:
    """When the monitor recommends retraining or a rollback (``retrain_recommended``, ``rollback_recommended``).

    Retrain: a significant concept drift or performance-floor breach of all traffic that holds at
    ``retrain_windows`` consecutive checks, one check per ``window_labels`` labelled predictions; or
    significant input drift in at least ``retrain_drift_features`` of ``important_features`` (all
    features when the list is empty; 0 turns this rule off). Rollback: a version whose windowed
    accuracy (binary) or mean absolute error (regression) is worse than the previous version's by
    ``rollback_min_difference`` (accuracy points, or relative MAE increase), one-sided p below
    ``rollback_max_p_value``, each side with at least ``rollback_min_labels`` labelled predictions.
    """

    enabled: bool = True
    window_labels: int = 500
    retrain_windows: int = 3
    important_features: list[str] = field(default_factory=list)
    retrain_drift_features: int = 0
    rollback_min_difference: float = 0.03
    rollback_max_p_value: float = 0.001
    rollback_min_labels: int = 500

    def validate(self) -> None:
        _positive("decisions.window_labels", self.window_labels)
        _positive("decisions.retrain_windows", self.retrain_windows)
        if self.retrain_drift_features < 0:
            raise ConfigError("decisions.retrain_drift_features", "must be >= 0")
        if self.important_features and self.retrain_drift_features > len(self.important_features):
            raise ConfigError(
                "decisions.retrain_drift_features", "must not exceed the number of decisions.important_features"
            )
        _positive("decisions.rollback_min_difference", self.rollback_min_difference)
        if not 0 < self.rollback_max_p_value < 1:
            raise ConfigError("decisions.rollback_max_p_value", "must be in (0, 1)")
        _positive("decisions.rollback_min_labels", self.rollback_min_labels)


@dataclass(frozen=True)
class MonitorConfig:
    """All settings; build it with :func:`load_config`."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    significance: SignificanceConfig = field(default_factory=SignificanceConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    decisions: DecisionsConfig = field(default_factory=DecisionsConfig)

    @property
    def state_topic(self) -> str:
        return self.checkpoint.state_topic or f"{self.kafka.group_id}-state"

    @property
    def audit_topic(self) -> str:
        return self.audit.topic or f"{self.kafka.group_id}-audit"

    def validate(self) -> MonitorConfig:
        self.kafka.validate()
        self.http.validate()
        self.monitoring.validate()
        self.detectors.validate()
        self.alerts.validate()
        self.labels.validate()
        self.performance.validate()
        self.checkpoint.validate()
        self.audit.validate()
        self.fairness.validate()
        self.baseline.validate()
        self.significance.validate()
        self.quality.validate()
        self.decisions.validate()
        if self.decisions.rollback_min_labels > self.performance.window:
            raise ConfigError(
                "decisions.rollback_min_labels",
                f"must be <= performance.window ({self.performance.window}): versions are compared on that window",
            )
        if self.kafka.transactional_id and not self.checkpoint.enabled:
            raise ConfigError("kafka.transactional_id", "transactions commit with checkpoints: enable them")
        return self


def _positive(name: str, value: float) -> None:
    if not value > 0:  # NaN fails too
        raise ConfigError(name, f"must be > 0, got {value}")


def _coerce(path: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's type; strings from the environment are parsed."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                raise ConfigError(path, f"expected an integer, got {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if annotation is float:
        number: float | None = None
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(path, f"expected a number, got {value!r}") from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number):
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected a string, got {value!r}")
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, f"expected a list of strings, got {value!r}")
        return list(value)
    if origin is dict:
        (_, value_type) = typing.get_args(annotation)
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a table, got {value!r}")
        if value_type is str:
            return {str(k): str(v) for k, v in value.items()}
        if value_type in (int, float, bool):
            return {str(k): _coerce(f"{path}.{k}", v, value_type) for k, v in value.items()}
        return {str(k): _build(f"{path}.{k}", value_type, v) for k, v in value.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _build(path, annotation, value)
    if isinstance(annotation, types.UnionType):  # pragma: no cover - no optional fields yet
        return value
    raise ConfigError(path, f"unsupported setting type {annotation!r}")  # pragma: no cover


def _build(path: str, cls: Any, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(path or "<root>", f"expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else key
        if key not in names:
            raise ConfigError(sub, f"unknown setting; known settings here: {sorted(names)}")
        kwargs[key] = _coerce(sub, value, hints[key])
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _detectors_table(data: Mapping[str, Any]) -> dict[str, Any]:
    """``[detectors]`` holds the defaults inline and overrides under ``features``."""
    data = dict(data)
    features = data.pop("features", {})
    if not isinstance(features, Mapping):
        raise ConfigError("detectors.features", "expected a table of feature name -> settings")
    default = _build("detectors", DetectorSettings, data)
    per_feature = {}
    for name, table in features.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"detectors.features.{name}", f"expected a table of detector settings, got {table!r}")
        merged = _merge(dataclasses.asdict(default), table)
        per_feature[str(name)] = _build(f"detectors.features.{name}", DetectorSettings, merged)
    return {"default": default, "features": per_feature}


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``MONITOR_SECTION__FIELD`` variables into a nested table."""
    table: dict[str, Any] = {}
    for name, value in environ.items():
        if name.startswith(KAFKA_PROPERTY_FILE_PREFIX):
            prop = name[len(KAFKA_PROPERTY_FILE_PREFIX) :].lower().replace("_", ".")
            table.setdefault("kafka", {}).setdefault("property_files", {})[prop] = value
        elif name.startswith(KAFKA_PROPERTY_PREFIX):
            prop = name[len(KAFKA_PROPERTY_PREFIX) :].lower().replace("_", ".")
            table.setdefault("kafka", {}).setdefault("properties", {})[prop] = value
        elif name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            table.setdefault(section, {})[key] = value
    return table


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> MonitorConfig:
    """Read the TOML file (optional), apply environment then explicit overrides, validate.

    >>> cfg = load_config(environ={"MONITOR_KAFKA__BOOTSTRAP_SERVERS": "b:9092", "MONITOR_HTTP__PORT": "9400"})
    >>> (cfg.kafka.bootstrap_servers, cfg.http.port)
    ('b:9092', 9400)
    >>> load_config(overrides={"alerts": {"cooldown_s": -1}})
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: config error in 'alerts.cooldown_s': must be >= 0
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("--config", f"file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    data = _merge(data, env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    known = {f.name for f in dataclasses.fields(MonitorConfig)}
    for section in data:
        if section not in known:
            raise ConfigError(section, f"unknown section; known sections: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for section, cls in (
        ("kafka", KafkaConfig),
        ("http", HttpConfig),
        ("monitoring", MonitoringConfig),
        ("alerts", AlertConfig),
        ("labels", LabelsConfig),
        ("performance", PerformanceConfig),
        ("checkpoint", CheckpointConfig),
        ("audit", AuditConfig),
        ("fairness", FairnessConfig),
        ("baseline", BaselineConfig),
        ("significance", SignificanceConfig),
        ("quality", QualityConfig),
        ("decisions", DecisionsConfig),
    ):
        if section in data:
            kwargs[section] = _build(section, cls, data[section])
    if "detectors" in data:
        if not isinstance(data["detectors"], Mapping):
            raise ConfigError("detectors", "expected a table")
        kwargs["detectors"] = DetectorConfig(**_detectors_table(data["detectors"]))
    return MonitorConfig(**kwargs).validate()
