"""Susceptibility classes from a probability histogram: class breaks, rate curves, names, colours.

Everything here works on histograms over a map's *levels*, the distinct values it can store: a
uint8 map's codes 0..254 (probability ``code / 254``, exact), a float32 map's probabilities in
65536 bins of width ``1 / 65536``. A break is a level; its threshold is the level's lowest
probability, and a pixel of probability ``p`` is in class ``1 + #{thresholds <= p}`` (1 = the
lowest susceptibility). Histograms stream block by block, so a map larger than memory is zoned
with a few arrays of 65536 numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("quantile", "equal-area", "natural-breaks", "success-rate")
UINT8_LEVELS = 255
FLOAT_LEVELS = 65536
# Fisher-Jenks is quadratic in the number of distinct values: float maps are grouped to this many.
JENKS_GROUPS = 1024
NAMES = {
    2: ("low", "high"),
    3: ("low", "moderate", "high"),
    4: ("low", "moderate", "high", "very high"),
    5: ("very low", "low", "moderate", "high", "very high"),
    6: ("very low", "low", "moderate", "high", "very high", "extremely high"),
    7: ("extremely low", "very low", "low", "moderate", "high", "very high", "extremely high"),
}


def class_names(classes: int) -> tuple[str, ...]:
    """The names of ``classes`` susceptibility classes, lowest first."""
    return NAMES[classes]


def class_colours(classes: int) -> list[tuple[int, int, int]]:
    """An RGB colour per class, green (lowest) through yellow to red (highest)."""
    from matplotlib import colormaps

    ramp = colormaps["RdYlGn_r"]
    return [
        tuple(int(round(255 * c)) for c in ramp(0.08 + 0.84 * i / (classes - 1))[:3])
        for i in range(classes)
    ]


def level_probabilities(levels: int) -> np.ndarray:
    """The lowest probability of each level (float64): what a break at that level thresholds."""
    if levels == UINT8_LEVELS:
        return np.arange(levels) / (UINT8_LEVELS - 1)
    return np.arange(levels) / levels


def levels_of(probability: np.ndarray, levels: int) -> np.ndarray:
    """The level of each probability (float64) of a map with ``levels`` levels."""
    if levels == UINT8_LEVELS:
        return np.rint(probability * (UINT8_LEVELS - 1)).astype(np.int64)
    return np.minimum(np.floor(probability * levels), levels - 1).astype(np.int64)


def classify(probability: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Class 1..N of each probability (float64) for ``N - 1`` ascending ``thresholds``."""
    return np.searchsorted(np.asarray(thresholds, np.float64), probability, side="right") + 1


@dataclass(frozen=True)
class Breaks:
    """Class breaks (levels, ascending; equal neighbours leave a class empty) of one method."""

    levels: np.ndarray
    method: str

    def thresholds(self, levels: int) -> list[float]:
        """The breaks as probabilities: the lowest probability of each class from the second."""
        return [float(p) for p in level_probabilities(levels)[self.levels]]


def share_breaks(weights: np.ndarray, classes: int) -> np.ndarray:
    """Breaks that give each class as close to ``1 / classes`` of ``weights`` as the levels allow.

    A tie (much weight on one level) cannot be split: the break goes where the cumulative share
    comes closest to its target. Where several breaks give that share (empty levels between), the
    middle one is taken, so the threshold sits between the values either side.
    """
    total = weights.sum()
    below = np.concatenate([[0.0], np.cumsum(weights)]) / total  # share below each break
    chosen = []
    for j in range(1, classes):
        distance = np.abs(below - j / classes)
        best = np.flatnonzero(distance == distance.min())
        chosen.append(int(best[len(best) // 2]))
    return np.asarray(chosen, np.int64)


def natural_breaks(counts: np.ndarray, classes: int) -> np.ndarray:
    """Fisher-Jenks natural breaks of the histogram ``counts`` (levels of equal width): classes
    that minimise the summed within-class variance of the pixels' levels, found exactly by
    dynamic programming over the non-empty levels (grouped to :data:`JENKS_GROUPS` on float maps)."""
    group = max(1, -(-len(counts) // JENKS_GROUPS))
    grouped = np.add.reduceat(counts.astype(np.float64), np.arange(0, len(counts), group))
    starts = np.arange(0, len(counts), group)
    centres = starts + (np.minimum(starts + group, len(counts)) - starts - 1) / 2
    present = np.flatnonzero(grouped > 0)
    weights, values = grouped[present], centres[present]
    m = len(present)
    k = min(classes, m)
    # Prefix sums for the within-class sum of squares of any run [i, j] of present values.
    w = np.concatenate([[0.0], np.cumsum(weights)])
    s1 = np.concatenate([[0.0], np.cumsum(weights * values)])
    s2 = np.concatenate([[0.0], np.cumsum(weights * values * values)])

    def cost(i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:  # runs [i, j], inclusive
        first = s1[j + 1] - s1[i]
        return (s2[j + 1] - s2[i]) - first * first / (w[j + 1] - w[i])

    best = np.full((k, m), np.inf)
    start = np.zeros((k, m), np.int64)
    best[0] = cost(0, np.arange(m))
    for c in range(1, k):
        for j in range(c, m):
            i = np.arange(c, j + 1)  # the last class is [i, j]
            total = best[c - 1][i - 1] + cost(i, j)
            at = int(np.argmin(total))
            best[c, j], start[c, j] = total[at], i[at]
    firsts = []
    j = m - 1
    for c in range(k - 1, 0, -1):
        firsts.append(int(start[c, j]))
        j = firsts[-1] - 1
    chosen = [int(starts[present[i]]) for i in reversed(firsts)]
    chosen += [chosen[-1] if chosen else len(counts)] * (classes - 1 - len(chosen))
    return np.asarray(chosen, np.int64)


def breaks(
    method: str, counts: np.ndarray, area: np.ndarray, landslides: np.ndarray, classes: int
) -> Breaks:
    """The breaks of ``method`` from histograms of pixel ``counts``, pixel ``area`` and training
    ``landslides`` by level: ``quantile`` (equal pixel counts), ``equal-area`` (equal ground area,
    which differs from quantile where pixels differ in area, as in a geographic CRS),
    ``natural-breaks`` (Fisher-Jenks) or ``success-rate`` (each class holds an equal share of the
    training landslides, so the top class is the smallest area that holds the first share)."""
    if method == "quantile":
        chosen = share_breaks(counts, classes)
    elif method == "equal-area":
        chosen = share_breaks(area, classes)
    elif method == "natural-breaks":
        chosen = natural_breaks(counts, classes)
    elif method == "success-rate":
        chosen = share_breaks(landslides, classes)
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return Breaks(chosen, method)


@dataclass(frozen=True)
class RateCurve:
    """A success-rate (training inventory) or prediction-rate (held-out inventory) curve: the share
    of landslides against the share of area, taking pixels from the most to the least
    susceptible; ``auc`` is the area under it (trapezoids; ties of a level form one segment)."""

    area_share: np.ndarray
    landslide_share: np.ndarray
    auc: float


def rate_curve(area: np.ndarray, landslides: np.ndarray) -> RateCurve:
    """The rate curve of histograms of ``area`` and ``landslides`` by level (highest level first
    on the curve); starts at (0, 0) and ends at (1, 1)."""
    x = np.concatenate([[0.0], np.cumsum(area[::-1])]) / area.sum()
    y = np.concatenate([[0.0], np.cumsum(landslides[::-1])]) / landslides.sum()
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return RateCurve(x, y, auc)
