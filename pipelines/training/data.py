"""The chips of a training run: the split every command agrees on, and the training statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.chips import ChipRecord, band_stats, load_chip, scan_bijie, split_records
from pipelines.errors import InputError


def load_splits(
    data: str | Path, seed: int, fractions: Sequence[float]
) -> dict[str, list[ChipRecord]]:
    """The train/val/test records of a chip directory (absolute paths: Ray workers change cwd)."""
    return split_records(scan_bijie(Path(data).resolve()), seed, tuple(fractions))


@dataclass(frozen=True)
class TrainingStats:
    """What the driver measures on the training split once and hands to every worker."""

    mean: list[float]
    std: list[float]
    positive_fraction: float

    @classmethod
    def measure(cls, records: Sequence[ChipRecord], size: int) -> TrainingStats:
        """Band mean/std (raw units) and the landslide pixel fraction of ``records`` at ``size``."""
        if not records:
            raise InputError("the training split is empty: add chips or raise its fraction")
        mean, std = band_stats(records, size)
        # Chips without a mask are all background: only landslide chips need reading.
        positives = sum(
            int(np.count_nonzero(load_chip(r, size)[1])) for r in records if r.landslide
        )
        fraction = positives / (len(records) * size * size)
        return cls([float(m) for m in mean], [float(s) for s in std], fraction)
