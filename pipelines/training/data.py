"""The chips of a training run: the split every command agrees on, and the training statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.bands import BASE_BANDS, RGB_BANDS, BandSet
from pipelines.chips import ChipRecord, band_stats, load_chip, scan_bijie, split_records
from pipelines.errors import InputError
from pipelines.training.config import TrainConfig


def load_splits(
    data: str | Path, seed: int, fractions: Sequence[float]
) -> dict[str, list[ChipRecord]]:
    """The train/val/test records of a chip directory (absolute paths: Ray workers change cwd)."""
    return split_records(scan_bijie(Path(data).resolve()), seed, tuple(fractions))


@dataclass(frozen=True)
class TrainingStats:
    """What the driver measures on the training split once and hands to every worker.

    ``mean``/``std`` hold one value per band of ``bands``, in that order.
    """

    mean: list[float]
    std: list[float]
    positive_fraction: float
    bands: tuple[str, ...] = BASE_BANDS

    @classmethod
    def measure(
        cls,
        records: Sequence[ChipRecord],
        size: int,
        bands: BandSet | None = None,
        resolution_m: float | None = None,
    ) -> TrainingStats:
        """Band mean/std (raw units) and the landslide pixel fraction of ``records`` at ``size``.

        ``bands`` (default R, G, B, elevation) and ``resolution_m`` as in
        :func:`pipelines.chips.load_chip`.
        """
        if not records:
            raise InputError("the training split is empty: add chips or raise its fraction")
        bands = bands if bands is not None else BandSet()
        mean, std = band_stats(records, size, bands, resolution_m)
        # Chips without a mask are all background: only landslide chips need reading, and of
        # them only image and mask (RGB bands read no DEM).
        rgb = BandSet(RGB_BANDS)
        positives = sum(
            int(np.count_nonzero(load_chip(r, size, rgb)[1])) for r in records if r.landslide
        )
        fraction = positives / (len(records) * size * size)
        return cls([float(m) for m in mean], [float(s) for s in std], fraction, bands.names)

    @classmethod
    def for_config(cls, records: Sequence[ChipRecord], config: TrainConfig) -> TrainingStats:
        """:meth:`measure` with the run's size, bands and resolution."""
        return cls.measure(records, config.size, config.band_set(), config.resolution_m)

    def check(self, config: TrainConfig) -> None:
        """Refuse statistics measured for other bands than the run's."""
        if self.bands != config.bands:
            raise InputError(
                f"training statistics were measured for bands {list(self.bands)} but the run "
                f"trains on {list(config.bands)}: measure them with TrainingStats.for_config"
            )
