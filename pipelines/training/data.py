"""The chips of a training run: the split every command agrees on, and the training statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipelines.bands import BASE_BANDS
from pipelines.chips import (
    ChipRecord,
    band_stats,
    category_codes,
    load_mask,
    scan_bijie,
    split_records,
)
from pipelines.errors import InputError
from pipelines.layers import LayerStack, stack_from_bands
from pipelines.training.config import TrainConfig


def load_splits(
    data: str | Path, seed: int, fractions: Sequence[float]
) -> dict[str, list[ChipRecord]]:
    """The train/val/test records of a chip directory, local or s3://."""
    return split_records(scan_bijie(data), seed, tuple(fractions))


@dataclass(frozen=True)
class TrainingStats:
    """What the driver measures on the training split once and hands to every worker.

    ``mean``/``std`` hold one value per band of ``bands``, in that order; ``layers`` records the
    layers that give them (:meth:`LayerStack.record`), categorical categories included.
    """

    mean: list[float]
    std: list[float]
    positive_fraction: float
    bands: tuple[str, ...] = BASE_BANDS
    layers: tuple[dict, ...] = ()

    @classmethod
    def measure(
        cls,
        records: Sequence[ChipRecord],
        size: int,
        layers: LayerStack | None = None,
        resolution_m: float | None = None,
    ) -> TrainingStats:
        """Band mean/std (raw units) and the landslide pixel fraction of ``records`` at ``size``.

        ``layers`` (default R, G, B, elevation) and ``resolution_m`` as in
        :func:`pipelines.chips.load_chip`. Categorical layers without categories first take
        the codes found in ``records``.
        """
        if not records:
            raise InputError("the training split is empty: add chips or raise its fraction")
        layers = layers if layers is not None else stack_from_bands(BASE_BANDS)
        for layer in layers.categorical:
            if not layer.categories:
                codes = category_codes(records, layer.name)
                layers = layers.with_layer(replace(layer, categories=codes))
        mean, std = band_stats(records, size, layers, resolution_m)
        # Chips without a mask are all background: only landslide chips' masks need reading.
        positives = sum(int(np.count_nonzero(load_mask(r, size))) for r in records if r.landslide)
        fraction = positives / (len(records) * size * size)
        return cls(
            [float(m) for m in mean],
            [float(s) for s in std],
            fraction,
            layers.names,
            tuple(layers.record()),
        )

    def layer_stack(self) -> LayerStack:
        """The layers the statistics were measured for."""
        return LayerStack.from_record(list(self.layers))

    @classmethod
    def for_config(cls, records: Sequence[ChipRecord], config: TrainConfig) -> TrainingStats:
        """:meth:`measure` with the run's size, bands and resolution."""
        return cls.measure(records, config.size, config.layer_stack(), config.resolution_m)

    def check(self, config: TrainConfig) -> None:
        """Refuse statistics measured for other layers than the run's."""
        declared = config.layer_stack()
        measured = self.layer_stack()
        for layer in declared.categorical:  # categories found in the chips are the run's
            if not layer.categories and layer.name in {x.name for x in measured.layers}:
                declared = declared.with_layer(measured[layer.name])
        if declared != measured:
            raise InputError(
                f"training statistics were measured for bands {list(self.bands)} but the run "
                f"trains on {list(declared.names)}: measure them with TrainingStats.for_config"
            )
