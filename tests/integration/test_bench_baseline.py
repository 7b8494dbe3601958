"""The window loop that ``bench/map_efficiency.py`` measures lsmap against makes the same map, so
the speed and memory it reports compare equal computations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.synthetic.writers import write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")

NAIVE_MAPPER = Path(__file__).resolve().parents[2] / "bench" / "naive_mapper.py"


def test_naive_window_loop_makes_the_map_lsmap_makes(trained_bundle, tmp_path):
    region = tmp_path / "region"
    write_region(region, size=256, seed=11)
    rgb, dem = str(region / "rgb.tif"), str(region / "dem.tif")
    out = str(tmp_path / "map")
    map_region(
        trained_bundle, rgb, dem, out, overlap=32, chunk=128, dtype="float32", progress=False
    )
    naive = str(tmp_path / "naive.tif")
    command = [sys.executable, str(NAIVE_MAPPER), "--model", trained_bundle, "--rgb", rgb]
    command += ["--dem", dem, "--out", naive, "--overlap", "32", "--threads", "1"]
    subprocess.run(command, check=True)

    lsmap = open_probability(OutputLayout(out), decode=True).values
    with rasterio.open(naive) as src:
        loop = src.read(1)
    # Tiles overhang the region's edge by a quarter tile, where the loop feeds the model RGB 0 and
    # the DEM's nodata value and lsmap the training mean: they disagree on the outer 2 px only
    # (the ramp blend gives an overhanging tile's rim almost no weight). Inside, the two warps of
    # the DEM differ in the last bits.
    inner = np.s_[3:-3, 3:-3]
    difference = np.abs(lsmap - loop)[inner]
    print(f"inside: max difference {difference.max():.2e}, mean {difference.mean():.2e}")
    assert lsmap.shape == loop.shape and np.isfinite(lsmap).all()
    assert (lsmap > 0.5).mean() > 0.01, "the fixture model must find landslides here"
    assert difference.max() < 0.01 and difference.mean() < 1e-4
