"""Concept drift on the error stream of labelled predictions, in the stream's own units.

A label-derived stream is not a feature: a classifier's errors (binary or multiclass) are 0/1 values
whose level is a rate, and a regression model's absolute errors are non-negative amounts. Both go to river's ADWIN as
they are, as Bifet & Gavaldà designed it: no standardising by a warm-up standard deviation (a model that
is right on its first labels has none), no outlier filter and no clipping (a confident miss is the
signal, not noise).

ADWIN proposes a change point; the values that arrive *after* it are then tested against the reference
(the stream's first ``reference_events`` values; a rise in the errors that ADWIN finds among them once
``min_events`` have come ends it there, and a fall, a cold start, starts it again after the fall):

* binary and multiclass: the error-rate rise (the accuracy drop) and a one-sided pooled two-proportion z-test;
* regression: the relative rise of the mean absolute error and a one-sided Welch z-test.

Only values after the change point count, so the test is not biased by the stretch that made ADWIN cut.
A later detection moves the change point only once the current one has had its ``min_events`` values,
so a burst of detections cannot keep restarting the count. The standard error never falls below one
value's weight (``1/n`` of the rate or of the reference level), so a reference with no errors at all
still gives finite, meaningful z-scores.

Every check is made at every value, and :meth:`ErrorStream.update` reports the first value at which the
test held, so the position where an alert fires does not depend on how the stream was cut into batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import length_hint

import numpy as np
from scipy import special

from monitor.core import river_drift
from monitor.core.drift import DriftEvidence
from monitor.core.metrics import CLASSIFIER_TASKS, TASKS


@dataclass(frozen=True)
class ErrorTest:
    """The settings of the test after a change point (plain values: they travel in snapshots)."""

    reference_events: int = 500
    min_events: int = 200
    min_rise: float = 0.05
    max_p_value: float = 0.001
    adwin_delta: float = 0.002
    adwin_clock: int = 32

    def __post_init__(self) -> None:
        if self.reference_events < 1 or self.min_events < 1:
            raise ValueError(f"reference_events and min_events must be >= 1, got {self}")
        if not self.min_rise > 0:
            raise ValueError(f"min_rise must be > 0, got {self.min_rise}")
        if not 0 < self.max_p_value < 1 or not 0 < self.adwin_delta < 1:
            raise ValueError(f"max_p_value and adwin_delta must be in (0, 1), got {self}")


class ErrorStream:
    """Errors of one bucket's labelled predictions: reference, ADWIN, and the test since the change.

    >>> s = ErrorStream("binary", ErrorTest(reference_events=300, min_events=100))
    >>> rng = np.random.default_rng(0)
    >>> s.update(np.zeros(2000), np.arange(2000.0)) is None     # a model right on every early label
    True
    >>> s.update((rng.random(2000) < 0.4) * 1.0, np.arange(2000.0, 4000.0))  # fires at this index of the batch
    147
    >>> ev = s.fired   # ADWIN cut after value 2,048; the test held on the 100th value after it
    >>> (ev.change_seq, ev.events, ev.baseline["mean"], ev.current["mean"], ev.p_value < 1e-20)
    (2048, 100, 0.0, 0.33, True)
    """

    def __init__(self, task: str, test: ErrorTest) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.test = test
        self.count = 0
        self.ref_n = 0
        self.ref_sum = 0.0
        self.ref_sumsq = 0.0
        self.adwin = river_drift.ADWIN(delta=test.adwin_delta, clock=test.adwin_clock)
        self.detections = 0
        self.change_seq = 0  # stream position (1-based) of the value after which the current regime began
        self.change_time = math.nan
        self.since_n = 0
        self.since_sum = 0.0
        self.since_sumsq = 0.0
        self.fired: DriftEvidence | None = None  # evidence at the first value of the last update that fired
        self.fired_time = math.nan
        self.confirmed_seq = -1  # the change point whose test has held (each change point fires once)

    # ------------------------------------------------------------------ input
    # The reference ended at a change point ADWIN found within it (an older snapshot's stream: not so).
    ref_closed = False
    # Labels of predictions made before this time are left out (see restart; an older snapshot's: none).
    skip_before = -math.inf

    def restart(self, at: float) -> None:
        """A new regime from event time ``at`` on (an input break that took the errors up was fixed then): a
        change point here, a fresh ADWIN, and the labels of predictions made before ``at`` left out, since
        those of the broken ones keep arriving for as long as labels lag and say nothing of the model. The
        reference stays: what follows is tested against it, so a change that outlived the fix fires again on
        its own, and errors back at their level clear the alert the break opened."""
        self.adwin = river_drift.ADWIN(delta=self.test.adwin_delta, clock=self.test.adwin_clock)
        self.skip_before = max(self.skip_before, at)
        self.change_seq = self.count
        self.change_time = at
        self.since_n, self.since_sum, self.since_sumsq = 0, 0.0, 0.0
        self.fired = None

    @property
    def has_reference(self) -> bool:
        return self.ref_closed or self.ref_n >= self.test.reference_events

    def update(self, values: np.ndarray, times: np.ndarray, seen: np.ndarray | None = None) -> int | None:
        """Add errors in stream order; returns the index of the first value at which the test fired.

        ``times`` are the predictions' event times (a change point is when the model began to err);
        ``seen`` when each label became known (when the test could hold), by default ``times``.
        """
        values = np.asarray(values, dtype=np.float64)
        seen = times if seen is None else seen
        self.fired = None
        if self.skip_before > -math.inf:
            keep = np.asarray(times) >= self.skip_before
            if not keep.all():
                values, times, seen = values[keep], np.asarray(times)[keep], np.asarray(seen)[keep]
        if values.size == 0:
            return None
        start = 0
        seq0 = self.count
        if not self.has_reference:  # value by value: ADWIN learns the stream from its start
            i = 0
            while i < values.size and not self.has_reference:
                v = float(values[i])
                self.adwin.update(v)
                self.ref_n, self.ref_sum, self.ref_sumsq = self.ref_n + 1, self.ref_sum + v, self.ref_sumsq + v * v
                i += 1
                if not self.adwin.drift_detected:
                    continue
                if self.adwin.estimation > self.ref_sum / self.ref_n and self.ref_n >= self.test.min_events:
                    # The errors rose within the reference (a model that degrades on its first labels): it ends
                    # here and what follows is tested against it, as after any change point. Left in, the cut was
                    # lost, the reference mixed both regimes, and ADWIN, having dropped the older ones, saw a
                    # stable stream from then on: the drop was never alerted.
                    self.ref_closed = True
                    self.detections += 1
                    self.change_seq = seq0 + i
                    self.change_time = float(times[i - 1])
                elif self.adwin.estimation < self.ref_sum / self.ref_n:
                    # They fell (a cold start): the reference starts again from here, or the worse start would
                    # be the level later errors are tested against, and a rise short of it never alerted.
                    self.ref_n, self.ref_sum, self.ref_sumsq = 0, 0.0, 0.0
            start = i
        first: int | None = None
        adwin = self.adwin
        self.count += values.size
        cut_from = start
        if adwin.drift_detected and start < values.size:  # as river's update does first after a detection
            adwin._reset()
        # River's compiled window driven directly, up to the first value it fires on (any() stops there): the
        # values as river's own update would take them, without a Python call per value.
        rest = iter(values[start:].tolist())
        while any(map(adwin._helper.update, rest)):
            i = values.size - length_hint(rest) - 1
            self.detections += 1
            if self.change_seq == 0 or self.since_n + (i - cut_from) >= self.test.min_events:
                hit = self._absorb(values[cut_from:i], seen[cut_from:i], cut_from)
                first = hit if first is None else first
                self.change_seq = seq0 + i + 1
                self.change_time = float(times[i])
                self.since_n, self.since_sum, self.since_sumsq = 0, 0.0, 0.0
                cut_from = i + 1
            if length_hint(rest):
                adwin._reset()
            else:  # river keeps the window that fired until the next value
                adwin._drift_detected = True
        hit = self._absorb(values[cut_from:], seen[cut_from:], cut_from)
        return first if first is not None else hit

    def _absorb(self, x: np.ndarray, seen: np.ndarray, offset: int) -> int | None:
        """Add values after the change point; the first index (in the batch) where the test holds, if any."""
        if x.size == 0:
            return None
        if self.change_seq == 0:  # no change point yet: nothing to test
            return None
        n = self.since_n + np.arange(1, x.size + 1, dtype=np.float64)
        s = self.since_sum + np.cumsum(x)
        ss = self.since_sumsq + np.cumsum(x * x)
        self.since_n = int(n[-1])
        self.since_sum = float(s[-1])
        self.since_sumsq = float(ss[-1])
        if self.fired is not None or self.confirmed_seq == self.change_seq:
            return None
        rise, p = self._test(n, s, ss)
        ok = (n >= self.test.min_events) & (rise >= self.test.min_rise) & (p < self.test.max_p_value)
        if not ok.any():
            return None
        k = int(np.argmax(ok))
        self.confirmed_seq = self.change_seq
        self.fired_time = float(seen[k])
        self.fired = self._evidence(int(n[k]), float(s[k]), float(ss[k]))
        return offset + k

    # ------------------------------------------------------------------ tests
    def _reference(self) -> tuple[float, float, float]:
        n = max(self.ref_n, 1)
        mean = self.ref_sum / n
        var = max(self.ref_sumsq / n - mean * mean, 0.0) * (n / (n - 1) if n > 1 else 1.0)
        return float(n), mean, var

    def _test(self, n: np.ndarray, s: np.ndarray, ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The statistic (rise over the reference) and its one-sided p-value, for arrays of running sums."""
        rn, rmean, rvar = self._reference()
        mean = s / n
        if self.task in CLASSIFIER_TASKS:
            pooled = (self.ref_sum + s) / (rn + n)
            se = np.sqrt(pooled * (1 - pooled) * (1 / rn + 1 / n))
            se = np.maximum(se, 1.0 / n)
            rise = mean - rmean
        else:
            var = np.maximum(ss / n - mean * mean, 0.0) * np.where(n > 1, n / np.maximum(n - 1, 1), 1.0)
            se = np.sqrt(rvar / rn + var / n)
            scale = max(rmean, 1e-12)
            se = np.maximum(se, scale / n)
            rise = (mean - rmean) / scale
        return rise, special.ndtr(-(mean - rmean) / se)

    def _evidence(self, n: int, s: float, ss: float) -> DriftEvidence:
        rn, rmean, _ = self._reference()
        if n:
            rise, p = self._test(np.array([float(n)]), np.array([s]), np.array([ss]))
            statistic, p_value = float(rise[0]), float(p[0])
        else:
            statistic, p_value = 0.0, 1.0
        mean = s / n if n else math.nan
        return DriftEvidence(
            detected=self.change_seq > 0,
            effect=max(statistic, 0.0),
            events=n,
            detector="adwin",
            change_seq=self.change_seq,
            change_time=self.change_time,
            p_value=p_value,
            baseline={"mean": rmean, "events": int(rn)},
            current={"mean": mean, "events": n},
            direction="" if not n else ("rose" if mean > rmean else "fell"),
            extra={"statistic": statistic},
        )

    def evidence(self) -> DriftEvidence:
        """The test over every value since the change point, as of the last value."""
        return self._evidence(self.since_n, self.since_sum, self.since_sumsq)
