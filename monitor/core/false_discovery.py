"""False-discovery control across every window test of a partition: Benjamini-Hochberg in rounds.

Thousands of streams tested at once would drown users in chance findings if each window test fired on its
own p-value. The tests completed within a round of ``significance.round_events`` partition events form one
family, decided together at false-discovery rate ``significance.fdr``: a window fires only when it is a
discovery *and* its effect reaches its statistic's threshold (:mod:`monitor.core.significance`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core.significance import ClosedWindows, WindowResult


def benjamini_hochberg(p_values: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Which hypotheses to reject at false-discovery rate ``q``, and the adjusted p-values (q-values).

    >>> rejected, adjusted = benjamini_hochberg(np.array([0.001, 0.02, 0.03, 0.5]), 0.05)
    >>> rejected.tolist(), np.round(adjusted, 3).tolist()
    ([True, True, True, False], [0.004, 0.04, 0.04, 0.5])
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * (m / np.arange(1, m + 1))  # as scipy: p * 3 / 3 would round above p
    adjusted_sorted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= q, adjusted


class FalseDiscoveryControl:
    """Benjamini-Hochberg over every window test completed in a round of ``round_events`` partition events.

    A test belongs to the round of the partition position where its window completed, so the families do
    not depend on batch boundaries (a replay decides exactly what live decided). A round is decided once
    the partition has moved past it: all of its tests together at rate ``q``. Among the streams flagged in a
    round, the expected share of false findings is at most ``q`` (and when nothing changed anywhere, the
    chance of any flag in the round is at most ``q``).

    Tests come one by one (:meth:`add`) or as a numeric table's :class:`ClosedWindows` (:meth:`add_windows`).
    A decision gives each test added alone back with its verdict; of a table's windows decided in one round it
    gives each stream's latest, standing for the stream's ``windows`` decided with it, and before it the
    stream's latest significant one when the latest is not (with ``windows`` 0): a stream's judgement reads
    its latest window, and any discovery among them makes it judged. Rounds come one after another, each
    with its own, however many one :meth:`advance` closed.

    >>> fdr = FalseDiscoveryControl(q=0.05, round_events=100)
    >>> fdr.add("a", WindowResult(1, 0.0, 10, 10, 0.0, 0.0, 0.0, 1e-6, "ks", {}, {}, position=40))
    >>> fdr.add("b", WindowResult(1, 0.0, 10, 10, 0.0, 0.0, 0.0, 0.2, "ks", {}, {}, position=60))
    >>> fdr.advance(50)
    []
    >>> [(k, r.significant) for k, r in fdr.advance(60)]
    [('a', True), ('b', False)]
    """

    def __init__(self, q: float, round_events: int) -> None:
        self.q = q
        self.round_events = round_events
        self.pending: list[tuple[Any, WindowResult]] = []
        self.blocks: list[ClosedWindows] = []  # tables' windows waiting for their rounds
        self.position = 0
        self.rounds = 0
        self.tests = 0
        self.discoveries = 0
        self.uncorrected = 0  # tests with a raw p-value below q: what testing each stream alone would flag
        self.rounds_with_discoveries = 0

    @property
    def waiting(self) -> int:
        """Tests waiting for their round."""
        return len(self.pending) + sum(len(b) for b in self._blocks())

    def _blocks(self) -> list[ClosedWindows]:
        blocks = self.__dict__.get("blocks")  # (absent from a control an older release snapshotted)
        if blocks is None:
            blocks = self.blocks = []
        return blocks

    def add(self, stream: Any, result: WindowResult) -> None:
        if result.position < 0:  # no place in the partition given: it belongs where the partition is now
            result.position = self.position
        self.pending.append((stream, result))

    def add_windows(self, closed: ClosedWindows) -> None:
        """A table's windows, their streams named (:meth:`ClosedWindows.label`)."""
        if len(closed):
            closed.position = np.where(closed.position < 0, self.position, closed.position)
            self._blocks().append(closed)

    def _round(self, result: WindowResult) -> int:
        return result.position // self.round_events

    def advance(self, events: int) -> list[tuple[Any, WindowResult]]:
        """Count ``events`` more partition events; decide and return the tests of every round now complete."""
        self.position += events
        current = self.position // self.round_events
        done = [(k, r) for k, r in self.pending if self._round(r) < current]
        if done:
            self.pending = [(k, r) for k, r in self.pending if self._round(r) >= current]
        done_blocks: list[ClosedWindows] = []
        kept: list[ClosedWindows] = []
        for b in self._blocks():
            now = b.position // self.round_events < current
            if now.all():
                done_blocks.append(b)
            elif now.any():
                done_blocks.append(b.take(now))
                kept.append(b.take(~now))
            else:
                kept.append(b)
        self.blocks = kept
        if not done and not done_blocks:
            return []
        return self._decide(done, done_blocks)

    def forget(self, model_version: tuple[str, str]) -> None:
        """A retired model version's pending tests stay in their round's family, as tested, but decide nothing:
        if the version comes back, its new streams must not take them."""
        self.pending = [((None, *k[1:]) if k[:2] == model_version else k, r) for k, r in self.pending]
        for b in self._blocks():
            if (b.model, b.version) == model_version:
                b.model = None

    def close(self) -> list[tuple[Any, WindowResult]]:
        """Decide every pending test now (end of a replay), each with its own round."""
        done, self.pending = self.pending, []
        blocks, self.blocks = self._blocks(), []
        return self._decide(done, blocks)

    def _decide(
        self, done: list[tuple[Any, WindowResult]], blocks: list[ClosedWindows]
    ) -> list[tuple[Any, WindowResult]]:
        """Each round's tests together, rounds in order; in a round a table's windows come before tests added
        alone (the engine adds a batch's tables first)."""
        rounds: dict[int, list[tuple[Any, WindowResult]]] = {}
        for item in done:
            rounds.setdefault(self._round(item[1]), []).append(item)
        block_rounds = [b.position // self.round_events for b in blocks]
        for b in blocks:
            b.significant, b.adjusted_p = np.zeros(len(b), dtype=bool), np.ones(len(b))
        every = sorted(set(rounds).union(*(np.unique(r).tolist() for r in block_rounds)))
        decided: list[tuple[Any, WindowResult]] = []
        for number in every:
            family = rounds.get(number, [])
            rows = [np.flatnonzero(r == number) for r in block_rounds]
            p_values = np.concatenate(
                [b.p_value[k] for b, k in zip(blocks, rows, strict=True)] + [np.array([r.p_value for _, r in family])]
            )
            rejected, adjusted = benjamini_hochberg(p_values, self.q)
            self.uncorrected += int(np.count_nonzero(p_values < self.q))
            at = 0
            for b, k in zip(blocks, rows, strict=True):
                assert b.significant is not None and b.adjusted_p is not None
                b.significant[k], b.adjusted_p[k] = rejected[at : at + k.size], adjusted[at : at + k.size]
                at += k.size
            for (_, r), rej, adj in zip(family, rejected[at:].tolist(), adjusted[at:].tolist(), strict=True):
                r.significant, r.adjusted_p = bool(rej), float(adj)
            self.rounds += 1
            self.tests += p_values.size
            found = int(rejected.sum())
            self.discoveries += found
            self.rounds_with_discoveries += found > 0
        # round by round, as batches that each closed one round would have had them: a stream's latest window
        # of every round (not only of the last), so a batch that spans rounds judges the same windows
        for number in every:
            of_round = [b.take(r == number) for b, r in zip(blocks, block_rounds, strict=True)]
            decided += _latest_windows([b for b in of_round if len(b)]) + rounds.get(number, [])
        return decided


def _latest_windows(blocks: list[ClosedWindows]) -> list[tuple[Any, WindowResult]]:
    """Each stream's latest decided window of ``blocks`` (see :class:`FalseDiscoveryControl`), streams in the
    order their first windows came, a retired version's left out."""
    blocks = [b for b in blocks if b.model is not None and len(b)]
    if not blocks:
        return []
    ids: dict[tuple[Any, ...], int] = {}
    keyed = []
    for b in blocks:
        assert b.key_index is not None
        local = np.array([ids.setdefault((b.model, b.version, *k), len(ids)) for k in b.keys], dtype=np.int64)
        keyed.append(local[b.key_index])
    key = np.concatenate(keyed)
    significant = np.concatenate([b.significant for b in blocks if b.significant is not None])
    block = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    row = np.concatenate([np.arange(len(b)) for b in blocks])
    n = key.size
    _, first = np.unique(key, return_index=True)
    order = np.sort(first)  # each stream's first window, in arrival order
    streams = key[order]
    last = np.full(len(ids), -1)  # by stream id
    present, at_end = np.unique(key[::-1], return_index=True)
    last[present] = n - 1 - at_end
    windows = np.bincount(key, minlength=len(ids))
    flagged = np.flatnonzero(significant)
    last_flagged = np.full(len(ids), -1)
    if flagged.size:
        k_rev = key[flagged][::-1]
        u, at = np.unique(k_rev, return_index=True)
        last_flagged[u] = flagged[::-1][at]
    picks = last[streams]
    earlier = last_flagged[streams]
    earlier = np.where(significant[picks], -1, earlier)  # only when the latest is not a discovery itself
    wanted = np.concatenate([picks, earlier[earlier >= 0]])
    results: dict[int, WindowResult] = {}
    for b_no in np.unique(block[wanted]).tolist():
        at = wanted[block[wanted] == b_no]
        for i, r in zip(at.tolist(), blocks[b_no].results(row[at]), strict=True):
            results[i] = r
    names = list(ids)
    out: list[tuple[Any, WindowResult]] = []
    for s, pick, before in zip(streams.tolist(), picks.tolist(), earlier.tolist(), strict=True):
        if before >= 0:
            results[before].windows = 0
            out.append((names[s], results[before]))
        results[pick].windows = int(windows[s])
        out.append((names[s], results[pick]))
    return out
