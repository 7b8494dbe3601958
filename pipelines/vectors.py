"""Vector features (rivers, roads, faults) as rasters: distance to the nearest feature.

A distance layer (:class:`~pipelines.layers.DistanceLayer`) is capped at a maximum distance D,
so a window's values need features no further than D beyond it: a window padded by D pixels
gives exactly the distances the whole region would, and tiling stays exact. Chips and mapping
compute distances with the same :func:`distance_to_features`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import storage
from pipelines.errors import InputError
from pipelines.raster import Grid


@dataclass(frozen=True)
class Features:
    """A vector file's geometries, in ``crs``, and an index of their extents."""

    geometries: Any  # numpy array of shapely geometries
    crs: Any  # pyproj.CRS
    tree: Any  # shapely.STRtree over ``geometries``

    @classmethod
    def of(cls, geometries: Any, crs: Any) -> Features:
        import shapely

        return cls(geometries, crs, shapely.STRtree(geometries))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of all geometries, in :attr:`crs`."""
        import shapely

        return tuple(shapely.total_bounds(self.geometries))  # type: ignore[return-value]

    def to_crs(self, crs: Any) -> Features:
        """The same features in ``crs``."""
        import geopandas

        series = geopandas.GeoSeries(self.geometries, crs=self.crs).to_crs(crs)
        return Features.of(series.values.to_numpy(), series.crs)


def read_vector_file(uri: str, columns: list[str] | None = None) -> Any:
    """A vector file (anything OGR reads; local or s3://) as a GeoDataFrame (``columns``: the
    attributes to read, None: all). Raises what OGR or storage raise."""
    import tempfile
    from pathlib import Path

    import pyogrio

    if not storage.is_remote(uri):
        return pyogrio.read_dataframe(storage.gdal_path(uri), columns=columns)
    # Fetched whole through the storage layer (a full read touches most of the file anyway): the
    # same credentials, retries and errors as every other read; the file keeps its name, whose
    # extension tells OGR the format.
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / uri.rstrip("/").rsplit("/", 1)[-1]
        local.write_bytes(storage.read_bytes(uri))
        return pyogrio.read_dataframe(local, columns=columns)


def read_features(uri: str, what: str | None = None) -> Features:
    """The geometries of a vector file (GeoPackage, GeoJSON, FlatGeobuf, a zipped Shapefile:
    anything OGR reads; local or s3://). Refuses a file that cannot be read, has no CRS or no
    geometry, naming it (and ``what`` it is for)."""
    name = storage.redact(uri) + (f" ({what})" if what else "")
    try:
        frame = read_vector_file(uri, columns=[])
    except Exception as err:  # OGR and storage raise many kinds: all mean an unreadable file
        raise InputError(f"{name}: cannot read it as vector features ({err})") from err
    if frame.crs is None:
        raise InputError(f"{name}: the vector file has no CRS; set one (e.g. ogr2ogr -a_srs)")
    geometries = frame.geometry.values.to_numpy()
    geometries = geometries[[g is not None and not g.is_empty for g in geometries]]
    if not len(geometries):
        raise InputError(f"{name}: the vector file holds no geometry")
    return Features.of(geometries, frame.crs)


def pixel_sizes(grid: Grid) -> tuple[float, float]:
    """A projected grid's pixel height and width in metres."""
    from pipelines.terrain import ground_spacing

    dx, dy = ground_spacing(grid)
    return float(abs(dy[0])), float(abs(dx[0]))


def distance_to_features(features: Features, grid: Grid, max_distance: float) -> np.ndarray:
    """``float32 (H, W)``: metres from each pixel centre of ``grid`` to the nearest pixel that a
    feature touches, capped at ``max_distance``. Features are in the grid's CRS (see
    :meth:`Features.to_crs`); those beyond ``max_distance`` of the grid cannot change it."""
    import shapely
    from rasterio.features import rasterize
    from scipy.ndimage import distance_transform_edt

    shape = (grid.height, grid.width)
    left, bottom, right, top = grid.bounds
    reach = shapely.box(
        left - max_distance, bottom - max_distance, right + max_distance, top + max_distance
    )
    near = features.geometries[features.tree.query(reach)]
    if not len(near):
        return np.full(shape, max_distance, np.float32)
    touched = rasterize(
        near, out_shape=shape, transform=grid.transform, all_touched=True, dtype="uint8"
    )
    if not touched.any():
        return np.full(shape, max_distance, np.float32)
    distance = distance_transform_edt(touched == 0, sampling=pixel_sizes(grid))
    return np.minimum(distance, max_distance).astype(np.float32)


def halo_pixels(max_distance: float, pixel_size: float) -> int:
    """Pixels of padding that hold every feature within ``max_distance`` of a window."""
    return math.ceil(max_distance / pixel_size)
