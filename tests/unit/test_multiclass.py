"""A multiclass classifier: its metrics against scikit-learn, its concept drift, floors and rollback, through
the engine as events and labels arrive."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn import metrics as skm

from monitor.config import ConfigError, load_config
from monitor.core.engine import PartitionEngine
from monitor.core.label_reading import class_name, infer_task
from monitor.core.metrics import PerformanceWindow, multiclass_metrics
from monitor.core.rules import Alert
from monitor.core.view import build_view
from monitor.simulate import choice_bounds, pick

T0 = 1_767_225_600.0
CLASSES = ["cat", "dog", "bird", "fish", "horse"]


def _sklearn(y: list[str], p: list[str]) -> dict[str, float]:
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    return {"accuracy": skm.accuracy_score(y, p), "macro_precision": precision, "macro_recall": recall,
            "macro_f1": f1}  # fmt: skip


def _codes(names: list[str], vocabulary: dict[str, int]) -> np.ndarray:
    return np.array([vocabulary.setdefault(n, len(vocabulary)) for n in names], dtype=np.float64)


@pytest.mark.parametrize("seed", range(5))
def test_window_and_since_start_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, window = 3000, 1000
    y = [CLASSES[i] for i in rng.integers(0, 5, n)]
    p = [t if rng.random() < 0.6 else CLASSES[int(rng.integers(0, 4))] for t in y]  # "horse" rarely predicted
    vocabulary: dict[str, int] = {}
    yc, pc = _codes(y, vocabulary), _codes(p, vocabulary)
    right = np.array([a == b for a, b in zip(y, p, strict=True)], dtype=np.float64)
    w = PerformanceWindow("multiclass", window=window)
    for start in range(0, n, 700):  # batches that cut across the window's wrap
        w.add(yc[start : start + 700], pc[start : start + 700], right[start : start + 700])
    for got, want in ((w.window_metrics(), _sklearn(y[-window:], p[-window:])), (w.total_metrics(), _sklearn(y, p))):
        assert set(got) == set(want)
        for k, v in want.items():
            assert got[k] == pytest.approx(v, abs=1e-12), k


def test_a_class_never_predicted_and_one_never_labelled_count_as_sklearn_counts_them():
    y, p = ["a", "a", "b", "b"], ["a", "c", "b", "a"]
    vocabulary: dict[str, int] = {}
    yc, pc = _codes(y, vocabulary), _codes(p, vocabulary)
    got = multiclass_metrics(yc, pc, np.array([1.0, 0.0, 1.0, 0.0]))
    for k, v in _sklearn(y, p).items():
        assert got[k] == pytest.approx(v, abs=1e-12), k


def test_an_empty_multiclass_window_has_every_metric_and_each_is_nan():
    w = PerformanceWindow("multiclass", window=5)
    w.add(np.array([]), np.array([]), np.array([]))
    assert set(w.window_metrics()) == set(w.total_metrics()) == {"accuracy", "macro_precision", "macro_recall",
                                                                  "macro_f1"}  # fmt: skip
    assert all(math.isnan(v) for v in (*w.window_metrics().values(), *w.total_metrics().values()))
    with pytest.raises(ValueError):
        w.add(np.array([1.0]), np.array([1.0]))  # no rightness: a multiclass window cannot tell


def test_the_task_is_inferred_from_class_names():
    assert infer_task("cat", "dog") == "multiclass"
    assert infer_task("3", 3) == infer_task(3, "3") == "multiclass"
    assert infer_task(1, 0.8) == "binary" and infer_task(2.5, 3.0) == "regression"
    assert infer_task("cat", 0.8) is None  # a score against a class name: not a pair it can compare
    assert (class_name(3), class_name(3.0), class_name("3"), class_name(3.5)) == ("3", "3", "3", None)


def _engine(**performance: Any) -> PartitionEngine:
    overrides: dict[str, Any] = {"detectors": {"warmup_events": 300}, "performance": performance}
    return PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)


def _traffic(
    eng: PartitionEngine, steps: int, *, accuracy: Any, seed: int = 0, version: str = "v1", start: int = 0,
    classes: list[str] = CLASSES, ids: bool = False,
) -> list[Alert]:  # fmt: skip
    """Batches of 1,000 predictions of ``classes`` (the true class's share skewed), each labelled 30 s later;
    ``accuracy(step)`` is the share the model gets right at that step (a wrong guess is another class). ``ids``:
    the classes go as their numbers 0, 1, ... on both sides."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(2.0, 1.0, len(classes))
    weights /= weights.sum()
    bounds = choice_bounds(tuple(weights.tolist()))  # rng.choice(len(classes), p=weights), drawn faster
    alerts: list[Alert] = []
    for step in range(steps):
        preds, labels = [], []
        for i in range(start + step * 1000, start + (step + 1) * 1000):
            truth = pick(rng, bounds)
            wrong = int((truth + rng.integers(1, len(classes))) % len(classes))
            guess = truth if rng.random() < accuracy(step) else wrong
            t = T0 + i / 100
            preds.append({"prediction_id": f"{version}-{i}", "model": "animals", "model_version": version,
                          "timestamp": t, "features": {"x": float(rng.normal())},
                          "segments": {"region": "north" if rng.random() < 0.5 else "south"},
                          "prediction": guess if ids else classes[guess]})  # fmt: skip
            labels.append({"prediction_id": f"{version}-{i}", "label": truth if ids else classes[truth],
                           "timestamp": t + 30})  # fmt: skip
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    return alerts


def test_a_multiclass_model_that_gets_worse_raises_one_concept_drift_alert_with_its_accuracy():
    eng = _engine()
    alerts = _traffic(eng, 30, accuracy=lambda step: 0.85 if step < 15 else 0.65)
    concept = [a for a in alerts if a.kind == "concept_drift"]
    assert [(a.status, a.subject, a.segment) for a in concept] == [("firing", "accuracy", {})], concept
    a = concept[0]
    assert a.p_value < 1e-6 and a.recommendation == "retrain"
    assert re.search(r"Accuracy of model animals v1 across all traffic fell from 8\d% to 6\d%", a.message), a.message
    assert a.window["start"] >= "2026-01-01T00:02:30"  # after the change (step 15: 150 s of event time)
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "multiclass" and perf.unsupported == 0
    row = build_view(eng).models["animals", "v1"]
    everyone = next(b for b in row.buckets if b.segment == "all")
    assert everyone.task == "multiclass" and everyone.labelled == 30_000
    assert abs(everyone.window_metrics["accuracy"] - 0.65) < 0.05
    assert 0 < everyone.window_metrics["macro_f1"] < 1
    assert {b.segment for b in row.buckets} >= {"region=north", "region=south"}


def test_a_steady_multiclass_model_raises_nothing():
    assert [a for a in _traffic(_engine(), 30, accuracy=lambda step: 0.8, seed=3) if a.kind != "data_drift"] == []


def test_integer_class_ids_count_as_classes_when_the_task_says_so():
    """Class ids 0-4 on both sides look like numbers: under ``auto`` the model is a regression (documented);
    ``performance.task = multiclass`` counts them as classes. A label "3" names the same class as a prediction 3."""
    auto = _engine()
    _traffic(auto, 3, accuracy=lambda step: 0.8, ids=True)
    assert auto.models["animals", "v1"].perf.task == "regression"
    eng = _engine(task="multiclass")
    _traffic(eng, 3, accuracy=lambda step: 0.8, ids=True)
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "multiclass" and perf.unsupported == 0
    assert abs(perf.buckets["", ""].window.window_metrics()["accuracy"] - 0.8) < 0.03
    mixed = _engine()
    _traffic(mixed, 3, accuracy=lambda step: 0.8, classes=[str(k) for k in range(5)])
    assert mixed.models["animals", "v1"].perf.task == "multiclass"  # names on both sides


def test_a_macro_f1_floor_fires_with_its_test():
    eng = _engine(floors={"macro_f1": 0.9, "accuracy": 0.5})
    alerts = [a for a in _traffic(eng, 6, accuracy=lambda step: 0.7) if a.kind == "performance" and not a.segment]
    assert [(a.status, a.subject) for a in alerts] == [("firing", "macro_f1")]
    assert alerts[0].statistic < 0.9 and alerts[0].p_value < 1e-3


def test_classes_past_the_cap_share_one_class_but_accuracy_compares_their_names():
    many = [f"c{k}" for k in range(12)]
    eng = _engine(max_classes=4)
    _traffic(eng, 3, accuracy=lambda step: 0.7, classes=many)
    perf = eng.models["animals", "v1"].perf
    assert perf.classes is not None and len(perf.classes.values) == 4
    window = perf.buckets["", ""].window
    assert abs(window.window_metrics()["accuracy"] - 0.7) < 0.03  # not raised by two overflow names "matching"
    assert window.ring.rows()[:, :2].max() == 4  # the overflow code


def test_a_worse_new_multiclass_version_is_recommended_for_rollback():
    eng = _engine()
    _traffic(eng, 6, accuracy=lambda step: 0.85, version="v1")
    alerts = _traffic(eng, 6, accuracy=lambda step: 0.7, version="v2", start=6000)
    rollback = [a for a in alerts if a.kind == "rollback_recommended"]
    assert [(a.status, a.subject) for a in rollback] == [("firing", "accuracy")]
    assert rollback[0].baseline["accuracy"] > rollback[0].current["accuracy"] + 0.1


def test_the_config_names_multiclass_metrics_and_caps_classes():
    cfg = load_config(environ={}, overrides={"performance": {"task": "multiclass", "floors": {"macro_recall": 0.6}}})
    assert cfg.performance.task == "multiclass" and cfg.performance.max_classes == 100
    with pytest.raises(ConfigError, match=r"performance\.max_classes"):
        load_config(environ={}, overrides={"performance": {"max_classes": 0}})
    with pytest.raises(ConfigError, match="macro_recal"):
        load_config(environ={}, overrides={"performance": {"floors": {"macro_recal": 0.6}}})


def test_a_restored_multiclass_engine_goes_on_as_the_one_that_never_stopped():
    eng = _engine()
    _traffic(eng, 4, accuracy=lambda step: 0.8, seed=7)
    twin_of = PartitionEngine.restore(eng.config, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0)
    later = lambda step: 0.6  # noqa: E731
    a = _traffic(eng, 20, accuracy=later, seed=8, start=4000)
    b = _traffic(twin_of, 20, accuracy=later, seed=8, start=4000)
    assert [x.key for x in a] == [x.key for x in b] and any(x.kind == "concept_drift" for x in a)
    one, two = eng.models["animals", "v1"].perf, twin_of.models["animals", "v1"].perf
    assert one.classes is not None and two.classes is not None and one.classes.values == two.classes.values
    for bucket in one.buckets:
        w1, w2 = one.buckets[bucket].window, two.buckets[bucket].window
        assert w1.window_metrics() == w2.window_metrics() and w1.total_metrics() == w2.total_metrics()


def _pairs(eng: PartitionEngine, pairs: list[tuple[Any, Any]], *, start: int = 0) -> None:
    """One batch of predictions and one of their labels: (label, prediction) per row; a label that is a dict
    is the label event's extra fields instead (outcomes, say)."""
    preds, labels = [], []
    for i, (label, prediction) in enumerate(pairs, start):
        preds.append({"prediction_id": f"q{i}", "model": "m", "timestamp": T0 + i, "features": {"x": 1.0},
                      "prediction": prediction})  # fmt: skip
        extra = label if isinstance(label, dict) else {"label": label}
        labels.append({"prediction_id": f"q{i}", "timestamp": T0 + i + 5, **extra})
    eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds))
    eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels))


def _switched(rows: list[tuple[Any, Any]], first: int, task: str) -> PerformanceWindow:
    """The first ``first`` rows in one batch read as binary, the rest in a second batch make the model ``task``
    with nothing left out: its all-traffic window."""
    eng = _engine()
    _pairs(eng, rows[:first])
    assert eng.models["m", "unknown"].perf.task == "binary"
    _pairs(eng, rows[first:], start=first)
    perf = eng.models["m", "unknown"].perf
    assert perf.task == task and perf.unsupported == 0
    return perf.buckets["", ""].window


def test_a_batch_whose_first_rows_carry_outcomes_only_is_learned_with_its_class_names():
    """Rows read before the task was known (outcomes, no label) were not given class names, so the batch's
    names and rows fell out of step and the engine raised IndexError."""
    eng = _engine()
    _pairs(eng, [({"outcomes": {"revenue": 1.0}}, "cat"), ({"label": 2.5, "outcomes": {"revenue": 2.0}}, "cat"),
                 ("dog", "cat"), ("cat", "cat")])  # fmt: skip
    perf = eng.models["m", "unknown"].perf
    assert perf.task == "multiclass" and perf.unsupported == 0
    assert perf.buckets["", ""].window.window_metrics()["accuracy"] == 0.5  # the two rows with classes


def test_classes_whose_first_pair_reads_as_binary_become_multiclass_when_another_class_comes():
    """Classes "0" to "4": a first pair ("1", "0") read as binary for good, and every label of the other
    classes was left out as unsupported."""
    rng = np.random.default_rng(2)
    rows: list[tuple[Any, Any]] = [("1", "0"), ("0", "0")]
    for _ in range(1000):
        truth = str(int(rng.integers(0, 5)))
        rows.append((truth, truth if rng.random() < 0.8 else str(int(rng.integers(0, 5)))))
    window = _switched(rows, 2, "multiclass")
    assert window.count == 1000  # afresh from the batch that named another class
    assert window.window_metrics()["accuracy"] == pytest.approx(np.mean([a == b for a, b in rows[2:]]))


def test_a_binary_model_stays_binary_on_a_stray_label():
    """A model that gives scores, names its classes as booleans or as "1" / "0" with scores, or whose first
    labels are many, is binary whatever a later label says: the stray label is counted unsupported. (A label
    alone switched such a model to multiclass, and with boolean predictions its accuracy then read 0.)"""
    for first in ([(1, 0.9), (0, 0.2)], [(1, True), (0, False)], [(1, "1"), (0, "0")], [(1, 1.0), (0, 0.0)]):
        eng = _engine()
        _pairs(eng, [*first, ("unknown", first[0][1]), (3, first[1][1])])
        perf = eng.models["m", "unknown"].perf
        assert perf.task == "binary" and perf.unsupported == 2, first
    named = _engine()
    _pairs(named, [("yes", "yes"), ("no", "yes")] * 300)
    _pairs(named, [("maybe", "maybe")], start=600)  # past its first reference_labels labels
    perf = named.models["m", "unknown"].perf
    assert perf.task == "binary" and perf.unsupported == 1


def test_the_task_a_model_settles_on_does_not_depend_on_how_its_labels_are_batched():
    """A fraction at label 400 with reference_labels = 300: past the first labels, whatever the batches (the
    count was taken at the start of each batch, so batches of 1,000 switched and batches of 100 did not)."""
    rng = np.random.default_rng(1)
    rows = [(float(rng.integers(0, 2)), float(rng.random())) for _ in range(400)]
    rows += [(float(rng.random()), float(rng.random())) for _ in range(600)]
    for size in (100, 1000):
        eng = _engine(reference_labels=300)
        for k in range(0, 1000, size):
            _pairs(eng, rows[k : k + size], start=k)
        assert eng.models["m", "unknown"].perf.task == "binary", size


def test_a_macro_average_floor_at_a_healthy_level_fires_at_its_rate_and_a_real_breach_fires():
    """Twenty classes of Zipf-like frequency, windows of 500 with macro F1 about 0.745: a macro average on a
    tenth of the window runs low (rare classes on a few labels), so testing the blocks' own values fired on
    about 4% of healthy windows at p < 0.001 (15 of 400 with the floor at the level). The jackknife tests the
    whole window's value."""
    from monitor.core.floor_tests import floor_p_value

    rng = np.random.default_rng(5)
    k, n = 20, 500
    weights = 1.0 / np.arange(1, k + 1)
    weights /= weights.sum()
    fired = {"at level": 0, "breach": 0}
    for _ in range(200):
        for case, right in (("at level", 0.8), ("breach", 0.65)):
            y = rng.choice(k, n, p=weights).astype(np.float64)
            hit = rng.random(n) < right
            pred = np.where(hit, y, rng.integers(0, k, n)).astype(np.float64)
            w = PerformanceWindow("multiclass", window=n)
            w.add(y, pred, (pred == y).astype(np.float64))
            value = w.window_metrics()["macro_f1"]
            if value < 0.745:
                p = floor_p_value(w, "macro_f1", value, 0.745)
                fired[case] += p is not None and p < 0.001
    assert fired["at level"] <= 2 and fired["breach"] >= 150, fired


def _loans(eng: PartitionEngine, steps: int, approve: Any, *, seed: int = 0, ids: bool = False) -> list[Alert]:
    """A three-class loan model (approve, review, deny; ``ids``: as 1, 2 and 0); ``approve(step, gender)`` is a
    group's approval rate, the rest split between review and deny; labels for half the predictions."""
    named = {"approve": 1, "review": 2, "deny": 0} if ids else {}
    rng = np.random.default_rng(seed)
    alerts: list[Alert] = []
    for step in range(steps):
        preds, labels = [], []
        for i in range(step * 1000, (step + 1) * 1000):
            gender = "F" if rng.random() < 0.5 else "M"
            r = rng.random()
            guess = "approve" if r < approve(step, gender) else ("review" if r < 0.8 else "deny")
            preds.append({"prediction_id": f"l{i}", "model": "loans", "timestamp": T0 + i / 100,
                          "features": {"x": float(rng.normal())}, "segments": {"gender": gender},
                          "prediction": named.get(guess, guess)})  # fmt: skip
            if rng.random() < 0.5:
                truth = guess if rng.random() < 0.8 else str(rng.choice(["approve", "review", "deny"]))
                labels.append(
                    {"prediction_id": f"l{i}", "label": named.get(truth, truth), "timestamp": T0 + i / 100 + 5}
                )
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    return alerts


def test_fairness_of_a_multiclass_model_is_one_vs_rest_for_its_favourable_class():
    """Named classes with ``positive_label = "approve"``; and class ids 0-2 with the default "1", where the
    selection rate was taken among the predictions that read as binary (0 and 1) only: 0.3 / (0.3 + 0.2) for
    the group after its drop, not its share of approvals."""
    for ids, performance in ((False, {"positive_label": "approve"}), (True, {"task": "multiclass"})):
        overrides = {"detectors": {"warmup_events": 300}, "fairness": {"attributes": ["gender"]},
                     "performance": performance}  # fmt: skip
        eng = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
        alerts = _loans(eng, 30, lambda step, g: 0.3 if (step >= 15 and g == "F") else 0.5, ids=ids)
        dp = [a for a in alerts if a.kind == "fairness" and a.subject == "demographic_parity" and a.status == "firing"]
        assert [a.segment for a in dp] == [{"gender": "F"}], ids
        assert dp[0].window["start"] >= "2026-01-01T00:02:30"  # after the change (step 15)
        assert abs(dp[0].current["rate"] - 0.3) < 0.06 and abs(dp[0].baseline["rate"] - 0.5) < 0.06, dp[0].current
        steady = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
        assert [a for a in _loans(steady, 30, lambda step, g: 0.5, seed=1, ids=ids) if a.kind == "fairness"] == []


def test_a_multiclass_model_without_its_favourable_class_has_no_fairness_gaps():
    """positive_label left at "1", which names none of the classes: nothing to compare groups on."""
    overrides = {"detectors": {"warmup_events": 300}, "fairness": {"attributes": ["gender"]}}
    eng = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
    alerts = _loans(eng, 20, lambda step, g: 0.3 if (step >= 10 and g == "F") else 0.5)
    assert [a for a in alerts if a.kind == "fairness"] == []
    fairness = eng.setup.fairness(eng.models["loans", "unknown"])
    assert fairness is not None and all(g.n == 0 and g.labelled.size == 0 for g in fairness.groups.values())


def test_a_target_in_the_unit_interval_whose_first_label_is_zero_is_a_regression():
    """A regression onto [0, 1] (a share, a rate) with many exact zeros: a first pair (0.0, 0.12) read as binary
    for good, and every fractional label was left out as unsupported. A scored binary classifier keeps its task
    on a stray whole-number label."""
    rng = np.random.default_rng(4)
    truth = np.where(rng.random(600) < 0.3, 0.0, rng.random(600))
    truth[0] = 0.0
    rows = [(float(t), float(np.clip(t + rng.normal(0, 0.05), 0, 1))) for t in truth]
    window = _switched(rows, 1, "regression")
    assert window.count == 599  # afresh from the batch that showed a fraction
    errors = [abs(p - t) for t, p in rows[1:]]
    assert window.window_metrics()["mae"] == pytest.approx(np.mean(errors))
    scored = _engine()
    _pairs(scored, [(1, 0.9), (0, 0.2), (3, 0.7)])
    assert scored.models["m", "unknown"].perf.task == "binary"


def test_a_count_whose_first_pair_reads_as_binary_is_a_regression_once_a_prediction_leaves_the_unit_interval():
    rng = np.random.default_rng(3)
    truth = rng.poisson(1.5, 1000).astype(float)
    rows = [(0.0, 0.3)] + [(float(t), float(t + rng.normal(0, 0.5))) for t in truth]
    eng = _engine()
    _pairs(eng, rows)
    perf = eng.models["m", "unknown"].perf
    assert perf.task == "regression" and perf.unsupported == 0 and perf.buckets["", ""].window.count == 1001


def _fairness_without_labels(prediction: Any) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Ten batches of 1,000 predictions of a model with fairness on gender and no label yet; ``prediction(i,
    gender, rng)`` gives row i's prediction. The fairness alerts that fired, as (subject, segment items)."""
    overrides = {"detectors": {"warmup_events": 300}, "fairness": {"attributes": ["gender"]}}
    eng = PartitionEngine(load_config(environ={}, overrides=overrides), clock=lambda: T0)
    rng = np.random.default_rng(0)
    alerts: list[Alert] = []
    for step in range(10):
        preds = []
        for i in range(step * 1000, (step + 1) * 1000):
            g = "F" if rng.random() < 0.5 else "M"
            preds.append({"prediction_id": f"p{i}", "model": "loans", "timestamp": T0 + i / 100,
                          "features": {"x": 1.0}, "segments": {"gender": g},
                          "prediction": prediction(i, g, rng)})  # fmt: skip
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
    return {(a.subject, tuple(a.segment.items())) for a in alerts if a.kind == "fairness" and a.status == "firing"}


def test_fairness_of_class_ids_before_any_label_is_one_vs_rest_too():
    """Classes "0", "1" and "2", favourable "1" (the default): both groups get "1" 30% of the time, F mostly
    "2" otherwise and M mostly "0". Before the first label the task was unknown and the binary reading left
    "2" out, so F's selection rate read 0.74 against M's 0.31 and a gap fired. A real gap still fires."""
    mixes = {
        "equal": {"F": (0.1, 0.3, 0.6), "M": (0.6, 0.3, 0.1)},
        "gap": {"F": (0.3, 0.1, 0.6), "M": (0.6, 0.3, 0.1)},
    }
    for case, mix in mixes.items():
        fired = _fairness_without_labels(lambda i, g, rng, mix=mix: str(rng.choice(3, p=mix[g])))
        if case == "equal":
            assert fired == set(), fired
        else:
            assert ("demographic_parity", (("gender", "F"),)) in fired, fired


def test_class_names_seen_before_the_first_label_keep_the_one_vs_rest_reading():
    """Before the first label, a batch whose predictions all read as binary ("yes" reads as the positive "1")
    must not switch a model that has named other classes back to the binary reading."""
    from monitor.core.performance import ModelPerformance

    cfg = load_config(environ={}, overrides={})
    perf = ModelPerformance("m", "v1", cfg.performance, cfg.alerts, cfg.detectors.default)
    assert perf.favourable(["yes", "no"]) is None  # binary so far: the binary reading
    first = perf.favourable(["yes", "maybe", "1"])
    assert first is not None and first[0].tolist() == [0.0, 0.0, 1.0]
    again = perf.favourable(["yes", "no"])
    assert again is not None and again[0].tolist() == [0.0, 0.0]


def test_an_estimate_alert_opened_before_the_first_label_resolves_once_labels_show_a_regression():
    """Predictions in [0, 1] are taken for a classifier's scores until the first label: when they drift
    towards 0.5 the score-based estimate fires. Labels that show a regression stop the estimate, and its open
    alert stayed open for good (nothing judged it again)."""
    rng = np.random.default_rng(0)
    eng = _engine()
    alerts: list[Alert] = []
    for step in range(24):
        preds, labels = [], []
        for i in range(step * 1000, (step + 1) * 1000):
            t = float(rng.random())
            score = t if step < 8 else 0.5 + (t - 0.5) * 0.2  # less confident from step 8
            preds.append({"prediction_id": f"r{i}", "model": "m", "timestamp": T0 + i / 100,
                          "features": {"x": float(rng.normal())}, "prediction": score})  # fmt: skip
            if step >= 16:  # labels from step 16: a target in [0, 1], a regression's
                labels.append({"prediction_id": f"r{i}", "label": float(rng.random()), "timestamp": T0 + i / 100 + 1})
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    estimate = [(a.status, a.key) for a in alerts if a.subject == "estimated_accuracy"]
    assert estimate == [
        ("firing", "m/unknown/performance/estimated_accuracy/all"),
        ("resolved", "m/unknown/performance/estimated_accuracy/all"),
    ], estimate
    resolved = next(a for a in alerts if a.subject == "estimated_accuracy" and a.status == "resolved")
    assert "no longer applies: its labels show a regression model" in resolved.message
    assert eng.models["m", "unknown"].perf.task == "regression"


def test_alerts_opened_while_a_model_read_as_binary_resolve_once_it_is_a_regression():
    """An accuracy floor breached on the first labels of a [0, 1] target whose first label was 0 (read as
    binary): after the switch to a regression, nothing judged the accuracy key again and it stayed open."""
    rng = np.random.default_rng(2)
    eng = _engine(floors={"accuracy": 0.9}, min_labels=50, reference_labels=2000)
    alerts: list[Alert] = []
    for step in range(12):
        preds, labels = [], []
        for i in range(step * 500, (step + 1) * 500):
            binary_phase = step < 2
            truth = float(rng.integers(0, 2)) if binary_phase else float(rng.random())
            preds.append({"prediction_id": f"w{i}", "model": "m", "timestamp": T0 + i / 10,
                          "features": {"x": 1.0}, "prediction": float(rng.random())})  # fmt: skip
            labels.append({"prediction_id": f"w{i}", "label": truth, "timestamp": T0 + i / 10 + 1})
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    accuracy = [(a.status, a.key) for a in alerts if a.subject == "accuracy"]
    assert accuracy == [
        ("firing", "m/unknown/performance/accuracy/all"),
        ("resolved", "m/unknown/performance/accuracy/all"),
    ]
    resolved = next(a for a in alerts if a.subject == "accuracy" and a.status == "resolved")
    assert "no longer applies: its labels show a regression model" in resolved.message
    assert eng.models["m", "unknown"].perf.task == "regression"


def test_a_stray_prediction_before_the_first_label_keeps_a_binary_models_fairness():
    """Predictions "yes" and "no" (read as binary: "yes" is the positive class) and one odd "maybe": the class
    reading took over for good and, "1" never being named, the groups were no longer compared."""

    def answer(i: int, g: str, rng: np.random.Generator) -> str:
        said = "yes" if rng.random() < (0.3 if g == "F" else 0.6) else "no"
        return "maybe" if i == 5 else said

    assert "demographic_parity" in {subject for subject, _ in _fairness_without_labels(answer)}


def _confident(
    eng: PartitionEngine, steps: int, *, chance: Any, labelled: Any, seed: int = 0, ids: bool = False,
    shape: Any = lambda step: "full",
) -> tuple[list[Alert], list[float]]:  # fmt: skip
    """Batches of 1,000 predictions of a four-class model that sends its probabilities (``scores``). Each
    prediction is right with a chance drawn from ``chance(step)`` (low, high); the model says the square root of
    that chance for its class, an over-confident model, and shares the rest among the other three. Labels come
    30 s later for the steps where ``labelled(step)``. ``shape(step)``: "full" scores, "none", or "top" (the
    three most likely classes'). Returns the alerts and each step's mean chance of being right, the accuracy an
    estimate should find."""
    rng = np.random.default_rng(seed)
    names = [str(k) for k in range(4)] if ids else CLASSES[:4]
    alerts: list[Alert] = []
    accuracy = []
    for step in range(steps):
        low, high = chance(step)
        q = rng.uniform(low, high, 1000)
        right = rng.random(1000) < q
        truth = rng.integers(0, 4, 1000)
        guess = np.where(right, truth, (truth + rng.integers(1, 4, 1000)) % 4)
        accuracy.append(float(q.mean()))
        preds, labels = [], []
        for k in range(1000):
            i = step * 1000 + k
            confidence = float(np.sqrt(q[k]))
            scores = {name: (1 - confidence) / 3 for name in names}
            scores[names[guess[k]]] = confidence
            if shape(step) == "top":  # the predicted class and two others
                scores = {names[(guess[k] + d) % 4]: scores[names[(guess[k] + d) % 4]] for d in range(3)}
            t = T0 + i / 100
            preds.append({"prediction_id": f"p{i}", "model": "animals", "model_version": "v1", "timestamp": t,
                          "features": {"x": float(rng.normal())}, "segments": {"region": "north"},
                          "prediction": int(guess[k]) if ids else names[guess[k]],
                          **({} if shape(step) == "none" else {"scores": scores})})  # fmt: skip
            labels.append({"prediction_id": f"p{i}", "label": int(truth[k]) if ids else names[truth[k]],
                           "timestamp": t + 30})  # fmt: skip
        alerts += eng.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds)).alerts
        if labelled(step):
            alerts += eng.process_labels([orjson.dumps(x) for x in labels], [0.0] * len(labels)).alerts
    return alerts, accuracy


def test_a_multiclass_models_estimate_is_its_calibrated_confidence_and_tracks_its_accuracy_without_labels():
    """CBPE for multiclass accuracy: the model's confidences, calibrated on its first labels, estimate its
    accuracy where no label has come; its raw confidences (over-confident) would not."""
    eng = _engine(calibration_labels=4000, window=3000)
    _, accuracy = _confident(eng, 12, chance=lambda step: (0.3, 1.0) if step < 8 else (0.3, 0.7),
                             labelled=lambda step: step < 6)  # fmt: skip
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "multiclass" and perf.confidences and perf.calibration.fitted
    estimate, low, high, n = perf.estimated(("", ""))
    truth = float(np.mean(accuracy[-3:]))  # the window: the last 3,000 predictions, none of them labelled
    assert n == 3000 and abs(estimate - truth) < 0.025 and low < estimate < high, (estimate, truth)
    raw = float(np.mean(perf.buckets["", ""].estimate.rows()[:, 0]))
    assert raw - truth > 0.1  # what an estimate without the calibration would have said
    assert perf.trustworthy(("", "")) is True
    everyone = next(b for b in build_view(eng).models["animals", "v1"].buckets if b.segment == "all")
    assert everyone.task == "multiclass"


def test_a_multiclass_model_that_gets_less_sure_raises_its_estimate_alert_before_any_label_shows_it():
    eng = _engine(calibration_labels=3000, window=2000)
    alerts, _ = _confident(eng, 16, chance=lambda step: (0.5, 1.0) if step < 10 else (0.25, 0.6),
                           labelled=lambda step: step < 5)  # fmt: skip
    estimated = [a for a in alerts if a.subject == "estimated_accuracy"]
    assert [(a.status, a.kind, a.segment) for a in estimated] == [("firing", "performance", {})], estimated
    assert estimated[0].detector == "cbpe" and estimated[0].window["end"] > "2026-01-01T00:01:40"  # after step 10
    assert not [a for a in alerts if a.kind == "concept_drift"]  # no label came after the change


def test_a_steady_multiclass_model_with_scores_raises_no_estimate_alert():
    for seed in range(3):
        alerts, _ = _confident(_engine(calibration_labels=3000, window=2000), 14, chance=lambda step: (0.4, 1.0),
                               labelled=lambda step: step < 5, seed=seed)  # fmt: skip
        assert [a for a in alerts if a.kind != "data_drift"] == [], seed


def test_class_ids_with_their_probabilities_are_a_multiclass_model_read_by_its_confidence():
    """Class ids 0-3 with a probability for each: multiclass under ``auto`` from the first predictions (without
    probabilities they read as a regression, see above), each prediction's score its own class's probability,
    not class 1's; a binary model's two-class scores keep the positive class's."""
    eng = _engine()
    _confident(eng, 2, chance=lambda step: (0.5, 1.0), labelled=lambda step: False, ids=True)
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "multiclass" and perf.confidences
    scores = perf.buckets["", ""].estimate.rows()[:, 0]
    assert scores.min() >= np.sqrt(0.5) - 1e-9  # every one the predicted class's, none a 1/6 share
    binary = _engine(positive_label="yes")
    preds = [{"prediction_id": f"b{i}", "model": "churn", "model_version": "v1", "timestamp": T0 + i,
              "features": {"x": 1.0}, "prediction": "yes" if i % 3 else "no",
              "scores": {"yes": 0.8 if i % 3 else 0.3, "no": 0.2 if i % 3 else 0.7}} for i in range(400)]  # fmt: skip
    binary.process_predictions([orjson.dumps(p) for p in preds], [0.0] * len(preds))
    bperf = binary.models["churn", "v1"].perf
    assert not bperf.confidences and bperf.task is None
    assert sorted(set(bperf.buckets["", ""].estimate.rows()[:, 0].tolist())) == [0.3, 0.8]  # P("yes")


def test_batches_without_scores_or_with_the_likeliest_classes_alone_neither_skew_the_calibration_nor_the_estimate():
    """A model that leaves its scores out of some batches, or sends its three likeliest classes' alone: rows
    without a confidence stay out of the calibration and the estimate, and a cut-down dict still gives one."""
    eng = _engine(calibration_labels=3000, window=2000)
    alerts, accuracy = _confident(
        eng,
        18,
        chance=lambda step: (0.3, 1.0) if step < 12 else (0.3, 0.7),
        labelled=lambda step: step < 9,
        shape=lambda step: ("full", "none", "top")[step % 3],
    )
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "multiclass" and perf.confidences
    assert perf.calibration.fit_n.sum() == 6000  # the labelled rows with a confidence: 6 of the 9 labelled steps
    calibrated = perf.calibration.probability(np.array([0.75, 0.85, 0.95]))
    assert np.abs(calibrated - np.array([0.75, 0.85, 0.95]) ** 2).max() < 0.07, calibrated  # P(right) = c²
    estimate = perf.estimated(("", ""))[0]
    assert abs(estimate - float(np.mean(accuracy[-3:]))) < 0.03, estimate  # steps 15 and 17 (16 had no scores)
    assert [a.status for a in alerts if a.subject == "estimated_accuracy"] == ["firing"]


def test_one_event_naming_three_classes_does_not_turn_a_settled_binary_model():
    eng = _engine(positive_label="yes", window=2000)
    rng = np.random.default_rng(1)

    def event(i: int, scores: dict[str, float]) -> bytes:
        top = max(scores, key=scores.__getitem__)
        return orjson.dumps({"prediction_id": f"p{i}", "model": "churn", "model_version": "v1", "timestamp": T0 + i,
                             "features": {"x": 1.0}, "prediction": top, "scores": scores})  # fmt: skip

    def steady(start: int, n: int) -> None:
        p = rng.random(n).tolist()
        eng.process_predictions([event(start + i, {"yes": p[i], "no": 1 - p[i]}) for i in range(n)], [0.0] * n)
        labels = [orjson.dumps({"prediction_id": f"p{start + i}", "label": "yes" if rng.random() < p[i] else "no",
                                "timestamp": T0 + start + i + 1}) for i in range(n)]  # fmt: skip
        eng.process_labels(labels, [0.0] * n)

    steady(0, 3000)  # past performance.reference_labels
    eng.process_predictions([event(3000, {"yes": 0.5, "no": 0.3, "maybe": 0.2})], [0.0])
    steady(3001, 2000)
    perf = eng.models["churn", "v1"].perf
    assert perf.task == "binary" and not perf.confidences
    estimate, _, _, n = perf.estimated(("", ""))
    assert n == 2000 and 0.6 < estimate < 0.9  # still its positive-class scores


def test_class_ids_whose_labels_came_before_their_scores_stay_a_regression():
    """Scores make class ids multiclass only while the task may still change: a regression stays one (its
    alerts and metrics would otherwise be left behind)."""
    eng = _engine()
    _confident(eng, 4, chance=lambda step: (0.5, 1.0), labelled=lambda step: True, ids=True,
               shape=lambda step: "none" if step < 2 else "full")  # fmt: skip
    perf = eng.models["animals", "v1"].perf
    assert perf.task == "regression" and not perf.confidences


def test_a_restored_multiclass_model_does_not_take_its_profiles_binary_calibration():
    from monitor.core.baseline import BaselineProfile, ProfileSet

    counts = np.full(100, 50.0)
    profile = BaselineProfile("animals", "v1", 5000, {}, {},
                              calibration={"labelled": counts.tolist(), "positive": (counts / 2).tolist()})  # fmt: skip
    profiles = ProfileSet([profile])
    config = load_config(environ={}, overrides={"detectors": {"warmup_events": 300}})
    eng = PartitionEngine(config, clock=lambda: T0, profiles=profiles)
    _confident(eng, 2, chance=lambda step: (0.5, 1.0), labelled=lambda step: False)
    twin = PartitionEngine.restore(config, orjson.loads(orjson.dumps(eng.snapshot())), clock=lambda: T0,
                                   profiles=profiles)  # fmt: skip
    for e in (eng, twin):
        perf = e.models["animals", "v1"].perf
        assert perf.confidences and perf.calibration.fit_n.sum() == 0 and not perf.calibration.fitted


@pytest.mark.parametrize("labels_first", [0, 300])
@pytest.mark.parametrize("kind", ["score", "yes/no"])
def test_stray_events_naming_three_classes_turn_no_binary_model_whose_task_may_still_change(kind, labels_first):
    """Before the first label, or within the first reference_labels: a few events with a third class in their
    scores among a binary model's (a score model's rounded 1.0 names the class "1") are not evidence enough."""
    eng = _engine(positive_label="yes" if kind == "yes/no" else "1")
    rng = np.random.default_rng(2)
    n = 0

    def send(count: int, labelled: bool, stray: int = 0) -> None:
        nonlocal n
        p = np.round(rng.random(count), 1).tolist()  # rounded: some are exactly 0.0 or 1.0
        events = []
        for i in range(count):
            top = ("yes" if p[i] >= 0.5 else "no") if kind == "yes/no" else p[i]
            scores = {"yes": p[i], "no": 1 - p[i]} if kind == "yes/no" else {"1": p[i], "0": 1 - p[i]}
            if i < stray:
                scores["maybe"] = 0.0
            events.append(orjson.dumps({"prediction_id": f"p{n + i}", "model": "churn", "model_version": "v1",
                                        "timestamp": T0 + n + i, "features": {"x": 1.0}, "prediction": top,
                                        "scores": scores}))  # fmt: skip
        eng.process_predictions(events, [0.0] * count)
        if labelled:
            hit = (rng.random(count) < np.array(p)).tolist()
            truth = [("yes" if h else "no") if kind == "yes/no" else int(h) for h in hit]
            labels = [orjson.dumps({"prediction_id": f"p{n + i}", "label": truth[i], "timestamp": T0 + n + i + 1})
                      for i in range(count)]  # fmt: skip
            eng.process_labels(labels, [0.0] * count)
        n += count

    if labels_first:
        send(labels_first, True)
    for _ in range(3):
        send(10, False, stray=3)  # three of ten with a third class, in batches of their own
    send(2000, True)
    perf = eng.models["churn", "v1"].perf
    assert perf.task == "binary" and not perf.confidences and perf.unsupported == 0
    assert perf.estimated(("", ""))[3] == 2000  # its positive-class scores, as before


def _ids_with_scores(batch: int, *, unscored: float = 0.0) -> PartitionEngine:
    """Class ids 0-3 sent as numbers with their four probabilities, each label 0.05 s after its prediction
    (so labels come before the 20th prediction), fed in batches of ``batch`` events. ``unscored``: the share
    of predictions sent without scores, the first one among them."""
    eng = _engine(calibration_labels=1000, window=1000)
    rng = np.random.default_rng(4)
    events: list[tuple[float, str, bytes]] = []
    for i in range(3000):
        q = float(rng.uniform(0.5, 1.0) if i < 2000 else rng.uniform(0.3, 0.6))
        truth = int(rng.integers(0, 4))
        guess = truth if rng.random() < q else int((truth + rng.integers(1, 4)) % 4)
        scores = {str(k): float(1 - np.sqrt(q)) / 3 for k in range(4)}
        scores[str(guess)] = float(np.sqrt(q))
        sent = i > 0 and rng.random() >= unscored if unscored else True
        t = T0 + i / 100
        events.append((t, "p", orjson.dumps({"prediction_id": f"p{i}", "model": "animals", "model_version": "v1",
                                             "timestamp": t, "features": {"x": 1.0}, "prediction": guess,
                                             **({"scores": scores} if sent else {})})))  # fmt: skip
        if i < 1500:
            events.append(
                (t + 0.05, "l", orjson.dumps({"prediction_id": f"p{i}", "label": truth, "timestamp": t + 0.05}))
            )
    events.sort(key=lambda e: e[0])
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        for kind in ("p", "l"):
            values = [v for _, k, v in chunk if k == kind]
            if values:
                process = eng.process_predictions if kind == "p" else eng.process_labels
                process(values, [0.0] * len(values))
    return eng


def test_class_ids_with_their_probabilities_are_multiclass_at_any_batch_size_even_when_labels_come_at_once():
    """A label for an early prediction (before the 20th) settled class ids as a regression; now the pair's
    confidence settles them multiclass, and the estimate's warm-up starts at the same prediction whatever the
    batching."""
    views = []
    for batch in (1000, 7, 1):
        perf = _ids_with_scores(batch).models["animals", "v1"].perf
        assert perf.task == "multiclass" and perf.confidences and perf.unsupported == 0, batch
        b = perf.buckets["", ""]
        views.append((b.baseline_scores.tolist(), perf.calibration.fit_n.sum(), b.labelled))
    assert views[0] == views[1] == views[2]


@pytest.mark.parametrize("unscored", [0.0, 0.3])
def test_class_ids_whose_first_prediction_came_without_scores_are_multiclass_at_any_batch_size(unscored):
    """The first labelled pair (whole numbers, no confidence) reads as a regression; the confidences that
    follow make it multiclass within its first reference_labels, and the warm-up, kept by confidence
    meanwhile, is the same whatever the batching (also with 30% of predictions unscored)."""
    views = []
    for batch in (1000, 1):
        perf = _ids_with_scores(batch, unscored=max(unscored, 1e-9)).models["animals", "v1"].perf
        assert perf.task == "multiclass" and perf.confidences, batch
        views.append(perf.buckets["", ""].baseline_scores.tolist())
    assert views[0] == views[1]


def test_a_stray_event_labelled_first_leaves_a_yes_no_model_binary():
    eng = _engine(positive_label="yes", window=2000)
    rng = np.random.default_rng(6)
    for i in range(1500):  # one event at a time, each labelled before the next comes
        p = float(rng.random())
        scores = {"yes": p, "no": 1 - p, **({"unsure": 0.0} if i == 0 else {})}
        event = {"prediction_id": f"p{i}", "model": "churn", "model_version": "v1", "timestamp": T0 + i,
                 "features": {"x": 1.0}, "prediction": "yes" if p >= 0.5 else "no", "scores": scores}  # fmt: skip
        eng.process_predictions([orjson.dumps(event)], [0.0])
        label = {"prediction_id": f"p{i}", "label": "yes" if rng.random() < p else "no", "timestamp": T0 + i + 0.5}
        eng.process_labels([orjson.dumps(label)], [0.0])
    perf = eng.models["churn", "v1"].perf
    assert perf.task == "binary" and not perf.confidences and perf.estimated(("", ""))[3] == 1500


def test_a_count_regression_with_a_stray_event_among_its_first_stays_a_regression_one_event_at_a_time():
    eng = _engine()
    rng = np.random.default_rng(8)
    for i in range(300):
        count = int(rng.integers(0, 10))
        event = {"prediction_id": f"p{i}", "model": "orders", "model_version": "v1", "timestamp": T0 + i,
                 "features": {"x": 1.0}, "prediction": count,
                 **({"scores": {str(count): 0.5, "98": 0.3, "99": 0.2}} if i == 1 else {})}  # fmt: skip
        eng.process_predictions([orjson.dumps(event)], [0.0])
        label = {"prediction_id": f"p{i}", "label": count + int(rng.integers(-1, 2)), "timestamp": T0 + i + 0.5}
        eng.process_labels([orjson.dumps(label)], [0.0])
    perf = eng.models["orders", "v1"].perf
    assert perf.task == "regression" and not perf.confidences and perf.unsupported == 0
