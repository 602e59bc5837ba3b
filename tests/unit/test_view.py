"""Engine views: what /metrics and the dashboard read, built by the loop thread and published by reference."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
import pytest

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.core.view import EngineView, build_view
from monitor.errors import ConfigError
from monitor.io.kafka import MonitorService
from monitor.simulate import Drift, TrafficGenerator
from tests.unit.service_stand_ins import Message, RecordingSink

T0 = 1_767_225_600.0
T0_MS = int(T0 * 1000)


def _config(**http: Any) -> Any:
    return load_config(
        environ={},
        overrides={"detectors": {"warmup_events": 300}, "alerts": {"resolve_after_s": 1e9}, "http": http},
    )


def _events(n: int, seed: int = 1) -> list[bytes]:
    gen = TrafficGenerator(seed=seed)
    return [orjson.dumps(e) for e in gen.predictions(n, start_time=T0, rate=100.0)]


def _feed(engine: PartitionEngine, values: list[bytes], batch: int = 1000) -> None:
    for i in range(0, len(values), batch):
        chunk = values[i : i + batch]
        assert not engine.process_predictions(chunk, [0.0] * len(chunk)).rejected


def _drifted_engine() -> PartitionEngine:
    engine = PartitionEngine(_config(), clock=lambda: T0)
    gen = TrafficGenerator(seed=1)
    _feed(engine, [orjson.dumps(e) for e in gen.predictions(10_000, start_time=T0, rate=100.0)])
    gen.drifts.append(Drift("income", {"country": "SG"}, scale=1.6))
    _feed(engine, [orjson.dumps(e) for e in gen.predictions(8_000, start_time=T0, rate=100.0)])
    return engine


def test_a_view_holds_what_the_live_streams_show():
    engine = _drifted_engine()
    view = build_view(engine)
    live = list(engine.streams())
    assert len(view.streams) == len(live) == engine.model_monitor.stream_count
    rows = {(r.model, r.model_version, r.feature, r.segment): r for r in view.streams}
    for s in live:
        row = rows[s.model, s.model_version, s.feature, s.segment]
        assert (row.kind, row.count, row.missing) == (s.kind, s.stats["count"], s.stats["missing"])
        assert row.effect == s.effect and row.firing == s.firing
        assert dict(row.detections) == s.stats["detections"]
        if s.kind == "numeric":
            assert row.mean == s.stats["mean"] or (math.isnan(row.mean) and math.isnan(s.stats["mean"]))
    assert {r.kind for r in view.streams} == {"numeric", "categorical"}
    firing = [r for r in view.streams if r.firing]
    assert [(r.feature, r.segment) for r in firing] == [("income", "country=SG")]
    assert view.open_keys() == list(engine.alerting.lifecycle.open)
    assert sum(m.events for m in view.models.values()) == engine.events_total() == 18_000


def test_a_view_is_a_frozen_copy_that_later_batches_do_not_change():
    engine = PartitionEngine(_config(), clock=lambda: T0)
    _feed(engine, _events(2000))
    view = build_view(engine)
    counts = [r.count for r in view.streams]
    _feed(engine, _events(2000, seed=5))
    assert [r.count for r in view.streams] == counts
    assert sum(m.events for m in view.models.values()) == 2000
    assert sum(m.events for m in build_view(engine).models.values()) == 4000
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.labels_seen = 1  # type: ignore[misc]


class _Consumer:
    """Records, at each commit, how many events the published views hold."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service
        self.seen_at_commit: list[int] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        views = self.service.all_views()
        self.seen_at_commit.append(sum(m.events for v in views for m in v.models.values()))

    def position(self, partitions: list[Any]) -> list[Any]:
        return [type(tp)(tp.topic, tp.partition, -1) for tp in partitions]

    def get_watermark_offsets(self, _tp: Any, cached: bool) -> tuple[int, int]:
        return (0, -1)

    def close(self) -> None:
        pass


def _service(**http: Any) -> tuple[MonitorService, _Consumer, list[bytes]]:
    config = _config(**http)
    service = MonitorService(config)
    consumer = _Consumer(service)
    service.sink, service.consumer = RecordingSink(), consumer  # type: ignore[assignment]
    service.engines = {0: service._new_engine(0)}
    return service, consumer, _events(3000)


def _summaries(service: MonitorService, first: int) -> list[Message]:
    """What the profile stages sent since the last call, as the detection stage consumes it."""
    out = service.sink.take()  # type: ignore[union-attr]
    return [Message(m.topic(), m.partition(), first + m.offset(), m.value()) for m in out]


def _batch(service: MonitorService, values: list[bytes], first: int) -> list[Message]:
    topic = service.config.kafka.predictions_topic
    return [Message(topic, 0, first + i, v, T0_MS) for i, v in enumerate(values)]


def test_views_are_published_before_offsets_are_committed_whatever_the_interval():
    service, consumer, values = _service(view_interval_s=3600.0)
    sent = 0
    for k in range(3):  # no checkpoint store: offsets are committed after every batch
        service.process(_batch(service, values[k * 1000 : (k + 1) * 1000], k * 1000))  # type: ignore[arg-type]
        summaries = _summaries(service, sent)
        sent += len(summaries)
        service.process(summaries)  # type: ignore[arg-type]  # the detection stage's batch
    assert consumer.seen_at_commit == [0, 1000, 1000, 2000, 2000, 3000]
    assert service.stats.views_published == 6


def _detect(service: MonitorService, d: int, values: list[bytes]) -> None:
    """Monitor ``values`` in detection stage ``d`` (its own profile stage feeding it directly)."""
    stage = service.detectors[d]
    profile = stage.engine.profile
    for s in profile.predictions(values, [0.0] * len(values))[0]:
        stage.add(s)
    stage.release(flush=True)


def test_while_busy_views_are_rebuilt_at_most_every_interval_and_when_forced():
    service, _consumer, values = _service(view_interval_s=3600.0)
    service.detectors = {0: service._new_detector(0)}
    service._stale.add(("detect", 0))
    service.publish_views(force=True)
    first = service.detect_views[0]
    assert isinstance(first, EngineView) and sum(m.events for m in first.models.values()) == 0
    _detect(service, 0, values[:1000])
    service._stale.add(("detect", 0))
    service.publish_views()  # within the interval: the published view stays
    assert service.detect_views[0] is first
    service.publish_views(force=True)  # e.g. an idle poll
    assert sum(m.events for m in service.detect_views[0].models.values()) == 1000
    published = service.detect_views
    service.publish_views(force=True)  # nothing changed since: nothing rebuilt
    assert service.detect_views is published

    service.detectors[1] = service._new_detector(1)
    _detect(service, 0, values[1000:2000])
    _detect(service, 1, values[2000:2500])
    service._stale.update({("detect", 0), ("detect", 1)})
    service.publish_views(force=True)
    both = dict(service.detect_views)
    _detect(service, 0, values[2500:3000])
    _detect(service, 1, values[:100])
    service._stale.update({("detect", 0), ("detect", 1)})
    service.publish_views(tasks={("detect", 1)})  # partition 1 is about to commit: its view now, 0's waits
    assert service.detect_views[0] is both[0] and service.detect_views[1] is not both[1]
    assert sum(m.events for m in service.detect_views[1].models.values()) == 600
    assert service._stale == {("detect", 0)}

    eager, _c, _v = _service(view_interval_s=0.0)
    eager._stale.add(("profile", 0))
    eager.publish_views()
    assert 0 in eager.views


def test_the_interval_must_not_be_negative():
    with pytest.raises(ConfigError, match=r"http\.view_interval_s"):
        _config(view_interval_s=-1.0)


def test_a_batch_that_fails_half_way_publishes_nothing():
    service, consumer, values = _service(view_interval_s=3600.0)
    service.engines[1] = service._new_engine(1)
    service._stale.update({("profile", 0), ("profile", 1)})
    service.publish_views(force=True)
    before = service.views
    service._stale.update({("profile", 0), ("profile", 1)})  # changes not published yet (within the interval)

    def broken(_values: Any, _times: Any) -> Any:
        raise RuntimeError("engine failed mid-batch")

    service.engines[1].process_predictions = broken  # type: ignore[method-assign]
    topic = service.config.kafka.predictions_topic
    batch = _batch(service, values[:500], 0) + [Message(topic, 1, i, v, T0_MS) for i, v in enumerate(values[500:1000])]
    with pytest.raises(RuntimeError):
        service.process(batch)  # type: ignore[arg-type]
    service.close(checkpoint=False)  # what the loop does after an exception
    assert service.views is before  # partition 0 ran its half, but no view of half a batch was published
    assert consumer.seen_at_commit == []


def test_each_segment_values_latency_is_counted_and_survives_a_restore():
    gen = TrafficGenerator(seed=3)
    events = list(gen.predictions(3_000, start_time=T0, rate=100.0))
    for i, e in enumerate(events):
        if i % 10 == 0:
            del e["latency_ms"]  # no latency reported: counted in no histogram
        else:
            e["latency_ms"] = 400.0 if e["segments"]["country"] == "SG" else 20.0
    engine = PartitionEngine(_config(), clock=lambda: T0)
    _feed(engine, [orjson.dumps(e) for e in events[:1_700]], batch=700)
    engine = PartitionEngine.restore(_config(), orjson.loads(orjson.dumps(engine.snapshot())), clock=lambda: T0)
    _feed(engine, [orjson.dumps(e) for e in events[1_700:]], batch=700)
    (model,) = build_view(engine).models.values()
    rows = {segment: (counts, sum_ms) for segment, counts, sum_ms in model.segment_latency}
    with_latency = [e for e in events if "latency_ms" in e]
    countries = {e["segments"]["country"] for e in events}
    assert {s for s in rows if s.startswith("country=")} == {f"country={c}" for c in countries}
    bounds = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]
    for attr in ("country", "gender"):
        for value in {e["segments"][attr] for e in events}:
            mine = [e["latency_ms"] for e in with_latency if e["segments"][attr] == value]
            counts, sum_ms = rows[f"{attr}={value}"]
            assert sum(counts) == len(mine) and sum_ms == pytest.approx(sum(mine))
            assert counts[bounds.index(250.0) + 1] == mine.count(400.0)  # (250, 500]
            assert counts[bounds.index(10.0) + 1] == mine.count(20.0)  # (10, 25]
    assert sum(model.latency_buckets) == len(with_latency)
