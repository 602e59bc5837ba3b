"""The checkpoint store against a real broker: snapshots as written now, and as earlier releases wrote them."""

from __future__ import annotations

import uuid
import zlib

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from monitor.errors import SourceError
from monitor.io.broker import EmbeddedBroker
from monitor.io.checkpoint import H_CHUNK, H_CODING, H_COUNT, H_ID, CheckpointStore
from monitor.io.kafka import ensure_topics

from .conftest import read_to_end


def _store(broker: EmbeddedBroker, producer: Producer) -> CheckpointStore:
    topic = f"state-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {topic: 2})
    return CheckpointStore({"bootstrap.servers": broker.bootstrap}, topic, producer=producer, max_chunk_bytes=1000)


def test_a_snapshot_is_read_back_whole_from_its_uncompressed_chunks(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4"})
    store = _store(broker, producer)
    payload = orjson.dumps({"rows": [[i, i * 0.5, f"p{i}"] for i in range(400)]})  # several chunks
    assert len(payload) > 3 * store.max_chunk_bytes
    first = store.write(1, b"older")
    sid = store.write(1, payload)
    producer.flush(30)
    assert not store.failed and first != sid
    got = store.read_latest(1)
    assert got is not None and got.snapshot_id == sid and got.payload == payload
    assert store.read_latest(0) is None
    chunks = read_to_end(broker.bootstrap, store.topic)  # the chunks on the topic: the JSON as it is, in pieces
    latest = [m for m in chunks if dict(m.headers() or [])[H_ID] == sid.encode()]
    assert len(latest) == -(-len(payload) // store.max_chunk_bytes)
    assert all(dict(m.headers() or [])[H_CODING] == b"identity" for m in latest)
    assert b"".join(m.value() or b"" for m in sorted(latest, key=lambda m: m.offset())) == payload


def test_a_zlib_snapshot_of_an_earlier_release_is_still_read(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _store(broker, producer)
    payload = orjson.dumps({"engine": {"x": list(range(2000))}})
    data = zlib.compress(payload, 1)
    chunks = [data[i : i + 700] for i in range(0, len(data), 700)]
    assert len(chunks) > 1
    for i, chunk in enumerate(chunks):  # as earlier releases wrote them: zlib, no coding header
        headers = [(H_ID, b"old-1"), (H_CHUNK, str(i).encode()), (H_COUNT, str(len(chunks)).encode())]
        producer.produce(store.topic, value=chunk, key=f"0:0:{i}".encode(), partition=0, headers=headers)
    producer.flush(30)
    got = store.read_latest(0)
    assert got is not None and got.snapshot_id == "old-1" and got.payload == payload


def test_a_snapshot_in_a_coding_this_release_cannot_read_is_an_error_not_an_empty_start(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _store(broker, producer)
    headers = [(H_ID, b"new-1"), (H_CHUNK, b"0"), (H_COUNT, b"1"), (H_CODING, b"zstd-dictionary")]
    producer.produce(store.topic, value=b"\x28\xb5", key=b"0:0:0", partition=0, headers=headers)
    producer.flush(30)
    with pytest.raises(SourceError, match="coding 'zstd-dictionary'"):
        store.read_latest(0)
