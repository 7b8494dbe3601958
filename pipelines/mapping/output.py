"""The output of a map run and who writes what.

```
OUT/
  probability.zarr   Zarr v2: ``probability`` (y, x), CF georeferencing (``spatial_ref``)
  units/<i>.json     one marker per finished unit (written after its chunk)
  manifest.json      run identity, parameters, unit counts, timings; ``status`` is ``complete``
                     only after every unit is written and exports are done; ``outputs`` names
                     the run's files relative to OUT, so the folder can be moved or uploaded
```
The driver creates the store and its metadata once, before any unit runs, and writes the manifest;
each unit writes exactly its own chunk and then its marker. Nobody writes both.

The store is Zarr format 2 (:data:`ZARR_FORMAT`): GDAL before 3.11 (the one in rasterio 1.4
wheels) reads no array that zarr-python 3 writes in format 3; xarray, rioxarray, titiler and GDAL
all read format 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import dask.array
import numpy as np
import xarray as xr
import zarr

from pipelines import storage
from pipelines.errors import LsmapError
from pipelines.raster import Grid

VARIABLE = "probability"
NODATA_UINT8 = 255
ZARR_FORMAT = 2
# The group's metadata file in Zarr format 2: its presence means the store exists.
GROUP_METADATA = ".zgroup"
# uint8 probabilities: p -> round(p * 254); 255 is nodata. xarray decodes them back to [0, 1].
UINT8_SCALE = 254


@dataclass(frozen=True)
class OutputLayout:
    """Where each part of a run's output lives under ``root``."""

    root: str

    @property
    def zarr(self) -> str:
        return storage.join(self.root, "probability.zarr")

    @property
    def manifest(self) -> str:
        return storage.join(self.root, "manifest.json")

    @property
    def units(self) -> str:
        return storage.join(self.root, "units")

    def marker(self, index: int) -> str:
        return storage.join(self.units, f"{index}.json")

    def file(self, name: str) -> str:
        return storage.join(self.root, name)

    def relative(self, files: Any) -> Any:
        """URIs of files under the root (a string, or dicts and lists of them) as paths relative
        to the root: what the manifest records, so the folder stays whole when moved."""
        if isinstance(files, dict):
            return {key: self.relative(value) for key, value in files.items()}
        if isinstance(files, list):
            return [self.relative(value) for value in files]
        prefix = self.root.rstrip("/") + "/"
        if not files.startswith(prefix):
            raise ValueError(f"{files} is not under the output directory {self.root}")
        return files[len(prefix) :]

    def resolve(self, outputs: dict) -> dict:
        """A manifest's ``outputs`` as URIs under this root, wherever the folder now lives.

        Manifests record paths relative to the folder. Older ones recorded the ``--out`` path
        as given (relative to a former working directory, or an absolute path the folder may have
        left): their ``probability`` entry ends in ``probability.zarr``, so what comes before it
        is that former root, and every entry is taken relative to it.
        """
        recorded = outputs.get("probability", "")
        name = "probability.zarr"
        former_root = recorded[: -len(name)] if recorded.endswith(name) else ""

        def resolve(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: resolve(item) for key, item in value.items()}
            if isinstance(value, list):
                return [resolve(item) for item in value]
            if former_root and value.startswith(former_root):
                value = value[len(former_root) :]
            return storage.join(self.root, value)

        return resolve(outputs)


def encode(probability: np.ndarray, valid: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities in [0, 1] to the stored dtype, nodata where ``valid`` is False."""
    if dtype == "uint8":
        encoded = np.rint(np.clip(probability, 0.0, 1.0) * UINT8_SCALE).astype(np.uint8)
        encoded[~valid] = NODATA_UINT8
        return encoded
    encoded = probability.astype(np.float32, copy=True)
    encoded[~valid] = np.nan
    return encoded


def create_store(layout: OutputLayout, grid: Grid, chunk: int, dtype: str, run: dict) -> None:
    """Create the empty probability store with its georeferencing and the run's identity."""
    if dtype not in ("uint8", "float32"):
        raise LsmapError(f"output dtype must be uint8 or float32, got {dtype!r}")
    template = xr.DataArray(
        dask.array.full((grid.height, grid.width), np.nan, dtype=np.float32, chunks=chunk),
        dims=("y", "x"),
        coords=_pixel_centres(grid),
        name=VARIABLE,
        attrs={"long_name": "landslide probability", "units": "1"},
    )
    # CF georeferencing as rioxarray writes it: a `spatial_ref` grid mapping (crs_wkt, GeoTransform)
    # named by the variable's `grid_mapping`, and x/y coordinates with their standard names.
    template = (
        template.rio.write_crs(grid.crs)
        .rio.write_transform(grid.transform)
        .rio.write_coordinate_system()
    )
    # "/"-separated chunk keys (``probability/<row>/<col>``): directories stay small on big regions.
    encoding: dict[str, Any] = template.encoding | {
        "chunks": (chunk, chunk),
        "chunk_key_encoding": {"name": "v2", "separator": "/"},
    }
    if dtype == "uint8":
        encoding |= {"dtype": "uint8", "scale_factor": 1 / UINT8_SCALE, "_FillValue": NODATA_UINT8}
    else:
        encoding |= {"dtype": "float32", "_FillValue": np.nan}
    dataset = template.to_dataset()
    dataset.attrs = {"lsmap_run": json.dumps(run, sort_keys=True), "lsmap_status": "running"}
    dataset[VARIABLE].encoding = encoding
    for name in ("x", "y"):  # coordinates have no missing values
        dataset[name].encoding = {"_FillValue": None}
    store = storage.zarr_store(layout.zarr, read_only=False)
    dataset.to_zarr(store, mode="w", compute=False, zarr_format=ZARR_FORMAT, consolidated=False)


def _pixel_centres(grid: Grid) -> dict[str, np.ndarray]:
    t = grid.transform
    return {
        "y": t.f + (np.arange(grid.height) + 0.5) * t.e,
        "x": t.c + (np.arange(grid.width) + 0.5) * t.a,
    }


def run_inputs(run: dict) -> dict[str, str | list[str]]:
    """A run identity's input files by layer name; runs recorded before layers named their RGB
    and DEM ``rgb`` and ``dem``: they are the layers ``image`` and ``dem``."""
    if "inputs" in run:
        return dict(run["inputs"])
    legacy = {"image": run.get("rgb"), "dem": run.get("dem")}
    return {name: uri for name, uri in legacy.items() if uri is not None}


def source_image(run: dict) -> tuple[str, str]:
    """The layer name and URI of the image a run mapped from: its ``image`` layer, else its
    first layer (the DEM of a terrain-only model); of a layer of one file per band, the first."""
    inputs = run_inputs(run)
    name = "image" if "image" in inputs else next(iter(inputs))
    uri = inputs[name]
    return name, uri if isinstance(uri, str) else uri[0]


def stored_run(layout: OutputLayout) -> dict | None:
    """The run identity recorded in an existing store, or None when there is no store."""
    if not has_store(layout.zarr):
        return None
    recorded = _group(layout, mode="r").attrs.get("lsmap_run")
    return json.loads(recorded) if recorded else {}


def _group(layout: OutputLayout, mode: str) -> zarr.Group:
    store = storage.zarr_store(layout.zarr, read_only=mode == "r")
    return zarr.open_group(store, mode=mode, zarr_format=ZARR_FORMAT)


def has_store(uri: str) -> bool:
    """Whether a probability store (its group metadata) exists at ``uri``."""
    return storage.exists(storage.join(uri, GROUP_METADATA))


def gdal_path(uri: str) -> str:
    """The GDAL name of the probability array in the store at ``uri`` (local or ``/vsis3/``)."""
    return f'ZARR:"{storage.gdal_path(uri)}":/{VARIABLE}'


def set_status(layout: OutputLayout, status: str) -> None:
    """Record the run's status in the store's attributes (driver only)."""
    _group(layout, mode="r+").attrs["lsmap_status"] = status


def open_array(layout: OutputLayout) -> zarr.Array:
    """The probability array, for a unit to write its chunk into."""
    return _group(layout, mode="r+")[VARIABLE]


def finished_units(layout: OutputLayout) -> set[int]:
    """Indices of units whose marker exists."""
    if not storage.exists(layout.units):
        return set()
    names = (uri.rstrip("/").rsplit("/", 1)[-1] for uri in storage.listdir(layout.units))
    return {int(name[: -len(".json")]) for name in names if name.endswith(".json")}


def write_manifest(layout: OutputLayout, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True)
    storage.write_bytes(layout.manifest, storage.redact(text).encode())


def write_marker(layout: OutputLayout, index: int, stats: dict) -> None:
    """Mark a unit finished; written only after its chunk is."""
    storage.write_bytes(layout.marker(index), json.dumps(stats, sort_keys=True).encode())
