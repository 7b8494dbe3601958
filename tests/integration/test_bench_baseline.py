"""The window loop that ``bench/map_efficiency.py`` measures lsmap against makes the same map, so
the speed and memory it reports compare equal computations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.synthetic.writers import DEM_MARGIN, write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")

NAIVE_MAPPER = Path(__file__).resolve().parents[2] / "bench" / "naive_mapper.py"

# Where the two maps may differ: each pixel blends at most 2 x 2 tiles (overlap = half a tile),
# and the programs add those weighted probabilities (all <= 1) in different orders before one
# division. Each of those 4 additions and 1 division rounds by at most 2**-24 (float32), so the
# results differ by at most about 10 * 2**-24 = 6e-7; 1e-6 leaves room for nothing else.
BLEND_ROUNDING = 1e-6


def _dem_on_image_grid(region: Path) -> str:
    """The region's DEM warped once onto the RGB's grid (plus the DEM's margin), as providers
    often deliver it; both programs then read it without warping."""
    with rasterio.open(region / "rgb.tif") as rgb, rasterio.open(region / "dem.tif") as dem:
        margin = int(DEM_MARGIN / rgb.res[0])
        profile = dem.profile | {
            "driver": "GTiff",
            "crs": rgb.crs,
            "transform": rgb.transform * rasterio.Affine.translation(-margin, -margin),
            "width": rgb.width + 2 * margin,
            "height": rgb.height + 2 * margin,
            "tiled": False,
        }
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        elevation = np.full((profile["height"], profile["width"]), dem.nodata, np.float32)
        reproject(
            rasterio.band(dem, 1),
            elevation,
            dst_transform=profile["transform"],
            dst_crs=rgb.crs,
            dst_nodata=dem.nodata,
            resampling=Resampling.bilinear,
        )
    path = region / "dem_on_rgb_grid.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(elevation, 1)
    return str(path)


def test_naive_window_loop_makes_the_map_lsmap_makes(trained_bundle, tmp_path):
    """The whole map, its rim included, where tiles overhang the region and both programs must
    pad them alike (the training mean, nodata in the map).

    The inputs are made bit-identical for both programs so that the tolerance follows from the
    blend's arithmetic alone: the DEM lies on the RGB grid (lsmap warps a DEM per unit window, the
    loop through one WarpedVRT, and GDAL's results for different windows differ in the last bits,
    which a trained model may amplify by any factor near its decision boundary); every forward
    pass holds one tile on one thread (kernels may round differently for other batch shapes).
    """
    region = tmp_path / "region"
    write_region(region, size=256, seed=11)
    rgb, dem = str(region / "rgb.tif"), _dem_on_image_grid(region)
    out = str(tmp_path / "map")
    map_region(
        trained_bundle,
        {"image": rgb, "dem": dem},
        out,
        overlap=32,
        chunk=96,  # divides neither the region nor the stride: tiles straddle units
        batch_size=1,
        dtype="float32",
        progress=False,
    )
    naive = str(tmp_path / "naive.tif")
    command = [sys.executable, str(NAIVE_MAPPER), "--model", trained_bundle, "--rgb", rgb]
    command += ["--dem", dem, "--out", naive, "--overlap", "32", "--threads", "1"]
    command += ["--batch-size", "1"]
    subprocess.run(command, check=True)

    lsmap = open_probability(OutputLayout(out), decode=True).values
    with rasterio.open(naive) as src:
        loop = src.read(1)
    difference = np.abs(lsmap - loop)
    print(f"max difference {difference.max():.2e}, mean {difference.mean():.2e}")
    assert lsmap.shape == loop.shape and np.isfinite(lsmap).all() and np.isfinite(loop).all()
    assert difference.max() <= BLEND_ROUNDING
