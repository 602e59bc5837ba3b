"""Alert lifecycle: one incident per change, firing then resolved, never a storm.

Each watched thing has a stable key (model / kind / subject / segment). A key fires when its
condition holds; while it is firing, further detections are folded into the same incident;
it resolves once the clear condition has held for ``resolve_after_s`` seconds *and* for
``resolve_after_events`` of the stream's events, and it cannot fire again for ``cooldown_s`` seconds
and ``cooldown_events`` events after that (hysteresis and cooldown; counting events too keeps a slow
stream, one event every few minutes, from flapping). Times are event times, so a replay of the same
input produces the same transitions. A new incident always gets a new id, even when its detector
reports the same change point as the last one.
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
    version = f"/{model_version}" if model_version else ""
    return f"{model}{version}/{kind}/{subject}/{segment_label(segment)}"


def alert_id(key: str, incident_seq: int, repeat: int = 0) -> str:
    """Deterministic id of one incident: the key plus the stream position where it started (and, when an
    earlier incident of the key started there too, how many did)."""
    tail = f"#{repeat}" if repeat else ""
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
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Incident:
    """State of one key: what is open, since when (time and stream position) the condition has been clear."""

    alert_id: str
    started_at: float
    clear_since: float | None = None
    detected_at: float = float("nan")
    clear_since_position: int | None = None


@dataclass
class Transition:
    """What the lifecycle decided for one key on one evaluation."""

    status: Literal["firing", "resolved"]
    alert_id: str
    started_at: float
    detected_at: float = float("nan")


@dataclass
class AlertLifecycle:
    """Firing / resolved state per key with hysteresis and cooldown.

    >>> lc = AlertLifecycle(resolve_after_s=10, cooldown_s=100)
    >>> lc.evaluate("k", fire=True, clear=False, now=0.0, incident_seq=7).status
    'firing'
    >>> lc.evaluate("k", fire=True, clear=False, now=1.0, incident_seq=9) is None   # same incident
    True
    >>> lc.evaluate("k", fire=False, clear=True, now=2.0, incident_seq=9) is None   # clear, not for long
    True
    >>> lc.evaluate("k", fire=False, clear=True, now=12.0, incident_seq=9).status
    'resolved'
    >>> lc.evaluate("k", fire=True, clear=False, now=50.0, incident_seq=11) is None  # cooling down
    True
    """

    resolve_after_s: float = 60.0
    cooldown_s: float = 300.0
    open: dict[str, Incident] = field(default_factory=dict)
    cooldown_until: dict[str, float] = field(default_factory=dict)
    resolve_after_events: int = 0
    cooldown_events: int = 0
    cooldown_until_position: dict[str, int] = field(default_factory=dict)
    last_start: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (incident_seq, repeats)

    def evaluate(
        self,
        key: str,
        *,
        fire: bool,
        clear: bool,
        now: float,
        incident_seq: int,
        started_at: float | None = None,
        position: int | None = None,
    ) -> Transition | None:
        """Advance one key; ``started_at`` (default ``now``) is when the change began, ``position`` the
        stream's event count (None: the timers count seconds only)."""
        incident = self.open.get(key)
        if incident is None:
            cooling = now < self.cooldown_until.get(key, float("-inf")) or (
                position is not None and position < self.cooldown_until_position.get(key, -1)
            )
            if fire and not cooling:
                began = now if started_at is None or started_at != started_at else started_at
                seq, repeats = self.last_start.get(key, (None, -1))
                repeat = repeats + 1 if seq == incident_seq else 0
                self.last_start[key] = (incident_seq, repeat)
                incident = self.open[key] = Incident(alert_id(key, incident_seq, repeat), began, detected_at=now)
                return Transition("firing", incident.alert_id, incident.started_at, now)
            return None
        if not clear:
            incident.clear_since = None
            incident.clear_since_position = None
            return None
        if incident.clear_since is None:
            incident.clear_since = now
            incident.clear_since_position = position
        held = incident.clear_since_position
        events_ok = position is None or held is None or position - held >= self.resolve_after_events
        if now - incident.clear_since >= self.resolve_after_s and events_ok:
            del self.open[key]
            self.cooldown_until[key] = now + self.cooldown_s
            if position is not None:
                self.cooldown_until_position[key] = position + self.cooldown_events
            return Transition("resolved", incident.alert_id, incident.started_at, incident.detected_at)
        return None

    def is_firing(self, key: str) -> bool:
        return key in self.open

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": {k: asdict(v) for k, v in self.open.items()},
            "cooldown_until": dict(self.cooldown_until),
            "cooldown_until_position": dict(self.cooldown_until_position),
            "last_start": {k: list(v) for k, v in self.last_start.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.open = {k: Incident(**v) for k, v in data["open"].items()}
        self.cooldown_until = dict(data["cooldown_until"])
        self.cooldown_until_position = dict(data.get("cooldown_until_position", {}))
        self.last_start = {k: (int(v[0]), int(v[1])) for k, v in data.get("last_start", {}).items()}


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


def explained_buckets(judged: list[Judgement], ratio: float) -> set[tuple[str, str]]:
    """Buckets whose change is a spill-over of another bucket's, so one change gives one alert.

    All traffic wins when its shift is as large as any segment's (the change is everywhere); a
    segment wins over all traffic and over segments of *other* attributes when its shift is ``ratio``
    times theirs (the change is local and only diluted elsewhere). Segments of the same attribute never
    explain each other: two countries can change independently.
    """
    firing = [j for j in judged if j.fire]
    if len(firing) < 2:
        return set()
    explained: set[tuple[str, str]] = set()
    overall = next((j for j in firing if j.bucket == ALL), None)
    if overall is not None and any(j.shift >= ratio * overall.shift for j in firing if j.bucket != ALL):
        explained.add(ALL)
    for j in firing:
        if j.bucket == ALL:
            continue
        if overall is not None and ALL not in explained:
            explained.add(j.bucket)
        elif any(o.bucket != ALL and o.bucket[0] != j.bucket[0] and o.shift >= ratio * j.shift for o in firing):
            explained.add(j.bucket)
    return explained
