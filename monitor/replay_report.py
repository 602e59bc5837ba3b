"""What a replay saw and what it would have alerted (``monitor replay``): its counts, its alerts as incidents,
the alerts file and the plain-text report printed after it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.core.events import Rejected
from monitor.core.rules import Alert

REJECTED_EXAMPLES = 3  # where the first few rejected messages of each reason are, in the report


@dataclass
class Incident:
    """One alert incident of a replay: its firing event and, if it resolved, the resolution."""

    fired: Alert
    resolved: Alert | None = None


@dataclass
class ReplayResult:
    """What a replay saw and what it would have alerted."""

    events: int = 0  # valid prediction events
    labels: int = 0  # valid label events
    messages: int = 0  # prediction messages (or lines) read, valid or not
    label_messages: int = 0
    partitions: int = 1
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (predictions|labels, reason) -> count
    # (predictions|labels, reason) -> where the first REJECTED_EXAMPLES were ("line 7", "partition 0 offset 12")
    rejected_at: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    join: Counter[str] = field(default_factory=Counter)  # label join outcomes: joined, expired, unknown...
    restamped: Counter[str] = field(default_factory=Counter)  # predictions|labels given their Kafka time
    untimed_labels: int = 0  # labels of a file without a timestamp: replayed where the label before them was
    alerts: list[Alert] = field(default_factory=list)  # every alert event, in event-time order
    seconds: float = 0.0

    def note_rejected(self, role: str, rejected: Sequence[Rejected], where: Sequence[str]) -> None:
        for r in rejected:
            seen = self.rejected_at.setdefault((role, r.reason), [])
            if len(seen) < REJECTED_EXAMPLES:
                seen.append(where[r.position])

    def incidents(self) -> list[Incident]:
        """Incidents that fired, in the order they fired, each with its resolution if any."""
        by_id: dict[str, Incident] = {}
        for a in self.alerts:
            if a.status == "firing":
                by_id.setdefault(a.alert_id, Incident(a))
            elif a.alert_id in by_id:
                by_id[a.alert_id].resolved = a
        return list(by_id.values())


def write_alerts(path: str | Path, alerts: Sequence[Alert]) -> None:
    """Every alert event as one JSON object per line, exactly as the monitor would publish it."""
    with open(path, "wb") as fh:
        for a in alerts:
            fh.write(orjson.dumps(a.to_dict()) + b"\n")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]


def summary(result: ReplayResult) -> str:
    """The plain-text report printed after a replay."""
    rate = (result.messages + result.label_messages) / result.seconds if result.seconds > 0 else 0.0
    parts = "partition" if result.partitions == 1 else "partitions"
    lines = [
        f"replayed {result.events:,} predictions and {result.labels:,} labels "
        f"({result.partitions} {parts}) in {result.seconds:.1f} s ({rate:,.0f} messages/s)"
    ]
    if result.rejected:
        lines.append("rejected:")
        for (role, reason), n in sorted(result.rejected.items()):
            at = result.rejected_at.get((role, reason), [])
            more = ", ..." if n > len(at) else ""
            lines.append(f"  {role} {reason} {n:,}" + (f" ({', '.join(at)}{more})" if at else ""))
    else:
        lines.append("rejected: none")
    if result.restamped:
        lines.append(
            "restamped (stamped more than monitoring.max_ahead_s after their Kafka time, given it): "
            + ", ".join(f"{role} {n:,}" for role, n in sorted(result.restamped.items()))
        )
    if result.join and result.label_messages:  # (without labels, predictions only leave the join: no news)
        lines.append("label join: " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.join.items())))
    if result.untimed_labels:
        lines.append(
            f"labels without a timestamp: {result.untimed_labels:,} (each replayed where the label before it in the "
            "file was, those before any timestamped label ahead of every prediction, where most cannot join: give "
            "labels a timestamp, when the truth became known)"
        )
    counts = Counter((a.kind, a.status) for a in result.alerts)
    if counts:
        lines.append("alerts: " + ", ".join(f"{kind} {status} {n}" for (kind, status), n in sorted(counts.items())))
    else:
        lines.append("alerts: none")
    incidents = result.incidents()
    if incidents:
        # the first column numbers the incidents (alerts of one change share one: docs/alerts.md), in order
        number: dict[str, int] = {}
        for inc in incidents:
            number.setdefault(inc.fired.incident_id or inc.fired.key, len(number) + 1)
        pages = "incident" if len(number) == 1 else "incidents"
        lines.append(f"firing alerts ({len(incidents)}) in {len(number)} {pages}:")
        rows = [["incident", "key", "severity", "detector", "statistic", "started_at", "state", "message"]]
        for inc in incidents:
            a = inc.fired
            rows.append(
                [
                    str(number[a.incident_id or a.key]),
                    a.key,
                    a.severity,
                    a.detector,
                    "" if a.statistic is None else f"{a.statistic:.3g}",
                    a.started_at or "",
                    "open" if inc.resolved is None else f"resolved {inc.resolved.window.get('end') or ''}",
                    a.message,
                ]
            )
        lines += _table(rows)
    return "\n".join(lines)
