"""Produce synthetic model traffic to Kafka at a steady rate, labels delayed (``monitor generate``, demo)."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from monitor.simulate import Drift, TrafficGenerator

# The drift `monitor demo` injects, and `monitor generate --drift-after` too.
DEMO_DRIFT_FEATURE = "income"
DEMO_DRIFT_SEGMENT = (("country", "SG"),)
DEMO_DRIFT_SCALE = 1.6
DEMO_LABEL_DELAY_S = 5.0  # `monitor generate`: a label this long after its prediction
DEMO_RATE = 1000.0  # `monitor demo`'s defaults: predictions per second, when the drift starts and how long it lasts
DEMO_DRIFT_AFTER_S = 15.0
DEMO_DRIFT_FOR_S = 45.0
DEMO_PARTITIONS = 3  # the demo's topics


@dataclass
class DriftSchedule:
    """Inject ``drift`` ``after_s`` seconds into the run and remove it ``for_s`` seconds later (0: never)."""

    drift: Drift
    after_s: float
    for_s: float = 0.0
    announce: Callable[[str], None] | None = None
    _state: str = field(default="pending")

    def tick(self, elapsed: float, gen: TrafficGenerator) -> None:
        if self._state == "pending" and elapsed >= self.after_s:
            gen.drifts.append(self.drift)
            self._state = "active"
            if self.announce:
                seg = ",".join(f"{k}={v}" for k, v in self.drift.segment.items()) or "all traffic"
                self.announce(f"injected drift: {self.drift.feature} x{self.drift.scale} in {seg}")
        elif self._state == "active" and self.for_s > 0 and elapsed >= self.after_s + self.for_s:
            gen.drifts.remove(self.drift)
            self._state = "done"
            if self.announce:
                self.announce(f"drift removed: {self.drift.feature} back to normal")


def produce_traffic(
    producer_config: dict[str, object],
    *,
    predictions_topic: str,
    labels_topic: str,
    rate: float,
    stop: threading.Event,
    duration_s: float = 0.0,
    schedules: list[DriftSchedule] | None = None,
    seed: int = 0,
    label_delay_s: float = 5.0,
) -> int:
    """Produce about ``rate`` predictions a second (and delayed labels) until ``stop`` or ``duration_s``."""
    producer = Producer({"linger.ms": 20, "acks": "all", **producer_config})
    gen = TrafficGenerator(seed=seed)
    pending: list[tuple[float, int, bytes, bytes]] = []
    start = time.monotonic()
    sent = 0
    tick = 0.05
    while not stop.is_set():
        elapsed = time.monotonic() - start
        if duration_s and elapsed >= duration_s:
            break
        for sched in schedules or []:
            sched.tick(elapsed, gen)
        due = int(rate * (elapsed + tick)) - sent
        now = time.time()
        for event in gen.predictions(max(0, due), start_time=now, rate=1e9):
            event["timestamp"] = now
            key = event["prediction_id"].encode()
            producer.produce(predictions_topic, key=key, value=orjson.dumps(event))
            label = gen.label_for(event)
            if label is not None:
                label["timestamp"] = now + label_delay_s
                heapq.heappush(pending, (now + label_delay_s, sent, key, orjson.dumps(label)))
            sent += 1
        while pending and pending[0][0] <= now:
            _, _, key, value = heapq.heappop(pending)
            producer.produce(labels_topic, key=key, value=value)
        producer.poll(0)
        time.sleep(max(0.0, start + elapsed + tick - time.monotonic()))
    producer.flush(10)
    return sent
