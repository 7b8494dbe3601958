"""``lsmap scan``: map new post-event imagery of watched regions and report new landslides."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan watched regions for new imagery and report new landslides",
        description=(
            "Read a watch list (YAML: regions with area of interest, imagery (a storage prefix, a "
            "STAC API search or a static STAC catalog), DEM, model, output prefix, threshold, "
            "schedule), map every image not scanned yet, compare it with the region's previous "
            "map and write landslide polygons (GeoParquet, FlatGeobuf, GeoJSON), new-landslide "
            "polygons, a picture, summary.json (with an alert level), report.md and a STAC "
            "catalog under <output>/<region>/<image-id>/. Safe to rerun and to run from "
            "overlapping schedules: finished images are in a ledger, and one scan at a time holds "
            "a region. Exits 1 if a region failed."
        ),
    )
    parser.add_argument("--config", required=True, help="watch list URI (local or s3://)")
    parser.add_argument(
        "--region",
        action="append",
        metavar="NAME",
        help="scan only this region (repeat for several; default: all)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="a region lock not renewed for this long belongs to a dead scan (default 900)",
    )
    parser.add_argument(
        "--crontab",
        action="store_true",
        help="print a crontab line per region (its schedule) instead of scanning",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.errors import InputError
    from pipelines.scan import load_watchlist, scan

    if not args.lock_timeout > 0:
        raise InputError(f"--lock-timeout must be positive, got {args.lock_timeout}")
    watchlist = load_watchlist(args.config)
    if args.crontab:
        program = f"{shlex.quote(sys.executable)} -m pipelines"
        print("\n".join(watchlist.crontab(program, args.region)))
        return 0
    if not args.quiet:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("pipelines.scan").setLevel(logging.INFO)
    results = scan(
        watchlist,
        regions=args.region,
        lock_timeout_s=args.lock_timeout,
        progress=not args.quiet,
    )
    print(json.dumps(results, indent=2))
    return 1 if any(result["status"] == "failed" for result in results) else 0
