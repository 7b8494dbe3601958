"""``lsmap train``: train a segmentation model on chips with Ray Train and write a model bundle."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from pipelines import storage
from pipelines.training.config import TrainConfig, config_keys

# Every flag defaults to None so that only flags given explicitly override the --config file;
# the help shows the defaults of TrainConfig, the one place they are set.
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
BANDS_HELP = (
    "comma-separated input bands: red,green,blue (RGB only) or red,green,blue,elevation followed "
    "by terrain bands derived from the DEM (slope, aspect_sin, aspect_cos, hillshade, curvature, "
    "relative_elevation); rgb, rgbd and terrain name sets, e.g. rgbd,terrain. Terrain bands need "
    "--resolution-m "
    f"(default {','.join(DEFAULTS['bands'])})"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on Bijie-layout chips with Ray Train (data-parallel, resumable)",
        description=(
            "Train an architecture on RGB + DEM chips (Bijie layout), optionally with terrain bands "
            "derived from the DEM (--bands), with --workers data-parallel "
            "Ray Train workers; report losses and validation metrics every epoch and checkpoint "
            "under --out (local or s3://). Running again with the same --out resumes after the "
            "last finished epoch. Writes the best epoch's model bundle (model.lsmap), "
            "metrics.json and loss_curve.png. Settings may come from --config FILE.yaml (same "
            "keys, e.g. batch_size); flags given override it; the rest follow the paper "
            f"(Adam, lr {DEFAULTS['lr']:g}, batch {DEFAULTS['batch_size']}, "
            f"{DEFAULTS['epochs']} epochs, dropout {DEFAULTS['dropout']}, {DEFAULTS['size']} px)."
        ),
    )
    parser.add_argument(
        "--config", help="YAML file of settings (keys as the flags, e.g. batch_size)"
    )
    parser.add_argument("--data", type=storage.absolute, help="chip directory in the Bijie layout")
    parser.add_argument(
        "--out", type=storage.absolute, help="run directory URI (local or s3://); reruns resume"
    )
    parser.add_argument(
        "--arch", help=f"architecture (see `lsmap models`; default {DEFAULTS['arch']})"
    )
    parser.add_argument(
        "--loss", help=f"bce, focal, dice, wce or a sum like bce+dice (default {DEFAULTS['loss']})"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"epochs in all, resumed ones included (default {DEFAULTS['epochs']})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help=f"data-parallel training workers (default {DEFAULTS['workers']})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"chips per worker and step (default {DEFAULTS['batch_size']})",
    )
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {DEFAULTS['lr']:g})")
    parser.add_argument(
        "--seed",
        type=int,
        help=f"seed of split, weights and shuffling (default {DEFAULTS['seed']})",
    )
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        help="one GPU per worker, NCCL (default: CPU, gloo)",
    )
    parser.add_argument(
        "--size", type=int, help=f"input size in pixels (default {DEFAULTS['size']})"
    )
    parser.add_argument(
        "--base-width",
        type=int,
        help=f"channels at full resolution (default {DEFAULTS['base_width']})",
    )
    parser.add_argument(
        "--depth", type=int, help=f"number of downsamplings (default {DEFAULTS['depth']})"
    )
    parser.add_argument(
        "--dropout", type=float, help=f"dropout rate (default {DEFAULTS['dropout']})"
    )
    parser.add_argument(
        "--resolution-m", type=float, help="ground resolution of the chips in metres, if known"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help=f"probability counted as landslide (default {DEFAULTS['threshold']})",
    )
    parser.add_argument("--bands", help=BANDS_HELP)
    parser.add_argument(
        "--layers",
        type=_layer_definitions,
        metavar="FILE",
        help="YAML layers file declaring the input layers instead of --bands (multispectral or "
        "16-bit imagery, categorical maps, NDVI; see docs/layers.md): each layer reads the chip "
        "folder of its name, uris in the file are for mapping",
    )
    parser.add_argument(
        "--relative-radius-m",
        type=float,
        help="window radius of relative_elevation in metres "
        f"(default {DEFAULTS['relative_radius_m']:g})",
    )
    parser.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="fractions of the chips per split (default "
        + " ".join(f"{f:g}" for f in DEFAULTS["split_fractions"])
        + ")",
    )
    parser.set_defaults(func=run)


def _layer_definitions(path: str) -> tuple[dict, ...]:
    from pipelines.inputs import read_layers_file

    return read_layers_file(path).definitions


def overrides(args: argparse.Namespace) -> dict:
    """The settings given as flags (None: not given)."""
    return {key: getattr(args, key, None) for key in config_keys()}


def run(args: argparse.Namespace) -> int:
    from pipelines.training.run import train

    config = TrainConfig.from_sources(args.config, overrides(args))
    print(
        f"training {config.arch} with {config.loss} loss on {config.data}: {config.epochs} "
        f"epochs, {config.workers} worker(s), batch {config.batch_size}, lr {config.lr:g}",
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
