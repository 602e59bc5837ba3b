"""Runs inside NannyML's own virtual environment (never imports ``monitor``): one bundled dataset as event files,
and NannyML's CBPE per chunk on it.

Writes to ``--out``: ``predictions.jsonl`` and ``labels.jsonl`` (reference rows, then analysis rows, as the
monitor would read them from Kafka; each label ``--label-delay`` seconds after its prediction) and
``nannyml.json`` (per analysis chunk of ``--chunk-size`` rows: CBPE's estimated accuracy with its bounds,
the realized accuracy, and the chunk's row positions in the event files).

    .peers/nannyml/bin/python benchmarks/peer_nannyml.py --dataset car_loan --out /tmp/car_loan
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml as nml
import pandas as pd

DATASETS: dict[str, dict[str, Any]] = {
    "car_loan": {"load": "load_synthetic_car_loan_dataset", "target": "repaid", "id": "id"},
    "binary": {"load": "load_synthetic_binary_classification_dataset", "target": "work_home_actual", "id": "id"},
}
NOT_FEATURES = {"timestamp", "y_pred_proba", "y_pred", "period"}


def _value(v: Any) -> Any:
    """A JSON scalar for the event contract: numbers stay numbers, the rest become strings, NaN is null."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return None if isinstance(v, float) and math.isnan(v) else v
    if hasattr(v, "item"):
        return _value(v.item())
    return None if v is None else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chunk-size", type=int, default=5000)
    ap.add_argument("--label-delay", type=float, default=3600.0)
    args = ap.parse_args()
    spec = DATASETS[args.dataset]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    reference, analysis, targets = getattr(nml, spec["load"])()
    analysis = analysis.merge(targets, on=spec["id"])
    target, ident = spec["target"], spec["id"]
    features = [c for c in reference.columns if c not in NOT_FEATURES | {target, ident}]

    rows = pd.concat([reference, analysis], ignore_index=True)
    times = pd.to_datetime(rows["timestamp"]).map(lambda t: t.timestamp()).to_numpy()
    with (out / "predictions.jsonl").open("w") as fh:
        for i, rec in enumerate(rows[[*features, "y_pred_proba"]].itertuples(index=False, name=None)):
            event = {
                "prediction_id": f"{args.dataset}-{i}",
                "model": args.dataset,
                "model_version": "v1",
                "timestamp": float(times[i]),
                "features": {f: _value(v) for f, v in zip(features, rec[:-1], strict=True)},
                "prediction": float(rec[-1]),
            }
            fh.write(json.dumps(event) + "\n")
    with (out / "labels.jsonl").open("w") as fh:  # every label, label_delay after its prediction: in time order
        for i, y in enumerate(rows[target].tolist()):
            t = float(times[i]) + args.label_delay
            fh.write(json.dumps({"prediction_id": f"{args.dataset}-{i}", "label": int(y), "timestamp": t}) + "\n")

    estimator = nml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true=target,
        timestamp_column_name="timestamp",
        metrics=["accuracy"],
        chunk_size=args.chunk_size,
    )
    estimator.fit(reference)
    df = estimator.estimate(analysis).filter(period="analysis").to_df()
    chunks = []
    for _, r in df.iterrows():
        start = int(r[("chunk", "start_index")])
        end = int(r[("chunk", "end_index")])
        chunks.append(
            {
                "first": len(reference) + start,
                "last": len(reference) + end,
                "cbpe": float(r[("accuracy", "value")]),
                "cbpe_low": float(r[("accuracy", "lower_confidence_boundary")]),
                "cbpe_high": float(r[("accuracy", "upper_confidence_boundary")]),
                "cbpe_alert": bool(r[("accuracy", "alert")]),
                "realized": float(r[("accuracy", "realized")]),
            }
        )
    summary = {
        "dataset": args.dataset,
        "nannyml": nml.__version__,
        "reference_rows": len(reference),
        "analysis_rows": len(analysis),
        "features": features,
        "chunks": chunks,
    }
    (out / "nannyml.json").write_text(json.dumps(summary, indent=1))
    print(f"{args.dataset}: {len(rows)} events, {len(chunks)} CBPE chunks -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
