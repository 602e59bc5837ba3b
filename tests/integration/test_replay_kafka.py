"""``monitor replay`` over recorded topics on a real broker: every event once, the injected drift found."""

from __future__ import annotations

import time

import orjson
import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.replay import KafkaSource, replay
from monitor.simulate import Drift, TrafficGenerator

from .conftest import produce, read_to_end

EVENTS = 12_000
# Longer than any test may run: a replay that ends proves it found the true end of every partition, since it
# cannot have given up waiting for more (no timed assertion, which a loaded machine could fail).
NEVER_IDLE_S = 86_400.0


def _record(broker, names) -> int:
    """Predictions keyed by id with a drift in income half-way, two bad messages, and labels in time order."""
    gen = TrafficGenerator(seed=5)
    preds: list[tuple[bytes | None, bytes | None]] = []
    labels = []
    for i, event in enumerate(gen.predictions(EVENTS, rate=100.0)):
        if i == EVENTS // 2:
            gen.drifts.append(Drift("income", scale=1.6))
        preds.append((event["prediction_id"].encode(), orjson.dumps(event)))
        label = gen.label_for(event)
        if label is not None:
            labels.append(label)
    preds += [(b"bad-1", b"{not json"), (b"bad-2", None)]
    labels.sort(key=lambda e: e["timestamp"])
    labels[0]["timestamp"] = time.time() + 365 * 86_400.0  # a wrong year: restamped to its Kafka time
    produce(broker.bootstrap, names["predictions"], preds)
    produce(broker.bootstrap, names["labels"], [(e["prediction_id"].encode(), orjson.dumps(e)) for e in labels])
    return len(labels)


@pytest.mark.timeout(600)
def test_replay_of_recorded_topics_finds_the_drift(broker, topics, tmp_path, capsys, caplog):
    names = topics(partitions=3)
    n_labels = _record(broker, names)
    out = tmp_path / "alerts.jsonl"
    code = main(
        [
            "replay",
            "--bootstrap-servers",
            broker.bootstrap,
            "--predictions-topic",
            names["predictions"],
            "--labels-topic",
            names["labels"],
            "--out",
            str(out),
            "--no-progress",
            "--idle-timeout",
            str(NEVER_IDLE_S),
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0
    assert f"replayed {EVENTS:,} predictions and {n_labels:,} labels (3 partitions)" in stdout
    where = {  # the report names where each rejected message is
        m.key(): f"partition {m.partition()} offset {m.offset()}"
        for m in read_to_end(broker.bootstrap, names["predictions"])
        if m.key() in (b"bad-1", b"bad-2")
    }
    assert f"predictions empty 1 ({where[b'bad-2']})" in stdout, stdout
    assert f"predictions invalid_json 1 ({where[b'bad-1']})" in stdout, stdout
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    firing = [(a["kind"], a["subject"]) for a in alerts if a["status"] == "firing"]
    assert ("data_drift", "income") in firing
    assert {subject for _, subject in firing} == {"income"}
    assert len({a["alert_id"] for a in alerts}) == len([a for a in alerts if a["status"] == "firing"])
    assert "nothing more arrived" not in caplog.text  # the end of each partition found, not guessed

    assert "restamped (stamped more than monitoring.max_ahead_s after their Kafka time, given it): labels 1" in stdout

    # The same recording through the function: exact counts, and the same alert ids (replays are deterministic).
    config = load_config(environ={}, overrides={"kafka": {"bootstrap_servers": broker.bootstrap}})
    result = replay(config, KafkaSource(names["predictions"], names["labels"], NEVER_IDLE_S), progress=False)
    assert (result.events, result.messages, result.labels, result.partitions) == (EVENTS, EVENTS + 2, n_labels, 3)
    assert result.join["joined"] == n_labels and result.restamped == {"labels": 1}
    assert sorted(a.alert_id for a in result.alerts) == sorted(a["alert_id"] for a in alerts)


def test_replay_without_labels_topic_and_of_an_empty_partition(broker, topics, capsys):
    names = topics(partitions=2)
    event = {"prediction_id": "p1", "model": "m", "features": {"x": 1.0}, "prediction": 0.3, "timestamp": 1.0}
    produce(broker.bootstrap, names["predictions"], [(b"p1", orjson.dumps(event))])  # one partition stays empty
    config = load_config(environ={}, overrides={"kafka": {"bootstrap_servers": broker.bootstrap}})
    result = replay(config, KafkaSource(names["predictions"], idle_timeout_s=30), progress=False)
    assert (result.events, result.labels, result.partitions, result.alerts) == (1, 0, 2, [])


def test_replay_refuses_topics_that_are_not_co_partitioned(broker, topics, capsys):
    names = topics(partitions=3, labels_partitions=2)
    args = ["replay", "--bootstrap-servers", broker.bootstrap, "--predictions-topic", names["predictions"]]
    assert main([*args, "--labels-topic", names["labels"], "--no-progress"]) == 2
    assert "co-partitioned" in capsys.readouterr().err
    assert main(["replay", "--bootstrap-servers", broker.bootstrap, "--predictions-topic", "no-such-topic"]) == 2
    assert "does not exist" in capsys.readouterr().err
