"""``monitor replay --timeline``: per chunk of predictions, the calibrated estimate beside realized accuracy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.replay import FileSource, replay
from monitor.timeline import Timeline

N = 20_000
EVERY = 5000


def _squared(s: np.ndarray) -> np.ndarray:
    return s**2


def _model(truth: Callable[..., np.ndarray] = _squared) -> tuple[np.ndarray, np.ndarray]:
    """Scores and 0/1 labels of N predictions."""
    rng = np.random.default_rng(7)
    s = rng.random(N)
    return s, (rng.random(N) < truth(s)).astype(int)


def _write(
    tmp: Path, *, label_share: float = 1.0, bad_line_at: int | None = None, truth: Callable[..., np.ndarray] = _squared
) -> tuple[Path, Path, np.ndarray]:
    """A miscalibrated model (by default P(y=1 | score s) = s²: the class flips at 0.71, not at 0.5); labels 30 s
    late.

    Returns the files and, per valid prediction, whether it is right (NaN where no label is sent)."""
    s, y = _model(truth)
    rng = np.random.default_rng(8)
    sent = rng.random(N) < label_share
    preds, labels = [], []
    for i in range(N):
        if bad_line_at is not None and i == bad_line_at:
            preds.append(b'{"prediction_id": 5}')  # rejected: it still takes a position in the input
        t = 1_700_000_000 + i / 10
        event = {"prediction_id": f"p{i}", "model": "m", "timestamp": t, "features": {"x": float(s[i])}}
        preds.append(orjson.dumps({**event, "prediction": float(s[i])}))
        if sent[i]:
            labels.append((t + 30, orjson.dumps({"prediction_id": f"p{i}", "label": int(y[i]), "timestamp": t + 30})))
    labels.sort(key=lambda x: x[0])
    p, lab = tmp / "preds.jsonl", tmp / "labels.jsonl"
    p.write_bytes(b"\n".join(preds) + b"\n")
    lab.write_bytes(b"\n".join(v for _, v in labels) + b"\n")
    right = np.where(sent, ((s >= 0.5) == (y == 1)).astype(float), np.nan)
    return p, lab, right


def _rows(preds: Path, labels: Path, **kw: int) -> list[dict]:
    config = load_config(environ={})
    timeline = Timeline(EVERY)
    replay(config, FileSource(preds, labels), progress=False, timeline=timeline, **kw)
    return timeline.rows()


def test_chunks_hold_realized_accuracy_and_a_calibrated_estimate(tmp_path):
    preds, labels, right = _write(tmp_path)
    rows = _rows(preds, labels)
    scores, y = _model()
    assert [(r["first"], r["last"], r["predictions"], r["labelled"]) for r in rows] == [
        (k * EVERY, (k + 1) * EVERY - 1, EVERY, EVERY) for k in range(N // EVERY)
    ]
    for k, r in enumerate(rows):
        truth = float(np.nanmean(right[k * EVERY : (k + 1) * EVERY]))
        assert r["realized_accuracy"] == pytest.approx(truth)
        assert r["estimated_low"] < r["estimated_accuracy"] < r["estimated_high"]
        assert r["estimated_high"] - r["estimated_low"] < 0.03  # a 95% band for 5,000 predictions
        chunk = slice(k * EVERY, (k + 1) * EVERY)
        predicted, actual = scores[chunk] >= 0.5, y[chunk] == 1
        tp = float((predicted & actual).sum())
        if k == 0:  # no label came before the first chunk: raw scores, which overstate precision here
            assert abs(r["estimated_precision"] - tp / predicted.sum()) > 0.1
            continue
        # later chunks: calibrated on the labels of the chunks before them, never on their own
        assert abs(r["estimated_accuracy"] - truth) < 0.02, r
        assert abs(r["estimated_precision"] - tp / predicted.sum()) < 0.03
        assert abs(r["estimated_recall"] - tp / actual.sum()) < 0.03
        assert abs(r["estimated_f1"] - 2 * tp / (predicted.sum() + actual.sum())) < 0.03
        assert r["start"] == pytest.approx(1_700_000_000 + k * EVERY / 10)
        assert r["end"] == pytest.approx(1_700_000_000 + ((k + 1) * EVERY - 1) / 10)


def test_positions_count_rejected_lines_and_do_not_depend_on_batching(tmp_path):
    preds, labels, _ = _write(tmp_path, label_share=0.3, bad_line_at=100)
    by_batch = [_rows(preds, labels, batch_size=b) for b in (1000, 7)]
    assert by_batch[0] == by_batch[1]
    rows = by_batch[0]
    assert (rows[0]["first"], rows[0]["last"]) == (0, EVERY)  # line 101 was rejected: one position skipped
    assert rows[-1]["last"] == N  # N predictions and one rejected line: positions 0..N
    assert all(abs(r["labelled"] - 0.3 * EVERY) < 200 for r in rows)


def test_cli_writes_one_line_per_chunk(tmp_path, capsys):
    preds, labels, _ = _write(tmp_path)
    out = tmp_path / "timeline.jsonl"
    args = ["replay", "--predictions", str(preds), "--labels", str(labels), "--no-progress"]
    assert main([*args, "--timeline", str(out), "--timeline-every", "8000"]) == 0
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["predictions"] for r in rows] == [8000, 8000, 4000]
    assert set(rows[0]) == {
        "model",
        "model_version",
        "first",
        "last",
        "start",
        "end",
        "predictions",
        "estimated_accuracy",
        "estimated_low",
        "estimated_high",
        "realized_accuracy",
        "labelled",
        "estimated_precision",
        "estimated_recall",
        "estimated_f1",
    }
    assert "wrote 3 timeline rows" in capsys.readouterr().out


def test_cli_refuses_an_empty_chunk(tmp_path, capsys):
    preds, _, _ = _write(tmp_path)
    assert main(["replay", "--predictions", str(preds), "--timeline", "x", "--timeline-every", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--timeline-every" in err[0]


def test_a_labelled_baseline_profile_calibrates_the_estimate_from_the_first_prediction(tmp_path, capsys):
    """No live label yet, so only the profile's labelled rows can correct the over-confident scores."""

    def shrunk(s: np.ndarray) -> np.ndarray:  # over-confident: accuracy 0.625 where raw scores say 0.75
        return 0.25 + 0.5 * s

    rng = np.random.default_rng(11)
    s = rng.random(30_000)
    y = (rng.random(30_000) < shrunk(s)).astype(int)
    table = tmp_path / "validation.csv"
    table.write_text("x,score,label\n" + "".join(f"{v},{v},{c}\n" for v, c in zip(s, y, strict=True)))
    profile = tmp_path / "profile.json"
    args = ["baseline", str(table), "--model", "m", "--model-version", "unknown", "--out", str(profile)]
    assert main([*args, "--prediction", "score", "--label", "label", "--no-progress"]) == 0
    assert len(orjson.loads(profile.read_bytes())["calibration"]["labelled"]) == 100

    preds, _, right = _write(tmp_path, truth=shrunk)  # no labels replayed: the estimate stands on the profile
    rows = {}
    for with_profile in (False, True):
        config = load_config(environ={}, overrides={"baseline": {"profiles": [str(profile)]}} if with_profile else {})
        timeline = Timeline(EVERY)
        replay(config, FileSource(preds), progress=False, timeline=timeline)
        rows[with_profile] = timeline.rows()
    truth = float(np.nanmean(right[:EVERY]))
    assert abs(rows[True][0]["estimated_accuracy"] - truth) < 0.015
    assert abs(rows[False][0]["estimated_accuracy"] - truth) > 0.05  # raw scores: the bias the profile removes
    assert all(r["realized_accuracy"] is None and r["labelled"] == 0 for r in rows[True])


def test_a_multiclass_models_chunks_estimate_its_accuracy_from_its_calibrated_confidence(tmp_path):
    """Four classes and their probabilities: the model says the square root of its chance of being right
    (over-confident). Each chunk after the first is estimated from the calibration of the labels before it."""
    rng = np.random.default_rng(3)
    classes = ["cat", "dog", "bird", "fish"]
    q = rng.uniform(0.3, 1.0, N)
    right = rng.random(N) < q
    truth = rng.integers(0, 4, N)
    guess = np.where(right, truth, (truth + rng.integers(1, 4, N)) % 4)
    preds, labels = [], []
    for i in range(N):
        t = 1_700_000_000 + i / 10
        scores = dict.fromkeys(classes, (1 - float(np.sqrt(q[i]))) / 3)
        scores[classes[guess[i]]] = float(np.sqrt(q[i]))
        preds.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": t, "features": {"x": 1.0},
                                   "prediction": classes[guess[i]], "scores": scores}))  # fmt: skip
        labels.append(orjson.dumps({"prediction_id": f"p{i}", "label": classes[truth[i]], "timestamp": t + 30}))
    p, lab = tmp_path / "preds.jsonl", tmp_path / "labels.jsonl"
    p.write_bytes(b"\n".join(preds) + b"\n")
    lab.write_bytes(b"\n".join(labels) + b"\n")
    rows = _rows(p, lab)
    assert len(rows) == N // EVERY
    for k, r in enumerate(rows):
        chunk = slice(k * EVERY, (k + 1) * EVERY)
        assert r["realized_accuracy"] == pytest.approx(float(right[chunk].mean())) and r["labelled"] == EVERY
        assert r["estimated_precision"] is None  # accuracy only, for a multiclass model
        if k == 0:  # no label before it: the raw confidences, over-confident
            assert r["estimated_accuracy"] - float(q[chunk].mean()) > 0.1
        else:
            assert abs(r["estimated_accuracy"] - float(q[chunk].mean())) < 0.02, r


def test_a_stray_event_naming_three_classes_leaves_a_binary_models_chunks_as_they_were(tmp_path):
    """The timeline reads a model as the monitor's estimate did: one event with three classes in its scores
    among a binary model's changes no chunk."""
    preds, labels, _ = _write(tmp_path)
    clean = _rows(preds, labels)
    lines = preds.read_bytes().splitlines()
    event = orjson.loads(lines[15_000])
    lines[15_000] = orjson.dumps({**event, "scores": {"1": event["prediction"], "0": 0.0, "2": 0.0}})
    preds.write_bytes(b"\n".join(lines) + b"\n")
    assert _rows(preds, labels) == clean


def _events(tmp: Path, prediction: Callable[[int], object], label: Callable[[int], object]) -> tuple[Path, Path]:
    preds, labels = [], []
    for i in range(N):
        t = 1_700_000_000 + i / 10
        preds.append(orjson.dumps({"prediction_id": f"p{i}", "model": "m", "timestamp": t, "features": {"x": 1.0},
                                   "prediction": prediction(i)}))  # fmt: skip
        labels.append(orjson.dumps({"prediction_id": f"p{i}", "label": label(i), "timestamp": t + 30}))
    p, lab = tmp / "preds.jsonl", tmp / "labels.jsonl"
    p.write_bytes(b"\n".join(preds) + b"\n")
    lab.write_bytes(b"\n".join(labels) + b"\n")
    return p, lab


def test_a_multiclass_model_without_scores_has_its_realized_accuracy_by_class_name_and_no_estimate(tmp_path):
    """Its chunks read every labelled prediction as unlabelled (null, 0): the binary reading of class names."""
    rng = np.random.default_rng(4)
    classes = ["cat", "dog", "bird"]
    truth, right = rng.integers(0, 3, N), rng.random(N) < 0.7
    guess = np.where(right, truth, (truth + 1) % 3)
    rows = _rows(*_events(tmp_path, lambda i: classes[guess[i]], lambda i: classes[truth[i]]))
    for k, r in enumerate(rows):
        chunk = slice(k * EVERY, (k + 1) * EVERY)
        assert r["realized_accuracy"] == pytest.approx(float(right[chunk].mean())) and r["labelled"] == EVERY
        assert r["estimated_accuracy"] is None and r["estimated_f1"] is None


def test_a_regressions_chunks_estimate_no_accuracy(tmp_path):
    """The few of its values that fell in [0, 1] read as scores gave a regression accuracy, precision, recall and
    F1 estimates (seen from outside); the monitor gives it none."""
    rng = np.random.default_rng(5)
    y = rng.normal(3.0, 2.0, N)
    rows = _rows(*_events(tmp_path, lambda i: round(float(y[i] + rng.normal(0, 0.5)), 4), lambda i: float(y[i])))
    assert rows and all(
        r["estimated_accuracy"] is None and r["estimated_f1"] is None and r["realized_accuracy"] is None for r in rows
    )
