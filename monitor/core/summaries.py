"""Mergeable per-batch summaries of streams: what the profile stage emits and the detection stage merges.

A summary covers one subject (a feature, or the prediction) of one model version across its streams: all
traffic and each tracked segment value, as arrays indexed by stream. Streams and categories are named, not
coded, because each partition codes them in its own order; :meth:`merge` aligns them by name. Everything
is a count, a sum or a pairwise-mergeable moment (Chan, Golub and LeVeque's update), so summaries of
disjoint batches merge exactly and associatively, whatever partitions and batch sizes they came from.
Summaries are plain data: :func:`to_plain` / :func:`from_plain` make them JSON for a topic or a snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Bucket = tuple[str, str]  # ("", "") is all traffic; (attribute, value) a segment
ALL: Bucket = ("", "")


@dataclass(frozen=True)
class Membership:
    """Which streams each row of a batch belongs to: row ``rows[k]`` is in stream ``streams[stream[k]]``.

    Every row is in all traffic (stream 0) and in one stream per segment attribute it carries.

    >>> m = Membership.of(3, {"country": ["de", None, "fr"]})
    >>> m.streams, m.rows.tolist(), m.stream.tolist()
    ((('', ''), ('country', 'de'), ('country', 'fr')), [0, 1, 2, 0, 2], [0, 0, 0, 1, 2])
    """

    streams: tuple[Bucket, ...]
    rows: np.ndarray  # (k,) row index into the batch
    stream: np.ndarray  # (k,) stream index into ``streams``

    @classmethod
    def of(cls, n: int, segments: dict[str, list[str | None]]) -> Membership:
        """All traffic plus each (attribute, value) present; values coded once per batch, vectorised."""
        streams: list[Bucket] = [ALL]
        rows = [np.arange(n, dtype=np.int64)]
        stream = [np.zeros(n, dtype=np.int64)]
        for attr in sorted(segments):
            column = np.asarray(segments[attr], dtype=object)
            present = np.flatnonzero(column != None)  # noqa: E711 (elementwise comparison with None)
            if not present.size:
                continue
            values, codes = np.unique(column[present].astype(str), return_inverse=True)
            rows.append(present)
            stream.append(codes.astype(np.int64) + len(streams))
            streams += [(attr, str(v)) for v in values.tolist()]
        return cls(tuple(streams), np.concatenate(rows), np.concatenate(stream))

    @property
    def size(self) -> int:
        return len(self.streams)


@dataclass(frozen=True)
class Moments:
    """Count, mean, M2 (sum of squared deviations), minimum and maximum per stream.

    >>> a = Moments.of(np.array([1.0, 2.0, 3.0, 10.0]), np.array([0, 0, 1, 1]), 2)
    >>> b = Moments.of(np.array([4.0]), np.array([1]), 2)
    >>> m = a.merge(b)
    >>> m.n.tolist(), m.mean.tolist(), m.variance().round(3).tolist(), m.maximum.tolist()
    ([2, 3], [1.5, 5.666666666666667], [0.5, 14.333], [2.0, 10.0])
    """

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def empty(cls, size: int) -> Moments:
        z = np.zeros(size)
        return cls(np.zeros(size, dtype=np.int64), z, z.copy(), np.full(size, np.inf), np.full(size, -np.inf))

    @classmethod
    def of(cls, values: np.ndarray, stream: np.ndarray, size: int) -> Moments:
        """The moments of ``values`` (no NaN) grouped by ``stream`` (indices below ``size``)."""
        n = np.bincount(stream, minlength=size)
        total = np.bincount(stream, weights=values, minlength=size)
        mean = np.divide(total, n, out=np.zeros(size), where=n > 0)
        m2 = np.bincount(stream, weights=(values - mean[stream]) ** 2, minlength=size)
        minimum, maximum = np.full(size, np.inf), np.full(size, -np.inf)
        np.minimum.at(minimum, stream, values)
        np.maximum.at(maximum, stream, values)
        return cls(n.astype(np.int64), mean, m2, minimum, maximum)

    def merge(self, other: Moments) -> Moments:
        n = self.n + other.n
        delta = other.mean - self.mean
        safe = np.maximum(n, 1)
        mean = self.mean + delta * other.n / safe
        m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / safe
        return Moments(n, mean, m2, np.minimum(self.minimum, other.minimum), np.maximum(self.maximum, other.maximum))

    def variance(self) -> np.ndarray:
        """Sample variance per stream (NaN below two values)."""
        return np.divide(self.m2, self.n - 1, out=np.full(self.n.size, np.nan), where=self.n > 1)

    def take(self, index: np.ndarray, size: int) -> Moments:
        """These streams placed at ``index`` among ``size`` streams (empty elsewhere): for aligning by name."""
        out = Moments.empty(size)
        for name in ("n", "mean", "m2", "minimum", "maximum"):
            getattr(out, name)[index] = getattr(self, name)
        return out


@dataclass(frozen=True)
class NumericSummary:
    """A batch of a model version's numeric subjects: per (subject, stream) the rows seen, the missing ones,
    the moments and the counts per bin.

    Subjects are summarised together, as a matrix, so a batch costs a few vectorised calls however many
    features it has. ``edges[f]`` are subject ``f``'s fixed bin edges (right-closed bins, as
    :class:`~monitor.core.significance.Reference`), padded with ``inf`` to a common width; every summary of a
    subject uses the same edges, so bin counts add up.
    """

    subjects: tuple[str, ...]
    streams: tuple[Bucket, ...]
    count: np.ndarray  # (F, S) rows, present or missing
    missing: np.ndarray  # (F, S)
    moments: Moments  # arrays (F * S,), subject-major
    edges: np.ndarray  # (F, E)
    bins: np.ndarray  # (F, S, E + 1)

    @classmethod
    def of(
        cls, subjects: tuple[str, ...], values: np.ndarray, membership: Membership, edges: np.ndarray
    ) -> NumericSummary:
        """``values`` (rows × subjects, NaN where missing) summarised per (subject, stream)."""
        f, size = len(subjects), membership.size
        n_bins = edges.shape[1] + 1
        which = np.empty(values.shape, dtype=np.int64)  # each row's bin, found once however many streams it is in
        for i in range(f):
            which[:, i] = np.searchsorted(edges[i], values[:, i], side="left")
        x, which = values[membership.rows], which[membership.rows]  # (k, F): a row once per stream it is in
        present = ~np.isnan(x)
        cell = np.arange(f) * size + membership.stream[:, None]  # (k, F): subject-major cell index
        count = np.tile(np.bincount(membership.stream, minlength=size), (f, 1)).astype(np.int64)
        if present.all():  # the usual case: no boolean gathers
            missing = np.zeros((f, size), dtype=np.int64)
            cells, xs, ws = cell.ravel(), x.ravel(), which.ravel()
        else:
            missing = np.bincount(cell[~present], minlength=f * size).reshape(f, size).astype(np.int64)
            cells, xs, ws = cell[present], x[present], which[present]
        bins = np.bincount(cells * n_bins + ws, minlength=f * size * n_bins)
        return cls(
            subjects,
            membership.streams,
            count,
            missing,
            Moments.of(xs, cells, f * size),
            edges,
            bins.reshape(f, size, n_bins).astype(np.int64),
        )

    def merge(self, other: NumericSummary) -> NumericSummary:
        if self.subjects != other.subjects or not np.array_equal(self.edges, other.edges):
            raise ValueError("numeric summaries merge only with the same subjects and bin edges")
        streams, mine, theirs = _align(self.streams, other.streams)
        f, size = len(self.subjects), len(streams)

        def cells(index: np.ndarray) -> np.ndarray:
            return (np.arange(f)[:, None] * size + index[None, :]).ravel()

        def place(a: np.ndarray, index: np.ndarray) -> np.ndarray:
            out = np.zeros((f, size, *a.shape[2:]), dtype=a.dtype)
            out[:, index] = a
            return out

        return NumericSummary(
            self.subjects,
            streams,
            place(self.count, mine) + place(other.count, theirs),
            place(self.missing, mine) + place(other.missing, theirs),
            self.moments.take(cells(mine), f * size).merge(other.moments.take(cells(theirs), f * size)),
            self.edges,
            place(self.bins, mine) + place(other.bins, theirs),
        )

    def subject(self, name: str) -> tuple[np.ndarray, np.ndarray, Moments, np.ndarray]:
        """One subject's (count, missing, moments, bins) over the streams."""
        i = self.subjects.index(name)
        size = len(self.streams)
        cut = slice(i * size, (i + 1) * size)
        m = self.moments
        moments = Moments(m.n[cut], m.mean[cut], m.m2[cut], m.minimum[cut], m.maximum[cut])
        return self.count[i], self.missing[i], moments, self.bins[i]


@dataclass(frozen=True)
class CategoricalSummary:
    """One categorical subject's batch: per stream the rows seen, the missing ones and counts per category."""

    streams: tuple[Bucket, ...]
    categories: tuple[str, ...]
    count: np.ndarray  # (S,)
    missing: np.ndarray  # (S,)
    counts: np.ndarray  # (S, C)

    @classmethod
    def of(cls, values: list[str | None], membership: Membership) -> CategoricalSummary:
        """From the values themselves (``None`` missing), coded here."""
        present = np.asarray([v is not None for v in values], dtype=bool)
        categories, codes = np.unique(np.asarray(values, dtype=object)[present].astype(str), return_inverse=True)
        full = np.full(len(values), -1, dtype=np.int64)
        full[present] = codes
        return cls.of_codes(full, tuple(str(c) for c in categories.tolist()), membership)

    @classmethod
    def of_codes(cls, codes: np.ndarray, categories: tuple[str, ...], membership: Membership) -> CategoricalSummary:
        """From codes into ``categories`` (-1 missing), as a subject's vocabulary gives them."""
        size, k = membership.size, len(categories)
        c = codes[membership.rows]
        present = c >= 0
        stream = membership.stream[present]
        counts = np.bincount(stream * k + c[present], minlength=size * k).reshape(size, k).astype(np.int64)
        return cls(
            membership.streams,
            categories,
            np.bincount(membership.stream, minlength=size).astype(np.int64),
            np.bincount(membership.stream[~present], minlength=size).astype(np.int64),
            counts,
        )

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        streams, mine, theirs = _align(self.streams, other.streams)
        categories, my_cats, their_cats = _align(self.categories, other.categories)
        size, k = len(streams), len(categories)
        counts = np.zeros((size, k), dtype=np.int64)
        counts[np.ix_(mine, my_cats)] += self.counts
        counts[np.ix_(theirs, their_cats)] += other.counts
        return CategoricalSummary(
            streams,
            categories,
            _place(self.count, mine, size) + _place(other.count, theirs, size),
            _place(self.missing, mine, size) + _place(other.missing, theirs, size),
            counts,
        )


def stack_edges(edges: list[np.ndarray]) -> np.ndarray:
    """Per-subject bin edges as one (subjects, width) array, each row padded with ``inf`` (bins that stay empty).

    >>> stack_edges([np.array([0.0, 1.0]), np.array([5.0])]).tolist()
    [[0.0, 1.0], [5.0, inf]]
    """
    width = max((e.size for e in edges), default=0)
    out = np.full((len(edges), width), np.inf)
    for i, e in enumerate(edges):
        out[i, : e.size] = e
    return out


def _align(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[tuple[Any, ...], np.ndarray, np.ndarray]:
    """The union of two name tuples (``a``'s order, then ``b``'s new names) and where each side's names go."""
    if a == b:
        index = np.arange(len(a))
        return a, index, index
    position = {name: i for i, name in enumerate(a)}
    union = list(a)
    for name in b:
        if name not in position:
            position[name] = len(union)
            union.append(name)
    return tuple(union), np.arange(len(a)), np.array([position[name] for name in b], dtype=np.int64)


def _place(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *values.shape[1:]), dtype=values.dtype)
    out[index] = values
    return out


Summary = NumericSummary | CategoricalSummary


def to_plain(summary: Summary) -> dict[str, Any]:
    """JSON-ready: lists and numbers (infinite minima and maxima of empty streams as null)."""
    streams = [list(s) for s in summary.streams]
    if isinstance(summary, CategoricalSummary):
        return {
            "kind": "categorical",
            "streams": streams,
            "categories": list(summary.categories),
            "count": summary.count.tolist(),
            "missing": summary.missing.tolist(),
            "counts": summary.counts.tolist(),
        }
    m = summary.moments
    return {
        "kind": "numeric",
        "subjects": list(summary.subjects),
        "streams": streams,
        "count": summary.count.tolist(),
        "missing": summary.missing.tolist(),
        "n": m.n.tolist(),
        "mean": m.mean.tolist(),
        "m2": m.m2.tolist(),
        "min": [None if not np.isfinite(v) else v for v in m.minimum.tolist()],
        "max": [None if not np.isfinite(v) else v for v in m.maximum.tolist()],
        "edges": [[None if not np.isfinite(v) else v for v in row] for row in summary.edges.tolist()],
        "bins": summary.bins.tolist(),
    }


def from_plain(data: dict[str, Any]) -> Summary:
    """The inverse of :func:`to_plain`."""
    streams = tuple((str(a), str(v)) for a, v in data["streams"])
    size = len(streams)
    count = np.asarray(data["count"], dtype=np.int64)
    missing = np.asarray(data["missing"], dtype=np.int64)
    if data["kind"] == "categorical":
        categories = tuple(str(c) for c in data["categories"])
        counts = np.asarray(data["counts"], dtype=np.int64).reshape(size, len(categories))
        return CategoricalSummary(streams, categories, count, missing, counts)
    subjects = tuple(str(x) for x in data["subjects"])
    f = len(subjects)
    edges = np.array([[np.inf if v is None else v for v in row] for row in data["edges"]], dtype=np.float64)
    edges = edges.reshape(f, -1) if edges.size else np.zeros((f, 0))
    moments = Moments(
        np.asarray(data["n"], dtype=np.int64),
        np.asarray(data["mean"], dtype=np.float64),
        np.asarray(data["m2"], dtype=np.float64),
        np.array([np.inf if v is None else v for v in data["min"]], dtype=np.float64),
        np.array([-np.inf if v is None else v for v in data["max"]], dtype=np.float64),
    )
    count = count.reshape(f, size)
    missing = missing.reshape(f, size)
    bins = np.asarray(data["bins"], dtype=np.int64).reshape(f, size, edges.shape[1] + 1)
    return NumericSummary(subjects, streams, count, missing, moments, edges, bins)
