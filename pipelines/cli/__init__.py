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
