"""Streaming metrics equal a brute-force computation and merge exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lsmodel.metrics import METRIC_NAMES, SegmentationMetrics

THRESHOLD, BINS = 0.3, 50


def _data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = (rng.random((3, 1, 20, 24)) < 0.25).astype(np.float32)
    # Informative but imperfect probabilities, with exact 0 and 1 and values on bin edges.
    probs = np.clip(0.35 * target + 0.65 * rng.random(target.shape), 0, 1).astype(np.float32)
    probs.flat[:4] = [0.0, 1.0, 0.3, 0.5]
    valid = rng.random(target.shape) > 0.1
    return probs, target, valid


def _brute_force(probs, target, valid) -> dict[str, float]:
    p, y = probs[valid], target[valid] > 0.5
    pred = p >= THRESHOLD
    tp, fp = np.sum(pred & y), np.sum(pred & ~y)
    fn, tn = np.sum(~pred & y), np.sum(~pred & ~y)
    binned = np.minimum(np.floor(p * BINS), BINS - 1)
    pos, neg = binned[y][:, None], binned[~y][None, :]
    auc = np.mean((pos > neg) + 0.5 * (pos == neg))  # Mann-Whitney over all pairs
    iou_l, iou_b = tp / (tp + fp + fn), tn / (tn + fp + fn)
    return {
        "miou": (iou_l + iou_b) / 2,
        "iou_landslide": iou_l,
        "iou_background": iou_b,
        "auc": auc,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "accuracy": (tp + tn) / p.size,
    }


def test_metrics_equal_brute_force():
    probs, target, valid = _data(0)
    metrics = SegmentationMetrics(THRESHOLD, BINS)
    metrics.update(probs, target, valid)
    result = metrics.compute()
    assert set(result) == set(METRIC_NAMES)
    expected = _brute_force(probs, target, valid)
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(expected[name], rel=1e-12), name
    assert metrics.pixels == valid.sum()


def test_tensors_and_arrays_give_the_same_state():
    probs, target, valid = _data(1)
    from_numpy = SegmentationMetrics(THRESHOLD, BINS)
    from_numpy.update(probs, target, valid)
    from_torch = SegmentationMetrics(THRESHOLD, BINS)
    from_torch.update(torch.from_numpy(probs), torch.from_numpy(target), torch.from_numpy(valid))
    assert from_torch.to_dict() == from_numpy.to_dict()


def test_merging_halves_equals_the_whole():
    probs, target, valid = _data(2)
    whole = SegmentationMetrics(THRESHOLD, BINS)
    whole.update(probs, target, valid)
    first, second = SegmentationMetrics(THRESHOLD, BINS), SegmentationMetrics(THRESHOLD, BINS)
    first.update(probs[:2], target[:2], valid[:2])
    second.update(probs[2:], target[2:], valid[2:])
    summed = first + second
    assert summed.to_dict() == whole.to_dict()
    assert first.pixels + second.pixels == whole.pixels  # + leaves its operands alone
    assert first.merge(second).to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="threshold"):
        whole.merge(SegmentationMetrics(0.5, BINS))


def test_state_round_trips_through_json():
    probs, target, valid = _data(3)
    metrics = SegmentationMetrics(THRESHOLD, BINS)
    metrics.update(probs, target, valid)
    restored = SegmentationMetrics.from_dict(json.loads(json.dumps(metrics.to_dict())))
    assert restored.to_dict() == metrics.to_dict()
    assert restored.compute() == metrics.compute()


def test_undefined_cases():
    assert all(math.isnan(v) for v in SegmentationMetrics().compute().values())
    # No landslide in target or prediction: nothing could be wrong, but AUC needs both classes.
    metrics = SegmentationMetrics()
    metrics.update(np.full((4, 4), 0.1), np.zeros((4, 4)))
    result = metrics.compute()
    assert math.isnan(result.pop("auc"))
    assert all(v == 1.0 for v in result.values())
    # Landslides present, none predicted: recall, F1 and landslide IoU are 0, precision 1.
    metrics = SegmentationMetrics()
    metrics.update(np.full((2, 2), 0.1), np.array([[1.0, 0.0], [0.0, 0.0]]))
    result = metrics.compute()
    assert (result["recall"], result["f1"], result["iou_landslide"]) == (0.0, 0.0, 0.0)
    assert result["precision"] == 1.0
    assert result["accuracy"] == 0.75


def test_logits_and_shape_mismatches_are_rejected():
    with pytest.raises(ValueError, match="logits"):
        SegmentationMetrics().update(np.array([-2.0, 3.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        SegmentationMetrics().update(np.zeros((2, 2)), np.zeros(4))
