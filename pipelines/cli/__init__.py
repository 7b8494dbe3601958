"""The ``lsmap`` command: one subcommand per job, each in its own module (parse, then call)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

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
        "--data", required=True, type=storage.absolute, help="chip directory in the Bijie layout"
    )


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
