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

from pipelines.chips import normalize
from pipelines.errors import InputError
from pipelines.inputs import MapInputs, UnreadableLayer
from pipelines.mapping import output
from pipelines.mapping.plan import MapPlan


@dataclass(frozen=True)
class MapSpec:
    """Everything a stage needs, shipped once to every worker (small: URIs, numbers, the plan)."""

    inputs: MapInputs
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

    @property
    def layout(self) -> output.OutputLayout:
        return output.OutputLayout(self.out)


@functools.lru_cache(maxsize=2)
def _output_array(out: str):
    return output.open_array(output.OutputLayout(out))


def read_unit(row: dict[str, Any], spec: MapSpec) -> dict[str, Any]:
    """Read a unit's window of every layer (each reaching its halo further), stack the bundle's
    bands in order and normalise.

    An unreadable input is reported in the row, not raised (Ray would wrap the exception beyond
    recognition): the driver fails naming the file, or, when the user tolerates read errors, the
    unit is mapped as nodata and its marker says why. Values the model cannot take (an unseen
    category) are ``refused``: the driver fails whatever the user tolerates.
    """
    start = time.perf_counter()
    unit = spec.plan.unit(int(row["unit"]))
    grid = spec.plan.read_grid(unit)
    error, refused = "", False
    try:
        stack = spec.inputs.read(grid, unit.read, spec.plan.grid)
    except (UnreadableLayer, InputError) as err:
        error, refused = str(err), isinstance(err, InputError)
        stack = np.full((len(spec.inputs.stack), grid.height, grid.width), np.nan, np.float32)
    valid = np.isfinite(stack).all(axis=0)
    window = normalize(np.where(valid, stack, 0.0), spec.norm_mean, spec.norm_std)
    window[:, ~valid] = 0.0  # nodata reads as the training mean; it is masked in the output
    return {
        "unit": unit.index,
        "window": window,
        "valid": valid[unit.chunk_in_read],
        "error": error,
        "refused": refused,
        "read_s": time.perf_counter() - start,
    }


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
            self._map_unit(int(index), window, valid, str(error), bool(refused), float(read_s))
            for index, window, valid, error, refused, read_s in zip(
                batch["unit"],
                batch["window"],
                batch["valid"],
                batch["error"],
                batch["refused"],
                batch["read_s"],
                strict=True,
            )
        ]
        return {key: [row[key] for row in rows] for key in rows[0]}

    def _map_unit(
        self,
        index: int,
        window: np.ndarray,
        valid: np.ndarray,
        error: str,
        refused: bool,
        read_s: float,
    ) -> dict[str, Any]:
        unit = self.spec.plan.unit(index)
        top, left, height, width = unit.chunk
        stats = {
            "unit": index,
            "valid_pixels": int(valid.sum()),
            "pixels": height * width,
            "error": error,
            "refused": refused,
            "read_s": read_s,
            "infer_s": 0.0,
            "write_s": 0.0,
        }
        # A unit whose input could not be read is written (as nodata) only when the user
        # tolerates read errors; otherwise the driver fails naming the file.
        if refused or (error and not self.spec.tolerate_read_errors):
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
