"""``monitor replay``: run the monitor over a recorded topic or JSON-lines file and report what it would have alerted.

Thresholds are tuned on history before going live: the :class:`PartitionEngine` of ``monitor run``, one
per partition as live, sees the recorded events in their order, so the alerts are those the live monitor
would have raised with that config from the same start (judged per batch, as live). Nothing is produced
and no offsets are committed; a topic is read with ``assign`` from the beginning of every partition, like
``monitor report``.

Predictions and labels are interleaved in event time at batch granularity: before each prediction batch,
the engine gets the labels stamped no later than the newest prediction processed so far, as if the labels
had arrived live just after their predictions (a label without a timestamp keeps its place in the file,
or uses its Kafka message time).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from tqdm import tqdm

from monitor.config import MonitorConfig
from monitor.core.baseline import ProfileSet
from monitor.core.detect import DetectionStage
from monitor.core.engine import PartitionEngine
from monitor.core.events import parse_timestamp, stamped_ahead
from monitor.core.rules import Alert
from monitor.core.shards import effective_shards, summaries_partition
from monitor.core.summary import Summary
from monitor.errors import ConfigError, MonitorError, SourceError
from monitor.replay_report import ReplayResult
from monitor.timeline import Timeline

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2000
DEFAULT_IDLE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FileSource:
    """JSON-lines files: one prediction event per line (exactly a Kafka message value), optional labels."""

    predictions: Path
    labels: Path | None = None


@dataclass(frozen=True)
class KafkaSource:
    """Recorded topics, read from their beginning to the end offsets found when reading starts.

    ``idle_timeout_s`` ends the read when nothing arrives for that long: some Kafka-compatible brokers
    report end offsets loosely, so reaching them is not the only way to know a partition is done.
    """

    predictions_topic: str
    labels_topic: str | None = None
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S


Source = FileSource | KafkaSource


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set section.field=value`` flags as the nested table :func:`load_config` takes (strings are coerced).

    >>> parse_overrides(["alerts.min_effect_size=0.3", "detectors.features.income.warmup_events=100"])
    {'alerts': {'min_effect_size': '0.3'}, 'detectors': {'features': {'income': {'warmup_events': '100'}}}}
    >>> parse_overrides(["kafka.properties.security.protocol=SSL"])
    {'kafka': {'properties': {'security.protocol': 'SSL'}}}
    """
    out: dict[str, Any] = {}
    for item in items:
        path, sep, value = item.partition("=")
        parts = [p.strip() for p in path.split(".")]
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError("--set", f"expected section.field=value, got {item!r}")
        if parts[0] == "kafka" and parts[1] in ("properties", "property_files") and len(parts) > 2:
            parts = [*parts[:2], ".".join(parts[2:])]  # librdkafka property names contain dots
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: i + 1]), f"set both as a value and as a table in {item!r}")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(path.strip(), f"set both as a value and as a table in {item!r}")
        node[parts[-1]] = value.strip()
    return out


def build_source(
    config: MonitorConfig,
    *,
    predictions: str | None = None,
    labels: str | None = None,
    predictions_topic: str | None = None,
    labels_topic: str | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> Source:
    """Files when ``predictions`` is given, else topics on the configured brokers; mixing the two is refused."""
    if predictions is not None:
        if predictions_topic or labels_topic:
            raise ConfigError("--predictions", "read either files or topics, not both")
        return FileSource(Path(predictions), Path(labels) if labels else None)
    if labels is not None:
        raise ConfigError("--labels", "a labels file needs a predictions file (--predictions)")
    if not config.kafka.bootstrap_servers:
        raise ConfigError("--predictions", "give a JSON-lines file, or --bootstrap-servers to read a topic")
    if idle_timeout_s <= 0:
        raise ConfigError("--idle-timeout", "must be > 0")
    return KafkaSource(predictions_topic or config.kafka.predictions_topic, labels_topic or None, idle_timeout_s)


def source_name(source: Source) -> str:
    """The predictions file or topic, as a user named it."""
    return str(source.predictions) if isinstance(source, FileSource) else f"topic {source.predictions_topic}"


def replay(
    config: MonitorConfig,
    source: Source,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    progress_file: IO[str] | None = None,
    timeline: Timeline | None = None,
) -> ReplayResult:
    """Run fresh engines over ``source`` and collect every alert event they emit; no side effects on Kafka.

    ``timeline`` collects each prediction's input position, score and label (rows after the replay).
    """
    if batch_size < 1:
        raise ConfigError("--batch-size", "must be >= 1")
    started = time.perf_counter()
    result = ReplayResult()
    bar = _Progress(progress, progress_file or sys.stderr)
    try:
        if isinstance(source, FileSource):
            lanes = _replay_files(config, source, result, batch_size, bar, timeline)
        else:
            lanes = _replay_kafka(config, source, result, batch_size, bar, timeline)
    finally:
        bar.close()
    for lane in lanes:
        result.rejected.update(lane.engine.profile.rejected)
        result.restamped.update(lane.engine.profile.restamped)
        result.join.update(lane.engine.profile.joiner.counts)
    detection = lanes[0].detection if lanes else None
    if detection is not None:
        result.alerts += detection.finish()  # what the watermark held, and the last, unfinished round
    if len(detection.stages if detection is not None else ()) > 1:  # stages in event time; stable
        result.alerts.sort(key=lambda a: str(a.window.get("end") or a.started_at or ""))
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------ interleaving
class _Progress:
    """A tqdm bar (stderr by default, so stdout stays the report), opened once the total is known."""

    def __init__(self, enabled: bool, file: IO[str]) -> None:
        self.enabled = enabled
        self.file = file
        self.bar: tqdm[Any] | None = None

    def start(self, total: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, unit="ev", unit_scale=True, desc="replay", file=self.file, dynamic_ncols=True)

    def grow(self, extra: int) -> None:
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + extra
            self.bar.refresh()

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _label_time(value: bytes | None) -> float | None:
    """The event time a label carries, if it carries a valid one (the decoder judges the rest)."""
    if not value:
        return None
    try:
        event = orjson.loads(value)
        ts = event.get("timestamp") if isinstance(event, dict) else None
        return None if ts is None else parse_timestamp(ts)
    except (orjson.JSONDecodeError, MonitorError, ValueError, TypeError, OverflowError):
        return None


def _untimed(value: bytes | None) -> bool:
    """A label object without a ``timestamp`` field (not one the decoder rejects for a bad one, or bad JSON)."""
    try:
        event = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("timestamp") is None


class _Detection:
    """The detection stages of a replay, one per summaries partition as live (``detection.summaries_partitions``,
    else one per input partition), fed the lanes' summaries in process. No input partition goes idle in a
    replay: one whose input is over is retired instead, and the end flushes what the watermark held."""

    def __init__(self, config: MonitorConfig, partitions: int, profiles: ProfileSet) -> None:
        n = max(1, config.detection.summaries_partitions or partitions)
        self.shards = effective_shards(config.detection.shards, n)
        self.stages = [
            DetectionStage(
                config,
                partition=d,
                idle_s=math.inf,
                max_pending=config.detection.max_pending_rows,
                profiles=profiles,
                coalesce=False,
                summaries_partitions=n,
                shards=self.shards,
            )
            for d in range(n)
        ]
        self.alerts: list[Alert] = []

    def expect(self, partitions: int) -> None:
        """Every input partition is a source the merge waits for (until it sends, or is retired)."""
        for stage in self.stages:
            stage.expect(list(range(partitions)))

    def stage_of(self, model: str, version: str, shard: int = 0) -> DetectionStage:
        return self.stages[summaries_partition(model, len(self.stages), shard, self.shards)]

    def engine_of(self, model: str, version: str) -> PartitionEngine:
        return self.stage_of(model, version).engine

    def take(self, engine: PartitionEngine, summaries: list[Summary]) -> None:
        """A lane's summaries, with a heartbeat for each model version it has seen and sent nothing for."""
        if not summaries:
            return
        summaries = summaries + engine.profile.heartbeats(besides=summaries)
        for s in summaries:
            self.stage_of(s.model, s.version, s.shard).add(s)
        for stage in self.stages:
            self.alerts += stage.release()

    def retire(self, source: int) -> None:
        """An input partition whose input is over no longer holds the watermark back."""
        for stage in self.stages:
            had = stage.progress.pop(source, None) is not None
            if stage.label_progress.pop(source, None) is not None or had:
                self.alerts += stage.release()

    def finish(self) -> list[Alert]:
        for stage in self.stages:
            self.alerts += stage.release(flush=True)
            self.alerts += stage.engine.finish()  # decide the window tests of the last, unfinished round
        return self.alerts


class _Lane:
    """One partition: its profile stage, prediction batches, and the labels waiting for their place in event time."""

    def __init__(
        self,
        engine: PartitionEngine,
        detection: _Detection,
        result: ReplayResult,
        batch_size: int,
        bar: _Progress,
        positions: Iterator[int],
        timeline: Timeline | None = None,
        max_ahead_s: float = 0.0,
    ) -> None:
        """``max_ahead_s``: a label stamped more than this after its Kafka time waits for its place by the
        Kafka time, as the decoder restamps it (monitoring.max_ahead_s; 0 for files, whose lines have none)."""
        self.engine = engine
        self.max_ahead_s = max_ahead_s
        self.detection = detection
        self.next_position = positions  # shared by all lanes: a prediction's position in the replayed input
        self.observer = None if timeline is None else timeline.observer(len(timeline.lanes))
        if self.observer is not None and timeline is not None:
            timeline.lanes.append(engine)
            engine.profile.observer = self.observer
        self.result = result
        self.batch_size = batch_size
        self.bar = bar
        self.preds: list[bytes | None] = []
        self.pred_times: list[float] = []
        self.positions: list[int] = []
        self.pred_where: list[str] = []  # where each buffered prediction came from: "line 7", "partition 0 offset 12"
        # (ordering time, value, kafka time, where)
        self.labels: deque[tuple[float, bytes | None, float, str]] = deque()
        self.ready: list[tuple[bytes | None, float, str]] = []  # labels due before the next prediction batch
        self.preds_done = False
        self.labels_done = False
        self.horizon = -math.inf  # newest prediction event time processed
        self.last_label_time = -math.inf

    def add_prediction(self, value: bytes | None, kafka_time: float, where: str) -> None:
        self.preds.append(value)
        self.pred_times.append(kafka_time)
        self.positions.append(next(self.next_position))
        self.pred_where.append(where)

    def add_label(self, value: bytes | None, kafka_time: float, fallback: float | None, where: str) -> None:
        """``fallback`` orders a label without its own timestamp (None: right after the previous label)."""
        ts = _label_time(value)
        if ts is None:
            if fallback is None and _untimed(value):
                self.result.untimed_labels += 1
            ts = self.last_label_time if fallback is None else fallback
        elif self.max_ahead_s and stamped_ahead(ts, kafka_time, self.max_ahead_s):
            ts = kafka_time  # it would otherwise hold every later label back until the predictions are over
        self.last_label_time = ts
        self.labels.append((ts, value, kafka_time, where))

    def caught_up(self) -> bool:
        """Every label due before the next prediction batch has been read."""
        return self.labels_done or (bool(self.labels) and self.labels[0][0] > self.horizon)

    def pump(self) -> bool:
        """Process what can be processed in order; True when blocked waiting for more labels."""
        while self.preds and (len(self.preds) >= self.batch_size or self.preds_done):
            self._take_labels(self.horizon)
            if not self.caught_up():
                return True
            self._flush_labels()
            n = min(self.batch_size, len(self.preds))
            values, times, where = self.preds[:n], self.pred_times[:n], self.pred_where[:n]
            if self.observer is not None:
                self.observer.positions = np.asarray(self.positions[:n], dtype=np.int64)
            del self.preds[:n], self.pred_times[:n], self.pred_where[:n], self.positions[:n]
            res = self.engine.process_predictions(values, times)
            self.result.note_rejected("predictions", res.rejected, where)
            self.result.messages += n
            self.result.events += res.processed
            self.detection.take(self.engine, res.summaries)
            if res.processed and self.engine.last_event_time == self.engine.last_event_time:  # not NaN
                self.horizon = max(self.horizon, self.engine.last_event_time)
            self.bar.update(n)
        if self.preds_done and not self.preds:
            self._take_labels(math.inf)  # predictions are over: labels go in as they come
            self._flush_labels()
        return False

    def _take_labels(self, upto: float) -> None:
        while self.labels and self.labels[0][0] <= upto:
            _, value, kafka_time, where = self.labels.popleft()
            self.ready.append((value, kafka_time, where))

    def _flush_labels(self) -> None:
        if not self.ready:
            return
        res = self.engine.process_labels([v for v, _, _ in self.ready], [t for _, t, _ in self.ready])
        self.result.note_rejected("labels", res.rejected, [w for _, _, w in self.ready])
        self.result.label_messages += len(self.ready)
        self.result.labels += res.processed
        self.detection.take(self.engine, res.summaries)
        self.ready = []


# ------------------------------------------------------------------------------------------------- files
def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based line number, which stands in for a Kafka message time."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for raw in fh if raw.strip())
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None


def _replay_files(
    config: MonitorConfig,
    source: FileSource,
    result: ReplayResult,
    batch_size: int,
    bar: _Progress,
    timeline: Timeline | None,
) -> list[_Lane]:
    """One engine (partition 0 of 1); line numbers are the Kafka times of events without a timestamp."""
    bar.start(_count_lines(source.predictions) if bar.enabled else 0)
    profiles = ProfileSet.load(config.baseline.profiles)
    # line numbers say in what order events came, not when they were sent: no event is restamped against them
    unsent = dataclasses.replace(config, monitoring=dataclasses.replace(config.monitoring, max_ahead_s=0.0))
    engine = PartitionEngine(unsent, partition=0, partitions=1, profiles=profiles, detect=False)
    detection = _Detection(config, 1, profiles)
    if detection.shards > 1:
        engine.profile.shards = detection.shards
    if timeline is not None:
        timeline.detection = detection.engine_of
    lane = _Lane(engine, detection, result, batch_size, bar, itertools.count(), timeline)
    labels = _lines(source.labels) if source.labels is not None else iter(())

    def more_labels() -> None:
        """Read up to a batch of labels, or note that none are left."""
        for i, (number, line) in enumerate(labels, 1):
            lane.add_label(line, float(number), None, f"line {number}")
            if i >= batch_size:
                return
        lane.labels_done = True

    def run() -> None:
        while lane.pump():
            more_labels()

    for number, line in _lines(source.predictions):
        lane.add_prediction(line, float(number), f"line {number}")
        if len(lane.preds) >= batch_size:
            run()
    lane.preds_done = True
    run()
    while not lane.labels_done:
        more_labels()
        lane.pump()
    return [lane]


# ------------------------------------------------------------------------------------------------- Kafka
def _partitions(consumer: Consumer, topic: str) -> int:
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
    except KafkaException as exc:
        raise SourceError(f"cannot read metadata of {topic}: {exc}") from exc
    if meta is None or meta.error is not None or not meta.partitions:
        raise SourceError(f"topic {topic!r} does not exist or has no partitions")
    return len(meta.partitions)


def _replay_kafka(
    config: MonitorConfig,
    source: KafkaSource,
    result: ReplayResult,
    batch_size: int,
    bar: _Progress,
    timeline: Timeline | None,
) -> list[_Lane]:
    """One engine per predictions partition (as live: alert ownership by key hash); labels partition p to engine p."""
    from monitor.io.kafka_clients import client_config

    consumer = Consumer(
        {
            **client_config(config),
            "group.id": f"monitor-replay-{uuid.uuid4().hex[:12]}",  # required by the client, never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        return _read_topics(consumer, source, config, result, batch_size, bar, timeline)
    except KafkaException as exc:
        raise SourceError(f"reading {source.predictions_topic}: {exc}") from exc
    finally:
        consumer.close()


def _read_topics(
    consumer: Consumer,
    source: KafkaSource,
    config: MonitorConfig,
    result: ReplayResult,
    batch_size: int,
    bar: _Progress,
    timeline: Timeline | None,
) -> list[_Lane]:
    pred_topic, label_topic = source.predictions_topic, source.labels_topic
    n = _partitions(consumer, pred_topic)
    if label_topic is not None and (m := _partitions(consumer, label_topic)) != n:
        raise SourceError(
            f"{label_topic!r} has {m} partitions and {pred_topic!r} {n}: predictions and labels must be co-partitioned"
        )
    result.partitions = n
    profiles = ProfileSet.load(config.baseline.profiles)
    positions = itertools.count()  # in the order messages are read
    detection = _Detection(config, n, profiles)
    detection.expect(n)
    if timeline is not None:
        timeline.detection = detection.engine_of
    lanes = [
        _Lane(
            PartitionEngine(config, partition=p, partitions=n, profiles=profiles, detect=False),
            detection,
            result,
            batch_size,
            bar,
            positions,
            timeline,
            config.monitoring.max_ahead_s,
        )
        for p in range(n)
    ]
    if detection.shards > 1:
        for lane in lanes:
            lane.engine.profile.shards = detection.shards
    topics = [pred_topic] if label_topic is None else [pred_topic, label_topic]
    end: dict[tuple[str, int], int] = {}
    total = 0
    for topic in topics:
        for p in range(n):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            except KafkaException as exc:
                raise SourceError(f"cannot read the end offsets of {topic} [{p}]: {exc}") from exc
            if high > low:
                end[topic, p] = high
                if topic == pred_topic:
                    total += high - low
            else:
                _finish(lanes[p], topic == pred_topic)
    if label_topic is None:
        for lane in lanes:
            lane.labels_done = True
    bar.start(total)  # a floor on brokers that report end offsets loosely; raised below
    active = set(end)
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(active)])
    next_offset: dict[tuple[str, int], int] = {}
    exact: set[tuple[str, int]] = set()
    paused: set[tuple[str, int]] = set()
    idle_since: float | None = None

    def finish(tp: tuple[str, int]) -> None:
        if tp in active:
            active.discard(tp)
            _finish(lanes[tp[1]], tp[0] == pred_topic)
            if tp not in paused:
                consumer.pause([TopicPartition(*tp)])
                paused.add(tp)

    while active:
        messages = consumer.consume(batch_size, 0.2)
        if not messages:
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since >= source.idle_timeout_s:
                short = sorted(f"{t}[{p}]@{next_offset.get((t, p), 0)}/{end[t, p]}" for t, p in active)
                log.warning("nothing more arrived for %.1f s; ending the replay of %s", source.idle_timeout_s, short)
                for tp in list(active):
                    finish(tp)
        else:
            idle_since = None
        for msg in messages:
            tp = (str(msg.topic()), int(msg.partition() or 0))
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    finish(tp)  # caught up with the partition's true end
                elif err.fatal():
                    raise SourceError(f"consuming {tp[0]}: {err.str()}", fatal=True)
                else:
                    log.warning("consume error on %s: %s", tp[0], err.str())
                continue
            offset = msg.offset()
            if tp not in active or offset is None or offset < next_offset.get(tp, 0):
                continue
            if tp not in exact:
                # ListOffsets may report a loose end; the first fetch response carries the true high watermark.
                exact.add(tp)
                _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                if high > end[tp]:
                    if tp[0] == pred_topic:
                        bar.grow(high - end[tp])
                    end[tp] = high
            if offset >= end[tp]:
                finish(tp)  # written after the replay started
                continue
            next_offset[tp] = offset + 1
            _ts_type, ts_ms = msg.timestamp()
            kafka_time = ts_ms / 1000.0 if ts_ms >= 0 else 0.0
            lane = lanes[tp[1]]
            where = f"partition {tp[1]} offset {offset}"
            if tp[0] == pred_topic:
                lane.add_prediction(msg.value(), kafka_time, where)
            else:
                lane.add_label(msg.value(), kafka_time, kafka_time, where)
            if offset + 1 >= end[tp]:
                finish(tp)
        for p, lane in enumerate(lanes):
            lane.pump()
            if lane.preds_done and lane.labels_done and not lane.preds:
                detection.retire(p)  # its input is over: it must not hold the others' rows back
            _flow(consumer, paused, active, (pred_topic, p), len(lane.preds) >= batch_size)
            if label_topic is not None:
                hold = lane.caught_up() and len(lane.labels) >= batch_size
                _flow(consumer, paused, active, (label_topic, p), hold)
    for p, lane in enumerate(lanes):
        lane.preds_done = lane.labels_done = True
        lane.pump()
        detection.retire(p)
    return lanes


def _finish(lane: _Lane, predictions: bool) -> None:
    if predictions:
        lane.preds_done = True
    else:
        lane.labels_done = True


def _flow(
    consumer: Consumer, paused: set[tuple[str, int]], active: set[tuple[str, int]], tp: tuple[str, int], hold: bool
) -> None:
    """Pause a partition whose buffer waits on the other topic; resume it once it is needed (bounded memory)."""
    if tp not in active or hold == (tp in paused):
        return
    if hold:
        consumer.pause([TopicPartition(*tp)])
        paused.add(tp)
    else:
        consumer.resume([TopicPartition(*tp)])
        paused.discard(tp)
