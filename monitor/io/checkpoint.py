"""Engine snapshots on a state topic: partition *p* of the state topic holds the snapshots of input partition *p*.

A snapshot is JSON, cut into chunks of at most ``max_chunk_bytes`` so it fits the broker's default
message size; every chunk carries the snapshot id, its index, the chunk count and its coding in headers.
Chunks go uncompressed: the producer compresses them (lz4) in librdkafka's own threads, so the consume loop
does not (zlib held it about 20 ms a megabyte, and twice that on the base64 of the summaries a snapshot
holds). Snapshots of earlier releases, zlib-compressed, are still read. The newest *complete* snapshot
wins: a crash in the middle of writing one leaves a partial snapshot that the reader skips. Reading
starts near the end of the partition and widens backwards only if needed, so a restore never scans the
topic from the start (the topic is compacted on real Kafka; the test broker never compacts).

A snapshot of at least :data:`PIECES_FROM_BYTES` is written as *pieces*: its bytes are cut where their content
says (content-defined chunking, FastCDC), each piece is a record keyed by its digest, and the snapshot's own
records hold only the list of digests. A piece the partition already holds from an acknowledged checkpoint
is not written again, so a large state that changes a little between checkpoints (the label-join store, its
memory of joined ids) costs the broker what changed, not the whole state every few hundred milliseconds. The
service hands the store a record in parts (:func:`record_parts`): a large part that is sealed (the join's
unchanged chunks, see :class:`monitor.core.snapshot.Encoded`) is cut and digested once, when first written, so
the loop thread pays for what changed in bytes too, not only on the broker.
Pieces that neither the new snapshot nor the last acknowledged one use are deleted (tombstones, for
compaction), also when the snapshots have shrunk and go whole again, and, after a restore, those another
owner left. A tombstone lost with its producer (a crash) leaves its piece on the topic for good: a restore
reads back only as far as the newest snapshot's pieces (or a whole snapshot's leftover ones) begin, so it
never learns of pieces older than that.

The order of a checkpoint's effects is :func:`write_in_order`'s, and its steps are named in
:data:`CHECKPOINT_STEPS`; a :data:`FaultHook` passed to the service is called at each, and
:class:`CrashAt` is the hook the crash tests use (``monitor run`` builds it from ``MONITOR_FAULT_INJECT``).
Which snapshots a checkpoint holds, and when, is the service's (:class:`monitor.io.kafka.MonitorService`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pyfastcdc import FastCDC

from monitor.core import snapshot as snap
from monitor.errors import SinkError, SourceError

log = logging.getLogger(__name__)

H_ID = "snapshot.id"
H_CHUNK = "snapshot.chunk"
H_COUNT = "snapshot.count"
H_CODING = "snapshot.coding"  # "identity", or "pieces" (the chunks list pieces); absent: zlib (earlier releases)
H_PIECE = "snapshot.piece"  # a piece of a snapshot written as pieces: its digest (no value: the piece is deleted)
H_PIECES_FROM = "snapshot.pieces_from"  # a whole snapshot's: where the pieces its writer had not deleted begin
PIECES_FROM_BYTES = 256 * 1024  # smaller snapshots are written whole
PIECE_AVERAGE_BYTES = 64 * 1024

# The named steps of a checkpoint without transactions, in order: snapshots produced, snapshots acknowledged,
# alerts (the outbox) acknowledged, offsets committed.
CHECKPOINT_STEPS = ("before_snapshot_flush", "after_snapshot", "after_alerts", "after_commit")

FaultHook = Callable[[str, bool], None]
"""Called at each of :data:`CHECKPOINT_STEPS` with the step's name and whether the checkpoint carries alerts."""

FAULT_INJECT_ENV = "MONITOR_FAULT_INJECT"  # test-only switch read by `monitor run`, never by the service

# 5: the label join's chunks keep their bodies, with bitmaps of what is still pending (an earlier release would
# read every prediction of a body as pending); 4: float arrays of decimals packed; 3: summaries as their topic
# bytes, packed integer arrays
RECORD_FORMAT = 5


def _record(
    source: list[str],
    offsets: dict[str, int | None],
    engine: dict[str, Any],
    outbox: list[dict[str, Any]],
    written_at: float,
    summaries: list[str] | None,
) -> dict[str, Any]:
    record = {
        "format": RECORD_FORMAT,
        "source": source,
        "offsets": offsets,
        "engine": engine,
        "outbox": outbox,
        "written_at": written_at,
    }
    if summaries:
        record["summaries"] = summaries  # a profile stage's: sent after this record, again after a restore
    return record


def _builtin(x: Any) -> Any:
    """What orjson writes for a subclass of str, int, dict or list when it passes them through (see
    :func:`record_parts`): the value as its base type, as orjson writes it by default."""
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, int):
        return int.__index__(x)
    if isinstance(x, dict):
        return dict.copy(x)  # its items as stored, as orjson reads them (never an overridden keys or __iter__)
    if isinstance(x, list):
        return list.copy(x)
    raise TypeError(f"Type is not JSON serializable: {type(x).__qualname__}")


def dumps_record(
    source: list[str],
    offsets: dict[str, int | None],
    engine: dict[str, Any],
    outbox: list[dict[str, Any]],
    written_at: float,
    summaries: list[str] | None = None,
) -> bytes:
    """A checkpoint record as JSON bytes: the engine's snapshot (``PartitionEngine.snapshot()``, plain data
    already) with the input offsets it covers and the alerts about to be published (plain dicts, as on the alerts
    topic): :func:`record_parts` joined. The plain data is written as it is, in one orjson call (encoding it again,
    as records of format 1 did, cost as much as encoding the engine), sealed parts as the JSON they made once."""
    return bytes(record_parts(source, offsets, engine, outbox, written_at, summaries))


SMALL_RUN_BYTES = 64  # runs between sealed parts up to this size have their cuts remembered (by their bytes)
SMALL_RUNS_KEPT = 256  # at most this many of them


class RecordParts:
    """A checkpoint record's JSON in order: bytes made now, and sealed plain data whose bytes were made once
    (:class:`monitor.core.snapshot.Encoded`, such as the label join's unchanged chunks). A store written as
    pieces cuts and digests each large sealed part once, not on every checkpoint (:meth:`CheckpointStore.write`);
    ``bytes()`` gives the record's JSON."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: list[bytes | snap.Sealed]) -> None:
        self.parts = parts
        self.size = sum(len(p) if isinstance(p, bytes) else len(snap.sealed_json(p)) for p in parts)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(p if isinstance(p, bytes) else snap.sealed_json(p) for p in self.parts)


def record_parts(
    source: list[str],
    offsets: dict[str, int | None],
    engine: dict[str, Any],
    outbox: list[dict[str, Any]],
    written_at: float,
    summaries: list[str] | None = None,
) -> RecordParts:
    """A checkpoint record (see :func:`dumps_record`) as :class:`RecordParts`, the form the service writes. orjson
    writes the record with a marker string in place of each sealed part (a nonce no event can know, made for
    this call), and its output is cut there; a subclass of str, int, dict or list is written as its value."""
    sealed: list[snap.Sealed] = []
    nonce = uuid.uuid4().hex

    def mark(x: Any) -> Any:
        if isinstance(x, snap.SealedDict | snap.SealedList):
            sealed.append(x)
            return f"\x00{nonce}{len(sealed) - 1}"
        return _builtin(x)

    record = _record(source, offsets, engine, outbox, written_at, summaries)
    out = orjson.dumps(record, default=mark, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    if not sealed:
        return RecordParts([out])
    cut = re.split(re.escape(b'"\\u0000' + nonce.encode()) + rb'(\d+)"', out)  # JSON writes \x00 as \u0000
    parts: list[bytes | snap.Sealed] = []
    for i, piece in enumerate(cut):
        if i % 2:
            parts.append(sealed[int(piece)])
        elif piece:
            parts.append(piece)
    return RecordParts(parts)


def loads_record(payload: bytes) -> dict[str, Any]:
    """A record :func:`dumps_record` wrote, or one of format 1 (the whole record through ``snapshot.dumps``):
    both give the same dict (``source``, ``offsets``, ``engine``, ``outbox``, ``written_at``)."""
    data = json.loads(payload)  # the standard library reads format 1's bare NaN and 128-bit integers too
    if isinstance(data, dict) and data.get("format") in (2, 3, 4, RECORD_FORMAT):
        return data
    if isinstance(data, dict) and "$d" in data:
        decoded = snap.decode(data)
        if isinstance(decoded, dict):
            return decoded
    raise ValueError("not a checkpoint record")


class OrderedSink(Protocol):
    """What :func:`write_in_order` needs of the producer that snapshots, alerts and summaries share."""

    transactional: bool
    renewals: int  # producers replaced so far: a replaced one's snapshots may be lost
    producer: Any

    def begin(self) -> None: ...

    def flush(self, stop: threading.Event | None = None) -> None: ...


def write_in_order(
    sink: OrderedSink,
    stores: Mapping[str, CheckpointStore],
    payloads: Mapping[tuple[str, int], bytes | RecordParts],
    *,
    publish: Callable[[], None],
    commit: Callable[[], None],
    faults: FaultHook | None = None,
    has_alerts: bool = False,
    stop: threading.Event | None = None,
) -> dict[str, float]:
    """A checkpoint's effects, in the order that loses nothing and counts nothing twice; the seconds each took.

    ``payloads``: the snapshot records, by (stage role, partition), each written to ``stores[role]``. ``publish``
    produces what the snapshots' outboxes hold (alerts, summaries); ``commit`` commits the offsets they cover.

    Without transactions: what the last checkpoint published is acknowledged first (a newer snapshot, whose
    outbox no longer holds it, must not be durable before it is); the snapshots are written and acknowledged,
    those the broker did not take written again; then published, then committed. The publishing is not waited
    for: the next checkpoint's first step does that. With transactions: snapshots, publishing and ``commit``
    (which puts the offsets in the transaction and commits it) go as one transaction. ``faults`` is called at
    each of :data:`CHECKPOINT_STEPS` (not in a transaction, which a crash aborts whole)."""
    steps = dict.fromkeys(("write", "flush", "alerts", "commit"), 0.0)

    def fault(step: str) -> None:
        if faults is not None:
            faults(step, has_alerts)

    if not sink.transactional:
        t = time.perf_counter()
        sink.flush(stop)
        steps["flush"] += time.perf_counter() - t
    t = time.perf_counter()
    for store in stores.values():
        store.producer = sink.producer  # a renewed one, if it was replaced
    sink.begin()  # snapshots go into the open transaction too (no-op without transactions)
    for (role, p), payload in payloads.items():
        stores[role].write(p, payload)
    steps["write"] = time.perf_counter() - t
    if sink.transactional:
        publish()
        t = time.perf_counter()
        commit()
        steps["commit"] = time.perf_counter() - t
        return steps
    fault("before_snapshot_flush")
    t = time.perf_counter()
    renewals = sink.renewals
    sink.flush(stop)
    for attempt in range(1, 6):  # a snapshot the broker did not take is written again; nothing goes on before
        failed: set[tuple[str, int]] = set()
        for role, store in stores.items():
            failed |= {(role, p) for p in store.failed if (role, p) in payloads}
            store.failed = set()
        if sink.renewals != renewals:  # a replaced producer's snapshots may be lost: all written again
            renewals = sink.renewals
            failed = set(payloads)
            for store in stores.values():
                store.producer = sink.producer
        if not failed:
            break
        if attempt == 5:
            raise SinkError(f"snapshots of {sorted(failed)} were not acknowledged")
        time.sleep(min(10.0, 0.5 * 2**attempt))
        for role, p in failed:
            stores[role].write(p, payloads[role, p])
        sink.flush(stop)
    steps["flush"] += time.perf_counter() - t  # with the first flush: both wait for acknowledgements
    fault("after_snapshot")
    t = time.perf_counter()
    publish()
    steps["alerts"] = time.perf_counter() - t
    fault("after_alerts")
    t = time.perf_counter()
    commit()
    steps["commit"] = time.perf_counter() - t
    fault("after_commit")
    return steps


class CrashAt:
    """A :data:`FaultHook` that crashes the process at a named step (tests only): ``step:n`` exits with status
    137 the n-th time ``step`` is reached, like a SIGKILL there; ``step+alerts`` counts only checkpoints
    that carry alerts."""

    def __init__(self, step: str | None, nth: int) -> None:
        self.step = step
        self.nth = nth
        self.seen = 0

    @classmethod
    def parse(cls, spec: str) -> CrashAt:
        """``step[:n]`` (n defaults to 1) as in ``MONITOR_FAULT_INJECT``; an empty spec never crashes."""
        if not spec:
            return cls(None, 0)
        step, _, nth = spec.partition(":")
        return cls(step, int(nth or 1))

    def __call__(self, step: str, with_alerts: bool = False) -> None:
        if step == self.step or (with_alerts and f"{step}+alerts" == self.step):
            self.seen += 1
            if self.seen == self.nth:
                log.error("fault injection: exiting at %s (#%d)", step, self.seen)
                os._exit(137)


class IncompleteSnapshot(SourceError):
    """A state partition holds chunks but no complete snapshot: the first snapshot ever was cut short (safe to
    start empty if no offset was ever committed, since offsets are committed only after a complete one), or
    every snapshot written as pieces misses some of them."""


@dataclass(frozen=True)
class StoredSnapshot:
    snapshot_id: str
    payload: bytes
    offset: int  # offset of its last chunk in the state partition


class CheckpointStore:
    """Write and read engine snapshots; the caller flushes the producer as part of its commit order, and calls
    :meth:`confirm` once a partition's snapshot is acknowledged (committed with its transaction)."""

    def __init__(
        self,
        client_config: dict[str, Any],
        topic: str,
        *,
        producer: Producer,
        max_chunk_bytes: int = 512_000,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.client_config = client_config
        self.topic = topic
        self.producer = producer
        self.max_chunk_bytes = max_chunk_bytes
        self.read_timeout_s = read_timeout_s
        self.bytes_written = 0  # produced: pieces the partition already held are not counted
        self.snapshot_bytes = 0  # the snapshots' own size, for the ratio
        self.snapshots_written = 0
        self.failed: set[int] = set()  # partitions whose last snapshot was not acknowledged
        self._slot: dict[int, int] = {}
        piece_max = max(1024, min(4 * PIECE_AVERAGE_BYTES, max_chunk_bytes))
        self._cutter_min = max(64, piece_max // 16)
        self._cutter_sizes = (max(256, piece_max // 4), self._cutter_min, piece_max)  # average, least, most
        self._cutter = FastCDC(self._cutter_sizes[0], min_size=self._cutter_min, max_size=piece_max)
        self._held: dict[int, dict[str, int]] = {}  # partition -> pieces it holds (acknowledged) -> their offset
        self._stale: dict[int, dict[str, int]] = {}  # pieces another owner wrote: deleted once no snapshot needs them
        self._owner: dict[int, str] = {}  # partition -> this ownership's name, in the keys of the pieces it writes
        self._written: dict[int, dict[str, int]] = {}  # pieces of the snapshot not acknowledged yet
        self._kept: dict[int, set[str]] = {}  # pieces of the last acknowledged snapshot
        self._using: dict[int, set[str]] = {}  # pieces of the snapshot written last
        # the cuts of the small runs between a record's sealed parts (mostly the comma between two of the label
        # join's chunks): the same few bytes at every checkpoint, cut and digested once
        self._small_cuts: dict[bytes, list[tuple[int, int, str]]] = {}

    def write(self, partition: int, payload: bytes | RecordParts) -> str:
        """Queue one snapshot (chunked) for partition ``partition``; returns its id.

        Chunks get distinct keys (``partition:slot:index``, two alternating slots) so that compaction on
        real Kafka keeps every chunk of the newest snapshot and of the one before it (a snapshot as pieces
        also needs its pieces: those of the last acknowledged one are kept). A chunk the broker
        does not acknowledge marks the partition in :attr:`failed`; the caller must not commit then.
        A snapshot of at least :data:`PIECES_FROM_BYTES` goes as pieces (see the module's docstring): its
        chunks then hold the list of its pieces' digests.
        """
        snapshot_id = uuid.uuid4().hex
        self.snapshot_bytes += len(payload)
        coding = b"identity"
        extra: list[tuple[str, str | bytes | None]] = []
        if len(payload) >= PIECES_FROM_BYTES and self.max_chunk_bytes >= 1024:  # a piece is at least 1 KiB
            payload = self._write_pieces(partition, payload)
            coding = b"pieces"
        else:  # written whole: it uses no piece, so those the partition still holds go once none is needed
            payload = bytes(payload)
            self._using[partition] = set()
            self._retire(partition)
            known = [o for held in (self._held, self._stale) for o in held.get(partition, {}).values() if o >= 0]
            if known:  # a restore of this snapshot reads back to them, so that its new owner deletes them
                extra.append((H_PIECES_FROM, str(min(known)).encode()))
        chunks = [payload[i : i + self.max_chunk_bytes] for i in range(0, len(payload), self.max_chunk_bytes)] or [b""]
        slot = self._slot[partition] = 1 - self._slot.get(partition, 1)
        for i, chunk in enumerate(chunks):
            key = f"{partition}:{slot}:{i}".encode()
            headers: list[tuple[str, str | bytes | None]] = [
                (H_ID, snapshot_id.encode()),
                (H_CHUNK, str(i).encode()),
                (H_COUNT, str(len(chunks)).encode()),
                (H_CODING, coding),
                *extra,
            ]
            self._produce(partition, key, chunk, headers)
        self.bytes_written += len(payload)
        self.snapshots_written += 1
        return snapshot_id

    def _write_pieces(self, partition: int, payload: bytes | RecordParts) -> bytes:
        """Produce the pieces of ``payload`` the partition does not hold yet, and tombstones for those no longer
        used; the list of digests that stands for the payload. A large sealed part of a :class:`RecordParts` is
        cut and digested on its own, once (its ``memo``); the bytes around such parts are cut together."""
        held = self._held.setdefault(partition, {})
        written = self._written[partition] = {}  # pieces written for an earlier, unacknowledged snapshot go again
        digests: list[str] = []
        owner = self._owner.setdefault(partition, uuid.uuid4().hex[:12])
        for data, sealed in self._regions(payload):
            memo = sealed.memo if sealed is not None else None  # (the cutter's piece sizes, its cuts)
            if memo is not None and memo[0] == self._cutter_sizes:  # cut by a cutter of these sizes
                cuts = memo[1]
            elif sealed is None and len(data) <= SMALL_RUN_BYTES:
                cuts = self._small_cuts.get(data)
                if cuts is None:
                    if len(self._small_cuts) >= SMALL_RUNS_KEPT:
                        self._small_cuts.clear()
                    cuts = self._small_cuts[bytes(data)] = self._cut(data)
            else:
                cuts = self._cut(data)
                if sealed is not None:
                    sealed.memo = (self._cutter_sizes, cuts)
            view = memoryview(data)
            for start, length, hexdigest in cuts:
                digest = f"{owner}.{hexdigest}"
                digests.append(digest)
                if digest in held or digest in written:
                    continue
                written[digest] = -1
                self._produce(partition, f"{partition}:piece:{digest}".encode(), bytes(view[start : start + length]),
                              [(H_PIECE, digest.encode())], piece=digest)  # fmt: skip
                self.bytes_written += length
        using = self._using[partition] = set(digests)
        self._retire(partition)
        offsets = [held[d] for d in using if held.get(d, -1) >= 0]
        return orjson.dumps({"pieces": digests, "from": min(offsets, default=-1)})

    def _cut(self, data: bytes) -> list[tuple[int, int, str]]:
        """Content-defined pieces of ``data``: (start, length, digest) each."""
        view = memoryview(data)
        return [
            (p.offset, p.length, hashlib.blake2b(view[p.offset : p.offset + p.length], digest_size=16).hexdigest())
            for p in self._cutter.cut_buf(data)
        ]

    def _regions(self, payload: bytes | RecordParts) -> Iterator[tuple[bytes, snap.Sealed | None]]:
        """The payload's bytes in the runs that are cut apart: each sealed part of at least a piece's minimum size
        on its own (with itself, to remember its pieces by), and the bytes between such parts together."""
        if isinstance(payload, bytes):
            yield payload, None
            return
        between: list[bytes] = []
        for part in payload.parts:
            data = part if isinstance(part, bytes) else snap.sealed_json(part)
            if isinstance(part, bytes) or len(data) < self._cutter_min:
                between.append(data)
                continue
            if between:
                yield b"".join(between), None
                between = []
            yield data, part
        if between:
            yield b"".join(between), None

    def _retire(self, partition: int) -> None:
        """Delete (tombstones, for compaction) the pieces the partition holds that neither the snapshot being
        written nor the last acknowledged one uses."""
        using = self._using.get(partition, set())
        kept = self._kept.get(partition, set())
        for known in (self._held.get(partition, {}), self._stale.get(partition, {})):
            for digest in [d for d in known if d not in using and d not in kept]:
                del known[digest]
                self._produce(partition, f"{partition}:piece:{digest}".encode(), None, [(H_PIECE, digest.encode())])

    def _produce(
        self, partition: int, key: bytes, value: bytes | None, headers: list[tuple[str, str | bytes | None]],
        piece: str | None = None,
    ) -> None:  # fmt: skip
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                log.warning("snapshot record for partition %d not delivered: %s", partition, err.str())
                self.failed.add(partition)
            elif piece is not None and piece in self._written.get(partition, {}):
                offset = msg.offset()
                self._written[partition][piece] = -1 if offset is None else int(offset)

        while True:
            try:
                self.producer.produce(
                    self.topic, value=value, key=key, partition=partition, headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.1)

    def confirm(self, partition: int) -> None:
        """The partition's last snapshot was acknowledged: its pieces are held from now on, and the pieces of
        the snapshot before it may go."""
        written = self._written.pop(partition, {})
        self._held.setdefault(partition, {}).update(written)
        if partition in self._using:
            self._kept[partition] = self._using[partition]

    def forget(self, partition: int) -> None:
        """The partition is no longer written by this store (revoked): what it knew of its pieces goes."""
        for known in (self._held, self._stale, self._written, self._kept, self._using, self._owner):
            known.pop(partition, None)

    def read_latest(self, partition: int) -> StoredSnapshot | None:
        """The newest complete snapshot of ``partition``, or None if it has none. What the store knew of the
        partition's pieces is replaced by what it reads (another owner may have written since)."""
        self.forget(partition)
        consumer = Consumer(
            {
                **self.client_config,
                "group.id": f"monitor-restore-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            tp = TopicPartition(self.topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=self.read_timeout_s)
            if high <= low:
                return None
            back, start = 8, high
            while True:
                start = max(low, min(start, high - back))
                found, reach = self._newest_complete(consumer, partition, start, high, final=start == low)
                if found is not None:
                    return found
                if start == low:
                    # Data but no complete snapshot: never start the partition empty on that alone (state loss).
                    raise IncompleteSnapshot(
                        f"state partition {partition} has records but no complete snapshot", retriable=True
                    )
                if reach is not None:  # the newest snapshot's pieces begin there
                    start = reach
                back *= 4
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in (
                KafkaError._UNKNOWN_PARTITION,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
            ):
                log.warning("state topic %s has no partition %d yet: starting it empty", self.topic, partition)
                return None
            raise SourceError(
                f"cannot read snapshots of partition {partition}: {err.str()}", retriable=err.retriable()
            ) from None
        finally:
            consumer.close()

    def _newest_complete(
        self, consumer: Consumer, partition: int, start: int, high: int, *, final: bool
    ) -> tuple[StoredSnapshot | None, int | None]:
        """The newest complete snapshot among the records from ``start``, its pieces included. Without one: None,
        and where the newest complete snapshot's pieces begin if they begin before ``start`` (a snapshot
        written as pieces whose pieces are not all read yet, or a whole one written while pieces were left).
        ``final`` (the partition was read from its start): an older complete snapshot is taken when the newest
        one's pieces are missing."""
        consumer.assign([TopicPartition(self.topic, partition, start)])
        parts: dict[str, dict[int, bytes]] = {}
        counts: dict[str, int] = {}
        codings: dict[str, bytes | None] = {}
        last_offset: dict[str, int] = {}
        pieces_from: dict[str, int] = {}  # a whole snapshot's H_PIECES_FROM
        pieces: dict[str, tuple[bytes, int]] = {}  # digest -> (bytes, offset); deleted pieces leave
        tp = TopicPartition(self.topic, partition)
        deadline = time.monotonic() + self.read_timeout_s
        position = start
        while True:
            msgs = consumer.consume(500, 0.3)
            if msgs:
                deadline = time.monotonic() + self.read_timeout_s  # a long read that moves on is not stuck
                position = max(position, 1 + max(int(m.offset() or 0) for m in msgs))
            for msg in msgs:
                if msg.error() is not None:
                    continue
                headers: dict[str, bytes] = {}
                for item in msg.headers() or []:
                    if isinstance(item, tuple) and isinstance(item[1], bytes):
                        headers[item[0]] = item[1]
                if H_PIECE in headers:
                    digest = headers[H_PIECE].decode()
                    value = msg.value()
                    if value is None:
                        pieces.pop(digest, None)
                    else:
                        pieces[digest] = (value, int(msg.offset() or 0))
                    continue
                try:
                    sid = headers[H_ID].decode()
                    idx, count = int(headers[H_CHUNK]), int(headers[H_COUNT])
                except (KeyError, ValueError):
                    continue
                parts.setdefault(sid, {})[idx] = msg.value() or b""
                counts[sid] = count
                coding = codings[sid] = headers.get(H_CODING)
                if coding not in (None, b"identity", b"pieces"):
                    raise SourceError(
                        f"snapshot {sid} in {self.topic!r} partition {partition} has coding {coding.decode()!r}, "
                        "which this release cannot read (written by a newer one?)"
                    )
                last_offset[sid] = int(msg.offset() or 0)
                if H_PIECES_FROM in headers:
                    pieces_from[sid] = int(headers[H_PIECES_FROM])
            # the consumer's position moves past transaction markers, which are never delivered
            position = max(position, int(consumer.position([tp])[0].offset))
            if position >= high:
                break
            if time.monotonic() > deadline:  # never settle for an older snapshot because the read was cut short
                raise SourceError(
                    f"reading snapshots of partition {partition} of {self.topic!r} stalled at offset {position} of "
                    f"{high}",
                    retriable=True,
                )
        complete = sorted((sid for sid, got in parts.items() if len(got) == counts[sid]), key=last_offset.__getitem__)
        for rank, sid in enumerate(reversed(complete)):
            got = parts[sid]
            payload = b"".join(got[i] for i in range(counts[sid]))
            if codings[sid] != b"pieces":  # whole: pieces on the topic are left over from snapshots before it
                reach = pieces_from.get(sid, -1)
                if rank == 0 and not final and 0 <= reach < start:  # read back to them, to delete them
                    return None, reach
                self._adopt(partition, (), pieces)
            if codings[sid] is None:
                payload = zlib.decompress(payload)
            elif codings[sid] == b"pieces":
                listing = orjson.loads(payload)
                missing = [d for d in listing["pieces"] if d not in pieces]
                if missing:
                    reach = int(listing.get("from", -1))
                    if rank == 0 and not final:  # read further back before settling for an older snapshot
                        return None, reach if 0 <= reach < start else None
                    log.warning("snapshot %s of partition %d misses %d pieces: trying an older one", sid, partition,
                                len(missing))  # fmt: skip
                    continue
                payload = b"".join(pieces[d][0] for d in listing["pieces"])
                self._adopt(partition, listing["pieces"], pieces)
            return StoredSnapshot(sid, payload, last_offset[sid]), None
        return None, None

    def _adopt(self, partition: int, using: Iterable[str], pieces: dict[str, tuple[bytes, int]]) -> None:
        """After a restore: the pieces read are another owner's (this one writes its own, under its own name, so
        that the other, should it still be writing, cannot delete what this one's snapshots use); those of the
        restored snapshot (``using``; none when it was written whole) are kept until a snapshot of this owner is
        acknowledged, and all of them deleted once no snapshot needs them."""
        self._held[partition] = {}
        self._stale[partition] = {d: offset for d, (_, offset) in pieces.items()}
        self._written.pop(partition, None)
        self._kept[partition] = set(using)
        self._using.pop(partition, None)
