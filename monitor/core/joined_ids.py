"""The label join's memory of the ids it joined, oldest first, so that a label or prediction sent twice is
counted as a duplicate rather than joined again.

It holds up to ``labels.max_pending`` ids (200,000 by default) for ``labels.ttl_s``, and a profile stage
snapshots it with every summary send (every half second). Kept as an ordered dict it cost three walks of
every id per snapshot (about 15 ms each at 200,000). Here membership is a plain dict, and order and times
sit in blocks of :data:`BLOCK` ids numbered by arrival: a block never changes once full except by losing
its oldest ids, so a snapshot re-encodes only the two ends, and the pieces of a large snapshot
(:mod:`monitor.io.checkpoint`) stay the same between checkpoints.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any

import numpy as np

from monitor.core import snapshot as snap

BLOCK = 4096


class JoinedIds:
    """Ids with the time each was joined, oldest first; adding an id it holds updates its time in place.

    >>> done = JoinedIds()
    >>> done.add("a", 1.0); done.add_many(["b", "c"], 2.0)
    >>> "b" in done, len(done), list(done)
    (True, 3, ['a', 'b', 'c'])
    >>> done.pop_oldest(), done.oldest_time(), list(done.items())
    ('a', 2.0, [('b', 2.0), ('c', 2.0)])
    """

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}  # id -> its arrival number
        self._ids: deque[list[str]] = deque()  # block k holds arrival numbers [k * BLOCK, (k + 1) * BLOCK)
        self._times: deque[list[float]] = deque()
        self._head = 0  # arrival number of the oldest id held
        self._next = 0
        self._encoded: dict[int, tuple[int, int, Any]] = {}  # not state: block -> (start, length, its encoding)

    def __len__(self) -> int:
        return self._next - self._head

    def __contains__(self, prediction_id: object) -> bool:
        return prediction_id in self._seq

    def isdisjoint(self, ids: Iterable[str]) -> bool:
        return self._seq.keys().isdisjoint(ids)

    def __iter__(self) -> Iterator[str]:
        skip = self._head % BLOCK
        return chain(islice(self._ids[0], skip, None), *islice(self._ids, 1, None)) if self._ids else iter(())

    def items(self) -> Iterator[tuple[str, float]]:
        skip = self._head % BLOCK
        times = chain(islice(self._times[0], skip, None), *islice(self._times, 1, None)) if self._times else ()
        return zip(iter(self), times, strict=True)

    def add(self, prediction_id: str, now: float) -> None:
        seq = self._seq.get(prediction_id)
        if seq is not None:  # as an ordered dict would: the time changes, the place does not
            self._times[seq // BLOCK - self._head // BLOCK][seq % BLOCK] = now
            self._encoded.pop(seq // BLOCK, None)  # its block's encoding no longer holds
            return
        if not self._ids or len(self._ids[-1]) == BLOCK:  # one id at a time (a label joined) is the common call
            self._ids.append([])
            self._times.append([])
        self._seq[prediction_id] = self._next
        self._ids[-1].append(prediction_id)
        self._times[-1].append(now)
        self._next += 1

    def add_many(self, ids: Sequence[str], now: float) -> None:
        """Ids none of which it holds (nor twice among them), joined at ``now``."""
        self._extend(ids, [now] * len(ids))

    def _extend(self, ids: Sequence[str], times: Sequence[float]) -> None:
        self._seq.update(zip(ids, range(self._next, self._next + len(ids)), strict=True))
        done = 0
        while done < len(ids):
            if not self._ids or len(self._ids[-1]) == BLOCK:
                self._ids.append([])
                self._times.append([])
            room = BLOCK - len(self._ids[-1])
            self._ids[-1].extend(ids[done : done + room])
            self._times[-1].extend(times[done : done + room])
            done += min(room, len(ids) - done)
        self._next += len(ids)

    def oldest_time(self) -> float:
        return self._times[0][self._head % BLOCK]

    def pop_oldest(self) -> str:
        prediction_id = self._ids[0][self._head % BLOCK]
        if self._seq.get(prediction_id) == self._head:  # (an id added twice is held by its newer place)
            del self._seq[prediction_id]
        self._head += 1
        if self._head % BLOCK == 0 or self._head == self._next:
            self._ids.popleft()
            self._times.popleft()
            if self._head == self._next:  # empty: numbering starts again, and so do the blocks' encodings
                self._head = self._next = 0
                self._encoded = {}
        return prediction_id

    def drop_over(self, cap: int) -> None:
        for _ in range(len(self) - cap):
            self.pop_oldest()

    # ---------------------------------------------------------------- snapshots
    def to_plain(self) -> list[Any]:
        """Each block's held ids and times, oldest first; a block unchanged since the last snapshot reuses its
        encoding."""
        out: list[Any] = []
        cache: dict[int, tuple[int, int, Any]] = {}
        first_block = self._head // BLOCK
        for k, (ids, times) in enumerate(zip(self._ids, self._times, strict=True)):
            start = self._head % BLOCK if k == 0 else 0
            block = first_block + k
            hit = self._encoded.get(block)
            if hit is None or hit[0] != start or hit[1] != len(ids):  # ids are strings: JSON as they are
                plain = [ids[start:], snap.encode(np.array(times[start:], dtype=np.float64))]
                hit = (start, len(ids), snap.Encoded(plain))
            cache[block] = hit
            out.append(hit[2])
        self._encoded = cache
        return out

    @classmethod
    def from_plain(cls, blocks: Iterable[Sequence[Any]]) -> JoinedIds:
        joined = cls()
        for ids, times in blocks:
            joined._extend(list(ids), np.asarray(snap.decode(times), dtype=np.float64).tolist())
        return joined

    @classmethod
    def from_pairs(cls, ids: Sequence[str], times: Sequence[float]) -> JoinedIds:
        """From the ids and times an earlier release kept (an ordered dict's keys and values)."""
        joined = cls()
        joined._extend(list(ids), list(times))
        return joined
