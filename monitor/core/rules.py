"""The vocabulary of alerts shared by every judge: judgements, stable keys, incident ids, the alert event.

Each watched thing has a stable key (model / version / kind / subject / segment); a judge turns a
stream's evidence into a :class:`Judgement` (fire and clear conditions, the shift attribution compares),
and :mod:`monitor.core.alerting` turns judgements into lifecycle transitions and :class:`Alert` events.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from monitor.core.drift import DriftEvidence

KINDS = (
    "data_drift",
    "prediction_drift",
    "concept_drift",
    "performance",
    "fairness",
    "schema",
    "data_quality",
    "latency",
    "business",
    "retrain_recommended",
    "rollback_recommended",
)
SCHEMA_VERSION = 1
ALL: tuple[str, str] = ("", "")  # the all-traffic bucket; a segment bucket is (attribute, value)


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds, or None."""
    if ts is None or ts != ts:  # None or NaN
        return None
    try:
        moment = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def segment_label(segment: dict[str, str]) -> str:
    """``all`` for all traffic, else ``attr=value`` pairs joined by commas (also used in metrics)."""
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items())) or "all"


def alert_key(model: str, kind: str, subject: str, segment: dict[str, str], model_version: str = "") -> str:
    """Stable key of what is watched; also the Kafka message key so compaction keeps the latest state.

    >>> alert_key("churn", "data_drift", "income", {"country": "SG"}, "v2")
    'churn/v2/data_drift/income/country=SG'
    """
    return f"{version_scope(model, model_version)}/{kind}/{subject}/{segment_label(segment)}"


def version_scope(model: str, model_version: str = "") -> str:
    """What every alert key of one model version begins with (then ``/``), as :func:`alert_key` writes it."""
    return f"{model}/{model_version}" if model_version else model


def parse_key(rest: str) -> tuple[str, str, dict[str, str]]:
    """(kind, subject, segment) from an alert key without its :func:`version_scope` and ``/``; the segment is
    read from the last part, so a subject may hold ``/`` but a segment value may not.

    >>> parse_key("data_drift/income/country=SG,gender=f")
    ('data_drift', 'income', {'country': 'SG', 'gender': 'f'})
    """
    kind, _, tail = rest.partition("/")
    subject, _, label = tail.rpartition("/")
    segment = {} if label == "all" else dict(pair.split("=", 1) for pair in label.split(",") if "=" in pair)
    return kind, subject, segment


def alert_id(key: str, incident_seq: int, repeat: int = 0, life: int = 0) -> str:
    """Deterministic id of one incident: the key plus the stream position where it started (and, when an
    earlier incident of the key started there too, how many did; and, when the key's model version came back
    after it was retired, how many times it was, since its stream positions start again)."""
    tail = (f"#{repeat}" if repeat else "") + (f"@{life}" if life else "")
    return hashlib.sha256(f"{key}#{incident_seq}{tail}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Alert:
    """An alert event exactly as contract v1 puts it on the alerts topic."""

    alert_id: str
    key: str
    status: Literal["firing", "resolved"]
    kind: str
    severity: str
    model: str
    model_version: str
    subject: str
    segment: dict[str, str]
    detector: str
    statistic: float | None
    threshold: float | None
    p_value: float | None
    baseline: dict[str, Any]
    current: dict[str, Any]
    window: dict[str, Any]
    recommendation: str
    message: str
    started_at: str | None
    emitted_at: str | None
    detected_at: str | None = None
    incident_id: str | None = None
    resolved_at: str | None = None  # the event time it resolved at (null while firing)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def decided_at(self) -> str | None:
        """The event time its change of state was decided at: when it resolved, or when it was detected."""
        return self.resolved_at if self.status == "resolved" else self.detected_at


def in_decision_order(alerts: list[Alert]) -> list[Alert]:
    """One batch's alerts in the event-time order of their decisions (stable; left as they are if one has no
    time): a batch judges its streams one after another, and a batch that held several changes would otherwise
    publish them in the order of its streams rather than in the order batches of fewer rows would have. The
    events of one alert key keep their order whatever their times (each counts as decided no earlier than the
    key's events before it): a reader takes a key's last event as its state."""
    if len(alerts) < 2:
        return alerts
    order: list[tuple[str, int]] = []
    latest: dict[str, str] = {}
    for k, a in enumerate(alerts):
        if a.decided_at is None:
            return alerts
        at = latest[a.key] = max(a.decided_at, latest.get(a.key, ""))
        order.append((at, k))
    return [alerts[k] for _, k in sorted(order)]


@dataclass
class Judgement:
    """One stream's evidence turned into the fire / clear conditions the lifecycle needs.

    ``shift`` is the size of the change in units comparable across the buckets of one subject
    (mean shift in the feature's unit, distance, or rate difference); attribution uses it.
    """

    bucket: tuple[str, str]
    stream_kind: str
    evidence: DriftEvidence
    now: float
    key: str
    kind: str
    subject: str
    segment: dict[str, str]
    threshold: float
    critical: float
    fire: bool
    clear: bool
    shift: float
    statistic: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    position: int | None = None  # the stream's event count, so lifecycle timers can count events
