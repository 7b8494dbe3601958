"""``lsmap evaluate``: a model bundle's metrics on a split of a chip directory or of the region
it was trained on."""

from __future__ import annotations

import argparse
import json

from pipelines import storage
from pipelines.cli import add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model bundle on chips or a region's held-out blocks: mIoU, AUC, precision, "
        "recall, F1, accuracy",
        description=(
            "Score a model bundle with its normalisation and threshold on Bijie-layout chips "
            "(--data) or on the region it was trained on (--region). --split train/val/test "
            "takes the split exactly as the bundle's training run drew it (its seed and "
            "fractions, or its blocks, travel in the bundle); --split all scores every chip. On "
            "a region, metrics count the pixels the inventory labels in the split's blocks, and "
            "a points inventory also gets point_auc, the AUROC at its points there."
        ),
    )
    add_model_argument(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=storage.absolute, help="chip directory in the Bijie layout (local or s3://)"
    )
    source.add_argument(
        "--region",
        type=storage.absolute,
        metavar="REGION.yaml",
        help="the region file the model was trained on (`lsmap train --region`)",
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="which chips (default test)",
    )
    parser.add_argument(
        "--json", dest="json_out", help="also write the results as JSON to this URI"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="chips per forward pass")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.bundles import load_bundle, resolve_bundle_uri
    from pipelines.evaluate import evaluate_bundle, format_table
    from pipelines.regional.evaluate import evaluate_region
    from pipelines.training.outputs import json_ready

    bundle = load_bundle(args.model)
    model = resolve_bundle_uri(args.model)
    if args.region is not None:
        results = evaluate_region(bundle, args.region, args.split, batch_size=args.batch_size)
        print(
            f"{model} on the {args.split} blocks of {args.region}: {results['tiles']} tile(s), "
            f"{results['pixels']} labelled pixel(s)"
        )
    else:
        results = evaluate_bundle(bundle, args.data, args.split, args.batch_size)
        print(f"{model} on {results['chips']} {args.split} chip(s) of {args.data}")
    results = json_ready(results)
    results["model"] = model
    print(format_table(results))
    if "point_auc" in results:
        print(f"AUROC at {results['points']} point(s): {results['point_auc']}")
    if args.json_out:
        storage.write_json(args.json_out, results)
        print(f"wrote {args.json_out}")
    else:
        print(json.dumps(results, sort_keys=True))
    return 0
