"""One model version's state in a partition: its schema as inferred, capped segment values and its streams.

Plain data that the engine updates and the judgement functions read; snapshotted with the engine.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import numpy as np

from monitor.core.decisions import RetrainState
from monitor.core.drift import CategoricalDriftTracker
from monitor.core.fairness import FairnessTracker
from monitor.core.local_change import WindowBreakdown
from monitor.core.numeric_streams import NumericStream, NumericStreams
from monitor.core.performance import ModelPerformance
from monitor.core.quality import SchemaWatch
from monitor.core.significance import BaselineWindowTest
from monitor.core.stats import CategoryVocabulary
from monitor.core.windows import NumericWindow

PREDICTION = "__prediction__"  # the subject name of the model's output among its input features
LATENCY_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)

Tracker = NumericStream | CategoricalDriftTracker
WindowTest = NumericWindow | BaselineWindowTest


class ModelState:
    """Per (model, version): schema as inferred, capped segment values, and the streams."""

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version
        self.events = 0
        self.kinds: dict[str, str] = {}
        self.vocab: dict[str, CategoryVocabulary] = {}
        self.segment_attributes: list[str] = []
        self.segment_codes: dict[str, dict[str, int]] = {}
        self.numeric: dict[str, NumericStreams] = {}  # numeric streams by settings group ("": the defaults)
        self.streams: dict[tuple[str, str, str], CategoricalDriftTracker] = {}  # categorical streams
        self.type_mismatch: Counter[str] = Counter()
        self.latency_buckets = np.zeros(len(LATENCY_BUCKETS_MS) + 1, dtype=np.int64)
        self.latency_sum_ms = 0.0
        self.latency_count = 0
        # each segment value's latency histogram (bucket counts, then the sum in ms), under the segment caps
        self.segment_latency: dict[tuple[str, str], np.ndarray] = {}
        self.last_event_time = math.nan
        self.perf: ModelPerformance | None = None
        self.fairness: FairnessTracker | None = None
        self.drifting: set[str] = set()  # features whose drift condition holds here (for concept-drift messages)
        self.tests: dict[tuple[str, str, str], BaselineWindowTest] = {}  # categorical streams' window tests
        self.quality: SchemaWatch | None = None
        self.first_event_time = math.nan
        self.retrain = RetrainState()
        # segments' drift streams (name, attribute, value) whose latest judgement was a change short of its
        # test's events (alerting.pending_local_change): all traffic's count when a batch last held them so,
        # and their shift
        self.pending_drift: dict[tuple[str, str, str], tuple[int, float]] = {}
        # each bucket's rows weighted by age (halved every SHARE_HALF_LIFE of the version's events), with the
        # version's event count they stand at: segments' shares of the recent traffic (recent_share)
        self.recent_rows: dict[tuple[str, str], tuple[float, int]] = {}
        # all traffic's categorical test window of each subject, counted by each segment attribute's values
        # (subject, attribute): what tells a change local to one segment (monitor.core.local_change)
        self.breakdowns: dict[tuple[str, str], WindowBreakdown] = {}
        # segments' categorical streams whose alert a change local to them opened (all traffic's window split):
        # while open, their rows count as at their reference when the next window is split
        self.local_alerts: set[tuple[str, str, str]] = set()

    def stream_count(self) -> int:
        """The drift streams this version holds (what counts against ``monitoring.max_streams``)."""
        return sum(block.size for block in self.numeric.values()) + len(self.streams)

    def numeric_place(self, key: tuple[str, str, str]) -> tuple[NumericStreams, int] | None:
        """Where the stream (subject, segment attribute, value) sits among the numeric tables: its table and its
        index there; None for a categorical or unknown stream."""
        for block in self.numeric.values():
            i = block.index.get(key)
            if i is not None:
                return block, i
        return None

    def tracker(self, key: tuple[str, str, str]) -> Tracker | None:
        """The stream (subject, segment attribute, value), numeric or categorical."""
        place = self.numeric_place(key)
        return self.streams.get(key) if place is None else NumericStream(*place)

    def window_test(self, key: tuple[str, str, str]) -> WindowTest | None:
        """The stream's baseline window test, numeric or categorical (None before its first value)."""
        place = self.numeric_place(key)
        if place is None:
            return self.tests.get(key)
        block, i = place
        return None if block.windows is None else NumericWindow(block.windows, i)

    def window_tests(self) -> Iterator[tuple[tuple[str, str, str], WindowTest]]:
        for block in self.numeric.values():
            if block.windows is not None:
                for i, key in enumerate(block.keys):
                    yield key, NumericWindow(block.windows, i)
        yield from self.tests.items()

    def trackers(self) -> Iterator[tuple[tuple[str, str, str], Tracker]]:
        for block in self.numeric.values():
            for i, key in enumerate(block.keys):
                yield key, NumericStream(block, i)
        yield from self.streams.items()


# The version's events over which a segment's share of the traffic halves its weight: attribution reads a
# local change by the share the segment has now (a canary grows from 2% to 40%), not since the version began.
SHARE_HALF_LIFE = 2_000
_DECAY = 0.5 ** (1.0 / SHARE_HALF_LIFE)


def note_recent_rows(state: ModelState, buckets: list[tuple[tuple[str, str], np.ndarray | None]], n: int) -> None:
    """Count a batch's ``n`` rows (``state.events`` already counts them) into each bucket's recent weight:
    a row ``k`` rows before the version's newest weighs ``0.5 ** (k / SHARE_HALF_LIFE)``, whatever the
    batches."""
    recent = state.recent_rows
    end = state.events
    weights = _DECAY ** np.arange(n - 1, -1, -1, dtype=np.float64)
    for bucket, part in buckets:
        added = float(weights.sum() if part is None else weights[part].sum())
        old, at = recent.get(bucket, (0.0, end))
        recent[bucket] = (old * _DECAY ** (end - at) + added, end)


def recent_share(state: ModelState, bucket: tuple[str, str]) -> float | None:
    """A segment's share of the version's recent traffic (None before any is counted)."""
    recent = state.recent_rows
    mine, whole = recent.get(bucket), recent.get(("", ""))
    if mine is None or whole is None or whole[0] <= 0.0:
        return None
    return min(1.0, mine[0] * _DECAY ** (whole[1] - mine[1]) / whole[0])
