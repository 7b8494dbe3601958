"""``lsmap score``: a mapped region against a reference landslide mask."""

from __future__ import annotations

import argparse
import json

from pipelines import storage


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score a probability mosaic against a reference landslide mask",
        description="Compare the output of `lsmap map` with a reference mask (e.g. an inventory "
        "rasterised to any grid; non-zero = landslide) and print mIoU, AUC, precision, recall, F1, "
        "accuracy over pixels valid in both.",
    )
    parser.add_argument(
        "--map", required=True, type=storage.absolute, help="output directory of `lsmap map`"
    )
    parser.add_argument(
        "--truth", required=True, type=storage.absolute, help="reference mask raster URI"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="probability threshold (default 0.5)"
    )
    parser.add_argument("--json", help="also write the metrics as JSON to this path")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.mapping.score import score_map

    metrics = score_map(args.map, args.truth, threshold=args.threshold)
    for name, value in metrics.items():
        print(f"{name:>16s}  {value:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    return 0
