"""The per-worker training loop that Ray Train runs on every data-parallel worker.

Each worker trains on its own share of the training data with DDP: chips through a seeded
``DistributedSampler``, or a region's windows from its Ray Train dataset shard
(:mod:`pipelines.training.region`). It validates on its own share of the validation data and
merges losses and metric counts with ``all_reduce`` so that every worker reports the same
numbers; pixels a batch marks invalid (unknown to the inventory, no data) count for neither. Rank 0 checkpoints the model and
optimizer state, the history and the best weights so far; a rerun into the same storage resumes
after the last checkpointed epoch.
"""

from __future__ import annotations

import io
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from lsmodel.losses import build_loss
from lsmodel.metrics import SegmentationMetrics
from lsmodel.models import build_model
from pipelines.chips import ChipDataset, ChipRecord
from pipelines.training.config import TrainConfig
from pipelines.training.data import TrainingStats

STATE_FILE = "state.pt"


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # x, y, valid pixels (None: all)


@dataclass
class WorkerInputs:
    """Everything a worker needs, computed once on the driver (sent as ``train_loop_config``):
    the chips of each split, or none when a region's windows come as Ray Train datasets."""

    config: TrainConfig
    stats: TrainingStats
    train: list[ChipRecord] = field(default_factory=list)
    val: list[ChipRecord] = field(default_factory=list)
    progress: Any = None  # a ray.util.queue.Queue the driver prints from, or None


class ChipBatches:
    """A worker's batches of chips: a seeded shard of the training chips, a disjoint share of
    the validation chips."""

    def __init__(self, inputs: WorkerInputs, rank: int, world: int) -> None:
        config, stats = inputs.config, inputs.stats
        layers, resolution = stats.layer_stack(), config.resolution_m
        train = ChipDataset(inputs.train, config.size, stats.mean, stats.std, layers, resolution)
        val = ChipDataset(inputs.val, config.size, stats.mean, stats.std, layers, resolution)
        self._sampler = DistributedSampler(
            train, num_replicas=world, rank=rank, shuffle=True, seed=config.seed
        )
        self._train = DataLoader(train, batch_size=config.batch_size, sampler=self._sampler)
        # No padding duplicates: each worker a disjoint share, merged by all_reduce.
        self._val = DataLoader(
            Subset(val, range(rank, len(val), world)), batch_size=max(config.batch_size, 8)
        )

    def train(self, epoch: int) -> Iterator[Batch]:
        self._sampler.set_epoch(epoch)
        return ((x, y, None) for x, y in self._train)

    def val(self) -> Iterator[Batch]:
        return ((x, y, None) for x, y in self._val)


@dataclass
class TrainState:
    """The resumable state of a run, as saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_miou: float = -math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    model: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.__dict__, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        # weights_only: a checkpoint is data (tensors, numbers, lists), never code.
        return cls(**torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))

    @classmethod
    def from_checkpoint(cls, checkpoint: Any) -> TrainState:
        """The state in a ``ray.train.Checkpoint`` (downloaded from its storage if remote)."""
        with checkpoint.as_directory() as directory:
            return cls.from_bytes((Path(directory) / STATE_FILE).read_bytes())


def make_loss(config: TrainConfig, stats: TrainingStats) -> nn.Module:
    """The configured loss; weighted CE gets inverse-frequency weights from the training split."""
    parts = {part.strip().lower() for part in config.loss.split("+")}
    if "wce" in parts:
        return build_loss(config.loss, positive_fraction=stats.positive_fraction)
    return build_loss(config.loss)


def _all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM)
    return tensor


def _reduce_metrics(metrics: SegmentationMetrics, device: torch.device) -> SegmentationMetrics:
    """The sum of every worker's metric counts, on every worker."""
    counts = [metrics.tp, metrics.fp, metrics.fn, metrics.tn]
    state = torch.cat(
        [
            torch.tensor(counts, dtype=torch.int64),
            torch.from_numpy(metrics.hist_landslide),
            torch.from_numpy(metrics.hist_background),
        ]
    ).to(device)
    state = _all_reduce(state).cpu()
    bins = metrics.bins
    return SegmentationMetrics.from_dict(
        {
            "threshold": metrics.threshold,
            "bins": bins,
            **dict(zip(("tp", "fp", "fn", "tn"), state[:4].tolist(), strict=True)),
            "hist_landslide": state[4 : 4 + bins].tolist(),
            "hist_background": state[4 + bins :].tolist(),
        }
    )


def sync_buffers(model: nn.Module) -> None:
    """Give every worker rank 0's buffers (BatchNorm statistics).

    DDP broadcasts buffers before each training forward, so after the last step every worker
    holds its own; validating with rank 0's makes all workers score the model that is saved.
    """
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def _mean_loss(total: float, count: int, device: torch.device) -> float:
    """Sample-weighted mean of a loss over all workers."""
    sums = _all_reduce(torch.tensor([total, float(count)], dtype=torch.float64, device=device))
    return float(sums[0] / sums[1]) if sums[1] > 0 else math.nan


def in_step(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """``batches`` while every worker still has one: DDP needs the same number of steps on
    each, and a region's workers may hold a window or two more or less than each other."""
    iterator = iter(batches)
    while True:
        batch = next(iterator, None)
        have = _all_reduce(torch.tensor([0 if batch is None else 1], device=device), "min")
        if batch is None or not int(have):
            return
        yield batch


def _to(batch: Batch, device: torch.device) -> Batch:
    x, y, valid = batch
    return x.to(device), y.to(device), None if valid is None else valid.to(device)


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> float:
    """One pass over this worker's batches; returns the mean training loss over all workers."""
    model.train()
    total, count = 0.0, 0
    for batch in in_step(batches, device):
        x, y, valid = _to(batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y, valid)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(x)
        count += len(x)
    return _mean_loss(total, count, device)


@torch.no_grad()
def validate(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: nn.Module,
    device: torch.device,
    threshold: float,
) -> tuple[float, SegmentationMetrics]:
    """Validation loss and metrics over every worker's share of the validation data."""
    model.eval()
    metrics = SegmentationMetrics(threshold)
    total, count = 0.0, 0
    for batch in batches:
        x, y, valid = _to(batch, device)
        logits = model(x)
        total += float(loss_fn(logits, y, valid)) * len(x)
        count += len(x)
        metrics.update(torch.sigmoid(logits), y, valid)
    return _mean_loss(total, count, device), _reduce_metrics(metrics, device)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def train_worker(loop_config: dict[str, WorkerInputs]) -> None:
    """Train up to ``config.epochs`` epochs in all (resuming), reporting once per epoch.

    ``loop_config["inputs"]`` holds the :class:`WorkerInputs`.
    """
    import ray.train
    import ray.train.torch

    inputs = loop_config["inputs"]
    config, stats = inputs.config, inputs.stats
    stats.check(config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()

    # Same seed on every worker: identical initial weights (DDP also broadcasts rank 0's).
    torch.manual_seed(config.seed)
    model = build_model(
        config.arch,
        in_channels=len(stats.bands),
        base_width=config.base_width,
        depth=config.depth,
        dropout=config.dropout,
    )
    optimizer_state = None
    checkpoint = ray.train.get_checkpoint()
    state = TrainState.from_checkpoint(checkpoint) if checkpoint else TrainState()
    if state.model is not None:
        model.load_state_dict(state.model)
        optimizer_state = state.optimizer
    model = ray.train.torch.prepare_model(model)
    net = getattr(model, "module", model)  # the bare model: what is saved and validated
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    loss_fn = make_loss(config, stats).to(device)
    # Dropout masks differ per worker but repeat given the seed.
    torch.manual_seed(config.seed * 1000 + rank + state.epoch)

    if config.region is not None:
        from pipelines.training.region import RegionBatches

        batches = RegionBatches(rank, config.batch_size)
    else:
        batches = ChipBatches(inputs, rank, world)

    if rank == 0 and inputs.progress is not None and state.epoch:
        inputs.progress.put({"resumed_after": state.epoch})
    for epoch in range(state.epoch + 1, config.epochs + 1):
        start = time.time()
        train_loss = train_epoch(model, batches.train(epoch), loss_fn, optimizer, device)
        sync_buffers(net)
        val_loss, val_metrics = validate(net, batches.val(), loss_fn, device, config.threshold)
        scores = val_metrics.compute()
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            **{f"val_{name}": value for name, value in scores.items()},
            "seconds": time.time() - start,
            "finished_at": time.time(),
        }
        state.epoch = epoch
        state.history.append(entry)
        if scores["miou"] > state.best_miou:
            state.best_miou, state.best_epoch = scores["miou"], epoch
            state.best_weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        metrics = {key: _finite(value) for key, value in entry.items()}
        metrics["best_val_miou"] = state.best_miou
        if rank == 0:
            state.model = {k: v.detach().cpu() for k, v in net.state_dict().items()}
            state.optimizer = optimizer.state_dict()
            with tempfile.TemporaryDirectory() as directory:
                (Path(directory) / STATE_FILE).write_bytes(state.to_bytes())
                ray.train.report(
                    metrics,
                    checkpoint=ray.train.Checkpoint.from_directory(directory),
                )
            if inputs.progress is not None:
                inputs.progress.put(entry)
        else:
            ray.train.report(metrics)
