"""Finished probability stores made directly (no model, no Ray), for tests of the exports."""

from __future__ import annotations

import numpy as np
from affine import Affine

from pipelines.mapping.output import OutputLayout, create_store, encode, open_array
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
