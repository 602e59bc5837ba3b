"""``monitor report``: an HTML audit report of a time range, read from the alerts topic.

The report is one self-contained HTML file (inline CSS, no scripts, no links out) so it can be archived
and read offline. It lists the models and versions that raised alerts, the checks configured (from the
monitor's config), every incident that was open during the range with its evidence (detector,
statistic, threshold, p-value, baseline and current summaries, window) and what was recommended.

The alerts topic is read from the beginning of every partition to its end at the time of the call
(``assign`` + seek, no consumer-group membership and no commits), so reading never disturbs anyone.
"""

from __future__ import annotations

import dataclasses
import html
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from monitor.config import MonitorConfig
from monitor.errors import ConfigError, SourceError

RECOMMENDATIONS = {
    "rollback": "Roll back to the previous model version",
    "retrain": "Retrain the model on recent data",
    "investigate": "Investigate the change (data source, product change, bug?)",
    "none": "No action needed",
}
CONFIG_SECTIONS = (
    "monitoring",
    "detectors",
    "alerts",
    "labels",
    "performance",
    "fairness",
    "baseline",
    "significance",
    "quality",
    "decisions",
)


def parse_time(text: str) -> float:
    """ISO-8601 (``Z`` or an offset; no offset means UTC) as epoch seconds.

    >>> parse_time("2026-01-01T00:00:00Z"), parse_time("2026-01-01")
    (1767225600.0, 1767225600.0)
    """
    dt = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def read_alerts(
    client: dict[str, Any], topic: str, *, timeout_s: float = 60.0, idle_s: float = 1.0
) -> list[dict[str, Any]]:
    """Every alert event on ``topic``, partition by partition from the beginning up to the current end."""
    events = _read_topic(client, topic, timeout_s=timeout_s, idle_s=idle_s, what="alerts topic")
    return [e for e in events if "key" in e and "status" in e]


def read_audit(
    client: dict[str, Any], topic: str, *, timeout_s: float = 60.0, idle_s: float = 1.0
) -> list[dict[str, Any]] | None:
    """The monitor's config and coverage records (``monitor.io.audit``); None when the topic does not exist."""
    try:
        events = _read_topic(client, topic, timeout_s=timeout_s, idle_s=idle_s, what="audit topic")
    except SourceError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return [e for e in events if e.get("type") in ("config", "coverage")]


def _read_topic(
    client: dict[str, Any], topic: str, *, timeout_s: float, idle_s: float, what: str
) -> list[dict[str, Any]]:
    """Every JSON object on ``topic``, from the beginning of each partition up to its end at the call."""
    consumer = Consumer(
        {
            **client,
            "group.id": f"monitor-report-{uuid.uuid4().hex[:12]}",  # required by the client, never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise SourceError(f"cannot read metadata of {topic}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise SourceError(f"{what} {topic!r} does not exist or has no partitions")
        ends: dict[int, int] = {}
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[dict[str, Any]] = []
        reached: set[int] = set()
        exact: set[int] = set()
        deadline = time.monotonic() + timeout_s
        last_message = time.monotonic()
        # Done once every partition reached the end it had when we started, and nothing more arrived for
        # idle_s (some Kafka-compatible brokers report high watermarks loosely, so the end alone is not proof).
        while len(reached) < len(ends) or time.monotonic() - last_message < idle_s:
            if time.monotonic() > deadline:
                missing = sorted(set(ends) - reached)
                raise SourceError(f"timed out reading {topic}: partitions {missing} not read to the end")
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    continue
                last_message = time.monotonic()
                p, offset = msg.partition(), msg.offset()
                if p is not None and p not in exact:
                    # ListOffsets may report a loose end; the first fetch response carries the true high watermark
                    exact.add(p)
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                    ends[p] = max(ends.get(p, 0), high)
                if p is not None and offset is not None and offset >= ends.get(p, 0) - 1:
                    reached.add(p)
                try:
                    event = orjson.loads(msg.value() or b"")
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    out.append(event)
        return out
    finally:
        consumer.close()


@dataclass
class Coverage:
    """What the monitor's coverage records show about a period: covered stretches, gaps, configs in force."""

    periods: list[tuple[float, float, list[str]]]  # (start, end, config hashes seen) covered by every partition
    gaps: list[tuple[float, float, str]]  # (start, end, why)
    configs: dict[str, dict[str, Any]]  # hash -> effective config
    covered_s: float
    partitions: int

    @property
    def share(self) -> float:
        total = self.covered_s + sum(e - s for s, e, _ in self.gaps)
        return self.covered_s / total if total > 0 else 0.0


def coverage(records: list[dict[str, Any]], since: float, until: float) -> Coverage:
    """Stretches of ``[since, until)`` in which every input partition has a coverage record are covered; the
    rest are gaps (no record at all: the monitor was not running; some partitions only: partial).

    A record covers ``[interval_start, interval_start + interval_s)`` of its partition, whatever interval the
    monitor ran with then; the partitions a moment needs are those of the records covering it (the topic may
    have grown since).

    >>> recs = [{"type": "coverage", "partition": p, "partitions_total": 2, "interval_start": t,
    ...          "interval_s": 60.0, "config_hash": "h"} for t in (0.0, 60.0, 180.0) for p in (0, 1)]
    >>> c = coverage(recs, 0.0, 240.0)
    >>> c.periods, c.gaps
    ([(0.0, 120.0, ['h']), (180.0, 240.0, ['h'])], [(120.0, 180.0, 'no coverage record: the monitor was not running')])
    """
    configs = {str(r["hash"]): r.get("config") or {} for r in records if r.get("type") == "config"}
    cover = [r for r in records if r.get("type") == "coverage"]
    if not cover:
        return Coverage([], [(since, until, "no coverage record")], configs, 0.0, 0)
    # A sweep over the records' starts and ends: what is active between two consecutive times covers it.
    marks: list[tuple[float, int, int]] = []  # (time, +1 start / -1 end, record)
    for i, r in enumerate(cover):
        a = float(r["interval_start"])
        marks += [(a, 1, i), (a + float(r.get("interval_s", 60.0)), -1, i)]
    marks.sort(key=lambda m: (m[0], m[1]))
    active_parts: Counter[int] = Counter()
    active_totals: Counter[int] = Counter()
    active_hashes: Counter[str] = Counter()
    periods: list[tuple[float, float, list[str]]] = []
    gaps: list[tuple[float, float, str]] = []
    covered = 0.0

    def span(lo: float, hi: float) -> None:
        nonlocal covered
        lo, hi = max(lo, since), min(hi, until)
        if hi <= lo:
            return
        parts = {p for p, n in active_parts.items() if n > 0}
        total = max((t for t, n in active_totals.items() if n > 0), default=0)
        if parts and len(parts) >= total:
            covered += hi - lo
            hashes = {h for h, n in active_hashes.items() if n > 0}
            if periods and periods[-1][1] == lo:
                start, _, hs = periods[-1]
                periods[-1] = (start, hi, sorted(set(hs) | hashes))
            else:
                periods.append((lo, hi, sorted(hashes)))
            return
        why = (
            "no coverage record: the monitor was not running"
            if not parts
            else f"partitions {sorted(set(range(total)) - parts)} of {total} not covered"
        )
        if gaps and gaps[-1][1] == lo and gaps[-1][2] == why:
            gaps[-1] = (gaps[-1][0], hi, why)
        else:
            gaps.append((lo, hi, why))

    last = since
    for t, step, i in marks:
        if t > last:
            span(last, t)
            last = t
        r = cover[i]
        active_parts[int(r["partition"])] += step
        active_totals[int(r.get("partitions_total", 1))] += step
        active_hashes[str(r.get("config_hash", ""))] += step
    span(last, until)
    partitions = max(int(r.get("partitions_total", 1)) for r in cover)
    return Coverage(periods, gaps, configs, covered, partitions)


@dataclass
class Incident:
    """One alert incident (one ``alert_id``): its firing event and, if any, its resolution."""

    alert_id: str
    first: dict[str, Any]
    last: dict[str, Any]
    fired_at: float | None
    resolved_at: float | None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "resolved" if self.resolved_at is not None else "open"


def incidents(alerts: Iterable[dict[str, Any]], since: float, until: float) -> list[Incident]:
    """Incidents open at some time in ``[since, until)``; an exact duplicate event (a replay) counts once."""
    by_id: dict[str, Incident] = {}
    seen: set[tuple[str, str, str]] = set()
    for a in sorted(alerts, key=lambda a: _ts(a.get("emitted_at")) or 0.0):
        ident = (str(a.get("alert_id")), str(a.get("status")), str(a.get("emitted_at")))
        if ident in seen:
            continue
        seen.add(ident)
        aid = str(a.get("alert_id") or a.get("key"))
        inc = by_id.get(aid)
        # When it fired, in event time: ``detected_at`` (contract 1.1); older events only have the change point.
        started = _ts(a.get("detected_at")) or _ts(a.get("started_at")) or _ts(a.get("emitted_at"))
        if inc is None:
            inc = by_id[aid] = Incident(aid, a, a, started, None)
        inc.events.append(a)
        inc.last = a
        if a.get("status") == "firing" and inc.first.get("status") != "firing":
            inc.first = a
        if a.get("status") == "resolved":
            # in event time, as it fired: ``resolved_at``; older events only say when they were produced
            inc.resolved_at = _ts(a.get("resolved_at")) or _ts(a.get("emitted_at"))
    out = []
    for inc in by_id.values():
        start = inc.fired_at if inc.fired_at is not None else -float("inf")
        end = inc.resolved_at if inc.resolved_at is not None else float("inf")
        if start < until and end >= since:
            out.append(inc)
    return sorted(out, key=lambda i: (i.fired_at or 0.0, i.alert_id))


def _iso(ts: float | None) -> str:
    if ts is None:
        return "–"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _number(v: float) -> str:
    """Readable numbers: thousands separators for large ones, four significant digits otherwise.

    >>> _number(604800.0), _number(0.123456), _number(2.5e-7), _number(12.0)
    ('604,800', '0.1235', '2.5e-07', '12')
    """
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if abs(v) >= 10_000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    """``1 incident``, ``2 incidents``."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _e(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return html.escape(_number(value))
    if isinstance(value, dict):
        return html.escape(", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "–")
    return html.escape(str(value))


def _plain(v: Any) -> str:
    return _number(v) if isinstance(v, float) else str(v)


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _flatten(prefix: str, values: dict[str, Any], rows: list[list[str]]) -> None:
    """Dotted setting names as docs/configuration.md writes them (``detectors.default.x`` is ``detectors.x``)."""
    for key, v in values.items():
        name = prefix if key == "default" else f"{prefix}.{key}"
        if isinstance(v, dict) and v and all(isinstance(k, str) for k in v):
            _flatten(name, v, rows)
        else:
            rows.append([_e(name), _e(v if v not in ([], {}, "") else "(none)")])


def _settings(config: MonitorConfig | dict[str, Any]) -> str:
    """The checks' settings, from a config object or the plain dict the monitor published."""
    plain = config if isinstance(config, dict) else dataclasses.asdict(config)
    parts = []
    for section in CONFIG_SECTIONS:
        value = plain.get(section)
        if not isinstance(value, dict):
            continue
        flat: list[list[str]] = []
        _flatten(section, value, flat)
        parts.append(_table(["setting", "value"], flat, "settings"))
    return "".join(parts)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
body{margin:24px auto;max-width:1200px;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:8px 0 16px}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.muted{color:#656d76}
.open{color:#cf222e;font-weight:600}
.resolved{color:#1a7f37;font-weight:600}
.settings td:first-child{font-family:ui-monospace,monospace;white-space:nowrap}
.kpi{display:inline-block;margin-right:32px}
.kpi b{font-size:22px;display:block}
@media print{body{margin:0}}
"""


def render_report(
    alerts: list[dict[str, Any]],
    *,
    since: float,
    until: float,
    config: MonitorConfig,
    source: str,
    generated_at: float | None = None,
    audit: list[dict[str, Any]] | None = None,
    audit_source: str = "",
) -> str:
    """The audit report as one HTML document; ``audit`` holds the monitor's config and coverage records
    (None: no audit topic, so the report cannot show what was covered)."""
    items = incidents(alerts, since, until)
    cov = coverage(audit or [], since, until)
    groups = {str(i.first.get("incident_id") or i.alert_id) for i in items}  # older events: one alert each
    generated = time.time() if generated_at is None else generated_at
    fired_in = [i for i in items if i.fired_at is not None and since <= i.fired_at < until]
    resolved_in = [i for i in items if i.resolved_at is not None and since <= i.resolved_at < until]
    still_open = [i for i in items if i.resolved_at is None or i.resolved_at >= until]
    in_range = [a for a in alerts if (t := _ts(a.get("emitted_at"))) is not None and since <= t < until]
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for a in alerts:
        t = _ts(a.get("emitted_at"))
        key = (str(a.get("model")), str(a.get("model_version")))
        m = models.setdefault(key, {"first": t, "last": t, "kinds": set(), "in_range": 0})
        if t is not None:
            m["first"] = min(x for x in (m["first"], t) if x is not None)
            m["last"] = max(x for x in (m["last"], t) if x is not None)
        m["kinds"].add(str(a.get("kind")))
        if t is not None and since <= t < until:
            m["in_range"] += 1

    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Model monitoring audit report {_iso(since)} – {_iso(until)}</title><style>{CSS}</style></head><body>",
        "<h1>Model monitoring audit report</h1>",
        f"<p class='muted'>Period {_iso(since)} to {_iso(until)} · generated {_iso(generated)} · "
        f"source: alerts topic <code>{html.escape(source)}</code>, read from the beginning "
        f"({len(alerts)} alert events, {len(in_range)} in the period)</p>",
        "<h2>Summary</h2>",
        f"<div class='kpi'><b>{len(models)}</b>{'model version' if len(models) == 1 else 'model versions'} "
        "with alerts</div>",
        f"<div class='kpi'><b>{len(fired_in)}</b>{'incident' if len(fired_in) == 1 else 'incidents'} fired</div>",
        f"<div class='kpi'><b>{len(resolved_in)}</b>{'incident' if len(resolved_in) == 1 else 'incidents'} "
        "resolved</div>",
        f"<div class='kpi'><b>{len(still_open)}</b>still open at the end of the period</div>",
        f"<div class='kpi'><b>{len(groups)}</b>{'incident' if len(groups) == 1 else 'incidents'} (alerts of one "
        "change grouped)</div>",
        f"<div class='kpi'><b>{cov.share:.0%}</b>of the period covered</div>",
        _coverage_sentence(cov, audit is not None, audit_source),
        "<p>An incident is raised only when a change is both large enough (effect size) and statistically "
        "significant, and it is resolved once the condition has been clear for the configured time.</p>",
        "<h2>Periods monitored</h2>",
        _coverage_tables(cov),
        "<h2>Models and versions monitored</h2>",
    ]
    if models:
        rows = [
            [_e(m), _e(v), _iso(d["first"]), _iso(d["last"]), _e(", ".join(sorted(d["kinds"]))), str(d["in_range"])]
            for (m, v), d in sorted(models.items())
        ]
        out.append(
            _table(
                ["model", "version", "first alert event", "last alert event", "alert kinds", "events in period"], rows
            ),
        )
        out.append(
            "<p class='muted'>Models appear here once they have raised an alert; models that were monitored "
            "without any alert are in the monitor's /api/overview and Prometheus (monitor_events_total).</p>"
        )
    else:
        out.append("<p>No alert events on the topic: no model raised an alert.</p>")

    out.append("<h2>Recommended actions</h2>")
    by_rec: dict[str, list[Incident]] = {}
    for inc in items:
        by_rec.setdefault(str(inc.first.get("recommendation") or "none"), []).append(inc)
    if by_rec:
        rows = []
        for rec in ("rollback", "retrain", "investigate", "none"):
            group = by_rec.pop(rec, [])
            if group:
                n_open = sum(1 for i in group if i in still_open)
                subjects = ", ".join(sorted({f"{i.first.get('model')} {i.first.get('model_version')}" for i in group}))
                rows.append([_e(RECOMMENDATIONS[rec]), str(len(group)), str(n_open), _e(subjects)])
        for rec, group in by_rec.items():
            rows.append([_e(rec), str(len(group)), str(sum(1 for i in group if i in still_open)), ""])
        out.append(_table(["action", "incidents", "still open", "models"], rows))
    else:
        out.append("<p>None: no incident in the period.</p>")

    out.append("<h2>Alerts fired and resolved, with their evidence</h2>")
    if items:
        rows = []
        for inc in items:
            a = inc.first
            incident = f"<br>incident <code class='muted'>{_e(a['incident_id'])}</code>" if a.get("incident_id") else ""
            end = inc.resolved_at if inc.resolved_at is not None else None
            status = (
                f"<span class='resolved'>resolved {_iso(end)}</span>"
                if end is not None and end < until
                else "<span class='open'>open at end of period</span>"
            )
            duration = _duration(end - inc.fired_at) if end is not None and inc.fired_at is not None else "–"
            evidence = (
                f"detector {_e(a.get('detector'))}; statistic {_e(a.get('statistic'))} vs threshold "
                f"{_e(a.get('threshold'))}; p-value {_e(a.get('p_value'))}<br>baseline: {_e(a.get('baseline'))}"
                f"<br>current: {_e(a.get('current'))}<br>window: {_e(a.get('window'))}"
            )
            rows.append(
                [
                    _iso(inc.fired_at) + f"<br>alert <code class='muted'>{_e(inc.alert_id)}</code>" + incident,
                    status + f"<br><span class='muted'>{duration}</span>",
                    _e(a.get("severity")),
                    f"{_e(a.get('model'))} {_e(a.get('model_version'))}",
                    f"{_e(a.get('kind'))}<br><code>{_e(a.get('key'))}</code>",
                    _e(a.get("message")),
                    evidence,
                    _e(RECOMMENDATIONS.get(str(a.get("recommendation")), a.get("recommendation"))),
                ]
            )
        out.append(
            _table(["fired", "status", "severity", "model", "kind / key", "what happened", "evidence", "action"], rows)
        )
    else:
        out.append("<p>No incident was open during the period.</p>")

    out.append("<h2>Checks configured</h2>")
    out.append(
        "<p>Every numeric feature and the prediction are watched per segment by ADWIN and Page-Hinkley detectors, "
        "categorical features by a windowed chi-square test; labelled predictions feed model metrics and concept-"
        "drift detectors.</p>"
    )
    in_force = sorted({h for _, _, hs in cov.periods for h in hs if h in cov.configs})
    if in_force:
        for h in in_force:
            spans = ", ".join(f"{_iso(a)} – {_iso(b)}" for a, b, hs in cov.periods if h in hs)
            out.append(
                f"<h3>Config <code>{_e(h)}</code></h3><p class='muted'>As the monitor published it (secrets "
                f"redacted), in force during {spans}.</p>"
            )
            out.append(_settings(cov.configs[h]))
    else:
        out.append(
            "<p><b>The monitor published no config for this period</b>"
            + (f" on <code>{html.escape(audit_source)}</code>" if audit_source else "")
            + ". These are the report's own settings, which need not be the monitor's:</p>"
        )
        out.append(_settings(config))
    out.append(
        f"<p class='muted'>Alert ids are deterministic: the same id in two reports is the same incident. "
        f"Report by stream-model-monitor, {_iso(generated)}.</p></body></html>"
    )
    return "".join(out)


def _coverage_sentence(cov: Coverage, have_audit: bool, source: str) -> str:
    if not have_audit:
        return (
            "<p><b>No coverage records</b>: the monitor's audit topic was not found, so this report cannot show "
            "that the monitor was running during the period. It lists the alerts that were raised.</p>"
        )
    if not cov.gaps:
        return (
            f"<p>The monitor covered every input partition ({cov.partitions}) over the whole period, by its "
            f"coverage records on <code>{html.escape(source)}</code>.</p>"
        )
    missing = sum(e - s for s, e, _ in cov.gaps)
    return (
        f"<p>The monitor covered {cov.share:.0%} of the period, by its coverage records on "
        f"<code>{html.escape(source)}</code>; {_plural(len(cov.gaps), 'gap')} ({_duration(missing)} in all) "
        "are listed below. Changes during a gap were not watched.</p>"
    )


def _coverage_tables(cov: Coverage) -> str:
    rows = [
        [_iso(a), _iso(b), _duration(b - a), ", ".join(f"<code>{_e(h)}</code>" for h in hs) or "–"]
        for a, b, hs in cov.periods
    ]
    out = _table(["from", "to", "length", "config"], rows) if rows else "<p>No period was covered.</p>"
    if cov.gaps:
        out += "<h3>Gaps</h3>" + _table(
            ["from", "to", "length", "why"], [[_iso(a), _iso(b), _duration(b - a), _e(why)] for a, b, why in cov.gaps]
        )
    return out


def write_report(
    config: MonitorConfig,
    client: dict[str, Any],
    *,
    topic: str,
    since: float,
    until: float,
    out_path: str,
    audit_topic: str | None = None,
) -> tuple[int, int]:
    """Read the alerts topic and write the report; returns (alert events read, incidents in the period)."""
    if until <= since:
        raise ConfigError("--until", "must be after --since")
    alerts = read_alerts(client, topic)
    audit_topic = audit_topic or config.audit_topic
    audit = read_audit(client, audit_topic)
    text = render_report(
        alerts, since=since, until=until, config=config, source=topic, audit=audit, audit_source=audit_topic
    )
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return len(alerts), len(incidents(alerts, since, until))
