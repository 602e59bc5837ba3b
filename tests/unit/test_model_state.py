"""A model version's plain state: segments' shares of the recent traffic."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.model_state import SHARE_HALF_LIFE, ModelState, note_recent_rows, recent_share

ALL = ("", "")
SG = ("country", "SG")


def _shares(rows: np.ndarray, batch: int) -> float | None:
    """Rows' flags (1: in SG) counted in batches of ``batch``: SG's recent share."""
    state = ModelState("m", "v1")
    for start in range(0, rows.size, batch):
        part = rows[start : start + batch]
        state.events += part.size
        note_recent_rows(state, [(ALL, None), (SG, np.flatnonzero(part))], part.size)
    return recent_share(state, SG)


def test_a_segments_recent_share_follows_the_traffic_whatever_the_batches():
    rng = np.random.default_rng(0)
    early = rng.random(20_000) < 0.02
    late = rng.random(5 * SHARE_HALF_LIFE) < 0.4
    rows = np.concatenate([early, late]).astype(np.int64)
    shares = [_shares(rows, b) for b in (1, 7, 100, 5_000)]
    assert all(s is not None for s in shares)
    assert shares[0] == pytest.approx(0.4, abs=0.03)  # since the version began it is 0.15
    assert max(shares) - min(shares) < 1e-9  # type: ignore[operator]


def test_no_share_before_any_row_is_counted():
    assert recent_share(ModelState("m", "v1"), SG) is None
