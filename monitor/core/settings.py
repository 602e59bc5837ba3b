"""The settings the core reads, as plain frozen dataclasses.

``monitor.config`` fills them from a TOML file, the environment and overrides, and checks every value
(its errors name the field); the core only reads them, so it never imports ``monitor.config`` and a
test or a benchmark can build an engine from ``Settings()`` with a field or two replaced. The
settings of the edges (Kafka, HTTP, checkpoints, baseline files) are not here: ``MonitorConfig``, in
``monitor.config``, is these sections plus those.

>>> s = Settings(alerts=AlertConfig(min_effect_size=0.3))
>>> (s.alerts.min_effect_size, s.detectors.for_feature("income").warmup_events)
(0.3, 500)
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # A model version without predictions for this long (event time) is retired: its open alerts resolve and
    # its state goes, so versions that left service free their places under max_models. 0: never.
    retire_after_s: float = 7 * 86400.0
    max_features_per_model: int = 200
    max_segment_attributes: int = 8
    max_segment_values: int = 50
    max_streams: int = 20000
    max_categories: int = 20
    max_event_bytes: int = 1_000_000
    max_fields: int = 1000
    # An event stamped more than this after its message's Kafka time takes the Kafka time (counted): a clock
    # ahead or a wrong year would otherwise move the label join's expiry and the merge's watermark. 0: never.
    max_ahead_s: float = 300.0
    quantile_sample_size: int = 256


@dataclass(frozen=True)
class DetectorSettings:
    """Detector hyperparameters for one feature (or the defaults for all).

    Numeric values are standardised against the stream's warm-up window (its first ``warmup_events``
    values), so thresholds are in standard deviations and the same defaults fit every feature.
    """

    warmup_events: int = 500
    adwin_delta: float = 0.002
    chunk: int = 16
    adwin_chunk: int = 32
    adwin_clock: int = 1
    page_hinkley_delta: float = 0.25
    page_hinkley_threshold: float = 50.0
    page_hinkley_alpha: float = 1.0
    page_hinkley_min_instances: int = 30
    categorical_window: int = 1000
    categorical_alpha: float = 0.001


@dataclass(frozen=True)
class DetectorConfig:
    """Default detector settings plus per-feature overrides (``[detectors.features.income]``)."""

    default: DetectorSettings = field(default_factory=DetectorSettings)
    features: dict[str, DetectorSettings] = field(default_factory=dict)

    def for_feature(self, name: str) -> DetectorSettings:
        return self.features.get(name, self.default)


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
    incident_window_s: float = 3600.0  # alerts of one model version and facet this close in event time: one incident


@dataclass(frozen=True)
class LabelsConfig:
    """The prediction-label join: how long and how many predictions wait for their labels."""

    ttl_s: float = 7 * 86400.0
    max_pending: int = 200_000
    early_ttl_s: float = 3600.0
    max_early: int = 50_000


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

    def cross_attributes(self) -> list[list[str]]:
        return [[p.strip() for p in cross.split(" x ")] for cross in self.crosses]


TASKS = ("auto", "binary", "regression", "multiclass")


@dataclass(frozen=True)
class PerformanceConfig:
    """Model metrics, concept drift, label-free estimates, business outcomes and latency.

    ``floors`` maps a metric (accuracy, precision, recall, f1, roc_auc, log_loss, brier, mae, rmse,
    mape, macro_precision, macro_recall, macro_f1) to the level that raises a ``performance`` alert: a
    minimum, or a maximum for the metrics where lower is better (losses and errors). ``max_classes``: the
    class names a multiclass model's metrics tell apart; later ones share one class for the macro averages
    (accuracy still compares the names themselves).
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
    max_classes: int = 100
    floors: dict[str, float] = field(default_factory=dict)


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


@dataclass(frozen=True)
class Settings:
    """Every section the core reads; ``monitor.config.MonitorConfig`` adds the edges' sections to it."""

    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    significance: SignificanceConfig = field(default_factory=SignificanceConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    decisions: DecisionsConfig = field(default_factory=DecisionsConfig)
