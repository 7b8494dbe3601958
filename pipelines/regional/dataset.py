"""Training windows as a Ray Data stream: window positions -> read -> normalised rows.

Reads run in Ray Data tasks on whatever nodes hold CPUs, through the mapper's own reader
(:meth:`RegionSource.read`), from local or s3:// mosaics: no shared filesystem is needed. Each
row holds one window, normalised as mapping normalises (:func:`pipelines.chips.normalize`, no
data read as the training mean), its landslide labels and the pixels that count; windows with
too few pixels that count are dropped (mostly nodata, or beyond what the inventory knows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.chips import normalize
from pipelines.regional.windows import RegionSource
from pipelines.training.data import TrainingStats


def read_window(
    row: dict[str, Any], source: RegionSource, size: int, stats: TrainingStats, min_valid: float
) -> list[dict[str, Any]]:
    """The row of the window at ``row["top"], row["left"]``, or none when less than
    ``min_valid`` of its pixels count."""
    top, left = int(row["top"]), int(row["left"])
    window = source.read(top, left, size)
    if np.count_nonzero(window.valid) < min_valid * size * size:
        return []
    data = np.isfinite(window.image).all(axis=0)
    image = normalize(np.where(data, window.image, 0.0), stats.mean, stats.std)
    image[:, ~data] = 0.0  # as the mapper does: no data reads as the training mean
    return [
        {
            "top": top,
            "left": left,
            "image": image,
            "landslide": window.landslide.astype(np.float32),
            "valid": window.valid,
        }
    ]


def window_dataset(
    source: RegionSource,
    windows: np.ndarray,
    size: int,
    stats: TrainingStats,
    min_valid: float = 0.5,
) -> Any:
    """A ``ray.data.Dataset`` of the windows ``(top, left)`` of ``size`` px (rows as
    :func:`read_window` makes them, each naming its window), read lazily in Ray Data tasks."""
    import ray

    positions = [{"top": int(top), "left": int(left)} for top, left in windows]
    items = ray.data.from_items(positions, override_num_blocks=max(1, min(len(positions), 64)))
    return items.flat_map(
        read_window,
        fn_kwargs={"source": source, "size": size, "stats": stats, "min_valid": min_valid},
    )
