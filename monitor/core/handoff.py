"""Summaries a replica sent to a summaries partition it also reads, held until it reads them back.

A replica that owns both an input partition's profile stage and the detection stage its summaries go to
produces each summary to the topic (the topic is what survives a crash and what the offsets cover) and then
reads the same bytes back. Decoding them rebuilds what the replica still holds: about a tenth of a single
replica's loop. The detection stage takes the held object instead when the bytes read back are the very bytes
it was encoded to, so nothing read from the topic is trusted without that check, and a summary whose bytes
differ, another replica's, or one held no longer is decoded as before. (The engine reads a summary the same
whether it came through its bytes or in process: tests/unit/test_float_columns.py.)
"""

from __future__ import annotations

from monitor.core.summary import Summary, readable_size


def held_rows(summary: Summary) -> float:
    """The rows a held summary counts as: a detection shard's summary carries about ``1 / shards`` of each row's
    feature columns, so a model cut into S shards sends S summaries of the same rows, together about one whole
    row each (counted in full, two shards halved what was held: a replica with both read most of them back
    from their bytes, 16% of its throughput in the keyed benchmark)."""
    return len(summary) / max(1, summary.shards)


class SummaryHandoff:
    """Sent summaries by their bytes, at most ``max_rows`` rows held (the oldest are let go first; rows of a
    shard's summary count as their share, :func:`held_rows`).

    >>> from monitor.core.profile import ProfileStage
    >>> from monitor.core.settings import Settings
    >>> stage = ProfileStage(Settings(), partition=0)
    >>> msg = b'{"prediction_id":"1","model":"m","timestamp":10,"features":{"x":1.5},"prediction":0.2}'
    >>> summary = stage.predictions([msg], [0.0])[0][0]
    >>> handoff = SummaryHandoff()
    >>> handoff.keep(summary)
    >>> handoff.take(summary.encode()) is summary, handoff.take(summary.encode())  # once
    (True, None)
    """

    def __init__(self, max_rows: int = 100_000) -> None:
        self.max_rows = max_rows
        self.rows = 0.0  # rows of the summaries held (see held_rows)
        self.taken = 0  # summaries read back without decoding
        self._held: dict[tuple[int, bytes], Summary] = {}  # by (size, the frame's last 8 bytes), oldest first

    def __len__(self) -> int:
        return len(self._held)

    def keep(self, summary: Summary) -> None:
        """Hold a summary just sent (its bytes made), unless larger than everything the handoff may hold, or
        one that reading its bytes refuses (over :data:`~monitor.core.summary.MAX_WIRE_TEXT_BYTES`): every
        detection stage, this replica's too, then skips it alike."""
        value = summary.encode()
        key = (len(value), value[-8:])  # an lz4 frame ends in its content's checksum
        size = held_rows(summary)
        if not self.max_rows or size > self.max_rows or key in self._held or not readable_size(value):
            return
        self._held[key] = summary
        self.rows += size
        while self.rows > self.max_rows:
            oldest = next(iter(self._held))
            self.rows -= held_rows(self._held.pop(oldest))

    def take(self, value: bytes) -> Summary | None:
        """The held summary these bytes were encoded from, let go of (None: not one held)."""
        key = (len(value), value[-8:])
        held = self._held.get(key)
        if held is None or held.wire != value:
            return None
        del self._held[key]
        self.rows = self.rows - held_rows(held) if self._held else 0.0  # (shares of a third add up inexactly)
        self.taken += 1
        return held

    def clear(self) -> None:
        """Let every held summary go (the partitions read changed)."""
        self._held.clear()
        self.rows = 0.0


class TakenAsSent:
    """Which summaries a replica's own detection stages may take as it sends them (not when they read them
    back), and which of those read back are such echoes (monitor.io.kafka ``MonitorService._take_sent``).

    A stage may take a summary only once it has taken the last summary this replica sent it from the same
    source: its last sequence from that source is that one's. Otherwise a summary from the source still
    unread on the topic (sent by an earlier owner of the input partition, or before a restore) would count
    as a repeat of a later one and be dropped. The first one sent after :meth:`clear` goes through the topic,
    and so does any after another sender's. At most ``max_taken`` are taken and not yet read back; beyond,
    the next ones go through the topic.

    >>> chain = TakenAsSent()
    >>> chain.may_take(0, source=3, seq=10, last_taken=None)  # the first sent: read back first
    False
    >>> chain.may_take(0, source=3, seq=11, last_taken=None)  # 10 not read back yet
    False
    >>> chain.may_take(0, source=3, seq=12, last_taken=11)  # the stage has taken 11, the last one sent
    True
    >>> chain.taken(0, source=3, seq=12)
    >>> chain.read_back(0, source=3, seq=12), chain.read_back(0, source=3, seq=12)
    (True, False)
    """

    def __init__(self, max_taken: int = 10_000) -> None:
        self.max_taken = max_taken
        self._last_sent: dict[tuple[int, int], int] = {}  # (summaries partition, source): the last one sent there
        self._taken: dict[tuple[int, int, int], None] = {}  # (summaries partition, source, sequence), oldest first

    def __len__(self) -> int:
        return len(self._taken)

    def may_take(self, partition: int, *, source: int, seq: int, last_taken: int | None) -> bool:
        """Record a summary as sent to ``partition``; whether its stage, whose last sequence taken from
        ``source`` is ``last_taken``, may take it now."""
        before = self._last_sent.get((partition, source))
        self._last_sent[partition, source] = seq
        return before is not None and last_taken == before and len(self._taken) < self.max_taken

    def taken(self, partition: int, *, source: int, seq: int) -> None:
        """The stage took it: when read back, it is an echo."""
        self._taken[partition, source, seq] = None

    def read_back(self, partition: int, *, source: int, seq: int) -> bool:
        """A summary read off ``partition``: whether it is one taken as sent (once)."""
        return self._taken.pop((partition, source, seq), 0) is None

    def clear(self) -> None:
        """The partitions read changed: what was sent before goes through the topic."""
        self._last_sent.clear()
        self._taken.clear()
