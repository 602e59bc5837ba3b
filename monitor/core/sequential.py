"""ADWIN and Page-Hinkley on chunks, for all streams of one subject at once (engine v2).

Each stream's values arrive as chunks (:mod:`monitor.core.chunks`). Once a stream has a scale (the mean
and standard deviation of its reference), every chunk becomes a standardised mean, clipped at ``±Z_CLIP``
so one absurd value moves a chunk, not the detectors' state for good. Page-Hinkley runs over the chunks
of every stream in one compiled pass (:mod:`monitor.core.kernels`; without the compiled module, together
as 2-D arrays, streams × chunks in this batch); ADWIN, river's, gets one call per group of chunks of the
streams that have one. After a change point each stream keeps its statistics since the
change, which is the evidence the alert rules judge.

Page-Hinkley here sees each chunk as ``size`` values at the chunk's mean: its statistic is the per-value
test's, sampled at chunk ends, so it fires at the end of the chunk where the per-value test would have
crossed its threshold, or a chunk later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import signal

from monitor.core import kernels, river_drift
from monitor.core.chunks import Chunks, run_lengths, run_starts, small_unique
from monitor.core.evidence_points import ChunkTrail, spread, verdicts, waiting, z_test
from monitor.core.settings import AlertConfig

_ADWIN_UPDATE = type(river_drift.ADWIN()._helper).update  # river's compiled window's update, unbound

Z_CLIP = 10.0


@dataclass(frozen=True)
class SequentialSettings:
    """The detector settings these streams share (one subject's)."""

    chunk: int = 16  # as DetectorSettings.chunk
    adwin_chunks: int = 2  # ADWIN sees the mean of this many chunks per update: 32 values, as DetectorSettings
    adwin_delta: float = 0.002
    adwin_clock: int = 1
    page_hinkley_delta: float = 0.25
    page_hinkley_threshold: float = 50.0
    page_hinkley_min_instances: int = 30
    page_hinkley_alpha: float = 1.0  # fading per value; a chunk fades by alpha ** chunk


@dataclass(frozen=True)
class Change:
    """A detection: the stream, the detector, and the stream position and event time of the chunk's end."""

    stream: int
    detector: str
    seq: int
    time: float


class SequentialStreams:
    """Per stream: scale, Page-Hinkley state, an ADWIN, and the statistics since the last change point."""

    # Since the last change point, the sum of each complete chunk's z squared times its size: the spread of the
    # values since then (:meth:`spread`). Empty in a snapshot of an earlier release, whose streams read as NaN
    # (not known) until their next change point.
    since_z2 = np.zeros(0)
    # Each stream's last complete chunk's last event time (NaN: none yet, or a snapshot of an earlier release):
    # where a batch that completes none of its chunks judges it (:meth:`DriftJudging.numeric_stream`).
    chunk_time = np.zeros(0)
    # Per batch, never snapshotted: the last update's chunks with their evidence and verdicts, where the drift
    # judgement of that batch judges each stream (:mod:`monitor.core.evidence_points`).
    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("trail",)
    trail: ChunkTrail | None = None  # (a restored table has none until its next update)

    def __init__(self, settings: SequentialSettings) -> None:
        self.settings = settings
        self.trail = None
        self.mean = np.zeros(0)  # the reference scale; NaN until the stream has one
        self.std = np.zeros(0)
        self.ph_n = np.zeros(0)  # Page-Hinkley: values, sum of z, cumulative statistics, their extremes
        self.ph_sum = np.zeros(0)
        self.ph_inc = np.zeros(0)
        self.ph_dec = np.zeros(0)
        self.ph_min = np.zeros(0)
        self.ph_max = np.zeros(0)
        self.since_n = np.zeros(0, dtype=np.int64)  # since the last change point: values, sums of x and z
        self.since_sum = np.zeros(0)
        self.since_z = np.zeros(0)
        self.since_z2 = np.zeros(0)
        self.chunk_time = np.zeros(0)
        self.change_seq = np.zeros(0, dtype=np.int64)
        self.change_time = np.zeros(0)
        self.last_detector: list[str] = []
        self.adwins: list[river_drift.ADWIN | None] = []  # made when the stream gets its scale
        self.adwin_part = np.zeros(0)  # the sum of z of the chunks of each stream's incomplete ADWIN group

    @property
    def size(self) -> int:
        return int(self.mean.size)

    def grow(self, streams: int) -> None:
        """Room for streams 0 to ``streams`` - 1 (a stream without a scale yet has NaN for one)."""
        extra = streams - self.size
        if extra <= 0:
            return

        def more(a: np.ndarray, fill: float) -> np.ndarray:
            return np.concatenate([a, np.full(extra, fill, dtype=a.dtype)])

        self._z2()  # (as long as the streams so far, before they grow)
        self.chunk_times()

        self.mean, self.std = more(self.mean, math.nan), more(self.std, math.nan)
        self.ph_n, self.ph_sum = more(self.ph_n, 0.0), more(self.ph_sum, 0.0)
        self.ph_inc, self.ph_dec = more(self.ph_inc, 0.0), more(self.ph_dec, 0.0)
        self.ph_min, self.ph_max = more(self.ph_min, math.inf), more(self.ph_max, -1.0)
        self.since_n, self.since_sum = more(self.since_n, 0), more(self.since_sum, 0.0)
        self.since_z = more(self.since_z, 0.0)
        self.since_z2 = more(self.since_z2, 0.0)
        self.chunk_time = more(self.chunk_time, math.nan)
        self.change_seq, self.change_time = more(self.change_seq, 0), more(self.change_time, math.nan)
        self.last_detector += [""] * extra
        self.adwin_part = more(self.adwin_part, 0.0)
        self.adwins += [None] * extra

    def set_scale(self, stream: int, mean: float, std: float) -> None:
        """The stream's reference location and spread; a constant reference gets a tiny spread, so any
        movement is large."""
        self.grow(stream + 1)
        self.mean[stream] = mean
        self.std[stream] = std if std > 0 else max(abs(mean) * 1e-3, 1e-9)
        if self.adwins[stream] is None:
            self.adwins[stream] = river_drift.ADWIN(delta=self.settings.adwin_delta, clock=self.settings.adwin_clock)

    def update(self, chunks: Chunks, test: AlertConfig | None = None) -> list[Change]:
        """Chunks ordered by stream, then by position; chunks of streams without a scale are skipped. With
        ``test``, :attr:`trail` holds this update's chunks for the drift judgement (see :meth:`_since_by_chunk`)."""
        self.trail = None
        if not len(chunks):
            return []
        self.grow(int(chunks.stream.max()) + 1)
        size = float(self.settings.chunk)
        scaled = ~np.isnan(self.mean[chunks.stream])
        if not scaled.all():
            chunks = Chunks(*(getattr(chunks, f)[scaled] for f in Chunks.__dataclass_fields__))
            if not len(chunks):
                return []
        stream = chunks.stream
        z = np.clip((chunks.total / size - self.mean[stream]) / self.std[stream], -Z_CLIP, Z_CLIP)
        changes = self._page_hinkley(chunks, z) + self._adwin(chunks, z)
        self._since_by_chunk(chunks, z, changes, test)
        return changes

    def _since_by_chunk(self, chunks: Chunks, z: np.ndarray, changes: list[Change], test: AlertConfig | None) -> None:
        """The statistics since each stream's change point, chunk by chunk: a change point's chunk starts them
        again from after it, and each chunk adds to them in order (each stream's sums chain the same way at any
        batch size, to the last bit). With ``test``, the chunks, their statistics and verdicts are kept in
        :attr:`trail` (:mod:`monitor.core.evidence_points`)."""
        stream = chunks.stream
        c = stream.size
        size = float(self.settings.chunk)
        first = run_starts(stream)
        runs = run_lengths(first, c)
        owners = stream[first]
        cut = np.full(c, -1, dtype=np.int64)  # the change (its place in ``changes``) at each change point's chunk
        if changes:
            run_of = {o: r for r, o in enumerate(owners.tolist())}
            for j, ch in enumerate(changes):
                lo = int(first[run_of[ch.stream]])
                k = lo + int(np.searchsorted(chunks.seq[lo : lo + int(runs[run_of[ch.stream]])], ch.seq))
                if cut[k] < 0:  # two detectors on one chunk: the first found names it, as ``latest`` below
                    cut[k] = j
        before = np.stack([self.since_n[owners].astype(np.float64), self.since_sum[owners], self.since_z[owners],
                           self._z2()[owners]])  # fmt: skip
        # pieces: runs of chunks between change points; a change point's own chunk ends one and leaves nothing
        cuts = np.flatnonzero(cut >= 0)
        after_cut = np.zeros(c, dtype=bool)
        after_cut[cuts[cuts + 1 < c] + 1] = True
        after_cut[first] = False  # (the next stream's first chunk)
        begins_piece = after_cut.copy()
        begins_piece[first] = True
        piece_start = np.flatnonzero(begins_piece)
        run_of_chunk = np.repeat(np.arange(owners.size), runs)
        base = before[:, run_of_chunk[piece_start]]
        base[:, after_cut[piece_start]] = 0.0
        parts = np.stack([np.full(c, size), chunks.total, z * size, z * z * size])
        parts[:, cuts] = 0.0
        since = _chain_sums(parts, run_lengths(piece_start, c), base)
        since[:, cuts] = 0.0
        last = first + runs - 1
        self.since_n[owners] = since[0, last].astype(np.int64)
        self.since_sum[owners], self.since_z[owners] = since[1, last], since[2, last]
        self._z2()[owners] = since[3, last]
        self.chunk_times()[owners] = chunks.end_time[last]
        if test is not None:  # (before the change points below move the streams' own)
            was = ([self.last_detector[o] for o in owners.tolist()], self.change_seq[owners], self.change_time[owners])
        latest: dict[int, Change] = {}
        for k in cuts.tolist():
            latest[int(stream[k])] = changes[int(cut[k])]
        for o, ch in latest.items():
            self.change_seq[o], self.change_time[o] = ch.seq, ch.time
            self.last_detector[o] = ch.detector
        if test is None:
            return
        # the change each chunk's statistics count from: -1 the one before the batch (or none)
        change_of_piece = np.where(after_cut[piece_start], cut[np.maximum(piece_start - 1, 0)], -1)
        change = np.repeat(change_of_piece, run_lengths(piece_start, c))
        change[cuts] = cut[cuts]
        detected = (change >= 0) | np.array([bool(d) for d in was[0]], dtype=bool)[run_of_chunk]
        fire, clear = verdicts(since[0], since[2], since[3], detected, test, size)
        pending = waiting(since[0], since[2], since[3], detected, test, size)
        self.trail = ChunkTrail(
            owners, first, runs, since, chunks.end_time, chunks.seq, fire, clear, change,
            [(ch.detector, ch.seq, ch.time) for ch in changes], *was, pending,
        )  # fmt: skip

    def chunk_times(self) -> np.ndarray:
        """:attr:`chunk_time` as long as the streams (an earlier release's snapshot: NaN, not known)."""
        if self.chunk_time.size < self.size:
            self.chunk_time = np.concatenate([self.chunk_time, np.full(self.size - self.chunk_time.size, math.nan)])
        return self.chunk_time

    def _z2(self) -> np.ndarray:
        """``since_z2`` as long as the streams (streams of an earlier release's snapshot: NaN, not known)."""
        if self.since_z2.size < self.size:
            self.since_z2 = np.concatenate([self.since_z2, np.full(self.size - self.since_z2.size, math.nan)])
        return self.since_z2

    def spread(self) -> np.ndarray:
        """Per stream, the standard deviation of its values' z since the last change point, at least 1 (the
        reference's own): the z-test of the effect divides by it. A heavy tail (a Pareto, infinite variance)
        spreads far wider than its warm-up did, and a test that took 1 read its bursts as changes with p-values
        of 1e-20 (seen from outside). Estimated from the complete chunks' means (each holds ``chunk`` values):
        1 where fewer than two chunks, or not known."""
        return spread(self.since_n.astype(np.float64), self.since_z, self._z2(), float(self.settings.chunk))

    def spread_at(self, i: int) -> float:
        """:meth:`spread` of stream ``i`` alone."""
        if i >= self.size:
            return 1.0
        z2 = self._z2()
        return float(spread(np.array([float(self.since_n[i])]), self.since_z[i : i + 1], z2[i : i + 1],
                             float(self.settings.chunk))[0])  # fmt: skip

    def _page_hinkley(self, chunks: Chunks, z: np.ndarray) -> list[Change]:
        """Every stream's chunks in one compiled pass where built (:mod:`monitor.core.kernels`), else the 2-D
        numpy pass of :meth:`_page_hinkley_2d`; the same changes in the same order."""
        compiled = kernels.native()
        if compiled is None:
            return self._page_hinkley_2d(chunks, z)
        s = self.settings
        stream = chunks.stream
        first = run_starts(stream)
        state = [
            np.ascontiguousarray(a, dtype=np.float64)
            for a in (self.ph_n, self.ph_sum, self.ph_inc, self.ph_dec, self.ph_min, self.ph_max)
        ]
        self.ph_n, self.ph_sum, self.ph_inc, self.ph_dec, self.ph_min, self.ph_max = state
        hit, nth = compiled.page_hinkley(
            np.ascontiguousarray(z, dtype=np.float64), run_lengths(first, stream.size).astype(np.int64),
            stream[first].astype(np.int64), *state, float(s.chunk), float(s.page_hinkley_delta),
            float(s.page_hinkley_threshold), float(s.page_hinkley_min_instances),
            float(s.page_hinkley_alpha**s.chunk),
        )  # fmt: skip
        order = np.lexsort((hit, nth))  # as the 2-D pass finds them: each round of fires, streams in order
        return [
            Change(int(stream[k]), "page_hinkley", int(chunks.seq[k]), float(chunks.end_time[k]))
            for k in hit[order].tolist()
        ]

    def _page_hinkley_2d(self, chunks: Chunks, z: np.ndarray) -> list[Change]:
        """One 2-D pass over every stream's chunks; a stream that fires is reset and run again from there."""
        s = self.settings
        size = float(s.chunk)
        stream = chunks.stream
        found: list[Change] = []
        pending = np.ones(stream.size, dtype=bool)
        while pending.any():
            idx = np.flatnonzero(pending)
            st = stream[idx]
            first = run_starts(st)
            run = run_lengths(first, st.size)
            rank = np.arange(st.size) - np.repeat(first, run)
            owners = st[first]
            grid = np.zeros((owners.size, int(run.max())))
            row = np.repeat(np.arange(owners.size), run)
            grid[row, rank] = z[idx] * size
            valid = np.zeros(grid.shape, dtype=bool)
            valid[row, rank] = True
            n = self.ph_n[owners][:, None] + size * np.cumsum(valid, axis=1)
            total = self.ph_sum[owners][:, None] + np.cumsum(grid, axis=1)
            dev = grid - size * total / n
            drift = size * s.page_hinkley_delta
            inc = self._accumulate(self.ph_inc[owners], np.where(valid, dev - drift, 0.0))
            dec = self._accumulate(self.ph_dec[owners], np.where(valid, dev + drift, 0.0))
            low = np.minimum(np.minimum.accumulate(inc, axis=1), self.ph_min[owners][:, None])
            high = np.maximum(np.maximum.accumulate(dec, axis=1), self.ph_max[owners][:, None])
            hit = valid & (n >= s.page_hinkley_min_instances)
            hit &= (inc - low > s.page_hinkley_threshold) | (high - dec > s.page_hinkley_threshold)
            fired = hit.any(axis=1)
            first_hit = np.argmax(hit, axis=1)
            end = run - 1
            for r in np.flatnonzero(~fired).tolist():  # no detection: keep the state at the stream's last chunk
                o, e = owners[r], end[r]
                self.ph_n[o], self.ph_sum[o] = n[r, e], total[r, e]
                self.ph_inc[o], self.ph_dec[o] = inc[r, e], dec[r, e]
                self.ph_min[o], self.ph_max[o] = low[r, e], high[r, e]
            pending[:] = False
            for r in np.flatnonzero(fired).tolist():
                o, h = int(owners[r]), int(first_hit[r])
                k = idx[first[r] + h]
                found.append(Change(o, "page_hinkley", int(chunks.seq[k]), float(chunks.end_time[k])))
                self.ph_n[o] = self.ph_sum[o] = self.ph_inc[o] = self.ph_dec[o] = 0.0
                self.ph_min[o], self.ph_max[o] = math.inf, -1.0
                rest = idx[first[r] + h + 1 : first[r] + run[r]]
                pending[rest] = True
        return found

    def _accumulate(self, start: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Page-Hinkley's cumulative statistic along each row; with fading, a first-order filter per chunk."""
        fade = self.settings.page_hinkley_alpha**self.settings.chunk
        if fade == 1.0:
            return start[:, None] + np.cumsum(steps, axis=1)
        return signal.lfilter([1.0], [1.0, -fade], steps, axis=1, zi=fade * start[:, None])[0]

    def _adwin(self, chunks: Chunks, z: np.ndarray) -> list[Change]:
        """River's ADWIN, one update per ``adwin_chunks`` chunks of a stream (their mean z): one Python call per
        update is ADWIN's cost, so the group size sets it. River's compiled window is driven directly, and
        replaced by a fresh one after a detection, as river's own wrapper does."""
        every = self.settings.adwin_chunks
        stream, seq = chunks.stream, chunks.seq
        if every == 1:
            done, means = np.arange(stream.size), z
        else:
            k = seq // self.settings.chunk  # the chunk's 1-based number in its stream
            group = (k - 1) // every
            starts = run_starts(stream * (int(group.max()) + 1) + group)
            sums = np.add.reduceat(z, starts)
            first_of_stream = np.zeros(starts.size, dtype=bool)
            first_of_stream[run_starts(stream[starts])] = True
            sums[first_of_stream] += self.adwin_part[stream[starts][first_of_stream]]
            ends = starts + run_lengths(starts, stream.size) - 1
            complete = k[ends] % every == 0
            open_ = ~complete
            self.adwin_part[stream[starts]] = 0.0
            self.adwin_part[stream[ends][open_]] = sums[open_]
            done, means = ends[complete], sums[complete] / every
        adwins = self.adwins
        owners, values = stream[done].tolist(), means.tolist()
        if not owners:
            return []
        distinct, index = small_unique(stream[done])
        windows = [adwins[o]._helper for o in distinct.tolist()]
        # every update through one map in C (a Python loop's overhead per update was most of ADWIN's cost)
        fired = list(map(_ADWIN_UPDATE, map(windows.__getitem__, index.tolist()), values))
        found: list[Change] = []
        r = 0
        while True:
            try:
                j = fired.index(True, r)
            except ValueError:
                return found
            o = owners[j]
            found.append(Change(o, "adwin", int(seq[done[j]]), float(chunks.end_time[done[j]])))
            detector = adwins[o]
            assert detector is not None
            detector._reset()
            r = j + 1
            while r < len(owners) and owners[r] == o:  # the stream's later updates went to the replaced window
                if detector._helper.update(values[r]):
                    found.append(Change(o, "adwin", int(seq[done[r]]), float(chunks.end_time[done[r]])))
                    detector._reset()
                r += 1

    def effect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per stream since the last change point: |mean z| (the effect), the values, and the z-test's
        two-sided p-value."""
        n = self.since_n.astype(np.float64)
        effect = np.abs(np.divide(self.since_z, n, out=np.zeros(self.size), where=n > 0))
        spread_ = self.spread().tolist()
        p = [z_test(e, m, w) if m else 1.0 for e, m, w in zip(effect.tolist(), n.tolist(), spread_, strict=True)]
        return effect, self.since_n, np.array(p)


def _chain_sums(parts: np.ndarray, runs: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per run of columns of ``parts`` (a row per quantity), the running sums from the run's ``base`` column,
    each the previous one plus the column (compiled where built; else one padded 2-D pass, the same sums)."""
    compiled = kernels.native()
    if compiled is not None:
        out: np.ndarray = compiled.chain_sums(
            np.ascontiguousarray(parts, dtype=np.float64), np.ascontiguousarray(runs, dtype=np.int64),
            np.ascontiguousarray(base, dtype=np.float64),
        )  # fmt: skip
        return out
    starts = np.r_[0, np.cumsum(runs)[:-1]].astype(np.int64)
    run = np.repeat(np.arange(runs.size), runs)
    rank = np.arange(parts.shape[1]) - starts[run]
    grid = np.zeros((parts.shape[0], runs.size, int(runs.max(initial=0)) + 1))
    grid[:, :, 0] = base
    grid[:, run, rank + 1] = parts
    return np.add.accumulate(grid, axis=2)[:, run, rank + 1]
