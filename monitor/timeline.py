"""``monitor replay --timeline``: estimated and realized accuracy per chunk of predictions, to check the estimate.

A label-free estimate is only worth what it shows against the truth. The timeline cuts each model version's
predictions, in the order of the replayed input, into chunks of ``every`` and gives per chunk the CBPE
estimate of accuracy with its 95% band (and of precision, recall and F1) and, over the chunk's predictions
whose labels arrived during the replay, the realized accuracy: the comparison NannyML draws per chunk.

A chunk is never estimated with its own labels. Its estimate uses the calibration of the labels that came
before it: the model version's calibration as it stood at its first prediction (a labelled baseline
profile, if any), then fitted chunk by chunk, in input order, on the labelled predictions of the earlier
chunks, up to as many labels as the monitor's own calibration took before a confirmed concept change froze
it. So the rows depend only on the input, not on batching, and they show the estimate as it would have
been made before each chunk's labels arrived.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.core.calibration import ScoreCalibration
from monitor.core.engine import PartitionEngine
from monitor.core.join import Joined
from monitor.core.label_reading import binary_label, class_name
from monitor.core.performance import accuracy_band, confusion_estimates

DEFAULT_EVERY = 5000


@dataclass
class _Predictions:
    """One model version's predictions as they were registered (one lane: one partition's engine)."""

    position: list[int] = field(default_factory=list)
    lane: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)  # the predicted class's probability, NaN: none
    time: list[float] = field(default_factory=list)
    right: list[float] = field(default_factory=list)  # 1 right, 0 wrong, NaN: no (usable) label yet
    label: list[float] = field(default_factory=list)  # the binary label, NaN: none
    right_named: list[float] = field(default_factory=list)  # right by class name, NaN: no label naming a class
    calibration: ScoreCalibration | None = None  # as it stood at the first prediction


class Timeline:
    """Collects predictions and their joined labels from engines; :meth:`rows` cuts them into chunks."""

    def __init__(self, every: int = DEFAULT_EVERY, *, threshold: float = 0.5, positive: str = "1") -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.threshold = threshold
        self.positive = positive
        self.models: dict[tuple[str, str], _Predictions] = {}
        self.where: dict[str, tuple[tuple[str, str], int]] = {}  # prediction id -> (model version, row)
        self.lanes: list[PartitionEngine] = []  # lane number -> its engine
        # With two stages (monitor replay), the engine that monitors a model version: its detection stage's.
        self.detection: Callable[[str, str], PartitionEngine] | None = None

    def engine_of(self, model: str, version: str, lane: int) -> PartitionEngine | None:
        """The engine holding a model version's state: its detection stage's, else the lane's own."""
        if self.detection is not None:
            return self.detection(model, version)
        return self.lanes[lane] if lane < len(self.lanes) else None

    def observer(self, lane: int) -> LaneObserver:
        """The observer to set on lane ``lane``'s engine; give it each batch's input positions."""
        return LaneObserver(self, lane)

    def _add(
        self,
        lane: int,
        positions: np.ndarray,
        model: str,
        version: str,
        ids: list[str],
        scores: np.ndarray,
        times: np.ndarray,
        confidences: np.ndarray | None = None,
    ) -> None:
        key = (model, version)
        preds = self.models.get(key)
        if preds is None:
            preds = self.models[key] = _Predictions()
            engine = self.engine_of(model, version, lane)
            state = engine.model_state(model, version) if engine is not None else None  # made now if need be
            if state is not None and state.perf is not None:
                preds.calibration = copy.deepcopy(state.perf.calibration)
        start = len(preds.position)
        preds.position += positions.tolist()
        preds.lane += [lane] * len(ids)
        preds.score += scores.tolist()
        preds.confidence += [math.nan] * len(ids) if confidences is None else confidences.tolist()
        preds.time += times.tolist()
        preds.right += [math.nan] * len(ids)
        preds.right_named += [math.nan] * len(ids)
        preds.label += [math.nan] * len(ids)
        for i, pid in enumerate(ids):
            self.where[pid] = (key, start + i)

    def _join(self, items: list[Joined]) -> None:
        for j in items:
            found = self.where.get(j.prediction_id)
            if found is None or j.label is None:
                continue
            key, row = found
            preds = self.models[key]
            label, predicted = class_name(j.label), class_name(j.prediction.prediction)
            if label is not None and predicted is not None:
                preds.right_named[row] = float(label == predicted)
            score = preds.score[row]
            y = binary_label(j.label, self.positive)
            if y is not None and score == score:
                preds.right[row] = float((score >= self.threshold) == (y == 1.0))
                preds.label[row] = y

    def rows(self) -> list[dict[str, Any]]:
        """One row per chunk of ``every`` predictions per model version, in input order."""
        out: list[dict[str, Any]] = []
        for (model, version), preds in sorted(self.models.items()):
            order = np.argsort(np.asarray(preds.position), kind="stable")
            position = np.asarray(preds.position)[order]
            task, reads, estimates = self._reading(model, version)  # as the monitor read this model version
            score = np.asarray(preds.confidence if reads else preds.score, dtype=np.float64)[order]
            if not estimates:  # a regression, or a multiclass model without confidences: no estimate
                score = np.full(score.size, np.nan)
            time = np.asarray(preds.time, dtype=np.float64)[order]
            named = np.asarray(preds.right_named, dtype=np.float64)[order]  # right by class name
            if reads:  # a multiclass model read by confidences: its labelled predictions that had one
                confidence = np.asarray(preds.confidence, dtype=np.float64)[order]
                right = np.where(np.isnan(confidence), np.nan, named)
            else:
                right = np.asarray(preds.right, dtype=np.float64)[order]
            label = right if reads else np.asarray(preds.label, dtype=np.float64)[order]
            if task == "multiclass" and not reads:  # right by class name, as its accuracy is measured
                right = named
            elif task == "regression":  # no accuracy to realize
                right = np.full(score.size, np.nan)
            cal, limit = self._calibration(model, version, preds, fresh=reads)
            for start in range(0, score.size, self.every):
                sl = slice(start, start + self.every)
                s, y = score[sl], label[sl]
                scored = ~np.isnan(s)
                p_positive = np.full(s.size, np.nan)
                p_positive[scored] = cal.probability(s[scored])
                if reads:  # a multiclass model's calibrated confidence: accuracy only
                    p_right = p_positive
                    cbpe = dict.fromkeys(("precision", "recall", "f1"), math.nan)
                else:
                    p_right = np.where(s >= self.threshold, p_positive, 1.0 - p_positive)
                    cbpe = confusion_estimates(s[scored] >= self.threshold, p_positive[scored])
                row = self._row(model, version, position[sl], time[sl], p_right, right[sl])
                row.update({f"estimated_{k}": None if v != v else v for k, v in cbpe.items()})
                out.append(row)
                known = scored & ~np.isnan(y)  # then this chunk's labels join the calibration, in input order
                xs, ys = s[known], y[known]
                room = 0 if cal.frozen else xs.size if limit == math.inf else max(0, int(limit - cal.fit_n.sum()))
                if room:
                    cal.learn(xs[:room], ys[:room])
                if xs.size > room:
                    cal.learn(xs[room:], ys[room:], fit=False)
        return out

    def _engines(self, model: str, version: str) -> list[PartitionEngine]:
        if self.detection:
            return [e for e in (self.engine_of(model, version, 0),) if e is not None]
        return self.lanes

    def _reading(self, model: str, version: str) -> tuple[str | None, bool, bool]:
        """How the monitor read the model version: its task, whether its estimate read confidences (a multiclass
        model's), and whether its scores gave an estimate at all (not a regression's, nor a multiclass model's
        without confidences)."""
        for engine in self._engines(model, version):
            state = engine.models.get((model, version))
            if state is not None and state.perf is not None:
                return state.perf.task, state.perf.confidences, state.perf.estimates
        return None, False, True

    def _calibration(
        self, model: str, version: str, preds: _Predictions, *, fresh: bool = False
    ) -> tuple[ScoreCalibration, float]:
        """The calibration to start from, and how many labels it may fit: as many as the monitor's own took
        before a concept change froze it (unlimited if it never froze). ``fresh``: none to start from (a
        multiclass model's, whose confidences the calibration of its first prediction did not see)."""
        cal = copy.deepcopy(preds.calibration) if preds.calibration is not None and not fresh else None
        limit = math.inf
        for engine in self._engines(model, version):
            state = engine.models.get((model, version))
            if state is not None and state.perf is not None:
                final = state.perf.calibration
                if cal is None:
                    cal = ScoreCalibration(final.reference, final.bins)
                if final.frozen:
                    limit = float(final.fit_n.sum())
                break
        return (cal if cal is not None else ScoreCalibration()), limit

    @staticmethod
    def _row(
        model: str, version: str, position: np.ndarray, time: np.ndarray, p_right: np.ndarray, right: np.ndarray
    ) -> dict[str, Any]:
        scored = p_right[~np.isnan(p_right)]
        est, low, high = accuracy_band(scored) if scored.size else (None, None, None)
        known = right[~np.isnan(right)]
        return {
            "model": model,
            "model_version": version,
            "first": int(position[0]),
            "last": int(position[-1]),
            "start": float(np.nanmin(time)),
            "end": float(np.nanmax(time)),
            "predictions": int(position.size),
            "estimated_accuracy": est,
            "estimated_low": low,
            "estimated_high": high,
            "realized_accuracy": float(known.mean()) if known.size else None,
            "labelled": int(known.size),
        }


class LaneObserver:
    """An :class:`~monitor.core.profile.EngineObserver` for one lane; ``positions`` maps batch rows to input."""

    def __init__(self, timeline: Timeline, lane: int) -> None:
        self.timeline = timeline
        self.lane = lane
        self.positions = np.zeros(0, dtype=np.int64)

    def predictions(
        self, model: str, version: str, index: np.ndarray, ids: list[str], scores: np.ndarray, times: np.ndarray,
        confidences: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.timeline._add(self.lane, self.positions[index], model, version, ids, scores, times, confidences)

    def joined(self, items: list[Joined]) -> None:
        self.timeline._join(items)


def write_timeline(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line."""
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row) + b"\n")
