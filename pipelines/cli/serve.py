"""``lsmap serve``: look at a finished map in a browser or QGIS."""

from __future__ import annotations

import argparse

from pipelines import storage


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="view a finished map output in the browser (and QGIS through WMTS)",
        description=(
            "Serve a finished `lsmap map` output directory on a local port: a web map of the "
            "landslide probability (from the COG and the Zarr) with the polygons and their "
            "attributes, and WMTS capabilities that QGIS and other GIS clients can add."
        ),
    )
    parser.add_argument(
        "out",
        metavar="OUT",
        type=storage.absolute,
        help="output directory of `lsmap map` (--out), local or s3://",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.serve import serve

    serve(args.out, host=args.host, port=args.port)
    return 0
