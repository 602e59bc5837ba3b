"""Event times stamped after their message was sent take the Kafka time, so one bad clock cannot move the
label join's expiry or the merge's watermark for everyone (monitoring.max_ahead_s)."""

from __future__ import annotations

import io
import itertools

import orjson
import pytest

from monitor.config import load_config
from monitor.core import snapshot
from monitor.core.baseline import ProfileSet
from monitor.core.decoders import LabelDecoder, PredictionDecoder
from monitor.core.detect import DetectionStage
from monitor.core.engine import PartitionEngine
from monitor.core.profile import ProfileStage
from monitor.core.view import build_view
from monitor.replay import _Detection, _Lane, _Progress
from monitor.replay_report import ReplayResult

T0 = 1_767_225_600.0
YEAR = 365 * 86_400.0


def _prediction(i: int, t: float, model: str = "m") -> bytes:
    return orjson.dumps({"prediction_id": f"p{i}", "model": model, "timestamp": t, "features": {"x": i % 7 / 7},
                         "prediction": 0.5})  # fmt: skip


def _label(i: int, t: float) -> bytes:
    return orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": t, "label": 1})


def _settings(**monitoring: float) -> object:
    return load_config(environ={}, overrides={"monitoring": monitoring} if monitoring else {})


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "per-message"])
def test_a_stamp_more_than_max_ahead_s_after_the_kafka_time_takes_the_kafka_time(fast):
    messages = [_prediction(0, T0 + 299.0), _prediction(1, T0 + 301.0), _prediction(2, T0 + YEAR), b'{"x":']
    decoder = PredictionDecoder(max_ahead_s=300.0)
    batch, rejected = (decoder.decode if fast else decoder.decode_each)(messages, [T0] * 4)
    assert batch.event_time.tolist() == [T0 + 299.0, T0, T0] and batch.restamped == 2
    assert [r.reason for r in rejected] == ["invalid_json"]
    labels = LabelDecoder(max_ahead_s=300.0)
    lab, _ = (labels.decode if fast else labels.decode_each)([_label(0, T0 + YEAR), _label(1, T0 - 5)], [T0, T0])
    assert lab.event_time.tolist() == [T0 - 5, T0 - 5] and lab.restamped == 1  # the batch median is earlier


def test_without_a_kafka_time_or_with_max_ahead_s_0_no_stamp_changes():
    messages = [_prediction(0, T0 + YEAR), _prediction(1, T0)]
    batch, _ = PredictionDecoder(max_ahead_s=300.0).decode(messages, [0.0, -0.001])  # no Kafka time: 0 or -1 ms
    assert batch.event_time.tolist() == [T0 + YEAR, T0] and batch.restamped == 0
    batch, _ = PredictionDecoder(max_ahead_s=0.0).decode(messages, [T0, T0])
    assert batch.event_time.tolist() == [T0 + YEAR, T0] and batch.restamped == 0


def test_a_label_stamped_a_year_ahead_does_not_expire_the_predictions_waiting_for_theirs():
    for max_ahead_s, joined in ((300.0, 1000), (0.0, 1)):  # 0: the stamp moves the join's clock a year on
        stage = ProfileStage(_settings(max_ahead_s=max_ahead_s), partition=0)
        sent = [T0 + i for i in range(1000)]
        stage.predictions([_prediction(i, T0 + i) for i in range(1000)], sent)
        stage.labels([_label(0, T0 + YEAR)], [T0 + 1000.0])  # a wrong year, sent at T0 + 1000
        stage.labels([_label(i, T0 + i + 5) for i in range(1, 1000)], [T0 + i + 6 for i in range(1, 1000)])
        assert stage.joiner.counts["joined"] == joined, max_ahead_s
        assert stage.restamped == ({"labels": 1} if max_ahead_s else {})


def test_a_prediction_stamped_a_year_ahead_neither_holds_its_partition_back_nor_makes_the_rest_late():
    """0 restamps nothing: the partition's progress is a year on, so its later rows wait for the other
    partition to get there, until the pending cap forces them out and the merge's watermark with them; every
    row after that arrives behind it and is monitored out of event-time order (late)."""
    for max_ahead_s in (300.0, 0.0):
        config = _settings(max_ahead_s=max_ahead_s)
        sources = [ProfileStage(config, partition=p) for p in range(2)]
        stage = DetectionStage(config, clock=lambda: T0, idle_clock=lambda: 0.0, max_pending=300)
        stage.expect([0, 1])
        for k in range(10):
            for p, source in enumerate(sources):
                rows = range(1000 * k + 100 * p, 1000 * k + 100 * p + 100)
                stamps = [T0 + YEAR if (k, p, i) == (0, 0, rows[50]) else T0 + i / 10 for i in rows]
                messages = [_prediction(i, t) for i, t in zip(rows, stamps, strict=True)]
                summaries, _ = source.predictions(messages, [T0 + i / 10 + 1 for i in rows])
                for s in summaries:
                    stage.add(s)
            stage.release()
        if max_ahead_s:
            assert (stage.pending_rows(), stage.late_rows, stage.forced) == (100, 0, 0)  # the last poll waits
            assert [s.restamped["predictions"] for s in sources] == [1, 0]
        else:
            assert stage.pending_rows() == 300 and stage.forced > 0 and stage.late_rows > 1000
        stage.release(flush=True)
        assert stage.engine.events_total() == 2000


def test_the_count_is_snapshotted_and_exported():
    engine = PartitionEngine(_settings(), clock=lambda: T0)
    engine.process_predictions([_prediction(0, T0 + YEAR), _prediction(1, T0)], [T0, T0])
    engine.process_labels([_label(0, T0 + YEAR)], [T0])
    twin = PartitionEngine.restore(_settings(), snapshot.loads(snapshot.dumps(engine.snapshot())), clock=lambda: T0)
    assert twin.profile.restamped == {"predictions": 1, "labels": 1}
    assert dict(build_view(twin).restamped) == {"predictions": 1, "labels": 1}


def test_a_kafka_replay_orders_a_label_stamped_ahead_by_its_kafka_time():
    """``monitor replay`` of topics holds each label until the predictions before it are in; by its stamp a
    year on, one label would hold every later one back until the predictions are over (evicting the oldest
    of them from a small join store)."""
    config = load_config(environ={}, overrides={"labels": {"max_pending": 500}})
    for max_ahead_s, joined in ((config.monitoring.max_ahead_s, 3000), (0.0, 510)):
        detection = _Detection(config, 1, ProfileSet())
        detection.expect(1)
        engine = PartitionEngine(config, detect=False)
        lane = _Lane(engine, detection, ReplayResult(), 100, _Progress(False, io.StringIO()), itertools.count(),
                     max_ahead_s=max_ahead_s)  # fmt: skip
        read = []  # (Kafka time, is a label, value), in the order a consumer reads them
        for i in range(3000):
            read.append((T0 + i, False, _prediction(i, T0 + i)))
            read.append((T0 + i + 6, True, _label(i, T0 + YEAR if i == 10 else T0 + i + 5)))
        read.sort(key=lambda m: m[0])
        for k in range(0, len(read), 100):
            for kafka_time, is_label, value in read[k : k + 100]:
                if is_label:
                    lane.add_label(value, kafka_time, kafka_time, "here")
                else:
                    lane.add_prediction(value, kafka_time, "here")
            lane.pump()
        lane.preds_done = lane.labels_done = True
        lane.pump()
        assert engine.profile.joiner.counts["joined"] == joined, max_ahead_s
