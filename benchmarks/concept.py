"""Concept drift on river's synthetic drift generators, through ``monitor replay``, beside plain river detectors.

Each stream is scored by a fixed scikit-learn model trained on the stream before its change, as a deployed
model is; the labels come ``label_delay`` events late (uniform), all of them or a share. The monitor sees
prediction and label events exactly as on Kafka (JSON lines through :func:`monitor.replay.replay`). Beside it,
river's ADWIN, PageHinkley and DDM are fed the same 0/1 error stream in label-arrival order. Delays are in
events (one prediction per second of event time) from the change to the first alert (or detection).

``python -m benchmarks.concept`` prints the table; ``make peers`` writes it into docs/peers.md; the test suite
runs a small version (tests/unit/test_concept_streams.py).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.config import load_config
from monitor.replay import FileSource, replay

T0 = 1_767_225_600.0


@dataclass(frozen=True)
class Scenario:
    name: str
    generator: str  # agrawal | stagger | sea | hyperplane
    before: int  # classification function / variant before the change
    after: int | None  # None: no change (control)
    width: int = 1  # 1: abrupt; more: gradual over that many events
    covariate: bool = False  # shift the inputs only (the concept stays)


SCENARIOS = (
    Scenario("agrawal F0->F2 abrupt", "agrawal", 0, 2),
    Scenario("agrawal F0->F2 gradual", "agrawal", 0, 2, width=5000),
    Scenario("stagger F0->F1 abrupt", "stagger", 0, 1),
    Scenario("sea 8->9.5 abrupt", "sea", 0, 3),
    Scenario("sea 8->9.5 gradual", "sea", 0, 3, width=5000),
    Scenario("hyperplane abrupt", "hyperplane", 0, 1),
    Scenario("agrawal control", "agrawal", 0, None),
    Scenario("sea control", "sea", 0, None),
    Scenario("sea covariate shift only", "sea", 0, None, covariate=True),
)


def _stream(gen: str, variant: int, seed: int) -> Any:
    from river.datasets import synth

    if gen == "agrawal":
        return synth.Agrawal(classification_function=variant, seed=seed)
    if gen == "stagger":
        return synth.STAGGER(classification_function=variant, seed=seed)
    if gen == "sea":
        return synth.SEA(variant=variant, seed=seed)
    if gen == "hyperplane":  # a different random hyperplane per variant
        return synth.Hyperplane(seed=seed + 97 * variant, n_features=10, noise_percentage=0.05)
    raise ValueError(gen)


def rows(s: Scenario, n: int, change: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features and labels of ``n`` events with the change at ``change``: abrupt, or gradual as river's
    ConceptDriftStream mixes two concepts (the share of the new one a sigmoid over ``width`` events)."""
    before = iter(_stream(s.generator, s.before, seed))
    after = iter(_stream(s.generator, s.after, seed + 1)) if s.after is not None else before
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    names: list[str] = []
    keys: list[Any] = []
    for i in range(n):
        z = float(np.clip(-4.0 * (i - change) / s.width, -50, 50))
        use_new = s.after is not None and (i >= change if s.width <= 1 else rng.random() < 1 / (1 + np.exp(z)))
        x, label = next(after if use_new else before)
        while s.covariate and i >= change and float(next(iter(x.values()))) < 5.0:
            x, label = next(before)  # the inputs move (fewer low values), the rule stays: resample the same concept
        if not names:
            keys = list(x)
            names = [str(k) for k in keys]
        xs.append([float(x[k]) for k in keys])
        ys.append(int(label))
    return np.array(xs), np.array(ys), names


def model_scores(X: np.ndarray, y: np.ndarray, train: int, seed: int) -> np.ndarray:
    """A fixed model trained on the first ``train`` events: the positive-class score of every event."""
    from sklearn.tree import DecisionTreeClassifier

    clf = DecisionTreeClassifier(max_depth=8, min_samples_leaf=20, random_state=seed).fit(X[:train], y[:train])
    proba = clf.predict_proba(X)
    return proba[:, list(clf.classes_).index(1)] if 1 in clf.classes_ else np.zeros(len(X))


@dataclass
class Outcome:
    scenario: str
    labels: float
    error_before: float
    error_after: float
    alerts_before: int
    first_alert: int | None  # events after the change to the first concept_drift alert
    adwin: int | None
    page_hinkley: int | None
    ddm: int | None
    detector_false: dict[str, int]


def run(s: Scenario, *, n: int = 100_000, change: int = 50_000, label_share: float = 1.0, seed: int = 1,
        delay: tuple[int, int] = (200, 600), workdir: Path | None = None) -> Outcome:  # fmt: skip
    X, y, names = rows(s, n, change, seed)
    score = model_scores(X, y, min(5000, change), seed)
    rng = np.random.default_rng(seed)
    labelled = rng.random(n) < label_share
    arrival = np.arange(n) + rng.integers(delay[0], delay[1] + 1, n)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="concept-"))
    try:
        return _replayed(s, X, y, names, score, labelled, arrival, change, label_share, tmp)
    finally:
        if workdir is None:  # the event files take tens of MB a run: a test suite run would fill /tmp
            shutil.rmtree(tmp, ignore_errors=True)


def _replayed(
    s: Scenario, X: np.ndarray, y: np.ndarray, names: list[str], score: np.ndarray, labelled: np.ndarray,
    arrival: np.ndarray, change: int, label_share: float, tmp: Path,
) -> Outcome:  # fmt: skip
    """Write the events to ``tmp``, replay them, and time the alerts and river's detectors on the same errors."""
    n = len(y)
    err = ((score >= 0.5).astype(int) != y).astype(float)
    preds, labs = tmp / f"{s.generator}-p.jsonl", tmp / f"{s.generator}-l.jsonl"
    with preds.open("wb") as fh:
        for i in range(n):
            event = {"prediction_id": f"p{i}", "model": s.generator, "model_version": "v1", "timestamp": T0 + i,
                     "features": dict(zip(names, X[i].tolist(), strict=True)), "prediction": float(score[i])}  # fmt: skip
            fh.write(orjson.dumps(event) + b"\n")
    order = np.argsort(arrival, kind="stable")
    order = order[labelled[order]]
    with labs.open("wb") as fh:
        for i in order.tolist():
            fh.write(orjson.dumps({"prediction_id": f"p{i}", "label": int(y[i]), "timestamp": T0 + float(arrival[i])}))
            fh.write(b"\n")
    config = load_config(environ={})
    result = replay(config, FileSource(preds, labs), progress=False)
    fired = [a for a in result.alerts if a.status == "firing" and a.kind in ("concept_drift", "performance")
             and a.subject != "estimated_accuracy"]  # fmt: skip
    times = [datetime.fromisoformat(str(a.detected_at).replace("Z", "+00:00")).timestamp() - T0 for a in fired]
    onset = change - (s.width if s.width > 1 else 0)  # a gradual change begins before its midpoint
    after = [t - change for t in times if t >= onset]
    detector_at: dict[str, int | None] = {}
    false: dict[str, int] = {}
    for name, det in _river_detectors().items():
        first, wrong = None, 0
        for i in order.tolist():
            det.update(err[i])
            if det.drift_detected:
                t = int(arrival[i])
                if s.after is None or t < onset:
                    wrong += 1
                elif first is None:
                    first = t - change
        detector_at[name], false[name] = first, wrong
    return Outcome(
        scenario=s.name,
        labels=label_share,
        error_before=float(err[:change].mean()),
        error_after=float(err[change:].mean()),
        alerts_before=sum(1 for t in times if t < onset or s.after is None),
        first_alert=int(min(after)) if after and s.after is not None else None,
        adwin=detector_at["adwin"],
        page_hinkley=detector_at["page_hinkley"],
        ddm=detector_at["ddm"],
        detector_false=false,
    )


def _river_detectors() -> dict[str, Any]:
    from river import drift

    return {"adwin": drift.ADWIN(delta=0.002), "page_hinkley": drift.PageHinkley(), "ddm": drift.binary.DDM()}


def table(outcomes: list[Outcome]) -> str:
    def show(v: int | None) -> str:
        return "missed" if v is None else f"{v:,}"

    lines = [
        "| stream | labels | error before → after | monitor: false alerts | monitor: first alert | ADWIN | PageHinkley | DDM | river false detections (ADWIN / PH / DDM) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        f = o.detector_false
        lines.append(
            f"| {o.scenario} | {o.labels:.0%} | {o.error_before:.2f} → {o.error_after:.2f} | {o.alerts_before} | "
            f"{show(o.first_alert) if 'control' not in o.scenario and 'covariate' not in o.scenario else '—'} | "
            f"{show(o.adwin)} | {show(o.page_hinkley)} | {show(o.ddm)} | "
            f"{f['adwin']} / {f['page_hinkley']} / {f['ddm']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    parser.add_argument("--out", default="", help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    outcomes = []
    for s in SCENARIOS:
        if args.only and args.only not in s.name:
            continue
        for share in (1.0, 0.3):
            o = run(s, n=args.events, change=args.events // 2, label_share=share)
            outcomes.append(o)
            print(table([o]).splitlines()[-1], flush=True)
    print(table(outcomes))
    if args.out:
        Path(args.out).write_text(
            "# Concept drift beside river's detectors\n\n"
            "Written by `make peers` (`python -m benchmarks.concept`, see its docstring for the setup): river's\n"
            f"drift generators, {args.events:,} predictions each, the change at {args.events // 2:,}, a fixed\n"
            "decision tree trained on the first 5,000, labels 200-600 events late (all, or 30%). The monitor runs\n"
            "through `monitor replay` at its default settings; river's ADWIN (delta 0.002), PageHinkley and DDM\n"
            "(defaults) get the same 0/1 error stream in label-arrival order. Delays in events after the change\n"
            "(after the midpoint for gradual changes; negative: before it). False counts are alerts or detections\n"
            "before the change's onset, or anywhere on a stream without a concept change.\n\n" + table(outcomes) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
