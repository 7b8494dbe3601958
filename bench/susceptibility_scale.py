"""Terrain-only susceptibility at province scale: mapping a DEM at 10 m, measured, then scaled.

A 176,000 km^2 province at 10 m is 1.76 Gpx. Measured here: `lsmap map` of a terrain-only model
(elevation, slope and relative elevation derived from the DEM on the fly; a U-Net of the demo's
size, random weights: speed does not depend on them) over a synthetic DEM of ``--size`` px at
10 m, then `lsmap zones` of the result, on this machine's cores. The cluster estimate scales the
measured rate by the cores a cluster brings, which assumes what the mapper's design gives (units
independent, no shared state but the output store) and ignores start-up and the final exports.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import record

PROVINCE_KM2 = 176_000
RESOLUTION_M = 10.0
BANDS = ("elevation", "slope", "relative_elevation")


def write_dem(path: Path, size: int, seed: int = 0) -> None:
    """A ``size`` px DEM at 10 m in UTM 48N, written block by block (memory stays bounded):
    ridges and valleys of several wavelengths, in metres."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    waves = [(rng.uniform(2e3, 3e4), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi), a)
             for a in (400, 150, 60, 20)]  # fmt: skip
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
        "crs": "EPSG:32648", "transform": from_origin(400_000, 3_100_000, RESOLUTION_M, RESOLUTION_M),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "predictor": 3, "nodata": -9999.0, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 1024):
            rows = np.arange(row, min(row + 1024, size))[:, None] * RESOLUTION_M
            cols = np.arange(size)[None, :] * RESOLUTION_M
            height = np.full((len(rows), size), 1500.0)
            for wavelength, phase, angle, amplitude in waves:
                along = cols * np.cos(angle) + rows * np.sin(angle)
                height += amplitude * np.sin(2 * np.pi * along / wavelength + phase)
            dst.write(height.astype(np.float32), 1, window=Window(0, row, size, len(rows)))


def terrain_bundle(path: Path, tile: int) -> str:
    """A random-weight U-Net (base 8, depth 3) on elevation, slope and relative elevation."""
    import torch

    from lsmodel.bundle import ModelBundle
    from lsmodel.models import build_model
    from pipelines.bundles import save_bundle
    from pipelines.layers import stack_from_bands, terrain_params

    torch.manual_seed(0)
    layers = stack_from_bands(BANDS)
    model = build_model("unet", in_channels=len(BANDS), base_width=8, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(
        model,
        bands=list(layers.names),
        terrain=terrain_params(layers),
        layers=layers.record(),
        tile_size=tile,
        resolution_m=RESOLUTION_M,
        norm_mean=[1500.0, 10.0, 0.0],
        norm_std=[300.0, 8.0, 20.0],
    )
    return save_bundle(bundle, str(path))


def lsmap(*args: str) -> float:
    """Run an lsmap command; its wall time in seconds."""
    from pipelines.cli import main

    started = time.perf_counter()
    if main(list(args)) != 0:
        raise SystemExit(f"lsmap {' '.join(args)} failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="side of the DEM (px at 10 m)")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cluster-cores", type=int, default=512, help="cores of the cluster in the estimate"
    )
    args = parser.parse_args()

    import geopandas as gpd
    import shapely

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dem(tmp / "dem.tif", args.size)
        bundle = terrain_bundle(tmp / "terrain.lsmap", args.tile)
        mapped = lsmap("map", "--model", bundle, "--dem", str(tmp / "dem.tif"), "--out",
                       str(tmp / "map"), "--chunk", str(args.chunk), "--workers",
                       str(args.workers), "--cog")  # fmt: skip
        # Zones need landslides: points scattered over the DEM stand in for an inventory.
        rng = np.random.default_rng(1)
        span = args.size * RESOLUTION_M
        xy = rng.uniform(0.05, 0.95, (200, 2)) * span
        points = [shapely.Point(400_000 + x, 3_100_000 - y) for x, y in xy]
        gpd.GeoDataFrame(geometry=points, crs="EPSG:32648").to_file(tmp / "points.gpkg")
        zoned = lsmap("zones", "--map", str(tmp / "map"), "--inventory",
                      str(tmp / "points.gpkg"), "--out", str(tmp / "zones"))  # fmt: skip
    pixels = args.size * args.size
    rate = pixels / mapped
    cores = os.cpu_count() or 1
    province = PROVINCE_KM2 * 1e6 / RESOLUTION_M**2
    here_h = province / rate / 3600
    cluster_h = here_h * cores / args.cluster_cores
    table = "\n".join(
        [
            "| step | pixels | wall time | rate |",
            "|---|---|---|---|",
            f"| map (terrain derived on the fly, COG) | {pixels / 1e6:.0f} Mpx | {mapped:.0f} s | "
            f"{rate / 1e6:.2f} Mpx/s |",
            f"| zones (two passes, COG, tables) | {pixels / 1e6:.0f} Mpx | {zoned:.0f} s | "
            f"{pixels / zoned / 1e6:.2f} Mpx/s |",
            f"| province at 10 m, this machine ({cores} cores) | {province / 1e9:.2f} Gpx | "
            f"{here_h:.1f} h | |",
            f"| province at 10 m, {args.cluster_cores} cores (estimate) | {province / 1e9:.2f} Gpx "
            f"| {cluster_h * 60:.0f} min | |",
        ]
    )
    notes = (
        f"A synthetic {args.size} px DEM at 10 m ({args.size * RESOLUTION_M / 1e3:.0f} km "
        f"square), mapped by a random-weight U-Net (base 8, depth 3, {args.tile} px tiles) on "
        f"elevation, slope and relative elevation, `--chunk {args.chunk} --workers "
        f"{args.workers}`, with a COG. The estimate divides this machine's time by the ratio "
        f"of cores ({args.cluster_cores} against {cores}), as independent units allow; it leaves "
        "out start-up, stragglers and the final COG export, which over 32768 px a side runs "
        "in parallel blocks."
    )
    record("Terrain-only susceptibility at province scale (10 m)", table, notes)


if __name__ == "__main__":
    main()
