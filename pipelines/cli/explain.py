"""``lsmap explain``: Grad-CAM figures (image, DEM, truth, prediction, heat map) for chips."""

from __future__ import annotations

import argparse

from pipelines import storage
from pipelines.cli import add_chips_argument, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Grad-CAM overlays of a model bundle on chips, as PNGs",
        description=(
            "For --count chips of a split (landslide chips first), write a PNG per chip to --out "
            "(local or s3://) with the image, the DEM, the ground truth, the prediction and the "
            "Grad-CAM heat map of the landslide prediction."
        ),
    )
    add_model_argument(parser)
    add_chips_argument(parser)
    parser.add_argument(
        "--out", required=True, type=storage.absolute, help="output directory URI for the PNGs"
    )
    parser.add_argument("--count", type=int, default=8, help="number of chips (default 8)")
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="which chips (default test)",
    )
    parser.add_argument("--layer", help="module name for Grad-CAM (default: the model's own)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.bundles import load_bundle
    from pipelines.errors import InputError
    from pipelines.evaluate import bundle_split
    from pipelines.explain import explain_chips, select_chips

    if args.count < 1:
        raise InputError(f"--count must be >= 1, got {args.count}")
    bundle = load_bundle(args.model)
    if args.layer is not None:
        try:
            bundle.build().get_submodule(args.layer)
        except AttributeError as err:
            raise InputError(
                f"--layer {args.layer}: no such module in {bundle.arch} ({err})"
            ) from err
    records = select_chips(bundle_split(bundle, args.data, args.split), args.count)
    if not records:
        raise InputError(f"{args.data}: the {args.split} split holds no chips")
    for uri in explain_chips(bundle, records, args.out, layer=args.layer):
        print(uri)
    return 0
