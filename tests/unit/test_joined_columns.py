"""Joined labels travel between the stages as columns: read back, they are the labels the join made."""

from __future__ import annotations

import lz4.frame
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.join import Joined, PendingPrediction
from monitor.core.profile import JOINED_COLUMNS_FORMAT, SUMMARY_FORMAT, Summary, wire_header, wire_plain, wire_text

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, st.text(max_size=6))
segments = st.lists(st.tuples(st.sampled_from(["country", "gender", "plan"]), st.text(max_size=3)), max_size=3).map(
    lambda pairs: tuple(dict(pairs).items())
)


@st.composite
def joined_labels(draw: st.DrawFn, model: str, version: str) -> Joined:
    pending = PendingPrediction(
        model, version, draw(segments), draw(scalars), draw(st.none() | st.floats(0, 1)), draw(finite),
        draw(st.none() | st.floats(0, 1)),
    )  # fmt: skip
    outcomes = draw(st.none() | st.dictionaries(st.sampled_from(["converted", "spend"]), finite, max_size=2))
    return Joined(draw(st.text(min_size=1, max_size=8)), pending, draw(scalars), outcomes, draw(finite))


@settings(max_examples=150, deadline=None)
@given(st.lists(joined_labels("m", "v1"), min_size=1, max_size=40))
def test_joined_labels_read_back_from_their_columns_as_the_join_made_them(joined):
    summary = Summary("m", "v1", source=2, seq=7, progress=10.0, joined=joined, label_progress=12.0)
    back = Summary.decode(summary.encode())
    assert back.joined == joined  # every field, a None score or confidence as None, in order
    assert [type(j.prediction) for j in back.joined] == [PendingPrediction] * len(joined)
    assert back.to_plain() == summary.to_plain() and wire_plain(summary.encode()) == summary.to_plain()
    header = wire_header(summary.encode())
    assert header["format"] == JOINED_COLUMNS_FORMAT and summary.to_plain()["format"] == SUMMARY_FORMAT
    assert len(header["joined"]["segments"]) == len({j.prediction.segments for j in joined})  # each once
    assert ("confidence" in header["joined"]) == any(j.prediction.confidence is not None for j in joined)
    earlier = Summary.decode(lz4.frame.compress(orjson.dumps(summary.to_plain())))  # entries, as releases before
    assert earlier.joined == joined


def _wire(header: dict, floats: bytes) -> bytes:
    return lz4.frame.compress(orjson.dumps(header) + b"\n" + floats)


def test_damaged_joined_columns_are_refused_not_misread():
    joined = [
        Joined("a", PendingPrediction("m", "v1", (("country", "US"),), 1, 0.9, 5.0), 1, None, 2.0),
        Joined("b", PendingPrediction("m", "v1", (), 0, None, 6.0), 0, {"spend": 3.0}, 1.0),
    ]
    wire = Summary("m", "v1", source=0, seq=0, progress=10.0, joined=joined).encode()
    header, _, floats = wire_text(wire).partition(b"\n")
    good = orjson.loads(header)
    assert Summary.decode(_wire(good, floats)).joined == joined
    for change, why in [
        ({"combo": [0, -1]}, "segment combinations"),  # a negative index would silently pick the last
        ({"combo": [0, 2]}, "segment combinations"),
        ({"label": [1]}, "label has 1 of 2"),
        ({"id": ["a"]}, "combo has 2 of 1"),
    ]:
        with pytest.raises(ValueError, match=why):
            Summary.decode(_wire({**good, "joined": {**good["joined"], **change}}, floats))
    for cut in (floats[:-8], floats + b"\0" * 8):
        with pytest.raises(ValueError, match="summary floats"):
            Summary.decode(_wire(good, cut))
    with pytest.raises(ValueError, match="summary format 3"):
        Summary.decode(_wire({**good, "format": 3}, floats))
