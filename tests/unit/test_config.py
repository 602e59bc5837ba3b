"""Settings: defaults, environment parsing, TOML files, per-feature detector overrides, errors naming the field."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from monitor.config import (
    AlertConfig,
    DetectorSettings,
    HttpConfig,
    KafkaConfig,
    MonitorConfig,
    MonitoringConfig,
    env_overrides,
    load_config,
)
from monitor.errors import ConfigError

FULL_TOML = """
[kafka]
bootstrap_servers = "broker-1:9092,broker-2:9092"
group_id = "monitor-churn"
predictions_topic = "churn-predictions"
labels_topic = "churn-labels"
batch_max_messages = 100
produce_timeout_s = 5

[kafka.properties]
"security.protocol" = "SASL_SSL"

[http]
host = "127.0.0.1"
port = 9400

[monitoring]
features = ["income", "age"]
ignore_features = ["ssn"]
segments = ["country"]
watch_prediction = false
max_categories = 30

[detectors]
warmup_events = 300
adwin_delta = 0.01

[detectors.features.income]
adwin_delta = 0.05
categorical_window = 200

[alerts]
min_effect_size = 0.8
critical_effect_size = 2.0
cooldown_s = 600
"""


def _write(tmp_path: Path, text: str, name: str = "monitor.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults -----------------------------------------------------------------------------------------


def test_defaults_load_without_file_or_environment() -> None:
    cfg = load_config(environ={})

    assert cfg == MonitorConfig()
    assert cfg.kafka == KafkaConfig()
    assert cfg.http == HttpConfig()
    assert cfg.monitoring == MonitoringConfig()
    assert cfg.alerts == AlertConfig()
    assert cfg.detectors.default == DetectorSettings()
    assert cfg.detectors.features == {}
    assert cfg.kafka.properties == {}
    # Any feature without an override gets the defaults.
    assert cfg.detectors.for_feature("anything") == DetectorSettings()


def test_defaults_are_valid_and_topics_distinct() -> None:
    cfg = load_config(environ={})
    assert cfg.kafka.labels_topic != cfg.kafka.predictions_topic
    assert 0 <= cfg.http.port <= 65535
    assert cfg.alerts.critical_effect_size >= cfg.alerts.min_effect_size


def test_environment_variables_unrelated_to_the_monitor_are_ignored() -> None:
    cfg = load_config(environ={"PATH": "/usr/bin", "MONITOR_NO_DOUBLE_UNDERSCORE": "x", "HOME": "/root"})
    assert cfg == MonitorConfig()


# --- environment parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "section", "name", "expected"),
    [
        pytest.param({"MONITOR_HTTP__PORT": "9400"}, "http", "port", 9400, id="int"),
        pytest.param(
            {"MONITOR_MONITORING__MAX_EVENT_BYTES": "2_000_000"},
            "monitoring",
            "max_event_bytes",
            2_000_000,
            id="int-underscores",
        ),
        pytest.param({"MONITOR_ALERTS__COOLDOWN_S": "12.5"}, "alerts", "cooldown_s", 12.5, id="float"),
        pytest.param({"MONITOR_ALERTS__MIN_EVENTS": "50"}, "alerts", "min_events", 50, id="int-alerts"),
        pytest.param(
            {"MONITOR_MONITORING__WATCH_PREDICTION": "false"}, "monitoring", "watch_prediction", False, id="bool-false"
        ),
        pytest.param(
            {"MONITOR_MONITORING__WATCH_PREDICTION": "No"}, "monitoring", "watch_prediction", False, id="bool-no"
        ),
        pytest.param(
            {"MONITOR_MONITORING__WATCH_PREDICTION": "1"}, "monitoring", "watch_prediction", True, id="bool-1"
        ),
        pytest.param(
            {"MONITOR_MONITORING__WATCH_PREDICTION": "TRUE"}, "monitoring", "watch_prediction", True, id="bool-TRUE"
        ),
        pytest.param(
            {"MONITOR_MONITORING__FEATURES": "income, age,,tenure "},
            "monitoring",
            "features",
            ["income", "age", "tenure"],
            id="list",
        ),
        pytest.param({"MONITOR_MONITORING__SEGMENTS": ""}, "monitoring", "segments", [], id="list-empty"),
        pytest.param(
            {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": "b1:9092,b2:9092"},
            "kafka",
            "bootstrap_servers",
            "b1:9092,b2:9092",
            id="str",
        ),
        pytest.param(
            {"MONITOR_KAFKA__PRODUCE_TIMEOUT_S": "7"}, "kafka", "produce_timeout_s", 7.0, id="float-from-int-text"
        ),
    ],
)
def test_environment_overrides_are_parsed_to_the_field_type(
    env: dict[str, str], section: str, name: str, expected: object
) -> None:
    cfg = load_config(environ=env)
    value = getattr(getattr(cfg, section), name)
    assert value == expected
    assert type(value) is type(expected)


def test_environment_override_of_detector_defaults() -> None:
    cfg = load_config(environ={"MONITOR_DETECTORS__ADWIN_DELTA": "0.01", "MONITOR_DETECTORS__WARMUP_EVENTS": "100"})
    assert cfg.detectors.default.adwin_delta == 0.01
    assert cfg.detectors.default.warmup_events == 100
    assert cfg.detectors.for_feature("x") == cfg.detectors.default


def test_kafka_property_passthrough_turns_underscores_into_dots() -> None:
    cfg = load_config(
        environ={
            "MONITOR_KAFKA_PROPERTY__SASL_MECHANISM": "SCRAM-SHA-512",
            "MONITOR_KAFKA_PROPERTY__SASL_PASSWORD": "s3cret_with_underscore",
            "MONITOR_KAFKA_PROPERTY__SSL_CA_LOCATION": "/etc/ssl/ca.pem",
        }
    )
    assert cfg.kafka.properties == {
        "sasl.mechanism": "SCRAM-SHA-512",
        # Only the variable *name* is rewritten; the value is passed unchanged.
        "sasl.password": "s3cret_with_underscore",
        "ssl.ca.location": "/etc/ssl/ca.pem",
    }


def test_env_overrides_builds_a_nested_table() -> None:
    table = env_overrides(
        {
            "MONITOR_HTTP__PORT": "1",
            "MONITOR_KAFKA__GROUP_ID": "g",
            "MONITOR_KAFKA_PROPERTY__SECURITY_PROTOCOL": "SSL",
            "OTHER": "ignored",
        }
    )
    assert table == {
        "http": {"port": "1"},
        "kafka": {"group_id": "g", "properties": {"security.protocol": "SSL"}},
    }


# --- TOML file -----------------------------------------------------------------------------------------


def test_toml_file_with_every_section_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, FULL_TOML), environ={})

    assert cfg.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert cfg.kafka.group_id == "monitor-churn"
    assert cfg.kafka.predictions_topic == "churn-predictions"
    assert cfg.kafka.labels_topic == "churn-labels"
    assert cfg.kafka.batch_max_messages == 100
    assert cfg.kafka.produce_timeout_s == 5.0
    assert isinstance(cfg.kafka.produce_timeout_s, float)
    assert cfg.kafka.properties == {"security.protocol": "SASL_SSL"}
    # Untouched fields keep their defaults.
    assert cfg.kafka.alerts_topic == KafkaConfig().alerts_topic
    assert cfg.kafka.dlq_topic == KafkaConfig().dlq_topic

    assert cfg.http == HttpConfig(host="127.0.0.1", port=9400)

    assert cfg.monitoring.features == ["income", "age"]
    assert cfg.monitoring.ignore_features == ["ssn"]
    assert cfg.monitoring.segments == ["country"]
    assert cfg.monitoring.watch_prediction is False
    assert cfg.monitoring.max_categories == 30
    assert cfg.monitoring.max_fields == MonitoringConfig().max_fields

    assert cfg.alerts.min_effect_size == 0.8
    assert cfg.alerts.critical_effect_size == 2.0
    assert cfg.alerts.cooldown_s == 600.0
    assert cfg.alerts.min_events == AlertConfig().min_events


def test_per_feature_detector_settings_inherit_the_file_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, FULL_TOML), environ={})
    default = cfg.detectors.default
    income = cfg.detectors.for_feature("income")

    assert default == dataclasses.replace(DetectorSettings(), warmup_events=300, adwin_delta=0.01)
    # The override changes only the keys it names ...
    assert income.adwin_delta == 0.05
    assert income.categorical_window == 200
    # ... and inherits [detectors] (not just the built-in defaults) for the rest.
    assert income.warmup_events == 300
    assert income == dataclasses.replace(default, adwin_delta=0.05, categorical_window=200)
    assert set(cfg.detectors.features) == {"income"}
    assert cfg.detectors.for_feature("age") is default


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL_TOML)
    cfg = load_config(
        path,
        environ={
            "MONITOR_HTTP__PORT": "9500",
            "MONITOR_MONITORING__FEATURES": "income,tenure",
            "MONITOR_DETECTORS__WARMUP_EVENTS": "700",
            "MONITOR_KAFKA_PROPERTY__SASL_MECHANISM": "PLAIN",
        },
    )
    assert cfg.http.port == 9500
    assert cfg.http.host == "127.0.0.1"  # from the file, not overridden
    assert cfg.monitoring.features == ["income", "tenure"]
    # Env detector defaults flow into per-feature settings that do not set the key themselves.
    assert cfg.detectors.default.warmup_events == 700
    assert cfg.detectors.for_feature("income").warmup_events == 700
    assert cfg.detectors.for_feature("income").adwin_delta == 0.05
    # File and env kafka properties merge.
    assert cfg.kafka.properties == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}


def test_explicit_overrides_beat_environment_and_file(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, FULL_TOML),
        environ={"MONITOR_HTTP__PORT": "9500"},
        overrides={"http": {"port": 9600}, "detectors": {"features": {"income": {"adwin_delta": 0.2}}}},
    )
    assert cfg.http.port == 9600
    income = cfg.detectors.for_feature("income")
    assert income.adwin_delta == 0.2
    assert income.categorical_window == 200  # still from the file's income table


# --- errors name the offending field -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env", "field"),
    [
        pytest.param(None, {"MONITOR_HTTP__PORT": "-1"}, "http.port", id="negative-port-env"),
        pytest.param("[http]\nport = 70000\n", {}, "http.port", id="port-too-large"),
        pytest.param('[kafka]\nbootstrap_server = "b:9092"\n', {}, "kafka.bootstrap_server", id="unknown-key"),
        pytest.param(
            None, {"MONITOR_KAFKA__BOOTSTRAP_SERVER": "b:9092"}, "kafka.bootstrap_server", id="unknown-key-env"
        ),
        pytest.param('[kafak]\nbootstrap_servers = "b:9092"\n', {}, "kafak", id="unknown-section"),
        pytest.param(None, {"MONITOR_BOGUS__X": "1"}, "bogus", id="unknown-section-env"),
        pytest.param('[monitoring]\nmax_fields = "many"\n', {}, "monitoring.max_fields", id="string-for-int"),
        pytest.param(None, {"MONITOR_HTTP__PORT": "abc"}, "http.port", id="string-for-int-env"),
        pytest.param("[monitoring]\nmax_fields = 1.5\n", {}, "monitoring.max_fields", id="float-for-int"),
        pytest.param("[monitoring]\nmax_fields = true\n", {}, "monitoring.max_fields", id="bool-for-int"),
        pytest.param(None, {"MONITOR_ALERTS__COOLDOWN_S": "soon"}, "alerts.cooldown_s", id="string-for-float-env"),
        pytest.param(
            None, {"MONITOR_MONITORING__WATCH_PREDICTION": "maybe"}, "monitoring.watch_prediction", id="bad-bool-env"
        ),
        pytest.param("[monitoring]\nfeatures = [1, 2]\n", {}, "monitoring.features", id="list-of-ints"),
        pytest.param("[http]\nhost = 5\n", {}, "http.host", id="int-for-str"),
        pytest.param("http = 5\n", {}, "http", id="section-not-a-table"),
        pytest.param("[detectors]\nadwin_delta = 0\n", {}, "detectors.adwin_delta", id="adwin-delta-zero"),
        pytest.param(
            "[detectors.features.income]\nadwin_delta = 1.5\n",
            {},
            "detectors.features.income.adwin_delta",
            id="feature-adwin-delta-out-of-range",
        ),
        pytest.param(
            "[detectors.features.income]\nadwin_dleta = 0.1\n",
            {},
            "detectors.features.income.adwin_dleta",
            id="feature-unknown-key",
        ),
        pytest.param("[detectors]\nfeatures = 3\n", {}, "detectors.features", id="detector-features-not-table"),
        pytest.param(
            "[detectors]\ncategorical_window = 10\n", {}, "detectors.categorical_window", id="categorical-window-small"
        ),
        pytest.param(
            "[alerts]\nmin_effect_size = 1.0\ncritical_effect_size = 0.5\n",
            {},
            "alerts.critical_effect_size",
            id="critical-below-min",
        ),
        pytest.param("[alerts]\ncooldown_s = -1\n", {}, "alerts.cooldown_s", id="negative-cooldown"),
        pytest.param("[alerts]\nmax_p_value = 1.0\n", {}, "alerts.max_p_value", id="p-value-one"),
        pytest.param(
            None,
            {"MONITOR_KAFKA__PREDICTIONS_TOPIC": "events", "MONITOR_KAFKA__LABELS_TOPIC": "events"},
            "kafka.labels_topic",
            id="same-topics",
        ),
        pytest.param('[kafka]\ndlq_topic = ""\n', {}, "kafka.dlq_topic", id="empty-topic"),
        pytest.param(None, {"MONITOR_KAFKA__BATCH_MAX_MESSAGES": "0"}, "kafka.batch_max_messages", id="zero-batch"),
        pytest.param(
            '[monitoring]\nfeatures = ["income", "age"]\nignore_features = ["age"]\n',
            {},
            "monitoring.ignore_features",
            id="feature-also-ignored",
        ),
        pytest.param(
            "[monitoring]\nmax_segment_attributes = -1\n",
            {},
            "monitoring.max_segment_attributes",
            id="negative-segment-attributes",
        ),
        pytest.param("[monitoring]\nretire_after_s = -1\n", {}, "monitoring.retire_after_s", id="negative-retire"),
        pytest.param(None, {"MONITOR_MONITORING__RETIRE_AFTER_S": "nan"}, "monitoring.retire_after_s", id="nan-retire"),
        pytest.param("[monitoring]\nmax_ahead_s = -5\n", {}, "monitoring.max_ahead_s", id="negative-ahead"),
        pytest.param(None, {"MONITOR_MONITORING__MAX_AHEAD_S": "nan"}, "monitoring.max_ahead_s", id="nan-ahead"),
        pytest.param("[http\nport = 1\n", {}, "--config", id="bad-toml-syntax"),
        pytest.param("[http]\nport = 1\nport = 2\n", {}, "--config", id="toml-duplicate-key"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(
    tmp_path: Path, toml: str | None, env: dict[str, str], field: str
) -> None:
    path = None if toml is None else _write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.problem


def test_bad_value_in_overrides_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides={"alerts": {"cooldown_s": -1}})
    assert info.value.field == "alerts.cooldown_s"


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, environ={})
    assert info.value.field == "--config"
    assert str(missing) in info.value.problem


def test_env_cannot_rescue_an_invalid_file(tmp_path: Path) -> None:
    """The file is parsed first: a syntax error is reported even if env would set the same field."""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "[http\n"), environ={"MONITOR_HTTP__PORT": "1"})
    assert info.value.field == "--config"


def test_env_value_can_fix_a_bad_file_value(tmp_path: Path) -> None:
    """Validation happens after merging, so the env value is the one checked."""
    cfg = load_config(_write(tmp_path, "[http]\nport = -1\n"), environ={"MONITOR_HTTP__PORT": "8080"})
    assert cfg.http.port == 8080


# --- behaviour that looks wrong in the code under test (these tests fail until it is fixed) ---------


def test_per_feature_detector_entry_that_is_not_a_table_raises_config_error(tmp_path: Path) -> None:
    """``[detectors.features] income = 5`` currently crashes with AttributeError inside ``_merge``."""
    path = _write(tmp_path, "[detectors.features]\nincome = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.field == "detectors.features.income"


@pytest.mark.parametrize(
    ("env_name", "field"),
    [
        ("MONITOR_ALERTS__COOLDOWN_S", "alerts.cooldown_s"),
        ("MONITOR_ALERTS__RESOLVE_AFTER_S", "alerts.resolve_after_s"),
        ("MONITOR_ALERTS__MIN_EFFECT_SIZE", "alerts.min_effect_size"),
        ("MONITOR_KAFKA__PRODUCE_TIMEOUT_S", "kafka.produce_timeout_s"),
        ("MONITOR_DETECTORS__PAGE_HINKLEY_THRESHOLD", "detectors.page_hinkley_threshold"),
    ],
)
def test_nan_is_rejected_for_float_settings(env_name: str, field: str) -> None:
    """``float("nan")`` passes every ``x < 0`` / ``x <= 0`` check, so NaN currently slips through validation."""
    with pytest.raises(ConfigError) as info:
        load_config(environ={env_name: "nan"})
    assert info.value.field == field


def test_config_path_that_is_a_directory_raises_config_error(tmp_path: Path) -> None:
    """Currently an IsADirectoryError escapes instead of a ConfigError naming --config."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert info.value.field == "--config"


def test_config_file_that_is_not_utf8_raises_config_error(tmp_path: Path) -> None:
    """tomllib raises UnicodeDecodeError (not TOMLDecodeError) for non-UTF-8 bytes; it currently escapes."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[http]\nhost = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.field == "--config"


# --- every section is read ---------------------------------------------------------------------------


def test_detection_section_is_read_from_the_environment_and_the_file(tmp_path: Path) -> None:
    cfg = load_config(environ={"MONITOR_DETECTION__IDLE_S": "1.5", "MONITOR_DETECTION__BATCH_ROWS": "250"})
    assert (cfg.detection.idle_s, cfg.detection.batch_rows) == (1.5, 250)
    cfg = load_config(_write(tmp_path, "[detection]\nsummary_interval_s = 0.25\n"), environ={})
    assert cfg.detection.summary_interval_s == 0.25


def test_an_idle_timeout_no_longer_than_the_summary_interval_is_refused_by_name() -> None:
    """Every partition that sends on each tick would count as idle between two ticks: the merge would wait for
    none of them."""
    with pytest.raises(ConfigError, match=r"must be longer than detection.summary_interval_s \(2.0\), got 1.5"):
        load_config(environ={"MONITOR_DETECTION__IDLE_S": "1.5", "MONITOR_DETECTION__SUMMARY_INTERVAL_S": "2"})
    assert load_config(environ={"MONITOR_DETECTION__IDLE_S": "0.6"}).detection.idle_s == 0.6


def test_the_live_tick_is_read_and_a_shorter_summary_interval_shortens_it(caplog: pytest.LogCaptureFixture) -> None:
    """Caught up, profile stages send every ``live_interval_s``; catching up, at least every
    ``summary_interval_s``: a summary interval set below the live tick's default (as before the live tick
    existed) still starts, and the tick follows it."""
    from monitor.io.kafka import MonitorService

    with pytest.raises(ConfigError, match=r"detection.live_interval_s"):
        load_config(environ={"MONITOR_DETECTION__LIVE_INTERVAL_S": "0"})
    cfg = load_config(
        environ={"MONITOR_DETECTION__LIVE_INTERVAL_S": "0.1", "MONITOR_DETECTION__SUMMARY_INTERVAL_S": "1"}
    )
    assert (cfg.detection.live_interval_s, cfg.detection.summary_interval_s) == (0.1, 1.0)
    assert MonitorService(cfg).schedule.live_interval_s == 0.1
    lowered = load_config(environ={"MONITOR_DETECTION__SUMMARY_INTERVAL_S": "0.1"})
    assert lowered.detection.live_interval_s == 0.25
    with caplog.at_level(logging.WARNING, logger="monitor.io.kafka"):
        assert MonitorService(lowered).schedule.live_interval_s == 0.1
    assert "the caught-up tick is 0.1 s" in caplog.text  # said once, at start


@pytest.mark.parametrize("section", sorted(f.name for f in dataclasses.fields(MonitorConfig) if f.name != "detectors"))
def test_every_section_rejects_an_unknown_setting_by_name(section: str) -> None:
    """A section that is read is also checked: a typo in any of them names itself instead of being ignored."""
    with pytest.raises(ConfigError, match=rf"'{section}\.no_such_setting'"):
        load_config(environ={f"MONITOR_{section.upper()}__NO_SUCH_SETTING": "1"})


def test_the_handoff_cap_is_read_and_a_negative_one_is_refused_by_name() -> None:
    assert load_config(environ={}).detection.handoff_rows == 100_000
    assert load_config(environ={"MONITOR_DETECTION__HANDOFF_ROWS": "0"}).detection.handoff_rows == 0
    with pytest.raises(ConfigError) as info:
        load_config(environ={"MONITOR_DETECTION__HANDOFF_ROWS": "-1"})
    assert info.value.field == "detection.handoff_rows"


def test_a_list_set_from_the_command_line_or_the_environment_may_be_written_as_in_toml():
    """``--set 'monitoring.segments=["country"]'`` was taken as one segment named '["country"]' and monitored
    none (seen from outside); the comma form and the TOML form now give the same list, and a broken one says so."""
    from monitor.replay import parse_overrides

    for value in ('["country", "gender"]', "country,gender", " [ 'country' , 'gender' ] "):
        config = load_config(environ={}, overrides=parse_overrides([f"monitoring.segments={value}"]))
        assert config.monitoring.segments == ["country", "gender"]
    env = load_config(environ={"MONITOR_MONITORING__SEGMENTS": '["country"]'})
    assert env.monitoring.segments == ["country"]
    with pytest.raises(ConfigError, match=r"monitoring\.segments"):
        load_config(environ={}, overrides=parse_overrides(['monitoring.segments=["country"']))
