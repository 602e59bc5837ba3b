"""`monitor baseline`: the same profile from every table format, a usable file, and an engine that uses it."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score

from monitor.baseline_cmd import build_baseline, profile_table
from monitor.cli import main
from monitor.config import load_config
from monitor.core.baseline import BaselineProfile, ProfileError, ProfileSet
from monitor.core.engine import PartitionEngine
from monitor.errors import ConfigError
from monitor.io.tables import TableColumns

T0 = 1_767_225_600.0
COLUMNS = ["id", "x", "n", "c", "active", "country", "score", "y"]


def _rows(n: int = 3000, seed: int = 0) -> list[dict[str, Any]]:
    """A labelled training table; every 97th row has no score (the decoder rejects it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        score = float(rng.uniform())
        rows.append(
            {
                "id": i,
                "x": float(rng.normal(50, 10)),
                "n": int(rng.integers(0, 7)),
                "c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2])),
                "active": bool(rng.uniform() < 0.3),
                "country": str(rng.choice(["DE", "FR", "US"])),
                "score": None if i % 97 == 5 else score,
                "y": int(rng.uniform() < score),
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else repr(r[c]) if isinstance(r[c], float) else r[c] for c in COLUMNS])
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    return path


WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}
TRAIN_COLUMNS = TableColumns(prediction="score", label="y", segments=("country",), ignore=("id",))


def _profile(path: Path, columns: TableColumns = TRAIN_COLUMNS, **kw: Any) -> BaselineProfile:
    return build_baseline(path, model="m", model_version="v1", columns=columns, progress=False, **kw)


def _comparable(p: BaselineProfile) -> dict[str, Any]:
    plain = p.to_plain()
    del plain["created_at"], plain["source"]
    return plain


# ------------------------------------------------------------------------------------------ (1) formats
def test_csv_jsonl_and_parquet_give_the_same_profile(tmp_path):
    rows = _rows()
    profiles = {fmt: _profile(write(tmp_path / f"train.{fmt}", rows)) for fmt, write in WRITERS.items()}
    p = profiles["csv"]
    kept = [r for r in rows if r["score"] is not None]
    assert p.events == len(kept) == len(rows) - 31
    assert {k: f.type for k, f in p.schema.items()} == {
        "x": "numeric",
        "n": "numeric",
        "c": "categorical",
        "active": "categorical",
        "prediction": "numeric",
    }
    assert p.schema["c"].categories == ["a", "b", "c"] and p.schema["active"].categories == ["false", "true"]
    assert p.schema["n"].minimum == 0 and p.schema["n"].maximum == 6
    x = np.array([r["x"] for r in kept])
    ref = p.streams["x", "", ""].numeric
    assert ref is not None and ref.events == len(kept) and ref.edges.size == 9
    assert ref.edges.tolist() == pytest.approx(np.quantile(x, np.linspace(0, 1, 11)[1:-1]).tolist(), abs=0.1)
    counts = np.bincount(np.searchsorted(ref.edges, x, side="left"), minlength=10)  # right-closed bins
    assert ref.counts.tolist() == counts.tolist() and min(counts) > 250
    assert p.streams["c", "", ""].categories == {c: sum(r["c"] == c for r in kept) for c in "abc"}
    # Accuracy at threshold 0.5 on the rows that have a score: the labels must stay aligned with them.
    y = [r["y"] for r in kept]
    expected = accuracy_score(y, [r["score"] >= 0.5 for r in kept])
    assert p.metrics["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert p.metrics["labelled_events"] == len(kept)
    for fmt in ("jsonl", "parquet"):
        other = profiles[fmt]
        for key, stream in p.streams.items():
            twin = other.streams[key]
            if stream.numeric is not None:
                assert twin.numeric is not None
                assert twin.numeric.edges.tolist() == stream.numeric.edges.tolist(), (fmt, key)
                assert twin.numeric.counts.tolist() == stream.numeric.counts.tolist(), (fmt, key)
        assert _comparable(other) == _comparable(p), fmt


def test_rejected_rows_are_counted_and_a_table_with_none_left_fails(tmp_path):
    rows = _rows(500)
    built = profile_table(
        _write_csv(tmp_path / "t.csv", rows), model="m", model_version="v1", columns=TRAIN_COLUMNS, progress=False
    )
    assert built.rows == 500 and built.rejected == {"missing_field": 6} and built.profile.events == 494
    empty = _write_csv(tmp_path / "none.csv", [{**r, "score": None} for r in rows[:50]])
    with pytest.raises(ProfileError, match=r"all 50 rows were rejected \(missing_field 50.*'prediction'"):
        _profile(empty)


def test_score_columns_give_the_metric_levels_when_there_is_no_prediction_column(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "score"} | {"p1": r["score"] or 0.5} for r in _rows(800)]
    path = _write_jsonl(tmp_path / "t.jsonl", rows)
    p = _profile(path, TableColumns(label="y", scores=("1=p1",), ignore=("id",)))
    assert "prediction" not in p.schema and not any(k[0] == "prediction" for k in p.streams)
    assert p.metrics["accuracy"] == pytest.approx(
        accuracy_score([r["y"] for r in rows], [r["p1"] >= 0.5 for r in rows])
    )


def test_config_gives_the_defaults_and_star_covers_every_version(tmp_path):
    cfg = load_config(environ={}, overrides={"significance": {"bins": 4}, "monitoring": {"segments": ["country"]}})
    path = _write_csv(tmp_path / "t.csv", _rows(2000))
    p = build_baseline(
        path,
        model="m",
        model_version="*",
        columns=TableColumns(prediction="score", ignore=("id",)),
        progress=False,
        config=cfg,
    )
    assert p.streams["x", "", ""].numeric is not None and p.streams["x", "", ""].numeric.edges.size == 3
    assert ("x", "country", "FR") in p.streams
    assert ProfileSet([p]).get("m", "v7") is p and ProfileSet([p]).get("other", "v1") is None


def test_config_segments_the_table_lacks_are_skipped_and_ignored_features_left_out(tmp_path):
    monitoring = {"segments": ["country", "region"], "ignore_features": ["id", "n"]}
    cfg = load_config(environ={}, overrides={"monitoring": monitoring})
    built = profile_table(
        _write_csv(tmp_path / "t.csv", _rows(1500)),
        model="m",
        model_version="v1",
        columns=TableColumns(prediction="score"),
        progress=False,
        config=cfg,
    )
    assert built.skipped_segments == ["region"] and ("c", "country", "US") in built.profile.streams
    assert sorted(built.profile.schema) == ["active", "c", "prediction", "x", "y"]


# ------------------------------------------------------------------------------------------ (2) segments
def test_every_segment_column_gets_its_streams(tmp_path):
    rows = [r | {"tier": "gold" if r["id"] % 3 else "free"} for r in _rows(2000)]
    path = _write_parquet(tmp_path / "t.parquet", rows)
    p = _profile(path, TableColumns(prediction="score", segments=("country", "tier"), ignore=("id",)))
    assert "country" not in p.schema and "tier" not in p.schema  # segments are not features
    for attr, values in (("country", ("DE", "FR", "US")), ("tier", ("gold", "free"))):
        for value in values:
            for feature in ("x", "c", "prediction"):
                assert (feature, attr, value) in p.streams, (feature, attr, value)
    de = [r["x"] for r in rows if r["country"] == "DE" and r["score"] is not None]
    assert p.streams["x", "country", "DE"].events == len(de)
    assert p.streams["c", "tier", "free"].events == sum(1 for r in rows if r["id"] % 3 == 0 and r["score"] is not None)


def test_a_segment_value_named_as_the_overflow_bucket_gets_no_stream_of_its_own(tmp_path):
    """The live streams take a value named "__other__" as their overflow bucket: a profile that learned it as a
    value would give that bucket a reference of those rows alone, and spend a value's slot of the cap on it."""
    rows = [r | {"tier": "__other__" if r["id"] % 3 == 0 else "gold"} for r in _rows(2000)]
    path = _write_parquet(tmp_path / "t.parquet", rows)
    p = _profile(path, TableColumns(prediction="score", segments=("tier",), ignore=("id",)))
    assert ("x", "tier", "gold") in p.streams
    assert not any(attr == "tier" and value == "__other__" for (_f, attr, value) in p.streams)


# ------------------------------------------------------------------------------------------ (3) file
def test_save_and_load_round_trip(tmp_path):
    p = _profile(_write_csv(tmp_path / "t.csv", _rows(1500)))
    p.save(tmp_path / "p.json")
    loaded = BaselineProfile.load(tmp_path / "p.json")
    assert loaded.to_plain() == p.to_plain()
    assert (
        loaded.streams["x", "country", "US"].numeric.counts.tolist()
        == p.streams["x", "country", "US"].numeric.counts.tolist()
    )


def _corrupt(tmp_path: Path, change: Any) -> Path:
    p = _profile(_write_csv(tmp_path / "t.csv", _rows(300)))
    data = p.to_plain()
    change(data)
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(data))
    return path


def _numeric_stream(data: dict[str, Any]) -> int:
    return next(i for i, s in enumerate(data["streams"]) if s["kind"] == "numeric")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(profile_version=99), "profile_version"),
        (lambda d: d.pop("model"), "model"),
        (lambda d: d["streams"][_numeric_stream(d)]["counts"].append(1), "streams[{i}]"),
    ],
)
def test_a_corrupted_profile_names_the_field(tmp_path, change, field):
    path = _corrupt(tmp_path, change)
    i = _numeric_stream(orjson.loads(path.read_bytes()))
    with pytest.raises(ProfileError) as err:
        BaselineProfile.load(path)
    assert f"{path}: {field.format(i=i)}" in str(err.value)
    if field.startswith("streams"):
        assert "counts" in str(err.value)


# ------------------------------------------------------------------------------------------ (4) config
def test_a_missing_profile_file_fails_the_config(tmp_path):
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(f'[baseline]\nprofiles = ["{tmp_path / "nope.json"}"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg, environ={})
    assert err.value.field == "baseline.profiles[0]" and "nope.json" in str(err.value)


# ------------------------------------------------------------------------------------------ (5) engine
def _event(i: int, rng: np.random.Generator, mean: float) -> bytes:
    return orjson.dumps(
        {
            "prediction_id": f"p{i}",
            "model": "m",
            "model_version": "v1",
            "features": {"x": float(rng.normal(mean, 10)), "c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2]))},
            "prediction": float(rng.uniform()),
        }
    )


def _run(engine: PartitionEngine, means: list[float], seed: int, batch: int = 500) -> list[Any]:
    rng = np.random.default_rng(seed)
    alerts = []
    for start in range(0, len(means), batch):
        part = range(start, min(start + batch, len(means)))
        res = engine.process_predictions([_event(i, rng, means[i]) for i in part], [T0 + i * 0.01 for i in part])
        assert not res.rejected
        alerts += res.alerts
        if start == 0:
            test = engine.models["m", "v1"].window_test(("x", "", ""))
            assert test.from_profile and test.reference is not None  # no warm-up on the stream itself
    return alerts


@pytest.fixture(scope="module")
def engine_profile(tmp_path_factory) -> BaselineProfile:
    rng = np.random.default_rng(7)
    rows = [
        {
            "x": float(rng.normal(50, 10)),
            "c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2])),
            "score": float(rng.uniform()),
        }
        for _ in range(20_000)
    ]
    return _profile(
        _write_parquet(tmp_path_factory.mktemp("train") / "train.parquet", rows), TableColumns(prediction="score")
    )


def _engine(profile: BaselineProfile) -> PartitionEngine:
    return PartitionEngine(load_config(environ={}), clock=lambda: T0, profiles=ProfileSet([profile]))


def test_the_engine_tests_against_the_profile_from_the_first_window_and_fires_on_a_shift(engine_profile):
    engine = _engine(engine_profile)
    alerts = _run(engine, [50.0] * 3000 + [58.0] * 9000, seed=1)
    fired = [a for a in alerts if a.status == "firing" and a.kind == "data_drift" and a.subject == "x"]
    assert fired, [(a.kind, a.subject) for a in alerts]
    assert fired[0].detector in ("psi", "adwin", "page_hinkley")
    assert not [a for a in alerts if a.subject == "c" or a.kind in ("schema", "data_quality")]
    # The window test against the profile sees the shift too (whichever detector fired first).
    last = engine.models["m", "v1"].window_test(("x", "", "")).last
    assert last is not None and last.significant and last.psi >= 0.2 and last.baseline["events"] == 20_000


def test_a_stream_that_matches_the_profile_raises_no_input_alert(engine_profile):
    engine = _engine(engine_profile)
    alerts = _run(engine, [50.0] * 20_000, seed=2)
    assert [(a.kind, a.subject) for a in alerts if a.kind in ("data_drift", "schema", "data_quality")] == []
    state = engine.models["m", "v1"]
    x, c = state.window_test(("x", "", "")), state.window_test(("c", "", ""))
    assert x.tests == 20 and x.from_profile and c.from_profile
    assert math.isfinite(x.last.psi) and x.last.psi < 0.05


# ------------------------------------------------------------------------------------------ (6) CLI
def test_cli_writes_a_loadable_profile(tmp_path, capsys):
    data, out = _write_csv(tmp_path / "train.csv", _rows(1200)), tmp_path / "profile.json"
    argv = ["baseline", str(data), "--model", "m", "--model-version", "v1", "--prediction", "score", "--label", "y"]
    assert main([*argv, "--ignore", "id", "--segments", "country", "--no-progress", "--out", str(out)]) == 0
    p = BaselineProfile.load(out)
    assert (p.model, p.model_version, p.events) == ("m", "v1", 1200 - 13)
    assert ("x", "country", "DE") in p.streams and "accuracy" in p.metrics
    printed = capsys.readouterr().out
    assert "profiled 1,187 of 1,200 rows" in printed and "rejected 13 (missing_field 13" in printed
    assert "x numeric" in printed and "c categorical (3 categories)" in printed and "accuracy" in printed


def test_cli_without_no_progress_also_works(tmp_path, capsys):
    data, out = _write_csv(tmp_path / "train.csv", _rows(300)), tmp_path / "profile.json"
    argv = ["baseline", str(data), "--model", "m", "--model-version", "v1", "--prediction", "score", "--label", "y"]
    assert main([*argv, "--out", str(out)]) == 0
    assert BaselineProfile.load(out).events == 300 - 4


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--prediction", "scoer"], "'scoer'"),
        (["--segments", "region"], "'region'"),
        (["--format", "xlsx"], "'xlsx'"),
    ],
)
def test_cli_errors_exit_2_naming_the_problem(tmp_path, capsys, args, named):
    data, out = _write_csv(tmp_path / "train.csv", _rows(50)), tmp_path / "profile.json"
    argv = ["baseline", str(data), "--model", "m", "--model-version", "v1", "--no-progress", "--out", str(out)]
    assert main([*argv, *args]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_cli_missing_file_exits_2(tmp_path, capsys):
    argv = [
        "baseline",
        str(tmp_path / "gone.csv"),
        "--model",
        "m",
        "--model-version",
        "v1",
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 2
    assert "gone.csv does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "calibration",
    [
        {"labelled": [1.0, float("nan")], "positive": [0.0, 0.0]},
        {"labelled": [0.0, 0.0], "positive": [0.0, 0.0]},
        {"labelled": [5.0, 5.0], "positive": [6.0, 1.0]},
        {"labelled": [5.0], "positive": [1.0, 1.0]},
    ],
)
def test_a_profile_with_broken_calibration_counts_is_refused_naming_them(tmp_path, calibration):
    """NaN, no labelled rows, more positives than rows or unequal lengths: one clear error, not a crash later."""
    from monitor.core.baseline import BaselineProfile, ProfileError

    data = {"profile_version": 1, "model": "m", "model_version": "v", "calibration": calibration}
    with pytest.raises(ProfileError, match="calibration"):
        BaselineProfile.from_plain(data, "p.json")
