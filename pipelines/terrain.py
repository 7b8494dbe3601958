"""Terrain derivatives of a DEM in ground units, under a halo contract that makes tiling exact.

Bands, selectable by name (:data:`TERRAIN_BANDS`), all ``float32``:

- ``slope``: degrees from horizontal, 0-90.
- ``aspect_sin``, ``aspect_cos``: east and north components of the unit vector pointing downslope,
  i.e. sin and cos of the aspect azimuth (clockwise from north, the direction the slope faces).
  As two bands the aspect has no 359 -> 0 wrap-around. Flat ground (a gradient of exactly zero)
  has no aspect: both bands are 0 there.
- ``hillshade``: illumination 0-1 (not 0-255) from a sun by default at azimuth 315 (north-west),
  altitude 45 degrees: the cosine of the angle between the surface normal and the sun, 0 in shadow. Flat
  ground is ``sin(45) = 0.707``.
- ``curvature``: minus the Laplacian of elevation, ``-(d2z/dx2 + d2z/dy2)``, in 1/m: positive on
  convex ground (ridges, tops), negative in concave ground (hollows, valleys). ArcGIS's curvature
  is this times 100.
- ``relative_elevation``: metres above the mean elevation (of the valid pixels) of a window
  ``relative_radius_m`` around the pixel: a box of half-sides ``round(radius / pixel size)``
  pixels along each axis (at least 1), so about a square of side ``2 * radius`` on the ground.

Ground units. Gradients use the grid's real pixel spacing (:func:`ground_spacing`): a projected
CRS's linear unit (metres, feet, ...) converted to metres, not corrected for the projection's scale
factor; a geographic CRS's degrees converted per row, at the row's latitude, to metres along the
parallel (``N cos(lat) dlon``) and the meridian (``M dlat``) on the CRS's ellipsoid. Elevations are
taken as metres, times ``z_factor`` (0.3048 for a DEM in feet). A plain number instead of a grid
means square, north-up pixels of that size in metres (chips with no georeferencing).

Stencils. ``slope``, ``aspect_*`` and ``hillshade`` use Horn's 3x3 gradient (as GDAL does),
``curvature`` the 5-point second differences: they need no more than the 3x3 neighbourhood of a
pixel, i.e. a halo of 1. ``relative_elevation`` needs its window: a halo of its radius in pixels
(:meth:`TerrainBand.halo`).

Contract (:func:`compute_terrain`): the result has the DEM array's shape. Its outer
:func:`required_halo` pixels on every side depend on what lies beyond the array, which the function
does not see; everything inside them is exact. So a caller that maps a region tile by tile reads
each tile's DEM window padded by ``required_halo`` pixels of real data on every side (clipped where
the DEM itself ends), computes with the padded window's own grid, and crops the padding: the tiles
then equal one pass over the whole DEM (:func:`compute_terrain_tiled` does exactly that), bit for
bit on projected grids (no sum runs from a window's corner). A caller with one self-contained DEM
(a training chip) computes on it directly: its edges get the edge rule below.

Edge rule (the array's edge, taken as the end of the data): the DEM is extended by odd reflection,
``z(-k) = 2 z(0) - z(k)``, i.e. linear extrapolation. Never zeros (which make false cliffs) and
exact on planes: a 3x3 derivative at the edge becomes a one-sided difference, relative elevation
of a plane is 0 up to the edge. Curvature across the edge is 0 on the edge row/column itself.

No data (NaN): never filled. A 3x3 derivative whose stencil touches a NaN is NaN, so a hole grows
by one pixel in those bands and its rim has no invented slopes. Relative elevation is the pixel
minus the mean of the *valid* pixels of its window (NaN only where the pixel itself is): its
window is large, and one missing pixel should not blank out a whole window around it. A DEM window
read beyond its mosaic (NaN there, as :func:`pipelines.raster.read_window` returns) is treated as a
hole, not as an edge.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyproj

from pipelines.errors import InputError
from pipelines.raster import Grid

DEFAULT_RELATIVE_RADIUS_M = 50.0
HILLSHADE_AZIMUTH = 315.0
HILLSHADE_ALTITUDE = 45.0

# Halo of the 3x3 stencils (Horn's gradient, 5-point second differences).
_STENCIL_HALO = 1
# Relative elevation sums elevations as integers of 1/65536 m: exact for float32 DEMs above 2 m
# (their resolution is coarser), and far below any DEM's accuracy elsewhere.
_FIXED_POINT = 2.0**16


@dataclass(frozen=True)
class TerrainBand:
    """A terrain band: its name, units and whether its window is ``relative_radius_m``."""

    name: str
    units: str
    radius_window: bool = False

    def halo(
        self, pixel_size_m: float, relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M
    ) -> int:
        """Pixels of real data this band needs beyond a window, for pixels of ``pixel_size_m``."""
        if self.radius_window:
            return _radius_px(relative_radius_m, pixel_size_m)
        return _STENCIL_HALO


TERRAIN_BANDS: dict[str, TerrainBand] = {
    band.name: band
    for band in (
        TerrainBand("slope", "degrees"),
        TerrainBand("aspect_sin", "east component of the unit downslope vector"),
        TerrainBand("aspect_cos", "north component of the unit downslope vector"),
        TerrainBand("hillshade", "illumination 0-1, sun at azimuth 315, altitude 45"),
        TerrainBand("curvature", "1/m, minus the Laplacian, positive convex"),
        TerrainBand("relative_elevation", "metres above the window mean", radius_window=True),
    )
}


def terrain_bands(names: Sequence[str]) -> list[TerrainBand]:
    """The bands named, in order; :class:`InputError` for unknown or repeated names."""
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of band names, not the string {names!r}")
    unknown = [name for name in names if name not in TERRAIN_BANDS]
    if unknown:
        raise InputError(f"unknown terrain band(s) {unknown}; known: {', '.join(TERRAIN_BANDS)}")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InputError(f"terrain band(s) {repeated} named more than once")
    return [TERRAIN_BANDS[name] for name in names]


def ground_spacing(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per-row signed pixel spacing in metres, ``(dx, dy)``, each of shape ``(grid.height,)``.

    ``dx`` is the eastward ground distance of one column step, ``dy`` the northward distance of
    one row step (negative for the usual north-up grid, whose rows run south).
    """
    transform = grid.transform
    if transform.b or transform.d:
        raise ValueError("rotated or sheared grids are not supported")
    crs = pyproj.CRS.from_user_input(grid.crs)
    if not crs.axis_info:
        raise InputError(f"CRS {grid.crs} has no axis units: cannot tell its pixel size in metres")
    unit = crs.axis_info[0].unit_conversion_factor  # metres or radians per CRS unit
    ones = np.ones(grid.height)
    if not crs.is_geographic:
        return transform.a * unit * ones, transform.e * unit * ones
    lat = (transform.f + transform.e * (np.arange(grid.height) + 0.5)) * unit
    a, b = crs.ellipsoid.semi_major_metre, crs.ellipsoid.semi_minor_metre
    e2 = 1.0 - (b / a) ** 2
    w = np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
    prime_vertical = a / w  # radius of curvature along the parallel's normal section
    meridional = a * (1.0 - e2) / w**3
    return (
        transform.a * unit * prime_vertical * np.cos(lat),
        transform.e * unit * meridional,
    )


def ground_pixel_size(spacing: Grid | float) -> float:
    """The smallest ground pixel dimension in metres over all rows of ``spacing``."""
    if isinstance(spacing, Grid):
        dx, dy = ground_spacing(spacing)
        return float(min(np.abs(dx).min(), np.abs(dy).min()))
    if not spacing > 0:
        raise ValueError(f"pixel size must be a positive number of metres, got {spacing}")
    return float(spacing)


def required_halo(
    names: Sequence[str],
    spacing: Grid | float,
    *,
    relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M,
) -> int:
    """Pixels of real data the bands need beyond a window of ``spacing`` (0 for no bands).

    ``spacing`` is the window's grid (its smallest ground pixel sets the halo) or a pixel size in
    metres. A DEM read for a window must reach this many pixels further on every side.
    """
    size = ground_pixel_size(spacing)
    return max((b.halo(size, relative_radius_m) for b in terrain_bands(names)), default=0)


def compute_terrain(
    dem: np.ndarray,
    spacing: Grid | float,
    names: Sequence[str],
    *,
    relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M,
    hillshade_azimuth: float = HILLSHADE_AZIMUTH,
    hillshade_altitude: float = HILLSHADE_ALTITUDE,
    z_factor: float = 1.0,
) -> np.ndarray:
    """Terrain bands of a DEM array as ``float32 (len(names), H, W)``; see the module contract.

    ``dem`` is ``(H, W)`` elevations, NaN for no data. ``spacing`` is the grid of exactly this
    array (a padded window's own grid, not the unpadded one) or a pixel size in metres. The outer
    :func:`required_halo` pixels use the edge rule; crop them when the array was padded.
    ``hillshade_azimuth``/``hillshade_altitude`` place the sun (degrees; default north-west, 45).
    """
    bands = terrain_bands(names)
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2 or 0 in z.shape:
        raise ValueError(f"dem must be a non-empty 2-D array, got shape {z.shape}")
    z = z * z_factor
    dx, dy = _row_spacing(spacing, z.shape)
    need = {b.name for b in bands}
    out: dict[str, np.ndarray] = {}
    if need & {"slope", "aspect_sin", "aspect_cos", "hillshade"}:
        sun = (hillshade_azimuth, hillshade_altitude)
        out.update(_gradient_bands(z, dx, dy, need, sun))
    if "curvature" in need:
        out["curvature"] = _curvature(z, dx, dy)
    if "relative_elevation" in need:
        out["relative_elevation"] = _relative_elevation(z, dx, dy, relative_radius_m)
    result = np.empty((len(bands), *z.shape), np.float32)
    for i, band in enumerate(bands):
        result[i] = out[band.name]
    # Horn's gradient skips the centre pixel: no data there must still give no data.
    result[:, np.isnan(z)] = np.nan
    return result


def compute_terrain_tiled(
    dem: np.ndarray,
    spacing: Grid | float,
    names: Sequence[str],
    tile: int,
    *,
    halo: int | None = None,
    relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M,
    z_factor: float = 1.0,
) -> np.ndarray:
    """:func:`compute_terrain` over ``dem`` tile by tile, as a mapper runs it.

    Each ``tile`` x ``tile`` tile (the last ones smaller) is computed from its window padded by
    ``halo`` pixels (default :func:`required_halo`) clipped to the DEM, then cropped. With the
    default halo the result equals one pass over the whole DEM; ``halo=0`` shows what seams cost.
    """
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if halo is None:
        halo = required_halo(names, spacing, relative_radius_m=relative_radius_m)
    height, width = np.shape(dem)
    result = np.empty((len(terrain_bands(names)), height, width), np.float32)
    for row in range(0, height, tile):
        for col in range(0, width, tile):
            top, left = max(row - halo, 0), max(col - halo, 0)
            bottom, right = min(row + tile + halo, height), min(col + tile + halo, width)
            window = spacing
            if isinstance(spacing, Grid):
                window = spacing.window(top, left, bottom - top, right - left)
            bands = compute_terrain(
                dem[top:bottom, left:right],
                window,
                names,
                relative_radius_m=relative_radius_m,
                z_factor=z_factor,
            )
            rows = slice(row - top, row - top + min(tile, height - row))
            cols = slice(col - left, col - left + min(tile, width - col))
            result[:, row : row + tile, col : col + tile] = bands[:, rows, cols]
    return result


def _radius_px(radius_m: float, pixel_size_m: float) -> int:
    if not radius_m > 0:
        raise ValueError(f"relative_radius_m must be positive, got {radius_m}")
    # Round half up, at least one pixel: a 1x1 window would make the band identically 0.
    return max(1, math.floor(radius_m / pixel_size_m + 0.5))


def _row_spacing(spacing: Grid | float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(dx, dy)`` for rows -1..height (one row beyond each side, for the stencils)."""
    height, width = shape
    if isinstance(spacing, Grid):
        if spacing.shape != shape:
            raise ValueError(f"grid is {spacing.shape} pixels but the DEM is {shape}")
        return ground_spacing(spacing.window(-1, -1, height + 2, width + 2))
    ones = np.ones(height + 2)
    size = ground_pixel_size(spacing)
    return size * ones, -size * ones


def _extend(z: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The edge rule: odd reflection, i.e. linear extrapolation beyond the array."""
    return np.pad(z, ((rows, rows), (cols, cols)), mode="reflect", reflect_type="odd")


def _gradient(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horn's gradient ``(dz/dEast, dz/dNorth)``; each row's difference uses its own spacing."""
    p = _extend(z, 1, 1)
    across = (p[:, 2:] - p[:, :-2]) / (2.0 * dx[:, None])
    along = (p[2:, :] - p[:-2, :]) / (2.0 * dy[1:-1, None])
    east = (across[:-2] + 2.0 * across[1:-1] + across[2:]) / 4.0
    north = (along[:, :-2] + 2.0 * along[:, 1:-1] + along[:, 2:]) / 4.0
    return east, north


def _gradient_bands(
    z: np.ndarray, dx: np.ndarray, dy: np.ndarray, need: set[str], sun: tuple[float, float]
) -> dict[str, np.ndarray]:
    east, north = _gradient(z, dx, dy)
    magnitude = np.hypot(east, north)
    out = {}
    if "slope" in need:
        out["slope"] = np.degrees(np.arctan(magnitude))
    if need & {"aspect_sin", "aspect_cos"}:
        with np.errstate(invalid="ignore", divide="ignore"):
            # Downslope is minus the gradient; flat ground has no direction: (0, 0), not NaN.
            flat = magnitude == 0
            out["aspect_sin"] = np.where(flat, 0.0, -east / magnitude)
            out["aspect_cos"] = np.where(flat, 0.0, -north / magnitude)
    if "hillshade" in need:
        azimuth, altitude = np.radians(sun)
        # Unit normal (-dz/dE, -dz/dN, 1) / norm dotted with the unit vector towards the sun.
        sun = np.cos(altitude) * (-east * np.sin(azimuth) - north * np.cos(azimuth))
        shade = (sun + np.sin(altitude)) / np.sqrt(1.0 + magnitude**2)
        out["hillshade"] = np.maximum(shade, 0.0)  # NaN stays NaN
    return out


def _curvature(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    p = _extend(z, 1, 1)
    centre = p[1:-1, 1:-1]
    d2x = (p[1:-1, 2:] - 2.0 * centre + p[1:-1, :-2]) / dx[1:-1, None] ** 2
    d2y = (p[2:, 1:-1] - 2.0 * centre + p[:-2, 1:-1]) / dy[1:-1, None] ** 2
    return -(d2x + d2y)


def _relative_elevation(
    z: np.ndarray, dx: np.ndarray, dy: np.ndarray, radius_m: float
) -> np.ndarray:
    height, width = z.shape
    # Window half-sizes per row (they vary with latitude on geographic grids), so a pixel's
    # window depends on where it is, not on which window of the DEM it was computed in.
    rx = np.array([_radius_px(radius_m, abs(d)) for d in dx[1:-1]])[:, None]
    ry = np.array([_radius_px(radius_m, abs(d)) for d in dy[1:-1]])[:, None]
    pad_y, pad_x = int(ry.max()), int(rx.max())
    p = _extend(z, pad_y, pad_x)
    valid = np.isfinite(p)
    # Window sums in fixed point are exact integers: a pixel's mean is then the same bits
    # whichever DEM window it was computed in (a running float sum drifts with the start), which
    # keeps a tiled mapper's output identical for any tiling.
    total = _integral(np.where(valid, np.rint(p * _FIXED_POINT), 0.0).astype(np.int64))
    count = _integral(valid.astype(np.int64))
    rows = np.arange(height)[:, None] + pad_y
    cols = np.arange(width)[None, :] + pad_x
    corners = (rows - ry, rows + ry + 1, cols - rx, cols + rx + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _box(total, *corners) / (_box(count, *corners) * _FIXED_POINT)
    return z - mean


def _integral(values: np.ndarray) -> np.ndarray:
    """Summed-area table with a leading row and column of zeros."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), values.dtype)
    table[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return table


def _box(
    table: np.ndarray, top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Sums over the boxes ``[top, bottom) x [left, right)`` of a summed-area table."""
    return table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
