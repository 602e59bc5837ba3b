"""Schema and data-quality checks of one model version against its baseline schema.

Upstream breaks (a field dropped or renamed, numbers sent as strings, a join that starts returning
nulls, a unit change, a new category, a sensor stuck at one value) hurt a model long before its
accuracy visibly falls. Every window of at least ``window_events`` predictions is checked, per field,
against the schema of the baseline profile, or, without a profile, the schema learned from the first
``baseline_events`` predictions. A rate check fires when the rate rose by at least ``min_rate_change``
over the baseline's *and* a one-sided binomial test against the baseline rate gives a p-value below
``max_p_value``; the checks only count, so the stream and every other check go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import special

from monitor.core.quality_tally import BatchTally, UnseenTables, allowed_range, text_value

MODE_SAMPLE = 1000  # values of a numeric field kept while its schema is learned (FieldCounts.sample)
COMMON_VALUES = 8  # most common values a numeric field's schema keeps with their shares (FieldSchema.common)

# check name -> alert kind, in priority order: the first firing check of a field names its alert
_NUMBER_TYPES = frozenset({float, int, type(None)})
_CATEGORY_TYPES = frozenset({str, bool, type(None)})

CHECKS = {
    "missing_field": "schema",
    "new_field": "schema",
    "type_change": "schema",
    "null_rate": "data_quality",
    "out_of_range": "data_quality",
    "unseen_category": "data_quality",
    "constant": "data_quality",
}


@dataclass
class FieldSchema:
    """What the baseline says about one field: type, how often it is absent, null or mistyped, its range."""

    type: str  # numeric | categorical
    events: int = 0
    absent_rate: float = 0.0
    null_rate: float = 0.0
    mismatch_rate: float = 0.0
    minimum: float = math.nan
    maximum: float = math.nan
    categories: list[str] = field(default_factory=list)
    top_share: float = 1.0  # largest share of one value (a category, or a number while the schema was learned)
    unseen_rate: float = 0.0  # share of values outside ``categories`` (a long tail the baseline did not list)
    # a numeric field's most common values while learned and their shares, at most COMMON_VALUES, most common
    # first (empty: not known); the constant-value check reads how likely a window of one of them is
    common: list[tuple[float, float]] = field(default_factory=list)
    # Learned with a long tail beyond the vocabulary (``monitoring.max_categories``; OPEN_ENDED_SHARE of its values
    # or more): its list is the first values that came, not the common ones, and its share outside them while
    # learned is no base rate (the list filled while it was counted). Values outside it are routine for such a
    # field (ids, merchants): no unseen-category check; its mix is still tested for drift, where a new value shows
    # in the overflow's share.
    open_ended: bool = False

    @property
    def checks_unseen(self) -> bool:
        """Whether values outside its categories are a finding (a categorical field with a closed list)."""
        return self.type == "categorical" and bool(self.categories) and not self.open_ended

    @property
    def varies(self) -> bool:
        if self.type == "numeric":
            return self.minimum < self.maximum
        return len(self.categories) >= 2 and self.top_share <= 0.95

    def to_plain(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "events": self.events,
            "absent_rate": self.absent_rate,
            "null_rate": self.null_rate,
            "mismatch_rate": self.mismatch_rate,
            "min": None if self.minimum != self.minimum else self.minimum,
            "max": None if self.maximum != self.maximum else self.maximum,
            "categories": list(self.categories),
            "top_share": self.top_share,
            "unseen_rate": self.unseen_rate,
            "common": [[value, share] for value, share in self.common],
            **({"open_ended": True} if self.open_ended else {}),
        }

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> FieldSchema:
        if data.get("type") not in ("numeric", "categorical"):
            raise ValueError(f"field type must be numeric or categorical, got {data.get('type')!r}")
        lo, hi = data.get("min"), data.get("max")
        return cls(
            type=data["type"],
            events=int(data.get("events", 0)),
            absent_rate=float(data.get("absent_rate", 0.0)),
            null_rate=float(data.get("null_rate", 0.0)),
            mismatch_rate=float(data.get("mismatch_rate", 0.0)),
            minimum=math.nan if lo is None else float(lo),
            maximum=math.nan if hi is None else float(hi),
            categories=[str(c) for c in data.get("categories", [])],
            top_share=float(data.get("top_share", 1.0)),
            unseen_rate=float(data.get("unseen_rate", 0.0)),
            common=[(float(value), float(share)) for value, share in data.get("common", [])],
            open_ended=bool(data.get("open_ended", False)),
        )


@dataclass
class FieldCounts:
    """One field's counts over the current window (or over the warm-up that becomes the schema)."""

    absent: int = 0
    null: int = 0
    mismatch: int = 0
    present: int = 0
    out_of_range: int = 0
    unseen: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    first_unseen: str = ""
    other: int = 0  # values in the vocabulary's overflow code
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # a numeric field's first values while its schema is learned (MODE_SAMPLE at most): how often its most
    # common value comes, for the constant-value check's p-value (None: an older release's counts)
    sample: np.ndarray | None = None

    def take_sample(self, present: np.ndarray) -> None:
        """Keep a learning field's values up to :data:`MODE_SAMPLE` (see :attr:`sample`)."""
        kept = self.sample if self.sample is not None else np.empty(0)
        if kept.size < MODE_SAMPLE and present.size:
            self.sample = np.concatenate([kept, present[: MODE_SAMPLE - kept.size]])


@dataclass
class QualityFinding:
    """The state of one check of one field at the end of a window."""

    feature: str
    check: str
    kind: str
    fire: bool
    clear: bool
    statistic: float
    threshold: float
    p_value: float | None
    baseline: dict[str, Any]
    current: dict[str, Any]
    events: int
    seq: int
    start_time: float
    end_time: float


def common_values(sample: np.ndarray | None) -> list[tuple[float, float]]:
    """A numeric field's :data:`COMMON_VALUES` most common values in ``sample``, with their shares, most common
    first (empty without a sample): :attr:`FieldSchema.common`, learned live or by ``monitor baseline``."""
    if sample is None or not len(sample):
        return []
    values, counts = np.unique(np.asarray(sample, dtype=np.float64), return_counts=True)
    top = np.argsort(-counts, kind="stable")[:COMMON_VALUES]
    return [(float(values[i]), float(counts[i] / counts.sum())) for i in top]


def numeric_top_share(common: list[tuple[float, float]], minimum: float, maximum: float) -> float:
    """A numeric field's largest share of one value: its most common value's, or without a sample (an older
    release's counts) 0 when it varied, so any window of one value counts as a break (as it did), else 1."""
    return common[0][1] if common else (0.0 if minimum < maximum else 1.0)


# A categorical field learned with at least this share of its values beyond the vocabulary is open-ended
# (FieldSchema.open_ended): a long tail. Below it (one rare value past the 20th), its share outside the list is a
# fair base rate and the unseen-category check stays.
OPEN_ENDED_SHARE = 0.05
# Windows a new field's share may keep moving before it is adopted all the same (a field sent now and then)
ADOPT_AFTER_WINDOWS = 5


def steady_share(before: float, share: float, n: int, tolerance: float) -> bool:
    """Two windows of ``n`` events hold a field in about the same share: they differ by less than
    ``tolerance`` or than three standard errors of the difference (small windows vary more)."""
    mean = 0.5 * (before + share)
    return abs(share - before) <= max(tolerance, 3.0 * math.sqrt(mean * (1.0 - mean) * 2.0 / max(1, n)))


def outside_share(f: FieldSchema) -> float:
    """The share of new values expected outside the range of the schema's values when nothing changed: of
    ``n`` values and one more, each is the smallest or the largest with chance 2 / (n + 1). A range learned
    from a handful of values (a field that was absent most of its baseline) is exceeded often."""
    present = f.events * max(0.0, 1.0 - f.absent_rate - f.null_rate - f.mismatch_rate)
    return min(1.0, 2.0 / (present + 1.0))


def _rate_p(count: int, n: int, base_rate: float, base_events: int) -> float:
    """One-sided binomial p-value of ``count`` in ``n`` when the baseline rate holds (floored at 1/(m+1))."""
    p0 = min(1.0, max(base_rate, 1.0 / (base_events + 1)))
    if count <= 0:
        return 1.0
    return float(special.bdtrc(count - 1, n, p0))  # binom.sf without scipy.stats' per-call overhead


class SchemaWatch:
    """Windowed schema and data-quality counts of one model version, and their checks.

    The engine feeds every batch: :meth:`observe` for each field present in it, then :meth:`end_batch`
    with the batch size, which accounts the absent fields and, once a window is complete, returns one
    finding per (field, check) so the alert lifecycle can fire and resolve.
    """

    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("_unseen_tables",)
    _unseen_tables: UnseenTables  # a cache, made on first use (:meth:`unseen_tables`)

    def __init__(
        self,
        *,
        window_events: int,
        baseline_events: int,
        min_rate_change: float,
        max_p_value: float,
        range_tolerance: float,
        max_fields: int,
        schema: dict[str, FieldSchema] | None = None,
    ) -> None:
        self.window_events = window_events
        self.baseline_events = baseline_events
        self.min_rate_change = min_rate_change
        self.max_p_value = max_p_value
        self.range_tolerance = range_tolerance
        self.max_fields = max_fields
        self.schema = schema  # None until learned (or loaded from a profile)
        self.from_profile = schema is not None
        self.counts: dict[str, FieldCounts] = {}
        self.events = 0  # in the current window (or warm-up)
        self.seq = 0  # events seen by the watch in all
        self.window_start = math.nan
        self.windows = 0
        self.capped = 0
        # new fields reported, not adopted yet: their last window's share, and windows since they were reported
        self.announced: dict[str, tuple[float, int]] = {}
        # fields adopted while fields of the schema were missing (a rename: amount goes, amount_usd comes), and
        # those fields: once they are back and it is gone again, the rename was reverted, and its going is no
        # break (its missing-field and null checks do not fire); a field adopted otherwise is checked as any
        self.adopted: dict[str, list[str]] = {}

    # ------------------------------------------------------------- feeding
    def unseen_tables(self) -> UnseenTables:
        """Per field, which of its category codes name no category of the schema, kept across batches (a batch's
        tally works them out again only when the schema's categories or the field's codes changed)."""
        tables: UnseenTables | None = self.__dict__.get("_unseen_tables")
        if tables is None:
            tables = self._unseen_tables = {}
        return tables

    def keep_only(self, owns: Callable[[str], bool]) -> None:
        """Forget the fields ``owns`` rejects (another detection shard checks them; see monitor.core.shards):
        a field that is never fed here would otherwise count as missing from every event."""
        if self.schema is not None and not all(owns(name) for name in self.schema):
            self.schema = {name: f for name, f in self.schema.items() if owns(name)}
        if not all(owns(name) for name in self.counts):
            self.counts = {name: c for name, c in self.counts.items() if owns(name)}

    def room(self) -> int:
        """Events still needed to complete the warm-up or the current window (at least 1)."""
        target = self.baseline_events if self.schema is None else self.window_events
        return max(1, target - self.events)

    def _counts(self, name: str) -> FieldCounts | None:
        c = self.counts.get(name)
        if c is None:
            known = self.schema is not None and name in self.schema
            if not known and len(self.counts) >= self.max_fields:
                self.capped += 1
                return None
            c = self.counts[name] = FieldCounts()
        return c

    def expected_type(self, name: str) -> str | None:
        if self.schema is None:
            return None
        f = self.schema.get(name)
        return None if f is None else f.type

    def window_stops(self, n: int) -> list[int]:
        """Where the windows of a batch of ``n`` events end: the first completes the warm-up or the current
        window, the others are whole windows, the last may be left open."""
        stops: list[int] = []
        stop = min(n, self.room())
        while stop > (stops[-1] if stops else 0):
            stops.append(stop)
            stop = min(n, stop + max(1, self.window_events))
        return stops

    def observe_window(self, tally: BatchTally, k: int) -> None:
        """Window ``k`` of a batch: every field's counts, as :meth:`observe` of each field's values would add them."""
        schema = self.schema
        tolerance = self.range_tolerance
        if schema is not None:
            tally.count_outside(schema, tolerance)
        for name, t in tally.fields.items():
            c = self._counts(name)
            if c is not None:
                t.add(c, k, schema.get(name) if schema is not None else None, tolerance)

    def quiet_windows(self, tally: BatchTally, is_open: Callable[[str, str], bool]) -> list[bool]:
        """Which windows of a batch would end without a finding, so :meth:`skip_window` can stand for
        :meth:`observe_window` and :meth:`end_batch`: whole windows, every field known to the schema and quiet
        (by :meth:`_quiet`'s tests on the tally), no field with an open alert. A window counts only what the
        batch holds of it: the caller asks only for windows that start with no counts."""
        schema = self.schema
        windows = len(tally.stops)
        if schema is None or self.__dict__.get("announced") or any(name not in schema for name in tally.fields):
            return [False] * windows  # warm-up, or a new field to report, adopt (or cap)
        if any(is_open("schema", name) or is_open("data_quality", name) for name in schema):
            return [False] * windows
        size = self.window_events
        quiet = tally.sizes == size
        rise, need = self.min_rate_change, max(50, self.window_events // 2)
        table = tally.numeric
        if table is not None:
            quiet &= table.quiet(tally.numeric_names, schema, tally.sizes, rise, need, self.range_tolerance).all(axis=0)
        for name, f in schema.items():
            t = tally.fields.get(name)
            if t is not None:
                if table is None or t.kind != "numeric":
                    quiet &= t.quiet(f, tally.sizes, rise, need, self.range_tolerance)
            elif not self._quiet(FieldCounts(absent=size), f, size):  # not in the batch: absent throughout
                return [False] * windows
        return quiet.tolist()

    def skip_window(self, n: int, start_time: float) -> None:
        """A window :meth:`quiet_windows` found quiet: counted, closed and reset as :meth:`end_batch` would."""
        assert self.schema is not None and self.events == 0 and n == self.window_events
        self.window_start = start_time
        self.seq += n
        self.windows += 1

    def observe(
        self,
        name: str,
        values: list[Any],
        explicit_nulls: int,
        kind: str,
        column: np.ndarray,
        overflow: int | None = None,
    ) -> None:
        """One field's values in the batch (``None`` where absent or null), as converted by the engine.

        The reference that :meth:`observe_window` must match (tests compare the two): it walks the values.

        ``overflow`` is the category code shared by values beyond the vocabulary's capacity: it names no
        single value, so it neither makes a field constant nor decides whether a value is new (names do).
        """
        c = self._counts(name)
        if c is None:
            return
        n = len(values)
        missing = values.count(None)
        c.null += explicit_nulls
        c.absent += missing - explicit_nulls
        types = set(map(type, values))  # one C-level pass; the per-value loops below run only on a mix
        if kind == "numeric":
            mismatch = 0 if types <= _NUMBER_TYPES else sum(1 for v in values if isinstance(v, str | bool))
        elif types <= _CATEGORY_TYPES:
            mismatch = 0
        else:
            mismatch = sum(1 for v in values if isinstance(v, int | float) and not isinstance(v, bool))
        c.mismatch += mismatch
        c.present += n - missing - mismatch
        schema = self.schema.get(name) if self.schema is not None else None
        if kind == "numeric":
            present = column[~np.isnan(column)]
            if present.size:
                c.minimum = min(c.minimum, float(present.min()))
                c.maximum = max(c.maximum, float(present.max()))
                allowed = allowed_range(schema, self.range_tolerance)
                if allowed is not None:
                    lo, hi = allowed
                    c.out_of_range += int(np.count_nonzero((present < lo) | (present > hi)))
                if schema is None:  # its schema is being learned
                    c.take_sample(present)
        else:
            codes = column[column >= 0]
            if overflow is not None:
                c.other += int(np.count_nonzero(codes == overflow))
                codes = codes[codes != overflow]
            if codes.size:
                counts = np.bincount(codes)
                if counts.size > c.codes.size:  # rare: a code the field has not had before
                    c.codes = np.concatenate([c.codes, np.zeros(counts.size - c.codes.size, dtype=c.codes.dtype)])
                c.codes[: counts.size] += counts
            if schema is not None and schema.checks_unseen:
                # texts before the set: in ``set(values)`` a 0 or 1 would hide a False or True (equal hashes)
                texts = list(map(text_value, values))
                new = {v for v in set(texts) if isinstance(v, str)} - set(schema.categories)
                if new:
                    unseen = [t for t in texts if t in new]
                    c.unseen += len(unseen)
                    if not c.first_unseen:
                        c.first_unseen = unseen[0]

    def end_batch(
        self,
        n: int,
        start_time: float,
        end_time: float,
        kinds: dict[str, str],
        labels: dict[str, list[str]],
        is_open: Callable[[str, str], bool] | None = None,
    ) -> list[QualityFinding]:
        """Close the batch: fields not in it were absent; a full window yields the findings."""
        if self.events == 0:
            self.window_start = start_time
        self.events += n
        self.seq += n
        if self.schema is not None:
            for name in self.schema:
                c = self._counts(name)
                if c is not None:
                    seen = c.absent + c.null + c.mismatch + c.present
                    c.absent += max(0, (self.events - seen))
        if self.schema is None:
            if self.events >= self.baseline_events:
                self.schema = self._learn(kinds, labels)
                self._reset()
            return []
        if self.events < self.window_events:
            return []
        findings = self._check(end_time, kinds, labels, is_open)
        self.windows += 1
        self._reset()
        return findings

    def _reset(self) -> None:
        self.counts = {}
        self.events = 0

    def _learn(self, kinds: dict[str, str], labels: dict[str, list[str]]) -> dict[str, FieldSchema]:
        """The warm-up's counts become the schema (fields absent from most of it are left out)."""
        schema: dict[str, FieldSchema] = {}
        m = self.events
        for name, c in self.counts.items():
            seen = c.absent + c.null + c.mismatch + c.present
            c.absent += m - seen
            kind = kinds.get(name)
            if kind is None:
                continue
            schema[name] = self._field_schema(c, kind, labels.get(name), m)  # optional fields too, with their rate
        return schema

    @staticmethod
    def _field_schema(c: FieldCounts, kind: str, names: list[str] | None, m: int) -> FieldSchema:
        common = common_values(c.sample) if kind == "numeric" else []
        if kind == "categorical":
            top = float(c.codes.max() / c.codes.sum()) if c.codes.sum() else 1.0
        else:
            top = numeric_top_share(common, c.minimum, c.maximum)
        return FieldSchema(
            type=kind,
            events=m,
            absent_rate=min(1.0, c.absent / m),
            null_rate=c.null / m,
            mismatch_rate=c.mismatch / m,
            minimum=c.minimum if c.present and kind == "numeric" else math.nan,
            maximum=c.maximum if c.present and kind == "numeric" else math.nan,
            categories=[names[i] for i in np.flatnonzero(c.codes).tolist() if i < len(names)] if names else [],
            top_share=top,
            common=common,
            unseen_rate=c.other / m if kind == "categorical" else 0.0,
            open_ended=kind == "categorical" and c.other >= OPEN_ENDED_SHARE * m,
        )

    # ------------------------------------------------------------- checks
    def _rate(
        self, name: str, check: str, count: int, base_rate: float, f: FieldSchema, end_time: float, **cur: Any
    ) -> QualityFinding:
        n = self.events
        rate = count / n
        change = rate - base_rate
        # The p-value matters only when the rise is large enough to fire: skip it (p = 1) otherwise.
        p = _rate_p(count, n, base_rate, f.events) if change >= self.min_rate_change else 1.0
        fire = change >= self.min_rate_change and p < self.max_p_value
        return self._finding(
            name,
            check,
            fire=fire,
            clear=change < self.min_rate_change / 2,
            statistic=rate,
            threshold=base_rate + self.min_rate_change,
            p_value=p,
            baseline={"rate": base_rate, "events": f.events},
            current={"rate": rate, "count": count, **cur},
            end_time=end_time,
        )

    def _finding(self, name: str, check: str, **kw: Any) -> QualityFinding:
        end_time = kw.pop("end_time")
        return QualityFinding(
            feature=name,
            check=check,
            kind=CHECKS[check],
            events=self.events,
            seq=self.seq,
            start_time=self.window_start,
            end_time=end_time,
            **kw,
        )

    def _missing(self, c: FieldCounts | None, f: FieldSchema, n: int) -> bool:
        """Whether a field of the schema is missing from the window more than before (by the rise alone)."""
        return c is None or c.absent / n - (f.absent_rate + f.null_rate) >= self.min_rate_change

    def _reverted(self, name: str, c: FieldCounts, n: int) -> bool:
        """A field adopted in place of missing ones (a rename) is absent where they are back: the rename was
        reverted (in the window that straddles the revert too, where each is in part of the events)."""
        replaced = self.__dict__.get("adopted", {}).get(name)  # (absent from an older release's snapshot)
        if not replaced or c.absent == 0:
            return False
        back = sum(r.present + r.mismatch + r.null for r in map(self.counts.get, replaced) if r is not None)
        return back >= c.absent - self.min_rate_change * n

    def _quiet(self, c: FieldCounts, f: FieldSchema, n: int | None = None) -> bool:
        """No check of this field can fire in this window (a cheap test before building the findings)."""
        n, rise = self.events if n is None else n, self.min_rate_change
        if self._missing(c, f, n) or c.mismatch / n - f.mismatch_rate >= rise:
            return False
        if (c.absent + c.null) / n - (f.absent_rate + f.null_rate) >= rise:
            return False
        if c.out_of_range / n >= rise or c.unseen / n - f.unseen_rate >= rise:
            return False
        need = max(50, self.window_events // 2)
        if f.type == "numeric":
            return not (c.present >= need and c.minimum == c.maximum)
        return not (int(c.codes.sum()) >= need and int(np.count_nonzero(c.codes)) == 1 and c.other == 0)

    def _check(
        self,
        end_time: float,
        kinds: dict[str, str],
        labels: dict[str, list[str]],
        is_open: Callable[[str, str], bool] | None = None,
    ) -> list[QualityFinding]:
        """Every check of every field; ``is_open(kind, field)`` lets quiet fields with no open alert be skipped."""
        assert self.schema is not None
        out: list[QualityFinding] = []
        n = self.events
        announced = self.__dict__.setdefault("announced", {})  # (absent from an older release's snapshot)
        adopted = self.__dict__.get("adopted", {})  # (absent from an older release's snapshot)
        missing = {  # fields of the schema missing from this window (only the rename rule reads them)
            name for name, f in self.schema.items() if self._missing(self.counts.get(name), f, n)
        } if announced or adopted else set()  # fmt: skip
        for name in [a for a, replaced in adopted.items() if a not in missing and not missing.intersection(replaced)]:
            del adopted[name]  # it and the fields it came in place of are here together: no rename
        for name in [a for a in announced if a not in self.counts]:  # reported new, then gone before adopted
            out.append(self._new_field(name, 0.0, end_time))  # its alert clears, window by window
            announced[name] = (0.0, announced[name][1] + 1)  # back later: adopted from whole windows again
            if is_open is None or not is_open("schema", name):
                del announced[name]
        for name, c in self.counts.items():
            f = self.schema.get(name)
            if (
                f is not None
                and is_open is not None
                and self._quiet(c, f)
                and not is_open("schema", name)
                and not is_open("data_quality", name)
            ):
                continue  # nothing can fire and nothing open needs its clear: most fields, most windows
            if f is None:
                share = (c.present + c.mismatch) / n
                out.append(self._new_field(name, share, end_time))
                kind = kinds.get(name)
                if out[-1].fire and kind is not None:
                    # Reported once, then adopted once its share holds from one window to the next (within
                    # ``min_rate_change`` or three standard errors of the difference of two windows): the
                    # window it appeared in covers it only in part (adopted from there, its absent share and
                    # range would be that window's). Later windows check it like any other field, and the
                    # alert resolves through them (a new field is news once, not a standing fault). A field
                    # whose share keeps moving (sent now and then) is adopted from its ADOPT_AFTER_WINDOWS-th.
                    before, windows = announced.get(name, (0.0, 0))
                    steady = before >= self.min_rate_change and steady_share(before, share, n, self.min_rate_change)
                    if steady or windows + 1 >= ADOPT_AFTER_WINDOWS:
                        del announced[name]
                        c.absent = n - (c.present + c.mismatch + c.null)
                        self.schema[name] = self._field_schema(c, kind, labels.get(name), n)
                        if missing:  # (absent from an older release's snapshot)
                            self.__dict__.setdefault("adopted", {})[name] = sorted(missing)
                    else:
                        announced[name] = (share, windows + 1)
                elif name in announced:
                    del announced[name]
                continue
            # A baseline read from a table records a missing value as null, while a producer may leave the key
            # out: a field counts as dropped when it is absent more often than it was absent or null before.
            absent = 0 if self._reverted(name, c, n) else c.absent
            out.append(self._rate(name, "missing_field", absent, f.absent_rate + f.null_rate, f, end_time))
            out.append(
                self._rate(
                    name,
                    "type_change",
                    c.mismatch,
                    f.mismatch_rate,
                    f,
                    end_time,
                    expected=f.type,
                    arrived="string" if f.type == "numeric" else "number",
                )
            )
            out.append(self._rate(name, "null_rate", absent + c.null, f.absent_rate + f.null_rate, f, end_time))
            if f.type == "numeric" and f.minimum == f.minimum:
                out.append(
                    self._rate(
                        name,
                        "out_of_range",
                        c.out_of_range,
                        outside_share(f),
                        f,
                        end_time,
                        low=c.minimum if c.present else None,
                        high=c.maximum if c.present else None,
                    )
                )
                out[-1].baseline.update(min=f.minimum, max=f.maximum)
            if f.type == "categorical" and f.categories:  # (an open-ended field's finding only ever clears)
                unseen = c.unseen if f.checks_unseen else 0
                out.append(
                    self._rate(name, "unseen_category", unseen, f.unseen_rate, f, end_time, example=c.first_unseen)
                )
            out.append(self._constant(name, c, f, end_time))
        return out

    def _new_field(self, name: str, share: float, end_time: float) -> QualityFinding:
        """A field the schema does not have, present in ``share`` of the window."""
        return self._finding(
            name,
            "new_field",
            fire=share >= self.min_rate_change,
            clear=share < self.min_rate_change / 2,
            statistic=share,
            threshold=self.min_rate_change,
            p_value=None,
            baseline={"present": False},
            current={"rate": share},
            end_time=end_time,
        )

    def _constant(self, name: str, c: FieldCounts, f: FieldSchema, end_time: float) -> QualityFinding:
        need = max(50, self.window_events // 2)
        share = f.top_share
        if f.type == "numeric":
            same = c.present >= need and c.minimum == c.maximum
            value: Any = c.minimum if c.present else None
            total = c.present
            if same and f.common:
                shares = dict(f.common)  # a value among the most common has its share; another, at most the least
                share = shares.get(value, f.common[-1][1] if len(f.common) == COMMON_VALUES else 0.0)
        else:
            total = int(c.codes.sum())
            same = total >= need and int(np.count_nonzero(c.codes)) == 1 and c.other == 0
            value = int(np.argmax(c.codes)) if total else None
        # how likely a window this long with one value is when the baseline holds: the chance that all of it is
        # that value, by its share while learned (numbers; categories: at most the top share). A rare flag (2%
        # ones) has windows of zeros by chance; stuck at 1 it has none.
        p = share**total if same else None
        # (a category's p-value is by the top share whichever category it is stuck on, an upper bound only for
        # the top one: it is reported, and a category that varies fires on its window of one value as before)
        fire = same and f.varies and (f.type == "categorical" or (p is not None and p < self.max_p_value))
        return self._finding(
            name,
            "constant",
            fire=fire,
            clear=not same,
            statistic=1.0 if same else 0.0,
            threshold=1.0,
            p_value=p,
            baseline={"varies": f.varies},
            current={"value": value, "count": c.present},
            end_time=end_time,
        )
