"""What a model version's performance tracker holds and how it is fed: predictions (scores for the label-free
estimate, latency), joined labels (metrics, error streams, outcomes), the model's task as its labels and scores
show it, and the calibration of its scores.

:class:`PerformanceState` is the state and its inputs; :class:`~monitor.core.performance.ModelPerformance` adds
the judgements made from it. No I/O, no wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, is_, is_not
from typing import Any, ClassVar, NamedTuple

import numpy as np

from monitor.core.calibration import ScoreCalibration
from monitor.core.concept import ErrorStream, ErrorTest
from monitor.core.drift import NumericDriftTracker
from monitor.core.estimate_counts import WindowCodeCounts
from monitor.core.join import Joined, PendingPrediction, Segments
from monitor.core.label_reading import (
    binary_label,
    class_name,
    favourable_class,
    infer_task,
    is_fraction,
    is_number,
    names_other_classes,
)
from monitor.core.metrics import (
    CLASSIFIER_TASKS,
    PerformanceWindow,
    Ring,
    binary_terms,
)
from monitor.core.rules import ALL
from monitor.core.settings import AlertConfig, DetectorSettings, PerformanceConfig
from monitor.core.stats import CategoryVocabulary

DELAY_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)
Bucket = tuple[str, str]
Readings = Sequence[float | None] | np.ndarray  # a batch's labels or values as read (None or NaN: unreadable)
MIN_CONFIDENT_ROWS = 20  # predictions with scores of more than two classes before they make a model multiclass
BASELINE_SCORE_BINS = 100  # the warm-up's scores, kept as a histogram so the calibration can be applied later


@dataclass
class BucketPerformance:
    """One bucket's labelled metrics, error stream (concept drift), estimate and outcomes."""

    window: PerformanceWindow
    estimate: Ring  # the raw scores of the last ``performance.window`` predictions
    errors: ErrorStream | None = None  # made when the task is known
    baseline_scores: np.ndarray = field(default_factory=lambda: np.zeros(BASELINE_SCORE_BINS))
    outcomes: dict[str, NumericDriftTracker] = field(default_factory=dict)
    predictions: int = 0
    labelled: int = 0
    last_label_time: float = math.nan  # the newest label time learned (labels of a later batch may be older)
    # While a model that sends confidences may still turn multiclass: its estimate and warm-up read by them,
    # taken over when it does (PerformanceState._read_confidences), so they start at its first confidence
    # however its predictions and labels were batched
    shadow: Ring | None = None
    shadow_baseline: np.ndarray | None = None


class CodedScores(NamedTuple):
    """A batch's scores clipped to [0, 1] and coded (:meth:`PerformanceState._codes`) once: which rows have one,
    the present ones clipped and their codes, and each row's place among the present ones."""

    scored: np.ndarray
    clipped: np.ndarray
    codes: np.ndarray
    place: np.ndarray

    def share(self, part: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The clipped scores and codes of a bucket's rows (``part``; None: every row), in their order."""
        if part is None:
            return self.clipped, self.codes
        mine = self.place[part[self.scored[part]]]
        return self.clipped[mine], self.codes[mine]


class PerformanceState:
    """Labels, scores, outcomes and latency of one model version in one partition, as they were fed (the
    judgements on them: :class:`~monitor.core.performance.ModelPerformance`)."""

    # Each estimate window's rows counted by code (:meth:`_codes`), kept as the window turns: a cache, not state
    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("_window_codes",)
    _window_codes: WindowCodeCounts  # made on first use (:meth:`window_codes`)

    # A multiclass model's class names as codes (at most ``performance.max_classes``, the rest one overflow
    # class), made when its first labelled pair comes; None for the other tasks.
    classes: CategoryVocabulary | None = None
    # Alerts opened while the model read as binary may be open after its labels showed another task
    withdrawing = False
    # A multiclass model's favourable class (performance.positive_label) has been named (see favourable)
    favourable_seen = False
    # Before the first label: predictions have named classes that do not read as binary (see favourable)
    names_classes = False
    # A multiclass model whose estimate reads each prediction's confidence, the probability its scores give the
    # predicted class (profile.kept_scores): the label-free estimate is the calibrated mean confidence (see
    # observe_predictions)
    confidences = False
    # Predictions registered, and of those the ones with a confidence (scores naming more than two classes):
    # the evidence that a model under ``auto`` is multiclass before its labels say so (_confidence_switch)
    rows_seen = 0
    rows_confident = 0
    # What showed the task a model read as binary (or as a regression) took instead, and what it was read as
    # (the withdrawn alerts' message says both)
    switched_by = "labels"
    read_as = "binary"
    # While scores may still make it multiclass: the calibration of its confidences (see _shadow_calibration)
    confidence_calibration: ScoreCalibration | None = None

    def __init__(
        self,
        model: str,
        version: str,
        perf: PerformanceConfig,
        alerts: AlertConfig,
        detectors: DetectorSettings,
    ) -> None:
        self.model = model
        self.version = version
        self.perf = perf
        self.alerts = alerts
        self.detectors = detectors
        self.task: str | None = None if perf.task == "auto" else perf.task
        self.buckets: dict[Bucket, BucketPerformance] = {}
        self.latency = NumericDriftTracker(detectors)
        self.delay_buckets = np.zeros(len(DELAY_BUCKETS_S) + 1, dtype=np.int64)
        self.delay_sum = 0.0
        self.delay_count = 0
        self.unsupported = 0
        self.outcome_names: list[str] = []
        self.capped_outcomes = 0
        self.calibration = ScoreCalibration(perf.calibration_labels)

    def _bucket(self, bucket: Bucket) -> BucketPerformance:
        b = self.buckets.get(bucket)
        if b is None:
            task = self.task or "binary"
            b = self.buckets[bucket] = BucketPerformance(
                window=PerformanceWindow(task, self.perf.window, self.perf.threshold),
                estimate=Ring(self.perf.window, 1),
            )
        if b.errors is None and self.task is not None:
            b.errors = ErrorStream(self.task, self.error_test())
        return b

    def restart_errors(self, at: float) -> None:
        """Every bucket's error stream starts a new regime at event time ``at`` (:meth:`ErrorStream.restart`)."""
        for b in self.buckets.values():
            if b.errors is not None:
                b.errors.restart(at)

    def error_test(self) -> ErrorTest:
        """The concept-drift test's settings for this model's task."""
        cfg = self.perf
        return ErrorTest(
            reference_events=cfg.reference_labels,
            min_events=cfg.min_labels,
            min_rise=cfg.min_accuracy_drop if self.task in CLASSIFIER_TASKS else cfg.min_error_rise,
            max_p_value=self.alerts.max_p_value,
            adwin_delta=self.detectors.adwin_delta,
        )

    # ---------------------------------------------------------------- inputs
    def observe_predictions(
        self,
        parts: Sequence[tuple[Bucket, np.ndarray | None]],
        scores: np.ndarray,
        latency_ms: np.ndarray,
        times: np.ndarray,
        rng: np.random.Generator,
        *,
        confidences: np.ndarray | None = None,
    ) -> list[tuple[Bucket, float]]:
        """Count predictions per bucket, feed the score-based estimate, and the latency detector. ``scores``:
        positive-class scores; ``confidences`` as :func:`~monitor.core.profile.kept_scores` gives them: a
        multiclass model's estimate reads them (:meth:`_confidence_switch`)."""
        if not self.confidences and confidences is not None:
            if self._confidence_switch(confidences):
                self._read_confidences()
        elif not self.confidences:
            self.rows_seen += scores.size
        # while the model may still turn multiclass, its confidences go to the estimates it would take over
        keep_shadows = not self.confidences and self._task_may_change()
        shadowing = keep_shadows and confidences is not None
        if self.confidences:
            scores = np.full(scores.shape, np.nan) if confidences is None else confidences
        estimating = self.estimates
        coded = self._coded(scores) if estimating else None
        shadow_coded = self._coded(confidences) if shadowing and confidences is not None else None
        windows: list[tuple[Hashable, Ring, np.ndarray, np.ndarray]] = []
        for bucket, part in parts:
            b = self._bucket(bucket)
            b.predictions += scores.size if part is None else part.size
            if coded is not None:
                e, codes = coded.share(part)
                self._warm_up(bucket, b.baseline_scores, e)
                windows.append((bucket, b.estimate, e, codes))
            if shadow_coded is not None:
                if b.shadow is None or b.shadow_baseline is None:
                    b.shadow, b.shadow_baseline = Ring(self.perf.window, 1), np.zeros(BASELINE_SCORE_BINS)
                e, codes = shadow_coded.share(part)
                self._warm_up((bucket, True), b.shadow_baseline, e)
                windows.append(((bucket, True), b.shadow, e, codes))
            elif b.shadow is not None and not keep_shadows:  # its task can no longer change
                b.shadow = b.shadow_baseline = None
                self.window_codes().forget((bucket, True))
        if windows:
            self.window_codes().feed(windows)
        if not keep_shadows:
            self.confidence_calibration = None
        lat = latency_ms[~np.isnan(latency_ms)]
        if lat.size:
            present = ~np.isnan(latency_ms)
            self.latency.update(np.log1p(latency_ms[present]), times[present], rng=rng)
        return [(bucket, float(times.max())) for bucket, _ in parts]

    def _coded(self, scores: np.ndarray) -> CodedScores:
        """A batch's scores (or confidences) clipped and coded once, for every bucket to take its share."""
        scored = ~np.isnan(scores)
        clipped = np.clip(scores[scored], 0.0, 1.0)
        return CodedScores(scored, clipped, self._codes(clipped), np.cumsum(scored) - 1)

    def _warm_up(self, key: Hashable, baseline: np.ndarray, e: np.ndarray) -> None:
        """The first ``warmup_events`` present scores (or confidences) clipped to [0, 1] into a warm-up
        histogram (the estimate's reference); ``key`` remembers a full one."""
        counts = self.window_codes()
        if e.size == 0 or counts.warm.get(key) is baseline:
            return
        need = self.detectors.warmup_events - int(baseline.sum())
        if need > 0:
            idx = np.minimum((e[:need] * BASELINE_SCORE_BINS).astype(np.int64), BASELINE_SCORE_BINS - 1)
            baseline += np.bincount(idx, minlength=BASELINE_SCORE_BINS)
        if need <= e.size:
            counts.warm[key] = baseline

    def window_codes(self) -> WindowCodeCounts:
        """The estimate windows' rows counted by code (:mod:`~monitor.core.estimate_counts`): a cache, made on
        first use (also in an object a snapshot restored) and again if the calibration's bins changed."""
        cache: WindowCodeCounts | None = self.__dict__.get("_window_codes")
        if cache is None or cache.codes != 2 * self.calibration.bins:
            cache = self._window_codes = WindowCodeCounts(2 * self.calibration.bins, self._codes)
        return cache

    def _confidence_switch(self, confidences: np.ndarray) -> bool:
        """Whether the estimate takes confidences from this batch on: the model is multiclass (set, or shown
        by its labels), or by some row of the batch most of its predictions, and at least
        :data:`MIN_CONFIDENT_ROWS`, have come with one, while its task may still change
        (:meth:`_task_may_change`). A regression, or a binary model past its first labels, stays what it is,
        and stray events turn none. The estimate it takes over was kept from the first confidence on."""
        if self.task == "multiclass":
            return True
        has = ~np.isnan(confidences)
        confident = self.rows_confident + np.cumsum(has)
        seen = self.rows_seen + np.arange(1, has.size + 1)
        self.rows_seen, self.rows_confident = int(seen[-1]), int(confident[-1])
        evident = (confident >= MIN_CONFIDENT_ROWS) & (2 * confident >= seen)
        return bool(evident.any()) and self._task_may_change()

    def _task_may_change(self) -> bool:
        """Whether scores may still make the model multiclass: under ``auto``, before the first label or within
        the first ``reference_labels`` read as binary or as a regression (class ids sent as numbers read as
        one until their scores show classes)."""
        if self.perf.task != "auto":
            return False
        if self.task is None:
            return True
        labelled = self.buckets[ALL].labelled if ALL in self.buckets else 0
        return self.task in ("binary", "regression") and labelled <= self.perf.reference_labels

    def _read_confidences(self, by: str = "scores") -> None:
        """The estimate reads confidences from now on (CBPE's for multiclass accuracy: the mean confidence,
        calibrated on labelled (confidence, right) pairs), and under ``auto`` the model is multiclass. The
        estimates and the calibration kept by confidence so far take the place of those of the binary reading
        (a baseline profile's calibration too: it is of positive-class scores), or start empty. ``by``: what
        showed the task, for the message of the alerts withdrawn."""
        self.confidences = True
        kept = self.confidence_calibration
        self.calibration = ScoreCalibration(self.perf.calibration_labels) if kept is None else kept
        self.confidence_calibration = None
        for b in self.buckets.values():  # what was kept by confidences from the first one on, if anything
            b.estimate = Ring(self.perf.window, 1) if b.shadow is None else b.shadow
            b.baseline_scores = np.zeros(BASELINE_SCORE_BINS) if b.shadow_baseline is None else b.shadow_baseline
            b.shadow = b.shadow_baseline = None
        if self.perf.task != "auto" or self.task == "multiclass":
            return
        self.switched_by = by
        if self.task is None:
            self.task, self.withdrawing = "multiclass", True
            self._windows_for_task()
        else:
            self._become("multiclass")

    def _windows_for_task(self) -> None:
        """Buckets made before the task was known (read as binary) take its window while it is still empty."""
        assert self.task is not None
        for b in self.buckets.values():
            if b.window.task != self.task and b.window.count == 0:
                b.window = PerformanceWindow(self.task, self.perf.window, self.perf.threshold)

    @property
    def estimates(self) -> bool:
        """Whether its scores give a label-free estimate: a binary model's (or one not known yet), or a
        multiclass model's read by its confidences."""
        return self.task in (None, "binary") or self.confidences

    def learn(self, joined: Sequence[Joined], rng: np.random.Generator) -> set[Bucket]:
        """Add joined predictions and labels; returns the buckets that changed. Read column by column: a row is
        learned when it has both a label and a value its task can read, or outcomes."""
        self._settle_task(joined)
        if not joined:
            return set()
        _ids, preds, labels, outcomes, delays = (list(col) for col in zip(*joined, strict=True))
        y_read, v_read, names = self._readings(preds, labels)
        y = np.array(y_read, dtype=np.float64)  # None (unreadable) becomes NaN
        v = np.array(v_read, dtype=np.float64)
        given = np.fromiter(map(is_not, outcomes, repeat(None)), dtype=bool, count=len(joined))
        keep = ~_unread(y_read, y) & ~_unread(v_read, v) | given
        kept = len(joined)
        if not keep.all():
            rows = np.flatnonzero(keep)
            kept = rows.size
            self.unsupported += len(joined) - kept
            if not kept:
                return set()
            take = rows.tolist()
            y, v = y[rows], v[rows]
            joined = [joined[i] for i in take]
            preds, delays, outcomes = ([col[i] for i in take] for col in (preds, delays, outcomes))
            if names is not None:
                names = [names[i] for i in take]
        correct = None
        if self.task == "multiclass":
            assert names is not None
            y, v, correct = self._class_codes(names)
        delay = np.array(delays, dtype=np.float64)
        pred_times = np.fromiter(map(_EVENT_TIME, preds), dtype=np.float64, count=kept)
        times = pred_times + delay
        self._delays(delay)
        members = _rows_by_bucket(list(map(_SEGMENTS, preds)))
        labelled = ~np.isnan(y) & ~np.isnan(v)
        overall = self.buckets.get(ALL)
        changed = overall is not None and overall.errors is not None and overall.errors.confirmed_seq >= 0
        if self.task == "binary":
            self.calibration.learn(v[labelled], y[labelled], fit=not changed)
            err = ((v >= self.perf.threshold) != (y == 1)).astype(np.float64)
        elif correct is not None:
            if self.confidences:  # each labelled prediction's confidence against whether it was right
                confidence = np.array([math.nan if p.confidence is None else p.confidence for p in preds])
                known = labelled & ~np.isnan(confidence)
                self.calibration.learn(confidence[known], correct[known], fit=not changed)
            err = 1.0 - correct
        else:
            err = np.abs(v - y)
        if not self.confidences and self._task_may_change():
            self._shadow_calibration(joined)
        outcome_cols = self._outcome_columns(list(outcomes))
        terms, place, thr = None, None, self.perf.threshold
        if self.task == "binary":  # what each labelled row adds to a window, worked out once for every bucket
            terms = binary_terms(y[labelled], v[labelled], thr)
            place = np.cumsum(labelled) - 1
        for bucket, idx in members.items():
            b = self._bucket(bucket)
            ok = idx[labelled[idx]]
            if ok.size:
                window = b.window
                if terms is not None and place is not None and window.task == "binary" and window.threshold == thr:
                    # (rows in order: a bucket with every labelled row has them all, as they are)
                    window.add_binary(terms if ok.size == terms.y.size else terms.take(place[ok]))
                else:
                    window.add(y[ok], v[ok], None if correct is None else correct[ok])
                if b.errors is not None:
                    b.errors.update(err[ok], pred_times[ok], times[ok])
                b.labelled += ok.size
            for name, col in outcome_cols.items():
                tracker = b.outcomes.get(name)
                if tracker is None:
                    tracker = b.outcomes[name] = NumericDriftTracker(self.detectors)
                tracker.update(col[idx], times[idx], rng=rng)
            b.last_label_time = float(np.fmax(b.last_label_time, times[idx].max()))
        return set(members)

    def _readings(
        self, preds: Sequence[PendingPrediction], labels: Sequence[Any]
    ) -> tuple[Readings, Readings, list[tuple[str, str] | None] | None]:
        """Each row's label and value as its task reads them (None: unreadable); a multiclass model's rows
        also as (label, predicted) class names, coded later for the whole batch (their label and value read 0)."""
        if self.task == "binary":
            return _binary_labels(labels, self.perf.positive_label), list(map(_SCORE, preds)), None
        if self.task == "regression":
            return list(map(_number, labels)), list(map(_number, map(_PREDICTION, preds))), None
        if self.task == "multiclass":
            names = list(map(_class_pair, labels, map(_PREDICTION, preds)))
            read: list[float | None] = [None if pair is None else 0.0 for pair in names]
            return read, read, names
        unread: list[float | None] = [None] * len(labels)
        return unread, unread, None

    def favourable(self, predictions: Sequence[Any], labels: Sequence[Any] | None = None) -> tuple[Any, Any] | None:
        """A multiclass model's predictions (and labels) as its favourable class or not, for its fairness
        gaps (:func:`favourable_class`), or None when it is read as binary: its task says so, or, before the
        first label, its predictions name no class but binary ones. Until a prediction or label has named the
        favourable class, its groups are not compared: ``(None, None)``."""
        pos = self.perf.positive_label
        if self.task is None and not self.names_classes:  # once seen, for every batch until the first label
            self.names_classes = names_other_classes(predictions, pos) and bool(
                (favourable_class(predictions, pos) == 1.0).any()
            )
        if self.task != "multiclass" and (self.task is not None or not self.names_classes):
            return None
        predicted = favourable_class(predictions, pos)
        y = None if labels is None else favourable_class(labels, pos)
        if not self.favourable_seen:
            self.favourable_seen = bool((predicted == 1.0).any() or (y is not None and (y == 1.0).any()))
        return (predicted, y) if self.favourable_seen else (None, None)

    def _settle_task(self, joined: Sequence[Joined]) -> None:
        """The task under ``auto``, from the first joined pair with a label; a model read as binary then takes
        the task a later pair shows within its first ``reference_labels`` labels (counted label by label, so
        batching does not matter), and its label metrics start afresh:

        * a fractional label, or a numeric prediction outside [0, 1], with a numeric prediction makes it a
          regression (a target in [0, 1] whose first label was 0, or a count whose first pair was (0, 0.3),
          was read as binary for good, and every other label was left out);
        * a prediction that names a class not read as binary ("3" after "1" and "0") makes it multiclass
          (classes "0" to "4" whose first pair was ("1", "0") left out every other class's label). A label
          alone does not: a binary classifier's stray label is counted unsupported.
        """
        if self.perf.task != "auto":
            return
        pos = self.perf.positive_label
        counted = self.buckets[ALL].labelled if ALL in self.buckets else 0
        for j in joined:
            if j.label is None:
                continue
            prediction = j.prediction.prediction
            if self.task is None:
                self.task = infer_task(j.label, prediction, pos)
                if self.task is None:
                    continue
                if self.task == "multiclass":
                    self._adopt_shadows()
                self.withdrawing = self.task != "binary"  # its scores were read as a classifier's until now
                self._windows_for_task()
            counted += 1
            if self.task != "binary" or counted > self.perf.reference_labels:
                return
            if is_number(prediction) and (is_fraction(j.label) or not 0.0 <= prediction <= 1.0):
                self._become("regression")
                return
            if isinstance(prediction, str) and binary_label(prediction, pos) is None and class_name(j.label):
                self._become("multiclass")
                return

    def _shadow_calibration(self, joined: Sequence[Joined]) -> None:
        """While scores may still make the model multiclass, its labelled predictions with a confidence also
        calibrate the confidences (against whether their class was right), for :meth:`_read_confidences` to
        take over: the calibration then holds the same pairs however predictions and labels were batched."""
        pairs = [
            (j.prediction.confidence, float(label == predicted))
            for j in joined
            if j.prediction.confidence is not None
            and (label := class_name(j.label)) is not None
            and (predicted := class_name(j.prediction.prediction)) is not None
        ]
        if pairs:
            if self.confidence_calibration is None:
                self.confidence_calibration = ScoreCalibration(self.perf.calibration_labels)
            sure, right = np.array(pairs).T
            self.confidence_calibration.learn(sure, right)

    def _adopt_shadows(self) -> None:
        """A model its labels made multiclass reads the confidences it kept so far (:meth:`_read_confidences`)."""
        if not self.confidences and any(b.shadow is not None for b in self.buckets.values()):
            self._read_confidences(by="labels")

    def _become(self, task: str) -> None:
        """Take ``task`` instead of the binary one the first pairs showed: every bucket's metrics afresh, and
        the alerts opened under the binary reading are withdrawn
        (:meth:`~monitor.core.performance.ModelPerformance.withdrawn_judgements`)."""
        self.read_as = self.task or "binary"
        self.task, self.withdrawing = task, True
        for b in self.buckets.values():
            b.window = PerformanceWindow(task, self.perf.window, self.perf.threshold)
            b.errors = None  # made again for the task by _bucket
        if task == "multiclass":
            self._adopt_shadows()

    def _class_codes(self, names: list[tuple[str, str] | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label and predicted class codes of a batch's rows (NaN where a row has no classes), and whether each
        prediction named its label (compared by name: classes past ``max_classes`` share one code)."""
        if self.classes is None:
            self.classes = CategoryVocabulary(self.perf.max_classes)
        y = np.full(len(names), np.nan)
        v = np.full(len(names), np.nan)
        correct = np.zeros(len(names))
        at = [i for i, pair in enumerate(names) if pair is not None]
        pairs = [pair for pair in names if pair is not None]
        if pairs:
            labels, predicted = [p[0] for p in pairs], [p[1] for p in pairs]
            y[at] = self.classes.encode(labels)
            v[at] = self.classes.encode(predicted)
            correct[at] = [a == b for a, b in zip(labels, predicted, strict=True)]
        return y, v, correct

    def _outcome_columns(self, outcomes: list[dict[str, float] | None]) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {}
        if not any(outcomes):  # (most batches: labels without business outcomes)
            return cols
        for i, o in enumerate(outcomes):
            for name, value in (o or {}).items():
                col = cols.get(name)
                if col is None:
                    if name not in self.outcome_names:
                        if len(self.outcome_names) >= self.perf.max_outcomes:
                            self.capped_outcomes += 1
                            continue
                        self.outcome_names.append(name)
                    col = cols[name] = np.full(len(outcomes), np.nan)
                col[i] = value
        return cols

    def _delays(self, delay: np.ndarray) -> None:
        d = np.maximum(delay[~np.isnan(delay)], 0.0)
        idx = np.searchsorted(np.asarray(DELAY_BUCKETS_S), d, side="left")
        self.delay_buckets += np.bincount(idx, minlength=self.delay_buckets.size)
        self.delay_sum += float(d.sum())
        self.delay_count += int(d.size)

    def _codes(self, scores: np.ndarray) -> np.ndarray:
        """Each score's calibration bin and side of the threshold, ``2 * bin + (score >= threshold)``."""
        return 2 * self.calibration.bins_of(scores) + (scores >= self.perf.threshold)


_PLAIN_LABEL_TYPES = frozenset({bool, int, float, type(None)})
_SCORE = attrgetter("score")
_PREDICTION = attrgetter("prediction")
_EVENT_TIME = attrgetter("event_time")
_SEGMENTS = attrgetter("segments")


def _binary_labels(labels: Sequence[Any], positive: str) -> Readings:
    """:func:`binary_label` of each label; labels that are all booleans or numbers (or missing) are read as one
    array (NaN: missing, or a number other than 0 and 1)."""
    if set(map(type, labels)) <= _PLAIN_LABEL_TYPES:
        try:
            y = np.array(labels, dtype=np.float64)
        except OverflowError:  # an integer past float's range: read one by one (it is not 0 or 1)
            pass
        else:
            y[(y != 0.0) & (y != 1.0)] = np.nan
            return y
    return list(map(binary_label, labels, repeat(positive)))


def _unread(readings: Readings, values: np.ndarray) -> np.ndarray:
    """Where a reading is None (``values``: the readings as floats). A NaN read from a value (a caller's
    NaN score) is a reading: its row is kept, as a row with an unreadable value is not."""
    if isinstance(readings, np.ndarray):  # (read as one array: NaN stands for None there)
        return np.isnan(values)
    return np.fromiter(map(is_, readings, repeat(None)), dtype=bool, count=values.size)


def _number(value: Any) -> float | None:
    """A regression label or prediction as a number (None: not one; a boolean is not)."""
    return float(value) if is_number(value) else None


def _class_pair(label: Any, prediction: Any) -> tuple[str, str] | None:
    """A multiclass row's (label, predicted) class names, None when either names no class."""
    named, predicted = class_name(label), class_name(prediction)
    return None if named is None or predicted is None else (named, predicted)


def _rows_by_bucket(segments: list[Segments]) -> dict[Bucket, np.ndarray]:
    """The rows of each bucket, in order: all traffic's, then each segment value's, in the order the rows first
    name them. Rows are grouped by their whole segment tuple first (a batch has few distinct ones)."""
    n = len(segments)
    distinct = dict.fromkeys(segments)
    if len(distinct) == 1 and len(set(segments[0])) == len(segments[0]):  # (a bucket named twice counts twice)
        every = np.arange(n)
        return {ALL: every, **dict.fromkeys(segments[0], every)}
    code_of = {combo: k for k, combo in enumerate(distinct)}
    codes = np.fromiter(map(code_of.__getitem__, segments), dtype=np.intp, count=n)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(distinct))).tolist()
    parts: dict[Bucket, list[np.ndarray]] = {}
    start = 0
    for combo, end in zip(distinct, ends, strict=True):
        rows = order[start:end]
        start = end
        for bucket in combo:
            parts.setdefault(bucket, []).append(rows)
    out: dict[Bucket, np.ndarray] = {ALL: np.arange(n)}
    for bucket, pieces in parts.items():
        out[bucket] = pieces[0] if len(pieces) == 1 else np.sort(np.concatenate(pieces))
    return out
