"""Fairness across groups of protected attributes, continuously, with confidence intervals.

Per group (each value of a protected segment attribute, or of a configured cross of attributes):
selection rate (share of positive predictions), and once labels join, true positive rate, false
positive rate, precision and accuracy, over a sliding window and since start. Gaps are measured
against a reference group. Every rate has a Wilson interval, every difference a Newcombe hybrid-score
interval, every ratio a Katz log interval; an alert needs the whole interval beyond the threshold, so
small groups do not raise false alarms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from monitor.core.drift import DriftEvidence
from monitor.core.metrics import Ring
from monitor.core.rules import Judgement, alert_key
from monitor.core.settings import AlertConfig, FairnessConfig

RATES = ("selection_rate", "tpr", "fpr", "precision", "accuracy")
# gap metric -> the rate(s) it compares
GAPS = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("tpr",),
    "equalized_odds": ("tpr", "fpr"),
    "predictive_parity": ("precision",),
}


@functools.lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sound for small n and rates near 0 or 1).

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    """
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """Difference p1 - p2 with Newcombe's hybrid score interval (his method 10; his example: 0.0524 to 0.3339).

    >>> [round(v, 3) for v in newcombe(56, 70, 48, 80)]
    [0.2, 0.052, 0.334]
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def katz_ratio(x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """Ratio p1 / p2 with the Katz log interval (0.5 added to empty cells)."""
    if x1 == 0 or x2 == 0:
        x1, x2, n1, n2 = x1 + 0.5, x2 + 0.5, n1 + 0.5, n2 + 0.5
    r = (x1 / n1) / (x2 / n2)
    z = _z(confidence)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    return r, r * math.exp(-z * se), r * math.exp(z * se)


def _abs_interval(low: float, high: float) -> tuple[float, float]:
    """Interval of |d| from an interval of d."""
    if low <= 0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))


@dataclass
class GroupStats:
    """One group's predictions (sliding window and totals) and labelled predictions."""

    selected: Ring  # column: predicted positive (0/1)
    labelled: Ring  # columns: predicted positive, label
    n: int = 0
    positives: int = 0
    confusion: np.ndarray | None = None  # tp, fp, fn, tn since start

    def counts(self, window: bool) -> dict[str, tuple[float, float]]:
        """(successes, trials) behind each rate."""
        if window:
            sel = self.selected.rows()[:, 0]
            n, pos = float(sel.size), float(sel.sum())
            lab = self.labelled.rows()
            pred, y = lab[:, 0] == 1, lab[:, 1] == 1
            tp, fp = float(np.sum(pred & y)), float(np.sum(pred & ~y))
            fn, tn = float(np.sum(~pred & y)), float(np.sum(~pred & ~y))
        else:
            n, pos = float(self.n), float(self.positives)
            tp, fp, fn, tn = (self.confusion if self.confusion is not None else np.zeros(4)).tolist()
        return rate_counts(pos, n, tp, fp, fn, tn)


def rate_counts(pos: float, n: float, tp: float, fp: float, fn: float, tn: float) -> dict[str, tuple[float, float]]:
    """(successes, trials) behind each rate, from the selections and the labelled confusion counts."""
    return {
        "selection_rate": (pos, n),
        "tpr": (tp, tp + fn),
        "fpr": (fp, fp + tn),
        "precision": (tp, tp + fp),
        "accuracy": (tp + tn, tp + fp + fn + tn),
    }


# An attribute's common window holds ``fairness.window`` predictions for each of at least this many groups: a
# group of 2% of the traffic then has about 160 in it, where a window for its own two groups gave it 80, too few
# to compare (``min_group_size``); wider, an attribute of two groups was judged on a window that took too long
# to show a change
WIDE_GROUPS = 4


class AttributeWindow:
    """The recent predictions of one protected attribute's groups, in one window: ``per_group`` rows for each
    group it has seen (at least ``WIDE_GROUPS``), as (group code, predicted) and, labelled, (group code,
    predicted, label). Every group's
    gaps are measured over the same recent period. Windows of ``per_group`` predictions of each group apart
    covered periods as long as a group was rare (a 3% group's reached back 12 hours, a large group's 1), and a
    change in every group (a busy hour, a new season) read as a gap between them."""

    def __init__(self, per_group: int) -> None:
        self.per_group = per_group
        self.codes: dict[str, int] = {}
        self.selected = Ring(per_group * WIDE_GROUPS, 2)  # (a ring holds what it has, not its capacity)
        self.labelled = Ring(per_group * WIDE_GROUPS, 3)

    def code(self, group: str) -> int:
        """The group's code; past ``WIDE_GROUPS`` groups, a new group widens the window by ``per_group`` rows."""
        code = self.codes.get(group)
        if code is None:
            code = self.codes[group] = len(self.codes)
            capacity = self.per_group * max(len(self.codes), WIDE_GROUPS)
            for name in ("selected", "labelled"):
                old: Ring = getattr(self, name)
                if old.capacity >= capacity:
                    continue
                wider = Ring(capacity, old.columns)
                rows = old.rows()
                if len(rows):
                    wider.extend(rows)
                setattr(self, name, wider)
        return code

    def add(self, group: str, predicted: np.ndarray, y: np.ndarray | None = None) -> None:
        code = np.full(predicted.size, float(self.code(group)))
        if y is None:
            self.selected.extend(np.column_stack([code, predicted]))
        else:
            self.labelled.extend(np.column_stack([code, predicted, y]))

    def counts(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Each group's (successes, trials) behind each rate, over the window."""
        k = len(self.codes)
        sel, lab = self.selected.rows(), self.labelled.rows()
        code = sel[:, 0].astype(np.int64)
        n = np.bincount(code, minlength=k)
        pos = np.bincount(code, weights=sel[:, 1], minlength=k)
        code = lab[:, 0].astype(np.int64)
        pred, y = lab[:, 1] == 1, lab[:, 2] == 1
        tp, fp = (np.bincount(code, weights=(pred & t) * 1.0, minlength=k) for t in (y, ~y))
        fn, tn = (np.bincount(code, weights=(~pred & t) * 1.0, minlength=k) for t in (y, ~y))
        return {group: rate_counts(*(float(a[c]) for a in (pos, n, tp, fp, fn, tn))) for group, c in self.codes.items()}


@dataclass(frozen=True)
class Gap:
    """One group's gap to the reference group on one fairness metric."""

    attribute: str
    group: str
    reference: str
    metric: str
    gap: float
    low: float
    high: float
    threshold: float
    size: int
    reference_size: int
    rates: tuple[float, float]  # the group's rate and the reference's (first compared rate)
    p_value: float | None
    fire: bool
    clear: bool


class FairnessTracker:
    """Groups of one model version in one partition, and their gaps.

    >>> from monitor.core.settings import FairnessConfig
    >>> t = FairnessTracker(FairnessConfig(attributes=["g"], min_group_size=10), threshold=0.5)
    >>> segs = [(("g", "a"),)] * 50 + [(("g", "b"),)] * 50
    >>> t.observe(segs, np.r_[np.ones(25), np.zeros(25), np.ones(5), np.zeros(45)])
    >>> gap = [g for g in t.gaps() if g.metric == "demographic_parity"][0]
    >>> (gap.group, gap.reference, round(gap.gap, 2), gap.fire)
    ('b', 'a', -0.4, True)
    """

    def __init__(self, config: FairnessConfig, threshold: float = 0.5) -> None:
        self.config = config
        self.threshold = threshold
        self.groups: dict[tuple[str, str], GroupStats] = {}
        self.capped = 0
        self.chosen: dict[str, str] = {}  # per attribute: the reference group the last judgements used
        self.windows: dict[str, AttributeWindow] = {}  # per attribute: its groups' recent predictions together

    def _windows(self) -> dict[str, AttributeWindow]:
        """``windows`` (empty in a snapshot of an earlier release: a rate is measured on each group's own window
        until the common one has enough of it, :meth:`_window_counts`)."""
        return self.__dict__.setdefault("windows", {})

    def _window_counts(self, attribute: str) -> dict[str, dict[str, tuple[float, float]]]:
        """The attribute's groups' counts behind each rate: over the common recent period
        (:class:`AttributeWindow`) where the group has ``min_group_size`` trials of the rate there, else over its
        own last ``fairness.window`` predictions (a group of under about 1% of the traffic, or a rate of few
        trials such as a true positive rate with few positive labels: the common window holds too few of them
        to compare, and the group's own window, longer, finds its gap)."""
        window = self._windows().get(attribute)
        common = window.counts() if window is not None else {}
        need = self.config.min_group_size
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for (attr, grp), g in self.groups.items():
            if attr != attribute:
                continue
            own, shared = g.counts(True), common.get(grp)
            out[grp] = own if shared is None else {r: shared[r] if shared[r][1] >= need else own[r] for r in own}
        return out

    def _group_keys(self, segments: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
        values = dict(segments)
        keys = [(a, values[a]) for a in self.config.attributes if a in values]
        for cross in self.config.cross_attributes():
            if all(a in values for a in cross):
                keys.append((" x ".join(cross), ",".join(values[a] for a in cross)))
        return keys

    def _stats(self, key: tuple[str, str]) -> GroupStats | None:
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= self.config.max_groups:
                self.capped += 1
                return None
            w = self.config.window
            g = self.groups[key] = GroupStats(Ring(w, 1), Ring(w, 2), confusion=np.zeros(4))
        return g

    def _members(self, segments: Sequence[tuple[tuple[str, str], ...]]) -> dict[tuple[str, str], list[int]]:
        members: dict[tuple[str, str], list[int]] = {}
        for i, segs in enumerate(segments):
            for key in self._group_keys(segs):
                members.setdefault(key, []).append(i)
        return members

    def observe(self, segments: Sequence[tuple[tuple[str, str], ...]], predicted: np.ndarray) -> None:
        """Predictions: ``predicted`` is 1 for a positive prediction, 0 otherwise, NaN if unknown."""
        for key, idx in self._members(segments).items():
            g = self._stats(key)
            if g is None:
                continue
            p = predicted[np.asarray(idx)]
            p = p[~np.isnan(p)]
            g.selected.extend(p[:, None])
            g.n += p.size
            g.positives += int(p.sum())
            self._window(key[0]).add(key[1], p)

    def learn(self, segments: Sequence[tuple[tuple[str, str], ...]], predicted: np.ndarray, y: np.ndarray) -> None:
        """Joined labels: the label-based rates."""
        for key, idx in self._members(segments).items():
            g = self._stats(key)
            if g is None or g.confusion is None:
                continue
            i = np.asarray(idx)
            p, t = predicted[i], y[i]
            ok = ~np.isnan(p) & ~np.isnan(t)
            p, t = p[ok], t[ok]
            g.labelled.extend(np.column_stack([p, t]))
            self._window(key[0]).add(key[1], p, t)
            pred, pos = p == 1, t == 1
            g.confusion += [np.sum(pred & pos), np.sum(pred & ~pos), np.sum(~pred & pos), np.sum(~pred & ~pos)]

    def _window(self, attribute: str) -> AttributeWindow:
        windows = self._windows()
        window = windows.get(attribute)
        if window is None:
            window = windows[attribute] = AttributeWindow(self.config.window)
        return window

    def rates(self, key: tuple[str, str], window: bool = True) -> dict[str, tuple[float, float, float, int]]:
        """Each rate of a group as (value, low, high, trials); NaN value when there are no trials."""
        g = self.groups[key]
        out = {}
        for name, (x, n) in g.counts(window).items():
            low, high = wilson(x, n, self.config.confidence)
            out[name] = (x / n if n else math.nan, low, high, int(n))
        return out

    def reference(self, attribute: str, counts: dict[str, dict[str, tuple[float, float]]] | None = None) -> str | None:
        """The attribute's reference group; ``counts``: its groups' :meth:`_window_counts`, if already made."""
        configured = self.config.reference_groups.get(attribute)
        counts = self._window_counts(attribute) if counts is None else counts
        if configured is not None:
            return configured if configured in counts else None
        # only groups large enough to compare can be the reference: a tiny group must not switch gaps off
        candidates = {grp: c for grp, c in counts.items() if c["selection_rate"][1] >= self.config.min_group_size}
        if not candidates:
            return None
        if self.config.reference == "best":

            def rate(grp: str) -> float:
                x, n = candidates[grp]["selection_rate"]
                return x / n if n else -1.0

            best = max(sorted(candidates), key=rate)
            held = getattr(self, "chosen", {}).get(attribute)  # (an older release's snapshot has none)
            if held in candidates and held != best:
                # the reference moves only to a group whose selection rate is significantly higher: with rates
                # alike it flipped with the window's noise, each flip mirroring every gap (M against F, then F
                # against M) and leaving the new reference's own alerts unjudged, open for good
                # It moves only when the held group is itself disadvantaged beyond the limit (the lower end of
                # the difference's interval above ``max_difference``): "significantly higher" alone is found by
                # chance sooner or later over a long run, and a group that had just recovered, its labelled
                # window still holding the bias, became the reference and paged every other group
                (x1, n1), (x2, n2) = (candidates[g]["selection_rate"] for g in (best, held))
                limit = self.config.max_difference
                if min(n1, n2) == 0 or newcombe(x1, n1, x2, n2, self.config.confidence)[1] <= limit:
                    return held
            return best
        return max(sorted(candidates), key=lambda grp: candidates[grp]["selection_rate"][1])

    def gaps(self) -> list[Gap]:
        """Every non-reference group's gaps, with intervals and fire / clear conditions."""
        out: list[Gap] = []
        for attribute in sorted({attr for attr, _ in self.groups}):
            common = self._window_counts(attribute)
            ref = self.reference(attribute, common)
            if ref is None:
                continue
            ref_counts = common[ref]
            for (attr, grp), _g in sorted(self.groups.items()):
                if attr != attribute or grp == ref:
                    continue
                counts = common[grp]
                for metric, rates in GAPS.items():
                    out.append(self._gap(attribute, grp, ref, metric, rates, counts, ref_counts))
                out.append(self._ratio(attribute, grp, ref, counts, ref_counts))
        return out

    def _gap(
        self,
        attribute: str,
        grp: str,
        ref: str,
        metric: str,
        rates: tuple[str, ...],
        counts: dict[str, tuple[float, float]],
        ref_counts: dict[str, tuple[float, float]],
    ) -> Gap:
        cfg = self.config
        threshold = cfg.max_difference
        parts: list[tuple[float, float, float, float, float, float, float]] = []
        for rate in rates:
            (x1, n1), (x2, n2) = counts[rate], ref_counts[rate]
            if min(n1, n2) < cfg.min_group_size:
                parts = []
                break
            d, lo, hi = newcombe(x1, n1, x2, n2, cfg.confidence)
            parts.append((d, lo, hi, n1, n2, x1 / n1, x2 / n2))
        if not parts:
            n1, n2 = counts[rates[0]][1], ref_counts[rates[0]][1]
            return Gap(attribute, grp, ref, metric, math.nan, math.nan, math.nan, threshold, int(n1), int(n2),
                       (math.nan, math.nan), None, False, False)  # fmt: skip
        if len(parts) == 1:
            d, lo, hi, n1, n2, r1, r2 = parts[0]
            a_lo, _ = _abs_interval(lo, hi)
        else:  # equalized odds: the larger of the two absolute differences
            best = max(parts, key=lambda p: abs(p[0]))
            d, n1, n2, r1, r2 = best[0], best[3], best[4], best[5], best[6]
            abs_iv = [_abs_interval(p[1], p[2]) for p in parts]
            a_lo = max(iv[0] for iv in abs_iv)
            lo, hi = (a_lo, max(iv[1] for iv in abs_iv)) if d >= 0 else (-max(iv[1] for iv in abs_iv), -a_lo)
        z = _z(cfg.confidence)
        se = (hi - lo) / (2 * z) if hi > lo else math.inf
        p_value = float(sps.norm.sf((abs(d) - threshold) / se)) if se not in (0.0, math.inf) else None
        return Gap(attribute, grp, ref, metric, d, lo, hi, threshold, int(n1), int(n2), (r1, r2), p_value,
                   fire=a_lo > threshold, clear=a_lo <= threshold)  # fmt: skip

    def _ratio(
        self,
        attribute: str,
        grp: str,
        ref: str,
        counts: dict[str, tuple[float, float]],
        ref_counts: dict[str, tuple[float, float]],
    ) -> Gap:
        cfg = self.config
        (x1, n1), (x2, n2) = counts["selection_rate"], ref_counts["selection_rate"]
        lo_limit = cfg.min_ratio
        if min(n1, n2) < cfg.min_group_size or x2 == 0:
            return Gap(attribute, grp, ref, "disparate_impact", math.nan, math.nan, math.nan, lo_limit, int(n1),
                       int(n2), (math.nan, math.nan), None, False, False)  # fmt: skip
        r, lo, hi = katz_ratio(x1, n1, x2, n2, cfg.confidence)
        fire = hi < lo_limit or lo > 1 / lo_limit
        return Gap(attribute, grp, ref, "disparate_impact", r, lo, hi, lo_limit, int(n1), int(n2),
                   (x1 / n1, x2 / n2), None, fire=fire, clear=not fire)  # fmt: skip

    def judgements(self, model: str, version: str, alerts: AlertConfig, now: float) -> list[Judgement]:
        """A gap fires when its whole interval is beyond the limit, and clears once the gap itself is back
        within ``alerts.resolve_ratio`` of the limit (a ratio: of its distance from 1, on the log scale), as every
        other alert: cleared as soon as the interval touched the limit, an alert flapped (fired, resolved, fired
        again) while the gap held and widened."""
        out = []
        gaps = self.gaps()
        references = {gap.attribute: gap.reference for gap in gaps}
        self.chosen = references
        for attribute, ref in references.items():  # the reference group's own alerts (from when it was not) clear
            segment = dict(zip(attribute.split(" x "), ref.split(","), strict=False))
            for metric in (*GAPS, "disparate_impact"):
                out.append(self._cleared(model, version, attribute, ref, metric, segment, now))
        for gap in gaps:
            if gap.gap != gap.gap:
                continue
            segment = dict(zip(gap.attribute.split(" x "), gap.group.split(","), strict=False))
            if gap.metric == "disparate_impact":
                clear = gap.gap > 0 and abs(math.log(gap.gap)) <= alerts.resolve_ratio * abs(math.log(gap.threshold))
            else:
                clear = abs(gap.gap) <= alerts.resolve_ratio * gap.threshold
            ev = DriftEvidence(
                detected=gap.fire,
                effect=abs(gap.gap) if gap.metric != "disparate_impact" else gap.gap,
                events=gap.size,
                detector=gap.metric,
                # grows for ever (totals since start), so a later incident on the same key gets a new id
                change_seq=self._total(gap.attribute, gap.group) + self._total(gap.attribute, gap.reference),
                change_time=now,
                p_value=gap.p_value,
                baseline={"group": gap.reference, "rate": gap.rates[1], "events": gap.reference_size},
                current={
                    "group": gap.group,
                    "rate": gap.rates[0],
                    "events": gap.size,
                    "low": gap.low,
                    "high": gap.high,
                },
                direction="fell" if gap.gap < (1.0 if gap.metric == "disparate_impact" else 0.0) else "rose",
                extra={"attribute": gap.attribute},
            )
            out.append(
                Judgement(
                    bucket=(gap.attribute, gap.group),
                    stream_kind="fairness",
                    evidence=ev,
                    now=now,
                    key=alert_key(model, "fairness", gap.metric, segment, version),
                    kind="fairness",
                    subject=gap.metric,
                    segment=segment,
                    threshold=gap.threshold,
                    critical=2 * gap.threshold if gap.metric != "disparate_impact" else math.inf,
                    fire=gap.fire,
                    clear=clear and not gap.fire,
                    shift=abs(math.log(gap.gap)) if gap.metric == "disparate_impact" and gap.gap > 0 else abs(gap.gap),
                    statistic=gap.gap,
                    extra={"low": gap.low, "high": gap.high, "reference": gap.reference, "attribute": gap.attribute},
                )
            )
        return out

    def _cleared(
        self, model: str, version: str, attribute: str, group: str, metric: str, segment: dict[str, str], now: float
    ) -> Judgement:
        """The reference group's judgement on one metric: no gap to itself, so an alert it still has open from
        when another group was the reference resolves (the lifecycle ignores it otherwise)."""
        ev = DriftEvidence(detected=False, effect=0.0, events=self._total(attribute, group), detector=metric,
                           change_seq=self._total(attribute, group), change_time=now, p_value=None,
                           baseline={"group": group}, current={"group": group}, direction="",
                           extra={"attribute": attribute})  # fmt: skip
        return Judgement(
            bucket=(attribute, group), stream_kind="fairness", evidence=ev, now=now,
            key=alert_key(model, "fairness", metric, segment, version), kind="fairness", subject=metric,
            segment=segment, threshold=self.config.max_difference, critical=math.inf, fire=False, clear=True,
            shift=0.0, statistic=1.0 if metric == "disparate_impact" else 0.0,
            extra={"reference": group, "attribute": attribute},
        )  # fmt: skip

    def _total(self, attribute: str, group: str) -> int:
        g = self.groups.get((attribute, group))
        return 0 if g is None else g.n

    def view(self) -> dict[str, Any]:
        return {
            "groups": {f"{a}={g}": self.rates((a, g)) for a, g in self.groups},
            "gaps": [gap.__dict__ for gap in self.gaps()],
        }


def merged(trackers: Sequence[FairnessTracker]) -> FairnessTracker | None:
    """One tracker pooling the groups of several partitions (for a replica-wide view)."""
    if not trackers:
        return None
    out = FairnessTracker(trackers[0].config, trackers[0].threshold)
    out.chosen = dict(getattr(trackers[0], "chosen", {}))  # the page shows the references the judgements use
    keys = sorted({key for t in trackers for key in t.groups})
    for key in keys:
        parts = [t.groups[key] for t in trackers if key in t.groups]
        sel = [g.selected.rows() for g in parts]
        lab = [g.labelled.rows() for g in parts]
        g = GroupStats(
            Ring(max(1, sum(len(r) for r in sel)), 1),
            Ring(max(1, sum(len(r) for r in lab)), 2),
            n=sum(p.n for p in parts),
            positives=sum(p.positives for p in parts),
            confusion=np.sum([p.confusion for p in parts if p.confusion is not None], axis=0),
        )
        for rows in sel:
            if len(rows):
                g.selected.extend(rows)
        for rows in lab:
            if len(rows):
                g.labelled.extend(rows)
        out.groups[key] = g
    for t in trackers:  # the attributes' common windows: each partition's rows, its codes read by group
        for attribute, window in t._windows().items():
            names = {c: grp for grp, c in window.codes.items()}
            into = out._windows().get(attribute)
            if into is None:  # as wide as the partitions' together, so no partition's rows push out another's
                into = out._windows()[attribute] = AttributeWindow(t.config.window * len(trackers))
            for ring, labelled in ((window.selected, False), (window.labelled, True)):
                rows = ring.rows()
                for c in np.unique(rows[:, 0]).astype(np.int64).tolist() if len(rows) else []:
                    mine = rows[rows[:, 0] == c]
                    into.add(names[c], mine[:, 1], mine[:, 2] if labelled else None)
    return out
