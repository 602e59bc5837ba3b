"""The handoff of summaries a replica sent and reads back (monitor/core/handoff.py)."""

from __future__ import annotations

import orjson
import pytest

from monitor.core import summary as summary_module
from monitor.core.handoff import SummaryHandoff, TakenAsSent
from monitor.core.profile import ProfileStage
from monitor.core.summary import Summary
from tests.unit.test_two_stages import T0, settings


def _summaries(partition: int, n: int, rows: int) -> list[Summary]:
    stage = ProfileStage(settings(), partition=partition)
    out: list[Summary] = []
    for k in range(n):
        msgs = [
            orjson.dumps({"prediction_id": f"{partition}-{k}-{i}", "model": "m", "timestamp": T0 + k + i / 1000,
                          "features": {"x": float(i), "c": "a"}, "prediction": 0.5})
            for i in range(rows)
        ]  # fmt: skip
        out += stage.predictions(msgs, [0.0] * rows)[0]
    return out


def test_only_the_very_bytes_a_summary_was_sent_as_give_it_back() -> None:
    ours, theirs = _summaries(0, 3, 10), _summaries(1, 3, 10)
    handoff = SummaryHandoff()
    for s in ours:
        handoff.keep(s)
    assert all(handoff.take(s.encode()) is None for s in theirs)  # another replica's: decoded
    damaged = bytearray(ours[0].encode())
    damaged[len(damaged) // 2] ^= 1
    assert handoff.take(bytes(damaged)) is None  # same size and checksum place, other bytes: decoded
    assert [handoff.take(s.encode()) for s in ours] == ours
    assert handoff.take(ours[0].encode()) is None  # read twice (a repeat): the second is decoded
    assert len(handoff) == 0 and handoff.rows == 0 and handoff.taken == 3


def test_the_oldest_go_first_once_the_rows_held_pass_the_cap() -> None:
    sent = _summaries(0, 5, 10)
    handoff = SummaryHandoff(max_rows=25)
    for s in sent:
        handoff.keep(s)
    assert handoff.rows == 20 and len(handoff) == 2
    assert [handoff.take(s.encode()) for s in sent] == [None, None, None, sent[3], sent[4]]
    handoff.keep(_summaries(2, 1, 30)[0])  # larger than the cap: never held
    assert len(handoff) == 0
    handoff.keep(sent[0])
    handoff.clear()
    assert handoff.take(sent[0].encode()) is None and handoff.rows == 0


def test_a_model_cut_into_shards_counts_each_row_once_across_its_shards_summaries() -> None:
    """Each shard's summary carries its share of a row's columns: two shards' summaries of the same 10 rows hold
    10 rows, not 20, so a cap that holds one shard's rows holds both (counted in full, half of them were decoded
    again)."""
    stage = ProfileStage(settings(), partition=0)
    stage.shards = 2
    msgs = [
        orjson.dumps({"prediction_id": f"s{i}", "model": "m", "timestamp": T0 + i / 1000,
                      "features": {f"x{k}": float(i) for k in range(6)}, "prediction": 0.5})
        for i in range(10)
    ]  # fmt: skip
    sent = stage.predictions(msgs, [0.0] * 10)[0]
    assert sorted(s.shard for s in sent) == [0, 1] and all(len(s) == 10 for s in sent)
    handoff = SummaryHandoff(max_rows=10)
    for s in sent:
        handoff.keep(s)
    assert len(handoff) == 2 and handoff.rows == 10
    assert [handoff.take(s.encode()) for s in sent] == sent
    assert handoff.rows == 0


def test_a_summary_whose_bytes_no_stage_would_read_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage, the sender's own, skips a summary whose payload is over the bound reading allows: the
    sender must not monitor it from memory."""
    (summary,) = _summaries(0, 1, 40)
    monkeypatch.setattr(summary_module, "MAX_WIRE_TEXT_BYTES", 1000)  # a payload bound below this summary's size
    with pytest.raises(ValueError, match="claims"):
        Summary.decode(summary.encode())
    handoff = SummaryHandoff()
    handoff.keep(summary)
    assert len(handoff) == 0 and handoff.take(summary.encode()) is None


def test_a_cap_of_zero_holds_nothing_not_even_heartbeats() -> None:
    stage = ProfileStage(settings(), partition=0)
    one = orjson.dumps({"prediction_id": "a", "model": "m", "timestamp": T0, "features": {"x": 1.0}, "prediction": 0.5})
    sent = stage.predictions([one], [T0])[0]
    beats = stage.heartbeats()
    assert len(beats) == 1 and len(beats[0]) == 0  # a heartbeat: no rows, no labels
    handoff = SummaryHandoff(max_rows=0)
    for s in [*sent, *beats]:
        handoff.keep(s)
    assert len(handoff) == 0 and handoff.rows == 0


def test_a_stage_takes_a_sent_summary_only_once_it_took_the_last_one_sent_from_that_source() -> None:
    """The rule that keeps a summary still unread on the topic from counting as a repeat of a later one."""
    chain = TakenAsSent()
    last: dict[tuple[int, int], int] = {}  # what each stage (summaries partition, source) has taken last

    def send(partition: int, source: int, seq: int, *, read_back_first: bool = False) -> bool:
        took = chain.may_take(partition, source=source, seq=seq, last_taken=last.get((partition, source)))
        if took:
            chain.taken(partition, source=source, seq=seq)
            last[partition, source] = seq
        elif read_back_first:  # the usual way: read off the topic before the next one is sent
            assert not chain.read_back(partition, source=source, seq=seq)
            last[partition, source] = seq
        return took

    assert not send(0, 1, 10)  # the first one sent after a start: the stage may have older ones unread
    assert not send(0, 1, 11)  # 10 is not read back yet: 11 must wait for it on the topic too
    last[0, 1] = 11  # both read back
    assert send(0, 1, 12) and send(0, 1, 13)  # a chain from here
    assert not send(1, 1, 14) and not send(0, 2, 15)  # another stage, another source: their own first
    last[0, 1] = 20  # another sender's summary from source 1 (an earlier owner's, read late) came in between
    assert not send(0, 1, 16, read_back_first=True)  # it goes through the topic, and so the chain resumes
    assert send(0, 1, 17)
    assert chain.read_back(0, source=1, seq=13) and not chain.read_back(0, source=1, seq=13)  # an echo, once
    assert not chain.read_back(0, source=1, seq=16)  # went through the topic: a summary to add
    chain.clear()  # an assignment: the first one sent goes through the topic again
    assert not send(0, 1, 18) and len(chain) == 0


def test_no_more_are_taken_than_the_cap_until_some_are_read_back() -> None:
    chain = TakenAsSent(max_taken=2)
    chain.may_take(0, source=0, seq=0, last_taken=None)
    for seq in (1, 2):
        assert chain.may_take(0, source=0, seq=seq, last_taken=seq - 1)
        chain.taken(0, source=0, seq=seq)
    assert not chain.may_take(0, source=0, seq=3, last_taken=2) and len(chain) == 2  # full: the usual way
    assert chain.read_back(0, source=0, seq=1)
    assert not chain.may_take(0, source=0, seq=4, last_taken=2)  # 3 went through the topic, not read yet
    assert chain.may_take(0, source=0, seq=5, last_taken=4)  # room again, and the chain holds
