"""Scale on paper: what mapping a whole province at 1 m would cost on N devices.

Arithmetic, not a measurement, except for the CPU rate, which is measured here (the same model's
forward pass, batch 16, ``--threads`` threads, after a warm-up batch). The GPU rates are stated
assumptions: the issue's target of 5000 tiles/s per H100, and the paper's 4-5 ms per image on a
T4 (4.5 ms taken). Tiles, bytes and requests follow the mapper's own plan (``MapPlan`` /
``TileLayout`` with ``lsmap map``'s defaults: 1024 px chunks, overlap half a tile, ramp blend);
edge units are ignored (a province holds about 10^5 of them), and the area is the province's,
not its bounding box (mapping the box reads every unit in it, and runs the model only on units
with valid input).

Byte counts are of decoded pixels (uint8 RGB, float32 DEM, uint8 probability): an upper bound
on object-store traffic, which carries compressed blocks. Request counts assume one range GET
per input block touched (GDAL can merge adjacent blocks, so fewer) and no block cache shared
between units; each unit writes one Zarr chunk and one marker. Prices are assumptions.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from _common import record

from pipelines.mapping.plan import TileLayout

S3_MULTIPART_PART = 50 * 2**20  # s3fs's part size for large single-object writes
AXIS_UNITS = 64  # an axis long enough that unit 10 along it is an interior unit


@dataclass(frozen=True)
class UnitGeometry:
    """One interior unit along one axis (units are square, so squares of these are per unit)."""

    tiles: int  # tiles computed along the axis
    read: int  # read window length in pixels (chunk plus halo)
    blocks: int  # input COG blocks the read window touches


def unit_geometry(chunk: int, layout: TileLayout, block: int) -> UnitGeometry:
    """Tiles, read length and input blocks along one axis of an interior unit of the mapper's plan.

    The input mosaic is assumed to share the output grid (1 m RGB) with its blocks anchored at
    the grid origin, so block counts are exact, not averages.
    """
    start = 10 * chunk
    first, last = layout.tiles_touching(start, start + chunk, AXIS_UNITS * chunk)
    tiles = last - first + 1
    read_start = layout.origin + first * layout.stride
    read = (tiles - 1) * layout.stride + layout.tile
    blocks = (read_start + read - 1) // block - read_start // block + 1
    return UnitGeometry(tiles, read, blocks)


def province_budget(
    area_km2: float,
    resolution_m: float,
    chunk: int,
    layout: TileLayout,
    block: int,
    dem_resolution_m: float,
) -> dict[str, float]:
    """Totals for mapping ``area_km2`` at ``resolution_m``: units, tiles, bytes and requests."""
    pixels = area_km2 * 1e6 / resolution_m**2
    units = pixels / chunk**2
    axis = unit_geometry(chunk, layout, block)
    # The DEM window: the read window at the DEM's resolution plus a 1-pixel bilinear margin each
    # side; an interval of L pixels at a random offset touches 1 + (L - 1) / block blocks on average.
    dem_read = axis.read * resolution_m / dem_resolution_m + 2
    dem_blocks = 1 + (dem_read - 1) / block
    cog_bytes = pixels * 4 / 3  # uint8 plus overviews (each level a quarter of the one below)
    return {
        "pixels": pixels,
        "units": units,
        "tiles": units * axis.tiles**2,
        "unique_tiles": pixels / layout.stride**2,
        "rgb_read_bytes": units * axis.read**2 * 3,
        "rgb_block_bytes": units * (axis.blocks * block) ** 2 * 3,
        "rgb_gets": units * axis.blocks**2,
        "dem_read_bytes": units * dem_read**2 * 4,
        "dem_block_bytes": units * dem_blocks**2 * block**2 * 4,
        "dem_gets": units * dem_blocks**2,
        "zarr_bytes": pixels,
        "zarr_puts": 2 * units,  # the chunk and its marker
        "cog_read_gets": units,  # the export reads every Zarr chunk back
        "cog_bytes": cog_bytes,
        "cog_puts": math.ceil(cog_bytes / S3_MULTIPART_PART),
        "cog_tiles": cog_bytes / block**2,
    }


def hours(tiles: float, tiles_per_s: float, devices: int) -> float:
    """Wall hours for ``tiles`` on ``devices`` devices of ``tiles_per_s`` each (linear scaling:
    units are independent and far outnumber devices)."""
    return tiles / (tiles_per_s * devices) / 3600


def measured_cpu_rate(arch: str, base_width: int, threads: int) -> float:
    """Tiles/s of ``arch`` on this CPU: 128 px, batch 16, ``threads`` torch threads."""
    import torch

    from lsmodel.cost import time_forward
    from lsmodel.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return 1000 / time_forward(build_model(arch, 4, base_width), 128, batch=16, repeats=2)


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--area-km2", type=float, default=176_000, help="Guizhou: about 176,000")
    parser.add_argument("--resolution", type=float, default=1.0, help="output metres per pixel")
    parser.add_argument("--dem-resolution", type=float, default=30.0, help="DEM metres per pixel")
    parser.add_argument("--chunk", type=int, default=1024, help="lsmap map --chunk")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=None, help="default: half a tile")
    parser.add_argument("--blend", default="ramp", choices=("ramp", "crop"))
    parser.add_argument("--block", type=int, default=512, help="COG internal tile, in and out")
    parser.add_argument("--arch", default="unetpp_ca")
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the measured rate")
    parser.add_argument(
        "--cpu-tiles-per-s", type=float, default=None, help="skip the measurement, use this rate"
    )
    parser.add_argument(
        "--cpu-source", default="given", help="where --cpu-tiles-per-s comes from (for the table)"
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--h100-usd-per-hour", type=float, default=3.0, help="assumed price")
    parser.add_argument("--t4-usd-per-hour", type=float, default=0.35, help="assumed price")
    parser.add_argument("--cpu-usd-per-hour", type=float, default=0.08, help="assumed, 2 cores")
    parser.add_argument("--get-usd-per-1000", type=float, default=0.0004, help="assumed price")
    parser.add_argument("--put-usd-per-1000", type=float, default=0.005, help="assumed price")
    args = parser.parse_args()

    layout = TileLayout(
        args.tile, args.tile // 2 if args.overlap is None else args.overlap, args.blend
    )
    budget = province_budget(
        args.area_km2, args.resolution, args.chunk, layout, args.block, args.dem_resolution
    )
    cpu_rate = args.cpu_tiles_per_s or measured_cpu_rate(args.arch, args.base_width, args.threads)
    devices = [
        (
            f"this CPU, {args.threads} threads",
            cpu_rate,
            "measured" if args.cpu_tiles_per_s is None else args.cpu_source,
            args.cpu_usd_per_hour,
        ),
        ("H100", 5000.0, "assumed: the issue's target", args.h100_usd_per_hour),
        ("T4", 1000 / 4.5, "assumed: paper's 4.5 ms per image", args.t4_usd_per_hour),
    ]
    gets = budget["rgb_gets"] + budget["dem_gets"] + budget["cog_read_gets"]
    puts = budget["zarr_puts"] + budget["cog_puts"]
    request_usd = gets / 1000 * args.get_usd_per_1000 + puts / 1000 * args.put_usd_per_1000
    units_per_tile = budget["units"] / budget["tiles"]

    table = (
        "| device | tiles/s per device (source) | devices | hours | device-hours | "
        "compute $ (assumed price/h) | RGB read GB/s, decoded | GET/s |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    for name, rate, source, price in devices:
        for n in args.devices:
            wall = hours(budget["tiles"], rate, n)
            unit_rate = rate * n * units_per_tile
            table += (
                f"| {name} | {rate:,.1f} ({source}) | {n} | {wall:,.2f} | {wall * n:,.1f} | "
                f"{wall * n * price:,.0f} (${price}/h) | "
                f"{unit_rate * budget['rgb_block_bytes'] / budget['units'] / 1e9:.2f} | "
                f"{unit_rate * (budget['rgb_gets'] + budget['dem_gets']) / budget['units']:,.0f} |\n"
            )
    axis = unit_geometry(args.chunk, layout, args.block)
    io = (
        "| quantity | total | per unit |\n|---|---|---|\n"
        f"| output pixels | {_si(budget['pixels'], 'px')} | {args.chunk}^2 |\n"
        f"| units (chunks) | {budget['units']:,.0f} | 1 |\n"
        f"| tiles computed ({args.blend}) | {budget['tiles']:,.0f} | {axis.tiles}^2 |\n"
        f"| tiles if each were computed once | {budget['unique_tiles']:,.0f} | "
        f"{args.chunk // layout.stride}^2 |\n"
        f"| RGB read, decoded window | {_si(budget['rgb_read_bytes'], 'B')} | "
        f"{axis.read}^2 x 3 B |\n"
        f"| RGB read, whole {args.block} px blocks | {_si(budget['rgb_block_bytes'], 'B')} | "
        f"{axis.blocks}^2 blocks |\n"
        f"| DEM read at {args.dem_resolution:g} m, decoded window | "
        f"{_si(budget['dem_read_bytes'], 'B')} | float32 |\n"
        f"| DEM read, whole blocks | {_si(budget['dem_block_bytes'], 'B')} | "
        f"{budget['dem_gets'] / budget['units']:.2f} blocks |\n"
        f"| Zarr probability written (uint8) | {_si(budget['zarr_bytes'], 'B')} | "
        f"{args.chunk}^2 B |\n"
        f"| COG written (uint8 + overviews) | {_si(budget['cog_bytes'], 'B')} | - |\n"
        f"| GET requests (RGB + DEM blocks, Zarr read-back for the COG) | {gets:,.0f} | - |\n"
        f"| PUT requests (Zarr chunks + markers, COG as {S3_MULTIPART_PART >> 20} MiB parts) | "
        f"{puts:,.0f} | 2 |\n"
        f"| COG internal tiles ({args.block} px, with overviews) | {budget['cog_tiles']:,.0f} | "
        f"- |\n"
        f"| request $ (assumed ${args.get_usd_per_1000}/1000 GET, "
        f"${args.put_usd_per_1000}/1000 PUT) | {request_usd:,.2f} | - |\n"
    )
    record(
        f"Scale on paper: {args.area_km2:,.0f} km^2 at {args.resolution:g} m",
        table + "\n" + io,
        f"{args.arch} base {args.base_width}, {args.tile} px tiles, overlap {layout.overlap}, "
        f"{args.blend} blend, chunk {args.chunk}, input and output COG blocks {args.block} px, "
        f"DEM at {args.dem_resolution:g} m (an assumption: a province-wide DEM such as GLO-30). "
        "Hours are at the model-only floor with linear scaling; divide by the mapping efficiency "
        "(see the mapping throughput section) for end-to-end time. Only the CPU rate is measured; "
        "the H100 and T4 rates and every price are assumptions, not measurements or quotes. "
        "Bytes are decoded pixels, an upper bound on object-store traffic. GET/s is what the "
        "object store must serve at that rate (S3 serves about 5,500 GET/s per key prefix).",
    )


if __name__ == "__main__":
    main()
