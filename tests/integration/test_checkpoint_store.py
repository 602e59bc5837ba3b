"""The checkpoint store against a real broker: snapshots as written now, and as earlier releases wrote them."""

from __future__ import annotations

import uuid
import zlib

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.errors import SourceError
from monitor.io.broker import EmbeddedBroker
from monitor.io.checkpoint import (
    H_CHUNK,
    H_CODING,
    H_COUNT,
    H_ID,
    H_PIECE,
    PIECES_FROM_BYTES,
    CheckpointStore,
    RecordParts,
    loads_record,
    record_parts,
)
from monitor.io.kafka_clients import ensure_topics

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


def _join_like(first: int, n: int) -> bytes:
    """A large snapshot-like payload: a FIFO of ids and times (as the join store's memory of joined ids)."""
    ids = [f"p0-{i}" for i in range(first, first + n)]
    return orjson.dumps({"done_ids": ids, "done_times": [1.7e9 + i / 2000 for i in range(first, first + n)]})


def _pieces_store(broker: EmbeddedBroker, producer: Producer) -> CheckpointStore:
    topic = f"state-{uuid.uuid4().hex[:8]}"
    ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {topic: 1})
    return CheckpointStore({"bootstrap.servers": broker.bootstrap}, topic, producer=producer, max_chunk_bytes=512_000)


def _acknowledged(store: CheckpointStore, producer: Producer, payload: bytes | RecordParts) -> str:
    """One checkpoint of partition 0 written, flushed and confirmed, as the service does after its commit."""
    sid = store.write(0, payload)
    producer.flush(30)
    store.confirm(0)
    return sid


def test_a_large_snapshot_goes_as_pieces_and_the_next_writes_only_the_pieces_that_changed(
    broker: EmbeddedBroker,
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    first = _join_like(0, 100_000)
    assert len(first) >= PIECES_FROM_BYTES
    _acknowledged(store, producer, first)
    whole = store.bytes_written
    assert whole >= len(first)  # the first time every piece goes
    second = _join_like(500, 100_000)  # the oldest 500 gone, 500 new: a FIFO that moved on
    sid = store.write(0, second)
    producer.flush(30)
    store.confirm(0)
    assert not store.failed
    assert store.bytes_written - whole < 0.2 * len(second)  # only what changed, and the list of pieces
    got = store.read_latest(0)
    assert got is not None and got.snapshot_id == sid and got.payload == second
    records = read_to_end(broker.bootstrap, store.topic)
    manifests = [m for m in records if dict(m.headers() or []).get(H_ID) == sid.encode()]
    assert [dict(m.headers() or [])[H_CODING] for m in manifests] == [b"pieces"]
    # a third snapshot: pieces of the first that neither the third nor the second (acknowledged) use are deleted
    third = _join_like(1000, 100_000)
    store.write(0, third)
    producer.flush(30)
    deleted = [m for m in read_to_end(broker.bootstrap, store.topic) if H_PIECE in dict(m.headers() or [])
               and m.value() is None]  # fmt: skip
    assert deleted
    got = store.read_latest(0)
    assert got is not None and got.payload == third


def test_pieces_of_an_unacknowledged_snapshot_are_written_again(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    payload = _join_like(0, 60_000)
    store.write(0, payload)  # not confirmed: its transaction may have been aborted
    producer.flush(30)
    once = store.bytes_written
    store.write(0, payload)
    producer.flush(30)
    assert store.bytes_written - once >= len(payload)  # every piece again
    store.confirm(0)
    twice = store.bytes_written
    store.write(0, payload)
    producer.flush(30)
    assert store.bytes_written - twice < 0.01 * len(payload)  # now held: the list of pieces only


def test_a_restore_finds_pieces_written_long_before_its_snapshot_and_a_new_owner_writes_its_own(
    broker: EmbeddedBroker,
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    payload = _join_like(0, 60_000)
    for _ in range(12):  # the same state twelve times: pieces once, then lists of pieces only
        sid = _acknowledged(store, producer, payload)
    # the last records read first by a restore are lists: their pieces are found where the list says they begin
    owner = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer)
    got = owner.read_latest(0)
    assert got is not None and got.snapshot_id == sid and got.payload == payload
    # a new owner writes its pieces under its own name, once: the old owner, should it still be writing, deletes
    # only its own, which no snapshot of the new owner uses
    for _ in range(2):
        _acknowledged(owner, producer, payload)
    assert len(payload) <= owner.bytes_written < 1.01 * len(payload)
    changed = _join_like(30_000, 60_000)
    for _ in range(2):  # the old owner goes on: its second snapshot deletes the pieces of its first
        _acknowledged(store, producer, changed)
    newest = _acknowledged(owner, producer, payload)
    got = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer).read_latest(0)
    assert got is not None and got.snapshot_id == newest and got.payload == payload


def test_a_snapshot_whose_pieces_are_gone_gives_way_to_the_older_complete_one(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    older = _join_like(0, 60_000)
    older_id = _acknowledged(store, producer, older)
    newer = _join_like(30_000, 60_000)
    store.write(0, newer)
    producer.flush(30)
    pieces = [m for m in read_to_end(broker.bootstrap, store.topic) if H_PIECE in dict(m.headers() or [])]
    last = pieces[-1]  # the newer snapshot's end (ids past the older one's): a piece only the newer one uses
    assert last.value() is not None
    producer.produce(
        store.topic, value=None, key=last.key(), partition=0, headers=[(H_PIECE, dict(last.headers() or [])[H_PIECE])]
    )
    producer.flush(30)
    got = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer).read_latest(0)
    assert got is not None and got.snapshot_id == older_id and got.payload == older


def _live_pieces(broker: EmbeddedBroker, topic: str) -> set[bytes]:
    """The pieces a compaction of the topic would keep: those whose last record is not a tombstone."""
    last: dict[bytes, bool] = {}
    for m in read_to_end(broker.bootstrap, topic):
        digest = dict(m.headers() or []).get(H_PIECE)
        if digest is not None:
            last[digest] = m.value() is not None
    return {d for d, live in last.items() if live}


def test_pieces_go_once_the_snapshots_are_small_enough_to_go_whole_again(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    _acknowledged(store, producer, _join_like(0, 60_000))
    assert _live_pieces(broker, store.topic)
    small = _join_like(0, 100)
    assert len(small) < PIECES_FROM_BYTES
    _acknowledged(store, producer, small)  # written whole; the pieces of the acknowledged one before it stay
    assert _live_pieces(broker, store.topic)
    _acknowledged(store, producer, small)  # now no snapshot the partition keeps uses them
    assert _live_pieces(broker, store.topic) == set()
    got = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer).read_latest(0)
    assert got is not None and got.payload == small


def test_a_new_owner_that_restores_a_whole_snapshot_deletes_the_pieces_left_before_it(broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    _acknowledged(store, producer, _join_like(0, 60_000))
    small = _join_like(0, 100)
    _acknowledged(store, producer, small)  # the old owner stops here: its pieces are still on the topic
    left = _live_pieces(broker, store.topic)
    assert left
    owner = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer)
    got = owner.read_latest(0)
    assert got is not None and got.payload == small
    owner.write(0, small)
    producer.flush(30)
    assert _live_pieces(broker, store.topic) == set()  # the restored snapshot needs none of them
    got = CheckpointStore({"bootstrap.servers": broker.bootstrap}, store.topic, producer=producer).read_latest(0)
    assert got is not None and got.payload == small


def _predictions(first: int, n: int) -> list[bytes]:
    event = {"model": "m", "features": {"x": 0.0}, "prediction": 0.0}
    out = []
    for i in range(first, first + n):
        event |= {"prediction_id": f"p-{i}", "timestamp": 1.7e9 + i / 1000, "features": {"x": i % 97 / 7}}
        out.append(orjson.dumps(event | {"prediction": (i % 10) / 10}))
    return out


def test_a_record_in_parts_is_read_back_whole_and_its_unchanged_sealed_parts_are_cut_once(
    broker: EmbeddedBroker,
) -> None:
    """The service writes a profile stage's record in parts: the label join's unchanged chunks keep the JSON and
    the pieces they made at the first checkpoint, and what is read back is the record's bytes."""
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    store = _pieces_store(broker, producer)
    config = load_config(environ={}, overrides={})
    engine = PartitionEngine(config, partition=0, clock=lambda: 0.0, detect=False)
    engine.process_predictions(_predictions(0, 30_000), [0.0] * 30_000)  # waiting for labels: the join holds them
    first = record_parts(["g", "t", "profile"], {"predictions": 30_000}, engine.snapshot(), [], 1.0)
    sealed = [p for p in first.parts if not isinstance(p, bytes)]
    assert len(first) >= PIECES_FROM_BYTES and len(sealed) >= 7  # the join's chunks (and joined ids) are sealed
    _acknowledged(store, producer, first)
    memos = {id(p): p.memo for p in sealed}
    assert all(m is not None for m in memos.values())
    written = store.bytes_written
    engine.process_predictions(_predictions(30_000, 50), [0.0] * 50)  # the newest chunk changes, no other
    second = record_parts(["g", "t", "profile"], {"predictions": 30_050}, engine.snapshot(), [], 2.0)
    kept = [p for p in second.parts if not isinstance(p, bytes) and id(p) in memos]
    assert len(kept) >= len(sealed) - 2
    sid = _acknowledged(store, producer, second)
    assert all(p.memo is memos[id(p)] for p in kept)  # not cut or digested again
    assert store.bytes_written - written < 0.1 * len(second)
    got = store.read_latest(0)
    assert got is not None and got.snapshot_id == sid and got.payload == bytes(second)
    data = loads_record(got.payload)
    twin = PartitionEngine.restore(config, data["engine"], clock=lambda: 0.0, detect=False)
    assert twin.snapshot() == engine.snapshot()
