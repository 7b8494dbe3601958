"""Score a finished probability mosaic against a reference landslide mask, chunk by chunk."""

from __future__ import annotations

import numpy as np

from lsmodel.metrics import SegmentationMetrics
from pipelines.mapping import export, output
from pipelines.raster import Grid, open_mosaic, read_window


def score_map(out: str, truth: str, threshold: float = 0.5) -> dict[str, float]:
    """Metrics (mIoU, AUC, precision, recall, F1, accuracy) of the map in ``out`` against the
    reference mask ``truth`` (any raster, non-zero = landslide), over pixels valid in both."""
    layout = output.OutputLayout(out)
    probability = export.open_probability(layout, decode=True)
    grid = Grid.from_dataarray(probability)
    reference = open_mosaic(truth)
    metrics = SegmentationMetrics(threshold=threshold)
    chunk = probability.encoding.get("preferred_chunks", {}).get("y") or 1024
    for row in range(0, grid.height, chunk):
        for col in range(0, grid.width, chunk):
            window = grid.window(
                row, col, min(chunk, grid.height - row), min(chunk, grid.width - col)
            )
            predicted = probability[row : row + window.height, col : col + window.width].values
            labels = read_window(reference, window, resampling="nearest")[0]
            valid = np.isfinite(predicted) & np.isfinite(labels)
            if valid.any():
                metrics.update(predicted[valid], (labels[valid] > 0).astype(np.float32))
    return metrics.compute()
