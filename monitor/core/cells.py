"""Fixed cells on each stream's own scale, and what they buy: binning values on sorted edges without a search.

A numeric stream's histogram counts its values in ``HISTOGRAM_BINS`` cells over ±``HISTOGRAM_SD`` baseline
standard deviations, plus one cell either side (:func:`cells`). The map from a value to its cell only ever
rounds, subtracts, divides by a positive number and floors, so it never decreases: for any edge ``e``,
``cell(e) < cell(x)`` means ``e < x`` and ``cell(e) > cell(x)`` means ``e > x``. A value's place among a
stream's sorted window edges (``searchsorted(edges, x, side="left")``: the edges below it) is therefore read
from a table of edges per cell, and only a value that shares its cell with an edge is compared with that edge
(:class:`EdgeLookup`). For every stream at once, a few array operations replace one search per stream; the
result is exactly the search's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core import kernels

HISTOGRAM_BINS = 64  # over ±HISTOGRAM_SD baseline standard deviations, plus one cell either side for the rest
HISTOGRAM_SD = 4.0
CELLS = HISTOGRAM_BINS + 2


def cells(x: np.ndarray, lo: Any, width: Any) -> np.ndarray:
    """Cells (0 to HISTOGRAM_BINS + 1) of values on their streams' scales. Absurd values land in the
    outermost cells, quietly, and so does a value whose stream's scale overflowed (a baseline of values near
    the float limit has an infinite spread): the top one when its place is not a number."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        place = np.subtract(x, lo, dtype=np.float64)
        np.divide(place, width, out=place)
        np.floor(place, out=place)
    np.fmin(place, HISTOGRAM_BINS, out=place)  # fmin takes the number over NaN: not a number goes on top too
    np.maximum(place, -1, out=place)
    cell = place.astype(np.int64)
    cell += 1
    return cell


def cells_by_run(x: np.ndarray, runs: np.ndarray, lo: np.ndarray, width: np.ndarray) -> np.ndarray:
    """:func:`cells` of values in runs, run ``r`` (``runs[r]`` values) on the scale ``lo[r]``, ``width[r]``; one
    pass when compiled (:mod:`monitor.core.kernels`)."""
    compiled = kernels.native()
    if compiled is not None:
        out: np.ndarray = compiled.cells_by_run(
            np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(runs, dtype=np.int64),
            np.ascontiguousarray(lo, dtype=np.float64), np.ascontiguousarray(width, dtype=np.float64),
            HISTOGRAM_BINS,
        )  # fmt: skip
        return out
    return cells(x, np.repeat(lo, runs), np.repeat(width, runs))


def monotone(lo: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Which scales map values to cells in order (a finite origin and a finite, positive width): only on
    these does a cell tell which side of an edge a value lies."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(lo) & np.isfinite(width) & (width > 0)


class EdgeLookup:
    """Where sorted edges fall among cells, for many streams: built once for a set of streams' edges and
    scales, then :meth:`codes` bins any number of their values.

    ``edges``: one row of sorted edges per stream, padded on the right with NaN; ``lo``, ``width``: each row's
    scale, every one :func:`monotone`."""

    def __init__(self, edges: np.ndarray, lo: np.ndarray, width: np.ndarray) -> None:
        rows, width_edges = edges.shape
        edge_cell = cells(edges, lo[:, None], width[:, None])
        edge_cell[np.isnan(edges)] = CELLS  # padding: in no cell, so never below a value nor sharing its cell
        # below[r, c]: row r's edges in cells before c (its edges are sorted, so their cells never decrease)
        below = np.zeros((rows, CELLS + 1), dtype=np.int64)
        for k in range(width_edges):  # a handful of edges per row: one pass per edge rank, over rows only
            below += edge_cell[:, k : k + 1] < np.arange(CELLS + 1)
        self.edges = edges.ravel()
        self.width_edges = width_edges
        self.below = below[:, :CELLS].ravel()
        self.inside = np.diff(below, axis=1).ravel()  # edges sharing each cell
        # the first edge in each cell (+inf where none: no value is above it), compared with every value
        self.first = np.full(rows * CELLS, np.inf)
        shared = np.flatnonzero(self.inside)
        self.first[shared] = self.edges[shared // CELLS * width_edges + self.below[shared]]
        self.more = self.inside > 1  # cells with further edges: their values are compared with those too
        self.any_more = bool(self.more.any())

    def codes(self, x: np.ndarray, cell: np.ndarray, row: np.ndarray) -> np.ndarray:
        """``searchsorted(edges[row[i]], x[i], side="left")`` for every value ``i`` (no NaN), from its
        :func:`cells` on its row's scale."""
        compiled = kernels.native()
        if compiled is not None:  # the same, in one pass (monitor.core.kernels)
            return self._compiled(compiled.edge_codes, x, cell, row)
        return self._codes(x, cell, row)

    def codes_by_run(self, x: np.ndarray, cell: np.ndarray, runs: np.ndarray) -> np.ndarray:
        """:meth:`codes` with row ``r`` for the values of run ``r`` (``runs[r]`` of them, one after another)."""
        compiled = kernels.native()
        if compiled is not None:
            return self._compiled(compiled.edge_codes_by_run, x, cell, runs)
        return self._codes(x, cell, np.repeat(np.arange(runs.size), runs))

    def _compiled(self, loop: Any, x: np.ndarray, cell: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """A compiled loop over the values, given the look-up tables (``rows``: each value's row, or runs)."""
        found: np.ndarray = loop(
            np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(cell, dtype=np.int64),
            np.ascontiguousarray(rows, dtype=np.int64), self.below, self.first, self.inside, self.edges,
            self.width_edges, CELLS,
        )  # fmt: skip
        return found

    def _codes(self, x: np.ndarray, cell: np.ndarray, row: np.ndarray) -> np.ndarray:
        flat = row * CELLS
        flat += cell
        codes = self.below[flat]
        codes += self.first[flat] < x
        if self.any_more:
            ask = np.flatnonzero(self.more[flat])
            if ask.size:
                at = flat[ask]
                base = at // CELLS * self.width_edges + self.below[at]
                count = self.inside[at]
                k = 1
                while True:
                    keep = count > k
                    ask, base, count = ask[keep], base[keep], count[keep]
                    if not ask.size:
                        break
                    codes[ask] += self.edges[base + k] < x[ask]
                    k += 1
        return codes
