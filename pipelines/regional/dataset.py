"""Training windows as a Ray Data stream: window positions -> read -> normalised rows.

Reads run in Ray Data tasks on whatever nodes hold CPUs, through the mapper's own reader
(:meth:`RegionSource.read`), from local or s3:// mosaics: no shared filesystem is needed. Each
row holds one window, normalised as mapping normalises (:func:`pipelines.chips.normalize`, no
data read as the training mean), its landslide labels and the pixels that count. Windows mostly
over no data, or without a single labelled pixel, are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.chips import normalize
from pipelines.regional.split import SpatialSplit
from pipelines.regional.windows import RegionSource, RegionWindow
from pipelines.training.data import TrainingStats

# Window reads ask Ray for no CPU, since the Ray Train workers hold the cluster's CPUs and a
# read mostly waits on storage; without a CPU to bound them, READ_TASKS does (per dataset).
READ_CPUS = 0
READ_TASKS = 2
# Windows per read task: enough to amortise a task, few enough to stream a batch at a time.
WINDOWS_PER_TASK = 8


@dataclass(frozen=True)
class Scoring:
    """Evaluation scores only the pixels of one split's blocks (:meth:`SpatialSplit.mask`)."""

    split: SpatialSplit
    which: int


def model_input(window: RegionWindow, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The window's image as the model takes it: normalised, no data read as the training mean."""
    data = np.isfinite(window.image).all(axis=0)
    image = normalize(np.where(data, window.image, 0.0), mean, std)
    image[:, ~data] = 0.0
    return image


def read_window(
    row: dict[str, Any],
    source: RegionSource,
    size: int,
    stats: TrainingStats,
    min_data: float,
    scoring: Scoring | None,
) -> list[dict[str, Any]]:
    """The row of the window at ``row["top"], row["left"]`` (its ``epoch`` kept), or none when
    less than ``min_data`` of its pixels have data or none of them counts."""
    top, left = int(row["top"]), int(row["left"])
    window = source.read(top, left, size)
    valid = window.valid
    if scoring is not None:
        valid = valid & scoring.split.mask(scoring.which, top, left, size, size)
    data = np.isfinite(window.image).all(axis=0)
    if np.count_nonzero(data) < min_data * size * size or not valid.any():
        return []
    return [
        {
            "epoch": int(row.get("epoch", 0)),
            "top": top,
            "left": left,
            "image": model_input(window, stats.mean, stats.std),
            "landslide": window.landslide.astype(np.float32),
            "valid": valid,
        }
    ]


def window_dataset(
    source: RegionSource,
    windows: np.ndarray,
    size: int,
    stats: TrainingStats,
    *,
    epochs: np.ndarray | None = None,
    scoring: Scoring | None = None,
    min_data: float = 0.5,
) -> Any:
    """A ``ray.data.Dataset`` of the windows ``(top, left)`` of ``size`` px (rows as
    :func:`read_window` makes them, each naming its window and ``epochs``), read lazily in Ray
    Data tasks; ``scoring`` limits each window's counted pixels to one split's blocks."""
    import ray

    epochs = np.zeros(len(windows), np.int64) if epochs is None else epochs
    positions = [
        {"epoch": int(epoch), "top": int(top), "left": int(left)}
        for (top, left), epoch in zip(windows, epochs, strict=True)
    ]
    blocks = max(1, math.ceil(len(positions) / WINDOWS_PER_TASK))
    items = ray.data.from_items(positions, override_num_blocks=blocks)
    return items.flat_map(
        read_window,
        fn_kwargs={
            "source": source,
            "size": size,
            "stats": stats,
            "min_data": min_data,
            "scoring": scoring,
        },
        num_cpus=READ_CPUS,
        compute=ray.data.TaskPoolStrategy(size=READ_TASKS),
    )
