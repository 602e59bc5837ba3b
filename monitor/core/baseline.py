"""Baseline profiles: what a model version's traffic looked like when it was trained or validated.

A profile holds the schema (types, absent / null / mistyped rates, ranges, categories), a reference
distribution per feature and segment (quantile bins with counts for numbers, category counts), the
prediction's distribution and the metric levels. ``monitor baseline`` builds one from a training or
validation file with :class:`ProfileBuilder`, which reads the same decoded batches as the live stream;
the monitor loads profiles at start and tests each window against them. Profiles are versioned JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.core.events import PredictionBatch
from monitor.core.float_columns import as_values
from monitor.core.label_reading import binary_label, binary_score
from monitor.core.metrics import binary_metrics, regression_metrics
from monitor.core.quality import FieldSchema, common_values, numeric_top_share
from monitor.core.significance import Reference
from monitor.core.stats import OVERFLOW
from monitor.errors import ProfileError

PROFILE_VERSION = 1
CALIBRATION_BINS = 100  # score bins of a profile's calibration counts
PREDICTION_FIELD = "prediction"  # the stream name of the model's output in a profile
ANY_VERSION = "*"


StreamKey = tuple[str, str, str]  # (feature, segment attribute, segment value); ("x", "", "") is all traffic


@dataclass
class StreamReference:
    """A stream's reference: numeric bins as a :class:`Reference`, or category counts by name."""

    kind: str
    numeric: Reference | None = None
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0  # values beyond the categories kept (the long tail), so shares stay true

    @property
    def events(self) -> int:
        return self.numeric.events if self.numeric is not None else sum(self.categories.values()) + self.other

    def to_plain(self) -> dict[str, Any]:
        if self.numeric is not None:
            return self.numeric.to_plain()
        return {"kind": "categorical", "categories": dict(self.categories), "other": self.other}

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> StreamReference:
        if data.get("kind") == "numeric":
            return cls("numeric", numeric=Reference.from_plain(data))
        if data.get("kind") == "categorical":
            return cls(
                "categorical",
                categories={str(k): int(v) for k, v in data["categories"].items()},
                other=int(data.get("other", 0)),
            )
        raise ValueError(f"kind must be numeric or categorical, got {data.get('kind')!r}")


@dataclass
class BaselineProfile:
    """One model version's reference profile (``model_version`` ``*`` applies to every version)."""

    model: str
    model_version: str
    events: int
    schema: dict[str, FieldSchema]
    streams: dict[StreamKey, StreamReference]
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: str = ""
    source: str = ""
    # binary models: labelled rows and positive labels per equal score bin, the reference of the estimate's
    # calibration ({"labelled": [...], "positive": [...]}; empty without labels)
    calibration: dict[str, list[float]] = field(default_factory=dict)

    def to_plain(self) -> dict[str, Any]:
        return {
            "profile_version": PROFILE_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "source": self.source,
            "events": self.events,
            "schema": {name: f.to_plain() for name, f in self.schema.items()},
            "streams": [
                {"feature": k[0], "segment": {k[1]: k[2]} if k[1] else {}, **ref.to_plain()}
                for k, ref in self.streams.items()
            ],
            "metrics": dict(self.metrics),
            "calibration": {k: list(v) for k, v in self.calibration.items()},
        }

    @classmethod
    def from_plain(cls, data: Any, where: str = "<data>") -> BaselineProfile:
        if not isinstance(data, dict):
            raise ProfileError(where, "expected a JSON object")
        version = data.get("profile_version")
        if version != PROFILE_VERSION:
            raise ProfileError(
                f"{where}: profile_version", f"{version!r} is not supported (expected {PROFILE_VERSION})"
            )
        for name in ("model", "model_version"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ProfileError(f"{where}: {name}", "must be a non-empty string")
        schema: dict[str, FieldSchema] = {}
        for name, item in (data.get("schema") or {}).items():
            try:
                schema[str(name)] = FieldSchema.from_plain(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise ProfileError(f"{where}: schema.{name}", str(exc)) from None
        streams: dict[StreamKey, StreamReference] = {}
        for i, item in enumerate(data.get("streams") or []):
            try:
                segment = item.get("segment") or {}
                if len(segment) > 1:
                    raise ValueError("a stream's segment has at most one attribute")
                attr, value = next(iter(segment.items())) if segment else ("", "")
                streams[str(item["feature"]), str(attr), str(value)] = StreamReference.from_plain(item)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ProfileError(f"{where}: streams[{i}]", str(exc) or type(exc).__name__) from None
        return cls(
            model=data["model"],
            model_version=data["model_version"],
            events=int(data.get("events", 0)),
            schema=schema,
            streams=streams,
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            created_at=str(data.get("created_at", "")),
            source=str(data.get("source", "")),
            calibration=_calibration(data.get("calibration"), where),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_plain(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))

    @classmethod
    def load(cls, path: str | Path) -> BaselineProfile:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ProfileError(str(path), f"cannot read: {exc.strerror}") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProfileError(str(path), f"not valid JSON: {exc}") from None
        return cls.from_plain(data, str(path))


def _calibration(data: Any, where: str) -> dict[str, list[float]]:
    """A profile's calibration counts: two equal-length lists of non-negative numbers, or nothing."""
    if not data:
        return {}
    try:
        labelled = [float(v) for v in data["labelled"]]
        positive = [float(v) for v in data["positive"]]
    except (KeyError, TypeError, ValueError):
        raise ProfileError(f"{where}: calibration", "expected lists 'labelled' and 'positive' of numbers") from None
    if len(labelled) != len(positive) or not all(math.isfinite(v) and v >= 0 for v in labelled + positive):
        raise ProfileError(f"{where}: calibration", "'labelled' and 'positive' must be equal-length counts")
    if not sum(labelled) > 0 or any(p > n for p, n in zip(positive, labelled, strict=True)):
        raise ProfileError(f"{where}: calibration", "needs labelled rows, and no bin with more positives than rows")
    return {"labelled": labelled, "positive": positive}


class ProfileSet:
    """Profiles by (model, version), with ``*`` profiles as the fallback for a model's other versions."""

    def __init__(self, profiles: Sequence[BaselineProfile] = ()) -> None:
        self._by_key: dict[tuple[str, str], BaselineProfile] = {}
        for p in profiles:
            key = (p.model, p.model_version)
            if key in self._by_key:
                raise ProfileError(f"{p.model}/{p.model_version}", "two profiles for the same model version")
            self._by_key[key] = p

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> ProfileSet:
        return cls([BaselineProfile.load(p) for p in paths])

    def get(self, model: str, version: str) -> BaselineProfile | None:
        return self._by_key.get((model, version)) or self._by_key.get((model, ANY_VERSION))

    def __len__(self) -> int:
        return len(self._by_key)


class _FieldStats:
    """Counts of one field over the baseline data (types, nulls, range) and its per-stream samples."""

    def __init__(self) -> None:
        self.kind = ""
        self.absent = 0
        self.null = 0
        self.mismatch = 0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.categories: Counter[str] = Counter()


class ProfileBuilder:
    """Builds a :class:`BaselineProfile` from decoded batches of a training or validation set.

    Numbers keep a uniform sample of at most ``sample_size`` values per stream (reservoir), from which
    the quantile bins and their counts come, so memory stays fixed however large the file is; the
    tests then treat the reference as a sample of that size, which is what it is.

    >>> from monitor.core.decoders import PredictionDecoder
    >>> rows = [orjson.dumps({"prediction_id": str(i), "model": "m", "model_version": "v1",
    ...     "features": {"x": float(i % 10), "c": "ab"[i % 2]}, "prediction": (i % 10) / 10,
    ...     "segments": {"country": "DE"}}) for i in range(1000)]
    >>> batch, _ = PredictionDecoder().decode(rows, [0.0] * 1000)
    >>> b = ProfileBuilder("m", "v1", bins=5, segments=["country"])
    >>> b.add(batch)
    >>> p = b.build()
    >>> (p.schema["x"].type, p.schema["c"].categories, p.streams["x", "", ""].numeric.counts.tolist())
    ('numeric', ['a', 'b'], [200, 200, 200, 200, 200])
    >>> sorted(k for k in p.streams if k[1])
    [('c', 'country', 'DE'), ('prediction', 'country', 'DE'), ('x', 'country', 'DE')]
    """

    def __init__(
        self,
        model: str,
        model_version: str,
        *,
        bins: int = 10,
        segments: Sequence[str] = (),
        max_segment_values: int = 50,
        sample_size: int = 20_000,
        max_categories: int = 1000,
        watch_prediction: bool = True,
        positive_label: str = "1",
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.model_version = model_version
        self.bins = bins
        self.segments = list(segments)
        self.max_segment_values = max_segment_values
        self.sample_size = sample_size
        self.max_categories = max_categories
        self.watch_prediction = watch_prediction
        self.positive_label = positive_label
        self.threshold = threshold
        self.rng = np.random.default_rng(seed)
        self.events = 0
        self.fields: dict[str, _FieldStats] = {}
        self.samples: dict[StreamKey, tuple[np.ndarray, int]] = {}  # sample, values seen
        self.category_counts: dict[StreamKey, Counter[str]] = {}
        self.segment_values: dict[str, set[str]] = {a: set() for a in self.segments}
        self.max_labelled = 200_000
        self.labelled: list[tuple[Any, tuple[Any, Any]]] = []
        self.labelled_seen = 0
        self.calibration_labelled = np.zeros(CALIBRATION_BINS)  # binary rows per score bin, all of them
        self.calibration_positive = np.zeros(CALIBRATION_BINS)
        self.other: Counter[tuple[str, ...]] = Counter()
        self.capped = Counter[str]()

    def add(self, batch: PredictionBatch, labels: Sequence[Any] | None = None) -> None:
        """Add a decoded batch (and, if known, each row's label for the metric levels)."""
        n = len(batch)
        self.events += n
        buckets = self._buckets(batch, n)
        columns = {name: as_values(values) for name, values in batch.features.items()}
        if self.watch_prediction:
            columns[PREDICTION_FIELD] = list(batch.prediction)
        for name, values in columns.items():
            st = self.fields.get(name)
            if st is None:
                first = next((v for v in values if v is not None), None)
                if first is None:
                    continue
                st = self.fields[name] = _FieldStats()
                st.kind = "categorical" if isinstance(first, str | bool) else "numeric"
            nulls = batch.nulls.get(name, []) if name != PREDICTION_FIELD else []
            missing = values.count(None)
            st.null += len(nulls)
            st.absent += missing - len(nulls)
            if st.kind == "numeric":
                column = np.array([v if type(v) in (int, float) else math.nan for v in values], dtype=np.float64)
                st.mismatch += int(np.count_nonzero(np.isnan(column))) - missing
                present = column[~np.isnan(column)]
                if present.size:
                    st.minimum = min(st.minimum, float(present.min()))
                    st.maximum = max(st.maximum, float(present.max()))
                for bucket, rows in buckets:
                    part = column if rows is None else column[rows]
                    self._sample((name, *bucket), part[~np.isnan(part)])
            else:
                names = [
                    None if v is None else ("true" if v else "false") if isinstance(v, bool) else v for v in values
                ]
                st.mismatch += sum(1 for v in names if v is not None and not isinstance(v, str))
                texts = [v if isinstance(v, str) else None for v in names]
                self._count(st.categories, ("", name), texts)
                for bucket, rows in buckets:
                    part = texts if rows is None else [texts[i] for i in rows.tolist()]
                    self._count(self.category_counts.setdefault((name, *bucket), Counter()), (name, *bucket), part)
        if labels is not None:
            for pair in zip(labels, zip(batch.prediction, batch.scores or [None] * n, strict=True), strict=True):
                self._keep_labelled(pair)
        for name in set(self.fields) - set(columns):
            self.fields[name].absent += n

    def _count(self, counts: Counter[str], key: tuple[str, ...], values: list[str | None]) -> None:
        """Category counts with at most ``10 * max_categories`` distinct names; later new names go to ``other``."""
        present = [v for v in values if v is not None]
        cap = 10 * self.max_categories
        if len(counts) < cap:
            counts.update(present)
            return
        known = [v for v in present if v in counts]
        counts.update(known)
        self.other[key] += len(present) - len(known)

    def _keep_labelled(self, pair: tuple[Any, tuple[Any, Any]]) -> None:
        """A uniform sample of at most ``max_labelled`` (label, prediction) pairs for the metric levels."""
        if pair[0] is None:
            return
        y, score = binary_label(pair[0], self.positive_label), binary_score(*pair[1], self.positive_label)
        if y is not None and score is not None and score == score:
            k = min(max(int(score * CALIBRATION_BINS), 0), CALIBRATION_BINS - 1)
            self.calibration_labelled[k] += 1
            self.calibration_positive[k] += y
        self.labelled_seen += 1
        if len(self.labelled) < self.max_labelled:
            self.labelled.append(pair)
            return
        slot = int(self.rng.integers(0, self.labelled_seen))
        if slot < self.max_labelled:
            self.labelled[slot] = pair

    def _buckets(self, batch: PredictionBatch, n: int) -> list[tuple[tuple[str, str], np.ndarray | None]]:
        out: list[tuple[tuple[str, str], np.ndarray | None]] = [(("", ""), None)]
        for attr in self.segments:
            column = batch.segments.get(attr)
            if column is None:
                continue
            groups: dict[str, list[int]] = {}
            for i, v in enumerate(column):
                if v is not None:
                    groups.setdefault(v, []).append(i)
            for value, rows in groups.items():
                seen = self.segment_values[attr]
                if value == OVERFLOW:  # the overflow bucket's name: the live streams' overflow, never a named value
                    self.capped["segment_value"] += len(rows)
                    continue
                if value not in seen:
                    if len(seen) >= self.max_segment_values:
                        self.capped["segment_value"] += len(rows)
                        continue
                    seen.add(value)
                out.append(((attr, value), np.asarray(rows)))
        return out

    def _sample(self, key: StreamKey, values: np.ndarray) -> None:
        """Reservoir sampling (algorithm R, vectorised per batch)."""
        if values.size == 0:
            return
        sample, seen = self.samples.get(key, (np.empty(0), 0))
        room = self.sample_size - sample.size
        if room > 0:
            sample = np.concatenate([sample, values[:room]])
            seen += min(room, values.size)
            values = values[room:]
        if values.size:
            positions = seen + np.arange(values.size)
            slots = (self.rng.random(values.size) * (positions + 1)).astype(np.int64)
            keep = slots < self.sample_size
            sample = sample.copy()
            for slot, v in zip(slots[keep].tolist(), values[keep].tolist(), strict=True):
                sample[slot] = v
            seen += values.size
        self.samples[key] = (sample, seen)

    def build(self, source: str = "") -> BaselineProfile:
        if self.events == 0:
            raise ProfileError(source or "<input>", "no valid rows to build a baseline from")
        m = self.events
        schema: dict[str, FieldSchema] = {}
        for name, st in self.fields.items():
            top = st.categories.most_common(self.max_categories)
            # (the constant-value check's shares, from the all-traffic sample, as a schema learned live has them)
            common = common_values(self.samples.get((name, "", ""), (None, 0))[0]) if st.kind == "numeric" else []
            total = sum(st.categories.values()) + self.other["", name]
            schema[name] = FieldSchema(
                type=st.kind,
                events=m,
                absent_rate=st.absent / m,
                null_rate=st.null / m,
                mismatch_rate=st.mismatch / m,
                minimum=st.minimum if st.minimum <= st.maximum else math.nan,
                maximum=st.maximum if st.minimum <= st.maximum else math.nan,
                categories=sorted(c for c, _ in top),
                top_share=(top[0][1] / total if total else 1.0)
                if st.kind == "categorical"
                else numeric_top_share(common, st.minimum, st.maximum),
                unseen_rate=(total - sum(n for _, n in top)) / m if st.kind == "categorical" else 0.0,
                common=common,
            )
        streams: dict[StreamKey, StreamReference] = {}
        for key, (sample, _) in sorted(self.samples.items()):
            streams[key] = StreamReference("numeric", numeric=Reference.numeric(sample, self.bins))
        for key, counts in sorted(self.category_counts.items()):
            if counts:
                kept = dict(counts.most_common(self.max_categories))
                tail = sum(counts.values()) - sum(kept.values()) + self.other[key]
                streams[key] = StreamReference("categorical", categories=kept, other=tail)
        return BaselineProfile(
            model=self.model,
            model_version=self.model_version,
            events=m,
            schema=schema,
            streams=streams,
            metrics=self._metrics(),
            calibration={"labelled": self.calibration_labelled.tolist(), "positive": self.calibration_positive.tolist()}
            if self.calibration_labelled.any()
            else {},
            created_at=datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            source=source,
        )

    def _metrics(self) -> dict[str, float]:
        """Metric levels on the labelled rows: binary when labels and predictions read as 0/1 and scores."""
        pairs = self.labelled
        if not pairs:
            return {}
        ys = [binary_label(y, self.positive_label) for y, _ in pairs]
        scores = [binary_score(p, sc, self.positive_label) for _, (p, sc) in pairs]
        if all(v is not None for v in ys) and all(v is not None for v in scores):
            y = np.array(ys, dtype=np.float64)
            s = np.array(scores, dtype=np.float64)
            out = binary_metrics(y, s, self.threshold)
        else:
            try:
                y = np.array([float(v) for v, _ in pairs])
                s = np.array([float(p) for _, (p, _) in pairs])
            except (TypeError, ValueError):
                return {}
            out = regression_metrics(y, s)
        result = {k: float(v) for k, v in out.items() if v == v}
        result["labelled_events"] = float(len(pairs))
        return result
