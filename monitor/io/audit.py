"""Evidence of oversight: the monitor's effective config and a coverage heartbeat on a compacted topic.

A list of alerts cannot answer an auditor's first two questions: was the monitor running over the whole
period, and with which checks? Each replica therefore publishes, on ``audit.topic`` (default
``<kafka.group_id>-audit``, created at start like the state topic, compacted and expiring after 400 days):

- ``config/<hash>``: the effective config, secrets redacted, and its hash, once per start;
- ``coverage/<partition>/<interval start>``: per owned input partition and wall-clock interval of
  ``audit.interval_s``: the replica, the config hash, the partition count of the predictions topic,
  the prediction and label events processed so far (per model version for predictions), the
  partition's lag and the replica's uptime.

``monitor report`` reads both: the periods covered by every partition, the gaps, and the config in force.
The records are evidence, not state: they are produced outside the checkpoint transaction, and losing one
shows as a gap of one interval, never as a wrong alert.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import socket
import time
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from monitor.config import MonitorConfig
from monitor.core.engine import PartitionEngine

log = logging.getLogger(__name__)

REDACTED = "***"
# Every coverage record has its own key, so compaction alone would keep them all: records also expire after
# 400 days (an audit year and some), and compaction keeps the latest record of each config meanwhile.
AUDIT_TOPIC_CONFIG = {"cleanup.policy": "compact,delete", "retention.ms": str(400 * 86_400_000)}
SECRET_WORDS = ("password", "secret", "token", "jaas", "key.pem", "private")


def _redact(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, f"{name}.{k}" if name else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, name) for v in value]
    if value and any(word in name.lower() for word in SECRET_WORDS) and not name.lower().endswith("_file"):
        return REDACTED
    return value


def effective_config(config: MonitorConfig) -> tuple[dict[str, Any], str]:
    """The config as plain data with secrets redacted, and a short hash of it (same config, same hash).

    >>> from monitor.config import load_config
    >>> plain, digest = effective_config(load_config(environ={}, overrides={"http": {"basic_auth_password": "x"}}))
    >>> plain["http"]["basic_auth_password"], len(digest)
    ('***', 16)
    """
    plain = _redact(dataclasses.asdict(config))
    digest = hashlib.sha256(orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return plain, digest


class AuditPublisher:
    """Publishes the config once and a coverage record per owned partition per interval (best effort)."""

    def __init__(self, config: MonitorConfig, client: dict[str, Any], *, replica: str | None = None) -> None:
        self.config = config
        self.topic = config.audit_topic
        self.interval_s = config.audit.interval_s
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}"
        self.plain, self.config_hash = effective_config(config)
        self.started = time.time()
        self.producer = Producer({**client, "acks": "all", "linger.ms": 50})
        self._published: dict[int, float] = {}  # partition -> interval start of its last record

    def _send(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.producer.produce(self.topic, key=key.encode(), value=orjson.dumps(value))
        except (BufferError, KafkaException) as exc:  # evidence, not state: a lost record is a visible gap
            log.warning("audit record %s not produced: %s", key, exc)
        self.producer.poll(0)

    def publish_config(self) -> None:
        self._send(
            f"config/{self.config_hash}",
            {"type": "config", "hash": self.config_hash, "replica": self.replica, "at": time.time(),
             "config": self.plain},
        )  # fmt: skip

    def tick(
        self,
        engines: dict[int, PartitionEngine],
        lag: dict[tuple[str, int], int],
        partitions_total: int,
        *,
        now: float | None = None,
        force: bool = False,
    ) -> int:
        """A coverage record for each owned partition not yet covered in the current interval (all of them
        with ``force``, as at shutdown); returns how many were produced."""
        now = time.time() if now is None else now
        start = math.floor(now / self.interval_s) * self.interval_s
        sent = 0
        predictions_topic = self.config.kafka.predictions_topic
        for partition, engine in sorted(engines.items()):
            if not force and self._published.get(partition) == start:
                continue
            self._published[partition] = start
            self._send(
                f"coverage/{partition}/{start:.3f}",
                {
                    "type": "coverage",
                    "partition": partition,
                    "partitions_total": partitions_total,
                    "interval_start": start,
                    "interval_s": self.interval_s,
                    "at": now,
                    "replica": self.replica,
                    "config_hash": self.config_hash,
                    "uptime_s": now - self.started,
                    "lag": lag.get((predictions_topic, partition)),
                    "predictions": {f"{m}/{v}": n for (m, v), n in sorted(engine.profile.events.items())},
                    "labels": engine.profile.labels_seen,
                },
            )
            sent += 1
        return sent

    def close(self, timeout_s: float = 5.0) -> None:
        left = self.producer.flush(timeout_s)
        if left:
            log.warning("%d audit records not acknowledged at shutdown", left)
