"""Per-stream drift tracking: one feature (or the prediction) of one model version in one segment.

A tracker keeps the stream's running statistics, learns a baseline from its first
``warmup_events`` values, runs the sequential detectors after that, and answers one question at
any time: is there evidence of drift right now, and how large is it? The alert rules turn that
answer into a lifecycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from monitor.core.detectors import ChunkedADWIN, PageHinkley, WindowedChiSquare, WindowTest, compare_category_rows
from monitor.core.settings import DetectorSettings
from monitor.core.stats import ReservoirQuantiles, RunningMoments, without_gross_outliers

Z_CLIP = 10.0
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class DriftEvidence:
    """What a tracker knows about a possible change; ``effect`` is compared with the thresholds.

    ``change_seq`` is the stream's event count at the detection that started the current regime; it
    is deterministic for a given input, so alert ids built from it repeat exactly on replay.
    """

    detected: bool
    effect: float
    events: int
    detector: str
    change_seq: int
    change_time: float
    p_value: float | None
    baseline: dict[str, Any]
    current: dict[str, Any]
    direction: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class NumericDriftTracker:
    """Moments, missing rate and quantiles of a numeric stream, with ADWIN and Page-Hinkley on it.

    Engine v1's one-object-per-stream tracker. The engine now keeps numeric streams as arrays
    (:mod:`monitor.core.numeric_streams`); this class stays to read older snapshots (their trackers are
    adopted on restore) and as the per-value reference the chunked detectors are tested against.

    Values are standardised with the warm-up baseline's mean and standard deviation (clipped at
    ±10), so detector thresholds read in standard deviations whatever the feature's unit. The
    effect size is the standardised difference between the mean since the last detection and
    the baseline mean; its p-value is a z-test of that difference.

    >>> t = NumericDriftTracker(DetectorSettings(warmup_events=200))
    >>> rng = np.random.default_rng(0)
    >>> t.update(rng.normal(10, 2, 2000), np.arange(2000.0), rng=rng)
    >>> t.evidence().detected
    False
    >>> t.update(rng.normal(14, 2, 2000), np.arange(2000.0, 4000.0), rng=rng)
    >>> ev = t.evidence()
    >>> (ev.detected, ev.effect > 1.5, ev.direction)
    (True, True, 'rose')
    """

    kind = "numeric"

    def __init__(self, settings: DetectorSettings, quantile_sample_size: int = 256) -> None:
        self.settings = settings
        self.count = 0
        self.missing = 0
        self.moments = RunningMoments()
        self.quantiles = ReservoirQuantiles(quantile_sample_size)
        self.baseline = RunningMoments()
        self._warm = np.empty(0)  # the warm-up values (at most warmup_events), until the baseline is set
        self._warmed = False
        self.adwin = ChunkedADWIN(settings.adwin_delta, settings.adwin_chunk, settings.adwin_clock)
        self.page_hinkley = PageHinkley(
            min_instances=settings.page_hinkley_min_instances,
            delta=settings.page_hinkley_delta,
            threshold=settings.page_hinkley_threshold,
            alpha=settings.page_hinkley_alpha,
        )
        self.detections = {"adwin": 0, "page_hinkley": 0}
        self.last_detector = ""
        self.change_seq = 0
        self.change_time = math.nan
        self._since_n = 0
        self._since_sum = 0.0
        self._since_zsum = 0.0

    @property
    def warmed_up(self) -> bool:
        return self._warmed

    def _finish_warmup(self) -> None:
        """Baseline from the warm-up values without gross outliers (:func:`stats.without_gross_outliers`), so one
        absurd value cannot blind the detectors for good."""
        self.baseline.update(without_gross_outliers(self._warm))
        self._warm = np.empty(0)
        self._warmed = True

    def _scale(self) -> tuple[float, float]:
        mean = self.baseline.mean
        std = self.baseline.std
        if not std > 0:
            std = max(abs(mean) * 1e-3, 1e-9)  # a constant baseline: any movement is large
        return mean, std

    def update(self, values: np.ndarray, times: np.ndarray, *, rng: np.random.Generator) -> None:
        """Add a batch in stream order; ``NaN`` marks a missing value."""
        self.count += values.size
        present = ~np.isnan(values)
        if not present.all():
            self.missing += int(values.size - present.sum())
            values, times = values[present], times[present]
        if values.size == 0:
            return
        self.moments.update(values)
        self.quantiles.update(values, rng)
        if not self._warmed:
            need = self.settings.warmup_events - self._warm.size
            self._warm = np.concatenate([self._warm, values[:need]])
            values, times = values[need:], times[need:]
            if self._warm.size >= self.settings.warmup_events:
                self._finish_warmup()
            if values.size == 0:
                return
        seq0 = self.moments.n - values.size  # stream position of values[0] among present values
        mean, std = self._scale()
        with np.errstate(over="ignore"):  # absurd values (1e308) against a tiny spread clip quietly, as elsewhere
            z = np.clip((values - mean) / std, -Z_CLIP, Z_CLIP)
        cuts = [(p, "adwin") for p in self.adwin.update_many(z)]
        cuts += [(p, "page_hinkley") for p in self.page_hinkley.update_many(z)]
        for _, name in cuts:
            self.detections[name] += 1
        if cuts:
            pos, name = max(cuts)
            self.last_detector = name
            self.change_seq = seq0 + pos + 1
            self.change_time = float(times[pos])
            self._since_n, self._since_sum, self._since_zsum = 0, 0.0, 0.0
            values, z = values[pos + 1 :], z[pos + 1 :]
        self._since_n += values.size
        self._since_sum += float(values.sum())
        self._since_zsum += float(z.sum())

    def evidence(self) -> DriftEvidence:
        mean, _ = self._scale()
        n = self._since_n
        effect = abs(self._since_zsum / n) if n else 0.0
        current_mean = self._since_sum / n if n else math.nan
        p_value = math.erfc(effect * math.sqrt(n) / math.sqrt(2)) if n else None  # two-sided z-test
        direction = "" if not n else ("rose" if current_mean > mean else "fell")
        return DriftEvidence(
            detected=bool(self.last_detector),
            effect=effect,
            events=n,
            detector=self.last_detector or "adwin",
            change_seq=self.change_seq,
            change_time=self.change_time,
            p_value=p_value,
            baseline={"mean": mean, "std": self.baseline.std, "events": self.baseline.n},
            current={"mean": current_mean, "events": n},
            direction=direction,
        )

    def view(self) -> dict[str, Any]:
        q = self.quantiles.quantiles(QUANTILES)
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "mean": self.moments.mean if self.moments.n else math.nan,
            "std": self.moments.std,
            "min": self.moments.minimum,
            "max": self.moments.maximum,
            "quantiles": dict(zip(QUANTILES, q.tolist(), strict=True)),
            "detections": dict(self.detections),
            "warmed_up": self.warmed_up,
        }


@dataclass(frozen=True)
class WindowState:
    """A categorical tracker's view as of one tested window: its test (None: before any), the time and present
    value count of its last value, its first value's time, the first time of the window opened after it (NaN: none
    yet), and the values offered to the stream by then (missing ones included: the judgement's position)."""

    result: WindowTest | None
    time: float
    seq: int
    start: float
    open_start: float
    count: int


_NO_WINDOWS = np.zeros((0, 0), dtype=np.int64)
_NO_ENDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class CountedWindows:
    """A batch counted into a categorical tracker's windows (:meth:`CategoricalDriftTracker.count_windows`):
    the rows its windows took, their times, the stream's value count before them, and the windows that closed
    (counts, and the index among the rows of the value that closed each), waiting for their tests."""

    tracker: CategoricalDriftTracker
    rows: np.ndarray
    times: np.ndarray
    seq0: int
    closed: np.ndarray
    ends: np.ndarray
    count0: int = 0  # the tracker's values offered before the batch, missing ones included


def chi_square_tests(counted: list[CountedWindows]) -> list[list[WindowTest]]:
    """The tests of the windows several streams closed, in one :func:`compare_category_rows` per category
    vocabulary size (each window against its own stream's reference); one list of tests per stream."""
    out: list[list[WindowTest]] = [[] for _ in counted]
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(counted):
        if len(c.ends):
            groups.setdefault(c.closed.shape[1], []).append(i)
    for members in groups.values():
        refs = [counted[i] for i in members]
        reference = np.concatenate([np.repeat(_reference(c)[None, :], len(c.ends), axis=0) for c in refs])
        results = compare_category_rows(
            reference, np.concatenate([c.closed for c in refs]), np.concatenate([c.ends for c in refs])
        )
        at = 0
        for i, c in zip(members, refs, strict=True):
            out[i] = results[at : at + len(c.ends)]
            at += len(c.ends)
    return out


def _reference(counted: CountedWindows) -> np.ndarray:
    reference = counted.tracker.test.reference
    assert reference is not None  # (set by the time a window closes after it)
    return reference


class CategoricalDriftTracker:
    """Category frequencies (codes from a capped vocabulary) with a windowed chi-square detector.

    The first ``max(warmup_events, categorical_window)`` values are the baseline (never smaller than
    a test window, so the reference is not the noisier sample); every later window of
    ``categorical_window`` values is tested against it. The effect is the window's total variation
    distance from the baseline, its evidence the chi-square p-value.

    >>> t = CategoricalDriftTracker(DetectorSettings(warmup_events=300, categorical_window=300), n_codes=3)
    >>> rng = np.random.default_rng(0)
    >>> _ = t.update(rng.integers(0, 2, 900), np.arange(900.0))
    >>> t.evidence().detected
    False
    >>> rows, ends = t.update(np.full(300, 2), np.arange(900.0, 1200.0))
    >>> ends  # the value that closed a window, by its index in the batch
    [299]
    >>> ev = t.evidence()
    >>> (ev.detected, round(ev.effect, 2), ev.p_value < 1e-9)
    (True, 1.0, True)
    """

    kind = "categorical"
    # The first value's time of the last tested window, and of the window filling now (NaN: none yet, or a
    # snapshot of an earlier release): a change is dated from the start of the window that showed it
    last_start = math.nan
    _open_start = math.nan

    def __init__(self, settings: DetectorSettings, n_codes: int) -> None:
        self.settings = settings
        self.count = 0
        self.missing = 0
        self.counts = np.zeros(n_codes, dtype=np.int64)
        self.test = WindowedChiSquare(n_codes, settings.categorical_window)
        self.baseline_events = max(settings.warmup_events, settings.categorical_window)
        self._warmup = WindowedChiSquare(n_codes, self.baseline_events)
        self.last: WindowTest | None = None
        self.last_time = math.nan
        self.last_seq = 0
        self.detections = {"chi2": 0}

    def update(self, codes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Add a batch's codes (-1: missing); which of its values (by index) the test windows took, past the
        warm-up, and the indices of the values that closed a window (for :mod:`monitor.core.local_change`)."""
        counted = self.count_windows(codes, times)
        return self.take(counted, chi_square_tests([counted])[0])

    def count_windows(self, codes: np.ndarray, times: np.ndarray) -> CountedWindows:
        """The first half of :meth:`update`: the batch counted, the windows it closed not yet tested (many
        streams' are tested at once: :func:`chi_square_tests`), then given to :meth:`take`."""
        count0 = self.count
        self.count += codes.size
        rows = np.arange(codes.size)
        present = codes >= 0
        if not present.all():
            self.missing += int(codes.size - present.sum())
            codes, times, rows = codes[present], times[present], rows[present]
        if codes.size == 0:
            return CountedWindows(self, rows, times, 0, _NO_WINDOWS, _NO_ENDS, count0)
        seq0 = int(self.counts.sum())
        self.counts += np.bincount(codes, minlength=self.counts.size)
        if self.test.reference is None:
            have = min(seq0 + codes.size, self.baseline_events) - seq0
            self._warmup.update_many(codes[:have])
            if self._warmup.reference is not None:
                self.test.reference = self._warmup.reference
            codes, times, rows, seq0 = codes[have:], times[have:], rows[have:], seq0 + have
            if codes.size == 0:
                return CountedWindows(self, rows, times, seq0, _NO_WINDOWS, _NO_ENDS, count0)
        if self.test.filled == 0:
            self._open_start = float(times[0])
        closed, ends = self.test.count_windows(codes)
        return CountedWindows(self, rows, times, seq0, closed, ends, count0)

    def add_counts(self, counts: np.ndarray, offered: int, first_time: float, present: int) -> bool:
        """A batch already counted by code (``counts``: its ``present`` values, ``offered`` with the missing ones,
        the first present value's time), added when it neither completes the warm-up nor closes a test window,
        as :meth:`count_windows` would add it; False, and nothing added, otherwise (the caller counts it that
        way). Many streams' batches are counted in one pass this way (:mod:`monitor.core.categorical_batch`)."""
        test = self.test
        if test.reference is None or counts.size != self.counts.size or not test.add_counts(counts, present):
            return False
        if present and test.filled == present:  # (the window was empty: this batch opens it)
            self._open_start = first_time
        self.count += offered
        self.missing += offered - present
        self.counts += counts
        return True

    def window_states(self, counted: CountedWindows, results: list[WindowTest]) -> list[WindowState]:
        """What the tracker knows after each window :meth:`count_windows` closed (``results``: their tests, in
        order), without taking them: a batch that closed several is judged at each (see
        :meth:`ModelMonitor._judge_earlier_windows`)."""
        times, seq0, rows = counted.times, counted.seq0, counted.rows
        open_start = self._open_start
        states = []
        for result in results:
            at = result.position
            first = at - self.test.window + 1
            start = float(times[first]) if first >= 0 else open_start
            open_start = float(times[at + 1]) if at + 1 < times.size else math.nan
            count = counted.count0 + int(rows[at]) + 1
            states.append(WindowState(result, float(times[at]), seq0 + at + 1, start, open_start, count))
        return states

    def state(self) -> WindowState:
        """Its state now: the latest window's, and the values offered so far."""
        return WindowState(self.last, self.last_time, self.last_seq, self.last_start, self._open_start, self.count)

    def restore(self, state: WindowState) -> None:
        """Back (or on) to a state of :meth:`state` or :meth:`window_states`."""
        self.last, self.last_time, self.last_seq = state.result, state.time, state.seq
        self.last_start, self._open_start, self.count = state.start, state.open_start, state.count

    def take(self, counted: CountedWindows, results: list[WindowTest]) -> tuple[np.ndarray, list[int]]:
        """The second half of :meth:`update`: the tests of the windows :meth:`count_windows` closed, in order."""
        rows, count = counted.rows, self.count
        ends: list[int] = []
        for state in self.window_states(counted, results):
            self.restore(state)
            assert state.result is not None
            ends.append(int(rows[state.result.position]))
            if state.result.p_value < self.settings.categorical_alpha:
                self.detections["chi2"] += 1
        self.count = count  # (each window's state set the count as of it)
        if results and self.last is not None:  # its shares are rows of the batch's arrays: kept alone
            self.last = replace(self.last, reference=self.last.reference.copy(), current=self.last.current.copy())
        return rows, ends

    def evidence(self, labels: list[str] | None = None) -> DriftEvidence:
        last = self.last
        if last is None:
            return DriftEvidence(False, 0.0, 0, "chi2", 0, math.nan, None, {}, {})
        labels = labels or [str(i) for i in range(last.reference.size)]
        diff = last.current - last.reference
        top = int(np.argmax(np.abs(diff)))
        name = labels[top] if top < len(labels) else str(top)
        return DriftEvidence(
            detected=last.p_value < self.settings.categorical_alpha,
            effect=last.distance,
            events=self.settings.categorical_window,
            detector="chi2",
            change_seq=self.last_seq,
            change_time=self.last_start if self.last_start == self.last_start else self.last_time,
            p_value=last.p_value,
            baseline={"category": name, "share": float(last.reference[top])},
            current={"category": name, "share": float(last.current[top]), "events": self.settings.categorical_window},
            direction="rose" if diff[top] > 0 else "fell",
            extra={"chi2": last.chi2},
        )

    def view(self, labels: list[str] | None = None) -> dict[str, Any]:
        total = int(self.counts.sum())
        labels = labels or [str(i) for i in range(self.counts.size)]
        shares = {labels[i]: int(c) / total for i, c in enumerate(self.counts.tolist()) if c and i < len(labels)}
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "shares": shares,
            "detections": dict(self.detections),
            "warmed_up": self.test.reference is not None,
        }
