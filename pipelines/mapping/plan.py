"""Where every pixel comes from: the global grid, its units (output chunks) and the tile grid.

The tile grid is anchored to the output grid's origin, not to units, so a pixel is predicted from the
same tiles, blended in the same order, whichever unit computes it: that is what makes the mosaic
seamless and byte-identical for any number of workers. A unit reads its chunk plus a halo: the
union of all tiles that touch the chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.errors import InputError, LsmapError
from pipelines.raster import Grid

BLENDS = ("ramp", "crop")
# Numeric precision of the forward pass: fp32, or bf16 autocast (GPUs; CPUs with AMX, where it
# runs 2-3x faster). Blending and the stored map stay float32 either way.
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TileLayout:
    """Model-size tiles with ``overlap`` pixels shared between neighbours along each axis.

    ``blend`` says how overlapping predictions combine. ``ramp`` cross-fades them (every pixel of
    a tile counts, with linear ramps over the overlap). ``crop`` keeps only each tile's centre
    (``stride`` pixels, half an overlap of context on every side), as U-Net's overlap-tile strategy
    does: each pixel comes from exactly one tile, and when the chunk size is a multiple of the stride
    no tile is computed twice by neighbouring units.
    """

    tile: int
    overlap: int
    blend: str = "ramp"

    def __post_init__(self) -> None:
        if self.tile <= 0:
            raise LsmapError(f"tile size must be positive, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise LsmapError(
                f"tile overlap must be at least 0 and smaller than the tile ({self.tile}), "
                f"got {self.overlap}"
            )
        if self.blend not in BLENDS:
            raise LsmapError(f"blend must be one of {', '.join(BLENDS)}, got {self.blend!r}")

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def origin(self) -> int:
        """Grid offset of tile 0: half an overlap before the grid, so the scene's first pixels are
        predicted with context on both sides like any others."""
        return -(self.overlap // 2)

    @property
    def support(self) -> tuple[int, int]:
        """The pixels [start, stop) of a tile whose prediction is used (weight > 0)."""
        if self.blend == "crop":
            return self.overlap // 2, self.overlap // 2 + self.stride
        return 0, self.tile

    def count(self, length: int) -> int:
        """Tiles needed along an axis of ``length`` pixels."""
        return max(1, (length - 1 - self.origin - self.support[0]) // self.stride + 1)

    def tiles_touching(self, start: int, stop: int, length: int) -> tuple[int, int]:
        """Index range [first, last] of the tiles, along an axis of ``length`` pixels, whose
        support overlaps [start, stop)."""
        low, high = self.support
        first = (start - self.origin - high) // self.stride + 1
        last = -(-(stop - self.origin - low) // self.stride) - 1
        return max(first, 0), min(last, self.count(length) - 1)

    def weights(self) -> np.ndarray:
        """Blend weights of one tile, (tile, tile) float32.

        ``ramp``: sin² ramps over the overlap; where two tiles share pixels one fades out exactly
        as the other fades in (sin² + cos² = 1), so the blend is a smooth cross-fade. A tile's
        border, where zero padding inside the network distorts predictions, gets almost no weight.
        Every weight is positive, so pixels near the scene edge are still defined.
        ``crop``: one inside the support, zero outside.
        """
        low, high = self.support
        if self.blend == "crop" or self.overlap == 0:
            ramp = np.zeros(self.tile, dtype=np.float64)
            ramp[low:high] = 1.0
        else:
            edge_distance = np.minimum(np.arange(self.tile), np.arange(self.tile)[::-1]) + 0.5
            ramp = np.sin(np.pi / 2 * np.minimum(1.0, edge_distance / self.overlap)) ** 2
        return np.outer(ramp, ramp).astype(np.float32)


@dataclass(frozen=True)
class Unit:
    """One work unit: one output chunk, and the window (chunk plus halo) it reads."""

    index: int
    # row, col, height, width of the chunk in the output grid
    chunk: tuple[int, int, int, int]
    # row, col, height, width of the read window (may leave the grid)
    read: tuple[int, int, int, int]

    @property
    def chunk_in_read(self) -> tuple[slice, slice]:
        """Where the chunk sits inside the read window."""
        row, col, height, width = self.chunk
        top, left = row - self.read[0], col - self.read[1]
        return slice(top, top + height), slice(left, left + width)


@dataclass(frozen=True)
class MapPlan:
    """The output grid cut into chunk-sized units and model-size tiles."""

    grid: Grid
    chunk: int
    layout: TileLayout

    def __post_init__(self) -> None:
        if self.chunk <= 0:
            raise LsmapError(f"chunk size must be positive, got {self.chunk}")

    @property
    def shape(self) -> tuple[int, int]:
        """Units along y and x."""
        return -(-self.grid.height // self.chunk), -(-self.grid.width // self.chunk)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def unit(self, index: int) -> Unit:
        """The unit with this index (row-major over the chunk grid)."""
        rows, cols = self.shape
        if not 0 <= index < rows * cols:
            raise IndexError(f"unit {index} outside a plan of {rows * cols} units")
        chunk_row, chunk_col = divmod(index, cols)
        row, col = chunk_row * self.chunk, chunk_col * self.chunk
        height = min(self.chunk, self.grid.height - row)
        width = min(self.chunk, self.grid.width - col)
        first_y, last_y = self.layout.tiles_touching(row, row + height, self.grid.height)
        first_x, last_x = self.layout.tiles_touching(col, col + width, self.grid.width)
        stride, origin, tile = self.layout.stride, self.layout.origin, self.layout.tile
        read_row, read_col = origin + first_y * stride, origin + first_x * stride
        read = (
            read_row,
            read_col,
            (last_y - first_y) * stride + tile,
            (last_x - first_x) * stride + tile,
        )
        return Unit(index=index, chunk=(row, col, height, width), read=read)

    def read_grid(self, unit: Unit) -> Grid:
        """The georeferenced grid of a unit's read window."""
        return self.grid.window(*unit.read)


def model_grid(
    source: Grid,
    resolution: float | None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str | None = None,
) -> Grid:
    """:func:`output_grid` for a model of ``resolution`` metres (None: the source's pixels);
    refuses a geographic source, whose pixels have no size in metres."""
    if source.crs.is_geographic and resolution is not None:
        raise InputError(
            f"the area is mapped on the grid of the model's first layer, and this file is "
            f"in a geographic CRS ({source.crs}), where the model's {resolution:g} m pixels "
            "have no size; reproject it first, e.g. `rio warp IN OUT --dst-crs EPSG:<UTM "
            f"zone> --res {resolution:g}`"
        )
    return output_grid(source, resolution, bbox=bbox, bbox_crs=bbox_crs)


def output_grid(
    source: Grid,
    resolution: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str | None = None,
) -> Grid:
    """The global output grid: the source grid's CRS, optionally at another ``resolution`` (in CRS
    units), clipped to ``bbox`` (minx, miny, maxx, maxy, in ``bbox_crs``; the grid's CRS by default)."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    grid = source
    if resolution is not None and not math.isclose(
        resolution, abs(source.transform.a), rel_tol=1e-3
    ):
        left, bottom, right, top = source.bounds
        grid = Grid(
            crs=source.crs,
            transform=Affine(resolution, 0.0, left, 0.0, -resolution, top),
            height=max(1, round((top - bottom) / resolution)),
            width=max(1, round((right - left) / resolution)),
        )
    if bbox is None:
        return grid
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy):
        raise LsmapError(f"area of interest {bbox} is empty: expected minx < maxx and miny < maxy")
    if bbox_crs is not None:
        minx, miny, maxx, maxy = transform_bounds(CRS.from_user_input(bbox_crs), grid.crs, *bbox)
    inverse = ~grid.transform
    cols, rows = zip(*(inverse @ (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    row0, row1 = max(0, math.floor(min(rows))), min(grid.height, math.ceil(max(rows)))
    col0, col1 = max(0, math.floor(min(cols))), min(grid.width, math.ceil(max(cols)))
    if row0 >= row1 or col0 >= col1:
        left, bottom, right, top = grid.bounds
        raise LsmapError(
            f"area of interest {bbox} ({bbox_crs or 'grid CRS'}) lies outside the data, which "
            f"covers ({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}) in {grid.crs}"
        )
    return grid.window(row0, col0, row1 - row0, col1 - col0)
