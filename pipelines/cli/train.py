"""``lsmap train``: train a segmentation model with Ray Train on chips or a region, and write a
model bundle."""

from __future__ import annotations

import argparse

from pipelines.cli import add_training_settings, training_overrides
from pipelines.training.config import TrainConfig, config_keys


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig.__dataclass_fields__
    parser = subparsers.add_parser(
        "train",
        help="train a model on chips or on a region's mosaics and inventory with Ray Train",
        description=(
            "Train an architecture with --workers data-parallel Ray Train workers on RGB + DEM "
            "chips (Bijie layout, --data), optionally with terrain bands derived from the DEM "
            "(--bands), or on a region (--region REGION.yaml: its mosaics and landslide "
            "inventory, split into spatial blocks, windows streamed by Ray Data from local or "
            "s3:// files). Reports losses and validation metrics every epoch and checkpoints "
            "under --out (local or s3://). Running again with the same --out resumes after the "
            "last finished epoch. Writes the best epoch's model bundle (model.lsmap), "
            "metrics.json and loss_curve.png. Settings may come from --config FILE.yaml (same "
            "keys, e.g. batch_size); flags given override it; the rest follow the paper "
            f"(Adam, lr {defaults['lr'].default:g}, batch {defaults['batch_size'].default}, "
            f"{defaults['epochs'].default} epochs, dropout {defaults['dropout'].default}, "
            f"{defaults['size'].default} px)."
        ),
    )
    parser.add_argument(
        "--config", help="YAML file of settings (keys as the flags, e.g. batch_size)"
    )
    add_training_settings(parser, config_keys())
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """The settings given as flags (None: not given)."""
    return training_overrides(args, config_keys())


def run(args: argparse.Namespace) -> int:
    from pipelines.training.run import train

    config = TrainConfig.from_sources(args.config, overrides(args))
    print(
        f"training {config.arch} with {config.loss} loss on {config.data or config.region}: "
        f"{config.epochs} epochs, {config.workers} worker(s), batch {config.batch_size}, "
        f"lr {config.lr:g}",
        flush=True,
    )
    result = train(config, progress=lambda line: print(line, flush=True))
    best = next(e for e in result.state.history if e["epoch"] == result.state.best_epoch)
    print(f"best epoch {result.state.best_epoch}: val mIoU {best['val_miou']:.4f}")
    if result.test_metrics is not None:
        print(f"test mIoU {result.test_metrics['miou']:.4f}  F1 {result.test_metrics['f1']:.4f}")
    for name, uri in result.paths.items():
        print(f"{name}: {uri}")
    return 0
