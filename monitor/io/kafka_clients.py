"""Kafka clients' shared settings and the broker's topics: every client's configuration from the monitor's,
librdkafka's log lines and errors (logged once per interval, not once per retry), Kafka errors as our own,
and the topics created where they do not exist yet."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from monitor.config import MonitorConfig
from monitor.errors import ConfigError, SourceError

log = logging.getLogger("monitor.io.kafka")  # the Kafka edge's logger, as before these left kafka.py


class _LibrdkafkaLog:
    """Receives librdkafka's own log lines (``logger`` client property) and logs them at DEBUG (``-v``).

    Unreachable brokers make librdkafka log every failed connection attempt, hundreds of lines a minute;
    the errors that matter reach :class:`ErrorLog` through ``error_cb`` instead, once per interval.
    """

    def __init__(self) -> None:
        self._log = logging.getLogger("monitor.librdkafka")

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.debug(msg, *args)


LIBRDKAFKA_LOG = _LibrdkafkaLog()


class ErrorLog:
    """A client's ``error_cb``: remembers the last error and logs each kind of error at most once per
    ``interval_s`` (fatal errors always), so an outage gives a line now and then, not one per retry."""

    def __init__(self, interval_s: float = 30.0, *, quiet: bool = False) -> None:
        self.interval_s = interval_s
        self.quiet = quiet  # only remember (the caller says what happened in its own words)
        self.last: str = ""
        self._logged: dict[int, float] = {}

    def __call__(self, err: KafkaError) -> None:
        if err.code() != KafkaError._ALL_BROKERS_DOWN or not self.last:  # keep the cause, not its summary
            self.last = err.str()
        if self.quiet:
            return
        if err.fatal():
            log.error("fatal Kafka error: %s", self.last)
            return
        now = time.monotonic()
        if now - self._logged.get(err.code(), -self.interval_s) >= self.interval_s:
            self._logged[err.code()] = now
            log.warning("Kafka: %s", self.last)


def require_bootstrap_servers(config: MonitorConfig) -> str:
    """The bootstrap servers, or a :class:`ConfigError` naming the setting (``run`` and ``check-config``)."""
    if not config.kafka.bootstrap_servers:
        raise ConfigError(
            "kafka.bootstrap_servers",
            "is empty: set it in the config, MONITOR_KAFKA__BOOTSTRAP_SERVERS or --bootstrap-servers",
        )
    return config.kafka.bootstrap_servers


def client_config(config: MonitorConfig, errors: ErrorLog | None = None) -> dict[str, Any]:
    """Settings shared by every client: bootstrap servers plus pass-through properties (TLS, SASL...);
    librdkafka's own log lines go to DEBUG and its errors to ``errors`` (a new :class:`ErrorLog` if none)."""
    return {
        "bootstrap.servers": require_bootstrap_servers(config),
        "logger": LIBRDKAFKA_LOG,
        "error_cb": errors or ErrorLog(),
        **config.kafka.client_properties(),
    }


def translate(err: KafkaError, what: str) -> SourceError:
    """A Kafka error as our own, keeping whether it is retriable or fatal."""
    return SourceError(f"{what}: {err.str()}", retriable=err.retriable(), fatal=err.fatal())


def ensure_topics(admin: AdminClient, topics: dict[str, int], config: dict[str, dict[str, str]] | None = None) -> None:
    """Create the topics that do not exist yet (demo and tests; production creates them up front)."""
    existing = admin.list_topics(timeout=10).topics
    new = [NewTopic(t, n, config=(config or {}).get(t, {})) for t, n in topics.items() if t not in existing]
    if not new:
        return
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise translate(exc.args[0], f"creating topic {topic}") from None
