"""Streams added together (a batch that brings many new segment values) are the streams added one by one, each
starting empty, learning its own reference and baseline; the stream cap takes the first streams a batch meets."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

import monitor.core.engine  # noqa: F401  (registers the engine's classes for snapshots)
from monitor.config import load_config
from monitor.core import snapshot as snap
from monitor.core.engine import PartitionEngine
from monitor.core.numeric_streams import NumericStreams
from monitor.core.settings import DetectorSettings
from monitor.core.significance import Reference
from monitor.core.stats import without_gross_outliers
from monitor.core.windows import NumericWindows

WARMUP = 120


def _table() -> NumericStreams:
    windows = NumericWindows(window=100, baseline_events=150, bins=10, numeric_test="ks", exact_p_below=1.0)
    return NumericStreams(DetectorSettings(warmup_events=WARMUP), windows)


def _references(n: int) -> list[Reference | None]:
    """Every third stream with a baseline profile's reference (its detectors scaled from the start)."""
    rng = np.random.default_rng(3)
    return [Reference.numeric(rng.normal(k, 1.0 + k / 10, 2_000), 10) if k % 3 == 1 else None for k in range(n)]


def _state(table: NumericStreams) -> Any:
    return snap.encode(table)


def _feed(table: NumericStreams, seed: int, n: int) -> list[tuple[int, int]]:
    """Values for every stream (uneven shares), grouped by stream; the closed windows (stream, seq)."""
    rng = np.random.default_rng(seed)
    stream = np.sort(rng.choice(table.size, size=n, p=np.arange(1, table.size + 1) / sum(range(1, table.size + 1))))
    values = rng.normal(stream.astype(float), 1.0)
    closed = table.update(values, np.arange(n, dtype=np.float64), stream, np.arange(n))
    return list(zip(closed.stream.tolist(), closed.seq.tolist(), strict=True))


def test_streams_added_together_hold_and_learn_what_streams_added_one_by_one_do() -> None:
    """Two tables, one growing by whole groups of streams and one by one stream at a time, with profile
    references among them and streams added after the first updates: the same state after each step (the
    snapshot's plain data, every array and the warm-ups), the same windows closed, the same evidence."""
    refs = _references(17)
    together, alone = _table(), _table()
    keys = [(f"x{k % 4}", "segment", f"s{k}") for k in range(17)]
    for lo, hi in ((0, 5), (5, 6), (6, 16), (16, 17)):
        scaled = together.detectors.size
        got = together.add_streams(keys[lo:hi], refs[lo:hi])
        want = [alone.add_stream(key, ref) for key, ref in zip(keys[lo:hi], refs[lo:hi], strict=True)]
        assert got == want == list(range(lo, hi))
        assert _state(together) == _state(alone)
        for k in range(lo, hi):  # a profile's stream is scaled at once; any other shares its window test's warm-up
            if refs[k] is None:
                assert k in together.warm and together.warm[k] is None
            else:
                assert k not in together.warm and together.detectors.mean[k] == refs[k].mean
        # the detectors' arrays reach the last scaled stream only (a stream in its warm-up is not there yet)
        assert together.detectors.size == max([scaled] + [k + 1 for k in range(lo, hi) if refs[k] is not None])
        for seed in range(3):  # warm-ups ending, windows closing, chunks for the detectors
            assert _feed(together, 10 * hi + seed, 1_500) == _feed(alone, 10 * hi + seed, 1_500)
            assert _state(together) == _state(alone)
    assert together.detectors.size == alone.detectors.size == 17
    assert [together.evidence(i) for i in range(17)] == [alone.evidence(i) for i in range(17)]
    assert not together.warm  # every warm-up over: the test covered streams finishing theirs together


def test_no_streams_added_changes_nothing() -> None:
    table = _table()
    before = _state(table)
    assert table.add_streams([], []) == []
    assert _state(table) == before


def test_streams_added_together_start_empty_and_learn_their_own_references_and_baselines() -> None:
    """What each stream holds, read directly (not against another table grown the same way): nothing counted
    at first; after a warm-up, its own first values' reference and its own baseline, gross outliers left out."""
    table = _table()
    n = 12
    assert table.add_streams([(f"x{k}", "", "") for k in range(n)], [None] * n) == list(range(n))
    w = table.windows
    assert w is not None
    for a in (table.count, table.missing, table.n, table.histogram, w.counts, w.filled, w.seen, w.tests, w.pending):
        assert a.shape[0] == n and not a.any()
    assert (table.minimum == np.inf).all() and (table.maximum == -np.inf).all() and np.isnan(w.start).all()
    assert w.references == [None] * n and sorted(w.warm) == list(range(n))
    rng = np.random.default_rng(5)
    values = rng.normal(np.repeat(np.arange(n) * 10.0, 200), 1.0)  # 200 values a stream, stream k near 10k
    values[::200] = 1e9  # each stream's first value absurd: its baseline must leave it out
    stream = np.repeat(np.arange(n), 200)
    table.update(values, np.arange(values.size, dtype=np.float64), stream, np.arange(values.size))
    for k in range(n):
        own = values[200 * k : 200 * (k + 1)]
        learned = w.references[k]
        assert learned is not None and learned.edges.tobytes() == Reference.numeric(own[:150], 10).edges.tobytes()
        kept = without_gross_outliers(own[:WARMUP])
        assert kept.size == WARMUP - 1 and table.base_mean[k] == float(kept.mean())
        assert abs(table.base_mean[k] - 10.0 * k) < 0.5


def _events(n: int, values: int, seed: int) -> list[bytes]:
    """Predictions of two numeric features and a segment attribute of ``values`` values."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        features = {"x": float(rng.normal()), "y": float(rng.normal(5.0))}
        event = {
            "prediction_id": f"p{seed}-{i}", "model": "m", "model_version": "v1", "timestamp": 1.7e9 + i / 10,
            "features": features, "prediction": float(rng.random()), "segments": {"s": f"v{rng.integers(values)}"},
        }  # fmt: skip
        out.append(orjson.dumps(event))
    return out


def _engine(cap: int) -> PartitionEngine:
    return PartitionEngine(load_config(environ={}, overrides={"monitoring": {"max_streams": cap}}), clock=lambda: 0.0)


def _keys_in_order(engine: PartitionEngine) -> list[tuple[str, str, str]]:
    """The numeric streams, table by table, in the order they were added."""
    return [key for block in engine.models["m", "v1"].numeric.values() for key in block.keys]


@pytest.mark.parametrize("cap", [1, 7, 20])
def test_the_stream_cap_takes_the_first_streams_a_batch_meets_and_counts_the_rest_on_every_batch(cap) -> None:
    """The cap reached partway through a batch's new streams: the streams met first (subject by subject, bucket
    by bucket) get their places, every other one is counted as turned away, again on the next batch; under the
    cap nothing is counted at all."""
    first, later = _events(400, 6, 1), _events(400, 9, 2)  # the second batch brings three more segment values
    free, capped = _engine(10_000), _engine(cap)
    for engine in (free, capped):
        for batch in (first, later):
            assert not engine.process_predictions(batch, [0.0] * len(batch)).rejected
    met = _keys_in_order(free)
    assert "stream" not in free.model_monitor.capped and len(met) > 20
    assert _keys_in_order(capped) == met[:cap]
    assert capped.model_monitor.stream_count == cap
    in_first = len(_keys_in_order(_fed(_engine(10_000), first)))
    assert capped.model_monitor.capped["stream"] == (in_first - cap) + (len(met) - cap)


def _fed(engine: PartitionEngine, batch: list[bytes]) -> PartitionEngine:
    assert not engine.process_predictions(batch, [0.0] * len(batch)).rejected
    return engine
