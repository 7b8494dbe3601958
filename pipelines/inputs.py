"""A run's inputs: a model's layers bound to the files a user gives, and window reads of them.

The user names a file per layer (``--rgb``/``--dem`` for the layers ``image`` and ``dem``, or a
layers file, see :func:`read_layers_file`); :func:`bind_inputs` opens and checks each against
the model's :class:`~pipelines.layers.LayerStack` and returns :class:`MapInputs`, the one object
the mapper's stages read windows through (:meth:`MapInputs.read`). Adding a kind of layer adds a
class in :mod:`pipelines.layers`, not a parameter here.

The output grid is the grid of the model's first raster layer (the imagery when there is one,
else the DEM); every other layer is warped onto it with its kind's resampling.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import storage, vectors
from pipelines.errors import InputError, LsmapError
from pipelines.layers import (
    DistanceLayer,
    ElevationLayer,
    Layer,
    LayerStack,
    MaskLayer,
    file_name,
)
from pipelines.raster import Grid, check_nodata_declared, open_mosaic, read_window

# Options of a layer in a layers file that say where its data is, not what it is.
SOURCE_KEYS = ("uri", "asset", "nodata")
# The command line's shorthand layers: --rgb and --dem.
SHORTHAND = {"rgb": "image", "dem": "dem"}


@dataclass(frozen=True)
class LayerInput:
    """Where a layer's data is: a raster URI (local, s3://; GeoTIFF/COG or Zarr) or a STAC Item
    with the ``asset`` to read, and a ``nodata`` value overriding the file's.

    Bands kept as separate single-band files on one grid (Sentinel-2 style) are a tuple of URIs,
    or an Item with a tuple of assets, in band order. With ``mask`` (class codes), the input is
    not a model layer but a mask: pixels whose code is in it (clouds and shadows of a scene
    classification layer) are nodata in the map.
    """

    uri: str | tuple[str, ...]
    asset: str | tuple[str, ...] | None = None
    nodata: float | None = None
    mask: tuple[int, ...] | None = None


@dataclass(frozen=True)
class LayersFile:
    """A layers file: the layers' definitions (for training) and their inputs (for mapping)."""

    path: str
    definitions: tuple[dict[str, Any], ...]
    inputs: dict[str, LayerInput]


def read_layers_file(path: str | Path) -> LayersFile:
    """Parse a layers file (YAML, see docs/layers.md); relative URIs resolve against its folder.

    ::

        layers:
          - name: image
            kind: imagery
            uri: post_event.tif
            bands: [red, green, blue, nir]
            dtype: uint16
          - name: dem
            uri: s3://bucket/dem.tif
    """
    import yaml

    name = storage.redact(str(path))
    try:
        document = yaml.safe_load(storage.read_bytes(str(path)))
    except (OSError, LsmapError) as err:
        raise InputError(f"layers file {name}: cannot read it ({err})") from err
    except yaml.YAMLError as err:
        raise InputError(f"layers file {name}: not valid YAML ({err})") from err
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise InputError(f"layers file {name}: expected `layers:` holding a list of layers")
    folder = storage.absolute(str(path)).rsplit("/", 1)[0]
    definitions, inputs = [], {}
    for entry in layers:
        layer_name = entry.get("name")
        if not isinstance(layer_name, str) or not layer_name:
            raise InputError(f"layers file {name}: every layer needs a name, got {entry!r}")
        if layer_name in inputs or any(d["name"] == layer_name for d in definitions):
            raise InputError(f"layers file {name}: two layers are named {layer_name!r}")
        mask = None
        if entry.get("kind") == "mask":
            mask = _mask_codes(entry, f"layers file {name}: layer {layer_name!r}")
            if "uri" not in entry:
                raise InputError(f"layers file {name}: mask {layer_name!r} has no uri")
        definition = {k: v for k, v in entry.items() if k not in SOURCE_KEYS}
        if set(definition) - {"name"} and mask is None:
            definitions.append(definition)
        if "uri" in entry:
            uri = entry["uri"]
            uris = tuple(uri) if isinstance(uri, list) else (str(uri),)
            uris = tuple(
                u if storage.is_remote(u) or Path(u).is_absolute() else storage.join(folder, u)
                for u in map(str, uris)
            )
            asset = entry.get("asset")
            asset = tuple(map(str, asset)) if isinstance(asset, list) else asset
            nodata = entry.get("nodata")
            if nodata is not None and (
                isinstance(nodata, bool) or not isinstance(nodata, (int, float))
            ):
                raise InputError(
                    f"layers file {name}: layer {layer_name!r}: nodata must be a number"
                )
            inputs[layer_name] = LayerInput(uris if len(uris) > 1 else uris[0], asset, nodata, mask)
        elif "asset" in entry or "nodata" in entry:
            raise InputError(f"layers file {name}: layer {layer_name!r} has no uri")
    return LayersFile(str(path), tuple(definitions), inputs)


def _mask_codes(entry: Mapping[str, Any], where: str) -> tuple[int, ...]:
    codes = entry.get("codes")
    unknown = sorted(set(entry) - {"name", "kind", "codes", *SOURCE_KEYS})
    if unknown:
        raise InputError(f"{where}: a mask takes codes, uri, asset, nodata; not {unknown}")
    if (
        not isinstance(codes, list)
        or not codes
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes)
    ):
        raise InputError(f"{where}: a mask needs `codes`, the class codes to mask, got {codes!r}")
    return tuple(codes)


def describe_layers(stack: LayerStack) -> str:
    """A layers file for ``stack`` (what a model expects), its URIs left to fill in."""
    import yaml

    layers = []
    for layer in stack.layers:
        record = layer.record()
        if layer.reads_file:
            suffix = "gpkg" if isinstance(layer, DistanceLayer) else "tif"  # vector or raster
            record = {"name": record.pop("name"), "uri": f"<{layer.name}.{suffix}>", **record}
        layers.append(record)
    return yaml.safe_dump({"layers": layers}, sort_keys=False)


@dataclass(frozen=True)
class LayerSource:
    """A file layer bound to its data for one run, in output-grid pixels.

    ``halo``: pixels read beyond a window for the layer's values (0: none); ``box``: where the
    file has data, ``(top, left, bottom, right)`` (None: everywhere), beyond which the layer's
    halo stops and its edge rule applies."""

    layer: Layer
    uri: str | tuple[str, ...]  # a tuple: one single-band file per band
    nodata: float | None = None
    halo: int = 0
    box: tuple[int, int, int, int] | None = None

    @property
    def name(self) -> str:
        """The source's file(s), as messages name them."""
        return file_name(self.uri)


class UnreadableLayer(Exception):
    """A layer window that cannot be read; the message is the user-facing explanation."""


@dataclass(frozen=True)
class MapInputs:
    """A model's layers and their files: reads the model input of any window of the grid."""

    stack: LayerStack
    sources: tuple[LayerSource, ...]
    masks: tuple[LayerSource, ...] = ()

    def __getitem__(self, name: str) -> LayerSource:
        for source in self.sources:
            if source.layer.name == name:
                return source
        raise KeyError(name)

    @property
    def uris(self) -> dict[str, str | list[str]]:
        """Each layer's and mask's file(s) by name (JSON values)."""
        return {
            source.layer.name: source.uri if isinstance(source.uri, str) else list(source.uri)
            for source in (*self.sources, *self.masks)
        }

    def read(self, grid: Grid, window: tuple[int, int, int, int], plane: Grid) -> np.ndarray:
        """The model input ``float32 (bands, H, W)`` of ``window`` ``(row, col, H, W)`` of the
        ``plane`` grid (``grid`` is that window's own grid), NaN = no data. Each pixel's value is
        the same whichever window reads it: layers with a halo read their real neighbours.
        Raises :class:`UnreadableLayer` naming the file; :class:`InputError` for values the
        model cannot take (e.g. an unseen category)."""
        with storage.gdal_env():
            encoded = {
                source.layer.name: _read_layer(source, grid, window, plane)
                for source in self.sources
            }
            stack = self.stack.encode(encoded, grid)
            for mask in self.masks:
                stack[:, _read_layer(mask, grid, window, plane)[0] == 1] = np.nan
        return stack


def open_source(uri: str | tuple[str, ...], *, chunks: int | None = 512):
    """A layer's file, or its single-band files (one per band, on one grid) as one mosaic."""
    if isinstance(uri, str):
        return open_mosaic(uri, chunks=chunks)
    import xarray as xr

    # Separate files join lazily only as dask arrays (plain ones would be read whole).
    parts = [open_mosaic(part, chunks=chunks or 512) for part in uri]
    grid = Grid.from_dataarray(parts[0])
    for part, mosaic in zip(uri, parts, strict=True):
        if mosaic.sizes["band"] != 1:
            raise InputError(
                f"{storage.redact(part)}: a layer of one file per band needs single-band files, "
                f"this one has {mosaic.sizes['band']}"
            )
        if Grid.from_dataarray(mosaic) != grid or mosaic.dtype != parts[0].dtype:
            raise InputError(
                f"{storage.redact(part)}: the files of one layer must share grid and type, as "
                f"{storage.redact(uri[0])}'s; resample it first"
            )
    names = [Path(part).stem for part in uri]
    joined = xr.concat(parts, dim="band", combine_attrs="override")
    return joined.assign_coords(band=np.asarray(names, dtype=str))


@functools.lru_cache(maxsize=16)
def _opened(layer: Layer, uri: str | tuple[str, ...], nodata: float | None):
    # Worker processes are reused across tasks: open each file once per process. No dask for
    # one file: a window read then touches only the store chunks (GDAL blocks) under it.
    mosaic = open_source(uri, chunks=None)
    if nodata is not None:
        mosaic = mosaic.rio.write_nodata(nodata)
    mosaic = layer.check_file(mosaic, uri)
    return mosaic, Grid.from_dataarray(mosaic)


@functools.lru_cache(maxsize=16)
def _features(uri: str, crs: Any) -> vectors.Features:
    """A vector layer's features in ``crs``, read and reprojected once per process."""
    return vectors.read_features(uri).to_crs(crs)


def _read_file(source: LayerSource, grid: Grid, window: tuple[int, int, int, int]) -> np.ndarray:
    layer = source.layer
    try:
        if isinstance(layer, DistanceLayer):
            features = _features(source.uri, grid.crs)
            return vectors.distance_to_features(features, grid, layer.max_distance)[None]
        mosaic, mosaic_grid = _opened(layer, source.uri, source.nodata)
        return read_window(mosaic, grid, resampling=layer.resampling, source=mosaic_grid)
    except Exception as err:
        row, col, height, width = window
        raise UnreadableLayer(
            f"{source.name} ({source.layer.describe()}): cannot read the window "
            f"at output rows {row}:{row + height}, columns {col}:{col + width}: {err}"
        ) from err


def _read_layer(
    source: LayerSource, grid: Grid, window: tuple[int, int, int, int], plane: Grid
) -> np.ndarray:
    """A layer's bands on ``window``. With a halo, the file is read on the window padded by the
    halo (up to the file's box), encoded there and cropped."""
    layer = source.layer
    if not source.halo:
        return layer.encode(_read_file(source, grid, window), grid, source.uri)
    row, col, height, width = window
    halo = source.halo
    top, left, bottom, right = row - halo, col - halo, row + height + halo, col + width + halo
    if source.box is not None:
        box_top, box_left, box_bottom, box_right = source.box
        top, left = max(top, box_top), max(left, box_left)
        bottom, right = min(bottom, box_bottom), min(right, box_right)
    out = np.full((len(layer.bands), height, width), np.nan, np.float32)
    if top >= bottom or left >= right:  # the window lies wholly beyond the file
        return out
    padded = plane.window(top, left, bottom - top, right - left)
    values = layer.encode(_read_file(source, padded, window), padded, source.uri)
    # The part of the window inside the padded one, in both windows' pixels.
    inner_top, inner_left = max(top, row), max(left, col)
    inner_bottom, inner_right = min(bottom, row + height), min(right, col + width)
    if inner_top < inner_bottom and inner_left < inner_right:
        into = np.s_[:, inner_top - row : inner_bottom - row, inner_left - col : inner_right - col]
        take = np.s_[
            :, inner_top - top : inner_bottom - top, inner_left - left : inner_right - left
        ]
        out[into] = values[take]
    return out


@dataclass(frozen=True)
class BoundInputs:
    """What :func:`bind_inputs` finds: the inputs, the output grid (made from the first layer's),
    each other layer's share of it, and the STAC Items the inputs came from (None: files)."""

    inputs: MapInputs
    grid: Grid
    coverage: dict[str, float]
    items: dict[str, Any]


def bind_inputs(
    stack: LayerStack,
    given: Mapping[str, LayerInput | str],
    output_grid: Any,
) -> BoundInputs:
    """Open and check each of the model's file layers in ``given`` (by layer name).

    ``output_grid(source_grid) -> Grid`` makes the output grid from the first layer's grid.
    Refuses a missing layer, a file the layer would misread, and a layer that does not overlap
    the area, each naming the layer and file; warns of partial coverage. Given layers the model
    does not read are not opened (a region's layers file may list every layer it has).
    """
    from pipelines import stac  # imports the mapper, which imports this module

    given = {k: v if isinstance(v, LayerInput) else LayerInput(v) for k, v in given.items()}
    opened = []
    items: dict[str, Any] = {}
    masks = [MaskLayer(name, spec.mask) for name, spec in given.items() if spec.mask]
    for layer in (*stack.files, *masks):
        if layer.name not in given:
            flag = {v: k for k, v in SHORTHAND.items()}.get(layer.name)
            how = f"--{flag} URI or " if flag else ""
            raise InputError(
                f"the model reads {layer.describe()}, bands {', '.join(layer.bands)}: give its "
                f"file ({how}a layers file with --layers)"
            )
        spec = given[layer.name]
        uri, items[layer.name] = _resolve(spec, stac)
        if isinstance(layer, DistanceLayer):
            if not isinstance(uri, str):
                raise InputError(f"{layer.describe()}: reads one vector file, not several")
            features = vectors.read_features(uri, layer.describe())
            opened.append((LayerSource(layer, uri), features))
            continue
        mosaic = open_source(uri)
        declared = mosaic if spec.nodata is None else mosaic.rio.write_nodata(spec.nodata)
        if isinstance(layer, ElevationLayer):
            option = "--dem-nodata" if layer.name == "dem" else "`nodata:` in the layers file"
            check_nodata_declared(declared, file_name(uri), option)
        layer.check_file(declared, uri)
        opened.append((LayerSource(layer, uri, spec.nodata), Grid.from_dataarray(mosaic)))
    # The output grid is the first raster layer's: vector features have no grid.
    first, first_grid = next(
        ((source, extent) for source, extent in opened if isinstance(extent, Grid)), (None, None)
    )
    if first is None:
        raise InputError("the model reads no raster layer to make the output grid from")
    try:
        grid = output_grid(first_grid)
    except InputError as err:
        raise InputError(f"{first.name} ({first.layer.describe()}): {err}") from err
    sources, coverage = [], {}
    for source, extent in opened:
        # The halo from the whole grid's smallest ground pixel: every unit reads alike.
        halo = source.layer.halo(grid)
        if isinstance(extent, vectors.Features):
            _check_features_reach(grid, extent, source)
            sources.append(replace(source, halo=halo))
            continue
        if source is not first:
            coverage[source.layer.name] = _coverage(grid, extent, source, first)
        box = data_box(grid, extent) if halo else None
        sources.append(replace(source, halo=halo, box=box))
    files = len(stack.files)
    inputs = MapInputs(stack, tuple(sources[:files]), tuple(sources[files:]))
    return BoundInputs(inputs, grid, coverage, items)


def _resolve(spec: LayerInput, stac: Any) -> tuple[str | tuple[str, ...], Any]:
    """A layer input's file(s), STAC assets resolved, and its Item (None: plain files)."""
    if isinstance(spec.asset, tuple):
        if not isinstance(spec.uri, str):
            raise InputError("a layer of several assets names one STAC Item, not several files")
        resolved = [stac.resolve_raster(spec.uri, asset) for asset in spec.asset]
        return tuple(uri for uri, _ in resolved), resolved[0][1]
    if isinstance(spec.uri, tuple):
        return spec.uri, None
    return stac.resolve_raster(spec.uri, spec.asset)


def data_box(grid: Grid, extent: Grid) -> tuple[int, int, int, int]:
    """A file's extent as output-grid pixels ``(top, left, bottom, right)``, rounded inwards
    (it may reach beyond the grid)."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(
        extent.crs, grid.crs, *extent.bounds, densify_pts=21
    )
    inverse = ~grid.transform
    cols, rows = zip(*(inverse * (x, y) for x in (left, right) for y in (bottom, top)), strict=True)
    # Inwards, but edges within float noise of a pixel boundary stay on it.
    return (
        math.ceil(min(rows) - 1e-6),
        math.ceil(min(cols) - 1e-6),
        math.floor(max(rows) + 1e-6),
        math.floor(max(cols) + 1e-6),
    )


def _check_features_reach(grid: Grid, features: vectors.Features, source: LayerSource) -> None:
    """Refuses vector features none of which lie within the layer's maximum distance of the
    area: then the layer is the same everywhere, most likely the wrong file or CRS."""
    import shapely

    reach = source.layer.max_distance  # type: ignore[attr-defined]
    left, bottom, right, top = grid.bounds
    area = shapely.box(left, bottom, right, top).buffer(reach, join_style="mitre")
    if not features.to_crs(grid.crs).tree.query(area, predicate="intersects").size:
        raise InputError(
            f"{source.name} ({source.layer.describe()}): no feature lies within its "
            f"max_distance ({reach:g} m) of the area to map, ({left:.1f}, {bottom:.1f}, "
            f"{right:.1f}, {top:.1f}) in {grid.crs}; check the file and its CRS"
        )


def _coverage(grid: Grid, extent: Grid, source: LayerSource, first: LayerSource) -> float:
    """Share of the output grid's area that a layer's file covers; refuses no overlap."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(
        extent.crs, grid.crs, *extent.bounds, densify_pts=21
    )
    g_left, g_bottom, g_right, g_top = grid.bounds
    width = max(0.0, min(right, g_right) - max(left, g_left))
    height = max(0.0, min(top, g_top) - max(bottom, g_bottom))
    coverage = width * height / ((g_right - g_left) * (g_top - g_bottom))
    if coverage == 0:
        raise InputError(
            f"{source.name} ({source.layer.describe()}) does not overlap the area to map: it "
            f"covers ({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}) and the area, from "
            f"{first.name}, ({g_left:.1f}, {g_bottom:.1f}, {g_right:.1f}, "
            f"{g_top:.1f}) in {grid.crs}"
        )
    if coverage < 0.999:
        warnings.warn(
            f"{source.name} ({source.layer.describe()}) covers {coverage:.1%} of the area to "
            "map; pixels without its data are written as nodata",
            stacklevel=4,
        )
    return coverage
