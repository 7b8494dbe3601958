"""``lsmap synth``: write synthetic chips (Bijie layout) or a georeferenced synthetic region."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic training chips or a synthetic region (truth known)",
        description=(
            "Generate data from the seeded synthetic landslide world: a chip dataset in the Bijie "
            "layout, or a region as RGB, DEM and truth Cloud-Optimized GeoTIFFs."
        ),
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    chips = kinds.add_parser(
        "chips",
        help="chip dataset: landslide/{image,dem,mask}, non-landslide/{image,dem}",
        description="Write COUNT chips of SIZE px (1 m pixels) in the Bijie dataset layout.",
    )
    chips.add_argument("out", help="output directory")
    chips.add_argument("--count", type=int, default=200, help="number of chips (default 200)")
    chips.add_argument("--size", type=int, default=128, help="chip side in pixels (default 128)")
    chips.add_argument("--seed", type=int, default=0, help="world and sampling seed (default 0)")
    chips.add_argument(
        "--landslide-fraction",
        type=float,
        default=0.5,
        help="share of chips centred on a landslide (default 0.5)",
    )
    _layer_options(chips)
    chips.set_defaults(func=run_chips)

    region = kinds.add_parser(
        "region",
        help="region: rgb.tif (UTM 48N, 1 m), dem.tif (EPSG:4326), truth.tif, inventory",
        description=(
            "Write a SIZE x SIZE m region as COGs: rgb.tif (EPSG:32648, 1 m), truth.tif on the "
            "same grid, and dem.tif in EPSG:4326 at about 4 m, covering the RGB with a margin; "
            "and its landslide inventory: inventory.gpkg (scar polygons with id, event and "
            "date) and points.csv (presence points at scar heads and absence points, lon/lat)."
        ),
    )
    region.add_argument("out", help="output directory")
    region.add_argument("--size", type=int, default=2048, help="side in pixels (default 2048)")
    region.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    region.add_argument(
        "--event",
        type=int,
        default=0,
        help="show landslides of events 0..EVENT (default 0, the pre-event scene)",
    )
    region.add_argument(
        "--block", type=int, default=1024, help="generation block in pixels (default 1024)"
    )
    _layer_options(region)
    region.set_defaults(func=run_region)


def _layer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nir",
        action="store_true",
        help="also write red, green, blue and near-infrared (chips: ms/ folders; region: "
        "ms.tif), from a world with shrub look-alikes that only near-infrared tells from scars",
    )
    parser.add_argument(
        "--lithology",
        action="store_true",
        help="also write the lithology map (chips: lithology/ folders; region: lithology.tif), "
        "from a world whose scars depend on it",
    )
    parser.add_argument(
        "--rivers",
        action="store_true",
        help="also write the river network (chips: rivers/ folders of distance to a river in "
        "metres; region: rivers.geojson lines, for a distance layer)",
    )
    parser.add_argument(
        "--dtype",
        choices=["uint8", "uint16"],
        default="uint8",
        help="type of the --nir imagery (uint16: digital numbers x 40, as reflectance x 10000)",
    )


def _layer_kwargs(args: argparse.Namespace) -> dict:
    """The writers' options of :func:`_layer_options`."""
    return {
        "nir": args.nir,
        "lithology": args.lithology,
        "rivers": args.rivers,
        "dtype": args.dtype,
    }


def _check(args: argparse.Namespace) -> None:
    from pipelines.errors import InputError

    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    if args.size < 8:
        raise InputError(f"--size must be at least 8 px, got {args.size}")


def run_chips(args: argparse.Namespace) -> int:
    from pipelines.errors import InputError
    from pipelines.synthetic import write_chips

    _check(args)
    if args.count < 1:
        raise InputError(f"--count must be at least 1, got {args.count}")
    if not 0.0 <= args.landslide_fraction <= 1.0:
        raise InputError(f"--landslide-fraction must be in [0, 1], got {args.landslide_fraction}")
    out = write_chips(
        args.out,
        args.count,
        args.size,
        args.seed,
        args.landslide_fraction,
        **_layer_kwargs(args),
    )
    print(f"wrote {args.count} chips of {args.size} px to {out}")
    return 0


def run_region(args: argparse.Namespace) -> int:
    from pipelines.errors import InputError
    from pipelines.synthetic import write_region

    _check(args)
    if args.event < 0 or args.block < 1:
        raise InputError("--event must be >= 0 and --block >= 1")
    files = write_region(
        args.out,
        args.size,
        args.seed,
        block=args.block,
        event=args.event,
        **_layer_kwargs(args),
    )
    written = [
        path
        for path in (
            *(files.rgb, files.dem, files.truth, files.ms, files.lithology, files.rivers),
            *(files.inventory, files.points),
        )
        if path
    ]
    print(f"wrote {', '.join(map(str, written))}; layers in {files.layers}")
    return 0
