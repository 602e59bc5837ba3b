"""False alarms across many streams, and detection delays per detector (`make significance`).

Two experiments on the engine itself (decoded batches, no broker: these measure statistics, not speed):

* **False alarms.** A stationary stream of ``events`` predictions with ``features`` numeric features and a
  segment attribute of ``segments`` values: ``features x (segments + 1)`` feature x segment streams plus the
  prediction's. Nothing changes, so every drift alert is false. Reports the alerts raised, the window tests
  run, Benjamini-Hochberg discoveries, the share of rounds with any discovery (at most ``fdr`` when nothing
  changed), what uncorrected per-test testing at the same level would have flagged, and the sequential
  detectors' raw triggers per million stream events.
* **Detection delay.** A mean shift of known size (in standard deviations) in one numeric feature, for all
  traffic or in one segment of ten, and a category-share shift; the delay is counted in events *of the
  affected stream* from the change to each detector's first detection, and to the first alert.

``python -m benchmarks.significance`` writes docs/significance.md; the test suite runs the same functions
(tests/unit/test_significance_experiments.py) and asserts on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import load_config
from monitor.core.engine import PartitionEngine
from monitor.core.events import PredictionBatch
from monitor.core.rules import Alert

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600.0


def _batch(
    start: int,
    features: dict[str, np.ndarray | list[Any]],
    segments: dict[str, list[str]],
    prediction: np.ndarray,
    rate: float = 1000.0,
) -> PredictionBatch:
    """A decoded batch built from columns (what the decoder would produce for these events)."""
    n = prediction.size
    return PredictionBatch(
        index=np.arange(n),
        prediction_id=[f"p{start + i}" for i in range(n)],
        model=["m"] * n,
        model_version=["v1"] * n,
        event_time=T0 + (start + np.arange(n)) / rate,
        prediction=prediction.tolist(),
        features={k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in features.items()},
        segments=segments,
        latency_ms=np.full(n, np.nan),
        scores=[None] * n,
    )


# ------------------------------------------------------------------------------------------ false alarms
@dataclass
class FalseAlarmResult:
    events: int
    streams: int
    seconds: float
    drift_alerts: int
    alerts_by_detector: dict[str, int]
    quality_alerts: int
    window_tests: int
    rounds: int
    discoveries: int
    rounds_with_discoveries: int
    uncorrected: int
    fdr: float
    sequential_triggers: dict[str, int]
    stream_events: int
    shifted: int = 0
    true_alerts: int = 0

    @property
    def false_alerts(self) -> int:
        return self.drift_alerts - self.true_alerts

    @property
    def false_discovery_proportion(self) -> float:
        return self.false_alerts / self.drift_alerts if self.drift_alerts else 0.0

    @property
    def round_error_rate(self) -> float:
        return self.rounds_with_discoveries / self.rounds if self.rounds else 0.0

    def triggers_per_million(self, detector: str) -> float:
        return 1e6 * self.sequential_triggers.get(detector, 0) / self.stream_events if self.stream_events else 0.0


def false_alarms(
    events: int = 1_000_000,
    features: int = 10,
    segments: int = 100,
    batch: int = 5_000,
    seed: int = 0,
    shifted: int = 0,
) -> FalseAlarmResult:
    """Run a stream through one engine with the default detectors, tests and thresholds.

    Stationary unless ``shifted`` > 0: then ``x0`` rises by 1 sd in the first ``shifted`` regions from the
    middle of the stream on, and an alert is true when it names ``x0`` in one of them (or ``x0`` in all
    traffic, which moved a little too); every other alert is false.
    """
    cfg = load_config(
        environ={},
        overrides={
            "monitoring": {"max_segment_values": segments, "max_streams": 50_000},
            "labels": {"max_pending": 1_000},
        },
    )
    eng = PartitionEngine(cfg, clock=lambda: T0)
    rng = np.random.default_rng(seed)
    regions = np.array([f"r{i:03d}" for i in range(segments)], dtype=object)
    alerts: list[Alert] = []
    started = time.perf_counter()
    for start in range(0, events, batch):
        n = min(batch, events - start)
        cols = {f"x{i}": rng.normal(i, 1 + i % 3, n) for i in range(features)}
        region = regions[rng.integers(0, segments, n)]
        if shifted and start >= events // 2:
            cols["x0"] = np.where(np.isin(region, regions[:shifted]), cols["x0"] + 1.0, cols["x0"])
        seg = {"region": region.tolist()}
        alerts += eng.monitor_batch(_batch(start, cols, seg, rng.beta(2, 5, n)))
    alerts += eng.finish()
    seconds = time.perf_counter() - started
    state = eng.models["m", "v1"]
    triggers: Counter[str] = Counter()
    stream_events = 0
    streams = 0
    for _, tracker in state.trackers():
        triggers.update(tracker.view()["detections"])
        stream_events += tracker.count
        streams += 1
    drift = [a for a in alerts if a.kind in ("data_drift", "prediction_drift") and a.status == "firing"]
    changed = {"m/v1/data_drift/x0/all", *(f"m/v1/data_drift/x0/region={r}" for r in regions[:shifted])}
    fdr = eng.model_monitor.fdr
    return FalseAlarmResult(
        events=events,
        streams=streams,
        seconds=seconds,
        drift_alerts=len(drift),
        alerts_by_detector=dict(Counter(a.detector for a in drift)),
        quality_alerts=sum(1 for a in alerts if a.kind in ("schema", "data_quality") and a.status == "firing"),
        window_tests=fdr.tests,
        rounds=fdr.rounds,
        discoveries=fdr.discoveries,
        rounds_with_discoveries=fdr.rounds_with_discoveries,
        uncorrected=fdr.uncorrected,
        fdr=cfg.significance.fdr,
        sequential_triggers=dict(triggers),
        stream_events=stream_events,
        shifted=shifted,
        true_alerts=sum(1 for a in drift if a.key in changed) if shifted else 0,
    )


# ------------------------------------------------------------------------ sequential detectors' thresholds
PH_THRESHOLDS = (10.0, 20.0, 30.0, 50.0)
ADWIN_DELTAS = (0.2, 0.02, 0.002, 0.0002)


def sequential_false_alarm_rates(events: int = 1_000_000, seed: int = 0) -> dict[str, dict[float, float]]:
    """Raw triggers per million stationary standardised values, per threshold: the detectors' false-alarm rate.

    Page-Hinkley with ``page_hinkley_delta`` 0.25 at several thresholds, ADWIN (chunks of 32, as the monitor
    runs it) at several deltas; both restart after a trigger, as in the monitor.
    """
    from monitor.core.detectors import ChunkedADWIN, PageHinkley

    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(0, 1, events), -10, 10)
    out: dict[str, dict[float, float]] = {"page_hinkley": {}, "adwin": {}}
    for threshold in PH_THRESHOLDS:
        ph = PageHinkley(min_instances=30, delta=0.25, threshold=threshold, alpha=1.0)
        out["page_hinkley"][threshold] = 1e6 * len(ph.update_many(z)) / events
    for delta in ADWIN_DELTAS:
        adwin = ChunkedADWIN(delta, 32, 1)
        out["adwin"][delta] = 1e6 * len(adwin.update_many(z)) / events
    return out


# --------------------------------------------------------------------------------------- detection delay
DETECTORS = ("adwin", "page_hinkley", "psi", "js", "ks", "alert")
CATEGORICAL_DETECTORS = ("chi2_window", "psi", "js", "alert")


@dataclass
class Delay:
    scenario: str
    where: str
    size: float
    delays: dict[str, list[float]] = field(default_factory=dict)  # detector -> delay per seed (inf: missed)

    def median(self, detector: str) -> float:
        values = self.delays.get(detector, [])
        return statistics.median(values) if values else float("nan")


def detection_delay(
    kind: str = "numeric",
    size: float = 0.5,
    segment: bool = False,
    seeds: int = 3,
    before: int = 20_000,
    after: int = 40_000,
    batch: int = 100,
) -> Delay:
    """Events of the affected stream from the change to each detector's first detection (median over seeds).

    Numbers: the mean of ``x`` (N(0, 1)) shifts by ``size`` sd. Categories: the share of ``c``'s rarest value
    rises by ``size`` (from 0.2). ``segment``: only in region r3 (one of ten, 10% of traffic).
    """
    where = "region=r3" if segment else "all traffic"
    result = Delay("mean shift" if kind == "numeric" else "share shift", where, size)
    names = DETECTORS if kind == "numeric" else CATEGORICAL_DETECTORS
    for seed in range(seeds):
        for name, value in _one_delay(kind, size, segment, seed, before, after, batch).items():
            result.delays.setdefault(name, []).append(value)
        for name in names:
            result.delays.setdefault(name, [])
    return result


def _one_delay(
    kind: str, size: float, segment: bool, seed: int, before: int, after: int, batch: int
) -> dict[str, float]:
    cfg = load_config(environ={}, overrides={"labels": {"max_pending": 1_000}})
    sig = cfg.significance
    eng = PartitionEngine(cfg, clock=lambda: T0)
    rng = np.random.default_rng(seed)
    regions = np.array([f"r{i}" for i in range(10)], dtype=object)
    cats = np.array(["a", "b", "c"], dtype=object)
    feature = "x" if kind == "numeric" else "c"
    bucket = ("region", "r3") if segment else ("", "")
    key = f"m/v1/data_drift/{feature}/{'region=r3' if segment else 'all'}"
    found: dict[str, float] = {}
    names = DETECTORS if kind == "numeric" else CATEGORICAL_DETECTORS
    change_count: int | None = None
    for start in range(0, before + after, batch):
        n = batch
        region = regions[rng.integers(0, 10, n)]
        x = rng.normal(0, 1, n)
        shares = np.array([0.5, 0.3, 0.2])
        c = cats[rng.choice(3, n, p=shares)]
        if start >= before:
            hit = region == "r3" if segment else np.ones(n, dtype=bool)
            if kind == "numeric":
                x = np.where(hit, x + size, x)
            else:
                moved = np.array([0.5, 0.3, 0.2]) * (1 - (0.2 + size)) / 0.8
                moved[2] = 0.2 + size
                c = np.where(hit, cats[rng.choice(3, n, p=moved)], c)
        alerts = eng.monitor_batch(_batch(start, {"x": x, "c": c.tolist()}, {"region": region.tolist()}, x * 0 + 0.5))
        state = eng.models["m", "v1"]
        tracker = state.tracker((feature, *bucket))
        if tracker is None:
            continue
        if start < before:
            change_count = tracker.count + 0  # stream events before the change (updated every pre-change batch)
            baseline_detections = dict(tracker.view()["detections"])
            continue
        assert change_count is not None
        elapsed = float(tracker.count - change_count)
        for det, c_now in tracker.view()["detections"].items():
            name = "chi2_window" if det == "chi2" else det
            if name not in found and c_now > baseline_detections.get(det, 0):
                found[name] = elapsed
        test = state.window_test((feature, *bucket))
        if test is not None and test.last is not None and test.last.significant and test.last.seq > change_count:
            r = test.last
            for stat in ("psi", "js", "ks"):
                if (
                    stat not in found
                    and (stat != "ks" or r.ks is not None)
                    and r.statistic(stat) >= sig.threshold(stat)
                ):
                    found[stat] = elapsed
        if "alert" not in found and any(a.key == key and a.status == "firing" for a in alerts):
            found["alert"] = elapsed
            found["alert_by_" + next(a.detector for a in alerts if a.key == key)] = elapsed
        if all(name in found for name in names):
            break
    return {name: found.get(name, float("inf")) for name in names} | {
        k: v for k, v in found.items() if k.startswith("alert_by_")
    }


# ----------------------------------------------------------------------------------------------- report
def _fmt(x: float) -> str:
    return "missed" if x == float("inf") else "n/a" if x != x else f"{x:,.0f}"


def report(
    fa: FalseAlarmResult,
    delays: list[Delay],
    command: str,
    mixed: FalseAlarmResult | None = None,
    rates: dict[str, dict[float, float]] | None = None,
) -> str:
    lines = [
        "# False alarms and detection delays",
        "",
        f"Measured with `{command}` on the engine (decoded batches, no broker), default settings:",
        "window tests of 1,000 values against a baseline learned from each stream's first 1,000 values,",
        "10 quantile bins, Benjamini-Hochberg at `significance.fdr` (0.05) over rounds of 1,000 partition",
        "events (`significance.round_events`; a test belongs to the round where its window completed), alert when a",
        "window is a discovery and its PSI is at least 0.2; ADWIN (delta 0.002) and Page-Hinkley (threshold 50",
        "on standardised values) need an effect of 0.5 sd and p < 0.001 besides.",
        "",
        "## False alarms on a stationary stream",
        "",
        "| what | measured |",
        "|---|---|",
        f"| events | {fa.events:,} |",
        f"| feature x segment streams (incl. the prediction's) | {fa.streams:,} |",
        f"| drift alerts (all false) | **{fa.drift_alerts}** {fa.alerts_by_detector or ''} |",
        f"| schema / data-quality alerts (all false) | {fa.quality_alerts} |",
        f"| window tests decided | {fa.window_tests:,} in {fa.rounds:,} rounds |",
        f"| Benjamini-Hochberg discoveries (before the effect-size gate) | {fa.discoveries:,} |",
        f"| rounds with any discovery | {fa.rounds_with_discoveries:,} of {fa.rounds:,} = "
        f"**{fa.round_error_rate:.3f}** (target: at most fdr = {fa.fdr}) |",
        f"| tests with p < {fa.fdr} uncorrected (what per-test testing would flag) | {fa.uncorrected:,} "
        f"({fa.uncorrected / max(fa.window_tests, 1):.3f} of tests) |",
        f"| ADWIN raw triggers per million stream events | {fa.triggers_per_million('adwin'):.2f} |",
        f"| Page-Hinkley raw triggers per million stream events | {fa.triggers_per_million('page_hinkley'):.2f} |",
        f"| run time | {fa.seconds:.0f} s |",
        "",
        "Under no change every discovery is false, so the false-discovery rate equals the chance that a round",
        "has any discovery; Benjamini-Hochberg keeps it at or below `significance.fdr`. The effect-size gate",
        "then removes what is statistically detectable but too small to matter. The sequential detectors'",
        "raw triggers are the false-alarm rate of their thresholds; none becomes an alert without the effect",
        "size and p-value checks.",
        "",
    ]
    if mixed is not None:
        lines += [
            "## False discoveries among real changes",
            "",
            f"The same stream ({mixed.events:,} events, {mixed.streams:,} streams), but from the middle on `x0` rises",
            f"by 1 sd in {mixed.shifted} of the {mixed.streams // 11 - 1} regions. An alert is true when it names `x0` in",
            "one of them (or in all traffic); any other is false.",
            "",
            "| what | measured |",
            "|---|---|",
            f"| drift alerts | {mixed.drift_alerts} {mixed.alerts_by_detector} |",
            f"| true / false | {mixed.true_alerts} / **{mixed.false_alerts}** |",
            f"| false discovery proportion | **{mixed.false_discovery_proportion:.3f}** (fdr = {mixed.fdr}) |",
            f"| Benjamini-Hochberg discoveries | {mixed.discoveries:,} of {mixed.window_tests:,} window tests |",
            "",
        ]
    if rates is not None:
        lines += [
            "## The sequential detectors' thresholds as false-alarm rates",
            "",
            "Raw triggers per million stationary values (standardised, as the monitor feeds them), one stream of",
            "1,000,000 values per setting; the defaults are in bold. Each trigger restarts the detector. A trigger",
            "is not an alert: it still needs the effect size and p-value checks.",
            "",
            "| Page-Hinkley threshold (delta 0.25 sd) | " + " | ".join(f"{t:g}" for t in rates["page_hinkley"]) + " |",
            "|---|" + "---|" * len(rates["page_hinkley"]),
            "| triggers per million values | "
            + " | ".join((f"**{v:.1f}**" if t == 50.0 else f"{v:.1f}") for t, v in rates["page_hinkley"].items())
            + " |",
            "",
            "| ADWIN delta (chunks of 32) | " + " | ".join(f"{d:g}" for d in rates["adwin"]) + " |",
            "|---|" + "---|" * len(rates["adwin"]),
            "| triggers per million values | "
            + " | ".join((f"**{v:.1f}**" if d == 0.002 else f"{v:.1f}") for d, v in rates["adwin"].items())
            + " |",
            "",
        ]
    lines += [
        "## Detection delay",
        "",
        "Median over seeds of the events *of the affected stream* from the change to the first detection",
        "(a segment of 10% of traffic sees a tenth of the events). Window tests detect at the end of the",
        "first round that decides a window full of changed values.",
        "",
    ]
    numeric = [d for d in delays if d.scenario == "mean shift"]
    if numeric:
        lines += ["| mean shift | where | " + " | ".join(DETECTORS) + " |", "|---|---|" + "---|" * len(DETECTORS)]
        for d in numeric:
            cells = " | ".join(_fmt(d.median(n)) for n in DETECTORS)
            lines.append(f"| {d.size:g} sd | {d.where} | {cells} |")
        lines.append("")
    cat = [d for d in delays if d.scenario == "share shift"]
    if cat:
        heads = CATEGORICAL_DETECTORS
        lines += ["| share of one category | where | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
        for d in cat:
            cells = " | ".join(_fmt(d.median(n)) for n in heads)
            lines.append(f"| 0.2 → {0.2 + d.size:g} | {d.where} | {cells} |")
        lines.append("")
    lines += [
        "`chi2_window` is the sequential categorical detector (each window of `categorical_window` values against",
        "the first); `psi`, `js`, `ks` are the baseline window tests (a Benjamini-Hochberg discovery whose",
        "statistic reaches its threshold); `alert` is the first firing alert on the stream's key, whichever",
        "detector raised it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "significance.md"))
    args = parser.parse_args(argv)
    fa = false_alarms(args.events, args.features, args.segments)
    mixed = false_alarms(args.events, args.features, args.segments, seed=1, shifted=args.segments // 10)
    rates = sequential_false_alarm_rates()
    print(
        f"false alarms: {fa.drift_alerts} drift alerts, rounds with discoveries {fa.round_error_rate:.3f}",
        file=sys.stderr,
    )
    delays = [detection_delay("numeric", s, seg, args.seeds) for seg in (False, True) for s in (0.25, 0.5, 1.0)]
    delays += [detection_delay("categorical", s, seg, args.seeds) for seg in (False, True) for s in (0.1, 0.2)]
    command = "make significance"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(fa, delays, command, mixed, rates), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
