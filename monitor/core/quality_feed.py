"""How a batch's converted columns feed a model version's schema watch, and its findings become alerts.

The watch (:class:`~monitor.core.quality.SchemaWatch`) judges fixed windows of ``quality.window_events``
rows; a batch is cut into them here, so windows (and the learned schema) have their configured size
whatever the batch size. The findings of each window go to the alert desk before the next window is
judged: a window asks whether a check's alert is open.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core.alerting import Alerting
from monitor.core.events import PredictionBatch
from monitor.core.float_columns import as_values
from monitor.core.judgements import quality_judgements
from monitor.core.model_state import ModelState
from monitor.core.quality import SchemaWatch
from monitor.core.quality_tally import BatchTally, FieldColumn
from monitor.core.rules import Alert, alert_key, version_scope

_QUALITY_KINDS = ("schema/", "data_quality/")  # the alert kinds of the schema watch, as keys begin after the scope

# A feature's column as the batch brought it: name, decoded values, kind, converted column, type mismatches.
ObservedColumn = tuple[str, list[Any] | np.ndarray, str, np.ndarray, np.ndarray | None]


def feed_schema_watch(
    state: ModelState,
    watch: SchemaWatch,
    batch: PredictionBatch,
    rows: np.ndarray | None,
    observed: list[ObservedColumn],
    times: np.ndarray,
    alerting: Alerting,
) -> list[Alert]:
    """Feed the schema watch window by window, so windows (and the learned schema) have their configured
    size whatever the batch size: a break is judged within ``quality.window_events`` of it. Every window's
    counts come from the converted columns, tallied once for the whole batch."""
    stops = watch.window_stops(times.size)
    if not stops:
        return []
    labels_of = {name: v.labels() for name, v in state.vocab.items()}
    fields: dict[str, FieldColumn] = {}
    for name, values, kind, column, mismatch in observed:
        null_mask = None
        nulls = batch.nulls.get(name)
        if nulls:
            null_mask = np.zeros(len(batch), dtype=bool)
            null_mask[nulls] = True
            if rows is not None:
                null_mask = null_mask[rows]
        if kind == "categorical":
            vocab = state.vocab[name]
            fields[name] = FieldColumn(
                kind, column, null_mask, mismatch, labels_of[name], vocab.capacity, as_values(values)
            )  # (a list already: the engine gives a category column's values as one)
        else:
            fields[name] = FieldColumn(kind, column, null_mask, mismatch)
    tally = BatchTally(fields, stops, watch.unseen_tables())
    starts = np.asarray([0, *stops[:-1]], dtype=np.intp)
    first_times = np.fmin.reduceat(times, starts).tolist()  # nanmin of each window
    last_times = np.fmax.reduceat(times, starts).tolist()
    keys: dict[tuple[str, str], str] = {}  # alert keys, built once per batch rather than per window
    scope = version_scope(state.model, state.version) + "/"

    def quality_open() -> bool:
        return any(k.startswith(scope) and k[len(scope) :].startswith(_QUALITY_KINDS) for k in alerting.lifecycle.open)

    # most batches find no schema or data-quality alert of the version open: then no key needs building (asked
    # again after a window that emitted, which may have opened one for the batch's next windows)
    any_open = quality_open()

    def is_open(kind: str, feature: str) -> bool:
        if not any_open:  # (read when called: the loop below asks again after a window that emitted)
            return False
        key = keys.get((kind, feature))
        if key is None:
            key = keys[kind, feature] = alert_key(state.model, kind, feature, {}, state.version)
        return alerting.lifecycle.is_firing(key)

    alerts: list[Alert] = []
    quiet: list[bool] | None = None  # windows that end with no finding; asked again after any other window
    for k, (start, stop) in enumerate(zip(starts.tolist(), stops, strict=True)):
        if watch.events == 0 and stop - start == watch.window_events and watch.schema is not None:
            if quiet is None:
                quiet = watch.quiet_windows(tally, is_open)
            if quiet[k]:
                watch.skip_window(stop - start, first_times[k])
                continue
        quiet = None
        watch.observe_window(tally, k)
        findings = watch.end_batch(stop - start, first_times[k], last_times[k], state.kinds, labels_of, is_open)
        if findings:
            judged = quality_judgements(state, findings, alerting.lifecycle.opened_by)
            emitted = alerting.emit(state.model, state.version, judged)
            if emitted:
                any_open = quality_open()
            alerts += emitted
    return alerts
