"""Binning by cells gives exactly what a search on each stream's edges gives, on any values."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.cells import CELLS, HISTOGRAM_BINS, EdgeLookup, cells, monotone


def _case(rng: np.random.Generator, rows: int, n: int) -> tuple[np.ndarray, ...]:
    mean = rng.normal(0, 10, rows)
    std = np.exp(rng.uniform(-12, 4, rows))  # from very narrow to wide scales
    lo, width = mean - 4 * std, 8 * std / HISTOGRAM_BINS
    table = np.full((rows, 12), np.nan)
    for r in range(rows):
        k = int(rng.integers(1, 12))
        e = np.sort(np.concatenate([rng.normal(mean[r], std[r] * rng.uniform(0.1, 3), k), [mean[r]]]))
        if rng.random() < 0.3:
            e[1:] = np.maximum(e[1:], e[:-1])  # repeated edges, as a discrete feature's quantiles have
            e[len(e) // 2] = e[len(e) // 2 - 1]
        table[r, : e.size] = e
    row = rng.integers(0, rows, n)
    x = rng.normal(mean[row], std[row] * rng.uniform(0.1, 6, n))
    own = table[row]
    picks = rng.random(n)
    edge_at = own[np.arange(n), rng.integers(0, 12, n)]
    on_edge = (picks < 0.3) & ~np.isnan(edge_at)
    x[on_edge] = edge_at[on_edge]  # values exactly on an edge, and the floats either side of one
    x[(picks > 0.3) & (picks < 0.4) & ~np.isnan(edge_at)] = np.nextafter(edge_at, np.inf)[
        (picks > 0.3) & (picks < 0.4) & ~np.isnan(edge_at)
    ]
    x[(picks > 0.4) & (picks < 0.45) & ~np.isnan(edge_at)] = np.nextafter(edge_at, -np.inf)[
        (picks > 0.4) & (picks < 0.45) & ~np.isnan(edge_at)
    ]
    x[(picks > 0.45) & (picks < 0.47)] = rng.choice([np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0, 5e-324], 1)[0]
    return x, row, table, lo, width


def _searched(x: np.ndarray, row: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.empty(x.size, dtype=np.int64)
    for r in range(table.shape[0]):
        mine = row == r
        edges = table[r][~np.isnan(table[r])]
        out[mine] = np.searchsorted(edges, x[mine], side="left")
    return out


@pytest.mark.parametrize("seed", range(40))
def test_edge_codes_equal_a_search_on_each_streams_edges(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, row, table, lo, width = _case(rng, rows=int(rng.integers(1, 30)), n=4000)
    assert monotone(lo, width).all()
    codes = EdgeLookup(table, lo, width).codes(x, cells(x, lo[row], width[row]), row)
    assert codes.tolist() == _searched(x, row, table).tolist()


def test_edges_sharing_a_cell_and_edges_at_infinity() -> None:
    lo, width = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    table = np.array([[0.1, 0.2, 0.3, 0.3, 0.7], [-np.inf, 2.0, np.inf, np.nan, np.nan]])
    x = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.31, 0.7, 0.71, -1.0, -np.inf, 2.0, 2.5, np.inf, 1e308, -0.0])
    row = np.array([0] * 9 + [1] * 6)
    codes = EdgeLookup(table, lo, width).codes(x, cells(x, lo[row], width[row]), row)
    assert codes.tolist() == _searched(x, row, table).tolist()


def test_only_a_finite_positive_width_and_a_finite_origin_keep_cells_in_order() -> None:
    lo = np.array([0.0, np.nan, np.inf, 0.0, 0.0, 0.0])
    width = np.array([1.0, 1.0, 1.0, 0.0, np.inf, -1.0])
    assert monotone(lo, width).tolist() == [True, False, False, False, False, False]
    assert cells(np.array([np.nan]), 0.0, 1.0).tolist() == [CELLS - 1]  # not a number: the top cell
