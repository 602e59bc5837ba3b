"""Number columns as floats on the summaries topic and in the detection stage (monitor.core.float_columns)."""

from __future__ import annotations

import json
from dataclasses import replace

import lz4.frame
import numpy as np
import orjson

from monitor.core.batch_rows import concat_rows
from monitor.core.detect import DetectionStage
from monitor.core.float_columns import as_values, float_column, pack, unpack, wire_types
from monitor.core.profile import ProfileStage
from monitor.core.summary import Summary, wire_text
from tests.unit.test_two_stages import T0, settings


def test_only_columns_of_numbers_and_nulls_go_as_floats() -> None:
    assert float_column([1, 2.5, -3]).tolist() == [1.0, 2.5, -3.0]
    assert as_values(float_column([None, 2, None])) == [None, 2.0, None]
    assert float_column([None, None]) is None  # no number: the kind of the feature is not known from it
    assert float_column([True, 1.0]) is None and float_column([0.5, "x"]) is None and float_column(["a"]) is None
    assert float_column([10**400, 1.0]) is None  # beyond float64: left as it came
    table = [np.array([1.0, np.nan]), np.array([-0.0, 1e300])]
    back = unpack(pack(table, ["f8", "f8"]), ["f8", "f8"], 2)
    assert back[1].tolist() == [-0.0, 1e300] and as_values(back[0]) == [1.0, None] and back[0].flags.writeable


def test_whole_numbers_go_as_the_narrowest_integers_that_give_them_back_exactly() -> None:
    cases = {
        "i1": [0.0, 5.0, -128.0, 127.0],
        "i2": [0.0, 300.0, -32768.0],
        "i4": [2.0**31 - 1, -(2.0**31), 7.0],
        "f8": [1.5, 2.0],  # not whole
    }
    for code, values in cases.items():
        column = np.array(values)
        assert wire_types([column]) == [code]
        (back,) = unpack(pack([column], [code]), [code], column.size)
        assert back.dtype == np.float64 and back.tolist() == values
    for values in ([2.0**31, 1.0], [1.0, np.nan], [-0.0, 1.0], [-129.0, 1.0]):  # too wide, a null, -0.0, i2
        column = np.array(values)
        (code,) = wire_types([column])
        (back,) = unpack(pack([column], [code]), [code], column.size)
        assert np.array_equal(back, column, equal_nan=True) and list(np.signbit(back)) == list(np.signbit(column))
    assert wire_types([np.array([-129.0, 1.0]), np.array([1.0, np.nan]), np.array([0.5, 1.0])]) == ["i2", "f8", "f8"]
    small = pack([np.arange(1000.0) % 10], ["i1"])
    assert len(small) == 1000  # a byte a value, where float64 takes eight


def test_a_summary_of_integer_features_is_about_as_small_as_its_json_was() -> None:
    stage = ProfileStage(settings(), partition=0)
    rng = np.random.default_rng(3)
    msgs = [
        orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": T0 + i * 0.001, "prediction": 0.3,
                      "features": {f"f{k}": int(rng.integers(0, 10)) for k in range(50)}})
        for i in range(1000)
    ]  # fmt: skip
    out, _ = stage.predictions(msgs, [0.0] * 1000)
    for s in out:
        plain = orjson.dumps(s.to_plain())
        assert len(s.encode()) <= 1.1 * len(lz4.frame.compress(plain))  # the JSON an earlier release sent
        back = Summary.decode(s.encode())
        assert {k: as_values(v) for k, v in back.rows.features.items()} == {
            k: as_values(v) for k, v in s.rows.features.items()
        }


def test_a_summary_kept_as_json_with_line_breaks_still_reads() -> None:
    stage = ProfileStage(settings(), partition=0)
    one = orjson.dumps({"prediction_id": "a", "model": "m", "timestamp": T0, "features": {"x": 1.5}, "prediction": 0.2})
    (s,), _ = stage.predictions([one], [T0])
    text = json.dumps(s.to_plain(), indent=1)  # as an earlier release's snapshot may hold it
    assert Summary.from_stored(text).to_plain() == s.to_plain()


def test_a_feature_as_floats_in_one_part_and_as_values_in_another_joins_as_values() -> None:
    stage = ProfileStage(settings(), partition=0)
    one = orjson.dumps({"prediction_id": "a", "model": "m", "timestamp": T0, "features": {"x": 1.5}, "prediction": 0.2})
    two = orjson.dumps({"prediction_id": "b", "model": "m", "timestamp": T0 + 1, "features": {"x": "n/a", "y": 2},
                        "prediction": 0.2})  # fmt: skip
    (first,), _ = stage.predictions([one], [T0])
    (second,), _ = stage.predictions([two], [T0])
    read = [Summary.decode(s.encode()).rows for s in (first, second)]
    assert isinstance(read[0].features["x"], np.ndarray) and read[1].features["x"] == ["n/a"]
    joined = concat_rows(read)
    assert joined.features["x"] == [1.5, "n/a"] and as_values(joined.features["y"]) == [None, 2.0]
    assert isinstance(joined.features["y"], np.ndarray)  # only parts that have it bring it, as floats


def _messages(rng: np.random.Generator, k: int) -> list[bytes]:
    """Numbers (some integers), nulls and absences, a category column that gets numbers in places (and nothing
    but numbers in one batch: floats on the wire), a numeric one that gets text in places, and a feature that is
    null throughout some batches."""
    out = []
    for i in range(60):
        x = float(rng.normal(2.5 if k > 12 else 0.0))
        features: dict[str, object] = {
            "x": x if i % 7 else None,
            "n": int(rng.integers(0, 5)),
            "colour": i if k == 17 else ["red", "blue"][i % 2] if i % 11 else 3,  # batch 17: numbers only
            "age": "unknown" if (k == 9 and i % 5 == 0) else float(rng.normal(40, 5)),
            "sometimes": None if k % 3 else float(i),
        }
        if i % 13 == 0:
            del features["n"]
        out.append(orjson.dumps({
            "prediction_id": f"p{k}-{i}", "model": "m", "timestamp": T0 + k * 6 + i * 0.1, "features": features,
            "segments": {"seg": "ab"[i % 2]}, "prediction": float(rng.random()), "latency_ms": 5.0 + i,
        }))  # fmt: skip
    return out


def test_a_detection_stage_reading_summaries_off_the_topic_monitors_as_one_given_them_in_process() -> None:
    config = settings(detectors={"warmup_events": 120})
    rng = np.random.default_rng(11)
    profiles = [ProfileStage(config, partition=p) for p in range(2)]
    sent: list[Summary] = []
    for k in range(24):
        sent += profiles[k % 2].predictions(_messages(rng, k), [0.0] * 60)[0]
    # the same summaries with every feature column a list, as the decoder gives them (and earlier releases sent)
    as_lists = [
        replace(s, rows=replace(s.rows, features={k: as_values(v) for k, v in s.rows.features.items()})) for s in sent
    ]
    read_back = [Summary.decode(s.encode()) for s in sent]
    stages = [DetectionStage(config, clock=lambda: 0.0, idle_clock=lambda: 0.0, batch_rows=50) for _ in range(3)]
    alerts: list[list[tuple[str, str]]] = []
    for stage, summaries in zip(stages, (sent, as_lists, read_back), strict=True):
        for s in summaries:
            stage.add(s)
        out = stage.release(flush=True) + stage.engine.finish()
        alerts.append([(a.key, a.status) for a in out])
    assert isinstance(sent[0].rows.features["x"], np.ndarray)  # the profile stage made x floats once
    assert isinstance(as_lists[0].rows.features["x"], list)
    assert alerts[0] == alerts[1] == alerts[2] and any(status == "firing" for _, status in alerts[0])
    assert [stage.engine.events_total() for stage in stages] == [24 * 60] * 3
    # every stream, count, schema window and type mismatch alike
    assert len({orjson.dumps(stage.engine.snapshot()) for stage in stages}) == 1


def test_a_float_column_whose_place_in_the_header_is_null_reads_as_float64() -> None:
    """This release's first builds wrote null where the header now names the wire type: such bytes (in a
    snapshot's pending summaries) still read."""
    stage = ProfileStage(settings(), partition=0)
    one = orjson.dumps({"prediction_id": "a", "model": "m", "timestamp": T0, "features": {"x": 1.5, "c": "k"},
                        "prediction": 0.2})  # fmt: skip
    (s,), _ = stage.predictions([one], [T0])
    header, _, floats = wire_text(s.encode()).partition(b"\n")
    plain = orjson.loads(header)
    assert plain["rows"]["features"]["x"] == "f8"
    plain["rows"]["features"]["x"] = None
    older = lz4.frame.compress(orjson.dumps(plain) + b"\n" + floats)
    assert Summary.decode(older).to_plain() == s.to_plain()


def test_number_like_values_without_nulls_are_still_read_as_numbers() -> None:
    """Numbers only: any type the buffer protocol reads as a double (numpy scalars, float subclasses), as before
    nulls had a compiled pass of their own; with a None among them only plain ints and floats are numbers."""

    class Money(float):
        pass

    assert float_column([np.float64(2.5), np.int64(3), Money(1.5)]).tolist() == [2.5, 3.0, 1.5]
    assert float_column([np.float64(2.5), None]) is None
    assert float_column([10**400, None]) is None and float_column([None, 10**400]) is None
