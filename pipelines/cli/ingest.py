"""``lsmap ingest SRC DST``: copy a GeoTIFF/COG mosaic into a chunked Zarr v3 store."""

from __future__ import annotations

import argparse

from pipelines import storage


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="copy a GeoTIFF/COG mosaic into a chunked Zarr v3 store",
        description=(
            "Copy a GeoTIFF/COG mosaic (local path, file:// or s3://) into a Zarr v3 store, "
            "keeping dtype, nodata, band names, CRS and transform. Streams chunk by chunk; the "
            "store is marked complete only after every chunk is written. S3 endpoint and "
            "credentials come from the AWS_* environment variables."
        ),
    )
    parser.add_argument("src", type=storage.absolute, help="source GeoTIFF/COG (path or URI)")
    parser.add_argument(
        "dst",
        type=storage.absolute,
        help="destination Zarr store (path or URI); replaced if present",
    )
    parser.add_argument(
        "--chunk", type=_positive_int, default=512, help="chunk size in pixels (default: 512)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.ingest import ingest
    from pipelines.raster import open_mosaic
    from pipelines.storage import redact

    ingest(args.src, args.dst, chunk=args.chunk)
    mosaic = open_mosaic(args.dst)
    bands = ", ".join(str(b) for b in mosaic.band.values)
    print(
        f"{redact(args.dst)}: {mosaic.sizes['y']} x {mosaic.sizes['x']} px, bands [{bands}], "
        f"{mosaic.dtype}, {mosaic.rio.crs}, nodata {mosaic.rio.nodata}"
    )
    return 0
