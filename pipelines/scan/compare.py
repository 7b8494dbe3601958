"""New landslides: high probability in the current map, low in the previous one, chunk by chunk.

A pixel is a landslide when its probability is at least ``threshold``; it is new when, in
addition, the previous map of the region had a probability below ``before_threshold`` there. The
previous map is read onto the current map's grid (a slice when the grids share their lattice,
nearest-neighbour warping otherwise), so images with other footprints compare too. Pixels the
previous map does not cover are never new: nothing says what was there before. Both maps are read
one output chunk at a time, so memory does not grow with the region.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from pipelines import storage
from pipelines.mapping.blocks import BLOCK, for_each_block, in_chunk_order, region_blocks
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.mapping.polygons import chunk_pieces, landslide_features
from pipelines.raster import Grid, read_window

# Picture classes, drawn over each other in this order (a coarse pixel shows the highest).
NODATA, CLEAR, LANDSLIDE, NEW = 0, 1, 2, 3
_COLOURS = np.array(
    [[0, 0, 0, 0], [228, 228, 222, 255], [240, 160, 40, 255], [215, 25, 28, 255]], dtype=np.uint8
)


@dataclass
class Comparison:
    """Landslide and new-landslide polygons of one map (GeoJSON features, largest first), its grid,
    its highest probability (None: no data at all), and a coarse picture of the classes above.
    ``new`` is None when there was no previous map."""

    grid: Grid
    landslides: list[dict]
    new: list[dict] | None
    picture: np.ndarray
    max_probability: float | None


def compare_maps(
    current: str,
    previous: str | None,
    *,
    threshold: float,
    before_threshold: float,
    min_area_m2: float = 0.0,
    chunk: int = 1024,
    picture_size: int = 1024,
    block: int = BLOCK,
) -> Comparison:
    """Polygons of all and of new landslides in the map at ``current`` (an ``lsmap map`` output).

    ``previous`` is the output of the region's previous map, or None for the first image (every
    landslide is then reported, none as new). Polygons smaller than ``min_area_m2`` are dropped.
    A region over ``block`` px a side is compared by one Ray task per block (see
    :mod:`pipelines.mapping.blocks`), with the same result.
    """
    grid = Grid.from_dataarray(open_probability(OutputLayout(current)))
    blocks = region_blocks(grid, chunk, block)
    parts = for_each_block(
        _compare_block, blocks, current, previous, threshold, before_threshold, chunk, picture_size
    )
    picture = _Picture(grid, picture_size).array
    for top, left, coarse in (part["picture"] for part in parts):
        target = picture[top : top + coarse.shape[0], left : left + coarse.shape[1]]
        np.maximum(target, coarse, out=target)  # coarse pixels may straddle blocks
    per_chunk = in_chunk_order(part["chunks"] for part in parts)
    pieces = {kind: [p for chunk in per_chunk for p in chunk[kind]] for kind in ("all", "new")}
    highest = max(part["highest"] for part in parts)
    return Comparison(
        grid=grid,
        landslides=landslide_features(pieces["all"], grid, min_area_m2),
        new=landslide_features(pieces["new"], grid, min_area_m2) if previous else None,
        picture=picture,
        max_probability=round(highest, 4) if np.isfinite(highest) else None,
    )


def _compare_block(
    block_grid: Grid,
    row: int,
    col: int,
    current: str,
    previous: str | None,
    threshold: float,
    before_threshold: float,
    chunk: int,
    picture_size: int,
) -> dict:
    """One block of :func:`compare_maps`: each chunk's pieces (all and new) with the chunk's
    top-left pixel, the block's highest probability, and its part of the class picture as
    ``(top, left, coarse pixels)``."""
    probability = open_probability(OutputLayout(current), decode=True)
    grid = Grid.from_dataarray(probability)
    before = _as_mosaic(open_probability(OutputLayout(previous), decode=True)) if previous else None
    picture = _Picture(grid, picture_size)
    chunks = []
    highest = -np.inf
    for chunk_row in range(row, row + block_grid.height, chunk):
        for chunk_col in range(col, col + block_grid.width, chunk):
            bottom = min(chunk_row + chunk, row + block_grid.height)
            right = min(chunk_col + chunk, col + block_grid.width)
            now = probability[chunk_row:bottom, chunk_col:right].values
            if np.isfinite(now).any():
                highest = max(highest, float(np.nanmax(now)))
            window = grid.window(chunk_row, chunk_col, *now.shape)
            classes = np.where(np.isfinite(now), CLEAR, NODATA).astype(np.uint8)
            landslide = np.nan_to_num(now, nan=0.0) >= threshold
            classes[landslide] = LANDSLIDE
            pieces = {"all": chunk_pieces(landslide, now, window), "new": []}
            if before is not None:
                earlier = read_window(before, window, resampling="nearest")[0]
                new = landslide & (np.nan_to_num(earlier, nan=np.inf) < before_threshold)
                classes[new] = NEW
                pieces["new"] = chunk_pieces(new, now, window)
            picture.add(chunk_row, chunk_col, classes)
            chunks.append(((chunk_row, chunk_col), pieces))
    step = picture.step
    top, left = row // step, col // step
    bottom = -(-(row + block_grid.height) // step)
    right = -(-(col + block_grid.width) // step)
    return {
        "chunks": chunks,
        "highest": highest,
        "picture": (top, left, picture.array[top:bottom, left:right]),
    }


def _as_mosaic(probability: xr.DataArray) -> xr.DataArray:
    """A probability map as a one-band mosaic that :func:`read_window` reads."""
    return probability.expand_dims("band").assign_coords(band=["probability"])


class _Picture:
    """A coarse class map of the whole grid, at most ``size`` pixels a side, built chunk by chunk.

    Each coarse pixel takes the highest class among the pixels it covers, so a new landslide
    smaller than a coarse pixel still shows.
    """

    def __init__(self, grid: Grid, size: int) -> None:
        self.step = max(1, math.ceil(max(grid.height, grid.width) / size))
        shape = (math.ceil(grid.height / self.step), math.ceil(grid.width / self.step))
        self.array = np.zeros(shape, dtype=np.uint8)

    def add(self, row: int, col: int, classes: np.ndarray) -> None:
        step = self.step
        # Start of each run of pixels that fall in one coarse pixel (aligned to the grid origin).
        rows = np.flatnonzero(np.diff((row + np.arange(classes.shape[0])) // step, prepend=-1))
        cols = np.flatnonzero(np.diff((col + np.arange(classes.shape[1])) // step, prepend=-1))
        coarse = np.maximum.reduceat(np.maximum.reduceat(classes, rows, axis=0), cols, axis=1)
        top, left = row // step, col // step
        target = self.array[top : top + coarse.shape[0], left : left + coarse.shape[1]]
        np.maximum(target, coarse, out=target)


def write_picture(uri: str, picture: np.ndarray) -> str:
    """Write a class picture as a PNG: grey = no landslide, orange = landslide, red = new,
    transparent = no data. Returns ``uri``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_COLOURS[picture], mode="RGBA").save(buffer, format="PNG")
    storage.write_bytes(uri, buffer.getvalue())
    return uri
