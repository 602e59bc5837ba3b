"""The reference workload (GUIDE section 7), generated deterministically with numpy.

20 numeric and 4 categorical features, 2 segment attributes (country: 6 values, gender: 2), a binary
classifier's score, serving latency; labels for half of the predictions, delayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

COUNTRIES = ["US", "DE", "IN", "BR", "SG", "JP"]
GENDERS = ["F", "M"]
CATEGORIES = [["mobile", "desktop", "tablet"], ["free", "basic", "pro"], ["a", "b", "c", "d", "e"], ["x", "y"]]
T0 = 1_767_225_600.0


@dataclass
class Workload:
    predictions: list[bytes]
    keys: list[bytes]
    labels: list[bytes]
    label_keys: list[bytes]


def make(
    n: int,
    *,
    seed: int = 0,
    numeric: int = 20,
    categorical: int = 4,
    segment_values: int = 6,
    rate: float = 10_000.0,
    start: float = T0,
    drift: tuple[str, str, float] | None = None,
    label_delay: float = 30.0,
) -> Workload:
    """``n`` predictions (bytes) and labels for half of them, each ``label_delay`` seconds of event time after
    its prediction; ``drift`` = (feature, country, shift in sd)."""
    rng = np.random.default_rng(seed)
    countries = COUNTRIES if segment_values == 6 else [f"c{i}" for i in range(segment_values)]
    country = rng.integers(0, len(countries), n)
    gender = rng.integers(0, 2, n)
    num = rng.normal(0, 1, (n, numeric)) * (1 + np.arange(numeric) % 3) + np.arange(numeric)
    if drift is not None:
        feature, where, shift = drift
        j = int(feature[1:])
        mask = country == countries.index(where)
        num[mask, j] += shift * (1 + j % 3)
    cats = [rng.integers(0, len(CATEGORIES[i % 4]), n) for i in range(categorical)]
    score = 1 / (1 + np.exp(-(num[:, 0] - 0) * 0.5 + 1))
    latency = rng.gamma(2.0, 6.0, n)
    names = [f"x{j}" for j in range(numeric)]
    cat_names = [f"c{j}" for j in range(categorical)]
    preds, keys, labels, label_keys = [], [], [], []
    labelled = rng.random(n) < 0.5
    truth = rng.random(n) < score
    num_list = np.round(num, 4).tolist()
    for i in range(n):
        pid = f"p{seed}-{i}"
        feats: dict[str, object] = dict(zip(names, num_list[i], strict=True))
        for j, cname in enumerate(cat_names):
            feats[cname] = CATEGORIES[j % 4][int(cats[j][i])]
        event = {
            "prediction_id": pid,
            "model": "ref",
            "model_version": "v1",
            "timestamp": start + i / rate,
            "features": feats,
            "prediction": round(float(score[i]), 6),
            "segments": {"country": countries[int(country[i])], "gender": GENDERS[int(gender[i])]},
            "latency_ms": round(float(latency[i]), 3),
        }
        preds.append(orjson.dumps(event))
        keys.append(pid.encode())
        if labelled[i]:
            labels.append(
                orjson.dumps(
                    {"prediction_id": pid, "label": int(truth[i]), "timestamp": start + i / rate + label_delay}
                )
            )
            label_keys.append(pid.encode())
    return Workload(preds, keys, labels, label_keys)


# Shapes of traffic off the reference workload's (benchmarks/run.py, "Off the reference shape"): each changes one
# thing of a base of 10 numeric features and the two segment attributes, to find where the engine falls off a cliff.
SHAPES = {
    "base": "10 numeric features, segments country and gender",
    "nulls": "30% of the feature values null",
    "optional": "each event 12 of 200 optional numeric features",
    "versions": "40 model versions at once",
    "id_feature": "a categorical feature of unique ids besides",
    "mixed_types": "one feature a number or its text at random",
    "wide": "400 numeric features",
}


def off_shape(kind: str, n: int, *, seed: int, start: float = T0, rate: float = 5000.0) -> list[bytes]:
    """``n`` prediction events of one of :data:`SHAPES`, ``rate`` a second of event time from ``start``."""
    if kind not in SHAPES:
        raise ValueError(f"unknown shape {kind!r}: one of {', '.join(SHAPES)}")
    rng = np.random.default_rng(seed)
    width = 400 if kind == "wide" else 200 if kind == "optional" else 10
    x = np.round(rng.normal(size=(n, width)), 4).tolist()
    null = (rng.random((n, width)) < 0.3).tolist() if kind == "nulls" else None
    countries = rng.choice(COUNTRIES, n).tolist()
    genders = rng.choice(GENDERS, n).tolist()
    versions = rng.integers(0, 40, n).tolist() if kind == "versions" else None
    out = []
    for i in range(n):
        row = x[i]
        if kind == "optional":
            features = {f"x{j}": row[j] for j in rng.choice(width, 12, replace=False).tolist()}
        elif null is not None:
            features = {f"x{j}": None if null[i][j] else row[j] for j in range(width)}
        else:
            features = {f"x{j}": row[j] for j in range(width)}
        if kind == "id_feature":
            features["user"] = f"u{rng.integers(10**9)}"
        elif kind == "mixed_types" and i % 2:
            features["x0"] = str(features["x0"])
        event = {
            "prediction_id": f"{kind}-{seed}-{i}",
            "model": "m",
            "model_version": "v1" if versions is None else f"v{versions[i]}",
            "timestamp": start + i / rate,
            "features": features,
            "segments": {"country": countries[i], "gender": genders[i]},
            "prediction": round(float(row[0] > 0) * 0.5 + 0.25, 2),
        }
        out.append(orjson.dumps(event))
    return out
