"""Lazy georeferenced mosaics: open GeoTIFF/COG or Zarr, read any grid's window of them.

A mosaic is an ``xarray.DataArray`` with dims ``(band, y, x)``, backed by dask (nothing is read
when it is opened), with its CRS, transform and nodata attached through rioxarray and its band
names as the string values of the ``band`` coordinate. Georeferencing travels as a :class:`Grid`.

:func:`read_window` returns ``float32`` values on exactly a given grid, NaN where there is no
data: outside the mosaic or equal to its nodata value. Values are not rescaled to a range: uint8
RGB stays 0-255 (as float), a DEM stays in metres. A ``scale_factor``/``add_offset`` stored with
the mosaic is applied.

A Zarr mosaic counts as complete only when its root group carries the attribute
``COMPLETE_ATTR = True``, written after all its chunks (see :func:`mark_complete`); a store
without it (an ingest that died half-way) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rioxarray  # noqa: F401  (registers the ``.rio`` accessor used on every mosaic)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import array_bounds

from pipelines import storage
from pipelines.errors import InputError

COMPLETE_ATTR = "lsmap:complete"

# Pixel offsets closer to an integer than this count as aligned (float noise in transforms).
_ALIGN_TOLERANCE = 1e-6

# Kernel radius, in source pixels, of GDAL's resampling methods (others reach about one pixel).
# Downsampling widens the kernel by the scale factor.
_KERNEL_RADIUS = {"cubic": 2, "cubic_spline": 2, "lanczos": 3}


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid: CRS, affine transform (pixel corner -> map) and shape."""

    crs: CRS
    transform: Affine
    height: int
    width: int

    def __post_init__(self) -> None:
        # Accept any CRS spelling ("EPSG:32648", WKT, pyproj); store rasterio's.
        object.__setattr__(self, "crs", CRS.from_user_input(self.crs))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the grid's CRS."""
        return tuple(float(v) for v in array_bounds(self.height, self.width, self.transform))

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)``, positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``int64`` rows and columns of the pixels holding map points ``(x, y)`` (may lie
        outside the grid)."""
        inverse = ~self.transform
        cols = np.floor(inverse.a * x + inverse.b * y + inverse.c).astype(np.int64)
        rows = np.floor(inverse.d * x + inverse.e * y + inverse.f).astype(np.int64)
        return rows, cols

    def window(self, row: int, col: int, height: int, width: int) -> Grid:
        """The sub-grid whose top-left pixel is ``(row, col)`` of this one (may reach outside it)."""
        return Grid(self.crs, self.transform @ Affine.translation(col, row), height, width)

    @classmethod
    def from_dataarray(cls, da: xr.DataArray) -> Grid:
        """The grid of a rioxarray-georeferenced array."""
        return cls(da.rio.crs, da.rio.transform(), da.rio.height, da.rio.width)


def open_mosaic(uri: str, *, chunks: int | None = 512) -> xr.DataArray:
    """Open a GeoTIFF/COG or an lsmap Zarr store lazily as a ``(band, y, x)`` mosaic.

    ``chunks`` is the dask chunk size in pixels along y and x (all bands in one chunk); ``None``
    opens without dask, still lazily (indexing reads only what it selects). A directory or prefix
    with a ``zarr.json`` is read as Zarr, anything else through GDAL.
    """
    storage.configure_gdal()
    if storage.exists(storage.join(uri, "zarr.json")):
        da = _open_zarr(uri, chunks)
    elif storage.exists(uri):
        da = _open_gdal(uri, chunks)
    else:
        raise InputError(f"{storage.redact(uri)}: no such raster file or Zarr store")
    return _checked(da, uri)


def _dask_chunks(chunks: int | None) -> dict[str, int] | None:
    return None if chunks is None else {"band": -1, "y": chunks, "x": chunks}


def _open_gdal(uri: str, chunks: int | None) -> xr.DataArray:
    import rasterio.errors

    try:
        # lock=False: every dask task opens its own handle, so threads read in parallel.
        da = rioxarray.open_rasterio(
            storage.gdal_path(uri),
            chunks=_dask_chunks(chunks),
            lock=False,
            cache=False,
            mask_and_scale=False,
        )
    except rasterio.errors.RasterioError as err:
        raise InputError(f"{storage.redact(uri)}: cannot read as a raster ({err})") from err
    if not isinstance(da, xr.DataArray):
        raise InputError(f"{storage.redact(uri)}: holds several subdatasets, not one raster")
    count = da.sizes["band"]
    # rioxarray collapses identical descriptions into one string.
    descriptions = da.attrs.pop("long_name", None)
    if isinstance(descriptions, str):
        descriptions = [descriptions] * count
    descriptions = descriptions or [None] * count
    names = [d or f"b{i + 1}" for i, d in enumerate(descriptions)]
    return da.assign_coords(band=np.asarray(names, dtype=str))


def _open_zarr(uri: str, chunks: int | None) -> xr.DataArray:
    store = storage.zarr_store(uri, read_only=True)
    try:
        ds = xr.open_zarr(
            store,
            consolidated=False,
            zarr_format=3,
            chunks=_dask_chunks(chunks),
            mask_and_scale=False,
            decode_coords="all",
        )
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{storage.redact(uri)}: cannot open as a Zarr mosaic ({err})") from err
    if ds.attrs.get(COMPLETE_ATTR) is not True:
        raise InputError(
            f"{storage.redact(uri)}: incomplete Zarr mosaic (no {COMPLETE_ATTR!r} attribute: its "
            "writer did not finish); write it again, e.g. with `lsmap ingest`"
        )
    names = [name for name, var in ds.data_vars.items() if var.dims == ("band", "y", "x")]
    if len(names) != 1:
        raise InputError(
            f"{storage.redact(uri)}: expected one (band, y, x) variable in the Zarr store, found {names}"
        )
    da = ds[names[0]]
    if "band" in da.coords:
        bands = [str(b) for b in da.coords["band"].values]
    else:
        bands = [f"b{i + 1}" for i in range(da.sizes["band"])]
    return da.assign_coords(band=np.asarray(bands, dtype=str))


def _checked(da: xr.DataArray, uri: str) -> xr.DataArray:
    name = storage.redact(uri)
    if da.sizes["band"] == 0:
        raise InputError(f"{name}: has no bands")
    if da.rio.crs is None:
        raise InputError(f"{name}: has no CRS; georeference it (e.g. gdal_edit.py -a_srs) first")
    transform = da.rio.transform()
    if transform == Affine.identity():
        raise InputError(f"{name}: has no geotransform (a plain image); georeference it first")
    if transform.b or transform.d:
        raise InputError(f"{name}: rotated or sheared geotransforms are not supported")
    return da


# Values that tools write where they have no data; none is a plausible elevation next to real
# terrain, except 0 (sea level), which the gap test below tells apart from a coast.
_SENTINELS = (0.0, -9999.0, -32767.0, -32768.0, 32767.0, 65535.0)
# Rows and columns sampled, evenly spaced and including the edges, where no-data collars lie.
_SAMPLE_LINES = 17
# A sentinel is suspect when it fills at least this share of the sample...
_MIN_SHARE = 0.005
# ...and lies further from every other value than this many times their own range.
_MIN_GAP = 1.0


def suspect_undeclared_nodata(da: xr.DataArray) -> float | None:
    """A sentinel value that looks like no-data although ``da`` does not declare it, or None.

    Reads a decimated sample of the first band (evenly spaced whole rows and columns, edges
    included). A value is suspect when it is a usual no-data sentinel (0, -9999, -32767, -32768,
    32767, 65535, the dtype's extremes), covers a noticeable constant area of the sample, and is
    separated from all other values by more than their own range: -32768 around a survey at
    1200-1800 m is, a coast at sea level 0 next to land at 0.5 m is not. Values equal to the
    declared nodata are ignored, so a declared-but-wrong nodata is caught as well.
    """
    height, width = da.sizes["y"], da.sizes["x"]
    rows = np.unique(np.linspace(0, height - 1, min(_SAMPLE_LINES, height)).round().astype(int))
    cols = np.unique(np.linspace(0, width - 1, min(_SAMPLE_LINES, width)).round().astype(int))
    band = da.isel(band=0)
    sample = np.concatenate(
        [
            np.asarray(band.isel(y=rows).values, dtype=np.float64).ravel(),
            np.asarray(band.isel(x=cols).values, dtype=np.float64).ravel(),
        ]
    )
    sample = sample[np.isfinite(sample)]
    declared = da.rio.nodata
    if declared is not None and not np.isnan(declared):
        sample = sample[sample != declared]
    if not sample.size:
        return None
    candidates = set(_SENTINELS)
    if np.issubdtype(da.dtype, np.integer):
        info = np.iinfo(da.dtype)
        candidates |= {float(info.min), float(info.max)}
    elif np.issubdtype(da.dtype, np.floating):
        info = np.finfo(da.dtype)
        candidates |= {float(info.min), float(info.max)}
    for value in sorted(candidates, key=lambda v: -np.count_nonzero(sample == v)):
        is_value = sample == value
        if is_value.mean() < _MIN_SHARE:
            return None  # sorted by count: no other candidate is frequent enough either
        rest = sample[~is_value]
        if not rest.size:
            continue  # a constant raster: nothing tells no-data from terrain
        low, high = rest.min(), rest.max()
        gap = low - value if value < low else value - high
        if gap > _MIN_GAP * max(high - low, 1.0):
            return float(value)
    return None


def check_nodata_declared(da: xr.DataArray, uri: str, option: str) -> None:
    """Refuse a raster whose no-data looks undeclared (see :func:`suspect_undeclared_nodata`).

    The InputError names the file, the suspected value and how to declare it with ``option``.
    """
    value = suspect_undeclared_nodata(da)
    if value is None:
        return
    declared = da.rio.nodata
    problem = (
        "declares no nodata value"
        if declared is None
        else f"declares nodata {declared:g}, but that is not what fills its empty areas"
    )
    raise InputError(
        f"{storage.redact(uri)}: {problem}; a large constant area equals {value:g}, far from all "
        f"other values, which looks like nodata that would be read as real values. Declare it "
        f"with `{option} {value:g}` (or in the file: gdal_edit.py -a_nodata {value:g} FILE)"
    )


def mark_complete(uri: str) -> None:
    """Mark the Zarr store at ``uri`` complete; call only after every chunk has been written."""
    import zarr

    group = zarr.open_group(storage.zarr_store(uri, read_only=False), mode="r+", zarr_format=3)
    group.attrs[COMPLETE_ATTR] = True


def read_window(
    mosaic: xr.DataArray,
    grid: Grid,
    *,
    resampling: str = "bilinear",
    source: Grid | None = None,
) -> np.ndarray:
    """The mosaic's values on ``grid`` as ``float32 (band, grid.height, grid.width)``, NaN = no data.

    When the grid shares the mosaic's CRS, resolution and pixel alignment this is a slice of the
    mosaic (only the chunks it covers are read). Otherwise the source pixels covering the grid,
    plus a margin for the resampling kernel, are read and warped onto it with GDAL
    (``resampling`` names a :class:`rasterio.enums.Resampling`). Deterministic. ``source`` is
    the mosaic's own grid when the caller holds it (rioxarray takes longer to work it out than a
    small window takes to read).
    """
    try:
        method = Resampling[resampling]
    except KeyError:
        raise ValueError(f"unknown resampling {resampling!r}") from None
    source = source if source is not None else Grid.from_dataarray(mosaic)
    offset = _aligned_offset(source, grid)
    if offset is not None:
        return _read_aligned(mosaic, source, grid, *offset)
    return _read_warped(mosaic, source, grid, method)


def _aligned_offset(source: Grid, grid: Grid) -> tuple[int, int] | None:
    """``(row, col)`` of the grid's origin in source pixels, if the grid is the source's lattice."""
    s, g = source.transform, grid.transform
    if s.b or s.d or g.b or g.d:
        return None
    if not (math.isclose(s.a, g.a, rel_tol=1e-9) and math.isclose(s.e, g.e, rel_tol=1e-9)):
        return None
    col, row = (g.c - s.c) / s.a, (g.f - s.f) / s.e
    if abs(col - round(col)) > _ALIGN_TOLERANCE or abs(row - round(row)) > _ALIGN_TOLERANCE:
        return None
    if source.crs != grid.crs:
        return None
    return round(row), round(col)


def _as_float(mosaic: xr.DataArray, block: np.ndarray) -> np.ndarray:
    """Raw mosaic values as float32 with nodata as NaN and any scale/offset applied."""
    values = block.astype(np.float32)
    nodata = mosaic.rio.nodata
    if nodata is not None and not np.isnan(nodata):
        values[block == nodata] = np.nan
    scale = mosaic.attrs.get("scale_factor", 1.0)
    offset = mosaic.attrs.get("add_offset", 0.0)
    if scale != 1.0 or offset != 0.0:
        values = (values * np.float32(scale) + np.float32(offset)).astype(np.float32)
    return values


def _read_block(mosaic: xr.DataArray, rows: slice, cols: slice) -> np.ndarray:
    return _as_float(mosaic, np.asarray(mosaic.isel(y=rows, x=cols).values))


def _read_aligned(mosaic: xr.DataArray, source: Grid, grid: Grid, row: int, col: int) -> np.ndarray:
    out = np.full((mosaic.sizes["band"], grid.height, grid.width), np.nan, dtype=np.float32)
    r0, r1 = max(row, 0), min(row + grid.height, source.height)
    c0, c1 = max(col, 0), min(col + grid.width, source.width)
    if r0 < r1 and c0 < c1:
        out[:, r0 - row : r1 - row, c0 - col : c1 - col] = _read_block(
            mosaic, slice(r0, r1), slice(c0, c1)
        )
    return out


def _read_warped(mosaic: xr.DataArray, source: Grid, grid: Grid, method: Resampling) -> np.ndarray:
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import from_bounds

    out = np.full((mosaic.sizes["band"], grid.height, grid.width), np.nan, dtype=np.float32)
    left, bottom, right, top = transform_bounds(grid.crs, source.crs, *grid.bounds, densify_pts=21)
    window = from_bounds(left, bottom, right, top, transform=source.transform)
    # Destination pixel size in source pixels: when downsampling, GDAL widens the kernel by it.
    scale = max(
        1.0,
        (right - left) / grid.width / source.res[0],
        (top - bottom) / grid.height / source.res[1],
    )
    margin = math.ceil(_KERNEL_RADIUS.get(method.name, 1) * scale) + 1
    r0 = max(math.floor(window.row_off) - margin, 0)
    r1 = min(math.ceil(window.row_off + window.height) + margin, source.height)
    c0 = max(math.floor(window.col_off) - margin, 0)
    c1 = min(math.ceil(window.col_off + window.width) + margin, source.width)
    if r0 >= r1 or c0 >= c1:
        return out
    reproject(
        source=_read_block(mosaic, slice(r0, r1), slice(c0, c1)),
        destination=out,
        src_transform=source.transform @ Affine.translation(c0, r0),
        src_crs=source.crs,
        src_nodata=np.nan,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=method,
    )
    return out
