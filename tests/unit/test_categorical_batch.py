"""A categorical subject's streams counted together give what each stream gives counted alone."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.categorical_batch import BucketCounts, close_test_windows, count_trackers
from monitor.core.drift import CategoricalDriftTracker
from monitor.core.settings import DetectorSettings
from monitor.core.significance import BaselineWindowTest, Reference, complete_windows

CODES = 5


def _state(tracker: CategoricalDriftTracker, test: BaselineWindowTest) -> tuple:
    last = tracker.last
    window = tracker.test
    return (
        tracker.count,
        tracker.missing,
        tracker.counts.tolist(),
        window.filled,
        window._counts.tolist(),
        None if window.reference is None else window.reference.tolist(),
        None if last is None else (last.position, last.p_value, last.distance, last.current.tolist()),
        tracker.last_time,
        tracker.last_seq,
        repr(tracker.last_start),
        repr(tracker._open_start),
        dict(tracker.detections),
        test.seen,
        test._filled,
        test._counts.tolist(),
        repr(test._start),
        test.tests,
        test.pending,
        None if test.reference is None else test.reference.counts.tolist(),
    )


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batches=st.lists(st.integers(0, 700), min_size=1, max_size=8),
    buckets=st.integers(1, 4),
    window=st.integers(2, 300),
    warmup=st.integers(1, 400),
    test_window=st.integers(2, 300),
    missing=st.sampled_from([0.0, 0.2, 1.0]),
    shift=st.integers(0, 3),
    aligned=st.booleans(),
    profile_width=st.sampled_from([None, CODES, CODES + 2]),
)
def test_streams_counted_together_equal_each_counted_alone(
    seed, batches, buckets, window, warmup, test_window, missing, shift, aligned, profile_width
):
    """Trackers and window tests fed a subject's batches bucket after bucket, through one (bucket x code) count,
    end in the same state as each fed its own part alone (counts, open windows, references, tests and their
    results, window start times); the windows closed come out the same, in the same order. ``aligned``: every
    other batch brings whole windows to each bucket (a window closes on a part's last value, and the next batch
    opens the next one); ``profile_width``: the window tests start from a profile's reference of that many codes
    (another width than the batch's count: those tests count value by value)."""
    rng = np.random.default_rng(seed)
    if aligned:
        window, warmup, missing = test_window, test_window, 0.0
    settings_ = DetectorSettings(warmup_events=warmup, categorical_window=window)
    profile = None
    if profile_width is not None:
        profile = Reference.categorical(rng.integers(0, CODES, 400), profile_width)

    def streams() -> tuple[list[CategoricalDriftTracker], list[BaselineWindowTest]]:
        trackers = [CategoricalDriftTracker(settings_, CODES) for _ in range(buckets)]
        tests = [
            BaselineWindowTest(
                "categorical", window=test_window, baseline_events=warmup, n_codes=CODES, reference=profile
            )
            for _ in range(buckets)
        ]
        return trackers, tests

    together, alone = streams(), streams()
    t0 = 0.0
    for b, rows in enumerate(batches):
        if aligned:
            lengths = test_window * rng.integers(0, 3, buckets) if b % 2 == 0 else rng.integers(0, test_window, buckets)
        else:
            lengths = rng.integers(0, rows + 1, buckets)
        size = int(lengths.sum())
        high = CODES if b < len(batches) // 2 else max(1, CODES - shift)
        codes = rng.integers(0, high, size)
        codes[rng.random(size) < missing] = -1
        times = t0 + np.arange(size, dtype=np.float64)
        positions = np.arange(size, dtype=np.int64) + int(t0)
        t0 += size
        counts = BucketCounts(codes, times, lengths, CODES)
        updated = count_trackers(together[0], counts)
        closed_together = close_test_windows(together[1], counts, positions)
        ends = np.cumsum(lengths)
        closed_alone = []
        for k in range(buckets):
            part = slice(int(ends[k] - lengths[k]), int(ends[k]))
            rows_taken, ends_k = alone[0][k].update(codes[part], times[part])
            assert updated[k][0] is together[0][k]
            assert updated[k][1].tolist() == rows_taken.tolist()
            assert updated[k][2] == ends_k
            present = codes[part] >= 0
            closed = alone[1][k].close_windows(codes[part][present], times[part][present], positions[part][present])
            if closed:
                closed_alone.append((k, closed))
        assert [k for k, _ in closed_together] == [k for k, _ in closed_alone]
        for (_, mine), (_, theirs) in zip(closed_together, closed_alone, strict=True):
            complete_windows(mine)
            complete_windows(theirs)
            assert [(c.result.seq, c.result.time, c.result.p_value, c.counts.tolist()) for c in mine] == [
                (c.result.seq, c.result.time, c.result.p_value, c.counts.tolist()) for c in theirs
            ]
            assert all(not math.isnan(c.result.p_value) for c in mine)
        for k in range(buckets):
            assert _state(together[0][k], together[1][k]) == _state(alone[0][k], alone[1][k])
