"""A batch's field columns counted per schema-watch window, once for the whole batch.

:class:`~monitor.core.quality.SchemaWatch` judges fixed windows of a model version's predictions; a batch may
hold several. Counting each field's missing, null, mismatched, out-of-range and unseen values window by window
took a walk over its values per window; here each count is a few reductions over the whole batch (one for all
number-typed columns together), and observing a window adds them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from monitor.core.quality import FieldCounts, FieldSchema


@dataclass
class FieldColumn:
    """One field's batch as the engine converted it: everything the watch counts, already as arrays."""

    kind: str  # numeric | categorical
    column: np.ndarray  # floats with NaN, or codes with -1, where the value is missing or mistyped
    nulls: np.ndarray | None = None  # True where the field was sent as an explicit null (None: nowhere)
    mismatch: np.ndarray | None = None  # True where the value had the other kind's type (None: nowhere)
    labels: Sequence[str] = ()  # categorical: the name of each code
    overflow: int | None = None  # categorical: the code shared by values beyond the vocabulary's capacity
    values: Sequence[Any] = ()  # the raw values; read only where the code is ``overflow``, which names no value


def _window_sums(mask: np.ndarray | None, starts: np.ndarray) -> list[int]:
    if mask is None:
        return [0] * starts.size
    sums: list[int] = np.add.reduceat(mask, starts, dtype=np.intp).tolist()
    return sums


def allowed_range(f: FieldSchema | None, tolerance: float) -> tuple[float, float] | None:
    """The values a number-typed field's schema allows, its learned range widened by ``tolerance`` of its width
    on each side (None: no numeric range known)."""
    if f is None or f.type != "numeric" or f.minimum != f.minimum:
        return None
    slack = tolerance * (f.maximum - f.minimum)
    return f.minimum - slack, f.maximum + slack


# Per field: which of its category codes name no category of its schema, as worked out for a schema's categories
# and the field's code labels (a watch keeps them across batches: both change rarely)
UnseenTables = dict[str, tuple[Sequence[str], list[str], np.ndarray]]


def text_value(value: Any) -> Any:
    """A value as the checks name it: a boolean as JSON's text, anything else as it came."""
    return ("true" if value else "false") if isinstance(value, bool) else value


class _FieldTally:
    """One field's counts in every window of a batch, from a few reductions over the whole batch.

    The checks that depend on the schema (range, known categories) are computed for the whole batch the first
    time a window asks, and again only if the schema changed between windows (learned, or a new field adopted).
    """

    def __init__(
        self, f: FieldColumn, starts: np.ndarray, stops: np.ndarray, name: str = "", tables: UnseenTables | None = None
    ) -> None:
        col = f.column
        self.name, self.tables = name, tables
        self.kind = f.kind
        self.column = col
        self.starts = starts
        blank = np.isnan(col) if f.kind == "numeric" else col < 0  # missing, or mistyped and so converted to blank
        self.mismatch = _window_sums(f.mismatch, starts)
        blanks = _window_sums(blank, starts)
        self.missing = [b - m for b, m in zip(blanks, self.mismatch, strict=True)]
        self.null = _window_sums(f.nulls, starts)
        sizes = (stops - starts).tolist()
        self.present = [size - b for size, b in zip(sizes, blanks, strict=True)]
        self._range: tuple[float, float] | None = None
        self._outside: list[int] = []
        if f.kind == "numeric":
            self.low: list[float] = np.fmin.reduceat(col, starts).tolist()  # NaN where a window has no value
            self.high: list[float] = np.fmax.reduceat(col, starts).tolist()
            return
        self.labels = f.labels
        self.values = f.values
        self.overflow = f.overflow
        named = ~blank
        if f.overflow is None:
            self.is_over = None
            self.other = [0] * starts.size
        else:
            self.is_over = col == f.overflow
            self.other = _window_sums(self.is_over, starts)
            named &= ~self.is_over
        self.named = named
        self.top = np.maximum.reduceat(np.where(named, col, -1), starts).tolist()  # largest code per window
        self.codes: np.ndarray | None = None
        if any(t >= 0 for t in self.top):
            width = max(self.top) + 1
            window_of = np.repeat(np.arange(starts.size), sizes)
            flat = window_of[named] * width + col[named]
            self.codes = np.bincount(flat, minlength=starts.size * width).reshape(starts.size, width)
        self._known: Sequence[str] | None = None
        self._unseen: list[int] = []
        self._first: list[str] = []

    def outside(self, k: int, lo: float, hi: float) -> int:
        """Values of window ``k`` below ``lo`` or above ``hi``."""
        if self._range != (lo, hi):
            self._range = (lo, hi)
            self._outside = _window_sums((self.column < lo) | (self.column > hi), self.starts)
        return self._outside[k]

    def unseen(self, k: int, categories: Sequence[str]) -> tuple[int, str]:
        """Values of window ``k`` outside ``categories``, and the first of them ("" if none)."""
        if self._known is not categories:
            self._known = categories
            col = self.column
            table = self._unseen_codes(categories)
            rows = np.zeros(col.size, dtype=bool)
            rows[self.named] = table[col[self.named]]
            over = [] if self.is_over is None else np.flatnonzero(self.is_over).tolist()
            if over:
                known = set(categories)
                for i in over:  # values past the vocabulary: named by their text
                    rows[i] = text_value(self.values[i]) not in known
            self._unseen = _window_sums(rows, self.starts)
            where = rows.nonzero()[0]
            first = np.searchsorted(where, self.starts).tolist()  # each window's first unseen value, if it has one
            self._first = [
                self._name(int(where[i])) if count else "" for i, count in zip(first, self._unseen, strict=True)
            ]
        return self._unseen[k], self._first[k]

    def _unseen_codes(self, categories: Sequence[str]) -> np.ndarray:
        """Whether each code's label is outside ``categories``; kept in the watch's tables while they and the
        labels stay the same."""
        held = None if self.tables is None else self.tables.get(self.name)
        if held is not None and held[0] is categories and held[1] == self.labels:
            return held[2]
        known = set(categories)
        table = np.fromiter((label not in known for label in self.labels), dtype=bool, count=len(self.labels))
        if self.tables is not None:
            self.tables[self.name] = (categories, list(self.labels), table)
        return table

    def _name(self, row: int) -> str:
        code = int(self.column[row])
        return str(text_value(self.values[row])) if code == self.overflow else self.labels[code]

    def quiet(self, f: FieldSchema, sizes: np.ndarray, rise: float, need: int, tolerance: float) -> np.ndarray:
        """Per window, whether :meth:`SchemaWatch._quiet` would find this field quiet when the window's counts
        are this batch's alone: the same tests, on arrays, in the same floating-point operations."""
        absent = np.asarray(self.missing) - np.asarray(self.null)
        base = f.absent_rate + f.null_rate
        loud = (absent / sizes - base >= rise) | (np.asarray(self.mismatch) / sizes - f.mismatch_rate >= rise)
        loud |= (absent + np.asarray(self.null)) / sizes - base >= rise
        outside = unseen = np.zeros(sizes.size, dtype=np.intp)  # counts of the checks that do not apply
        allowed = allowed_range(f, tolerance) if self.kind == "numeric" else None
        if allowed is not None:
            self.outside(0, *allowed)
            outside = np.asarray(self._outside)
        elif self.kind == "categorical" and f.checks_unseen:
            self.unseen(0, f.categories)
            unseen = np.asarray(self._unseen)
        loud |= (outside / sizes >= rise) | (unseen / sizes - f.unseen_rate >= rise)
        if f.type == "numeric":
            if self.kind == "numeric":  # a categorical column leaves min and max at +-inf: never equal
                loud |= (np.asarray(self.present) >= need) & (np.asarray(self.low) == np.asarray(self.high))
        elif self.kind == "categorical" and self.codes is not None:  # a numeric column leaves no codes
            total = self.codes.sum(axis=1)
            single = np.count_nonzero(self.codes, axis=1) == 1
            loud |= (total >= need) & single & (np.asarray(self.other) == 0)
        return ~loud

    def add(self, c: FieldCounts, k: int, f: FieldSchema | None, tolerance: float) -> None:
        """Window ``k``'s counts into ``c``, as :meth:`SchemaWatch.observe` would add them."""
        null = self.null[k]
        c.null += null
        c.absent += self.missing[k] - null
        c.mismatch += self.mismatch[k]
        c.present += self.present[k]
        if self.kind == "numeric":
            lo = self.low[k]
            if lo == lo:
                c.minimum = min(c.minimum, lo)
                c.maximum = max(c.maximum, self.high[k])
                allowed = allowed_range(f, tolerance)
                if allowed is not None:
                    c.out_of_range += self.outside(k, *allowed)
                if f is None:  # its schema is being learned
                    end = int(self.starts[k + 1]) if k + 1 < self.starts.size else self.column.size
                    window = self.column[int(self.starts[k]) : end]
                    c.take_sample(window[~np.isnan(window)])
            return
        c.other += self.other[k]
        top = self.top[k]
        if top >= 0:
            assert self.codes is not None
            counts = self.codes[k, : top + 1]
            if counts.size > c.codes.size:  # rare: a code the field has not had before
                c.codes = np.concatenate([c.codes, np.zeros(counts.size - c.codes.size, dtype=c.codes.dtype)])
            c.codes[: counts.size] += counts
        if f is not None and f.checks_unseen:
            unseen, first = self.unseen(k, f.categories)
            if unseen:
                c.unseen += unseen
                if not c.first_unseen:
                    c.first_unseen = first


class _NumericTable:
    """The number-typed columns of a batch stacked, counted in every window with one reduction per count for
    all of them (a field's :class:`_FieldTally` takes its row): the per-call cost of a few reductions per field
    was most of the schema watch's time on batches of a thousand rows."""

    def __init__(self, columns: list[FieldColumn], starts: np.ndarray, sizes: np.ndarray) -> None:
        self.starts = starts
        self.matrix = np.stack([f.column for f in columns])
        blanks = np.add.reduceat(np.isnan(self.matrix), starts, axis=1, dtype=np.intp)
        self.mismatch = self._sums([f.mismatch for f in columns], starts)
        self.null = self._sums([f.nulls for f in columns], starts)
        self.missing = blanks - self.mismatch
        self.present = sizes[None, :] - blanks
        self.low = np.fmin.reduceat(self.matrix, starts, axis=1)  # NaN where a window has no value
        self.high = np.fmax.reduceat(self.matrix, starts, axis=1)

    @staticmethod
    def _sums(masks: list[np.ndarray | None], starts: np.ndarray) -> np.ndarray:
        out = np.zeros((len(masks), starts.size), dtype=np.intp)
        for i, mask in enumerate(masks):
            if mask is not None:
                out[i] = np.add.reduceat(mask, starts, dtype=np.intp)
        return out

    def count_outside(self, tallies: list[_FieldTally], ranges: list[tuple[float, float] | None]) -> None:
        """Each column's values outside its range (``ranges``, in the columns' order; None: none), per window,
        for every column at once, into its tally (:meth:`_FieldTally.outside` then reads them)."""
        chosen = [(i, r) for i, r in enumerate(ranges) if r is not None and tallies[i]._range != r]
        if not chosen:
            return
        low = np.array([r[0] for _, r in chosen])[:, None]
        high = np.array([r[1] for _, r in chosen])[:, None]
        m = self.matrix[[i for i, _ in chosen]]
        counts = np.add.reduceat((m < low) | (m > high), self.starts, axis=1, dtype=np.intp).tolist()
        for (i, r), row in zip(chosen, counts, strict=True):
            tallies[i]._range, tallies[i]._outside = r, row

    def tallies(self) -> list[_FieldTally]:
        """Each column's tally, in the order given, as :class:`_FieldTally` would count it alone."""
        rows = zip(
            self.mismatch.tolist(), self.missing.tolist(), self.null.tolist(), self.present.tolist(),
            self.low.tolist(), self.high.tolist(), strict=True,
        )  # fmt: skip
        out = []
        for i, (mismatch, missing, null, present, low, high) in enumerate(rows):
            t = _FieldTally.__new__(_FieldTally)
            t.kind, t.column, t.starts = "numeric", self.matrix[i], self.starts
            t.mismatch, t.missing, t.null, t.present, t.low, t.high = mismatch, missing, null, present, low, high
            t._range, t._outside = None, []
            out.append(t)
        return out

    def quiet(
        self, names: list[str], schema: dict[str, FieldSchema], sizes: np.ndarray, rise: float, need: int,
        tolerance: float,
    ) -> np.ndarray:  # fmt: skip
        """Per column (named ``names``, each in ``schema``) and window, whether it is quiet: :meth:`_FieldTally.quiet`
        of each, in the same floating-point operations, one array operation for all columns."""
        fs = [schema[name] for name in names]

        def column(values: list[float]) -> np.ndarray:
            return np.asarray(values, dtype=np.float64)[:, None]

        absent_rate, null_rate = column([f.absent_rate for f in fs]), column([f.null_rate for f in fs])
        mismatch_rate, unseen_rate = column([f.mismatch_rate for f in fs]), column([f.unseen_rate for f in fs])
        numeric = np.array([f.type == "numeric" for f in fs])[:, None]
        ranged = np.array([f.type == "numeric" and f.minimum == f.minimum for f in fs])
        absent = self.missing - self.null
        base = absent_rate + null_rate
        loud = (absent / sizes - base >= rise) | (self.mismatch / sizes - mismatch_rate >= rise)
        loud |= (absent + self.null) / sizes - base >= rise
        outside = np.zeros_like(self.missing)
        if ranged.any():
            lo, hi = column([f.minimum for f in fs]), column([f.maximum for f in fs])
            slack = tolerance * (hi - lo)
            low, high = lo - slack, hi + slack
            rows = np.flatnonzero(ranged)
            m = self.matrix[rows]
            outside[rows] = np.add.reduceat((m < low[rows]) | (m > high[rows]), self.starts, axis=1, dtype=np.intp)
        loud |= (outside / sizes >= rise) | (0 / sizes - unseen_rate >= rise)
        loud |= numeric & (self.present >= need) & (self.low == self.high)
        return ~loud


class BatchTally:
    """Every field's counts in every window of one batch, computed once: observing a window is then a few
    additions per field instead of a walk over its values. Number-typed columns are counted together
    (:class:`_NumericTable`)."""

    def __init__(self, fields: dict[str, FieldColumn], stops: list[int], tables: UnseenTables | None = None) -> None:
        self.stops = stops
        ends = np.asarray(stops, dtype=np.intp)
        starts = np.concatenate([[0], ends[:-1]]).astype(np.intp)
        self.sizes = ends - starts
        numeric = [name for name, f in fields.items() if f.kind == "numeric"]
        self.numeric: _NumericTable | None = None
        self.numeric_names = numeric
        tallies: dict[str, _FieldTally] = {}
        if len(numeric) > 1:
            self.numeric = _NumericTable([fields[name] for name in numeric], starts, self.sizes)
            tallies = dict(zip(numeric, self.numeric.tallies(), strict=True))
        self.fields = {
            name: tallies.get(name) or _FieldTally(f, starts, ends, name, tables) for name, f in fields.items()
        }

    def count_outside(self, schema: dict[str, FieldSchema], tolerance: float) -> None:
        """The number-typed columns' values outside their schema's ranges, counted for all of them at once (a
        window observed then reads its share rather than counting each column's)."""
        if self.numeric is not None:
            names = self.numeric_names
            self.numeric.count_outside(
                [self.fields[name] for name in names], [allowed_range(schema.get(name), tolerance) for name in names]
            )
