"""What labels (and scores) say about a model: metrics, concept drift, estimates, outcomes, latency.

One :class:`ModelPerformance` per (model, version) in a partition engine. It is fed predictions (for
label-free estimates, coverage and latency) and joined labels (for metrics, concept drift and business
outcomes), per bucket (all traffic and each tracked segment value), as :class:`PerformanceState` holds them,
and turns that state into :class:`~monitor.core.rules.Judgement` objects for the alert lifecycle. No I/O, no
wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np

from monitor.core.concept import ErrorStream
from monitor.core.drift import DriftEvidence, NumericDriftTracker
from monitor.core.floor_tests import floor_p_value
from monitor.core.metrics import CLASSIFIER_TASKS, LOWER_IS_BETTER, MULTICLASS_METRICS, REGRESSION_METRICS
from monitor.core.performance_state import BASELINE_SCORE_BINS, Bucket, BucketPerformance, PerformanceState
from monitor.core.rules import ALL, Judgement, alert_key


class EstimateReading(NamedTuple):
    """A bucket's label-free accuracy estimate (:meth:`ModelPerformance._estimate_reading`)."""

    current: float
    low: float
    high: float
    events: int
    baseline: float
    baseline_events: int
    drop: float
    p_value: float
    trusted: bool | None
    enough: bool
    fire: bool


class ModelPerformance(PerformanceState):
    """Labels, scores, outcomes and latency of one model version in one partition, and the judgements they
    give: label-based alerts, score-based estimates, business outcomes and latency."""

    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = (*PerformanceState.SNAPSHOT_SKIP, "_alert_keys", "_rights_cache")
    _alert_keys: dict[tuple[str, str, Bucket], str]  # caches made on first use: by :meth:`_key`,
    _rights_cache: tuple[np.ndarray, bool, np.ndarray, np.ndarray]  # by :meth:`_rights`

    def withdrawn_judgements(self, now: float, is_firing: Callable[[str], bool]) -> list[Judgement]:
        """Clear judgements for the alerts a model opened while it read as binary (a score-based estimate
        before its first label; accuracy floors, concept drift or the baseline level before its labels showed
        another task): nothing judges those keys again under its task, so they resolve as any other would,
        saying why. Checked until none is open."""
        if not self.withdrawing or self.task in (None, "binary"):
            return []
        subjects = [("performance", "accuracy_vs_baseline")]
        if not self.confidences:  # a multiclass model's confidences go on judging its estimate
            subjects.append(("performance", "estimated_accuracy"))
        valid = {"regression": REGRESSION_METRICS, "multiclass": MULTICLASS_METRICS}.get(self.task, ())
        subjects += [("performance", metric) for metric in sorted(self.perf.floors) if metric not in valid]
        if self.task not in CLASSIFIER_TASKS:
            subjects.append(("concept_drift", "accuracy"))
        else:  # read as a regression before its scores showed classes
            subjects.append(("concept_drift", "mae"))
        out: list[Judgement] = []
        for bucket in sorted(self.buckets):
            for kind, subject in subjects:
                if is_firing(self._key(kind, subject, bucket)):
                    ev = DriftEvidence(
                        detected=False, effect=0.0, events=0, detector="withdrawn",
                        change_seq=self.buckets[bucket].predictions, change_time=now, p_value=None, baseline={},
                        current={"task": self.task, "by": self.switched_by, "was": self.read_as},
                    )  # fmt: skip
                    out.append(
                        self._judgement(kind, subject, bucket, ev, now, stream_kind="withdrawn", threshold=0.0,
                                        critical=math.inf, fire=False, clear=True, shift=0.0, statistic=0.0)
                    )  # fmt: skip
        self.withdrawing = bool(out)
        return out

    # ------------------------------------------------------------- judgement
    def trustworthy(self, bucket: Bucket) -> bool | None:
        """Whether score-based estimates can be trusted: calibration checked on labelled data (None: too few)."""
        b = self.buckets.get(bucket)
        if b is None or not (self.task == "binary" or self.confidences):
            return None
        cal = self.calibration
        if cal.fitted:  # judged on labels the calibrator did not see
            if cal.checked < self.perf.min_labels:
                return None
            return cal.error() <= self.perf.calibration_max_error
        if self.confidences or b.window.ring.size < self.perf.min_labels:
            return None
        return b.window.calibration_error() <= self.perf.calibration_max_error

    def probability_right(self, scores: np.ndarray) -> np.ndarray:
        """Probability that each prediction is right (CBPE): the class is the model's (raw score against the
        threshold), the chance of the positive class the calibrated score's; a multiclass model's calibrated
        confidence."""
        if not scores.size:
            return scores
        positive = self.calibration.probability(scores)
        if self.confidences:
            return positive
        return np.where(scores >= self.perf.threshold, positive, 1.0 - positive)

    def estimated_window_confusion(self, bucket: Bucket) -> tuple[float, float, float] | None:
        """Expected (TP, FP, FN) of the bucket's last ``performance.window`` predictions (None if none): sums
        that add up across partitions before precision, recall and F1 are taken."""
        b = self.buckets.get(bucket)
        if b is None or b.estimate.size == 0 or self.task not in (None, "binary"):
            return None
        scores = b.estimate.rows()[:, 0]
        ok = scores[~np.isnan(scores)]
        return expected_confusion(ok >= self.perf.threshold, self.calibration.probability(ok))

    def estimated(self, bucket: Bucket) -> tuple[float, float, float, int]:
        """Estimated accuracy of the bucket's last ``performance.window`` predictions, with a 95% band:
        (estimate, low, high, predictions); NaN without predictions."""
        b = self.buckets.get(bucket)
        if b is None or b.estimate.size == 0 or not self.estimates:
            return math.nan, math.nan, math.nan, 0
        est, low, high, _var, n = (column[0] for column in self._window_estimates([(bucket, b)], self._rights()[0]))
        return float(est), float(low), float(high), int(n)

    def _rights(self) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`_right_by_code`, :meth:`_baseline_right`), remembered while the calibration's map and what the
        estimate reads (scores or confidences) stay the same: without labels, for good."""
        cal_map = self.calibration.map
        held = self.__dict__.get("_rights_cache")
        if held is None or held[0] is not cal_map or held[1] != self.confidences:
            held = self._rights_cache = (cal_map, self.confidences, self._right_by_code(), self._baseline_right())
        return held[2], held[3]

    def _right_by_code(self) -> np.ndarray:
        """The probability that a prediction is right for each of its possible codes (:meth:`_codes`): every
        score of one calibration bin on one side of the threshold has the same."""
        positive = self.calibration.map
        if self.confidences:
            return np.repeat(positive, 2)
        right = np.empty(2 * positive.size)  # per bin: below the threshold, then at or above it
        right[0::2], right[1::2] = 1.0 - positive, positive
        return right

    def _window_estimates(
        self, held: list[tuple[Bucket, BucketPerformance]], right: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:func:`accuracy_band` of each bucket's estimate window, with the variance of its rows and their number
        (NaN where it has none), from the count of its rows' codes (``right``: :meth:`_right_by_code`). The counts
        are kept as rows come and go (:meth:`~PerformanceState.window_codes`), one row per bucket: a batch costs
        what it adds, and every bucket is read at once."""
        counts = self.window_codes().counts([(bucket, b.estimate) for bucket, b in held])
        n = np.array([b.estimate.size for _, b in held], dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            est = (counts * right).sum(axis=1) / n
            half = 1.96 * np.sqrt((counts * (right * (1 - right))).sum(axis=1)) / n
            var = (counts * (right - est[:, None]) ** 2).sum(axis=1) / n
        return est, np.maximum(0.0, est - half), np.minimum(1.0, est + half), var, n

    def _baseline_right(self) -> np.ndarray:
        """The probability of being right at each warm-up score bin's centre, under the current calibration."""
        return self.probability_right((np.arange(BASELINE_SCORE_BINS) + 0.5) / BASELINE_SCORE_BINS)

    @staticmethod
    def _baseline_estimates(
        held: list[tuple[Bucket, BucketPerformance]], e: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each bucket's warm-up's estimated accuracy under the current calibration (``e``:
        :meth:`_baseline_right`): (mean, variance, predictions), NaN without any."""
        histograms = np.stack([b.baseline_scores for _, b in held])
        n = histograms.sum(axis=1).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (histograms * e).sum(axis=1) / n
            var = (histograms * (e - mean[:, None]) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
        var[n == 0] = math.nan
        return mean, var, n

    def judgements(self, buckets: set[Bucket], drifting: set[str]) -> list[Judgement]:
        """Fire / clear conditions of every label-based alert for the given buckets."""
        out: list[Judgement] = []
        for bucket in sorted(buckets):
            b = self.buckets.get(bucket)
            if b is None:
                continue
            if b.labelled and b.errors is not None:
                out.append(self._concept(bucket, b, b.errors, drifting))
                out.extend(self._floors(bucket, b))
            for name, tracker in b.outcomes.items():
                out.append(self._business(bucket, b, name, tracker))
        if ALL in buckets:
            out.extend(self._pending_concept(buckets, drifting))
        return out

    def _pending_concept(self, buckets: set[Bucket], drifting: set[str]) -> list[Judgement]:
        """The concept-drift judgements of segments this batch brought no label for whose change point has not
        had its test's labels yet: attribution holds all traffic's alert for such a local change (it only
        dilutes it), and a batch of a few labels often has none of a small segment's. Not firing and not clear,
        they change nothing in their own alert's lifecycle."""
        pending = []
        for bucket, b in self.buckets.items():
            errors = b.errors
            if bucket in buckets or not b.labelled or errors is None or errors.fired is not None:
                continue
            # its evidence's detected and events, read without building it (a label batch may be a few labels)
            if errors.change_seq > 0 and 0 < errors.since_n < errors.test.min_events:
                pending.append(bucket)
        out: list[Judgement] = []
        for bucket in sorted(pending):
            b = self.buckets[bucket]
            assert b.errors is not None
            j = self._concept(bucket, b, b.errors, drifting)
            if not j.fire and not j.clear:
                out.append(j)
        return out

    def estimate_judgements(
        self, buckets: set[Bucket], now: float, is_firing: Callable[[str], bool] | None = None
    ) -> list[Judgement]:
        """Label-free estimate alerts and latency alerts, evaluated as predictions arrive. ``is_firing``: which
        alert keys are open, for the alerts a model opened while it read as binary (:meth:`withdrawn_judgements`).

        The estimates are read for every bucket, but judgements are made of them only when one would fire or
        one of their alerts is open (with ``is_firing``): otherwise the lifecycle would take each without a
        change, and a judgement that does not fire moves no other's attribution."""
        out = []
        if self.estimates:
            warm, full = self.detectors.warmup_events, self.window_codes().warm
            held = [
                (bucket, b)
                for bucket in sorted(buckets)
                if (b := self.buckets.get(bucket)) is not None
                and (full.get(bucket) is b.baseline_scores or b.baseline_scores.sum() >= warm)
            ]
            readings = self._estimate_readings(held) if held else []
            if (
                is_firing is None
                or any(reading.fire for reading in readings)
                or any(is_firing(self._key("performance", "estimated_accuracy", bucket)) for bucket, _ in held)
            ):
                out += [self._estimate(bucket, b, now, r) for (bucket, b), r in zip(held, readings, strict=True)]
        if self.task not in (None, "binary") and is_firing is not None:
            out.extend(self.withdrawn_judgements(now, is_firing))
        if self.latency.warmed_up:
            out.append(self._latency(now))
        return out

    def _key(self, kind: str, subject: str, bucket: Bucket) -> str:
        """The alert key of ``kind`` and ``subject`` in ``bucket`` (remembered: some are asked on every batch)."""
        keys: dict[tuple[str, str, Bucket], str] | None = self.__dict__.get("_alert_keys")
        if keys is None:
            keys = self._alert_keys = {}
        key = keys.get((kind, subject, bucket))
        if key is None:
            segment = {} if bucket == ALL else {bucket[0]: bucket[1]}
            key = keys[kind, subject, bucket] = alert_key(self.model, kind, subject, segment, self.version)
        return key

    def _judgement(
        self, kind: str, subject: str, bucket: Bucket, ev: DriftEvidence, now: float, **kw: Any
    ) -> Judgement:
        segment = {} if bucket == ALL else {bucket[0]: bucket[1]}
        return Judgement(
            bucket=bucket,
            evidence=ev,
            now=now,
            key=self._key(kind, subject, bucket),
            kind=kind,
            subject=subject,
            segment=segment,
            **kw,
        )

    def baseline_level(self, accuracy: float, source: str, baseline_events: int = 0) -> Judgement | None:
        """All traffic's windowed accuracy against the accuracy its baseline profile measured (binary only).

        Fires when it is lower by at least ``min_accuracy_drop`` and a one-sided z-test gives p below
        ``max_p_value`` (two-proportion when the profile says how many labelled rows its level came from):
        a model that is not as good live as on its validation data.
        """
        b = self.buckets.get(ALL)
        if self.task != "binary" or b is None or not 0 < accuracy < 1:
            return None
        n = b.window.ring.size
        if n < self.perf.min_labels:
            return None
        value = b.window.window_metrics().get("accuracy", math.nan)
        if value != value:
            return None
        drop = accuracy - value
        if baseline_events > 0:  # both are samples: a pooled two-proportion z-test
            pooled = (accuracy * baseline_events + value * n) / (baseline_events + n)
            se = math.sqrt(pooled * (1 - pooled) * (1 / baseline_events + 1 / n))
        else:  # the level is all we know: test against it as a fixed value
            se = math.sqrt(accuracy * (1 - accuracy) / n)
        z = drop / se if se > 0 else 0.0
        p_value = 0.5 * math.erfc(z / math.sqrt(2))
        threshold = self.perf.min_accuracy_drop
        ev = DriftEvidence(
            detected=drop >= threshold,
            effect=max(drop, 0.0),
            events=n,
            detector="baseline_level",
            change_seq=b.window.count,
            change_time=b.last_label_time,
            p_value=p_value,
            baseline={"accuracy": accuracy, "source": source},
            current={"accuracy": value, "events": n},
            direction="fell" if drop > 0 else "rose",
        )
        return self._judgement(
            "performance",
            "accuracy_vs_baseline",
            ALL,
            ev,
            b.last_label_time,
            stream_kind="baseline_level",
            threshold=threshold,
            critical=2 * threshold,
            fire=drop >= threshold and p_value < self.alerts.max_p_value,
            clear=drop < threshold * self.alerts.resolve_ratio,
            shift=max(drop, 0.0),
            statistic=drop,
        )

    def _concept(self, bucket: Bucket, b: BucketPerformance, errors: ErrorStream, drifting: set[str]) -> Judgement:
        """Concept drift from the error stream: fires at the first label where the test after ADWIN's change
        point held (so the firing position does not depend on batching), clears once the regime since the
        latest change point is back within ``resolve_ratio`` of the threshold."""
        a = self.alerts
        test = errors.test
        ev = errors.evidence()
        statistic = float(ev.extra["statistic"])
        enough = ev.events >= test.min_events
        fire = enough and statistic >= test.min_rise and ev.p_value is not None and ev.p_value < test.max_p_value
        now = b.last_label_time
        if errors.fired is not None:
            ev, now, fire = errors.fired, errors.fired_time, True
            statistic = float(ev.extra["statistic"])
        subject = "accuracy" if self.task in CLASSIFIER_TASKS else "mae"
        return self._judgement(
            "concept_drift",
            subject,
            bucket,
            ev,
            now,
            stream_kind="error",
            threshold=test.min_rise,
            critical=2 * test.min_rise,
            fire=fire,
            clear=enough and statistic < test.min_rise * a.resolve_ratio,
            shift=max(statistic, 0.0),
            statistic=statistic,
            extra={"inputs_drifting": sorted(drifting), "task": self.task, "min_events": test.min_events},
            position=errors.count,
        )

    def _floors(self, bucket: Bucket, b: BucketPerformance) -> list[Judgement]:
        out: list[Judgement] = []
        if not self.perf.floors:
            return out
        n = b.window.ring.size
        metrics = b.window.window_metrics()
        for metric, floor in sorted(self.perf.floors.items()):
            value = metrics.get(metric, math.nan)
            if value != value:
                continue
            worse = value > floor if metric in LOWER_IS_BETTER else value < floor
            p_value = floor_p_value(b.window, metric, value, floor) if worse else 1.0
            enough = n >= self.perf.min_labels
            fire = enough and worse and p_value is not None and p_value < self.alerts.max_p_value
            ev = DriftEvidence(
                detected=worse,
                effect=abs(value - floor),
                events=n,
                detector="floor",
                change_seq=b.window.count,
                change_time=b.last_label_time,
                p_value=p_value,
                baseline={"floor": floor},
                current={metric: value, "events": n},
                direction="fell" if value < floor else "rose",
            )
            out.append(
                self._judgement(
                    "performance",
                    metric,
                    bucket,
                    ev,
                    b.last_label_time,
                    stream_kind="floor",
                    threshold=floor,
                    critical=math.inf,  # a floor breach is a warning; concept drift carries the severity
                    fire=fire,
                    clear=enough and not worse,
                    shift=abs(value - floor),
                    statistic=value,
                )
            )
        return out

    def _estimate_readings(self, held: list[tuple[Bucket, BucketPerformance]]) -> list[EstimateReading]:
        """Each bucket's estimated accuracy against its warm-up's, and whether that fires its alert."""
        cfg, a = self.perf, self.alerts
        right, baseline_right = self._rights()
        windows = (column.tolist() for column in self._window_estimates(held, right))
        baselines = (column.tolist() for column in self._baseline_estimates(held, baseline_right))
        trust = self._trust([bucket for bucket, _ in held])
        out = []
        for (cur, low, high, var, n), (base_mean, base_var, base_n), trusted in zip(
            zip(*windows, strict=True), zip(*baselines, strict=True), trust, strict=True
        ):
            drop = base_mean - cur
            se = math.sqrt(base_var / base_n + var / n) if n > 1 else math.inf
            p_value = 0.5 * math.erfc((drop / se) / math.sqrt(2)) if se > 0 else (0.0 if drop > 0 else 1.0)
            enough = n >= cfg.min_labels
            fire = enough and trusted is not False and drop >= cfg.min_accuracy_drop and p_value < a.max_p_value
            out.append(EstimateReading(cur, low, high, n, base_mean, base_n, drop, p_value, trusted, enough, fire))
        return out

    def _trust(self, buckets: list[Bucket]) -> list[bool | None]:
        """:meth:`trustworthy` of each bucket; once the calibration is fitted, one answer for them all."""
        cal = self.calibration
        if cal.fitted and (self.task == "binary" or self.confidences):
            shared = None if cal.checked < self.perf.min_labels else cal.error() <= self.perf.calibration_max_error
            return [shared] * len(buckets)
        return [self.trustworthy(bucket) for bucket in buckets]

    def _estimate(self, bucket: Bucket, b: BucketPerformance, now: float, reading: EstimateReading) -> Judgement:
        cfg, a = self.perf, self.alerts
        cur, low, high, n, base_mean, base_n, drop, p_value, trusted, enough, fire = reading
        ev = DriftEvidence(
            detected=drop >= cfg.min_accuracy_drop,
            effect=drop,
            events=n,
            detector="cbpe",
            change_seq=b.predictions,
            change_time=now,
            p_value=p_value,
            baseline={"estimated_accuracy": base_mean, "events": base_n},
            current={"estimated_accuracy": cur, "low": low, "high": high, "events": n, "trustworthy": trusted},
            direction="fell" if drop > 0 else "rose",
        )
        return self._judgement(
            "performance",
            "estimated_accuracy",
            bucket,
            ev,
            now,
            stream_kind="estimate",
            threshold=cfg.min_accuracy_drop,
            critical=2 * cfg.min_accuracy_drop,
            fire=fire,
            clear=enough and drop < cfg.min_accuracy_drop * a.resolve_ratio,
            shift=max(drop, 0.0),
            statistic=drop,
        )

    def _business(self, bucket: Bucket, b: BucketPerformance, name: str, tracker: NumericDriftTracker) -> Judgement:
        cfg, a = self.perf, self.alerts
        ev = tracker.evidence()
        enough = ev.events >= cfg.min_labels
        significant = ev.p_value is not None and ev.p_value < a.max_p_value
        fell = ev.direction == "fell"
        shift = abs(ev.current.get("mean", 0.0) - ev.baseline.get("mean", 0.0)) if ev.events else 0.0
        return self._judgement(
            "business",
            name,
            bucket,
            ev,
            b.last_label_time,
            stream_kind="numeric",
            threshold=cfg.business_min_effect,
            critical=3 * cfg.business_min_effect,
            fire=ev.detected and enough and significant and fell and ev.effect >= cfg.business_min_effect,
            clear=enough and (not fell or ev.effect < cfg.business_min_effect * a.resolve_ratio),
            shift=shift if shift == shift else 0.0,
        )

    def _latency(self, now: float) -> Judgement:
        cfg, a = self.perf, self.alerts
        ev = self.latency.evidence()
        enough = ev.events >= a.min_events
        significant = ev.p_value is not None and ev.p_value < a.max_p_value
        rose = ev.direction == "rose"
        typical = {
            "baseline": {"typical_ms": math.expm1(ev.baseline.get("mean", math.nan))},
            "current": {"typical_ms": math.expm1(ev.current.get("mean", math.nan)) if ev.events else math.nan},
        }
        ev = DriftEvidence(
            ev.detected,
            ev.effect,
            ev.events,
            ev.detector,
            ev.change_seq,
            ev.change_time,
            ev.p_value,
            {**ev.baseline, **typical["baseline"]},
            {**ev.current, **typical["current"]},
            ev.direction,
        )
        return self._judgement(
            "latency",
            "latency_ms",
            ALL,
            ev,
            now,
            stream_kind="latency",
            threshold=cfg.latency_min_effect,
            critical=3 * cfg.latency_min_effect,
            fire=ev.detected and enough and significant and rose and ev.effect >= cfg.latency_min_effect,
            clear=enough and (not rose or ev.effect < cfg.latency_min_effect * a.resolve_ratio),
            shift=ev.effect,
        )


def expected_confusion(predicted: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    """Expected true positives, false positives and false negatives from each prediction's class and its
    calibrated P(positive class): sums, so they add up across partitions and windows."""
    tp = float(positive[predicted].sum())
    return tp, float((1.0 - positive[predicted]).sum()), float(positive[~predicted].sum())


def metrics_from_confusion(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Precision, recall and F1 of (expected) confusion counts; NaN where undefined."""
    return {
        "precision": tp / (tp + fp) if tp + fp > 0 else math.nan,
        "recall": tp / (tp + fn) if tp + fn > 0 else math.nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan,
    }


def confusion_estimates(predicted: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """Expected precision, recall and F1 from each prediction's class and calibrated P(positive class).

    >>> confusion_estimates(np.array([True, True, False]), np.array([0.9, 0.6, 0.2]))
    {'precision': 0.75, 'recall': 0.8823529411764706, 'f1': 0.8108108108108107}
    """
    return metrics_from_confusion(*expected_confusion(predicted, positive))


def accuracy_band(p_right: np.ndarray) -> tuple[float, float, float]:
    """Mean of per-prediction probabilities of being right, with a 95% band (a sum of Bernoulli variables)."""
    n = p_right.size
    est = float(p_right.mean())
    half = 1.96 * math.sqrt(float((p_right * (1 - p_right)).sum())) / n
    return est, max(0.0, est - half), min(1.0, est + half)
