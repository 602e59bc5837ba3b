"""Typed, validated settings: a TOML file plus environment overrides.

Every error names the offending field (``detectors.adwin_delta``), so a bad deployment fails at
start instead of misbehaving later. Environment variables override any field with the pattern
``MONITOR_<SECTION>__<FIELD>`` (``MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092``); librdkafka
properties such as security settings use ``MONITOR_KAFKA_PROPERTY__<NAME>`` where ``_`` in the name
becomes ``.`` (``MONITOR_KAFKA_PROPERTY__SASL_PASSWORD`` sets ``sasl.password``), and
``MONITOR_KAFKA_PROPERTY_FILE__<NAME>`` reads a property's value from a file (mounted secrets).

The sections the core reads are plain dataclasses in :mod:`monitor.core.settings` (imported from here
too, so ``from monitor.config import AlertConfig`` still works); this module fills and checks them, and
holds the sections of the edges (Kafka, HTTP, checkpoints, baseline files). Config imports core, never
the reverse.
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

from monitor.core.settings import (
    SIGNIFICANCE_STATISTICS,
    TASKS,
    AlertConfig,
    DecisionsConfig,
    DetectorConfig,
    DetectorSettings,
    FairnessConfig,
    LabelsConfig,
    MonitoringConfig,
    PerformanceConfig,
    QualityConfig,
    Settings,
    SignificanceConfig,
)
from monitor.errors import ConfigError

ENV_PREFIX = "MONITOR_"
KAFKA_PROPERTY_PREFIX = "MONITOR_KAFKA_PROPERTY__"
KAFKA_PROPERTY_FILE_PREFIX = "MONITOR_KAFKA_PROPERTY_FILE__"
MAX_PREFETCH_KBYTES = 2_097_151  # librdkafka's bound on queued.max.messages.kbytes


@dataclass(frozen=True)
class KafkaConfig:
    """Where to read and write; ``properties`` go to librdkafka unchanged (TLS, SASL...)."""

    bootstrap_servers: str = ""
    group_id: str = "model-monitor"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    alerts_topic: str = "alerts"
    dlq_topic: str = "monitor-dlq"
    # The consumer's queue hands out partitions in turn, a partition's fetched messages together: a cap below
    # what the prefetch holds left the last partitions' messages for the next iteration (their p99 wait was
    # about twice the first partition's at 18,000 events/s), and the watermark waits for the slowest.
    batch_max_messages: int = 20_000
    batch_max_ms: int = 200
    # Fetched messages the consumer holds ahead of the loop. Summaries and labels wait behind them in one queue,
    # so a deep prefetch (librdkafka's default is 64 MB) delays detection by seconds while a backlog is read.
    prefetch_kbytes: int = 4096
    session_timeout_ms: int = 10000
    produce_timeout_s: float = 30.0
    transactional_id: str = ""  # set (unique per replica) for exactly-once effects on brokers with transactions
    broker_wait_s: float = 10.0  # at start, exit (code 2) if no broker answers for this long; 0: wait forever
    properties: dict[str, str] = field(default_factory=dict, repr=False)
    property_files: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        _positive("kafka.batch_max_messages", self.batch_max_messages)
        _positive("kafka.batch_max_ms", self.batch_max_ms)
        _positive("kafka.prefetch_kbytes", self.prefetch_kbytes)
        if self.prefetch_kbytes > MAX_PREFETCH_KBYTES:  # librdkafka refuses more, with a message naming its own key
            raise ConfigError("kafka.prefetch_kbytes", f"must be <= {MAX_PREFETCH_KBYTES}, got {self.prefetch_kbytes}")
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
    # While the consume loop is busy, the views /metrics and the dashboard read are rebuilt at most this often
    # (0: after every batch); always when the loop is idle and before offsets are committed.
    view_interval_s: float = 1.0

    def validate(self) -> None:
        if not self.view_interval_s >= 0:  # NaN fails too
            problem = f"must be >= 0 (0: after every batch), got {self.view_interval_s}"
            raise ConfigError("http.view_interval_s", problem)
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
class DetectionConfig:
    """The two stages (README, "Running it in production"): each input partition's profile stage sends
    summaries to ``summaries_topic`` (empty: ``"<kafka.group_id>-summaries"``, created at start with
    ``summaries_partitions`` partitions, 0: as many as the predictions topic), keyed by model, each model's
    features split over ``shards`` detection stages (monitor.core.shards; the same on every replica). The
    detection stage that owns a summaries partition merges them in event time behind the slowest input
    partition, leaving out one whose progress has not moved for ``idle_s``; its state goes to
    ``state_topic`` (empty: ``"<kafka.group_id>-detection-state"``). A profile stage sends its summaries at
    least every ``summary_interval_s``, with its checkpoint, while the replica catches up, and on a tick every
    ``live_interval_s`` (or ``summary_interval_s`` if shorter) while it is caught up (live traffic, where the
    tick is most of an alert's wait and a checkpoint is cheap; catching up, each checkpoint costs throughput).
    A detection stage holds at most ``max_pending_rows`` rows for the watermark; beyond that it releases the oldest
    ahead of it (memory stays bounded). A replica keeps the summaries it sent to its own detection stages, at most
    ``handoff_rows`` rows (0: none), and takes them instead of decoding their bytes when it reads them back
    (monitor.core.handoff).
    It monitors what the watermark releases in event-time order, in engine batches that end each time its released rows
    reach a multiple of ``batch_rows`` (and where a release ends), and judges its streams after each (drift alerts
    at the chunk or window that shows the change, whatever the batch): larger batches cost less CPU, smaller ones
    judge labels, estimates and fairness more often while catching up. One loop iteration releases about
    ``release_rows`` rows and labels at most; a longer backlog (a restart, a burst, a prefilled topic) is
    worked off over the following iterations before the replica takes more input, with checkpoints, summaries
    and the published views going on between them."""

    summaries_topic: str = ""
    summaries_partitions: int = 0
    state_topic: str = ""
    idle_s: float = 10.0
    summary_interval_s: float = 0.5
    live_interval_s: float = 0.25
    max_pending_rows: int = 200_000
    batch_rows: int = 4000
    release_rows: int = 10_000
    shards: int = 1
    handoff_rows: int = 100_000

    def validate(self) -> None:
        if self.summaries_partitions < 0:
            raise ConfigError("detection.summaries_partitions", f"must be >= 0, got {self.summaries_partitions}")
        _positive("detection.idle_s", self.idle_s)
        _positive("detection.summary_interval_s", self.summary_interval_s)
        _positive("detection.live_interval_s", self.live_interval_s)
        if not self.idle_s > self.summary_interval_s:  # a partition sending on every tick would look idle between
            raise ConfigError(
                "detection.idle_s",
                f"must be longer than detection.summary_interval_s ({self.summary_interval_s}), got {self.idle_s}",
            )
        _positive("detection.max_pending_rows", self.max_pending_rows)
        _positive("detection.batch_rows", self.batch_rows)
        _positive("detection.release_rows", self.release_rows)
        _positive("detection.shards", self.shards)
        if self.handoff_rows < 0:
            raise ConfigError("detection.handoff_rows", f"must be >= 0, got {self.handoff_rows}")


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


@dataclass(frozen=True)
class MonitorConfig(Settings):
    """All settings: the core's sections (:class:`~monitor.core.settings.Settings`) plus the edges'; build it
    with :func:`load_config`."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    @property
    def state_topic(self) -> str:
        return self.checkpoint.state_topic or f"{self.kafka.group_id}-state"

    @property
    def audit_topic(self) -> str:
        return self.audit.topic or f"{self.kafka.group_id}-audit"

    @property
    def summaries_topic(self) -> str:
        return self.detection.summaries_topic or f"{self.kafka.group_id}-summaries"

    @property
    def detection_state_topic(self) -> str:
        return self.detection.state_topic or f"{self.kafka.group_id}-detection-state"

    def validate(self) -> MonitorConfig:
        """Check every section in a fixed order (the first bad field is the one reported), then across them."""
        self.kafka.validate()
        self.http.validate()
        _check_monitoring(self.monitoring)
        _check_detectors(self.detectors)
        _check_alerts(self.alerts)
        _check_labels(self.labels)
        _check_performance(self.performance)
        self.checkpoint.validate()
        self.audit.validate()
        self.detection.validate()
        _check_fairness(self.fairness)
        self.baseline.validate()
        _check_significance(self.significance)
        _check_quality(self.quality)
        _check_decisions(self.decisions)
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


# The checks of the core sections (monitor.core.settings): each error names its field.
def _check_monitoring(s: MonitoringConfig) -> None:
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
        _positive(f"monitoring.{name}", getattr(s, name))
    if s.max_segment_attributes < 0:
        raise ConfigError("monitoring.max_segment_attributes", "must be >= 0")
    if not s.retire_after_s >= 0:  # NaN fails too
        raise ConfigError("monitoring.retire_after_s", f"must be >= 0 (0: never retire), got {s.retire_after_s}")
    if not s.max_ahead_s >= 0:
        raise ConfigError("monitoring.max_ahead_s", f"must be >= 0 (0: never restamp), got {s.max_ahead_s}")
    overlap = set(s.features) & set(s.ignore_features)
    if overlap:
        raise ConfigError("monitoring.ignore_features", f"also listed in features: {sorted(overlap)}")


def _check_detector_settings(s: DetectorSettings, prefix: str) -> None:
    _positive(f"{prefix}.warmup_events", s.warmup_events)
    if not 0 < s.adwin_delta < 1:
        raise ConfigError(f"{prefix}.adwin_delta", f"must be in (0, 1), got {s.adwin_delta}")
    _positive(f"{prefix}.chunk", s.chunk)
    _positive(f"{prefix}.adwin_chunk", s.adwin_chunk)
    if s.adwin_chunk % s.chunk:
        raise ConfigError(
            f"{prefix}.adwin_chunk", f"must be a multiple of {prefix}.chunk ({s.chunk}), got {s.adwin_chunk}"
        )
    _positive(f"{prefix}.adwin_clock", s.adwin_clock)
    if s.page_hinkley_delta < 0:
        raise ConfigError(f"{prefix}.page_hinkley_delta", "must be >= 0")
    _positive(f"{prefix}.page_hinkley_threshold", s.page_hinkley_threshold)
    if not 0 < s.page_hinkley_alpha <= 1:
        raise ConfigError(f"{prefix}.page_hinkley_alpha", "must be in (0, 1]")
    _positive(f"{prefix}.page_hinkley_min_instances", s.page_hinkley_min_instances)
    if s.categorical_window < 50:
        raise ConfigError(f"{prefix}.categorical_window", "must be at least 50 events")
    if not 0 < s.categorical_alpha < 1:
        raise ConfigError(f"{prefix}.categorical_alpha", "must be in (0, 1)")


def _check_detectors(s: DetectorConfig) -> None:
    _check_detector_settings(s.default, "detectors")
    for name, settings in s.features.items():
        _check_detector_settings(settings, f"detectors.features.{name}")


def _check_alerts(s: AlertConfig) -> None:
    _positive("alerts.min_effect_size", s.min_effect_size)
    if s.explain_ratio < 1:
        raise ConfigError("alerts.explain_ratio", "must be >= 1")
    if s.incident_window_s < 0:
        raise ConfigError("alerts.incident_window_s", "must be >= 0")
    if s.critical_effect_size < s.min_effect_size:
        raise ConfigError("alerts.critical_effect_size", "must be >= alerts.min_effect_size")
    if not 0 < s.min_distance <= 1:
        raise ConfigError("alerts.min_distance", "must be in (0, 1]")
    if not s.min_distance <= s.critical_distance <= 1:
        raise ConfigError("alerts.critical_distance", "must be in [alerts.min_distance, 1]")
    _positive("alerts.min_events", s.min_events)
    if not 0 < s.max_p_value < 1:
        raise ConfigError("alerts.max_p_value", "must be in (0, 1)")
    if not 0 < s.resolve_ratio <= 1:
        raise ConfigError("alerts.resolve_ratio", "must be in (0, 1]")
    if s.resolve_after_s < 0:
        raise ConfigError("alerts.resolve_after_s", "must be >= 0")
    if s.cooldown_s < 0:
        raise ConfigError("alerts.cooldown_s", "must be >= 0")
    if s.resolve_after_events < 0:
        raise ConfigError("alerts.resolve_after_events", "must be >= 0")
    if s.cooldown_events < 0:
        raise ConfigError("alerts.cooldown_events", "must be >= 0")


def _check_labels(s: LabelsConfig) -> None:
    _positive("labels.ttl_s", s.ttl_s)
    _positive("labels.max_pending", s.max_pending)
    _positive("labels.early_ttl_s", s.early_ttl_s)
    _positive("labels.max_early", s.max_early)


def _check_performance(s: PerformanceConfig) -> None:
    from monitor.core.metrics import BINARY_METRICS, MULTICLASS_METRICS, REGRESSION_METRICS

    if s.task not in TASKS:
        raise ConfigError("performance.task", f"must be one of {list(TASKS)}, got {s.task!r}")
    if not 0 < s.threshold < 1:
        raise ConfigError("performance.threshold", "must be in (0, 1)")
    if s.window < 10:
        raise ConfigError("performance.window", "must be at least 10")
    _positive("performance.min_labels", s.min_labels)
    _positive("performance.reference_labels", s.reference_labels)
    _positive("performance.min_error_rise", s.min_error_rise)
    if not 0 < s.min_accuracy_drop < 1:
        raise ConfigError("performance.min_accuracy_drop", "must be in (0, 1)")
    _positive("performance.calibration_max_error", s.calibration_max_error)
    _positive("performance.calibration_labels", s.calibration_labels)
    _positive("performance.business_min_effect", s.business_min_effect)
    _positive("performance.latency_min_effect", s.latency_min_effect)
    _positive("performance.max_outcomes", s.max_outcomes)
    _positive("performance.max_classes", s.max_classes)
    known = list(dict.fromkeys(BINARY_METRICS + REGRESSION_METRICS + MULTICLASS_METRICS))
    for metric in s.floors:
        if metric not in known:
            raise ConfigError(f"performance.floors.{metric}", f"unknown metric; known metrics: {known}")


def _check_fairness(s: FairnessConfig) -> None:
    if s.reference not in ("largest", "best"):
        raise ConfigError("fairness.reference", f"must be 'largest' or 'best', got {s.reference!r}")
    for cross in s.crosses:
        parts = [p.strip() for p in cross.split(" x ")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError("fairness.crosses", f"write a cross as 'attr1 x attr2', got {cross!r}")
    if s.window < 10:
        raise ConfigError("fairness.window", "must be at least 10")
    _positive("fairness.min_group_size", s.min_group_size)
    if not 0.5 <= s.confidence < 1:
        raise ConfigError("fairness.confidence", "must be in [0.5, 1)")
    if not 0 < s.max_difference < 1:
        raise ConfigError("fairness.max_difference", "must be in (0, 1)")
    if not 0 < s.min_ratio < 1:
        raise ConfigError("fairness.min_ratio", "must be in (0, 1)")
    _positive("fairness.max_groups", s.max_groups)


def _check_significance(s: SignificanceConfig) -> None:
    if s.window_events < 50:
        raise ConfigError("significance.window_events", "must be at least 50 events")
    if s.baseline_events < 50:
        raise ConfigError("significance.baseline_events", "must be at least 50 events")
    if not 2 <= s.bins <= 100:
        raise ConfigError("significance.bins", f"must be in [2, 100], got {s.bins}")
    if s.numeric_statistic not in SIGNIFICANCE_STATISTICS:
        raise ConfigError("significance.numeric_statistic", f"must be one of {list(SIGNIFICANCE_STATISTICS)}")
    if s.categorical_statistic not in ("psi", "js"):
        raise ConfigError("significance.categorical_statistic", "must be one of ['psi', 'js']")
    if s.numeric_test not in ("ks", "chi2"):
        raise ConfigError("significance.numeric_test", "must be one of ['ks', 'chi2']")
    for name in ("psi_threshold", "js_threshold", "ks_threshold"):
        _positive(f"significance.{name}", getattr(s, name))
    if s.js_threshold > 1 or s.ks_threshold > 1:
        raise ConfigError(
            "significance.js_threshold" if s.js_threshold > 1 else "significance.ks_threshold", "must be <= 1"
        )
    if s.critical_ratio < 1:
        raise ConfigError("significance.critical_ratio", "must be >= 1")
    if not 0 < s.fdr < 1:
        raise ConfigError("significance.fdr", f"must be in (0, 1), got {s.fdr}")
    _positive("significance.round_events", s.round_events)


def _check_quality(s: QualityConfig) -> None:
    if s.window_events < 20:
        raise ConfigError("quality.window_events", "must be at least 20 events")
    if s.baseline_events < 20:
        raise ConfigError("quality.baseline_events", "must be at least 20 events")
    if not 0 < s.min_rate_change <= 1:
        raise ConfigError("quality.min_rate_change", "must be in (0, 1]")
    if not 0 < s.max_p_value < 1:
        raise ConfigError("quality.max_p_value", "must be in (0, 1)")
    if s.range_tolerance < 0:
        raise ConfigError("quality.range_tolerance", "must be >= 0")


def _check_decisions(s: DecisionsConfig) -> None:
    _positive("decisions.window_labels", s.window_labels)
    _positive("decisions.retrain_windows", s.retrain_windows)
    if s.retrain_drift_features < 0:
        raise ConfigError("decisions.retrain_drift_features", "must be >= 0")
    if s.important_features and s.retrain_drift_features > len(s.important_features):
        raise ConfigError(
            "decisions.retrain_drift_features", "must not exceed the number of decisions.important_features"
        )
    _positive("decisions.rollback_min_difference", s.rollback_min_difference)
    if not 0 < s.rollback_max_p_value < 1:
        raise ConfigError("decisions.rollback_max_p_value", "must be in (0, 1)")
    _positive("decisions.rollback_min_labels", s.rollback_min_labels)


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
        if isinstance(value, str) and value.strip().startswith("["):  # a TOML array, as in a config file
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(path, f'expected a list of strings (a,b or ["a", "b"]), got {value!r}') from None
        elif isinstance(value, str):
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
    sections = typing.get_type_hints(MonitorConfig)  # every section, so none can be read and then dropped
    for section in (f.name for f in dataclasses.fields(MonitorConfig) if f.name != "detectors"):
        if section in data:
            kwargs[section] = _build(section, sections[section], data[section])
    if "detectors" in data:
        if not isinstance(data["detectors"], Mapping):
            raise ConfigError("detectors", "expected a table")
        kwargs["detectors"] = DetectorConfig(**_detectors_table(data["detectors"]))
    return MonitorConfig(**kwargs).validate()
