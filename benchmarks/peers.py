"""``make peers``: the monitor beside its peers on public data, written to docs/peers.md with a plot.

1. Concept drift on river's generators (:mod:`benchmarks.concept`), beside river's ADWIN, PageHinkley and DDM.
2. NannyML's bundled car-loan and binary-classification datasets: NannyML's CBPE per chunk of 5,000 rows
   against the monitor's estimate (``monitor replay --timeline``) and realized accuracy, and the monitor's
   label-based alerts against the change.

NannyML runs in its own virtual environment (``.peers/nannyml``, made on first use), so it never enters the
project's dependencies; it writes the event files and its CBPE results (:mod:`benchmarks.peer_nannyml`),
and this process replays the files through the monitor.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import concept
from monitor.config import load_config
from monitor.replay import FileSource, replay
from monitor.timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]
NANNYML_VENV = ROOT / ".peers" / "nannyml"
NANNYML_REQUIREMENTS = ["nannyml==0.13.*", "statsmodels"]  # NannyML 0.13 imports statsmodels, undeclared
DATASETS = ("car_loan", "binary")
CHUNK = 5000
LABEL_KINDS = ("concept_drift", "performance", "retrain_recommended", "rollback_recommended")


def nannyml_python() -> Path:
    """NannyML's interpreter, installing it in its own virtual environment the first time."""
    python = NANNYML_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {' '.join(NANNYML_REQUIREMENTS)} into {NANNYML_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(NANNYML_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *NANNYML_REQUIREMENTS], check=True)
    return python


@dataclass
class DatasetOutcome:
    dataset: str
    reference_rows: int
    change: int | None  # first chunk position where realized accuracy fell by more than 0.02
    chunks: list[dict[str, Any]]  # per analysis chunk: positions, ours, band, CBPE, realized
    reference_chunks: list[dict[str, Any]]  # the monitor's timeline over the reference rows
    label_alerts: list[tuple[str, int]]  # (key, position of the prediction at detected_at)
    worst_vs_realized: float
    worst_vs_cbpe: float


def run_dataset(name: str, workdir: Path) -> DatasetOutcome:
    out = workdir / name
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    subprocess.run(
        [str(nannyml_python()), str(ROOT / "benchmarks" / "peer_nannyml.py"), "--dataset", name, "--out", str(out)],
        check=True,
        env=env,
    )
    peer = json.loads((out / "nannyml.json").read_text())
    config = load_config(environ={})
    perf = config.performance
    timeline = Timeline(CHUNK, threshold=perf.threshold, positive=perf.positive_label)
    result = replay(
        config, FileSource(out / "predictions.jsonl", out / "labels.jsonl"), progress=False, timeline=timeline
    )
    rows = {r["first"]: r for r in timeline.rows()}
    times = [json.loads(line)["timestamp"] for line in (out / "predictions.jsonl").open()]
    chunks = []
    for c in peer["chunks"]:
        r = rows[c["first"]]
        chunks.append({**c, "ours": r["estimated_accuracy"], "low": r["estimated_low"], "high": r["estimated_high"],
                       "realized_ours": r["realized_accuracy"]})  # fmt: skip
    reference = [r for first, r in sorted(rows.items()) if first < peer["reference_rows"]]
    series = reference + [rows[c["first"]] for c in peer["chunks"]]
    base = sum(r["realized_accuracy"] for r in reference) / len(reference)
    change = next((r["first"] for r in series if r["realized_accuracy"] < base - 0.02), None)
    alerts = []
    for a in result.alerts:
        if a.status == "firing" and a.kind in LABEL_KINDS:
            t = datetime.fromisoformat(str(a.detected_at).replace("Z", "+00:00")).timestamp()
            alerts.append((a.key, bisect.bisect_right(times, t) - 1))
    return DatasetOutcome(
        dataset=name,
        reference_rows=peer["reference_rows"],
        change=change,
        chunks=chunks,
        reference_chunks=reference,
        label_alerts=alerts,
        worst_vs_realized=max(abs(c["ours"] - c["realized"]) for c in chunks),
        worst_vs_cbpe=max(abs(c["ours"] - c["cbpe"]) for c in chunks),
    )


def dataset_table(o: DatasetOutcome) -> str:
    lines = [
        "| rows | realized | monitor estimate (95% band) | NannyML CBPE (band) | monitor − realized | monitor − CBPE |",
        "|---|---|---|---|---|---|",
    ]
    for c in o.chunks:
        lines.append(
            f"| {c['first']:,}–{c['last']:,} | {c['realized']:.4f} | {c['ours']:.4f} ({c['low']:.4f}–{c['high']:.4f}) "
            f"| {c['cbpe']:.4f} ({c['cbpe_low']:.4f}–{c['cbpe_high']:.4f}) | {c['ours'] - c['realized']:+.4f} "
            f"| {c['ours'] - c['cbpe']:+.4f} |"
        )
    return "\n".join(lines)


def alerts_line(o: DatasetOutcome) -> str:
    if not o.label_alerts:
        return "no label-based alert"
    before = [k for k, p in o.label_alerts if o.change is None or p < o.change]
    shown = ", ".join(f"`{k}` at row {p:,}" for k, p in o.label_alerts)
    return f"{len(o.label_alerts)} label-based alert(s), {len(before)} before the change: {shown}"


def plot(outcomes: list[DatasetOutcome], concept_outcomes: list[concept.Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(outcomes) + 1, figsize=(6 * (len(outcomes) + 1), 4.2))
    for ax, o in zip(axes, outcomes, strict=False):
        mid_ref = [(r["first"] + r["last"]) / 2 for r in o.reference_chunks]
        ax.plot(mid_ref, [r["realized_accuracy"] for r in o.reference_chunks], "k.-", label="realized")
        ax.plot(mid_ref, [r["estimated_accuracy"] for r in o.reference_chunks], "C0.-", label="monitor estimate")
        mid = [(c["first"] + c["last"]) / 2 for c in o.chunks]
        ax.plot(mid, [c["realized"] for c in o.chunks], "k.-")
        ax.plot(mid, [c["ours"] for c in o.chunks], "C0.-")
        ax.fill_between(mid, [c["low"] for c in o.chunks], [c["high"] for c in o.chunks], color="C0", alpha=0.2)
        ax.plot(mid, [c["cbpe"] for c in o.chunks], "C1s--", label="NannyML CBPE", markersize=4)
        ax.axvline(o.reference_rows, color="grey", lw=0.8, ls=":")
        for i, (_key, p) in enumerate(o.label_alerts):
            ax.axvline(p, color="C3", lw=1, label="label-based alert" if i == 0 else None)
        ax.set_title(f"NannyML {o.dataset}: accuracy per {CHUNK:,} rows")
        ax.set_xlabel("prediction")
        ax.legend(fontsize=8, loc="lower left")
    ax = axes[-1]
    abrupt = [c for c in concept_outcomes if "abrupt" in c.scenario and c.labels == 1.0 and c.first_alert is not None]
    x = range(len(abrupt))
    ax.bar([i - 0.2 for i in x], [c.first_alert or 0 for c in abrupt], width=0.4, color="C0", label="monitor")
    ax.bar([i + 0.2 for i in x], [c.adwin or 0 for c in abrupt], width=0.4, color="C2", label="river ADWIN")
    ax.set_xticks(list(x), [c.scenario.replace(" abrupt", "") for c in abrupt], rotation=20, fontsize=8)
    ax.set_ylabel("events from change to first alert")
    ax.set_title("Abrupt concept drift, full labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "peers.md"))
    parser.add_argument("--events", type=int, default=100_000, help="events per river generator stream")
    parser.add_argument("--skip-river", action="store_true", help="only the NannyML datasets")
    args = parser.parse_args(argv)
    out = Path(args.out)
    concept_outcomes: list[concept.Outcome] = []
    if not args.skip_river:
        for s in concept.SCENARIOS:
            for share in (1.0, 0.3):
                o = concept.run(s, n=args.events, change=args.events // 2, label_share=share)
                concept_outcomes.append(o)
                print(concept.table([o]).splitlines()[-1], flush=True)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        datasets = [run_dataset(name, Path(tmp)) for name in DATASETS]
    for o in datasets:
        print(f"{o.dataset}: worst |monitor - realized| {o.worst_vs_realized:.4f}, |monitor - CBPE| "
              f"{o.worst_vs_cbpe:.4f}; change at {o.change}; {alerts_line(o)}")  # fmt: skip
    png = out.with_suffix(".png")
    plot(datasets, concept_outcomes, png)
    parts = [
        "# The monitor beside its peers\n",
        f"Written by `make peers` (`python -m benchmarks.peers`), not part of `make test`. Plot: [{png.name}]({png.name}).\n",
        f"![estimates and detection delays]({png.name})\n",
    ]
    if concept_outcomes:
        parts += [
            "## Concept drift beside river's detectors\n",
            f"River's drift generators, {args.events:,} predictions each, the change at {args.events // 2:,}, a fixed\n"
            "decision tree trained on the first 5,000, labels 200-600 events late (all, or 30%). The monitor runs\n"
            "through `monitor replay` at its default settings; river's ADWIN (delta 0.002), PageHinkley and DDM\n"
            "(defaults) get the same 0/1 error stream in label-arrival order. Delays in events after the change\n"
            "(after the midpoint for gradual changes; negative: before it). False counts are alerts or detections\n"
            "before the change's onset, or anywhere on a stream without a concept change.\n",
            concept.table(concept_outcomes) + "\n",
        ]
    parts += [
        "## Accuracy estimates beside NannyML's CBPE\n",
        "NannyML 0.13's bundled synthetic datasets (`load_synthetic_car_loan_dataset`,\n"
        "`load_synthetic_binary_classification_dataset`): 50,000 reference rows, then 50,000 analysis rows, sent to\n"
        "`monitor replay` as prediction events (the model's score as the prediction) with every label an hour of\n"
        "event time after its prediction. NannyML's CBPE is fitted on the reference rows and estimates the\n"
        f"analysis rows per chunk of {CHUNK:,}; the monitor's estimate for the same rows comes from\n"
        f"`monitor replay --timeline --timeline-every {CHUNK}` at its default settings (its calibration learns\n"
        "from the labels as they arrive and freezes at the confirmed concept change).\n",
    ]
    for o in datasets:
        parts += [
            f"### {o.dataset}\n",
            f"Realized accuracy falls at row {o.change:,}. " if o.change is not None else "",
            f"Monitor: {alerts_line(o)}. Worst chunk: {o.worst_vs_realized:.4f} from realized accuracy, "
            f"{o.worst_vs_cbpe:.4f} from CBPE.\n",
            dataset_table(o) + "\n",
        ]
    out.write_text("\n".join(p for p in parts if p))
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
