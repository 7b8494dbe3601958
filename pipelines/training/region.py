"""Training on a region: the driver's plan, the Ray Train datasets, and a worker's batches.

The driver binds the run's layers to the region's mosaics (on the grid mapping would use), splits
the region into blocks, draws the first epoch's windows and measures the normalisation on them.
Ray Train gets one dataset of training windows per rank (``train-<rank>``) and one of
validation tiles per rank (``val-<rank>``), read by Ray Data tasks and handed to each worker by
``ray.train.get_dataset_shard``; the validation tiles are read once, the training windows
streamed. A rank's training dataset holds every remaining epoch's windows
in order, a fresh seeded sample per epoch (:meth:`WindowSampler.train_windows`); Ray Train
builds it again whenever it starts the workers, so after a lost worker it starts at the epoch
after the last checkpoint. Splitting each epoch's windows by rank on the driver (rather than
letting Ray Data deal blocks to workers as they ask) keeps the batches a function of the seed and
the worker count alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from pipelines.errors import InputError
from pipelines.regional.dataset import Scoring, window_dataset
from pipelines.regional.region_file import read_region_file
from pipelines.regional.sampling import WindowSampler
from pipelines.regional.split import TRAIN, VAL, SpatialSplit
from pipelines.regional.windows import RegionSource, bind_region, measure_windows
from pipelines.training.config import TrainConfig
from pipelines.training.data import TrainingStats

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class RegionPlan:
    """A region run as the driver prepares it once: the bound region, its split, the sampler
    and the normalisation measured on the first epoch's training windows."""

    source: RegionSource
    split: SpatialSplit
    sampler: WindowSampler
    stats: TrainingStats
    first_windows: int  # training windows of epoch 1

    def counts(self) -> dict[str, int]:
        """Blocks per split and the first epoch's training windows."""
        return {
            **{f"{name}_blocks": n for name, n in self.split.counts().items()},
            "train_windows": self.first_windows,
        }

    def split_record(self) -> dict[str, Any]:
        """What reproduces the split (``lsmap evaluate --region`` reads it from the bundle)."""
        return {"kind": "blocks", **self.split.record()}


def bind_run(config: TrainConfig) -> tuple[TrainConfig, RegionSource, SpatialSplit, WindowSampler]:
    """Bind ``config.region`` for the run: the config with its layers and resolution settled,
    the bound region, its split and the window sampler. The model's layers are the config's, else
    those the region file declares (entries with a ``kind``), else the config's bands; its
    resolution the config's, else the first layer's pixel size. Refuses an inventory without
    background labels."""
    region = read_region_file(config.region)
    if not config.layers and region.layers.definitions:
        config = replace(config, layers=region.layers.definitions)
    source = bind_region(region, config.layer_stack(), config.resolution_m)
    if config.resolution_m is None:
        config = replace(config, resolution_m=float(min(source.grid.res)))
    if not source.inventory.complete:
        source.inventory.require_absences("training (the model must see background)")
    split = SpatialSplit.of(source.grid, config.split_spec())
    sampler = WindowSampler(
        split,
        source.inventory,
        config.size,
        negatives=config.negatives,
        seed=config.seed,
        length=config.windows_per_epoch,
    )
    return config, source, split, sampler


def plan_region(config: TrainConfig) -> tuple[TrainConfig, RegionPlan]:
    """Bind ``config.region`` (:func:`bind_run`) and plan the run; refuses a region without
    training windows or validation tiles."""
    config, source, split, sampler = bind_run(config)
    windows = sampler.train_windows(1)
    if not len(windows):
        raise InputError(
            f"{config.region}: no {config.size} px training window fits in the training blocks "
            f"({split.counts()['train']} of {split.blocks.size} blocks of {config.block_m:g} m, "
            f"buffer {config.buffer_m:g} m) around the inventory's landslides; use larger "
            "block_m, a smaller buffer_m or size"
        )
    if not sampler.reach_landslides(windows):
        raise InputError(
            f"{config.region}: no training window reaches a landslide: those of the inventory lie "
            "in held-out blocks or within the buffer of them; use smaller block_m, a smaller "
            "buffer_m or fewer folds"
        )
    if not len(sampler.tiles(VAL)):
        raise InputError(
            f"{config.region}: the validation blocks hold no tile; use smaller block_m"
        )
    stats = measure_windows(source, windows, config.size)
    return config, RegionPlan(source, split, sampler, stats, len(windows))


@dataclass(frozen=True)
class RankTrainingWindows:
    """Ray Train calls this at every start of the workers: rank ``rank``'s training windows
    for the epochs after the run's last checkpoint, as a Ray Data dataset."""

    plan: RegionPlan
    config: TrainConfig
    rank: int

    def __call__(self) -> Any:
        from pipelines.ray_runtime import quiet_ray_data
        from pipelines.training.run import latest_state

        quiet_ray_data()  # this runs in Ray Train's controller, not the driver
        state = latest_state(self.config.out)
        first = state.epoch + 1 if state is not None else 1
        world = self.config.workers
        windows, epochs = [np.empty((0, 2), np.int64)], [np.empty(0, np.int64)]
        for epoch in range(first, self.config.epochs + 1):
            mine = self.plan.sampler.train_windows(epoch)[self.rank :: world]
            windows.append(mine)
            epochs.append(np.full(len(mine), epoch, np.int64))
        return window_dataset(
            self.plan.source,
            np.concatenate(windows),
            self.config.size,
            self.plan.stats,
            epochs=np.concatenate(epochs),
            # Only training pixels count: all of a window's but with the random partition.
            scoring=Scoring(self.plan.split, TRAIN),
        )


def region_datasets(config: TrainConfig, plan: RegionPlan) -> dict[str, Any]:
    """The datasets of a region run by name, one training and one validation set per rank.

    The validation tiles are the same every epoch: they are read once, now, into Ray's object
    store (which spills to disk what memory does not hold); reading them again each epoch
    cost more than the epoch's training on two cores."""
    tiles = plan.sampler.tiles(VAL)
    scoring = Scoring(plan.split, VAL)
    datasets: dict[str, Any] = {}
    for rank in range(config.workers):
        datasets[f"train-{rank}"] = RankTrainingWindows(plan, config, rank)
        datasets[f"val-{rank}"] = window_dataset(
            plan.source,
            tiles[rank :: config.workers],
            config.size,
            plan.stats,
            scoring=scoring,
            min_data=0.0,
        ).materialize()
    return datasets


def data_config() -> Any:
    """Each rank reads its own datasets whole (no Ray Data split), in order."""
    import ray.train
    from ray.data import ExecutionOptions

    return ray.train.DataConfig(
        datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True)
    )


def _batch(rows: list[dict[str, Any]]) -> Batch:
    x = torch.from_numpy(np.stack([row["image"] for row in rows]))
    y = torch.from_numpy(np.stack([row["landslide"] for row in rows]))[:, None]
    valid = torch.from_numpy(np.stack([row["valid"] for row in rows]))[:, None]
    return x, y, valid


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[Batch]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield _batch(chunk)
            chunk = []
    if chunk:
        yield _batch(chunk)


class EpochRows:
    """One stream of rows tagged with ``epoch``, in epoch order, taken an epoch at a time."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self._rows = iter(rows)
        self._ahead: dict[str, Any] | None = None

    def epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The rows of ``epoch``; rows of earlier epochs still in the stream (an epoch cut
        short) are skipped, the first row of a later one is kept for its turn."""
        while True:
            row, self._ahead = self._ahead, None
            if row is None:
                row = next(self._rows, None)
            if row is None:
                return
            if row["epoch"] > epoch:
                self._ahead = row
                return
            if row["epoch"] == epoch:
                yield row


class RegionBatches:
    """A worker's batches of a region run, from its datasets (see :func:`region_datasets`)."""

    def __init__(self, rank: int, batch_size: int) -> None:
        import ray.train

        from pipelines.ray_runtime import quiet_ray_data

        quiet_ray_data()
        self._train = EpochRows(ray.train.get_dataset_shard(f"train-{rank}").iter_rows())
        self._val = ray.train.get_dataset_shard(f"val-{rank}")
        self._batch_size = batch_size

    def train(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch``'s training windows."""
        return _batches(self._train.epoch(epoch), self._batch_size)

    def val(self) -> Iterator[Batch]:
        """The batches of this worker's validation tiles."""
        return _batches(self._val.iter_rows(), max(self._batch_size, 8))
