"""Driving a training run: split and measure the chips, run Ray Train, write the outputs.

Ray Train keeps its checkpoints under ``<out>/ray/train``; running again with the same ``--out``
resumes after the last checkpointed epoch (Ray Train V2 restores a run from its ``RunConfig``
name and storage path). The driver prints one progress line per epoch, sent by rank 0 through a
Ray queue because worker output does not reach the driver.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from lsmodel.bundle import ModelBundle
from pipelines import storage
from pipelines.chips import ChipRecord
from pipelines.errors import InputError, LsmapError
from pipelines.evaluate import bundle_dataset, score_model
from pipelines.regional.evaluate import bundle_predictor, score_region
from pipelines.regional.split import TEST
from pipelines.training.config import RESUMABLE_KEYS, TrainConfig
from pipelines.training.data import TrainingStats, load_splits
from pipelines.training.outputs import make_bundle, metrics_document, split_info, write_outputs
from pipelines.training.region import RegionPlan, data_config, plan_region, region_datasets
from pipelines.training.worker import TrainState, WorkerInputs, train_worker

RUN_NAME = "train"
CONFIG_NAME = "config.json"
# Worker failures survived per run; each restarts the workers from the last checkpoint.
MAX_FAILURES = 2


@dataclass
class TrainResult:
    """A finished run: final state (history, best epoch), best bundle, test metrics, output URIs."""

    state: TrainState
    bundle: ModelBundle
    test_metrics: dict[str, float] | None
    paths: dict[str, str]


def ray_storage(out: str) -> tuple[str, Any]:
    """``RunConfig`` storage for a run under ``out``: ``(storage_path, storage_filesystem)``."""
    return storage.arrow_filesystem(storage.join(out, "ray"))


def check_resumable(config: TrainConfig, resuming: bool) -> None:
    """Record the run's settings in ``<out>/config.json``; a resumed run must keep them.

    Only ``RESUMABLE_KEYS`` may change between a checkpointed run and its continuation.
    """
    uri = storage.join(config.out, CONFIG_NAME)
    current = config.to_dict()
    if resuming and storage.exists(uri):
        # Settings added since an older run was recorded count as their defaults there.
        previous = TrainConfig(
            data=config.data, region=config.region, out=config.out
        ).to_dict() | storage.read_json(uri)
        changed = {
            key: (previous.get(key), value)
            for key, value in current.items()
            if key not in RESUMABLE_KEYS and previous.get(key) != value
        }
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise InputError(
                f"{config.out} holds a run with other settings ({details}); rerun with the "
                f"same settings to resume (only {', '.join(sorted(RESUMABLE_KEYS))} may "
                "change) or choose another --out"
            )
    storage.write_json(uri, current)


def format_progress(entry: dict[str, Any], epochs: int) -> str:
    """One line per epoch: epoch, training and validation loss, validation mIoU, seconds."""
    return (
        f"epoch {entry['epoch']:>3}/{epochs}  train loss {entry['train_loss']:.4f}  "
        f"val loss {entry['val_loss']:.4f}  val mIoU {entry['val_miou']:.4f}  "
        f"{entry['seconds']:.1f} s"
    )


def _relay(queue: Any, stop: threading.Event, emit: Callable[[str], None], epochs: int) -> None:
    from ray.util.queue import Empty

    while True:
        try:
            item = queue.get(timeout=0.5)
        except Empty:
            if stop.is_set():
                return
            continue
        if "resumed_after" in item:
            emit(f"resuming after epoch {item['resumed_after']} (from its checkpoint)")
        else:
            emit(format_progress(item, epochs))


def train(
    config: TrainConfig,
    progress: Callable[[str], None] | None = print,
    *,
    max_failures: int = MAX_FAILURES,
) -> TrainResult:
    """Train with Ray Train on ``config.workers`` workers and write the outputs to ``config.out``.

    Chips are split and measured here and loaded by the workers; a region is planned here
    (:func:`pipelines.training.region.plan_region`) and its windows stream to the workers.

    Joins the Ray cluster of this process (or starts a local one). Reruns with the same ``out``
    resume; a run that already has ``config.epochs`` epochs only rewrites its outputs. Prints a
    line per epoch through ``progress`` (None: silent). When a worker dies (a lost node, a killed
    process), Ray Train restarts the workers from the last checkpoint, up to ``max_failures``
    times per run (-1: without limit).
    """
    from pipelines.ray_runtime import init_ray

    if config.region is not None:
        config, plan = plan_region(config)
        stats, counts, split = plan.stats, plan.counts(), plan.split_record()
        inputs = WorkerInputs(config, stats)
    else:
        config = _absolute_data(config)
        splits = load_splits(config.data, config.seed, config.split_fractions)
        counts = {name: len(records) for name, records in splits.items()}
        if not splits["val"]:
            raise InputError(f"{config.data}: the validation split is empty ({counts}); add chips")
        stats = TrainingStats.for_config(splits["train"], config)
        split = split_info(config)
        inputs = WorkerInputs(config, stats, splits["train"], splits["val"])
    if "wce" in config.loss.lower() and not 0 < stats.positive_fraction < 1:
        raise InputError(
            f"{config.data or config.region}: loss wce needs landslide and background pixels in "
            "training"
        )

    init_ray()
    state = latest_state(config.out)
    check_resumable(config, resuming=state is not None)
    if state is not None and state.epoch >= config.epochs:
        if progress is not None:
            progress(f"{config.out} already holds {state.epoch} epoch(s); writing its outputs")
    else:
        _check_capacity(config)
        datasets = region_datasets(config, plan) if config.region is not None else {}
        state = fit(config, inputs, datasets, progress, max_failures)
    bundle = make_bundle(config, state, stats, split, None)
    test_metrics = _test_metrics(config, bundle, plan if config.region is not None else splits)
    if test_metrics is not None:
        bundle = make_bundle(config, state, stats, split, test_metrics)
    metrics = metrics_document(config, state, stats, split, counts, test_metrics)
    paths = write_outputs(config, state, bundle, metrics)
    return TrainResult(state, bundle, test_metrics, paths)


def latest_state(out: str) -> TrainState | None:
    """The state in the last checkpoint Ray Train registered under ``out`` (None: none yet)."""
    from ray.train import Result

    path, filesystem = ray_storage(out)
    try:
        result = Result.from_path(f"{path}/{RUN_NAME}", storage_filesystem=filesystem)
    except RuntimeError:  # no run folder, or no checkpoint record in it yet
        return None
    return TrainState.from_checkpoint(result.checkpoint) if result.checkpoint else None


def fit(
    config: TrainConfig,
    inputs: WorkerInputs,
    datasets: dict[str, Any],
    progress: Callable[[str], None] | None,
    max_failures: int,
) -> TrainState:
    """Run (or resume) the Ray Train job on prepared ``inputs`` and ``datasets`` (a region's,
    :func:`pipelines.training.region.region_datasets`; none for chips); the state of its last
    checkpoint."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    if progress is not None:
        inputs.progress = Queue(actor_options={"num_cpus": 0})
    storage_path, filesystem = ray_storage(config.out)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"inputs": inputs},
        datasets=datasets or None,
        dataset_config=data_config() if datasets else None,
        torch_config=TorchConfig(backend="nccl" if config.gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=config.workers, use_gpu=config.gpu),
        run_config=ray.train.RunConfig(
            name=RUN_NAME,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    stop = threading.Event()
    relay = None
    if progress is not None:
        relay = threading.Thread(
            target=_relay, args=(inputs.progress, stop, progress, config.epochs), daemon=True
        )
        relay.start()
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        raise LsmapError(f"training failed: {err}") from err
    finally:
        stop.set()
        if relay is not None:
            relay.join()
            inputs.progress.shutdown()
    if result.checkpoint is None:
        raise LsmapError(f"training under {config.out} ended without a checkpoint")
    return TrainState.from_checkpoint(result.checkpoint)


def _test_metrics(
    config: TrainConfig, bundle: ModelBundle, held_out: RegionPlan | dict[str, list[ChipRecord]]
) -> dict[str, float] | None:
    """The bundle's metrics on the test chips or the region's test blocks (None: no test set)."""
    device = "cuda" if config.gpu and torch.cuda.is_available() else "cpu"
    if isinstance(held_out, RegionPlan):
        if not held_out.split.counts()["test"]:
            return None  # a final model, trained on all blocks but its validation ones
        return score_region(
            bundle_predictor(bundle, device),
            held_out.source,
            held_out.split,
            TEST,
            size=bundle.tile_size,
            threshold=bundle.threshold,
        )
    if not held_out["test"]:
        return None
    dataset = bundle_dataset(bundle, held_out["test"])
    return score_model(bundle.build(), dataset, config.threshold, device=device).compute()


def _check_capacity(config: TrainConfig) -> None:
    """Fail fast where Ray Train would wait forever: a local cluster too small for the workers."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        return  # a remote cluster may grow to fit
    kind = "GPU" if config.gpu else "CPU"
    available = ray.cluster_resources().get(kind, 0)
    if available < config.workers:
        raise InputError(
            f"{config.workers} worker(s) need {config.workers} {kind}(s) but the local Ray "
            f"cluster has {available:g}; lower --workers or set RAY_ADDRESS to a larger cluster"
        )


def _absolute_data(config: TrainConfig) -> TrainConfig:
    return replace(config, data=storage.absolute(config.data))
