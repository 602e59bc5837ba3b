"""The label join's memory of joined ids: an ordered dict's behaviour, in blocks a snapshot re-encodes only at
the ends."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import orjson

from monitor.core import snapshot as snap
from monitor.core.join import LabelJoiner
from monitor.core.joined_ids import BLOCK, JoinedIds


def test_it_behaves_as_the_ordered_dict_it_replaces_across_block_ends() -> None:
    rng = np.random.default_rng(5)
    done, model = JoinedIds(), OrderedDict[str, float]()
    n = 0
    for step in range(400):
        if rng.random() < 0.6:  # a batch of new ids
            k = int(rng.integers(1, 3 * BLOCK // 2))
            ids = [f"p{n + i}" for i in range(k)]
            n += k
            done.add_many(ids, float(step))
            model.update(dict.fromkeys(ids, float(step)))
        else:  # the oldest go, as a cap or the time to live drops them
            for _ in range(min(len(model), int(rng.integers(0, 2 * BLOCK)))):
                assert done.oldest_time() == next(iter(model.values()))
                assert done.pop_oldest() == model.popitem(last=False)[0]
        if model and rng.random() < 0.2:  # an id joined again keeps its place, with the new time
            again = list(model)[int(rng.integers(0, len(model)))]
            done.add(again, float(step) + 0.5)
            model[again] = float(step) + 0.5
        assert len(done) == len(model)
        if step % 50 == 0:
            assert list(done.items()) == list(model.items())
            assert all(pid in done for pid in list(model)[:: max(1, len(model) // 50)])
            assert f"p{n + 1}" not in done and done.isdisjoint([f"p{n + 1}"])
    assert list(done.items()) == list(model.items())


def test_a_snapshot_reencodes_only_the_blocks_at_its_ends_and_reads_back_the_same() -> None:
    done = JoinedIds()
    done.add_many([f"p{i}" for i in range(10 * BLOCK)], 1.0)
    first = done.to_plain()
    for _ in range(100):  # the oldest hundred go, a hundred new come
        done.pop_oldest()
    done.add_many([f"q{i}" for i in range(100)], 2.0)
    second = done.to_plain()
    assert len(second) == 11
    reused = sum(a is b for a, b in zip(first[1:], second[1:], strict=False))
    assert reused == 9  # all but the first block (it lost its oldest) and the last (new ids)
    back = JoinedIds.from_plain(snap.decode(orjson.loads(orjson.dumps(snap.encode(second)))))
    assert list(back.items()) == list(done.items())


def test_a_join_store_of_an_earlier_release_keeps_its_joined_ids() -> None:
    joiner = LabelJoiner()
    plain = snap.decode(orjson.loads(orjson.dumps(snap.encode(joiner.to_plain()))))
    del plain["done"]
    plain["done_ids"], plain["done_times"] = ["a", "b"], np.array([1.0, 2.0])  # as an ordered dict was written
    restored = LabelJoiner.from_plain(plain)
    assert list(restored.done.items()) == [("a", 1.0), ("b", 2.0)]


def test_a_snapshot_after_the_ids_all_went_and_others_came_holds_the_new_ones() -> None:
    """Emptied, the numbering starts again: a block with the same number, start and length is not the same."""
    done = JoinedIds()
    done.add_many([f"old{i}" for i in range(3 * BLOCK)], 1.0)
    done.to_plain()
    while len(done):
        done.pop_oldest()
    done.add_many([f"new{i}" for i in range(3 * BLOCK)], 2.0)
    back = JoinedIds.from_plain(snap.decode(orjson.loads(orjson.dumps(snap.encode(done.to_plain())))))
    assert list(back.items()) == list(done.items())
    done.add("new5", 3.0)  # an id joined again: its block's encoding is made anew
    back = JoinedIds.from_plain(snap.decode(orjson.loads(orjson.dumps(snap.encode(done.to_plain())))))
    assert dict(back.items())["new5"] == 3.0
