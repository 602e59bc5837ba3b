"""Training tables: the same rows from CSV, TSV, JSON lines and Parquet, as events the stream decoder accepts."""

from __future__ import annotations

import datetime as dt
import gzip
import math
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.core.decoders import PredictionDecoder
from monitor.errors import MonitorError, TableError
from monitor.io.tables import TableColumns, count_rows, detect_format, read_rows, rows_to_events

KAFKA_TIME = 1767225600.0

# One table, three encodings. Row 3 has NaN / empty income, row 4 infinity: all must read as None.
EXPECTED: list[dict[str, Any]] = [
    {"age": 30.0, "income": 52000.5, "plan": "gold", "active": True, "score": 0.8, "country": "DE", "label": 1.0},
    {"age": 41.0, "income": None, "plan": "silver", "active": False, "score": 0.2, "country": "FR", "label": 0.0},
    {"age": 25.0, "income": None, "plan": None, "active": True, "score": 0.55, "country": "DE", "label": 1.0},
    {"age": 52.0, "income": None, "plan": "gold", "active": False, "score": 0.1, "country": None, "label": 0.0},
    {"age": 38.0, "income": 100000.0, "plan": "n/a", "active": True, "score": 0.9, "country": "US", "label": None},
]

CSV = (
    "age,income,plan,active,score,country,label\n"
    "30,52000.5,gold,true,0.8,DE,1\n"
    "41,,silver,FALSE,0.2,FR,0\n"
    "25,nan,,True,0.55,DE,1\n"
    "52,inf,gold,false,0.1,,0\n"
    "\n"
    "38,1e5,n/a,TRUE,0.9,US,\n"
)

JSONL = (
    '{"age": 30.0, "income": 52000.5, "plan": "gold", "active": true, "score": 0.8, "country": "DE", "label": 1.0}\n'
    '{"age": 41.0, "income": null, "plan": "silver", "active": false, "score": 0.2, "country": "FR", "label": 0.0}\n'
    "\n"
    '{"age": 25.0, "income": null, "plan": null, "active": true, "score": 0.55, "country": "DE", "label": 1.0}\n'
    '{"age": 52.0, "income": null, "plan": "gold", "active": false, "score": 0.1, "country": null, "label": 0.0}\n'
    '{"age": 38.0, "income": 100000.0, "plan": "n/a", "active": true, "score": 0.9, "country": "US", "label": null}'
)


def _write_parquet(path: Path, row_group_size: int | None = None) -> Path:
    table = pa.table(
        {
            "age": pa.array([30.0, 41.0, 25.0, 52.0, 38.0], pa.float64()),
            "income": pa.array([52000.5, None, math.nan, math.inf, 100000.0], pa.float64()),
            "plan": pa.array(["gold", "silver", None, "gold", "n/a"], pa.string()),
            "active": pa.array([True, False, True, False, True], pa.bool_()),
            "score": pa.array([0.8, 0.2, 0.55, 0.1, 0.9], pa.float64()),
            "country": pa.array(["DE", "FR", "DE", None, "US"], pa.string()),
            "label": pa.array([1.0, 0.0, 1.0, 0.0, None], pa.float64()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _write(tmp_path: Path, fmt: str) -> Path:
    """The EXPECTED table in format ``fmt``: csv, tsv, jsonl, csv.gz, jsonl.gz or parquet."""
    path = tmp_path / f"train.{fmt}"
    if fmt == "parquet":
        return _write_parquet(path, row_group_size=3)
    text = {"csv": CSV, "tsv": CSV.replace(",", "\t"), "jsonl": JSONL}[fmt.removesuffix(".gz")]
    data = text.encode()
    path.write_bytes(gzip.compress(data) if fmt.endswith(".gz") else data)
    return path


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, tuple[str, Any]]]:
    """Rows with each value's type next to it: True == 1.0 in Python, and the types must match too."""
    return [{k: (type(v).__name__, v) for k, v in row.items()} for row in rows]


FORMATS = ["csv", "tsv", "jsonl", "parquet", "csv.gz", "jsonl.gz"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_typed_rows(tmp_path: Path, fmt: str) -> None:
    rows = [row for chunk in read_rows(_write(tmp_path, fmt)) for row in chunk]
    assert _typed(rows) == _typed(EXPECTED)
    assert [list(row) for row in rows] == [list(EXPECTED[0])] * 5  # column order kept


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_hold_at_most_chunk_rows(tmp_path: Path, fmt: str) -> None:
    # The Parquet file has row groups of 3, so chunks must cross a row-group boundary.
    chunks = list(read_rows(_write(tmp_path, fmt), chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [row["age"] for c in chunks for row in c] == [30.0, 41.0, 25.0, 52.0, 38.0]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_count_rows_matches_the_rows_read(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt)
    assert count_rows(path) == sum(len(c) for c in read_rows(path)) == 5


def test_count_rows_of_a_gzipped_file_is_unknown(tmp_path: Path) -> None:
    assert count_rows(_write(tmp_path, "csv.gz")) is None


def test_integer_columns_of_typed_formats_stay_integers(tmp_path: Path) -> None:
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"n": pa.array([1, None, 3], pa.int64())}), path)
    (tmp_path / "ints.jsonl").write_text('{"n": 1}\n{"n": null}\n{"n": 3}\n')
    (tmp_path / "ints.csv").write_text("n\n1\n\n\n3\n")  # CSV cannot tell: numbers are floats; blank line skipped
    assert _typed(next(read_rows(path))) == _typed([{"n": 1}, {"n": None}, {"n": 3}])
    assert _typed(next(read_rows(tmp_path / "ints.jsonl"))) == _typed([{"n": 1}, {"n": None}, {"n": 3}])
    assert _typed(next(read_rows(tmp_path / "ints.csv"))) == _typed([{"n": 1.0}, {"n": 3.0}])


def test_csv_cells_are_inferred_and_short_rows_padded(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        '\ufeffa, b ,c\n"x, y",-Infinity,1_000\n  ,-2.5e3,\n7\n', encoding="utf-8"
    )  # BOM, spaces in the header, a quoted comma
    rows = next(read_rows(path))
    assert _typed(rows) == _typed(
        [
            {"a": "x, y", "b": None, "c": "1_000"},
            {"a": None, "b": -2500.0, "c": None},
            {"a": 7.0, "b": None, "c": None},
        ]
    )


def test_rows_to_events_decode_like_stream_events(tmp_path: Path) -> None:
    rows = next(read_rows(_write(tmp_path, "csv")))
    columns = TableColumns(prediction="score", label="label", segments=("country",))
    events, labels = rows_to_events(rows, columns, model="churn", model_version="v3", start_index=10)
    assert len(events) == len(labels) == 5
    batch, rejected = PredictionDecoder().decode(events, [KAFKA_TIME] * len(events))
    assert rejected == []
    assert batch.prediction_id == [f"baseline-{i}" for i in range(10, 15)]
    assert batch.model == ["churn"] * 5 and batch.model_version == ["v3"] * 5
    assert list(batch.event_time) == [KAFKA_TIME] * 5
    assert batch.prediction == [0.8, 0.2, 0.55, 0.1, 0.9]
    assert set(batch.features) == {"age", "income", "plan", "active"}  # prediction, label, segment left out
    assert batch.features["income"] == [52000.5, None, None, None, 100000.0]
    assert batch.features["plan"] == ["gold", "silver", None, "gold", "n/a"]
    assert [type(v) for v in batch.features["active"]] == [bool] * 5
    assert batch.segments == {"country": ["DE", "FR", "DE", None, "US"]}
    assert labels == [1.0, 0.0, 1.0, 0.0, None]


def test_explicit_features_and_ignored_columns() -> None:
    rows = [{"a": 1, "b": "x", "id": "r1", "p": 0.5}]
    only_a, _ = rows_to_events(
        rows, TableColumns(prediction="p", features=("a", "absent")), model="m", model_version="1"
    )
    assert orjson.loads(only_a[0])["features"] == {"a": 1, "absent": None}
    no_id, labels = rows_to_events(rows, TableColumns(prediction="p", ignore=("id",)), model="m", model_version="1")
    assert orjson.loads(no_id[0])["features"] == {"a": 1, "b": "x"}
    assert labels == [None]


def test_a_row_without_prediction_is_rejected_by_the_decoder() -> None:
    rows = [{"x": 1.0, "p": 0.4}, {"x": 2.0, "p": None}, {"x": 3.0, "p": math.nan}, {"x": 4.0}, {"x": 5.0, "p": 1}]
    events, _ = rows_to_events(rows, TableColumns(prediction="p"), model="m", model_version="1")
    assert ["prediction" in orjson.loads(e) for e in events] == [True, False, False, False, True]
    batch, rejected = PredictionDecoder().decode(events, [KAFKA_TIME] * len(events))
    assert [(r.position, r.reason) for r in rejected] == [
        (1, "missing_field"),
        (2, "missing_field"),
        (3, "missing_field"),
    ]
    assert batch.prediction == [0.4, 1] and batch.features["x"] == [1.0, 5.0]


def test_without_a_prediction_column_every_event_predicts_zero() -> None:
    rows = [{"x": 1.0, "y": "a"}, {"x": None, "y": "b"}]
    events, labels = rows_to_events(rows, TableColumns(label="y"), model="m", model_version="1")
    batch, rejected = PredictionDecoder().decode(events, [KAFKA_TIME] * 2)
    assert rejected == [] and batch.prediction == [0, 0]
    assert set(batch.features) == {"x"} and labels == ["a", "b"]


def test_score_columns_become_the_scores_object() -> None:
    columns = TableColumns(prediction="cls", scores=("churn=p_churn", "stay"))
    assert columns.score_columns == (("churn", "p_churn"), ("stay", "stay"))
    rows = [
        {"f": 1.0, "cls": "churn", "p_churn": 0.7, "stay": 0.3},
        {"f": 2.0, "cls": "stay", "p_churn": None, "stay": 0.9},
    ]
    events, _ = rows_to_events(rows, columns, model="m", model_version="1")
    batch, rejected = PredictionDecoder().decode(events, [KAFKA_TIME] * 2)
    assert rejected == []
    assert batch.scores == [{"churn": 0.7, "stay": 0.3}, {"stay": 0.9}]
    assert set(batch.features) == {"f"}


def test_values_outside_the_contract_are_converted() -> None:
    rows = [
        {
            "day": dt.date(2026, 1, 2),
            "tags": ["a", "b"],
            "price": Decimal("9.50"),
            "count": np.int64(4),
            "flag": np.bool_(True),
            "ratio": np.float64("nan"),
            "raw": b"abc",
            "band": 3.0,
            "vip": True,
            "share": 2.5,
            "p": 0.1,
        }
    ]
    columns = TableColumns(prediction="p", segments=("band", "vip", "share"))
    events, _ = rows_to_events(rows, columns, model="m", model_version="1")
    batch, rejected = PredictionDecoder().decode(events, [KAFKA_TIME])
    assert rejected == []
    assert {k: v[0] for k, v in batch.features.items()} == {
        "day": "2026-01-02",
        "tags": "['a', 'b']",
        "price": 9.5,
        "count": 4,
        "flag": True,
        "ratio": None,
        "raw": "abc",
    }
    assert type(batch.features["count"][0]) is int and type(batch.features["flag"][0]) is bool
    assert {k: v[0] for k, v in batch.segments.items()} == {"band": "3", "vip": "true", "share": "2.5"}


def test_table_columns_normalise_and_check() -> None:
    columns = TableColumns(prediction="p", features="age", segments=["country"])  # type: ignore[arg-type]
    assert columns.features == ("age",) and columns.segments == ("country",)
    columns.check({"p", "age", "country", "other"})
    with pytest.raises(TableError, match=r"'agee'.*train\.csv; it has: age, p"):
        TableColumns(prediction="p", features=("agee",)).check(["p", "age"], "train.csv")
    with pytest.raises(TableError, match="class=column"):
        TableColumns(scores=("=p1",))


def test_detect_format_from_suffix_or_override(tmp_path: Path) -> None:
    assert [detect_format(f"d{s}") for s in (".csv", ".TSV", ".jsonl", ".ndjson", ".parquet", ".pq", ".csv.gz")] == [
        "csv",
        "tsv",
        "jsonl",
        "jsonl",
        "parquet",
        "parquet",
        "csv",
    ]
    assert detect_format("d.csv", format="JSONL") == "jsonl"
    path = tmp_path / "export.txt"
    path.write_text(CSV)
    assert _typed(next(read_rows(path, format="csv"))) == _typed(EXPECTED)
    with pytest.raises(TableError, match=r"export\.txt"):
        read_rows(path)
    with pytest.raises(TableError, match="format 'jsonl'"):
        detect_format("lines.json")
    with pytest.raises(TableError, match="unknown table format 'xlsx'"):
        detect_format("d.csv", format="xlsx")
    with pytest.raises(TableError, match="gzipped Parquet"):
        detect_format("d.parquet.gz")


def test_missing_file_fails_when_called_not_when_iterated(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(TableError, match=r"nope\.csv does not exist"):
        read_rows(missing)
    with pytest.raises(TableError, match=r"nope\.csv"):
        count_rows(missing)
    with pytest.raises(TableError, match="not a file"):
        read_rows(tmp_path)
    assert issubclass(TableError, MonitorError)


def test_bad_json_lines_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(TableError, match=r"bad\.jsonl: line 3 is not valid JSON"):
        list(read_rows(path))
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(TableError, match=r"line 2 is not a JSON object \(got list\)"):
        list(read_rows(path))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no header row"),
        ("a,b\n1,2\n3,4,5\n", r"line 3 has 3 cells, the header 2"),
        ("a,b,a\n1,2,3\n", "duplicate column name.*: a"),
        ("a,,c\n1,2,3\n", "column 2 of the header has no name"),
    ],
)
def test_malformed_csv_is_a_table_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=error):
        list(read_rows(path))


def test_unreadable_files_are_table_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(TableError, match="not a readable Parquet file"):
        list(read_rows(broken))
    with pytest.raises(TableError, match="not a readable Parquet file"):
        count_rows(broken)
    truncated = tmp_path / "t.csv.gz"
    truncated.write_bytes(gzip.compress(CSV.encode())[:-20])
    with pytest.raises(TableError, match="cannot read"):
        list(read_rows(truncated))
    with pytest.raises(TableError, match="chunk_rows"):
        read_rows(_write(tmp_path, "csv"), chunk_rows=0)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "parquet")
    for name in ("pyarrow", "pyarrow.parquet", "pyarrow.compute"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TableError, match=r"pip install 'stream-model-monitor\[parquet\]'"):
        read_rows(path)
    with pytest.raises(TableError, match="pyarrow"):
        count_rows(path)


def test_a_csv_column_of_codes_with_leading_zeros_stays_text(tmp_path: Path) -> None:
    """Zip codes: read as numbers, "02134" became 2134, and live events that send them as strings were a type
    change (a critical alert, the field no longer monitored). With a leading zero anywhere, the whole column
    is text (a first pass finds it); a plain number column, 0 and 0.5 included, stays numbers."""
    path = tmp_path / "t.csv"
    path.write_text("zip,amount,n\n94103,0.5,1\n10001,0,2\n02134,12,3\n")
    rows = [row for chunk in read_rows(path, chunk_rows=1) for row in chunk]  # the first "0..." in the last chunk
    assert [r["zip"] for r in rows] == ["94103", "10001", "02134"]
    assert [r["amount"] for r in rows] == [0.5, 0.0, 12.0] and [r["n"] for r in rows] == [1.0, 2.0, 3.0]
