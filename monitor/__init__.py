"""Streaming model-monitoring sidecar: Kafka in, drift detectors per feature and segment, alerts out."""

__version__ = "0.1.0"
