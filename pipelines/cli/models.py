"""``lsmap models``: the available architectures with their size and cost per tile."""

from __future__ import annotations

import argparse

from pipelines import storage
from pipelines.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list architectures with parameters, GFLOPs and (optionally) time per tile",
        description=(
            "List the segmentation architectures with their parameter count and GFLOPs per tile; "
            "with --time, also measure milliseconds per tile on this machine (random weights). "
            "With --describe MODEL, print the input layers a trained model expects, as a layers "
            "file to fill in for `lsmap map --layers`."
        ),
    )
    parser.add_argument(
        "--describe",
        metavar="MODEL",
        type=storage.absolute,
        help="print the input layers of this model bundle (or training run) as a layers file",
    )
    parser.add_argument(
        "--base-width", type=int, default=32, help="channels at level 0 (default 32)"
    )
    parser.add_argument("--depth", type=int, default=4, help="number of halvings (default 4)")
    parser.add_argument("--tile", type=int, default=128, help="tile size in pixels (default 128)")
    parser.add_argument("--in-channels", type=int, default=4, help="input bands (default 4)")
    parser.add_argument("--time", action="store_true", help="measure forward time per tile")
    parser.add_argument("--batch", type=int, default=16, help="tiles per timed batch (default 16)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="time the forward pass in fp32 (default) or bf16 autocast, as `lsmap map --precision`",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lsmodel.cost import model_cost, time_forward
    from lsmodel.models import ARCHITECTURES, build_model

    if args.describe:
        from pipelines.bundles import load_bundle
        from pipelines.inputs import describe_layers
        from pipelines.layers import stack_for_bundle

        print(describe_layers(stack_for_bundle(load_bundle(args.describe))), end="")
        return 0

    if args.base_width < 1 or args.depth < 1 or args.in_channels < 1 or args.batch < 1:
        raise InputError("--base-width, --depth, --in-channels and --batch must be >= 1")
    if args.tile < 1 or args.tile % 2**args.depth:
        raise InputError(
            f"--tile {args.tile} must be a positive multiple of 2**depth = {2**args.depth}"
        )
    header = f"{'arch':<14} {'params':>12} {'GFLOPs/tile':>12}" + (
        f" {'ms/tile':>9}" if args.time else ""
    )
    print(header)
    for arch in ARCHITECTURES:
        cost = model_cost(arch, args.tile, args.in_channels, args.base_width, args.depth)
        row = f"{arch:<14} {cost['params']:>12,} {cost['gflops']:>12.3f}"
        if args.time:
            model = build_model(arch, args.in_channels, args.base_width, args.depth)
            ms = time_forward(model, args.tile, args.batch, repeats=3, precision=args.precision)
            row += f" {ms:>9.2f}"
        print(row, flush=True)
    return 0
