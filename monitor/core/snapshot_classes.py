"""The classes a snapshot may name: restore builds only these (an allow-list, never arbitrary code).

The engine module registers them when it is imported, so any code that restores an engine has them.
"""

from __future__ import annotations

from monitor.core import snapshot as snap
from monitor.core.alerting import AlertLifecycle, Incident
from monitor.core.calibration import ScoreCalibration
from monitor.core.chunks import StreamChunker
from monitor.core.concept import ErrorStream, ErrorTest
from monitor.core.decisions import RetrainState
from monitor.core.detectors import ChunkedADWIN, PageHinkley, WindowedChiSquare, WindowTest
from monitor.core.drift import CategoricalDriftTracker, DriftEvidence, NumericDriftTracker
from monitor.core.event_clock import VersionActivity
from monitor.core.fairness import AttributeWindow, FairnessTracker, GroupStats
from monitor.core.false_discovery import FalseDiscoveryControl
from monitor.core.incidents import Incidents
from monitor.core.join import LabelJoiner, PendingLabel, PendingPrediction
from monitor.core.local_change import WindowBreakdown
from monitor.core.metrics import PerformanceWindow, Ring
from monitor.core.model_state import ModelState
from monitor.core.numeric_streams import NumericStreams
from monitor.core.performance import ModelPerformance
from monitor.core.performance_state import BucketPerformance
from monitor.core.profile import SegmentCaps
from monitor.core.quality import FieldCounts, FieldSchema, SchemaWatch
from monitor.core.sequential import SequentialSettings, SequentialStreams
from monitor.core.settings import AlertConfig, DetectorSettings, FairnessConfig, PerformanceConfig
from monitor.core.significance import (
    BaselineWindowTest,
    ClosedWindows,
    Reference,
    WindowResult,
)
from monitor.core.stats import CategoryVocabulary, ReservoirQuantiles, RunningMoments
from monitor.core.windows import NumericWindows


def register_snapshot_classes() -> None:
    """Register every stateful core class with :mod:`monitor.core.snapshot` (idempotent)."""
    snap.register(
        FairnessConfig,
        AlertConfig,
        DetectorSettings,
        PerformanceConfig,
        ErrorStream,
        ErrorTest,
        DriftEvidence,
        ScoreCalibration,
        ChunkedADWIN,
        PageHinkley,
        WindowedChiSquare,
        WindowTest,
        NumericDriftTracker,
        NumericStreams,
        NumericWindows,
        StreamChunker,
        SequentialStreams,
        SequentialSettings,
        CategoricalDriftTracker,
        RunningMoments,
        ReservoirQuantiles,
        CategoryVocabulary,
        LabelJoiner,
        SegmentCaps,
        PendingPrediction,
        PendingLabel,
        PerformanceWindow,
        Ring,
        BucketPerformance,
        ModelPerformance,
        ModelState,
        FairnessTracker,
        GroupStats,
        AttributeWindow,
        AlertLifecycle,
        Incident,
        Incidents,
        BaselineWindowTest,
        Reference,
        WindowResult,
        ClosedWindows,
        FalseDiscoveryControl,
        SchemaWatch,
        FieldSchema,
        FieldCounts,
        RetrainState,
        VersionActivity,
        WindowBreakdown,
    )
