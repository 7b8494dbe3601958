"""The mapper's Ray Data stages: read -> infer -> write, one row per unit.

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

from pipelines.chips import normalize
from pipelines.mapping import output
from pipelines.mapping.plan import MapPlan
from pipelines.raster import open_mosaic, read_window


@dataclass(frozen=True)
class MapSpec:
    """Everything a stage needs, shipped once to every worker (small: URIs, numbers, the plan)."""

    rgb: str
    dem: str
    model: str
    out: str
    plan: MapPlan
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    batch_size: int
    device: str
    threads: int
    mixed_precision: bool
    dtype: str

    @property
    def layout(self) -> output.OutputLayout:
        return output.OutputLayout(self.out)


@functools.lru_cache(maxsize=8)
def _mosaic(uri: str) -> xr.DataArray:
    # Worker processes are reused across tasks: open each mosaic once per process.
    return open_mosaic(uri)


@functools.lru_cache(maxsize=2)
def _output_array(out: str):
    return output.open_array(output.OutputLayout(out))


def read_unit(row: dict[str, Any], spec: MapSpec) -> dict[str, Any]:
    """Read a unit's window plus halo from the RGB, warp the DEM onto it, stack and normalise."""
    start = time.perf_counter()
    unit = spec.plan.unit(int(row["unit"]))
    grid = spec.plan.read_grid(unit)
    rgb = read_window(_mosaic(spec.rgb), grid)[:3]
    dem = read_window(_mosaic(spec.dem), grid, resampling="bilinear")[:1]
    stack = np.concatenate([rgb, dem])
    valid = np.isfinite(stack).all(axis=0)
    window = normalize(np.where(valid, stack, 0.0), spec.norm_mean, spec.norm_std)
    window[:, ~valid] = 0.0  # nodata reads as the training mean; it is masked in the output
    return {
        "unit": unit.index,
        "window": window.astype(np.float32, copy=False),
        "valid": valid[unit.chunk_in_read],
        "read_s": time.perf_counter() - start,
    }


class InferUnits:
    """Actor: loads the model once, predicts whole units, never a unit partially."""

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
            mixed_precision=spec.mixed_precision,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        probabilities, seconds = [], []
        for index, window, valid in zip(
            batch["unit"], batch["window"], batch["valid"], strict=True
        ):
            start = time.perf_counter()
            unit = self.spec.plan.unit(int(index))
            if valid.any():
                probability = self.predictor(window)[unit.chunk_in_read]
            else:  # no valid input anywhere in the chunk: nodata without running the model
                probability = np.zeros(valid.shape, dtype=np.float32)
            probabilities.append(probability)
            seconds.append(time.perf_counter() - start)
        return {
            "unit": batch["unit"],
            "probability": probabilities,
            "valid": batch["valid"],
            "read_s": batch["read_s"],
            "infer_s": np.asarray(seconds),
        }


def write_unit(row: dict[str, Any], spec: MapSpec) -> dict[str, Any]:
    """Write the unit's chunk (exactly one chunk), then its marker."""
    start = time.perf_counter()
    unit = spec.plan.unit(int(row["unit"]))
    valid = np.asarray(row["valid"], dtype=bool)
    encoded = output.encode(np.asarray(row["probability"]), valid, spec.dtype)
    top, left, height, width = unit.chunk
    _output_array(spec.out)[top : top + height, left : left + width] = encoded
    stats = {
        "unit": unit.index,
        "valid_pixels": int(valid.sum()),
        "pixels": height * width,
        "read_s": float(row["read_s"]),
        "infer_s": float(row["infer_s"]),
    }
    stats["write_s"] = time.perf_counter() - start
    output.write_marker(spec.layout, unit.index, stats)
    return stats
