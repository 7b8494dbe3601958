"""``lsmap zones``: a probability map zoned into susceptibility classes, scored by rate curves."""

from __future__ import annotations

import argparse

from pipelines import storage


def register(subparsers: argparse._SubParsersAction) -> None:
    from pipelines.susceptibility.classes import METHODS, NAMES

    parser = subparsers.add_parser(
        "zones",
        help="classify a probability map into susceptibility classes",
        description="Zone the output of `lsmap map` into susceptibility classes (very low ... very "
        "high) and score them against a landslide inventory: a class COG with colours and names, "
        "a QGIS style, a table per class (area and landslide shares, frequency ratio), the "
        "success-rate curve (--inventory) and prediction-rate curve (--held-out) with their AUC, "
        "figures, report.md and a STAC item. Works block by block on maps of any size.",
    )
    parser.add_argument(
        "--map", required=True, type=storage.absolute, help="output folder of `lsmap map`"
    )
    parser.add_argument(
        "--inventory",
        required=True,
        type=storage.absolute,
        help="landslides the model was trained on: polygons or points (any vector file), or a "
        "region file (its inventory: with label, CRS and filters)",
    )
    parser.add_argument(
        "--held-out",
        type=storage.absolute,
        help="landslides the model never saw, for the prediction-rate curve",
    )
    parser.add_argument("--out", required=True, type=storage.absolute, help="output folder")
    parser.add_argument(
        "--classes",
        type=int,
        default=5,
        help=f"number of classes, {min(NAMES)} to {max(NAMES)} (default 5)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="quantile",
        help="quantile: equal pixel counts; equal-area: equal ground area; natural-breaks: "
        "Fisher-Jenks; success-rate: equal shares of the inventory's landslides (default quantile)",
    )
    parser.add_argument(
        "--thresholds",
        type=storage.absolute,
        help="reuse the classes of an earlier `lsmap zones` of the same model (its folder or "
        "zones.json) instead of --classes/--method",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.susceptibility.zonation import zonate

    document = zonate(
        args.map,
        args.inventory,
        args.out,
        classes=args.classes,
        method=args.method,
        held_out=args.held_out,
        thresholds_from=args.thresholds,
    )
    for row in document["table"]:
        print(
            f"{row['class']} {row['name']:<15s} area {row['area_share']:6.1%}  "
            f"landslides {row['landslide_share']:6.1%}"
        )
    print(f"success-rate AUC {document['success_rate']['auc']:.3f}", end="")
    if document["prediction_rate"]:
        print(f", prediction-rate AUC {document['prediction_rate']['auc']:.3f}", end="")
    print(f"\nwrote {args.out}")
    return 0
