"""Window tests against a baseline, and false-discovery control across every stream tested.

Each stream (feature or prediction, in one segment) has a reference distribution: quantile bins and
their counts for a number, category counts for a category, from a baseline profile file or from the
stream's own first ``baseline_events`` values. Every tumbling window of ``window_events`` values is
compared with it: population stability index, Jensen-Shannon distance and Kolmogorov-Smirnov on the
reference's bins for numbers, chi-square for categories (the statistics: :mod:`monitor.core.window_statistics`).
An alert needs an effect size beyond its
threshold *and* significance after Benjamini-Hochberg across all tests of a round, so thousands of
streams tested at once do not drown users in chance findings (the rounds: :mod:`monitor.core.false_discovery`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import numpy as np

from monitor.core.stats import same_sizes
from monitor.core.window_statistics import shares, window_tests


@dataclass
class Reference:
    """A stream's reference distribution: bin edges (numbers) or category codes, with counts.

    Numeric bins are right-closed: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, so a value lands in
    ``searchsorted(edges, v, side="left")``.
    """

    kind: str
    counts: np.ndarray
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean: float = math.nan
    std: float = math.nan
    minimum: float = math.nan
    maximum: float = math.nan

    @cached_property
    def events(self) -> int:
        """Values the reference was made of (its counts never change: a new reference is a new object)."""
        return int(self.counts.sum())

    @cached_property
    def ordered_edges(self) -> bool:
        """Whether the edges are numbers in order, as the window table's binning of many streams together needs
        (:mod:`monitor.core.windows`); a baseline file's could be anything, and those streams are binned by a
        search of their own instead."""
        e = self.edges
        return bool(e.size and not np.isnan(e).any() and (e[1:] >= e[:-1]).all())

    @classmethod
    def numeric(cls, values: np.ndarray, bins: int) -> Reference:
        """Quantile bins of a sample (ties merged, so a discrete feature gets one bin per value)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise ValueError("a numeric reference needs at least one value")
        return cls._numeric(values, np.sort(values), np.quantile(values, _cut_levels(bins)))

    @classmethod
    def numeric_many(cls, samples: Sequence[np.ndarray], bins: int) -> list[Reference]:
        """:meth:`numeric` of each sample, bit for bit, with the quantiles and sorts of samples of one size done
        together: numpy's quantile costs about 100 us a call whatever the sample's size, and one batch ends the
        warm-ups of many streams at once (every subject's all-traffic stream in the same batch)."""
        out: list[Reference | None] = [None] * len(samples)
        clean = [np.asarray(x, dtype=np.float64) for x in samples]
        clean = [x if not np.isnan(x).any() else x[~np.isnan(x)] for x in clean]
        for rows in same_sizes(clean):
            if len(rows) == 1 or clean[rows[0]].size == 0:
                for i in rows:
                    out[i] = cls.numeric(clean[i], bins)
                continue
            matrix = np.stack([clean[i] for i in rows])
            cuts = np.quantile(matrix, _cut_levels(bins), axis=1)  # (levels, samples): each row's own cuts
            ordered = np.sort(matrix, axis=1)
            with np.errstate(over="ignore", invalid="ignore"):  # (as in _numeric)
                spread = matrix.std(axis=1, ddof=1) if matrix.shape[1] > 1 else np.zeros(len(rows))
                moments = np.stack([matrix.mean(axis=1), spread, matrix.min(axis=1), matrix.max(axis=1)], axis=1)
            for k, i in enumerate(rows):
                out[i] = cls._numeric(clean[i], ordered[k], cuts[:, k], moments[k].tolist())
        return [r for r in out if r is not None]

    @classmethod
    def _numeric(
        cls, values: np.ndarray, ordered: np.ndarray, cuts: np.ndarray, moments: list[float] | None = None
    ) -> Reference:
        """:meth:`numeric` from the sample (no NaN), the sample sorted and its quantiles at :func:`_cut_levels`;
        ``moments``: its mean, spread (ddof 1), minimum and maximum if known (numpy's reductions along a row give
        a row's own, bit for bit)."""
        if moments is None:
            with np.errstate(over="ignore", invalid="ignore"):  # absurd values (1e308): an infinite spread
                moments = [
                    float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    float(values.min()), float(values.max()),
                ]  # fmt: skip
        mean, std, minimum, maximum = moments
        # Snap each cut down to the sample value at or below it: the sample is binned as before, but a
        # cut interpolated between two discrete values no longer opens a bin nothing can fall in.
        cuts = ordered[np.maximum(np.searchsorted(ordered, cuts, side="right") - 1, 0)]
        edges = np.unique(cuts)
        edges = edges[edges < maximum]  # a cut at the maximum would leave the last bin empty for good
        if edges.size == 0:  # a constant sample: bins below, at and above its value, so any move shows
            v = float(values[0])
            edges = np.array([np.nextafter(v, -np.inf), v])
        counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
        return cls("numeric", counts.astype(np.int64), edges, mean, std, minimum, maximum)

    @classmethod
    def categorical(cls, codes: np.ndarray, n_codes: int) -> Reference:
        codes = np.asarray(codes)
        codes = codes[codes >= 0]
        return cls("categorical", np.bincount(codes, minlength=n_codes).astype(np.int64))

    def bin(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, values, side="left")

    def to_plain(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "counts": self.counts.tolist()}
        if self.kind == "numeric":
            out.update(edges=self.edges.tolist(), mean=self.mean, std=self.std, min=self.minimum, max=self.maximum)
        return out

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Reference:
        kind = data["kind"]
        counts = np.asarray(data["counts"], dtype=np.int64)
        if kind == "categorical":
            return cls(kind, counts)
        edges = np.asarray(data["edges"], dtype=np.float64)
        if counts.size != edges.size + 1:
            raise ValueError(f"a numeric reference with {edges.size} edges needs {edges.size + 1} counts")
        return cls(kind, counts, edges, data["mean"], data["std"], data["min"], data["max"])


@dataclass
class WindowResult:
    """One window compared with the reference; ``seq`` is the stream position at the window's end."""

    seq: int
    time: float
    events: int
    reference_events: int
    psi: float
    js: float
    ks: float | None
    p_value: float
    test: str
    current: dict[str, Any]
    baseline: dict[str, Any]
    adjusted_p: float | None = None
    significant: bool | None = None  # set when the round is decided
    start_time: float = math.nan  # event time of the window's first value
    position: int = -1  # partition position of the window's last value: its Benjamini-Hochberg round
    windows: int = 1  # decided windows of its stream this result stands for (see FalseDiscoveryControl)

    def statistic(self, name: str) -> float:
        if name == "ks" and self.ks is not None:
            return self.ks
        return self.js if name == "js" else self.psi


@dataclass
class ClosedWindows:
    """Windows of one numeric table closed in one batch, as columns (engine v2). A false-discovery round needs
    only each window's place and p-value, and a stream's judgement only its latest decided window, so a
    :class:`WindowResult` is built for that one alone (:meth:`result`) rather than for every window. Iterated,
    it gives ``(stream, WindowResult)`` pairs, as one stream's test gives its results. Plain data: windows
    waiting for their round are snapshotted."""

    stream: np.ndarray  # each window's stream in its table
    seq: np.ndarray  # the stream's count of values at the window's end
    position: np.ndarray  # partition position of the window's last value: its Benjamini-Hochberg round
    time: np.ndarray
    start_time: np.ndarray
    psi: np.ndarray
    js: np.ndarray
    ks: np.ndarray
    p_value: np.ndarray
    mean: np.ndarray
    reference_events: np.ndarray
    reference_mean: np.ndarray
    reference_std: np.ndarray
    events: int  # the window size
    test: str
    model: str | None = None  # set by the engine with keys: None once the model version retired
    version: str = ""
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # each distinct stream's (name, attr, value)
    key_index: np.ndarray | None = None  # each window's place in ``keys``
    significant: np.ndarray | None = None  # set when its round is decided
    adjusted_p: np.ndarray | None = None

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "stream", "seq", "position", "time", "start_time", "psi", "js", "ks", "p_value", "mean",
        "reference_events", "reference_mean", "reference_std",
    )  # fmt: skip

    @classmethod
    def empty(cls, events: int, test: str) -> ClosedWindows:
        none, counts = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls(counts, counts, counts, none, none, none, none, none, none, none, counts, none, none, events, test)

    def __len__(self) -> int:
        return int(self.stream.size)

    def __iter__(self) -> Iterator[tuple[int, WindowResult]]:
        return iter([(int(s), self.result(k)) for k, s in enumerate(self.stream.tolist())])

    def __getitem__(self, k: int) -> tuple[int, WindowResult]:
        return int(self.stream[k]), self.result(k)

    def label(self, model: str, version: str, table_keys: list[tuple[str, str, str]]) -> None:
        """Name each window's stream: ``table_keys`` are the table's streams' (name, attribute, value)."""
        distinct, self.key_index = np.unique(self.stream, return_inverse=True)
        self.model, self.version = model, version
        self.keys = [table_keys[i] for i in distinct.tolist()]

    def key(self, k: int) -> tuple[Any, ...]:
        assert self.key_index is not None
        return (self.model, self.version, *self.keys[int(self.key_index[k])])

    def take(self, rows: np.ndarray) -> ClosedWindows:
        """The windows ``rows`` picks (a mask or indices), keys and verdicts kept."""
        out = replace(self, **{name: getattr(self, name)[rows] for name in self.COLUMNS})
        if self.key_index is not None:
            out.key_index = self.key_index[rows]
        if self.significant is not None and self.adjusted_p is not None:
            out.significant, out.adjusted_p = self.significant[rows], self.adjusted_p[rows]
        return out

    def result(self, k: int) -> WindowResult:
        """Window ``k`` as the :class:`WindowResult` its stream's own test would have given."""
        return self.results(np.array([k]))[0]

    def results(self, rows: np.ndarray) -> list[WindowResult]:
        """Windows ``rows`` as :meth:`result` gives them, their columns read once."""
        w, test = self.events, self.test
        columns = [getattr(self, name)[rows].tolist() for name in self.COLUMNS[1:]]
        out = []
        for seq, position, time, start, psi, js, ks, p, mean, ref_events, ref_mean, ref_std in zip(
            *columns, strict=True
        ):
            current, baseline = {"mean": mean, "events": w}, {"mean": ref_mean, "std": ref_std, "events": ref_events}
            out.append(
                WindowResult(
                    seq,
                    time,
                    w,
                    ref_events,
                    psi,
                    js,
                    ks,
                    p,
                    test,
                    current,
                    baseline,
                    start_time=start,
                    position=position,
                )
            )
        if self.significant is not None and self.adjusted_p is not None:
            for r, significant, adjusted in zip(
                out, self.significant[rows].tolist(), self.adjusted_p[rows].tolist(), strict=True
            ):
                r.significant, r.adjusted_p = significant, adjusted
        return out


class BaselineWindowTest:
    """Tumbling windows of one stream tested against its reference (numbers binned, categories as codes).

    >>> t = BaselineWindowTest("numeric", window=500, baseline_events=1000, bins=10)
    >>> rng = np.random.default_rng(1)
    >>> t.update(rng.normal(0, 1, 1500), np.arange(1500.0))[0].p_value > 0.001
    True
    >>> r = t.update(rng.normal(1, 1, 500), np.arange(500.0))[0]
    >>> (r.psi > 0.5, r.p_value < 1e-10, r.test)
    (True, True, 'ks')
    """

    def __init__(
        self,
        kind: str,
        *,
        window: int,
        baseline_events: int,
        bins: int = 10,
        n_codes: int = 0,
        numeric_test: str = "ks",
        reference: Reference | None = None,
        exact_p_below: float = 1.0,
        labels: list[str] | None = None,
    ) -> None:
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"kind must be numeric or categorical, got {kind!r}")
        self.kind = kind
        self.window = window
        self.baseline_events = baseline_events
        self.bins = bins
        self.n_codes = n_codes
        self.numeric_test = numeric_test
        self.exact_p_below = exact_p_below  # KS p-values that can be below this are exact (ks_two_sample)
        self.reference = reference
        self.from_profile = reference is not None
        self.seen = 0
        self._warm: list[np.ndarray] = []
        self._warm_n = 0
        self._counts = np.zeros(0 if reference is None else reference.counts.size, dtype=np.int64)
        self._filled = 0
        self._sum = 0.0
        self._start = math.nan
        self.tests = 0
        self.last: WindowResult | None = None  # the latest decided result: what the alert rules judge
        self.pending = 0  # results handed out and not yet decided

    def update(self, values: np.ndarray, times: np.ndarray, positions: np.ndarray | None = None) -> list[WindowResult]:
        """Add present values (floats, or codes >= 0) in stream order; return the windows completed.

        ``positions`` are the values' places in the partition, so a window's round does not depend on how
        the partition was cut into batches.
        """
        closed = self.close_windows(values, times, positions)
        complete_windows(closed)
        return [c.result for c in closed]

    def add_counts(self, counts: np.ndarray, first_time: float, present: int) -> bool:
        """A categorical stream's ``present`` codes already counted (``counts``, by code; ``first_time``: the
        first one's time), added when its reference is known and they do not close the open window, as
        :meth:`close_windows` would add them; False, and nothing added, otherwise."""
        if (
            self.kind != "categorical"
            or self.reference is None
            or present >= self.window - self._filled
            or counts.size != self._counts.size
        ):
            return False
        if present:
            if self._filled == 0:
                self._start = first_time
            self._counts += counts
            self._filled += present
            self.seen += present
        return True

    def close_windows(
        self, values: np.ndarray, times: np.ndarray, positions: np.ndarray | None = None
    ) -> list[ClosedWindow]:
        """As :meth:`update`, but the windows come without their statistics, for :func:`complete_windows` to
        compute those of every window a batch closed, of every stream, at once."""
        if values.size == 0:
            return []
        if positions is None:
            positions = np.full(values.size, -1, dtype=np.int64)
        if self.reference is None:
            take = min(self.baseline_events - self._warm_n, values.size)
            self._warm.append(values[:take].copy())
            self._warm_n += take
            self.seen += take
            values, times, positions = values[take:], times[take:], positions[take:]
            if self._warm_n >= self.baseline_events:
                warm = np.concatenate(self._warm)
                self._warm, self._warm_n = [], 0
                self.reference = (
                    Reference.numeric(warm, self.bins)
                    if self.kind == "numeric"
                    else Reference.categorical(warm, self.n_codes)
                )
                self._counts = np.zeros(self.reference.counts.size, dtype=np.int64)
            if values.size == 0:
                return []
        ref = self.reference
        assert ref is not None
        if self.kind == "numeric":
            codes = ref.bin(values)
        else:
            codes = values.astype(np.int64)
            if codes.size and codes.max() >= self._counts.size:
                grown = max(int(codes.max()) + 1, self.n_codes)
                self._counts = np.pad(self._counts, (0, grown - self._counts.size))
        results: list[ClosedWindow] = []
        start = 0
        while start < codes.size:
            take = min(self.window - self._filled, codes.size - start)
            if self._filled == 0:
                self._start = float(times[start])
            part = codes[start : start + take]
            self._counts += np.bincount(part, minlength=self._counts.size)
            if self.kind == "numeric":
                self._sum += float(values[start : start + take].sum())
            self._filled += take
            start += take
            self.seen += take
            if self._filled == self.window:
                results.append(self._close(float(times[start - 1])))
                results[-1].result.position = int(positions[start - 1])
                self._counts = np.zeros(self._counts.size, dtype=np.int64)
                self._filled = 0
                self._sum = 0.0
        self.tests += len(results)
        self.pending += len(results)
        return results

    def _close(self, time: float) -> ClosedWindow:
        """The window that just closed, with what its statistics need."""
        ref = self.reference
        assert ref is not None
        cur = self._counts
        refc = ref.counts if ref.counts.size == cur.size else np.pad(ref.counts, (0, cur.size - ref.counts.size))
        if self.kind == "numeric":
            current: dict[str, Any] = {"mean": self._sum / self.window, "events": self.window}
            baseline: dict[str, Any] = {"mean": ref.mean, "std": ref.std, "events": ref.events}
            test = self.numeric_test
        else:
            current, baseline, test = {"events": self.window}, {"events": ref.events}, "chi2"
        result = WindowResult(
            self.seen, time, self.window, ref.events, math.nan, math.nan, None, math.nan, test, current, baseline
        )
        result.start_time = self._start
        return ClosedWindow(result, refc, cur.copy(), self.kind, self.exact_p_below)


class ClosedWindow(NamedTuple):
    """A window whose statistics are still to compute (never kept past the batch, never snapshotted)."""

    result: WindowResult
    reference: np.ndarray
    counts: np.ndarray
    kind: str
    exact_p_below: float


def complete_windows(closed: list[ClosedWindow]) -> None:
    """Fill in the statistics of windows that closed, all together: :func:`window_tests` over one 2-D array
    per kind of window (zero columns pad the narrower rows, which changes no statistic)."""
    groups: dict[tuple[str, float], list[ClosedWindow]] = {}
    for c in closed:
        groups.setdefault((c.kind, c.exact_p_below), []).append(c)
    for (kind, exact), rows in groups.items():
        width = max(c.reference.size for c in rows)
        ref = np.zeros((len(rows), width))
        cur = np.zeros((len(rows), width))
        for i, c in enumerate(rows):
            ref[i, : c.reference.size] = c.reference
            cur[i, : c.counts.size] = c.counts
        w = window_tests(ref, cur, exact, ks=kind == "numeric")
        psi_, js_ = w.psi.tolist(), w.js.tolist()
        if kind == "numeric":
            ks, ks_p, chi2_p = w.ks.tolist(), w.ks_p.tolist(), w.chi2_p.tolist()
            for i, c in enumerate(rows):
                r = c.result
                r.psi, r.js, r.ks = psi_[i], js_[i], ks[i]
                r.p_value = ks_p[i] if r.test == "ks" else chi2_p[i]
            continue
        for c, p, j, p_value, top, share_c, share_r, distance in zip(
            rows, psi_, js_, w.chi2_p.tolist(), *_largest_moves(ref, cur, rows), strict=True
        ):
            r = c.result
            r.psi, r.js, r.p_value = p, j, p_value
            r.current = {"code": top, "share": share_c, "events": r.events, "rose": share_c > share_r,
                         "distance": distance}  # fmt: skip
            r.baseline = {"code": top, "share": share_r, "events": r.reference_events}


def _largest_moves(
    ref: np.ndarray, cur: np.ndarray, rows: list[ClosedWindow]
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per categorical window (a row of ``ref`` and ``cur``, padded with zero columns past each window's own
    width): the category whose share moved most from the reference's, its share now and then, and the total
    variation distance. Rows of one width (the usual case: one vocabulary size) in a few array operations,
    summed over the same columns as one row alone; rows of several widths each over its own columns."""
    width = ref.shape[1]
    if all(c.reference.size == width and c.counts.size == width for c in rows):
        n_ref, n_cur = ref.sum(axis=1, keepdims=True), cur.sum(axis=1, keepdims=True)
        shares_r = np.divide(ref, n_ref, out=np.zeros_like(ref), where=n_ref != 0)
        shares_c = np.divide(cur, n_cur, out=np.zeros_like(cur), where=n_cur != 0)
        moved = np.abs(shares_c - shares_r)
        top = np.argmax(moved, axis=1)
        at = np.arange(top.size)
        return (
            top.tolist(), shares_c[at, top].tolist(), shares_r[at, top].tolist(),
            (0.5 * moved.sum(axis=1)).tolist(),
        )  # fmt: skip
    tops: list[int] = []
    now: list[float] = []
    then: list[float] = []
    distances: list[float] = []
    for i, c in enumerate(rows):
        shares_r, shares_c = shares(ref[i, : c.reference.size]), shares(cur[i, : c.counts.size])
        moved = np.abs(shares_c - shares_r)
        top = int(np.argmax(moved))
        tops.append(top)
        now.append(float(shares_c[top]))
        then.append(float(shares_r[top]))
        distances.append(0.5 * float(moved.sum()))
    return tops, now, then, distances


def _cut_levels(bins: int) -> np.ndarray:
    """The quantile levels of a numeric reference's cuts: ``bins`` - 1 inner ones."""
    return np.linspace(0, 1, bins + 1)[1:-1]
