"""A categorical change confined to one segment, told from all traffic's window before the segment's own completes.

A segment has a share of the traffic, so its categorical window (``detectors.categorical_window`` of its own
values) completes long after all traffic's on the same change: a change confined to a segment with a tenth of the
traffic moves all traffic's distribution by about a tenth of its size, often enough to fire there, and the
segment's own alert came about ten windows later (two pages for one change, the first one misplaced). So all
traffic's window is also counted by the values of each segment attribute (:class:`WindowBreakdown`), and when all
traffic's window fires, :func:`local_change` asks whether one segment's rows in it account for the change:

- its rows differ from its own reference, significantly, by at least the threshold distance and by
  ``explain_ratio`` times all traffic's (a change confined to a share of the traffic is diluted in all
  traffic's window; a change everywhere is about as large in every value), and no other value's rows differ
  significantly from theirs; diluted by its share of the window, its change accounts for at least half of all
  traffic's;
- the other values' rows together show no sign of a change from what their references expect (at the 5% level),
  and are ``explain_ratio`` times closer to it (a change everywhere shows in the other values too, if less
  surely in their smaller samples);
- with its rows put back to its reference (the same number of them), all traffic's window shows no change:
  neither a significant one nor one of the threshold distance.

That segment then fires on its rows of the window (a smaller sample, tested as such) and explains all traffic's
alert, as a segment that explains a diluted change does. A change that is everywhere keeps all traffic's alert:
taking one segment out leaves it above the threshold.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from monitor.core.detectors import WindowTest, compare_categories
from monitor.core.drift import CategoricalDriftTracker, DriftEvidence


class WindowBreakdown:
    """All traffic's open categorical test window counted by (code of a segment attribute's value, category),
    and the counts of its last closed window with that window's end time. Its size is bounded by the
    attribute's segment cap (its codes) and the category vocabulary's capacity."""

    SNAPSHOT_SKIP: ClassVar[tuple[str, ...]] = ("earlier",)
    # the batch's other closed windows, before the last (end time, counts): a batch that closes several of all
    # traffic's windows judges each (ModelMonitor._judge_earlier_windows), each with its own breakdown (:meth:`at`)
    earlier: tuple[tuple[float, np.ndarray], ...] = ()

    def __init__(self, n_codes: int) -> None:
        self.open = np.zeros((0, n_codes), dtype=np.int64)
        self.closed: np.ndarray | None = None
        self.closed_time = math.nan

    def add(self, codes: np.ndarray, rows: np.ndarray, ends: list[int], segment: np.ndarray, times: np.ndarray) -> None:
        """A batch's category ``codes`` and each row's segment value code (-1: none): ``rows`` are the rows all
        traffic's test windows took (:meth:`CategoricalDriftTracker.update`), ``ends`` the rows that closed one,
        ``times`` the rows' event times."""
        top = int(segment.max()) + 1 if segment.size else 0
        if top > self.open.shape[0]:
            self.open = np.pad(self.open, ((0, top - self.open.shape[0]), (0, 0)))
        self.__dict__.pop("earlier", None)
        if not ends:
            self.open += self._count(rows, codes, segment)
            return
        # each window closed: the rows up to its end since the last one's (the first from the open window's start);
        # the last is kept, the others until the batch is judged, and the rows after the last end open the next
        windows: list[tuple[float, np.ndarray]] = []
        start = 0
        for i, end in enumerate(ends):
            stop = int(np.searchsorted(rows, end)) + 1
            counts = self._count(rows[start:stop], codes, segment)
            windows.append((float(times[end]), self.open + counts if i == 0 else counts))
            start = stop
        self.closed_time, self.closed = windows[-1]
        if len(windows) > 1:
            self.earlier = tuple(windows[:-1])
        self.open = self._count(rows[start:], codes, segment)

    def at(self, time: float) -> tuple[np.ndarray | None, float]:
        """Read as the batch's closed window that ended at ``time`` (if it closed one then): what it read before,
        to give back to :meth:`restore`."""
        before = (self.closed, self.closed_time)
        for end, counts in self.earlier:
            if end == time:
                self.closed, self.closed_time = counts, end
        return before

    def restore(self, before: tuple[np.ndarray | None, float]) -> None:
        self.closed, self.closed_time = before

    def _count(self, piece: np.ndarray, codes: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """The rows ``piece`` counted by (segment value code, category), as :attr:`open` is."""
        of = segment[piece]
        kept = of >= 0
        cells = of[kept] * self.open.shape[1] + codes[piece][kept]
        return np.bincount(cells, minlength=self.open.size).reshape(self.open.shape)


def local_change(
    whole: CategoricalDriftTracker,
    breakdown: WindowBreakdown,
    segments: dict[int, CategoricalDriftTracker],
    labels: list[str],
    *,
    alpha: float,
    min_distance: float,
    ratio: float,
    settled: frozenset[int] = frozenset(),
) -> tuple[int | None, DriftEvidence | None] | None:
    """The segment (by its value's code; ``segments``: the attribute's streams by code) whose change all
    traffic's latest window shows, as evidence from its rows there; None when no one segment accounts for it
    (see the module's docstring). The caller asks when all traffic fires, on this window's test or another.
    ``settled``: segments whose alert is open already; their rows count as at their reference (a change in
    another segment while one is open is that one's alone too). ``(None, None)``: no other segment moved, and
    the open ones account for all traffic's change."""
    last = whole.last
    closed = breakdown.closed
    if last is None or closed is None or whole.test.reference is None or breakdown.closed_time != whole.last_time:
        return None  # the breakdown is of another window (a window of all traffic closed before it was kept)
    tested = []
    for value, counts in enumerate(closed):
        segment = segments.get(value)
        reference = None if segment is None else segment.test.reference
        if reference is None or not counts.any():
            continue
        tested.append((value, counts, reference / reference.sum(), compare_categories(reference, counts)))
    window = last.current * whole.settings.categorical_window  # all traffic's window, as counts
    for t in tested:  # open segments' rows as their references expect them
        if t[0] in settled:
            window = window - t[1] + t[1].sum() * t[2]
    unsettled = [t for t in tested if t[0] not in settled]
    if (
        len(unsettled) < len(tested)
        and not _moved(unsettled, 0.0, ratio, alpha)
        and _still(whole, window, alpha, min_distance)
    ):
        return None, None  # nothing changed beyond what the open alerts cover
    changed = [t for t in unsettled if t[3].p_value < alpha]
    if len(changed) != 1 or changed[0][3].distance < max(min_distance, ratio * last.distance):
        # no segment, or more than one, moved; or one moved about as much as all traffic did (a change everywhere
        # shows in each value about as large, and one of them can pass the tests above by chance)
        return None
    value, counts, shares, test = changed[0]
    if 2.0 * counts.sum() / whole.settings.categorical_window * test.distance < last.distance:
        return None  # diluted by its share of the window, it does not account for all traffic's change
    if _moved([t for t in unsettled if t[0] != value], test.distance, ratio):
        return None  # the rest moved too, less surely in smaller samples: the change is not this segment's alone
    n = int(counts.sum())
    if not _still(whole, window - counts + n * shares, alpha, min_distance):
        return None  # all traffic shows a change without it too: not this segment's alone
    diff = test.current - test.reference
    top = int(np.argmax(np.abs(diff)))
    name = labels[top] if top < len(labels) else str(top)
    return value, DriftEvidence(
        detected=True,
        effect=test.distance,
        events=n,
        detector="chi2",
        change_seq=whole.last_seq,
        change_time=whole.last_time,
        p_value=test.p_value,
        baseline={"category": name, "share": float(test.reference[top])},
        current={"category": name, "share": float(test.current[top]), "events": n},
        direction="rose" if diff[top] > 0 else "fell",
        extra={"chi2": test.chi2, "in_window_of": "all traffic"},
    )


REST_ALPHA = 0.05  # the other segments together must show no sign of a change: a change everywhere shows there too


def _moved(
    others: list[tuple[int, np.ndarray, np.ndarray, WindowTest]],
    distance: float,
    ratio: float,
    alpha: float = REST_ALPHA,
) -> bool:
    """Whether the rows of ``others`` together differ from what their references expect of as many rows: at all
    (at level ``alpha``), or by ``distance`` over ``ratio``."""
    if not others:
        return False
    rest = np.sum([t[1] for t in others], axis=0)
    expected = np.sum([t[1].sum() * t[2] for t in others], axis=0)
    test = compare_categories(expected, rest)
    return test.p_value < alpha or test.distance * ratio > distance > 0


def _still(whole: CategoricalDriftTracker, window: np.ndarray, alpha: float, min_distance: float) -> bool:
    """Whether all traffic's window, as ``window`` counts, shows no change: neither a significant one nor one of
    the threshold distance."""
    assert whole.test.reference is not None
    test = compare_categories(whole.test.reference, window)
    return test.p_value >= alpha and test.distance < min_distance
