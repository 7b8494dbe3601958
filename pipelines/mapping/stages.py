"""The mapper's Ray Data stages: read -> infer + write, one row per unit.

Only numpy arrays and scalars flow between stages. Georeferencing never travels in a row: each
stage re-derives a unit's grid from its index and the plan in the ``MapSpec``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from pipelines import storage
from pipelines.bands import BandSet
from pipelines.chips import normalize
from pipelines.mapping import output
from pipelines.mapping.plan import MapPlan, Unit
from pipelines.raster import Grid, open_mosaic, read_window


@dataclass(frozen=True)
class MapSpec:
    """Everything a stage needs, shipped once to every worker (small: URIs, numbers, the plan)."""

    rgb: str
    dem: str | None  # None: the model's bands need no elevation
    model: str
    out: str
    plan: MapPlan
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    batch_size: int
    device: str
    threads: int
    precision: str  # one of pipelines.mapping.predict.PRECISIONS
    dtype: str
    tolerate_read_errors: bool = False
    dem_nodata: float | None = None
    bands: BandSet = BandSet()
    # DEM pixels read beyond a unit's window for its terrain bands (0: none), on the output grid.
    halo: int = 0
    # Where the DEM has data, as output-grid pixels (top, left, bottom, right); beyond it the
    # terrain bands follow the terrain edge rule. None: the whole plane.
    dem_box: tuple[int, int, int, int] | None = None

    @property
    def layout(self) -> output.OutputLayout:
        return output.OutputLayout(self.out)


@functools.lru_cache(maxsize=8)
def _mosaic(uri: str, nodata: float | None = None) -> xr.DataArray:
    # Worker processes are reused across tasks: open each mosaic once per process. No dask: a
    # window read then touches only the store chunks (GDAL blocks) under that window.
    mosaic = open_mosaic(uri, chunks=None)
    return mosaic if nodata is None else mosaic.rio.write_nodata(nodata)


@functools.lru_cache(maxsize=2)
def _output_array(out: str):
    return output.open_array(output.OutputLayout(out))


class _Unreadable(Exception):
    """An input window that cannot be read; the message is the user-facing explanation."""


def _read(uri: str, grid: Grid, unit: Unit, nodata: float | None = None) -> np.ndarray:
    try:
        return read_window(_mosaic(uri, nodata), grid)
    except Exception as err:
        row, col, height, width = unit.read
        raise _Unreadable(
            f"{storage.redact(uri)}: cannot read the window of unit {unit.index} (output rows "
            f"{row}:{row + height}, columns {col}:{col + width}): {err}"
        ) from err


def read_unit(row: dict[str, Any], spec: MapSpec) -> dict[str, Any]:
    """Read a unit's window plus halo from the RGB, warp the DEM onto it (when the bundle's
    bands need it), derive the terrain bands, stack the bundle's bands in order and normalise.

    An unreadable input is reported in the row, not raised (Ray would wrap the exception beyond
    recognition): the driver fails naming the file, or, when the user tolerates read errors, the
    unit is mapped as nodata and its marker says why.
    """
    start = time.perf_counter()
    unit = spec.plan.unit(int(row["unit"]))
    grid = spec.plan.read_grid(unit)
    error = ""
    try:
        rgb = _read(spec.rgb, grid, unit)
        dem, derived = read_dem(spec, unit, spec.halo) if spec.bands.needs_dem else (None, None)
        stack = spec.bands.assemble(rgb, dem, derived)
    except _Unreadable as err:
        error = str(err)
        stack = np.full((len(spec.bands), grid.height, grid.width), np.nan, dtype=np.float32)
    valid = np.isfinite(stack).all(axis=0)
    window = normalize(np.where(valid, stack, 0.0), spec.norm_mean, spec.norm_std)
    window[:, ~valid] = 0.0  # nodata reads as the training mean; it is masked in the output
    return {
        "unit": unit.index,
        "window": window,
        "valid": valid[unit.chunk_in_read],
        "error": error,
        "read_s": time.perf_counter() - start,
    }


def read_dem(spec: MapSpec, unit: Unit, halo: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The DEM on a unit's read window ``(H, W)`` and its terrain bands ``(n, H, W)`` (None
    without terrain bands), NaN = no data.

    The terrain bands are derived from the DEM warped onto the window padded by ``halo`` output
    pixels of real neighbouring data, then cropped: with the bands' required halo
    (``spec.halo``), each pixel's value is the same whichever unit computes it. Beyond the DEM's
    extent (``spec.dem_box``) the padding stops and the terrain edge rule applies.
    """
    grid = spec.plan.read_grid(unit)
    if not spec.bands.terrain:
        return _read(spec.dem, grid, unit, spec.dem_nodata)[0], None
    row, col, height, width = unit.read
    top, left, bottom, right = row - halo, col - halo, row + height + halo, col + width + halo
    if spec.dem_box is not None:
        box_top, box_left, box_bottom, box_right = spec.dem_box
        top, left = max(top, box_top), max(left, box_left)
        bottom, right = min(bottom, box_bottom), min(right, box_right)
    dem = np.full((height, width), np.nan, np.float32)
    derived = np.full((len(spec.bands.terrain), height, width), np.nan, np.float32)
    if top >= bottom or left >= right:  # the window lies wholly beyond the DEM
        return dem, derived
    padded = spec.plan.grid.window(top, left, bottom - top, right - left)
    padded_dem = _read(spec.dem, padded, unit, spec.dem_nodata)[0]
    padded_bands = spec.bands.derive(padded_dem, padded)
    # The part of the unit's window inside the padded one, in both windows' pixels.
    inner_top, inner_left = max(top, row), max(left, col)
    inner_bottom, inner_right = min(bottom, row + height), min(right, col + width)
    if inner_top < inner_bottom and inner_left < inner_right:
        into = np.s_[inner_top - row : inner_bottom - row, inner_left - col : inner_right - col]
        source = np.s_[inner_top - top : inner_bottom - top, inner_left - left : inner_right - left]
        dem[into] = padded_dem[source]
        derived[(slice(None), *into)] = padded_bands[(slice(None), *source)]
    return dem, derived


class InferAndWriteUnits:
    """Actor: loads the model once, then predicts whole units (never a unit partially) and writes
    each one's chunk and marker itself.

    Writing where the probabilities are computed keeps them out of the object store and needs no
    extra worker processes; only each unit's stats flow on to the driver.
    """

    def __init__(self, spec: MapSpec) -> None:
        import torch

        from pipelines.bundles import load_bundle
        from pipelines.mapping.predict import TilePredictor

        torch.set_num_threads(spec.threads)
        self.spec = spec
        self.predictor = TilePredictor(
            load_bundle(spec.model),
            spec.plan.layout,
            batch_size=spec.batch_size,
            device=spec.device,
            precision=spec.precision,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [
            self._map_unit(int(index), window, valid, str(error), float(read_s))
            for index, window, valid, error, read_s in zip(
                batch["unit"],
                batch["window"],
                batch["valid"],
                batch["error"],
                batch["read_s"],
                strict=True,
            )
        ]
        return {key: [row[key] for row in rows] for key in rows[0]}

    def _map_unit(
        self, index: int, window: np.ndarray, valid: np.ndarray, error: str, read_s: float
    ) -> dict[str, Any]:
        unit = self.spec.plan.unit(index)
        top, left, height, width = unit.chunk
        stats = {
            "unit": index,
            "valid_pixels": int(valid.sum()),
            "pixels": height * width,
            "error": error,
            "read_s": read_s,
            "infer_s": 0.0,
            "write_s": 0.0,
        }
        # A unit whose input could not be read is written (as nodata) only when the user
        # tolerates read errors; otherwise the driver fails naming the file.
        if error and not self.spec.tolerate_read_errors:
            return {**stats, "written": False}
        start = time.perf_counter()
        if valid.any():
            probability = self.predictor(window)[unit.chunk_in_read]
        else:  # no valid input anywhere in the chunk: nodata without running the model
            probability = np.zeros(valid.shape, dtype=np.float32)
        stats["infer_s"] = time.perf_counter() - start
        start = time.perf_counter()
        encoded = output.encode(probability, valid, self.spec.dtype)
        # Exactly one chunk, then the marker: a unit is done only once its bytes are stored.
        _output_array(self.spec.out)[top : top + height, left : left + width] = encoded
        stats["write_s"] = time.perf_counter() - start
        output.write_marker(self.spec.layout, index, stats)
        return {**stats, "written": True}
