"""How a model version's monitoring state is built, and kept current across releases and profiles.

The engine creates a model version's state with its first event (types, category codes and schema checks
from the baseline profile), its other pieces the first time its traffic needs them (window tests, numeric
tables, performance and fairness trackers), and adapts restored state to what this release and the
configured baseline profile expect. All of that depends on the settings and the profile only, never
on the engine's counters or alerts, so it lives here and the engine only asks for the pieces.
"""

from __future__ import annotations

import numpy as np

from monitor.core.baseline import PREDICTION_FIELD, BaselineProfile, ProfileSet
from monitor.core.calibration import ScoreCalibration
from monitor.core.drift import NumericDriftTracker
from monitor.core.fairness import FairnessTracker
from monitor.core.metrics import Ring
from monitor.core.model_state import PREDICTION, ModelState
from monitor.core.numeric_streams import NumericStreams
from monitor.core.performance import ModelPerformance
from monitor.core.performance_state import BASELINE_SCORE_BINS
from monitor.core.quality import SchemaWatch
from monitor.core.settings import Settings
from monitor.core.significance import BaselineWindowTest, Reference
from monitor.core.stats import CategoryVocabulary
from monitor.core.windows import NumericWindows


class ModelSetup:
    """Builds a model version's state from ``config`` and the baseline ``profiles``."""

    def __init__(self, config: Settings, profiles: ProfileSet) -> None:
        self.config = config
        self.profiles = profiles

    def new_state(self, model: str, version: str) -> ModelState:
        """A model version's empty state, with types, category codes and schema from its baseline profile (if
        one is configured) before its first event is read."""
        state = ModelState(model, version)
        profile = self.profiles.get(model, version)
        if profile is not None:
            cap = self.config.monitoring.max_categories
            for name, f in profile.schema.items():
                if name == PREDICTION_FIELD:
                    continue
                state.kinds[name] = f.type
                if f.type == "categorical":
                    vocab = state.vocab[name] = CategoryVocabulary(cap)
                    ref = profile.streams.get((name, "", ""))
                    ranked = sorted(ref.categories, key=lambda c: -ref.categories[c]) if ref else f.categories
                    vocab.encode(ranked[:cap])
        state.quality = self.schema_watch(profile)
        return state

    def schema_watch(self, profile: BaselineProfile | None) -> SchemaWatch | None:
        """The schema checks of a model version: against the profile's schema, or learned from the warm-up."""
        q = self.config.quality
        if not q.enabled:
            return None
        schema = {k: v for k, v in profile.schema.items() if k != PREDICTION_FIELD} if profile is not None else {}
        return SchemaWatch(
            window_events=q.window_events,
            baseline_events=q.baseline_events,
            min_rate_change=q.min_rate_change,
            max_p_value=q.max_p_value,
            range_tolerance=q.range_tolerance,
            max_fields=self.config.monitoring.max_features_per_model,
            schema=schema or None,
        )

    def profile_reference(self, state: ModelState, name: str, kind: str, bucket: tuple[str, str]) -> Reference | None:
        """The baseline profile's reference for a stream, when the profile has one with a window's worth of events."""
        profile = self.profiles.get(state.model, state.version)
        if profile is None:
            return None
        ref = profile.streams.get((PREDICTION_FIELD if name == PREDICTION else name, *bucket))
        if ref is None or ref.kind != kind or ref.events < self.config.significance.window_events:
            return None
        if ref.numeric is not None:
            return ref.numeric
        n_codes = self.config.monitoring.max_categories + 1
        vocab = state.vocab[name]
        codes = vocab.encode(list(ref.categories))
        counts = np.bincount(codes, weights=list(ref.categories.values()), minlength=n_codes)
        counts[vocab.capacity] += ref.other  # the profile's long tail is live traffic's overflow
        return Reference("categorical", counts.astype(np.int64))

    def numeric_windows(self) -> NumericWindows | None:
        """The window tests of a numeric table's streams (none when significance tests are off)."""
        sig = self.config.significance
        if not sig.enabled:
            return None
        return NumericWindows(
            window=sig.window_events,
            baseline_events=sig.baseline_events,
            bins=sig.bins,
            numeric_test=sig.numeric_test,
            exact_p_below=_exact_p_below(sig.fdr),
        )

    def numeric_group(self, name: str) -> str:
        """Subjects with detector settings of their own get streams of their own; the rest share one table."""
        subject = "prediction" if name == PREDICTION else name
        return subject if subject in self.config.detectors.features else ""

    def numeric_table(self, state: ModelState, group: str) -> NumericStreams:
        """The numeric table of a settings group, created on first use."""
        block = state.numeric.get(group)
        if block is None:
            settings = self.config.detectors.for_feature(group)
            block = state.numeric[group] = NumericStreams(settings, self.numeric_windows())
        return block

    def window_test(self, state: ModelState, name: str, kind: str, bucket: tuple[str, str]) -> BaselineWindowTest:
        """A categorical stream's window test, created on first use (against the profile's reference if any)."""
        key = (name, *bucket)
        test = state.tests.get(key)
        if test is None:
            sig = self.config.significance
            test = state.tests[key] = BaselineWindowTest(
                kind,
                window=sig.window_events,
                baseline_events=sig.baseline_events,
                bins=sig.bins,
                n_codes=self.config.monitoring.max_categories + 1,
                numeric_test=sig.numeric_test,
                reference=self.profile_reference(state, name, kind, bucket),
                exact_p_below=_exact_p_below(sig.fdr),
            )
        return test

    def performance(self, state: ModelState) -> ModelPerformance:
        """The model version's performance tracker (scores, latency, labels), created on first use."""
        if state.perf is None:
            state.perf = ModelPerformance(
                state.model,
                state.version,
                self.config.performance,
                self.config.alerts,
                self.config.detectors.default,
            )
            self.seed_calibration(state)
        return state.perf

    def seed_calibration(self, state: ModelState) -> None:
        """The baseline profile's labelled rows are the estimate's calibration reference, if it has them (not a
        multiclass model's estimate from confidences: the profile's are positive-class scores)."""
        profile = self.profiles.get(state.model, state.version)
        perf = state.perf
        if profile is None or perf is None or not profile.calibration or perf.calibration.fitted or perf.confidences:
            return
        cal = profile.calibration
        perf.calibration.seed(np.asarray(cal["labelled"]), np.asarray(cal["positive"]))

    def fairness(self, state: ModelState) -> FairnessTracker | None:
        """The model version's fairness tracker (none when no attribute is configured)."""
        if not self.config.fairness.attributes and not self.config.fairness.crosses:
            return None
        if state.fairness is None:
            state.fairness = FairnessTracker(self.config.fairness, self.config.performance.threshold)
        return state.fairness

    # ---------------------------------------------------------- restored state
    def adopt_profile(self, state: ModelState) -> None:
        """A profile configured after this state was saved takes over from the learned baseline: the schema
        checks and the window tests of the streams it covers start again against it."""
        profile = self.profiles.get(state.model, state.version)
        if profile is None:
            return
        if state.quality is not None and not state.quality.from_profile:
            state.quality = self.schema_watch(profile)
        self.seed_calibration(state)
        for key, test in list(state.tests.items()):
            name = PREDICTION_FIELD if key[0] == PREDICTION else key[0]
            if not test.from_profile and (name, key[1], key[2]) in profile.streams:
                del state.tests[key]  # rebuilt on the next value, against the profile's reference
        for block in state.numeric.values():
            windows = block.windows
            if windows is None:
                continue
            for i, key in enumerate(block.keys):
                name = PREDICTION_FIELD if key[0] == PREDICTION else key[0]
                if not windows.from_profile[i] and (name, key[1], key[2]) in profile.streams:
                    block.own_warmup(i)  # the detectors' warm-up values must not restart with the window test
                    windows.restart(i, self.profile_reference(state, key[0], "numeric", (key[1], key[2])))

    def upgrade(self, state: ModelState) -> None:
        """Give a model restored from an older snapshot the attributes later releases added, fresh."""
        fresh = ModelState(state.model, state.version)
        missing = [k for k in vars(fresh) if not hasattr(state, k)]
        for k in missing:
            setattr(state, k, getattr(fresh, k))
        for key, tracker in list(state.streams.items()):
            if isinstance(tracker, NumericDriftTracker):  # an older release's per-stream object
                del state.streams[key]
                block = self.numeric_table(state, self.numeric_group(key[0]))
                i = block.adopt(key, tracker)
                test = state.tests.pop(key, None)  # its window test too, if it had one
                if test is not None and block.windows is not None:
                    block.windows.adopt(i, test)
        if "quality" in missing:
            state.quality = self.schema_watch(self.profiles.get(state.model, state.version))
        if state.perf is not None:
            perf = state.perf
            if not hasattr(perf, "calibration"):  # an older release had no score calibration
                perf.calibration = ScoreCalibration(self.config.performance.calibration_labels)
            perf.calibration.upgrade()
            for b in perf.buckets.values():  # an older release's error / loss trackers: the stream restarts
                for old in ("error", "loss"):
                    b.__dict__.pop(old, None)
                if "baseline_scores" not in b.__dict__:  # its estimate ring held expected values, not scores
                    b.__dict__.pop("estimate_baseline", None)
                    b.baseline_scores = np.zeros(BASELINE_SCORE_BINS)
                    b.estimate = Ring(b.estimate.capacity, 1)

    def apply_config(self, state: ModelState) -> None:
        """Settings come from the current config, not from the snapshot (detector state keeps its own)."""
        if state.perf is not None:
            state.perf.perf, state.perf.alerts = self.config.performance, self.config.alerts
        if state.fairness is not None:
            state.fairness.config = self.config.fairness
        exact = _exact_p_below(self.config.significance.fdr)  # a raised fdr needs exact p-values up to it
        for block in state.numeric.values():
            if block.windows is not None:
                block.windows.exact_p_below = exact
        for test in state.tests.values():
            test.exact_p_below = exact


def _exact_p_below(fdr: float) -> float:
    """Below which p-value a window test computes it exactly: a discovery needs p <= fdr."""
    return min(1.0, fdr)
