"""Rows of a decoded prediction batch taken, sliced and put together as batches of their own.

The profile stage cuts a partition's batch into one summary's rows per model version and piece, and the
detection stage puts the rows of many summaries together into the batches its engine monitors.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from monitor.core.events import PredictionBatch
from monitor.core.float_columns import as_values


def take_rows(batch: PredictionBatch, rows: np.ndarray) -> PredictionBatch:
    """The rows ``rows`` of a batch, in that order, as a batch of their own."""
    picks = rows.tolist()
    nulls: dict[str, list[int]] = {}
    if batch.nulls:
        where = {int(r): k for k, r in enumerate(picks)}
        nulls = {name: sorted(where[i] for i in at if i in where) for name, at in batch.nulls.items()}
    return _select(batch, list_picker(picks), rows, nulls)


def list_picker(picks: list[int]) -> Callable[[list[Any]], list[Any]]:
    """Items ``picks`` of a list column, in that order, as a list (one C call a column: a batch has several)."""
    if len(picks) > 1:
        get = itemgetter(*picks)
        return lambda column: list(get(column))
    return lambda column: [column[i] for i in picks]


def slice_rows(batch: PredictionBatch, lo: int, hi: int) -> PredictionBatch:
    """Rows ``lo`` to ``hi`` (exclusive) of a batch as a batch of their own, as :func:`take_rows` gives them
    (its nulls must be sorted, as that and the decoder leave them): cutting a long batch this way is linear."""
    nulls = {
        name: [i - lo for i in at[bisect.bisect_left(at, lo) : bisect.bisect_left(at, hi)]]
        for name, at in batch.nulls.items()
    }
    return _select(batch, lambda column: column[lo:hi], slice(lo, hi), nulls)


def _select(
    batch: PredictionBatch, take: Callable[[list[Any]], list[Any]], rows: np.ndarray | slice,
    nulls: dict[str, list[int]],
) -> PredictionBatch:  # fmt: skip
    """Some rows of a batch: its list columns through ``take``, its arrays indexed by ``rows``."""
    return PredictionBatch(
        index=batch.index[rows],
        prediction_id=take(batch.prediction_id),
        model=take(batch.model),
        model_version=take(batch.model_version),
        event_time=batch.event_time[rows],
        prediction=take(batch.prediction),
        features={name: c[rows] if isinstance(c, np.ndarray) else take(c) for name, c in batch.features.items()},
        segments={name: take(col) for name, col in batch.segments.items()},
        latency_ms=batch.latency_ms[rows],
        scores=take(batch.scores) if batch.scores else [],
        nulls={name: at for name, at in nulls.items() if at},
    )


def concat_rows(parts: Sequence[PredictionBatch]) -> PredictionBatch:
    """Batches one after another as one batch; a feature or segment a part lacks is absent (None) there. A
    feature that every part which has it brings as floats stays floats (NaN where a part lacks it)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [len(p) for p in parts]
    offsets = np.cumsum([0, *sizes]).tolist()
    as_lists = {name for p in parts for name, col in p.features.items() if not isinstance(col, np.ndarray)}
    features: dict[str, Any] = {}
    segments: dict[str, list[Any]] = {}
    nulls: dict[str, list[int]] = {}
    for k, p in enumerate(parts):
        for name, col in p.features.items():
            column = features.get(name)
            if column is None:
                column = features[name] = [None] * offsets[-1] if name in as_lists else np.full(offsets[-1], math.nan)
            column[offsets[k] : offsets[k + 1]] = as_values(col) if name in as_lists else col
        for name, values in p.segments.items():
            segment = segments.get(name)
            if segment is None:
                segment = segments[name] = [None] * offsets[-1]
            segment[offsets[k] : offsets[k + 1]] = values
        for name, at in p.nulls.items():
            nulls.setdefault(name, []).extend(i + offsets[k] for i in at)
    scores: list[Any] = []
    if any(p.scores for p in parts):
        for p in parts:
            scores.extend(p.scores if p.scores else [None] * len(p))
    return PredictionBatch(
        index=np.arange(offsets[-1]),
        prediction_id=list(chain.from_iterable(p.prediction_id for p in parts)),
        model=list(chain.from_iterable(p.model for p in parts)),
        model_version=list(chain.from_iterable(p.model_version for p in parts)),
        event_time=np.concatenate([p.event_time for p in parts]),
        prediction=list(chain.from_iterable(p.prediction for p in parts)),
        features=features,
        segments=segments,
        latency_ms=np.concatenate([p.latency_ms for p in parts]),
        scores=scores,
        nulls=nulls,
    )
