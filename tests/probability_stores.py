"""Finished probability stores made directly (no model, no Ray), for tests of the exports."""

from __future__ import annotations

import numpy as np
from affine import Affine

from pipelines.mapping.output import OutputLayout, create_store, encode, open_array, write_manifest
from pipelines.raster import Grid

# Over 512 px on both sides, so a COG of it has a tile grid and an overview level.
GRID = Grid("EPSG:32648", Affine(2, 0, 530_000, 0, -2, 3_021_000), 700, 600)
CHUNK = 256


def write_probability_store(root: str, dtype: str) -> tuple[OutputLayout, np.ndarray]:
    """A finished store on ``GRID`` at ``root`` (local or S3): a smooth field, nodata on the
    first 10 rows. Returns its layout and the stored values."""
    layout = OutputLayout(root)
    create_store(layout, GRID, CHUNK, dtype, {"test": dtype})
    rows, cols = np.mgrid[0 : GRID.height, 0 : GRID.width]
    probability = ((np.sin(rows / 40) * np.cos(cols / 30) + 1) / 2).astype(np.float32)
    stored = encode(probability, rows >= 10, dtype)
    open_array(layout)[:] = stored
    return layout, stored


def write_finished_map(
    root: str,
    probability: np.ndarray,
    grid: Grid,
    chunk: int = CHUNK,
    dtype: str = "uint8",
    model_sha256: str = "ab" * 32,
    status: str = "complete",
) -> OutputLayout:
    """The output folder of a map run at ``root``: ``probability`` (NaN = no data) on ``grid``,
    stored in ``chunk`` px chunks, with the manifest of a run of ``status`` by the model
    ``model_sha256``, as `lsmap map` leaves it."""
    run = {
        "model_sha256": model_sha256,
        "inputs": {"image": "rgb.tif"},
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "shape": [grid.height, grid.width],
        "chunk": chunk,
    }
    layout = OutputLayout(root)
    create_store(layout, grid, chunk, dtype, run)
    valid = np.isfinite(probability)
    open_array(layout)[:] = encode(np.where(valid, probability, 0.0), valid, dtype)
    manifest = {"run": run, "status": status, "started_at": "2026-12-01T00:00:00+00:00"}
    write_manifest(layout, manifest)
    return layout
