"""``monitor baseline``: a model version's reference profile from its training or validation table.

Without a profile every stream learns its reference from its own first values in production, so drift
that is already there at deployment goes unseen and the first windows are spent warming up. A profile
built here from the data the model was trained or validated on gives the monitor that reference (and
the schema and metric levels) from the first event.

The rows go through the same decoder as live events (:func:`monitor.io.tables.rows_to_events`), so
the profile sees the data as the stream will: the same types, nulls and contract rejections.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from monitor.config import MonitorConfig, load_config
from monitor.core.baseline import ANY_VERSION, PREDICTION_FIELD, BaselineProfile, ProfileBuilder
from monitor.core.decoders import PredictionDecoder
from monitor.errors import ProfileError
from monitor.io.tables import TableColumns, count_rows, detect_format, read_rows, rows_to_events

log = logging.getLogger("monitor.baseline")

CHUNK_ROWS = 10_000
DEFAULT_SAMPLE_SIZE = 20_000
_KAFKA_TIME = 0.0  # the decoder needs a message time; a profile has no use for event times


@dataclass
class BaselineBuild:
    """A built profile and what happened on the way: rows read, rows the decoder rejected and why."""

    profile: BaselineProfile
    path: str
    format: str
    rows: int
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # first rejection detail per reason
    skipped_segments: list[str] = field(default_factory=list)  # config segments the table does not have
    window_events: int = 1000  # significance.window_events: smaller references are not used by the monitor

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def build_baseline(path: str | Path, **options: Any) -> BaselineProfile:
    """The profile of one model version (``model_version="*"``: every version without its own profile).

    Takes the options of :func:`profile_table` (unset ones come from ``config``). Rejected rows are logged
    as a warning with their reasons; a :class:`ProfileError` is raised only when no row is left.
    """
    built = profile_table(path, **options)
    if built.rejected:
        log.warning("%s", _rejections(built))
    return built.profile


def profile_table(
    path: str | Path,
    *,
    model: str,
    model_version: str,
    columns: TableColumns,
    bins: int | None = None,
    segments: list[str] | tuple[str, ...] | None = None,
    max_segment_values: int | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    format: str | None = None,
    progress: bool = True,
    config: MonitorConfig | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress_file: IO[str] | None = None,
) -> BaselineBuild:
    """Read the table in chunks, decode each as stream events and profile the valid rows.

    Segments: ``segments`` if given, else ``columns.segments``, else ``config.monitoring.segments`` (of
    which the ones the table lacks are skipped: the config is shared with tables that have them).
    Features: unless ``columns.features`` names them, ``monitoring.features`` restricts and
    ``monitoring.ignore_features`` drops columns, so the profile's schema only lists fields the monitor
    watches (a listed field it never sees would read as missing in every window).
    """
    cfg = config if config is not None else load_config(environ={})
    p = Path(path)
    fmt = detect_format(p, format)
    chunks = read_rows(p, fmt, chunk_rows)  # checks the file and the format before any work
    explicit_segments = tuple(segments) if segments is not None else columns.segments
    config_segments = () if explicit_segments else tuple(cfg.monitoring.segments)
    bins = cfg.significance.bins if bins is None else bins
    max_segment_values = cfg.monitoring.max_segment_values if max_segment_values is None else max_segment_values
    if bins < 2:
        raise ProfileError(str(p), f"bins must be at least 2, got {bins}")
    if sample_size < bins:
        raise ProfileError(str(p), f"sample size must be at least the number of bins ({bins}), got {sample_size}")
    if max_segment_values < 1:
        raise ProfileError(str(p), f"max segment values must be at least 1, got {max_segment_values}")

    total = count_rows(p, fmt) if progress else None
    bar = tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        desc="baseline",
        file=progress_file or sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    rows = 0
    rejected: Counter[str] = Counter()
    examples: dict[str, str] = {}
    skipped: list[str] = []
    builder: ProfileBuilder | None = None
    decoder: PredictionDecoder | None = None
    with bar:
        for chunk in chunks:
            if builder is None or decoder is None:
                available: set[str] = set()
                for row in chunk:
                    available.update(row)
                columns, skipped = _resolve_columns(columns, explicit_segments, config_segments, cfg, available)
                columns.check(available, str(p))
                builder = ProfileBuilder(
                    model,
                    model_version,
                    bins=bins,
                    segments=columns.segments,
                    max_segment_values=max_segment_values,
                    sample_size=sample_size,
                    watch_prediction=columns.prediction is not None,
                    positive_label=cfg.performance.positive_label,
                    threshold=cfg.performance.threshold,
                )
                # Wide training tables exceed the stream's field cap; the profile should still see every column.
                decoder = PredictionDecoder(
                    cfg.monitoring.max_event_bytes, max(cfg.monitoring.max_fields, len(available) + 1)
                )
            events, labels = rows_to_events(chunk, columns, model=model, model_version=model_version, start_index=rows)
            batch, bad = decoder.decode(events, [_KAFKA_TIME] * len(events))
            for r in bad:
                rejected[r.reason] += 1
                examples.setdefault(r.reason, r.detail)
            if columns.prediction is None:
                # The contract's placeholder prediction 0 would read as a score of 0 and hide the score columns.
                batch.prediction = [None] * len(batch)
            if len(batch):
                # The decoder drops rejected rows; batch.index keeps each accepted row's position in the chunk.
                aligned = [labels[i] for i in batch.index.tolist()] if columns.label is not None else None
                builder.add(batch, aligned)
            rows += len(chunk)
            bar.update(len(chunk))
    if builder is None:
        raise ProfileError(str(p), "the table has no rows")
    if builder.events == 0:
        raise ProfileError(
            str(p),
            f"no valid rows to build a baseline from: all {rows:,} rows were rejected ({_reasons(rejected, examples)})",
        )
    return BaselineBuild(
        profile=builder.build(source=str(p)),
        path=str(p),
        format=fmt,
        rows=rows,
        rejected=rejected,
        examples=examples,
        skipped_segments=skipped,
        window_events=cfg.significance.window_events,
    )


def _resolve_columns(
    columns: TableColumns,
    explicit_segments: tuple[str, ...],
    config_segments: tuple[str, ...],
    cfg: MonitorConfig,
    available: set[str],
) -> tuple[TableColumns, list[str]]:
    """The columns with their segments and the config's feature selection filled in."""
    segments = explicit_segments or tuple(s for s in config_segments if s in available)
    skipped = [s for s in config_segments if s not in available]
    changes: dict[str, Any] = {}
    if segments != columns.segments:
        changes["segments"] = segments
    if not columns.features:
        mon = cfg.monitoring
        if mon.features:
            changes["features"] = tuple(f for f in mon.features if f in available and f not in columns.named())
        if mon.ignore_features:
            changes["ignore"] = (*columns.ignore, *(f for f in mon.ignore_features if f not in columns.ignore))
    return (dataclasses.replace(columns, **changes) if changes else columns), skipped


def _reasons(rejected: Counter[str], examples: dict[str, str]) -> str:
    return "; ".join(f"{reason} {n:,}, e.g. {examples[reason]}" for reason, n in rejected.most_common())


def _rejections(built: BaselineBuild) -> str:
    n = built.rejected_total
    return (
        f"{n:,} of {built.rows:,} rows of {built.path} were rejected and left out of the profile "
        f"({_reasons(built.rejected, built.examples)})"
    )


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def summary(built: BaselineBuild) -> str:
    """One paragraph: rows, rejections, features with their types, streams and metric levels."""
    p = built.profile
    version = (
        "every version without its own profile" if p.model_version == ANY_VERSION else f"version {p.model_version}"
    )
    rejected = (
        f"rejected {built.rejected_total:,} ({_reasons(built.rejected, built.examples)})"
        if built.rejected
        else "rejected none"
    )
    parts = [
        f"Model {p.model}, {version}: profiled {p.events:,} of {_plural(built.rows, 'row')} of {built.path} "
        f"({built.format}); {rejected}."
    ]
    features = [(name, f) for name, f in p.schema.items() if name != PREDICTION_FIELD]
    described = []
    for name, f in features:
        if f.type == "categorical":
            described.append(f"{name} categorical ({_plural(len(f.categories), 'category', 'categories')})")
        else:
            described.append(f"{name} numeric")
    parts.append(f"Features ({len(features)}): {', '.join(described) or 'none'}.")
    if PREDICTION_FIELD in p.schema:
        parts.append(f"Prediction: {p.schema[PREDICTION_FIELD].type}.")
    segmented = [k for k in p.streams if k[1]]
    attrs = Counter(k[1] for k in segmented)
    values = {a: len({k[2] for k in segmented if k[1] == a}) for a in attrs}
    seg_text = " (" + ", ".join(f"{a} with {_plural(v, 'value')}" for a, v in values.items()) + ")" if values else ""
    parts.append(
        f"Streams: {len(p.streams):,}, {len(p.streams) - len(segmented):,} of all traffic "
        f"and {len(segmented):,} per segment{seg_text}."
    )
    small = sum(1 for ref in p.streams.values() if ref.events < built.window_events)
    if small:
        parts.append(
            f"{_plural(small, 'stream')} with fewer than significance.window_events={built.window_events:,} values "
            "will learn their reference from live traffic instead."
        )
    if built.skipped_segments:
        parts.append(f"Config segments not in the table, skipped: {', '.join(built.skipped_segments)}.")
    if p.metrics:
        labelled = int(p.metrics.get("labelled_events", 0))
        levels = ", ".join(f"{k} {v:.4g}" for k, v in p.metrics.items() if k != "labelled_events")
        parts.append(f"Metric levels on {_plural(labelled, 'labelled row')}: {levels}.")
    else:
        parts.append("Metric levels: none (no label column, or labels and predictions that give no metric).")
    return " ".join(parts)
