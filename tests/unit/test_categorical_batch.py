"""A categorical subject's streams counted together give what each stream gives counted alone."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.categorical_batch import (
    BucketCounts,
    close_test_windows,
    closed_window_tests,
    count_trackers,
    feed_trackers,
    take_tests,
)
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


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    widths=st.lists(st.integers(2, 7), min_size=1, max_size=4),
    batches=st.lists(st.integers(0, 600), min_size=1, max_size=6),
    buckets=st.integers(1, 4),
    window=st.integers(2, 200),
    warmup=st.integers(1, 300),
)
def test_several_subjects_tested_together_equal_each_tested_alone(seed, widths, batches, buckets, window, warmup):
    """The engine tests the windows every categorical subject of a batch closed in one pass (subjects of other
    vocabulary sizes among them): each subject's trackers end as they do with their own tests (the results go
    back to the subject and bucket whose window closed)."""
    rng = np.random.default_rng(seed)
    settings_ = DetectorSettings(warmup_events=warmup, categorical_window=window)

    def trackers() -> list[list[CategoricalDriftTracker]]:
        return [[CategoricalDriftTracker(settings_, width) for _ in range(buckets)] for width in widths]

    together, alone = trackers(), trackers()
    t0 = 0.0
    for b, rows in enumerate(batches):
        batch = []
        for width in widths:
            lengths = rng.integers(0, rows + 1, buckets)
            size = int(lengths.sum())
            high = width if b < len(batches) // 2 else max(1, width - 1)
            codes = rng.integers(0, high, size)
            codes[rng.random(size) < 0.1] = -1
            batch.append((codes, t0 + np.arange(size, dtype=np.float64), lengths))
            t0 += size
        fed = [
            feed_trackers(subject, BucketCounts(codes, times, lengths, width))
            for subject, width, (codes, times, lengths) in zip(together, widths, batch, strict=True)
        ]
        tests = closed_window_tests(fed)
        assert len(tests) == len(fed)
        for f, subject_tests, subject, width, (codes, times, lengths) in zip(
            fed, tests, alone, widths, batch, strict=True
        ):
            mine = take_tests(f, subject_tests)
            theirs = count_trackers(subject, BucketCounts(codes, times, lengths, width))
            assert sorted(mine) == sorted(theirs)
            for k in mine:
                assert mine[k][1].tolist() == theirs[k][1].tolist() and mine[k][2] == theirs[k][2]
        for mine_subject, their_subject in zip(together, alone, strict=True):
            for a, b_ in zip(mine_subject, their_subject, strict=True):
                last_a, last_b = a.last, b_.last
                assert (a.count, a.missing, a.counts.tolist(), a.last_seq, a.last_time, dict(a.detections)) == (
                    b_.count,
                    b_.missing,
                    b_.counts.tolist(),
                    b_.last_seq,
                    b_.last_time,
                    dict(b_.detections),
                )
                assert (last_a is None) == (last_b is None)
                if last_a is not None and last_b is not None:
                    assert (last_a.position, last_a.p_value, last_a.distance, last_a.current.tolist()) == (
                        last_b.position,
                        last_b.p_value,
                        last_b.distance,
                        last_b.current.tolist(),
                    )
