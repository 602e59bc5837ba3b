"""A running monitor collects cyclic garbage less often, with what start-up loaded out of the collector's sight."""

from __future__ import annotations

import gc

from monitor.collector import COLLECTOR_THRESHOLDS, settle_collector


def test_settle_collector_freezes_startup_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        settle_collector()
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert gc.get_freeze_count() > 10_000  # the modules this test process loaded, at least
        assert COLLECTOR_THRESHOLDS[0] > before[0] or before == COLLECTOR_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
