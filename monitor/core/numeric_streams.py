"""The numeric streams of one model version that share detector settings, as arrays.

A numeric subject (a feature or the prediction) has one stream per bucket: all traffic and each tracked
segment value. Engine v1 kept one Python object per stream and updated each on every batch; here a batch
updates every stream with a few numpy calls over the values grouped by stream (one contiguous run per
stream, arrival order kept within it):

- counts, missing values, moments (Chan's merge), minimum and maximum;
- a warm-up of ``warmup_events`` values per stream that becomes the stream's baseline, without gross
  outliers (:func:`~monitor.core.stats.without_gross_outliers`), so one absurd value cannot blind the
  detectors for good;
- after the warm-up, a histogram on the baseline's scale (quantiles for the views; fixed bins, so
  partial histograms add up) and chunks of ``detectors.chunk`` values for the sequential detectors
  (:mod:`monitor.core.chunks`, :mod:`monitor.core.sequential`): Page-Hinkley over the chunk means of all
  streams at once, river's ADWIN one call per ``detectors.adwin_chunk`` values of a stream.

Python loops remain only where the work is per stream and rare: streams still in their warm-up, and
streams whose detector fired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from monitor.core import kernels
from monitor.core.cells import CELLS, HISTOGRAM_BINS, HISTOGRAM_SD, cells, cells_by_run
from monitor.core.chunks import StreamChunker, counts_by_run, run_lengths, run_starts
from monitor.core.drift import QUANTILES, DriftEvidence, NumericDriftTracker
from monitor.core.evidence_points import ChunkTrail, EvidencePoint, spread, z_test
from monitor.core.sequential import Z_CLIP, SequentialSettings, SequentialStreams
from monitor.core.settings import AlertConfig, DetectorSettings
from monitor.core.significance import ClosedWindows, Reference
from monitor.core.stats import without_gross_outliers_many
from monitor.core.windows import NumericWindows


def stream_layout(
    matrix: np.ndarray, grouped: np.ndarray | None, ids: np.ndarray, lengths: np.ndarray, times: np.ndarray,
    positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """A batch's values for :meth:`NumericStreams.update`: every subject (a row of ``matrix``, one value per
    batch row) for every bucket, one stream after another. ``grouped``: the buckets' rows one after another
    (None: a single bucket of every row), ``lengths[b]`` of them for bucket ``b``; ``ids[f, b]`` the stream of
    subject ``f`` in bucket ``b``; ``times`` and ``positions`` by place in ``grouped``. Returns (values,
    stream, times, positions). One pass when compiled (:mod:`monitor.core.kernels`)."""
    compiled = kernels.native()
    if compiled is not None:
        rows = np.arange(matrix.shape[1], dtype=np.int64) if grouped is None else grouped
        out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = compiled.stream_layout(
            np.ascontiguousarray(matrix, dtype=np.float64), np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(lengths, dtype=np.int64),
            np.ascontiguousarray(times, dtype=np.float64), np.ascontiguousarray(positions, dtype=np.int64),
        )  # fmt: skip
        return out
    subjects = matrix.shape[0]
    values = (matrix if grouped is None else matrix[:, grouped]).ravel()
    stream = np.repeat(ids.ravel(), np.tile(lengths, subjects))
    return values, stream, np.tile(times, subjects), np.tile(positions, subjects)


# A group of several subjects whose batch holds a value in at most this share of its (subject, row) cells is laid
# out by its present values only (:func:`present_layout`): events that each carry a few of many optional features.
SPARSE_SHARE = 0.25


def present_layout(
    matrix: np.ndarray, grouped: np.ndarray | None, ids: np.ndarray, lengths: np.ndarray, times: np.ndarray,
    positions: np.ndarray, present: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """:func:`stream_layout` without its missing values (NaN), and how many each (subject, bucket) cell's stream
    had, as (streams, counts) for :meth:`NumericStreams.update`: the same values in the same order, for work in
    proportion to the values present rather than to subjects times rows. ``present``: ``~np.isnan(matrix)``,
    when the caller has it already."""
    rows = np.arange(matrix.shape[1], dtype=np.int64) if grouped is None else grouped
    if int(lengths.sum()) != rows.size or times.size != rows.size or positions.size != rows.size:
        raise ValueError("a time and position per grouped row, and bucket lengths that add up to them")
    matrix = np.asarray(matrix, dtype=np.float64)
    present = (~np.isnan(matrix) if present is None else present)[:, rows]
    subject, at = np.nonzero(present)  # subject by subject, each in its buckets' order: stream_layout's order
    bucket_of = np.repeat(np.arange(lengths.size), lengths)
    missing = np.empty(ids.shape, dtype=np.int64)
    lo = 0
    for b, n in enumerate(lengths.tolist()):  # (a few buckets: all traffic and the segment values)
        missing[:, b] = n - np.count_nonzero(present[:, lo : lo + n], axis=1)
        lo += n
    has = missing > 0
    return matrix[subject, rows[at]], ids[subject, bucket_of[at]], times[at], positions[at], (ids[has], missing[has])


class NumericStreams:
    """Numeric streams, each named by a key (subject, segment attribute, value) and indexed from 0.

    >>> s = NumericStreams(DetectorSettings(warmup_events=200))
    >>> i = s.add_stream(("x", "", ""))
    >>> rng = np.random.default_rng(0)
    >>> list(s.update(rng.normal(10, 2, 2000), np.arange(2000.0), np.zeros(2000, dtype=np.int64)))
    []
    >>> s.evidence(i).detected
    False
    >>> list(s.update(rng.normal(14, 2, 2000), np.arange(2000.0, 4000.0), np.zeros(2000, dtype=np.int64)))
    []
    >>> ev = s.evidence(i)
    >>> (ev.detected, ev.effect > 1.5, ev.direction)
    (True, True, 'rose')
    """

    kind = "numeric"
    # A cache, never snapshotted: each bucket's stream ids of the last subjects (see :meth:`known_ids`).
    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("_layout",)
    _layout: tuple[int, tuple[str, ...], dict[tuple[str, str], np.ndarray]]  # (streams, subjects, ids by bucket)

    def __init__(self, settings: DetectorSettings, windows: NumericWindows | None = None) -> None:
        self.warmup = settings.warmup_events
        self.windows = windows  # the streams' baseline window tests, when significance testing is on
        self.keys: list[tuple[str, str, str]] = []
        self.index: dict[tuple[str, str, str], int] = {}
        self.count = np.zeros(0, dtype=np.int64)  # values offered, missing ones included
        self.missing = np.zeros(0, dtype=np.int64)
        self.n = np.zeros(0, dtype=np.int64)  # present values
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self.minimum = np.zeros(0)
        self.maximum = np.zeros(0)
        self.base_n = np.zeros(0, dtype=np.int64)  # the baseline: warm-up values kept after the outlier filter
        self.base_mean = np.zeros(0)
        self.base_std = np.zeros(0)
        self.histogram = np.zeros((0, CELLS), dtype=np.int64)
        self.detections = np.zeros((0, 2), dtype=np.int64)  # ADWIN, Page-Hinkley
        # The warm-up values of streams without a baseline yet. None: the stream's window test is learning its
        # reference from the same first values (and at least as many), so they are read from there, not kept twice.
        self.warm: dict[int, np.ndarray | None] = {}
        self.chunker = StreamChunker(settings.chunk)
        self.detectors = SequentialStreams(
            SequentialSettings(
                chunk=settings.chunk,
                adwin_chunks=max(1, settings.adwin_chunk // settings.chunk),
                adwin_delta=settings.adwin_delta,
                adwin_clock=settings.adwin_clock,
                page_hinkley_delta=settings.page_hinkley_delta,
                page_hinkley_threshold=settings.page_hinkley_threshold,
                page_hinkley_min_instances=settings.page_hinkley_min_instances,
                page_hinkley_alpha=settings.page_hinkley_alpha,
            )
        )

    @property
    def size(self) -> int:
        return len(self.keys)

    def add_stream(self, key: tuple[str, str, str], reference: Reference | None = None) -> int:
        """A new stream, tested against ``reference`` if given (else against what it learns); its index."""
        return self.add_streams([key], [reference])[0]

    def add_streams(self, keys: list[tuple[str, str, str]], references: list[Reference | None]) -> list[int]:
        """New streams (:meth:`add_stream` for each), the arrays grown once for all of them: grown one stream at a
        time, a batch that brought thousands of new streams (a segment attribute of many values) copied every
        array, the histograms too, once per stream."""
        first, extra = len(self.keys), len(keys)
        if len(references) != extra:
            raise ValueError(f"{extra} stream keys with {len(references)} references")
        if self.windows is not None:
            self.windows.add_streams(references)

        def more(a: np.ndarray, fill: float) -> np.ndarray:
            return np.concatenate([a, np.full((extra, *a.shape[1:]), fill, dtype=a.dtype)])

        self.count, self.missing, self.n = more(self.count, 0), more(self.missing, 0), more(self.n, 0)
        self.mean, self.m2 = more(self.mean, 0.0), more(self.m2, 0.0)
        self.minimum, self.maximum = more(self.minimum, math.inf), more(self.maximum, -math.inf)
        self.base_n = more(self.base_n, 0)
        self.base_mean, self.base_std = more(self.base_mean, 0.0), more(self.base_std, 0.0)
        self.histogram, self.detections = more(self.histogram, 0), more(self.detections, 0)
        shared = self.windows is not None and self.windows.baseline_events >= self.warmup
        profiled = [
            first + k
            for k, reference in enumerate(references)
            if reference is not None
            and reference.events >= self.warmup
            and reference.std > 0
            and math.isfinite(reference.mean)
        ]  # a baseline profile's stream: the detectors standardise on it from the first value, not on the first
        # live ones (a Monday night's, when the profile has the whole week)
        if profiled:
            self.detectors.grow(profiled[-1] + 1)  # (once, not by one stream a time)
        for k, (key, reference) in enumerate(zip(keys, references, strict=True)):
            i = self.index[key] = first + k
            self.keys.append(key)
            self.warm[i] = None if shared and reference is None else np.empty(0)
        for i in profiled:
            reference = references[i - first]
            assert reference is not None
            del self.warm[i]
            self.base_n[i], self.base_mean[i], self.base_std[i] = reference.events, reference.mean, reference.std
            self.detectors.set_scale(i, reference.mean, reference.std)
        return list(range(first, first + extra))

    def warmed_up(self, i: int) -> bool:
        return i not in self.warm

    def known_ids(self, names: tuple[str, ...], buckets: tuple[tuple[str, str], ...]) -> np.ndarray | None:
        """The stream ids (subjects x buckets) kept by :meth:`keep_ids` for these subjects, bucket by bucket, if
        every bucket is kept and no stream was added since: most batches bring the same streams, and finding each
        by its key took a look-up per stream per batch (a small batch brings a few of the segment values, a
        different few each time)."""
        kept = self.__dict__.get("_layout")
        if kept is None or kept[0] != self.size or kept[1] != names:
            return None
        columns = kept[2]
        if not all(bucket in columns for bucket in buckets):
            return None
        return np.stack([columns[bucket] for bucket in buckets], axis=1)

    def keep_ids(self, names: tuple[str, ...], buckets: tuple[tuple[str, str], ...], ids: np.ndarray) -> None:
        """Keep each bucket's column of ``ids`` (subjects x buckets) for :meth:`known_ids`."""
        kept = self.__dict__.get("_layout")
        if kept is None or kept[0] != self.size or kept[1] != names:
            kept = self._layout = (self.size, names, {})
        kept[2].update((bucket, ids[:, b].copy()) for b, bucket in enumerate(buckets))

    def adopt(self, key: tuple[str, str, str], old: NumericDriftTracker) -> int:
        """A stream from an older release's snapshot (one tracker object per stream): counts, moments, the
        baseline and ADWIN's window carry over, and so does the evidence since the last change point.
        Page-Hinkley restarts (the old one ran on single values, this one on chunk means), and the quantile
        histogram starts from the old reservoir, weighted up to the values it stood for."""
        i = self.add_stream(key)
        m = old.moments
        self.count[i], self.missing[i], self.n[i] = old.count, old.missing, m.n
        self.mean[i], self.m2[i], self.minimum[i], self.maximum[i] = m.mean, m.m2, m.minimum, m.maximum
        if not old.warmed_up:
            warm = self.warm[i] = old._warm[: self.warmup].copy()  # kept here: the window test may not share it
            if warm.size >= self.warmup:
                self._finish_warmups([i])
            return i
        del self.warm[i]
        b = old.baseline
        self.base_n[i], self.base_mean[i], self.base_std[i] = b.n, b.mean, b.std
        d = self.detectors
        d.set_scale(i, b.mean, b.std)
        d.adwins[i] = old.adwin._adwin  # river's ADWIN on standardised chunk means then and now
        d.since_n[i], d.since_sum[i], d.since_z[i] = old._since_n, old._since_sum, old._since_zsum
        d._z2()[i] = math.nan  # (not kept then)
        d.last_detector[i] = old.last_detector
        d.change_seq[i], d.change_time[i] = old.change_seq - self.warmup, old.change_time
        self.detections[i] = old.detections["adwin"], old.detections["page_hinkley"]
        sample = old.quantiles.sample
        if sample.size:  # the reservoir, weighted up to the values it stands for
            lo, width = self._edges(i)
            counts = np.bincount(cells(sample, lo, width), minlength=CELLS) * (m.n / sample.size)
            self.histogram[i] = np.round(counts).astype(np.int64)
        self.chunker._grow(i + 1)
        after = max(0, m.n - self.warmup)
        adwin_values = self.chunker.size * self.detectors.settings.adwin_chunks
        self.chunker.count[i] = after - after % adwin_values  # chunks start afresh where an ADWIN update starts
        return i

    # ------------------------------------------------------------------ update
    def update(
        self, values: np.ndarray, times: np.ndarray, stream: np.ndarray, positions: np.ndarray | None = None,
        test: AlertConfig | None = None, missing: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ClosedWindows:  # fmt: skip
        """Values (``NaN`` missing) grouped by stream, one contiguous run per stream, in arrival order, with
        their partition positions (for the window tests' rounds); the windows that closed (none without a
        window test). With ``test`` (the alert settings), the batch's complete chunks with their evidence are kept
        for :meth:`chunks_of` until the next update. ``missing``: (streams, counts) of missing values left out of
        ``values`` (:func:`present_layout`), counted as if they had come as NaN."""
        self.detectors.trail = None
        closed = ClosedWindows.empty(0, "") if self.windows is None else self.windows.nothing_closed()
        if missing is not None:  # values the caller left out (present_layout): counted as the NaN they were
            np.add.at(self.count, missing[0], missing[1])
            np.add.at(self.missing, missing[0], missing[1])
        if values.size == 0:
            return closed
        starts = run_starts(stream)
        owners = stream[starts]
        self.count[owners] += run_lengths(starts, stream.size)
        present = ~np.isnan(values)
        if not present.all():
            self.missing[owners] += np.add.reduceat(~present, starts)
            values, times, stream = values[present], times[present], stream[present]
            if positions is not None:
                positions = positions[present]
            if values.size == 0:
                return closed
            starts = run_starts(stream)
            owners = stream[starts]
        runs = run_lengths(starts, stream.size)
        # every value's histogram cell on its stream's scale as the batch begins: large batches' window tests bin
        # on them (cells.EdgeLookup; small ones search the edges), and so does the histogram unless a stream's
        # warm-up ends in this batch
        lo, width = self._edges_known(owners)
        value_cells = cells_by_run(values, runs, lo, width)
        if self.windows is not None:
            where = positions if positions is not None else np.full(values.size, -1, dtype=np.int64)
            closed = self.windows.update(values, times, where, stream, cells=value_cells, scale=(lo, width))
        before = self.n[owners]
        with np.errstate(over="ignore", invalid="ignore"):  # absurd values (1e308) make inf moments, as they should
            self._moments(values, starts, owners, runs)
        warming = bool((before < self.warmup).any())
        if warming:
            self._warm_up(values, starts, owners, runs)
        if self.windows is not None:
            self.windows.learned = {}  # read by the warm-up only: never kept past the batch
        if warming:
            position = np.repeat(before - starts, runs) + np.arange(values.size)  # among the stream's present values
            later = position >= self.warmup
            values, times, stream = values[later], times[later], stream[later]
            if values.size == 0:
                return closed
            starts = run_starts(stream)
            owners, runs = stream[starts], run_lengths(starts, stream.size)
            self._count_bins(values, owners, runs)  # on the scales the warm-ups that ended in this batch set
        else:
            self._count_bins(values, owners, runs, value_cells)
        changes = self.detectors.update(self.chunker.add_grouped(values, times, stream), test)
        for c in changes:
            self.detections[c.stream, 0 if c.detector == "adwin" else 1] += 1
        return closed

    def _moments(self, x: np.ndarray, starts: np.ndarray, owners: np.ndarray, runs: np.ndarray) -> None:
        """Each run's moments (compiled where built: two passes a run), merged into its stream's (Chan)."""
        k = runs.astype(np.float64)
        compiled = kernels.native()
        if compiled is not None:
            total, b_m2, low, high = compiled.run_moments(np.ascontiguousarray(x, dtype=np.float64), runs)
            b_mean = total / k
        else:
            b_mean = np.add.reduceat(x, starts) / k
            b_m2 = np.add.reduceat((x - np.repeat(b_mean, runs)) ** 2, starts)
            low, high = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
        n_old = self.n[owners].astype(np.float64)
        n_new = n_old + k
        delta = b_mean - self.mean[owners]
        self.mean[owners] += delta * k / n_new
        self.m2[owners] += b_m2 + delta * delta * n_old * k / n_new
        self.n[owners] += runs
        self.minimum[owners] = np.minimum(self.minimum[owners], low)
        self.maximum[owners] = np.maximum(self.maximum[owners], high)

    def _warm_up(self, x: np.ndarray, starts: np.ndarray, owners: np.ndarray, runs: np.ndarray) -> None:
        """The warm-up values of the streams still in theirs; a full warm-up becomes the baseline."""
        full: list[int] = []
        for s, a, r in zip(owners.tolist(), starts.tolist(), runs.tolist(), strict=True):
            if s not in self.warm:
                continue
            own = self.warm[s]
            if own is None:  # the window test holds the values, this batch's included
                if self._warm_values(s).size >= self.warmup:
                    full.append(s)
                continue
            need = self.warmup - own.size
            self.warm[s] = own = np.concatenate([own, x[a : a + min(need, r)]])
            if own.size >= self.warmup:
                full.append(s)
        if full:
            self._finish_warmups(list(dict.fromkeys(full)))  # (one run a stream: each once)

    def _warm_values(self, s: int) -> np.ndarray:
        """Stream ``s``'s warm-up values so far (at most ``warmup``)."""
        own = self.warm[s]
        if own is not None:
            return own
        assert self.windows is not None
        held = self.windows.warm.get(s)
        if held is None:
            held = self.windows.learned[s]  # the window test finished learning in this very batch
        return held[: self.warmup]

    def own_warmup(self, i: int) -> None:
        """Keep stream ``i``'s warm-up values here from now on (its window test is about to start again)."""
        if self.warm.get(i, 0) is None:
            self.warm[i] = self._warm_values(i).copy()

    def _finish_warmups(self, streams: list[int]) -> None:
        """Full warm-ups become baselines, the outlier filters of warm-ups of one size computed together and the
        detectors' arrays grown once (grown by one stream at a time, thousands copied every array each)."""
        values = [self._warm_values(s)[: self.warmup] for s in streams]
        self.detectors.grow(max(streams) + 1)
        for s, kept in zip(streams, without_gross_outliers_many(values), strict=True):
            del self.warm[s]
            with np.errstate(over="ignore", invalid="ignore"):  # values near the float limit: an infinite spread
                mean = float(kept.mean())
                std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
            self.base_n[s], self.base_mean[s], self.base_std[s] = kept.size, mean, std
            self.detectors.set_scale(s, mean, std)
        # every warm-up into its histogram on the scale just set, in one pass (one run a stream)
        self._count_bins(np.concatenate(values), np.asarray(streams), np.fromiter(map(len, values), np.int64))

    def _count_bins(self, x: np.ndarray, owners: np.ndarray, runs: np.ndarray, given: np.ndarray | None = None) -> None:
        """Values (one run per stream of ``owners``, ``runs`` long) into their streams' histograms: in the
        ``given`` cells, or in cells on the streams' scales now."""
        if given is None:
            lo, width = self._edges(owners)
            given = cells_by_run(x, runs, lo, width)
        self.histogram[owners] += counts_by_run(given, runs, CELLS)

    def _edges_known(self, streams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`_edges`, NaN for streams the sequential detectors have not met yet (no scale either)."""
        if int(streams.max()) < self.detectors.size:
            return self._edges(streams)
        lo, width = np.full(streams.size, np.nan), np.full(streams.size, np.nan)
        met = streams < self.detectors.size
        lo[met], width[met] = self._edges(streams[met])
        return lo, width

    def _edges(self, stream: np.ndarray | int) -> tuple[Any, Any]:
        mean = self.detectors.mean[stream]
        std = self.detectors.std[stream]  # the baseline's spread, never 0
        return mean - HISTOGRAM_SD * std, 2 * HISTOGRAM_SD * std / HISTOGRAM_BINS

    # ------------------------------------------------------------------- views
    def evidence(self, i: int) -> DriftEvidence:
        """Is there evidence of a change in stream ``i`` now, and how large is it (in baseline sd)? Its
        incomplete chunk counts too, so a view does not wait for a chunk to complete."""
        d = self.detectors
        n, total, zsum = self._since_change(i)
        detector = d.last_detector[i] if i < d.size else ""
        return self._evidence(
            i, n, total, zsum, d.spread_at(i), detector,
            int(d.change_seq[i]) if detector else 0, float(d.change_time[i]) if detector else math.nan,
        )  # fmt: skip

    def chunks_of(self, i: int) -> tuple[ChunkTrail, slice] | None:
        """Stream ``i``'s complete chunks in the last update, with their evidence and verdicts, where the drift
        judgement can judge it (:mod:`monitor.core.evidence_points`); None when it completed none."""
        trail = self.detectors.trail
        if trail is None:
            return None
        where = trail.chunks_of(i)
        return None if where is None else (trail, where)

    def position(self, i: int) -> int:
        """Stream ``i``'s values in complete chunks so far: where the alert timers count its events."""
        if i >= self.chunker.count.size:
            return 0
        count = int(self.chunker.count[i])
        return count - count % self.chunker.size

    def chunk_time(self, i: int) -> float:
        """The last event time of stream ``i``'s last complete chunk (NaN: none, or not known)."""
        d = self.detectors
        return float(d.chunk_times()[i]) if i < d.size else math.nan

    def judged_evidence(self, i: int, at: EvidencePoint | None = None) -> DriftEvidence:
        """The evidence an alert is judged on: at the judging point ``at``, else over the complete chunks since
        the change point: the evidence the chunks' verdicts test (an incomplete chunk's values are left out)."""
        d = self.detectors
        if at is None:
            if i >= d.size:
                return self._evidence(i, 0, 0.0, 0.0, 1.0, "", 0, math.nan)
            detector = d.last_detector[i]
            at = EvidencePoint(
                int(d.since_n[i]), float(d.since_sum[i]), float(d.since_z[i]), float(d._z2()[i]), math.nan,
                self.position(i), detector, int(d.change_seq[i]), float(d.change_time[i]),
            )  # fmt: skip
        n = np.array([float(at.n)])
        wide = float(spread(n, np.array([at.zsum]), np.array([at.z2]), float(d.settings.chunk))[0])
        return self._evidence(
            i, at.n, at.total, at.zsum, wide, at.detector,
            at.change_seq if at.detector else 0, at.change_time if at.detector else math.nan,
        )  # fmt: skip

    def _evidence(
        self, i: int, n: int, total: float, zsum: float, wide: float, detector: str, change_seq: int,
        change_time: float,
    ) -> DriftEvidence:  # fmt: skip
        """Evidence from the statistics since the change point: ``n`` values, their ``total``, the sum of their
        z (``zsum``), the z spread ``wide`` (at least 1) and the change point's detector, position and time."""
        mean = float(self.base_mean[i])
        effect = abs(zsum / n) if n else 0.0
        current_mean = total / n if n else math.nan
        p_value = z_test(effect, n, wide) if n else None
        direction = "" if not n else ("rose" if current_mean > mean else "fell")
        return DriftEvidence(
            detected=bool(detector),
            effect=effect,
            events=n,
            detector=detector or "adwin",
            change_seq=change_seq + self.warmup if detector else 0,
            change_time=change_time,
            p_value=p_value,
            baseline={"mean": mean, "std": float(self.base_std[i]), "events": int(self.base_n[i])},
            current={"mean": current_mean, "events": n},
            direction=direction,
        )

    def _since_change(self, i: int) -> tuple[int, float, float]:
        """Values, their sum and their sum of z since stream ``i``'s last change point (or its warm-up), the
        incomplete chunk included."""
        d = self.detectors
        if i >= d.size:
            return 0, 0.0, 0.0
        n, total, zsum = int(d.since_n[i]), float(d.since_sum[i]), float(d.since_z[i])
        if i not in self.warm:
            k, part = self.chunker.partial(i)
            if k:
                z = (part / k - float(d.mean[i])) / float(d.std[i])
                n, total, zsum = n + k, total + part, zsum + k * min(max(z, -Z_CLIP), Z_CLIP)
        return n, total, zsum

    def effect(self, i: int) -> float:
        """The evidence's effect alone (|mean z| since the change point), for views that need nothing else."""
        n, _, zsum = self._since_change(i)
        return abs(zsum / n) if n else 0.0

    def quantiles(self, i: int) -> list[float]:
        """The view's quantiles: exact over the warm-up, from the histogram after it (within half a bin)."""
        if i in self.warm:
            w = self._warm_values(i)
            return np.quantile(w, QUANTILES).tolist() if w.size else [math.nan] * len(QUANTILES)
        counts = self.histogram[i]
        total = int(counts.sum())
        if not total:
            return [math.nan] * len(QUANTILES)
        lo, width = self._edges(i)
        inner = float(lo) + float(width) * np.arange(HISTOGRAM_BINS + 1)
        edges = np.r_[min(float(self.minimum[i]), inner[0]), inner, max(float(self.maximum[i]), inner[-1])]
        cum = np.r_[0, np.cumsum(counts)] / total
        out = np.interp(QUANTILES, cum, edges)
        return np.clip(out, self.minimum[i], self.maximum[i]).tolist()

    def view(self, i: int) -> dict[str, Any]:
        n = int(self.n[i])
        return {
            "kind": self.kind,
            "count": int(self.count[i]),
            "missing": int(self.missing[i]),
            "mean": float(self.mean[i]) if n else math.nan,
            "std": math.sqrt(float(self.m2[i]) / (n - 1)) if n > 1 else 0.0,
            "min": float(self.minimum[i]),
            "max": float(self.maximum[i]),
            "quantiles": dict(zip(QUANTILES, self.quantiles(i), strict=True)),
            "detections": NumericStream(self, i).detections,
            "warmed_up": self.warmed_up(i),
        }


@dataclass(frozen=True)
class NumericStream:
    """One stream of a :class:`NumericStreams`, for code that judges or shows one stream at a time."""

    streams: NumericStreams
    i: int
    point: EvidencePoint | None = None  # the chunk it is judged at in this batch (DriftJudging.numeric_stream)

    kind = "numeric"

    @property
    def count(self) -> int:
        return int(self.streams.count[self.i])

    @property
    def missing(self) -> int:
        return int(self.streams.missing[self.i])

    @property
    def mean(self) -> float:
        return float(self.streams.mean[self.i]) if self.streams.n[self.i] else math.nan

    @property
    def detections(self) -> dict[str, int]:
        adwin, page_hinkley = self.streams.detections[self.i].tolist()
        return {"adwin": adwin, "page_hinkley": page_hinkley}

    @property
    def effect(self) -> float:
        return self.streams.effect(self.i)

    def evidence(self) -> DriftEvidence:
        return self.streams.evidence(self.i)

    def judged_evidence(self) -> DriftEvidence:
        return self.streams.judged_evidence(self.i, self.point)

    @property
    def position(self) -> int:
        """Where its judgement is, in the stream's values in complete chunks (the alert timers' event count)."""
        return self.point.position if self.point is not None else self.streams.position(self.i)

    def view(self) -> dict[str, Any]:
        return self.streams.view(self.i)
