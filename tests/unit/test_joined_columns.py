"""Joined labels travel between the stages as columns: read back, they are the labels the join made."""

from __future__ import annotations

import lz4.frame
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.join import Joined, PendingPrediction
from monitor.core.profile import ProfileStage
from monitor.core.settings import Settings
from monitor.core.summary import (  # fmt: skip
    JOINED_COLUMNS_FORMAT,
    SUMMARY_FORMAT,
    Summary,
    wire_header,
    wire_plain,
    wire_text,
)

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
    for change, why in [
        ({"combo": [False, True]}, "not an integer"),  # a boolean would read as 0 and 1
        ({"id": "ab"}, "id is not a list"),  # a string of the right length would read letter by letter
        ({"label": {"x": 1, "y": 0}}, "label is not a list"),
        ({"segments": ["country"]}, "not a list of"),
        ({"segments": [[["country", "US", "x"]]]}, "not a list of"),
    ]:
        with pytest.raises(ValueError, match=why):
            Summary.decode(_wire({**good, "joined": {**good["joined"], **change}}, floats))
    for cut in (floats[:-8], floats + b"\0" * 8):
        with pytest.raises(ValueError, match="summary floats"):
            Summary.decode(_wire(good, cut))
    with pytest.raises(ValueError, match="summary format 3"):
        Summary.decode(_wire({**good, "format": 3}, floats))
    with pytest.raises(ValueError, match="format 1 with joined labels as dict"):
        Summary.decode(_wire({**good, "format": 1}, floats))
    entries = Summary("m", "v1", source=0, seq=0, progress=10.0, joined=joined).to_plain()
    with pytest.raises(ValueError, match="format 2 with joined labels as list"):
        Summary.decode(orjson.dumps({**entries, "format": 2}))


def test_rows_and_the_joined_labels_that_came_before_them_share_one_summary_and_read_back():
    """Labels that came before their predictions join when the predictions come: that summary carries both, the
    rows' float columns first and the joined labels' after them."""
    stage = ProfileStage(Settings(), partition=0)
    stage.labels(
        [orjson.dumps({"prediction_id": f"p{i}", "timestamp": 100.0, "label": i % 2}) for i in range(3)], [0.0] * 3
    )
    events = [
        {"prediction_id": f"p{i}", "model": "m", "timestamp": 90.0 + i, "features": {"x": 0.5 * i, "c": "red"},
         "segments": {"country": "US" if i else "DE"}, "prediction": 0.2 * i}
        for i in range(5)
    ]  # fmt: skip
    summaries, _ = stage.predictions([orjson.dumps(e) for e in events], [0.0] * 5)
    both = [s for s in summaries if s.rows is not None and s.joined]
    assert len(both) == 1 and len(both[0].rows) == 5 and len(both[0].joined) == 3
    summary = both[0]
    back = Summary.decode(summary.encode())
    assert back.joined == summary.joined and back.to_plain() == summary.to_plain()
    assert [j.prediction.score for j in back.joined] == [0.0, 0.2, 0.4]
    assert back.rows is not None and back.rows.features["x"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    header, _, floats = wire_text(summary.encode()).partition(b"\n")
    assert len(floats) == 8 * 3 * 5 + 8 * 3 * 3  # times, latencies and x of 5 rows; score, time, delay of 3 labels
    for cut in (floats[:-8], floats + b"\0" * 8):
        with pytest.raises(ValueError, match="summary floats"):
            Summary.decode(_wire(orjson.loads(header), cut))


def test_extra_bytes_after_a_summarys_rows_are_refused():
    stage = ProfileStage(Settings(), partition=0)
    event = {"prediction_id": "p1", "model": "m", "timestamp": 1.0, "features": {"x": 1.5}, "prediction": 0.2}
    (summary,), _ = stage.predictions([orjson.dumps(event)], [0.0])
    header, _, floats = wire_text(summary.encode()).partition(b"\n")
    assert Summary.decode(_wire(orjson.loads(header), floats)).to_plain() == summary.to_plain()
    with pytest.raises(ValueError, match="8 bytes after the columns"):
        Summary.decode(_wire(orjson.loads(header), floats + b"\0" * 8))
