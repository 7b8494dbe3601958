"""``lsmap evaluate``: a model bundle's metrics on a split of a chip directory."""

from __future__ import annotations

import argparse
import json

from pipelines import storage
from pipelines.cli import add_chips_argument, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model bundle on chips: mIoU, AUC, precision, recall, F1, accuracy",
        description=(
            "Score a model bundle on Bijie-layout chips with the bundle's normalisation and "
            "threshold. --split train/val/test draws the split exactly as the bundle's training "
            "run did (its seed and fractions travel in the bundle); --split all scores every chip."
        ),
    )
    add_model_argument(parser)
    add_chips_argument(parser)
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
    from pipelines.training.outputs import json_ready

    bundle = load_bundle(args.model)
    results = json_ready(evaluate_bundle(bundle, args.data, args.split, args.batch_size))
    results["model"] = resolve_bundle_uri(args.model)
    print(f"{results['model']} on {results['chips']} {args.split} chip(s) of {args.data}")
    print(format_table(results))
    if args.json_out:
        storage.write_json(args.json_out, results)
        print(f"wrote {args.json_out}")
    else:
        print(json.dumps(results, sort_keys=True))
    return 0
