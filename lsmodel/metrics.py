"""Streaming binary segmentation metrics that merge by addition (for results from many workers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

METRIC_NAMES = (
    "miou",
    "iou_landslide",
    "iou_background",
    "auc",
    "precision",
    "recall",
    "f1",
    "accuracy",
)


def _numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.is_floating_point():
            array = array.float()
        return array.numpy()
    return np.asarray(array)


def _ratio(numerator: int, denominator: int) -> float:
    # 0/0 means there was nothing to get wrong (e.g. no landslide in target nor prediction).
    return numerator / denominator if denominator else 1.0


class SegmentationMetrics:
    """Confusion counts at ``threshold`` plus per-class histograms of probabilities.

    ``update`` with landslide probabilities and targets; a pixel is predicted landslide when its
    probability is >= ``threshold``. The histograms (``bins`` equal bins over [0, 1]) give the
    ROC AUC without keeping pixels. Two objects with the same threshold and bins add up
    (``a + b``, ``a.merge(b)``), and ``to_dict``/``from_dict`` carry the state as plain JSON.
    """

    def __init__(self, threshold: float = 0.5, bins: int = 1000) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.threshold = float(threshold)
        self.bins = int(bins)
        # Python ints: counts over continent-sized mosaics must not overflow.
        self.tp = self.fp = self.fn = self.tn = 0
        self.hist_landslide = np.zeros(self.bins, dtype=np.int64)
        self.hist_background = np.zeros(self.bins, dtype=np.int64)

    def update(self, probs: Any, target: Any, valid: Any = None) -> None:
        """Add pixels: ``probs`` in [0, 1], ``target`` (> 0.5 is landslide), optional bool ``valid``.

        Tensors (any device) or arrays of one shape; pixels where ``valid`` is False are skipped.
        """
        probs, target = _numpy(probs), _numpy(target)
        if probs.shape != target.shape:
            raise ValueError(f"probs shape {probs.shape} != target shape {target.shape}")
        if valid is not None:
            valid = _numpy(valid).astype(bool)
            if valid.shape != probs.shape:
                raise ValueError(f"valid shape {valid.shape} != probs shape {probs.shape}")
            probs, target = probs[valid], target[valid]
        probs, positive = probs.ravel(), target.ravel() > 0.5
        if probs.size and (probs.min() < 0 or probs.max() > 1):
            raise ValueError("probs must be probabilities in [0, 1] (got logits?)")
        predicted = probs >= self.threshold
        self.tp += int(np.count_nonzero(predicted & positive))
        self.fp += int(np.count_nonzero(predicted & ~positive))
        self.fn += int(np.count_nonzero(~predicted & positive))
        self.tn += int(np.count_nonzero(~predicted & ~positive))
        index = np.minimum((probs * self.bins).astype(np.int64), self.bins - 1)
        self.hist_landslide += np.bincount(index[positive], minlength=self.bins)
        self.hist_background += np.bincount(index[~positive], minlength=self.bins)

    def merge(self, other: SegmentationMetrics) -> SegmentationMetrics:
        """Add ``other``'s counts into this object (in place) and return it."""
        if (other.threshold, other.bins) != (self.threshold, self.bins):
            raise ValueError(
                f"cannot merge metrics with threshold/bins {other.threshold}/{other.bins} "
                f"into {self.threshold}/{self.bins}"
            )
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.hist_landslide += other.hist_landslide
        self.hist_background += other.hist_background
        return self

    def __add__(self, other: SegmentationMetrics) -> SegmentationMetrics:
        return SegmentationMetrics.from_dict(self.to_dict()).merge(other)

    @property
    def pixels(self) -> int:
        """Number of pixels counted so far."""
        return self.tp + self.fp + self.fn + self.tn

    def auc(self) -> float:
        """ROC AUC over the binned probabilities: P(landslide bin > background bin), ties half.

        NaN unless both classes were seen.
        """
        pos = self.hist_landslide.astype(np.float64)
        neg = self.hist_background.astype(np.float64)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return math.nan
        neg_below = np.cumsum(neg) - neg
        return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))

    def compute(self) -> dict[str, float]:
        """Metrics named in METRIC_NAMES.

        ``miou`` is the mean of the landslide and background IoU (as in the paper). A ratio whose
        denominator is 0 has nothing it could get wrong and is 1.0: e.g. precision with no
        predicted landslide pixel, recall and landslide IoU with none in the target and none
        predicted. ``auc`` is NaN when a class is missing; everything is NaN before any pixel.
        """
        if self.pixels == 0:
            return dict.fromkeys(METRIC_NAMES, math.nan)
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        iou_landslide = _ratio(tp, tp + fp + fn)
        iou_background = _ratio(tn, tn + fp + fn)
        return {
            "miou": (iou_landslide + iou_background) / 2,
            "iou_landslide": iou_landslide,
            "iou_background": iou_background,
            "auc": self.auc(),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": (tp + tn) / self.pixels,
        }

    def to_dict(self) -> dict[str, Any]:
        """State as JSON-ready builtins (ints, floats, lists of ints)."""
        return {
            "threshold": self.threshold,
            "bins": self.bins,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "hist_landslide": self.hist_landslide.tolist(),
            "hist_background": self.hist_background.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SegmentationMetrics:
        """Inverse of ``to_dict``."""
        metrics = cls(state["threshold"], state["bins"])
        for key in ("tp", "fp", "fn", "tn"):
            setattr(metrics, key, int(state[key]))
        for key in ("hist_landslide", "hist_background"):
            hist = np.asarray(state[key], dtype=np.int64)
            if hist.shape != (metrics.bins,):
                raise ValueError(f"{key} has shape {hist.shape}, expected ({metrics.bins},)")
            setattr(metrics, key, hist)
        return metrics

    def __repr__(self) -> str:
        return (
            f"SegmentationMetrics(threshold={self.threshold}, bins={self.bins}, "
            f"pixels={self.pixels})"
        )
