"""Monitoring of a prediction batch, one model version's rows at a time.

Each model version's rows update its drift streams (a numeric table per settings group, a categorical
tracker per stream) and their window tests, feed its schema checks, and, on shard 0 of the model, its
latency, score-based estimates and fairness. The streams with something to judge go to the drift judge;
the windows the batch closed wait in :attr:`ModelMonitor.fdr` for their false-discovery round, which the
engine closes once the whole batch is in. The stream cap and what the caps turned away are counted here
(state the engine snapshots under the names ``stream_count``, ``capped`` and ``fdr``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from monitor.core.alerting import Alerting
from monitor.core.categorical_batch import (
    BucketCounts,
    FedTrackers,
    close_test_windows,
    closed_window_tests,
    feed_trackers,
    take_tests,
)
from monitor.core.columns import (
    Bucket,
    convert_column,
    segment_buckets,
    segment_codes_by_row,
    segment_combinations,
    take,
    take_feature,
)
from monitor.core.drift import CategoricalDriftTracker, WindowState
from monitor.core.events import PredictionBatch
from monitor.core.false_discovery import FalseDiscoveryControl
from monitor.core.float_columns import as_values
from monitor.core.judgements import retrain_judgement
from monitor.core.judging import DriftJudging, StreamToJudge
from monitor.core.local_change import WindowBreakdown
from monitor.core.model_setup import ModelSetup
from monitor.core.model_state import LATENCY_BUCKETS_MS, PREDICTION, ModelState, note_recent_rows
from monitor.core.numeric_streams import SPARSE_SHARE, NumericStreams, present_layout, stream_layout
from monitor.core.profile import kept_scores
from monitor.core.quality_feed import ObservedColumn, feed_schema_watch
from monitor.core.rules import ALL, Alert
from monitor.core.settings import Settings
from monitor.core.shards import shard_of
from monitor.core.significance import ClosedWindow, WindowResult, complete_windows


class ModelMonitor:
    """Monitors model versions' rows for one partition; judgements go to ``judging`` and ``alerting``."""

    def __init__(self, config: Settings, setup: ModelSetup, judging: DriftJudging, alerting: Alerting) -> None:
        self.config = config
        self.setup = setup
        self.judging = judging
        self.alerting = alerting
        mon = config.monitoring
        self._include = set(mon.features)
        self._ignore = set(mon.ignore_features)
        sig = config.significance
        self.fdr = FalseDiscoveryControl(sig.fdr, sig.round_events)
        self.capped: Counter[str] = Counter()  # what a cap turned away: model, feature, segment_value...
        self.stream_count = 0
        self._closed: list[ClosedWindow] = []  # categorical windows this batch closed, their statistics to compute

    def end_batch(self, times: np.ndarray) -> tuple[list[tuple[Any, WindowResult]], list[float], list[int]]:
        """The statistics of every categorical window the batch closed, at once (numeric tables test theirs as
        they close them); then the false-discovery round moves on by the batch's events (``times``: their event
        times, in partition order). Returns the window tests it decided, if a round closed, each with the time
        of its round's last event (when the decision could first be made, whatever the batch size) and its
        round's number (a batch may close several, judged one after another)."""
        complete_windows(self._closed)
        self._closed = []
        before = self.fdr.position
        decided = self.fdr.advance(int(times.size))
        rounds = self.rounds_of(decided)
        every = self.fdr.round_events
        last = [(r + 1) * every - before - 1 for r in rounds]  # each round's last event
        return decided, [float(times[k]) if 0 <= k < times.size else math.nan for k in last], rounds

    def rounds_of(self, decided: list[tuple[Any, WindowResult]]) -> list[int]:
        """The round each decided window test belongs to."""
        every = self.fdr.round_events
        return [r.position // every for _, r in decided]

    def observe(
        self,
        state: ModelState,
        batch: PredictionBatch,
        rows: np.ndarray | None,
        *,
        shard: int,
        shards: int,
        rng: np.random.Generator,
        watermark: float,
    ) -> list[Alert]:
        """Monitor a model version's ``rows`` of the batch (None: all of them) as detection ``shard`` of
        ``shards``: each shard its own features, shard 0 the model version as a whole too."""
        n = len(batch) if rows is None else rows.size
        state.events += n
        times = batch.event_time if rows is None else batch.event_time[rows]
        state.last_event_time = float(np.fmax.reduce(times))
        if state.first_event_time != state.first_event_time:
            state.first_event_time = float(np.fmin.reduce(times))
        buckets = segment_buckets(state, batch, rows, self.config.monitoring, self.capped)
        if shard == 0:
            self._latency(state, batch.latency_ms if rows is None else batch.latency_ms[rows], buckets)
        note_recent_rows(state, buckets, n)
        # each shard judges its own features' drift and schema checks (the profile stage sends it no other column)
        columns: list[tuple[str, list[Any] | np.ndarray]] = [
            (name, take_feature(col, rows))
            for name, col in batch.features.items()
            if self._watched(name) and (shards == 1 or shard_of(state.model, name, shards) == shard)
        ]
        if self.config.monitoring.watch_prediction and shard == 0:
            columns.append((PREDICTION, take(batch.prediction, rows)))
        alerts: list[Alert] = []
        watch = state.quality
        if watch is not None and shards > 1:
            watch.keep_only(lambda name: shard_of(state.model, name, shards) == shard)
        testing = self.config.significance.enabled
        observed: list[ObservedColumn] = []
        positions = self.fdr.position + (np.arange(n) if rows is None else rows)  # rows' places in the partition
        # every bucket's rows one after another (all traffic first): each numeric subject's streams in one update
        lengths = np.array([n if part is None else part.size for _, part in buckets])
        grouped = None if len(buckets) == 1 else np.concatenate([np.arange(n)] + [p for _, p in buckets[1:]])
        grouped_times = times if grouped is None else times[grouped]
        grouped_positions = positions if grouped is None else positions[grouped]
        # Every column converted before any tracker runs: the decoded values are still in the CPU cache then.
        conversions = [
            (name, values, convert_column(state, name, values, self.config.monitoring, self.capped))
            for name, values in columns
        ]
        # (a category column's values as a list: a float column there is numbers where categories were expected)
        converted_columns = [
            (name, values if c[0] == "numeric" else as_values(values), *c)
            for name, values, c in conversions
            if c is not None
        ]
        numeric = self._update_numeric(
            state,
            [(name, col) for name, _, kind, col, _ in converted_columns if kind == "numeric"],
            buckets,
            lengths,
            grouped,
            grouped_times,
            grouped_positions,
        )
        # each bucket's newest event time, the "now" its streams are judged at (the same for every subject)
        bucket_now = [float(times.max() if part is None else times[part].max()) for _, part in buckets]
        whole = next((k for k, (bucket, _) in enumerate(buckets) if bucket == ALL), -1)  # all traffic's (the first)
        segment_rows: dict[str, np.ndarray] | None = None  # each row's segment value code per attribute, on demand
        # every categorical subject's buckets counted in one pass each, then the windows they closed tested together
        fed: dict[str, FedTrackers] = {}
        for name, _, kind, column, _ in converted_columns:
            if kind != "numeric":
                codes = column if grouped is None else column[grouped]
                counts = BucketCounts(codes, grouped_times, lengths, self.config.monitoring.max_categories + 1)
                fed[name] = feed_trackers([self._tracker(state, name, bucket) for bucket, _ in buckets], counts)
        tested = dict(zip(fed, closed_window_tests(list(fed.values())), strict=True))
        for name, values, kind, column, mismatch in converted_columns:
            if watch is not None and name != PREDICTION:
                observed.append((name, values, kind, column, mismatch))
            touched: list[StreamToJudge] = []
            overall: StreamToJudge | None = None
            if kind == "numeric":  # updated with its table above: only the streams to judge are picked here
                block, ids = numeric[name]
                judged = self.judging.numeric_to_judge(state, name, block, ids, buckets)
                streams = [(buckets[k][0], int(ids[k]), bucket_now[k]) for k in judged]
                everyone = (ALL, int(ids[whole]), bucket_now[whole]) if whole >= 0 and ids[whole] >= 0 else None
                # (all traffic's view beside any segment's: attribution needs it, e.g. its alert's cooldown)
                alerts.extend(self.judging.decide_numeric(state, name, block, streams, everyone))
                continue
            subject = fed[name]
            trackers, counts = subject.trackers, subject.counts
            grouped_codes = counts.codes
            closings = tested[name]
            # a stream that closed several windows in this batch is judged at each (its earlier ones below): the
            # tracker's state before the batch and after each window, taken before the tests are
            timeline = (
                {
                    k: (replace(c.tracker.state(), count=c.count0), c.tracker.window_states(c, closings[k]))
                    for k, c in subject.counted.items()
                    if closings[k]
                }
                if any(len(tests) > 1 for tests in closings.values())
                else None
            )
            updated = take_tests(subject, closings)
            if testing:
                tests = [
                    None if t is None else self.setup.window_test(state, name, kind, bucket)
                    for t, (bucket, _) in zip(trackers, buckets, strict=True)
                ]
                for k, closed in close_test_windows(tests, counts, grouped_positions):
                    for c in closed:
                        self.fdr.add((state.model, state.version, name, *buckets[k][0]), c.result)
                    self._closed += closed
            for k, (tracker, taken, ends) in updated.items():
                bucket = buckets[k][0]
                if bucket == ALL and state.segment_attributes:  # every batch: a window may end in any
                    if segment_rows is None:
                        segment_rows = segment_codes_by_row(state, buckets, n, self.config.monitoring)
                    part = counts.part(k)
                    for attr, codes_of_rows in segment_rows.items():
                        breakdown = state.breakdowns.get((name, attr))
                        if breakdown is None:
                            breakdown = state.breakdowns[name, attr] = WindowBreakdown(tracker.counts.size)
                        breakdown.add(grouped_codes[part], taken, ends, codes_of_rows, grouped_times[part])
                # judged as of its last closed window's last value, which the batch does not choose (none yet: now)
                seen = (bucket, tracker, bucket_now[k] if math.isnan(tracker.last_time) else tracker.last_time)
                if bucket == ALL:
                    overall = seen
                if self.judging.needs_judging(state, name, bucket, tracker):
                    touched.append(seen)
            if timeline:
                alerts.extend(self._judge_earlier_windows(state, name, buckets, trackers, timeline))
            if touched and overall is not None and all(b != ALL for b, _, _ in touched):
                touched.append(overall)  # attribution needs all traffic's view (e.g. its alert's cooldown)
            alerts.extend(self.judging.decide(state, name, touched))
        if watch is not None:
            alerts += feed_schema_watch(state, watch, batch, rows, observed, times, self.alerting)
        if shard != 0:
            return alerts
        alerts += self._register_predictions(state, batch, rows, buckets, times, rng, watermark)
        if self.config.decisions.enabled and self.config.decisions.retrain_drift_features:
            retrain = retrain_judgement(state, self.config.decisions, watermark)
            alerts += self.alerting.emit(state.model, state.version, [retrain])
        return alerts

    def _judge_earlier_windows(
        self,
        state: ModelState,
        name: str,
        buckets: list[Bucket],
        trackers: Sequence[CategoricalDriftTracker | None],
        timeline: dict[int, tuple[WindowState, list[WindowState]]],
    ) -> list[Alert]:
        """A categorical subject whose batch closed several windows of a stream: every window but each stream's
        latest (judged with the batch) is judged in event-time order, each stream as of its windows so far (all
        traffic's with its breakdown by segment of that window, for the local path), so that its alert opens
        and resolves at the window that showed it whatever the batch size (judging the latest alone opened it up
        to a batch later). The trackers are left as the batch left them."""
        final = {k: t.state() for k in timeline if (t := trackers[k]) is not None}
        breakdowns = [b for (subject, _), b in state.breakdowns.items() if subject == name]
        alerts: list[Alert] = []
        try:
            for k, (before, _) in timeline.items():
                tracker = trackers[k]
                if tracker is not None:
                    tracker.restore(before)
            whole = next((k for k, (bucket, _) in enumerate(buckets) if bucket == ALL), -1)
            overall = trackers[whole] if whole >= 0 else None
            order = sorted((s.time, k, i) for k, (_, states) in timeline.items() for i, s in enumerate(states))
            for _, k, i in order:
                tracker = trackers[k]
                assert tracker is not None
                window = timeline[k][1][i]
                tracker.restore(window)
                bucket = buckets[k][0]
                if i == len(timeline[k][1]) - 1 or not self.judging.needs_judging(state, name, bucket, tracker):
                    continue  # its latest window is judged with the batch
                touched: list[StreamToJudge] = [(bucket, tracker, window.time)]
                if bucket != ALL and overall is not None:  # attribution needs all traffic's view as of then
                    seen = overall.last_time if overall.last_time == overall.last_time else window.time
                    touched.append((ALL, overall, seen))
                read = [b.at(window.time) for b in breakdowns] if bucket == ALL else []
                try:
                    alerts.extend(self.judging.decide(state, name, touched))
                finally:
                    for b, before_read in zip(breakdowns, read, strict=False):
                        b.restore(before_read)
        finally:
            for k, state_after in final.items():
                tracker = trackers[k]
                assert tracker is not None
                tracker.restore(state_after)
        return alerts

    def _watched(self, feature: str) -> bool:
        if feature in self._ignore or feature == PREDICTION:  # (the prediction's own streams go by that name)
            return False
        return not self._include or feature in self._include

    def _tracker(self, state: ModelState, name: str, bucket: tuple[str, str]) -> CategoricalDriftTracker | None:
        """A categorical stream's tracker, created on first use unless the stream cap is reached."""
        key = (name, *bucket)
        tracker = state.streams.get(key)
        if tracker is None:
            if self.stream_count >= self.config.monitoring.max_streams:
                self.capped["stream"] += 1
                return None
            settings = self.config.detectors.for_feature("prediction" if name == PREDICTION else name)
            tracker = CategoricalDriftTracker(settings, self.config.monitoring.max_categories + 1)
            state.streams[key] = tracker
            self.stream_count += 1
        return tracker

    def _update_numeric(
        self,
        state: ModelState,
        numeric: list[tuple[str, np.ndarray]],
        buckets: list[Bucket],
        lengths: np.ndarray,
        grouped: np.ndarray | None,
        grouped_times: np.ndarray,
        grouped_positions: np.ndarray,
    ) -> dict[str, tuple[NumericStreams, np.ndarray]]:
        """Every numeric subject's streams updated together, one table per settings group; per subject, its
        table and each bucket's stream index (-1 where the stream cap turned the bucket away)."""
        groups: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, column in numeric:
            groups.setdefault(self.setup.numeric_group(name), []).append((name, column))
        out: dict[str, tuple[NumericStreams, np.ndarray]] = {}
        bucket_keys = tuple(bucket for bucket, _ in buckets)
        for group, members in groups.items():
            block = self.setup.numeric_table(state, group)
            names = tuple(name for name, _ in members)
            ids = block.known_ids(names, bucket_keys)
            if ids is None:
                ids = self._stream_ids(state, block, names, bucket_keys)
            for f, name in enumerate(names):
                out[name] = (block, ids[f])
            matrix = np.stack([column for _, column in members])
            missing = None
            present = ~np.isnan(matrix) if len(members) > 1 else None
            if present is not None and np.count_nonzero(present) <= SPARSE_SHARE * matrix.size:
                values, stream, times, positions, missing = present_layout(
                    matrix, grouped, ids, lengths, grouped_times, grouped_positions, present
                )
            else:
                values, stream, times, positions = stream_layout(
                    matrix, grouped, ids, lengths, grouped_times, grouped_positions
                )
            if (ids < 0).any():
                kept = stream >= 0
                values, times, stream, positions = values[kept], times[kept], stream[kept], positions[kept]
                if missing is not None:
                    counted = missing[0] >= 0
                    missing = (missing[0][counted], missing[1][counted])
            closed = block.update(values, times, stream, positions, self.config.alerts, missing)
            if len(closed):
                closed.label(state.model, state.version, block.keys)
                self.fdr.add_windows(closed)
        return out

    def _stream_ids(
        self, state: ModelState, block: NumericStreams, names: tuple[str, ...], buckets: tuple[tuple[str, str], ...]
    ) -> np.ndarray:
        """Each subject's stream in each bucket (-1: turned away by the stream cap), new streams added; kept in
        the table for the next batches unless the cap turned one away (counted again on every batch)."""
        ids = np.empty((len(names), len(buckets)), dtype=np.int64)
        new: list[tuple[int, int, tuple[str, str, str]]] = []  # (subject, bucket, key) of the streams to add
        for f, name in enumerate(names):
            for b, bucket in enumerate(buckets):
                key = (name, *bucket)
                i = block.index.get(key)
                if i is None:
                    new.append((f, b, key))
                    i = -1
                ids[f, b] = i
        if new:  # added together (the table grows once), in the order met, as many as the stream cap leaves room for
            room = max(0, self.config.monitoring.max_streams - self.stream_count)
            if len(new) > room:  # (a Counter's key is made by any +=: only where the cap turned streams away)
                self.capped["stream"] += len(new) - room
            added = new[:room]
            keys = [key for _, _, key in added]
            references = [self.setup.profile_reference(state, k[0], "numeric", (k[1], k[2])) for k in keys]
            for (f, b, _), i in zip(added, block.add_streams(keys, references), strict=True):
                ids[f, b] = i
            self.stream_count += len(added)
        if (ids >= 0).all():
            block.keep_ids(names, buckets, ids)
        return ids

    def _register_predictions(
        self,
        state: ModelState,
        batch: PredictionBatch,
        rows: np.ndarray | None,
        buckets: list[Bucket],
        times: np.ndarray,
        rng: np.random.Generator,
        watermark: float,
    ) -> list[Alert]:
        """Feed the score-based estimates, fairness and latency (the profile stage put them in the label join)."""
        n = times.size
        combos, seg_code = segment_combinations(buckets, n)
        positive = self.config.performance.positive_label
        preds = take(batch.prediction, rows)
        scores_col = take(batch.scores, rows)
        scores, sure = kept_scores(preds, scores_col, positive, self.config.performance.task)
        perf = self.setup.performance(state)
        latency = batch.latency_ms if rows is None else batch.latency_ms[rows]
        touched = perf.observe_predictions(buckets, scores, latency, times, rng, confidences=sure)
        estimates = perf.estimate_judgements(
            {b for b, _ in touched}, float(times.max()), self.alerting.lifecycle.is_firing
        )
        alerts = self.alerting.emit(state.model, state.version, estimates)
        fairness = self.setup.fairness(state)
        predicted = None
        if fairness is not None:
            classes = perf.favourable(preds)  # a multiclass model's: one-vs-rest for its favourable class
            if classes is None:
                predicted = np.where(np.isnan(scores), np.nan, (scores >= self.config.performance.threshold) * 1.0)
            else:
                predicted = classes[0]
        if fairness is not None and predicted is not None:
            fairness.observe([combos[c] for c in seg_code.tolist()], predicted)
            gaps = fairness.judgements(state.model, state.version, self.config.alerts, watermark)
            alerts += self.alerting.emit(state.model, state.version, gaps)
        return alerts

    @staticmethod
    def _latency(state: ModelState, latency: np.ndarray, buckets: list[Bucket]) -> None:
        """The model version's latency histogram, sum and count, and each segment value's histogram and sum
        (shard 0 only: every shard sees the rows)."""
        present = ~np.isnan(latency)
        if not present.any():
            return
        size = state.latency_buckets.size
        cell = np.searchsorted(np.asarray(LATENCY_BUCKETS_MS), latency, side="left")
        cell[~present] = size  # counted in no bucket
        state.latency_buckets += np.bincount(cell, minlength=size + 1)[:size]
        state.latency_sum_ms += float(latency[present].sum())
        state.latency_count += int(present.sum())
        for bucket, part in buckets[1:]:
            assert part is not None
            counts = np.bincount(cell[part], minlength=size + 1)[:size]
            held = state.segment_latency.get(bucket)
            if held is None:
                if not counts.any():
                    continue
                held = state.segment_latency[bucket] = np.zeros(size + 1)
            held[:size] += counts
            mine = latency[part]
            held[size] += float(np.where(np.isnan(mine), 0.0, mine).sum())  # (np.nansum's steps, without its checks)
