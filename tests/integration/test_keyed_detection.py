"""One change, one alert across partitions and replicas: three monitors in one group on six partitions.

Each stream's detectors run once, in the detection stage of its model version, on the summaries of all six
input partitions: a change in all traffic gives the all-traffic alert only, a change in one segment that
segment's alert only, for a numeric and a categorical feature alike, whichever replica owns what.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from monitor.app import Monitor
from monitor.core.shards import shard_of
from monitor.simulate import DEVICES, Drift, TrafficGenerator

from .conftest import config_for, produce, read_to_end, scrape_metrics, total, wait_consumed, wait_until

RATE = 200.0
N_AFTER = 20_000


def _events(segment: dict[str, str], seed: int, model: str = "churn") -> list[tuple[bytes, bytes]]:
    """Normal traffic, then income x1.6 and most devices turned into the rarest one, where ``segment`` holds."""
    gen = TrafficGenerator(seed=seed, model=model)
    before = list(gen.predictions(10_000, rate=RATE))
    gen.drifts.append(Drift("income", segment, scale=1.6))
    after = list(gen.predictions(N_AFTER, start_time=before[-1]["timestamp"] + 1 / RATE, rate=RATE))
    rng = np.random.default_rng(seed)
    for ev in after:
        if all(ev["segments"].get(k) == v for k, v in segment.items()) and rng.random() < 0.6:
            ev["features"]["device"] = DEVICES[2]
    return [(e["prediction_id"].encode(), orjson.dumps(e)) for e in before + after]


def _firing(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(a["key"] for a in alerts if a["status"] == "firing")


@pytest.mark.parametrize(
    ("segment", "expected", "incidents", "shards"),
    [
        ({}, ["churn/v1/data_drift/device/all", "churn/v1/data_drift/income/all"], 2, 1),  # one per feature
        ({"country": "SG"}, ["churn/v1/data_drift/device/country=SG", "churn/v1/data_drift/income/country=SG"], 1, 1),
        # model "credit": income and device are judged by shard 1, age by shard 0 (monitor.core.shards.shard_of)
        ({}, ["credit/v1/data_drift/device/all", "credit/v1/data_drift/income/all"], 2, 2),
    ],
    ids=["all-traffic", "one-segment", "all-traffic-two-shards"],
)
def test_one_change_gives_one_alert_on_six_partitions_and_three_replicas(
    broker, topics, segment, expected, incidents, shards
):
    names = topics(partitions=6)
    config = config_for(
        broker, names, monitoring={"watch_prediction": False}, detection={"idle_s": 10.0, "shards": shards}
    )
    monitors = [Monitor(config, consumer_overrides={"fetch.wait.max.ms": 10}).start() for _ in range(3)]
    try:
        ports = [m.http.port for m in monitors]

        def settled() -> bool:
            scraped = [scrape_metrics(p) for p in ports]
            inputs = [total(m, "monitor_assigned_partitions") for m in scraped]
            detection = [total(m, "monitor_detection_partitions") for m in scraped]
            return sum(inputs) == 6 and min(inputs) >= 1 and sum(detection) == 6

        wait_until(settled, what="3 replicas share the 6 input and the 6 summaries partitions")
        model = "churn" if shards == 1 else "credit"
        records = _events(segment, seed=11, model=model)
        produce(broker.bootstrap, names["predictions"], records)
        wait_consumed(broker.bootstrap, config.kafka.group_id, [names["predictions"]], ports=ports)

        scraped = [scrape_metrics(p) for p in ports]
        assert sum(total(m, "monitor_events_total") for m in scraped) == len(records)
        assert sum(total(m, "monitor_profiled_events_total") for m in scraped) == len(records)
        owners = [m for m in scraped if total(m, "monitor_events_total")]
        assert len(owners) == 1, "one detection stage monitors the model version (its shard 0 with two shards)"

        def judged_by(feature: str) -> list[int]:
            return [k for k, m in enumerate(scraped) if total(m, "monitor_stream_events_total", feature=feature)]

        counting = scraped.index(owners[0])
        if shards == 2:  # shard 1's features are judged in another replica than the one counting (shard 0)
            assert [shard_of(model, f, 2) for f in ("income", "device", "age")] == [1, 1, 0]
            assert judged_by("age") == [counting] and len(judged_by("income")) == 1
            assert judged_by("income") == judged_by("device") != [counting]
        else:
            assert judged_by("income") == judged_by("age") == [counting]

        alerts = [orjson.loads(m.value()) for m in read_to_end(broker.bootstrap, names["alerts"])]
        # every row merged in event time (a replica that reads its partitions after the others is waited for), so
        # the detectors saw the traffic in its order: rows monitored late once shifted a borderline segment test
        assert sum(total(m, "monitor_merge_late_rows_total") for m in scraped) == 0
        # one drift alert per change, on the stream that changed; a quality finding of the same feature (values past
        # the learned range) may join it, in the same incident
        drift = [k for k in _firing(alerts) if "/data_drift/" in k]
        assert drift == expected, [(a["key"], a["status"]) for a in alerts]
        scope = "all" if not segment else "country=SG"
        assert all(a["key"].endswith("/" + scope) for a in alerts), [a["key"] for a in alerts]
        firing = [a for a in alerts if a["status"] == "firing"]  # with two shards too: a feature's quality findings
        assert len({a["incident_id"] for a in firing}) == incidents  # are its shard's, in its drift's incident
    finally:
        for m in monitors:
            m.stop()
        for m in monitors:
            assert m.error is None
