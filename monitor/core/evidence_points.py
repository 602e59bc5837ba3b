"""Where in a batch a numeric stream's drift is judged, so that the batch does not choose it.

A numeric stream's evidence since its change point (values, their sum, sums of z) grows chunk by chunk
(:mod:`monitor.core.sequential`). Judged at batch ends, an alert's details moved with the batch size: a large
batch brought values past the point where the alert condition first held, and the alert counted them, showed
their mean and took the batch's last event time as ``detected_at`` (and its incident id with it). Here a batch
leaves a :class:`ChunkTrail`: every complete chunk's evidence and whether it fires and clears by the alert
settings. The drift judgement judges a stream at the first chunk of the batch where its alert's lifecycle
would move (:meth:`~monitor.core.alerting.Lifecycle.first_change`: open, start to clear, stop clearing,
resolve), else at its last chunk, each at that chunk's last event time and stream position. Chunks end at
the stream's own value counts, so the same values give the same judgements at any batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.core.settings import AlertConfig


@dataclass(frozen=True)
class EvidencePoint:
    """A stream's statistics since its change point, as of the end of one chunk."""

    n: int  # values since the change point
    total: float  # their sum
    zsum: float  # the sum over chunks of z times the chunk's size
    z2: float  # the sum over chunks of z squared times the chunk's size
    time: float  # the chunk's last event time
    position: int  # the stream's values chunked at its end (its seq: where the alert timers count events)
    detector: str  # the detector of the change point ("" for none)
    change_seq: int
    change_time: float


def spread(n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, size: float) -> np.ndarray:
    """The values' z standard deviation from ``n`` values in chunks of ``size`` (``zsum`` and ``z2`` as in
    :class:`EvidencePoint`): ``size`` times the chunk means' variance, at least 1, and 1 with fewer than two
    chunks or when not known (NaN)."""
    chunks = n / size
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = zsum / n
        var = size * (z2 / n - mean**2) * chunks / (chunks - 1)
    return np.sqrt(np.where((chunks >= 2) & np.isfinite(var), np.maximum(var, 1.0), 1.0))


def z_test(effect: float, n: float, wide: float) -> float:
    """The two-sided z-test's p-value of a mean ``effect`` (in baseline sd) over ``n`` values whose z spread is
    ``wide``: the one the drift judgement reads and :func:`verdicts` checks (one function, so that the two never
    differ in the last bit)."""
    return math.erfc(effect * math.sqrt(n) / (math.sqrt(2) * wide))


def verdicts(
    n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, detected: np.ndarray, test: AlertConfig, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per entry, whether the sequential evidence fires (a change point, enough values, significant and large
    enough) and whether it clears (enough values, small enough), as the drift judgement reads them by the alert
    settings ``test``."""
    enough = n >= test.min_events
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.abs(zsum / np.where(enough, n, 1.0))
    clear = enough & (effect < test.min_effect_size * test.resolve_ratio)
    fire = detected & enough & (effect >= test.min_effect_size)
    maybe = np.flatnonzero(fire)  # the p-value only where the rest holds: few entries, most batches none
    if maybe.size:
        wide = spread(n[maybe], zsum[maybe], z2[maybe], size).tolist()
        fire[maybe] = [
            z_test(e, m, w) < test.max_p_value
            for e, m, w in zip(effect[maybe].tolist(), n[maybe].tolist(), wide, strict=True)
        ]
    return fire, clear


def waiting(
    n: np.ndarray, zsum: np.ndarray, z2: np.ndarray, detected: np.ndarray, test: AlertConfig, size: float
) -> np.ndarray:
    """Per entry, whether the sequential evidence is a change found, significant and large enough, that has not
    had ``test.min_events`` values yet: what the drift judgement calls pending (attribution lets all traffic
    wait for such a segment: :func:`~monitor.core.alerting.pending_local_change`)."""
    early = detected & (n > 0) & (n < test.min_events)
    maybe = np.flatnonzero(early)
    out = np.zeros(n.size, dtype=bool)
    if maybe.size:
        effect = np.abs(zsum[maybe] / n[maybe])
        wide = spread(n[maybe], zsum[maybe], z2[maybe], size).tolist()
        out[maybe] = [
            e >= test.min_effect_size and z_test(e, m, w) < test.max_p_value
            for e, m, w in zip(effect.tolist(), n[maybe].tolist(), wide, strict=True)
        ]
    return out


@dataclass
class ChunkTrail:
    """One batch's complete chunks of a table's streams (one run of chunks per stream, in order): each chunk's
    statistics since its change point, its verdicts, and the change point they count from."""

    owners: np.ndarray  # (r,) the stream of each run
    first: np.ndarray  # (r,) where each run starts
    runs: np.ndarray  # (r,) its length
    since: np.ndarray  # (4, c) values, sum, sum of z times size, sum of z squared times size
    time: np.ndarray  # (c,) each chunk's last event time
    seq: np.ndarray  # (c,) the stream's values chunked at its end
    fire: np.ndarray  # (c,) bool
    clear: np.ndarray  # (c,) bool
    change: np.ndarray  # (c,) the change point each chunk counts from: its place in ``changes``, -1 the run's before
    changes: list[tuple[str, int, float]]  # the batch's change points: (detector, seq, time)
    before_detector: list[str]  # (r,) each run's change point before the batch ("": none), its seq and time
    before_seq: np.ndarray
    before_time: np.ndarray
    pending: np.ndarray | None = None  # (c,) bool: :func:`waiting` (None: not worked out)
    _where: dict[int, int] | None = None

    def chunks_of(self, stream: int) -> slice | None:
        """The places of ``stream``'s chunks in this batch, or None when it completed none."""
        if self._where is None:
            self._where = {o: r for r, o in enumerate(self.owners.tolist())}
        r = self._where.get(stream)
        if r is None:
            return None
        lo = int(self.first[r])
        return slice(lo, lo + int(self.runs[r]))

    def still_waiting(self, chunks: slice, at: int) -> int:
        """The chunk to judge a segment at, rather than ``at`` (the last of ``chunks``, where its alert's
        lifecycle does not move): the last of them whose change was pending, when ``at`` holds no value since a
        change point placed after it. Judged between batches, the segment would have been noted as waiting then
        and gone on waiting with that shift (``DriftJudging._note_pending``); judged only at the batch's last
        chunk, a second detector's later change point left it nothing to wait with, and all traffic paged for
        the segment's diluted change first (seen at 1,000-row batches, not at 333 or 4,000)."""
        if self.pending is None or self.since[0, at] > 0 or self.change[at] < 0:
            return at
        found = np.flatnonzero(self.since[0, chunks.start : at] > 0)  # its last chunk with values since a change
        if not found.size:
            return at
        k = chunks.start + int(found[-1])
        return k if self.pending[k] else at  # still waiting there, as a batch that ended there would have noted

    def point(self, k: int) -> EvidencePoint:
        """Chunk ``k``'s statistics since its change point."""
        n, total, zsum, z2 = self.since[:, k].tolist()
        j = int(self.change[k])
        if j >= 0:
            detector, seq, time = self.changes[j]
        else:
            r = int(np.searchsorted(self.first, k, side="right")) - 1
            detector, seq, time = self.before_detector[r], int(self.before_seq[r]), float(self.before_time[r])
        return EvidencePoint(int(n), total, zsum, z2, float(self.time[k]), int(self.seq[k]), detector, seq, time)
