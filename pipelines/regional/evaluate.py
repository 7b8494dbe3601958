"""Scoring a model on a region's held-out blocks: pixel metrics where the inventory knows the
ground, and AUROC at the inventory's points when its labels are points.

The blocks are those the model's training run held out: the bundle records the split and the
grid it was made on, and a region bound again must give the same grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.metrics import SegmentationMetrics
from pipelines.errors import InputError
from pipelines.regional.dataset import model_input
from pipelines.regional.region_file import read_region_file
from pipelines.regional.sampling import WindowSampler, starts_along
from pipelines.regional.split import SPLITS, SpatialSplit, SplitSpec, grid_record
from pipelines.regional.windows import RegionSource, RegionWindow, bind_region

Predictor = Callable[[list[RegionWindow]], np.ndarray]


def bundle_predictor(bundle: ModelBundle, device: str | torch.device = "cpu") -> Predictor:
    """``windows -> probabilities (N, size, size)`` of the bundle's model, as mapping feeds it."""
    model = bundle.build().to(device).eval()

    @torch.no_grad()
    def predict(windows: list[RegionWindow]) -> np.ndarray:
        x = np.stack([model_input(w, bundle.norm_mean, bundle.norm_std) for w in windows])
        return torch.sigmoid(model(torch.from_numpy(x).to(device)))[:, 0].cpu().numpy()

    return predict


def score_region(
    predict: Predictor,
    source: RegionSource,
    split: SpatialSplit,
    which: int,
    *,
    size: int,
    threshold: float = 0.5,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Metrics of ``predict`` (a model's probabilities for windows of ``size`` px) on the tiles of
    ``split``'s blocks ``which``: pixel metrics on the labelled pixels with data there, and for a
    points inventory ``point_auc`` over its points in those blocks (the probability at each
    point's pixel)."""
    tiles = WindowSampler(split, source.inventory, size).tiles(which)
    pixels = SegmentationMetrics(threshold)
    points = _points_in(source, split, which) if source.inventory.kind == "points" else None
    at_points = SegmentationMetrics(threshold)
    # The last row and column of tiles sit flush with the edge, overlapping the ones before:
    # each pixel is scored by the first tile that holds it.
    first_row = _owned_from(split.grid.height, size)
    first_col = _owned_from(split.grid.width, size)
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start : start + batch_size]
        windows = [source.read(int(top), int(left), size) for top, left in chunk]
        probs = predict(windows)
        for (top, left), window, prob in zip(chunk, windows, probs, strict=True):
            counted = window.valid & split.mask(which, int(top), int(left), size, size)
            counted[: first_row[int(top)]] = False
            counted[:, : first_col[int(left)]] = False
            pixels.update(prob, window.landslide, counted)
            if points is not None:
                points = _score_points(points, at_points, top, left, size, window, prob)
    if pixels.pixels == 0:
        raise InputError(
            f"the {SPLITS[which]} blocks hold no labelled pixel with data: nothing to score"
        )
    results: dict[str, Any] = {
        "split": SPLITS[which],
        "tiles": len(tiles),
        "pixels": pixels.pixels,
        "threshold": threshold,
        **pixels.compute(),
    }
    if points is not None:
        results["points"] = at_points.pixels
        results["point_auc"] = at_points.auc() if at_points.pixels else float("nan")
    return results


def _owned_from(length: int, size: int) -> dict[int, int]:
    """For each tile start along an axis, the first of its pixels no earlier tile holds."""
    starts = starts_along(length, size)
    return {
        start: max(0, previous + size - start) if i else 0
        for i, (previous, start) in enumerate(zip([0, *starts], starts, strict=False))
    }


def _points_in(source: RegionSource, split: SpatialSplit, which: int) -> np.ndarray:
    """``int (N, 3)``: grid row, column and label of the inventory's points in ``which``'s
    blocks."""
    frame = source.inventory.frame
    rows, cols = source.grid.pixels(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    labels = frame["landslide"].to_numpy(bool).astype(np.int64)
    inside = (rows >= 0) & (rows < split.grid.height) & (cols >= 0) & (cols < split.grid.width)
    found = np.stack([rows, cols, labels], axis=1)[inside]
    blocks = split.blocks[found[:, 0] // split.block, found[:, 1] // split.block]
    return found[blocks == which]


def _score_points(
    points: np.ndarray,
    metrics: SegmentationMetrics,
    top: int,
    left: int,
    size: int,
    window: Any,
    prob: np.ndarray,
) -> np.ndarray:
    """Score the points in this tile (where it has data); returns the points not yet scored."""
    rows, cols = points[:, 0] - top, points[:, 1] - left
    here = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    if here.any():
        r, c = rows[here], cols[here]
        data = np.isfinite(window.image[:, r, c]).all(axis=0)
        metrics.update(prob[r, c][data], points[here, 2][data].astype(np.float32))
    return points[~here]


def evaluate_region(
    bundle: ModelBundle, region: str, split: str = "test", *, batch_size: int = 16
) -> dict[str, Any]:
    """Metrics of ``bundle`` on a split of the blocks its training run drew on the region file
    ``region`` (the region it trained on, bound again at its resolution)."""
    from pipelines.layers import stack_for_bundle

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    record = bundle.metrics.get("split") or {}
    if record.get("kind") != "blocks":
        raise InputError(
            "the model was trained on chips, not a region: its split is one of chips (score it "
            "with --data CHIPS), or map the region and `lsmap score` the map"
        )
    source = bind_region(read_region_file(region), stack_for_bundle(bundle), bundle.resolution_m)
    if grid_record(source.grid) != record["grid"]:
        raise InputError(
            f"{region}: its grid differs from the one the model's training run split into "
            "blocks, so its held-out blocks are undefined here; evaluate on the region it "
            "trained on, or map this one and `lsmap score` the map"
        )
    blocks = SpatialSplit.of(source.grid, SplitSpec.from_record(record["spec"]))
    return score_region(
        bundle_predictor(bundle),
        source,
        blocks,
        SPLITS.index(split),
        size=bundle.tile_size,
        threshold=bundle.threshold,
        batch_size=batch_size,
    )
