"""Label learning: joined labels into a model version's metrics, and the judgements that follow from them.

A joined label updates its model version's performance tracker (concept drift, performance levels,
calibration), then its retrain and rollback decisions and its fairness gaps are judged again. Labels are
learned in chunks cut at the retrain check's window so that checks fall on the same labels whatever the
batching. The engine's state (its model versions, random generator and watermark) is passed in with each
call, as a restored engine replaces it; the collaborators given here (settings, model setup, alert desk)
stay for the engine's life.
"""

from __future__ import annotations

import math
from operator import attrgetter

import numpy as np

from monitor.core.alerting import Alerting
from monitor.core.columns import tracked_segments
from monitor.core.join import Joined, Segments
from monitor.core.judgements import decision_judgements
from monitor.core.label_reading import binary_label
from monitor.core.model_setup import ModelSetup
from monitor.core.model_state import ModelState
from monitor.core.performance import ModelPerformance
from monitor.core.rules import ALL, Alert
from monitor.core.settings import Settings

_PREDICTION = attrgetter("prediction")
_MODEL_VERSION = attrgetter("model", "model_version")
_MODEL_SEGMENTS = attrgetter("model", "model_version", "segments")


class LabelLearning:
    """Learns a partition's joined labels; its alerts go through ``alerting``."""

    def __init__(self, config: Settings, setup: ModelSetup, alerting: Alerting) -> None:
        self.config = config
        self.setup = setup
        self.alerting = alerting
        self._segments_seen: dict[tuple[str, str, Segments, int], Segments] = {}  # joined segments as tracked here

    def learn(
        self,
        joined: list[Joined],
        models: dict[tuple[str, str], ModelState],
        rng: np.random.Generator,
        watermark: float,
    ) -> list[Alert]:
        """Joined labels to metrics, then to concept-drift, performance and business judgements."""
        rows = self._tracked_segments(joined, models)
        versions = list(map(_MODEL_VERSION, map(_PREDICTION, rows)))
        by_model: dict[tuple[str, str], list[Joined]] = {}
        if len(set(versions)) == 1:  # (most batches: one model version's labels)
            by_model[versions[0]] = rows
        else:
            for j, key in zip(rows, versions, strict=True):
                by_model.setdefault(key, []).append(j)
        alerts: list[Alert] = []
        for key, model_items in by_model.items():
            state = models.get(key)
            if state is None:
                continue
            perf = self.setup.performance(state)
            for items in self._label_chunks(perf, model_items):
                alerts += self._learn_chunk(state, perf, items, models, rng, watermark)
        return alerts

    def forget(self, model: str, version: str) -> None:
        """A retired model version's segment mapping goes with it: if it comes back, its new state caps its
        segment values afresh."""
        self._segments_seen = {k: v for k, v in self._segments_seen.items() if k[:2] != (model, version)}

    def _tracked_segments(self, joined: list[Joined], models: dict[tuple[str, str], ModelState]) -> list[Joined]:
        """Joined predictions with their segments as this engine tracks them: another partition's profile stage
        capped the segment values it kept by what it saw first, this engine by what it saw first. Worked out
        once per distinct (model, version, segments) of the batch; only rows whose segments differ are remade."""
        preds = list(map(_PREDICTION, joined))
        keys = list(map(_MODEL_SEGMENTS, preds))
        seen = self._segments_seen
        changed: dict[tuple[str, str, Segments], Segments] = {}
        for model, version, segments in dict.fromkeys(keys):
            state = models.get((model, version))
            key = (model, version, segments, 0 if state is None else len(state.segment_attributes))
            tracked = seen.get(key)
            if tracked is None:
                tracked = tracked_segments(state, segments, self.config.monitoring.max_segment_values)
                if len(seen) < 65_536:
                    seen[key] = tracked
            if tracked != segments:
                changed[model, version, segments] = tracked
        if not changed:
            return joined
        out: list[Joined] = []
        for j, p, combo in zip(joined, preds, keys, strict=True):
            as_tracked = changed.get(combo)
            out.append(j if as_tracked is None else j._replace(prediction=p._replace(segments=as_tracked)))
        return out

    def _label_chunks(self, perf: ModelPerformance, items: list[Joined]) -> list[list[Joined]]:
        """Cut a model's joined labels where all traffic's label count reaches a multiple of the retrain check's
        window, so checks (and what they see) fall on the same labels whatever the batching."""
        window = self.config.decisions.window_labels
        done = perf.buckets[ALL].labelled if ALL in perf.buckets else 0
        chunks, start = [], 0
        cut = window - done % window
        while start + cut < len(items):
            chunks.append(items[start : start + cut])
            start += cut
            cut = window
        chunks.append(items[start:])
        return chunks

    def _learn_chunk(
        self,
        state: ModelState,
        perf: ModelPerformance,
        items: list[Joined],
        models: dict[tuple[str, str], ModelState],
        rng: np.random.Generator,
        watermark: float,
    ) -> list[Alert]:
        """One chunk of a model version's labels: metrics, then its performance, decision and fairness
        judgements."""
        alerts: list[Alert] = []
        touched = perf.learn(items, rng)
        judged = perf.judgements(touched, self._inputs_drifting(state))
        profile = self.setup.profiles.get(state.model, state.version)
        if profile is not None and "accuracy" in profile.metrics and ALL in touched:
            level = perf.baseline_level(
                profile.metrics["accuracy"],
                profile.source or "its profile",
                int(profile.metrics.get("labelled_events", 0)),
            )
            if level is not None:
                judged.append(level)
        emit = self.alerting.emit
        alerts += emit(state.model, state.version, judged)
        if self.config.decisions.enabled:
            is_firing = self.alerting.lifecycle.is_firing
            decisions = decision_judgements(state, judged, models.values(), self.config, is_firing, watermark)
            alerts += emit(state.model, state.version, decisions)
        fairness = self.setup.fairness(state)
        thr, pos = self.config.performance.threshold, self.config.performance.positive_label
        if fairness is not None:
            classes = perf.favourable([j.prediction.prediction for j in items], [j.label for j in items])
            if classes is None:  # read as binary
                predicted = np.array(
                    [math.nan if j.prediction.score is None else float(j.prediction.score >= thr) for j in items]
                )
                labels = [binary_label(j.label, pos) if j.label is not None else None for j in items]
                y = np.array([math.nan if v is None else v for v in labels])
            elif classes[0] is None:  # no favourable class named yet: nothing to compare groups on
                fairness = None
            else:
                predicted, y = classes
        if fairness is not None:
            fairness.learn([j.prediction.segments for j in items], predicted, y)
            gaps = fairness.judgements(state.model, state.version, self.config.alerts, watermark)
            alerts += emit(state.model, state.version, gaps)
        return alerts

    def _inputs_drifting(self, state: ModelState) -> set[str]:
        """Inputs of this model version with a drift condition here or an open data-drift alert."""
        prefix = f"{state.model}/{state.version}/data_drift/"
        open_here = {k[len(prefix) :].rsplit("/", 1)[0] for k in self.alerting.lifecycle.open if k.startswith(prefix)}
        return state.drifting | open_here
