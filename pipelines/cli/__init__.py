"""The ``lsmap`` command: one subcommand per job, each in its own module (parse, then call)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from pipelines import storage
from pipelines.errors import LsmapError

# Every module in this package is one subcommand and defines ``register(subparsers)``, which adds
# its parser and sets ``func``. Heavy imports (torch, ray) happen inside the commands so that
# ``lsmap --help`` stays fast.


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model``, as every command that applies a model reads it."""
    parser.add_argument(
        "--model",
        required=True,
        type=storage.absolute,
        help="model bundle, or the run directory of `lsmap train`",
    )


def add_chips_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``, a chip directory, as the commands that score or explain chips read it."""
    parser.add_argument(
        "--data",
        required=True,
        type=storage.absolute,
        help="chip directory in the Bijie layout (local or s3://)",
    )


def _training_flags() -> dict[str, dict]:
    """``lsmap train``'s flag for each :class:`TrainConfig` setting, as argparse arguments. Each
    defaults to None, so that only flags given override a --config file; the help shows the
    defaults of TrainConfig, the one place they are set."""
    from dataclasses import MISSING, fields

    from pipelines.training.config import TrainConfig

    default = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    bands = ",".join(default["bands"])
    fractions = " ".join(f"{f:g}" for f in default["split_fractions"])
    return {
        "data": {
            "type": storage.absolute,
            "help": "chip directory in the Bijie layout (local or s3://)",
        },
        "region": {
            "type": storage.absolute,
            "metavar": "REGION.yaml",
            "help": "train on a region instead of chips: a layers file with the region's "
            "`inventory:` (landslide polygons, or points with presence/absence; see "
            "docs/regions.md)",
        },
        "out": {
            "type": storage.absolute,
            "help": "run directory URI (local or s3://); reruns resume",
        },
        "arch": {"help": f"architecture (see `lsmap models`; default {default['arch']})"},
        "loss": {
            "help": f"bce, focal, dice, wce or a sum like bce+dice (default {default['loss']})"
        },
        "epochs": {
            "type": int,
            "help": f"epochs in all, resumed ones included (default {default['epochs']})",
        },
        "workers": {
            "type": int,
            "help": f"data-parallel Ray Train workers (default {default['workers']})",
        },
        "batch_size": {
            "type": int,
            "help": f"chips or windows per worker and step (default {default['batch_size']})",
        },
        "lr": {"type": float, "help": f"Adam learning rate (default {default['lr']:g})"},
        "seed": {
            "type": int,
            "help": f"seed of split, samples, weights and shuffling (default {default['seed']})",
        },
        "gpu": {
            "action": argparse.BooleanOptionalAction,
            "help": "one GPU per worker, NCCL (default: CPU, gloo)",
        },
        "size": {"type": int, "help": f"input size in pixels (default {default['size']})"},
        "base_width": {
            "type": int,
            "help": f"channels at full resolution (default {default['base_width']})",
        },
        "depth": {"type": int, "help": f"number of downsamplings (default {default['depth']})"},
        "dropout": {"type": float, "help": f"dropout rate (default {default['dropout']})"},
        "resolution_m": {
            "type": float,
            "help": "ground resolution in metres: of the chips, if known; of the model's grid on "
            "a region (default: the first layer's)",
        },
        "threshold": {
            "type": float,
            "help": f"probability counted as landslide (default {default['threshold']})",
        },
        "bands": {
            "help": "comma-separated input bands: red,green,blue (RGB only) or "
            "red,green,blue,elevation followed by terrain bands derived from the DEM (slope, "
            "aspect_sin, aspect_cos, hillshade, curvature, relative_elevation); rgb, rgbd and "
            f"terrain name sets, e.g. rgbd,terrain. Terrain bands need --resolution-m (default "
            f"{bands})"
        },
        "layers": {
            "type": _layer_definitions,
            "metavar": "FILE",
            "help": "YAML layers file declaring the input layers instead of --bands "
            "(multispectral or 16-bit imagery, categorical maps, NDVI; see docs/layers.md): each "
            "layer reads the chip folder of its name, uris in the file are for mapping",
        },
        "relative_radius_m": {
            "type": float,
            "help": "window radius of relative_elevation in metres "
            f"(default {default['relative_radius_m']:g})",
        },
        "split_fractions": {
            "type": float,
            "nargs": 3,
            "metavar": ("TRAIN", "VAL", "TEST"),
            "help": f"shares of the chips, or of a region's blocks, per split (default {fractions})",
        },
        "block_m": {
            "type": float,
            "help": f"side of a region's split blocks in metres (default {default['block_m']:g})",
        },
        "buffer_m": {
            "type": float,
            "help": "metres a training window keeps from held-out blocks "
            f"(default {default['buffer_m']:g})",
        },
        "folds": {
            "type": int,
            "help": "deal a region's blocks into this many spatial folds (with --fold)",
        },
        "fold": {"type": int, "help": "the fold held out for testing (0 to folds - 1)"},
        "partition": {
            "choices": ("blocks", "kmeans", "random"),
            "help": "how a region's blocks are dealt into folds: blocks (seeded shuffle), kmeans "
            "(contiguous clusters of blocks) or random (pixels at random, no buffer: the leaky "
            "contrast to spatial folds) (default blocks)",
        },
        "negatives": {
            "type": float,
            "help": "background windows per landslide window on a region with a complete polygon "
            f"inventory (default {default['negatives']:g})",
        },
        "windows_per_epoch": {
            "type": int,
            "help": "training windows per epoch on a region (default: one per inventory feature, "
            "with its background windows)",
        },
    }


def add_training_settings(parser: argparse.ArgumentParser, keys: Sequence[str]) -> None:
    """The flags of the training settings ``keys`` (every command that trains shares them)."""
    flags = _training_flags()
    for key in keys:
        parser.add_argument(f"--{key.replace('_', '-')}", **flags[key])


def training_overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict:
    """The training settings given as flags (None: not given)."""
    return {key: getattr(args, key, None) for key in keys}


def _layer_definitions(path: str) -> tuple[dict, ...]:
    from pipelines.inputs import read_layers_file

    return read_layers_file(path).definitions


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """The input layers of a run: ``--layers FILE``, with ``--rgb``/``--dem`` (and their
    ``--*-asset``, ``--dem-nodata``) as shorthand for the layers ``image`` and ``dem``."""
    parser.add_argument(
        "--layers",
        metavar="FILE",
        help="YAML layers file naming each input layer's uri (see docs/layers.md and `lsmap "
        "models --describe MODEL`); --rgb/--dem override its image/dem",
    )
    parser.add_argument(
        "--rgb",
        type=storage.absolute,
        help="the layer `image`: RGB mosaic URI (.tif or .zarr, local or s3://), or a STAC Item "
        "(.json: path, s3:// or URL)",
    )
    parser.add_argument(
        "--dem",
        type=storage.absolute,
        help="the layer `dem`: DEM URI (or a STAC Item); any CRS and resolution covering the "
        "area. Needed when the model reads elevation",
    )
    for name in ("rgb", "dem"):
        parser.add_argument(
            f"--{name}-asset",
            metavar="KEY",
            help=f"asset of the --{name} STAC Item to map when it has several GeoTIFF/Zarr assets",
        )
    parser.add_argument(
        "--dem-nodata",
        type=float,
        default=None,
        help="declare the DEM's nodata value when its file does not (e.g. 0 outside the survey)",
    )


def layer_inputs(args: argparse.Namespace) -> dict:
    """The ``{layer name: LayerInput}`` of :func:`add_layer_arguments`' flags."""
    from pipelines.inputs import LayerInput, read_layers_file

    inputs = dict(read_layers_file(args.layers).inputs) if args.layers else {}
    if args.rgb:
        inputs["image"] = LayerInput(args.rgb, args.rgb_asset)
    if args.dem:
        inputs["dem"] = LayerInput(args.dem, args.dem_asset, args.dem_nodata)
    if not inputs:
        raise LsmapError("no input layers: give --rgb (and --dem), or --layers FILE")
    return inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsmap",
        description="Landslide mapping from RGB imagery and a DEM: train models, map regions, scan events.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LsmapError as err:
        print(f"lsmap {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
