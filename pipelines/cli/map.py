"""``lsmap map``: a landslide probability mosaic over a whole region."""

from __future__ import annotations

import argparse
import json

from pipelines import storage
from pipelines.cli import add_layer_arguments, add_model_argument, layer_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "map",
        help="map landslide probability over a region's input layers (RGB, DEM, ...)",
        description=(
            "Stream the model's input layers (an RGB or multispectral mosaic, a DEM, categorical "
            "maps; Zarr or GeoTIFF/COG, local or s3://) through a model bundle with Ray Data and "
            "write a georeferenced probability mosaic (Zarr) to --out. Derived bands the model "
            "was trained with (slope, relative elevation, NDVI, one-hot classes) are computed "
            "per unit, with the neighbouring data they need, as in training. "
            "Reruns resume: only units without a marker are computed."
        ),
    )
    add_model_argument(parser)
    add_layer_arguments(parser)
    parser.add_argument(
        "--out",
        required=True,
        type=storage.absolute,
        help="output directory URI (local or s3://)",
    )
    parser.add_argument("--workers", type=int, default=1, help="inference actors (default 1)")
    parser.add_argument(
        "--cpus-per-worker", type=int, default=1, help="CPU threads per actor (default 1)"
    )
    parser.add_argument(
        "--gpus-per-worker", type=float, default=0, help="GPUs per actor; >0 runs on CUDA"
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="forward pass in fp32 or bf16 autocast; auto (default): bf16 on GPUs, fp32 on CPUs. "
        "bf16 is 2-3x faster on CPUs with AMX (Intel Xeon Sapphire Rapids and later), slower on most others",
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="tiles per forward pass (default 16)"
    )
    parser.add_argument(
        "--overlap", type=int, default=None, help="tile overlap in pixels (default: half a tile)"
    )
    parser.add_argument(
        "--blend",
        choices=["ramp", "crop"],
        default="ramp",
        help="combine overlapping tiles by cross-fading (ramp, default) or by keeping each tile's "
        "centre (crop: fastest, no tile computed twice when --chunk is a multiple of tile - overlap)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=1024,
        help="output chunk = work unit size in pixels (default 1024)",
    )
    parser.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("MINX", "MINY", "MAXX", "MAXY"),
        help="area of interest",
    )
    parser.add_argument(
        "--bbox-crs",
        default=None,
        help="CRS of --bbox (default: the RGB mosaic's CRS), e.g. EPSG:4326",
    )
    parser.add_argument(
        "--native-resolution",
        action="store_true",
        help="keep the RGB's resolution instead of resampling to the model's",
    )
    parser.add_argument(
        "--dtype",
        choices=["uint8", "float32"],
        default="uint8",
        help="stored probability type (default uint8: 0-254, 255 nodata)",
    )
    parser.add_argument(
        "--no-resume", dest="resume", action="store_false", help="recompute every unit"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a different run found in --out"
    )
    parser.add_argument(
        "--tolerate-read-errors",
        action="store_true",
        help="map around unreadable (corrupt) parts of the inputs as nodata; listed in manifest.json",
    )
    parser.add_argument(
        "--cog",
        action="store_true",
        help="also write probability.tif, a Cloud-Optimized GeoTIFF (over 32768 px a side: one "
        "COG per block and probability.vrt, their mosaic)",
    )
    parser.add_argument(
        "--polygons",
        action="store_true",
        help="also write polygons.parquet (GeoParquet), polygons.fgb and polygons.geojson "
        "(probability over the bundle's threshold)",
    )
    parser.add_argument(
        "--no-quicklook", dest="quicklook", action="store_false", help="skip quicklook.png"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.errors import UnreadableInputError
    from pipelines.mapping import map_region
    from pipelines.mapping.output import OutputLayout

    try:
        manifest = map_region(
            args.model,
            layer_inputs(args),
            args.out,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size,
            precision=args.precision,
            overlap=args.overlap,
            blend=args.blend,
            chunk=args.chunk,
            bbox=tuple(args.bbox) if args.bbox else None,
            bbox_crs=args.bbox_crs,
            resample_to_model=not args.native_resolution,
            dtype=args.dtype,
            resume=args.resume,
            overwrite=args.overwrite,
            tolerate_read_errors=args.tolerate_read_errors,
            cog=args.cog,
            polygons=args.polygons,
            quicklook=args.quicklook,
            progress=not args.quiet,
        )
    except UnreadableInputError as error:
        raise UnreadableInputError(
            f"{error}. Pass --tolerate-read-errors to map around unreadable parts as nodata"
        ) from None
    print(
        json.dumps(
            {
                "status": manifest["status"],
                "units": manifest["units"],
                "outputs": OutputLayout(args.out).resolve(manifest["outputs"]),
            },
            indent=2,
        )
    )
    return 0
