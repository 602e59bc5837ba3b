"""Every bucket's estimate window counted by code in one matrix, kept as rows come and go.

A label-free estimate needs, of each bucket's window of raw scores, only how many rows fall in each code
(calibration bin and side of the threshold: :meth:`~monitor.core.performance_state.PerformanceState._codes`).
Kept one bucket at a time, a batch cost a dozen small numpy calls per bucket to feed the windows and as many
to read them: most of a small batch's time for a model with a few segment values. Here one model version's
windows share one count matrix (bucket by code). A batch's rows that come in are counted with one
``bincount``, the rows its windows let go are coded and counted with one more, and the estimates of every
bucket are read from the matrix at once.

It is a cache, not state: each row remembers the window it counted and how many rows that window had been
given, and a window it does not know (new, restored from a snapshot, swapped for another) is counted afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from monitor.core.metrics import Ring

Codes = Callable[[np.ndarray], np.ndarray]  # raw scores -> their codes, each in [0, codes)


class WindowCodeCounts:
    """The rows of many windows (one :class:`~monitor.core.metrics.Ring` of one column per key) counted by
    code, one matrix row per key."""

    def __init__(self, codes: int, code_of: Codes) -> None:
        self.codes = codes
        self.code_of = code_of
        self.row: dict[Hashable, int] = {}
        self.rings: list[Ring | None] = []  # each row's window (None: let go, see forget)
        self.written: list[int] = []  # what each row's window had been given when its row was last kept up
        self.matrix = np.zeros((4, codes), dtype=np.int64)  # rows beyond len(self.rings) are spare
        self.warm: dict[Hashable, np.ndarray] = {}  # by key, its window's warm-up histogram once it is full

    def _row(self, key: Hashable, ring: Ring) -> int:
        """The key's row, counted afresh unless it counts ``ring`` as it is now."""
        r = self.row.get(key)
        if r is None:
            r = self.row[key] = len(self.rings)
            self.rings.append(ring)
            self.written.append(-1)
            if r == self.matrix.shape[0]:
                self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        if not self._current(r, ring):
            self.rings[r] = ring
            self.matrix[r] = np.bincount(self.code_of(ring.data[: ring.size, 0]), minlength=self.codes)
            self.written[r] = ring.written
        return r

    def _current(self, r: int, ring: Ring) -> bool:
        """Whether row ``r`` counts ``ring`` as it is now."""
        return self.rings[r] is ring and self.written[r] == ring.written

    def feed(self, windows: Sequence[tuple[Hashable, Ring, np.ndarray, np.ndarray]]) -> None:
        """New rows into each window, ``(key, window, raw scores, their codes)``, and into the counts."""
        rows_in: list[int] = []
        taken: list[np.ndarray] = []
        rows_out: list[int] = []
        gone: list[np.ndarray] = []
        for key, ring, values, codes in windows:
            if values.size == 0:
                continue
            r = self._row(key, ring)
            kept = codes[-ring.capacity :]
            over = ring.size + kept.size - ring.capacity
            if over > 0:  # the oldest rows, that the window lets go
                rows_out.append(r)
                gone.append(ring.oldest(over))
            ring.extend(values[:, None])
            self.written[r] = ring.written
            rows_in.append(r)
            taken.append(kept)
        # one bincount over (row, code) for the rows every window took in, one for those they let go
        if rows_in:
            self.matrix += self._cells(rows_in, [c.size for c in taken], np.concatenate(taken))
        if rows_out:
            self.matrix -= self._cells(rows_out, [g.size for g in gone], self.code_of(np.concatenate(gone)))

    def _cells(self, rows: list[int], sizes: list[int], codes: np.ndarray) -> np.ndarray:
        """Counts by (row, code) in the matrix's shape: ``sizes[i]`` of ``codes`` in turn are ``rows[i]``'s."""
        cells = np.repeat(np.array(rows, dtype=np.int64) * self.codes, sizes) + codes
        return np.bincount(cells, minlength=self.matrix.size).reshape(self.matrix.shape)

    def forget(self, key: Hashable) -> None:
        """Let go of the key's window (its row is counted afresh if the key comes back): a dropped window is not
        kept alive by its counts."""
        r = self.row.get(key)
        if r is not None:
            self.rings[r] = None  # counted afresh if it comes back
        self.warm.pop(key, None)

    def counts(self, keys: Sequence[tuple[Hashable, Ring]]) -> np.ndarray:
        """The code counts of each ``(key, window)``, one row each, as float64 (a new array)."""
        index = [self._row(key, ring) for key, ring in keys]
        return self.matrix[index].astype(np.float64, copy=False)

    def counted(self, key: Hashable, ring: Ring) -> np.ndarray | None:
        """The key's counts as kept, if they count ``ring`` as it is now (None: it would be counted afresh)."""
        r = self.row.get(key)
        if r is None or not self._current(r, ring):
            return None
        return self.matrix[r].copy()
