"""Read training / validation tables (CSV, TSV, JSON lines, Parquet) as prediction events of contract v1.

A baseline profile must see the data exactly as the stream does, so rows are not profiled directly:
:func:`rows_to_events` turns them into the same JSON bytes a producer would send, and the caller feeds
those to :class:`monitor.core.decoders.PredictionDecoder`. Rows that break the contract are then rejected
with the same reason codes as stream events.

Files are read in chunks (:func:`read_rows`) so a table larger than memory can be profiled. Values come
out with the same Python types whatever the format: numbers, strings, bools and ``None`` (NaN and
infinity are ``None``, i.e. missing). CSV has no types, so its cells are inferred: a cell that parses as a
number is a ``float``, but for a column with a leading-zero number such as a zip code, which stays text;
JSON lines and Parquet keep ``int`` where the file has integers. A ``.gz`` suffix
after a text format (``data.csv.gz``) is read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import math
import numbers
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson

from monitor.errors import TableError

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
PARQUET_INSTALL = "pip install 'stream-model-monitor[parquet]'"


@dataclass(frozen=True)
class TableColumns:
    """Which columns of a training table are what.

    ``prediction``: the model's prediction (score, class or value). ``None`` means the table has no
    predictions: every event then carries ``"prediction": 0`` only because the contract requires one, and
    the caller must not monitor the prediction stream against this baseline.

    ``scores``: class-probability columns as ``"class=column"`` pairs (``"churn=p_churn"``); a bare
    ``"column"`` uses the column name as the class. They become the event's ``scores`` object.

    ``features``: empty means every column not named as prediction, label, segment or score and not in
    ``ignore``. A column named here but absent from a row is a missing (null) value; call :meth:`check`
    with the table's column names to catch typos.
    """

    prediction: str | None = None
    label: str | None = None
    segments: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    scores: tuple[str, ...] = ()
    score_columns: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("segments", "features", "ignore", "scores"):
            value = getattr(self, name)
            # A lone string would otherwise be iterated character by character.
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        pairs = []
        for spec in self.scores:
            cls, sep, column = spec.partition("=")
            if not sep:
                column = cls
            if not cls or not column:
                raise TableError(f"score column {spec!r} must be 'class=column' or 'column'")
            pairs.append((cls, column))
        object.__setattr__(self, "score_columns", tuple(pairs))

    def named(self) -> frozenset[str]:
        """Columns that are not features by default: prediction, label, segments, scores and ``ignore``."""
        names = [self.prediction, self.label, *self.segments, *self.ignore, *(c for _, c in self.score_columns)]
        return frozenset(n for n in names if n is not None)

    def check(self, available: Collection[str], source: str = "the table") -> None:
        """Raise :class:`TableError` if a column named here is not among ``available`` (a typo, usually)."""
        wanted = [self.prediction, self.label, *self.segments, *self.features, *(c for _, c in self.score_columns)]
        missing = [n for n in dict.fromkeys(wanted) if n is not None and n not in available]
        if missing:
            raise TableError(
                f"column(s) {', '.join(map(repr, missing))} not found in {source}; "
                f"it has: {', '.join(sorted(available)) or '(no columns)'}"
            )


def _compressed(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def detect_format(path: str | Path, format: str | None = None) -> str:
    """The table format of ``path`` (one of :data:`FORMATS`) from its suffix; ``format`` overrides it.

    >>> detect_format("train.csv"), detect_format("x.NDJSON"), detect_format("x.jsonl.gz"), detect_format("x.pq")
    ('csv', 'jsonl', 'jsonl', 'parquet')
    >>> detect_format("data.txt", format="tsv")
    'tsv'
    """
    p = Path(path)
    if format is not None:
        name = format.lower()
        if name not in FORMATS:
            raise TableError(f"unknown table format {format!r} for {p}: use one of {', '.join(FORMATS)}")
    else:
        suffixes = [s.lower() for s in p.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes.pop()
        suffix = suffixes[-1] if suffixes else ""
        if suffix not in _SUFFIXES:
            hint = " (if it holds one JSON object per line, use format 'jsonl')" if suffix == ".json" else ""
            raise TableError(
                f"cannot tell the table format of {p} from its suffix {suffix or '(none)'}{hint}: "
                f"use {', '.join(sorted(_SUFFIXES))} or give the format ({', '.join(FORMATS)})"
            )
        name = _SUFFIXES[suffix]
    if name == "parquet" and _compressed(p):
        raise TableError(f"{p}: a gzipped Parquet file cannot be read (Parquet compresses internally)")
    return name


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise TableError(f"table file {p} does not exist" if not p.exists() else f"table path {p} is not a file")
    return p


def _parquet() -> Any:
    try:
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise TableError(f"reading Parquet needs pyarrow: {PARQUET_INSTALL}") from None
    return pyarrow


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig drops the byte-order mark spreadsheet exports put in front of the header.
    if _compressed(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _open_bytes(path: Path) -> IO[bytes]:
    if _compressed(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def read_rows(path: str | Path, format: str | None = None, chunk_rows: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """Chunks of at most ``chunk_rows`` row dicts, read lazily.

    The path, format and (for Parquet) pyarrow are checked when this is called, not at the first chunk,
    so a bad command line fails before any work starts. CSV / TSV: a header row is required; an empty
    (or blank) cell is ``None``; ``true`` / ``false`` (any case) are bools; a cell that parses as a
    number is a ``float`` (``nan`` / ``inf`` are ``None``), unless its column holds numbers written with a
    leading zero (codes: see :func:`_csv_chunk`); anything else stays a string. A row with
    more cells than the header is an error; missing trailing cells are ``None``. JSON lines: one object
    per line, blank lines skipped. Parquet: column types kept, NaN and infinity become ``None``.
    """
    p = _existing(path)
    name = detect_format(p, format)
    if chunk_rows < 1:
        raise TableError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if name == "parquet":
        return _parquet_rows(p, _parquet(), chunk_rows)
    if name == "jsonl":
        return _jsonl_rows(p, chunk_rows)
    return _csv_rows(p, _DELIMITERS[name], chunk_rows)


def _csv_value(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return None
    lowered = stripped.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if "_" in stripped:  # float() accepts "1_000"; a table cell like that is an identifier, not a number
        return text
    try:
        number = float(stripped)
    except ValueError:
        return text
    return number if math.isfinite(number) else None


def _csv_rows(path: Path, delimiter: str, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise TableError(f"{path}: no header row (the first line must name the columns)")
            header = [h.strip() for h in header]
            for i, h in enumerate(header, 1):
                if not h:
                    raise TableError(f"{path}: column {i} of the header has no name")
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise TableError(f"{path}: duplicate column name(s) in the header: {', '.join(dupes)}")
            width = len(header)
            codes = _code_columns(path, delimiter, width)  # zip codes, account numbers: text, however they look
            raw: list[list[str]] = []
            for cells in reader:
                if not cells:
                    continue
                if len(cells) > width:
                    raise TableError(f"{path}: line {reader.line_num} has {len(cells)} cells, the header {width}")
                raw.append(cells)
                if len(raw) >= chunk_rows:
                    yield _csv_chunk(header, raw, codes)
                    raw = []
        except csv.Error as exc:
            raise TableError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise TableError(f"{path}: not UTF-8 text (near line {reader.line_num + 1})") from None
        except (OSError, EOFError) as exc:  # a corrupt or truncated .gz
            raise TableError(f"{path}: cannot read: {exc}") from None
        if raw:
            yield _csv_chunk(header, raw, codes)


_LEADING_ZERO = re.compile(r"\s*[+-]?0\d")


def _code_columns(path: Path, delimiter: str, width: int) -> set[int]:
    """The columns with a number written with a leading zero anywhere in the file (a first pass over it): a
    file sorted by region can hold its first "02134" a million rows in, and the column must be text from the
    first row, or the profile would see it as numbers with a share of strings. Errors are left to the reading
    pass, which reports them with their line."""
    codes: set[int] = set()
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader, None)
            for cells in reader:
                for i, cell in enumerate(cells[:width]):
                    if i not in codes and cell.lstrip()[:1] in _ZERO_STARTS and _LEADING_ZERO.match(cell):
                        codes.add(i)
    except (csv.Error, UnicodeDecodeError, OSError, EOFError):
        pass
    return codes


_ZERO_STARTS = frozenset("+-0")  # (a cell's first character past any whitespace: a cheap test before the regex)


def _csv_chunk(header: list[str], raw: list[list[str]], codes: set[int]) -> list[dict[str, Any]]:
    """A chunk of CSV lines as rows. A column with a number written with a leading zero ("02134") holds codes
    (zip codes, account numbers; :func:`_code_columns`), and all of its cells stay text: read as numbers they
    became 2134, and a live stream that sends them as strings was then a type change, a critical alert, and
    the field no longer monitored."""
    rows = []
    for cells in raw:
        row = {
            name: (cell.strip() or None) if i in codes else _csv_value(cell)
            for i, (name, cell) in enumerate(zip(header, cells, strict=False))
        }
        if len(cells) < len(header):
            row.update(dict.fromkeys(header[len(cells) :]))
        rows.append(row)
    return rows


def _lines(path: Path, f: IO[bytes]) -> Iterator[bytes]:
    try:
        yield from f
    except (OSError, EOFError) as exc:  # a corrupt or truncated .gz
        raise TableError(f"{path}: cannot read: {exc}") from None


def _jsonl_rows(path: Path, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    with _open_bytes(path) as f:
        chunk: list[dict[str, Any]] = []
        for line_no, line in enumerate(_lines(path, f), 1):
            if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise TableError(f"{path}: line {line_no} is not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise TableError(f"{path}: line {line_no} is not a JSON object (got {type(obj).__name__})")
            chunk.append(obj)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _parquet_rows(path: Path, pa: Any, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    try:
        parquet = pa.parquet.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: not a readable Parquet file: {exc}") from None
    with parquet:
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            # NaN / infinity -> null in C, so the rows match what CSV and JSON lines give.
            arrays = [
                pa.compute.if_else(pa.compute.is_finite(col), col, None) if pa.types.is_floating(col.type) else col
                for col in batch.columns
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=batch.schema).to_pylist()


def count_rows(path: str | Path, format: str | None = None) -> int | None:
    """Number of rows for a progress bar, or ``None`` when counting is not cheap (gzipped files).

    Parquet: from the file's metadata. CSV / TSV / JSON lines: non-blank lines (minus the CSV header),
    which over-counts CSV cells that contain line breaks inside quotes.
    """
    p = _existing(path)
    name = detect_format(p, format)
    if name == "parquet":
        pa = _parquet()
        try:
            with pa.parquet.ParquetFile(p) as f:
                return int(f.metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise TableError(f"{p}: not a readable Parquet file: {exc}") from None
    if _compressed(p):
        return None
    with p.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - 1, 0) if name in _DELIMITERS else lines


def _scalar(value: Any) -> Any:
    """A value the contract accepts (number, string, bool or null); anything else as its text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _segment(value: Any) -> str | None:
    """Segment values are strings in the contract; print them as a producer would (3.0 -> "3", True -> "true")."""
    value = _scalar(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rows_to_events(
    rows: list[dict[str, Any]],
    columns: TableColumns,
    *,
    model: str,
    model_version: str,
    start_index: int = 0,
) -> tuple[list[bytes], list[Any]]:
    """Each row as a prediction event (JSON bytes), and the label of each row (``None`` where absent).

    Both lists are aligned with ``rows``; ids are ``baseline-<start_index + i>``, so pass the running
    row count to keep them unique across chunks. A row whose prediction is null, NaN or absent gets no
    ``prediction`` field: the decoder rejects it as ``missing_field`` like a stream event, and the
    caller counts it among the rejections. When ``columns.prediction`` is ``None`` every event gets
    ``"prediction": 0`` (see :class:`TableColumns`). No timestamp is set: the decoder's ``kafka_times``
    give the event time.

    >>> events, labels = rows_to_events([{"x": 1.5, "y": 1, "p": 0.7}], TableColumns(prediction="p", label="y"),
    ...                                 model="m", model_version="v1")
    >>> events[0], labels
    (b'{"prediction_id":"baseline-0","model":"m","model_version":"v1","features":{"x":1.5},"prediction":0.7}', [1])
    """
    named = columns.named()
    events: list[bytes] = []
    labels: list[Any] = []
    for i, row in enumerate(rows):
        if columns.features:
            features = {name: _scalar(row.get(name)) for name in columns.features}
        else:
            features = {name: _scalar(value) for name, value in row.items() if name not in named}
        event: dict[str, Any] = {
            "prediction_id": f"baseline-{start_index + i}",
            "model": model,
            "model_version": model_version,
            "features": features,
        }
        if columns.prediction is None:
            event["prediction"] = 0
        else:
            prediction = _scalar(row.get(columns.prediction))
            if prediction is not None:
                event["prediction"] = prediction
        if columns.score_columns:
            scores = {}
            for cls, column in columns.score_columns:
                value = _scalar(row.get(column))
                if isinstance(value, int | float) and not isinstance(value, bool):
                    scores[cls] = value
            if scores:
                event["scores"] = scores
        if columns.segments:
            segments = {name: _segment(row.get(name)) for name in columns.segments}
            segments = {name: value for name, value in segments.items() if value is not None}
            if segments:
                event["segments"] = segments
        events.append(orjson.dumps(event))
        labels.append(None if columns.label is None else _scalar(row.get(columns.label)))
    return events, labels
