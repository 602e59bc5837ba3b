"""The consumer's prefetch is bounded: summaries and labels share librdkafka's one queue with predictions, so a
deep prefetch of a predictions backlog would hold them back for seconds (measured in ``make bench``, keyed)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.io.kafka import MonitorService


def _consumer_config(**kafka: object) -> dict[str, object]:
    config = load_config(environ={}, overrides={"kafka": {"bootstrap_servers": "127.0.0.1:1", **kafka}})
    return MonitorService(config)._consumer_config()


def test_the_prefetch_is_bounded_by_the_setting_and_refilled_without_librdkafkas_second_of_backoff() -> None:
    conf = _consumer_config(prefetch_kbytes=2048, batch_max_messages=700)
    assert conf["queued.max.messages.kbytes"] == 2048
    assert conf["queued.min.messages"] == 700
    assert conf["fetch.queue.backoff.ms"] < 100
    # the linked librdkafka knows every property (an unknown one fails here, not at the first deployment)
    Consumer({k: v for k, v in conf.items() if k not in ("logger", "error_cb")}).close()


def test_a_librdkafka_property_overrides_the_prefetch() -> None:
    conf = _consumer_config(properties={"queued.max.messages.kbytes": "65536"})
    assert conf["queued.max.messages.kbytes"] == "65536"


@pytest.mark.parametrize("kbytes", [0, 2_097_152])
def test_a_prefetch_librdkafka_cannot_take_is_refused_naming_the_setting(kbytes: int) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.prefetch_kbytes"):
        _consumer_config(prefetch_kbytes=kbytes)
