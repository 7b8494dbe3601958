"""Terrain bands in ``lsmap map``: each unit reads its DEM with the bands' halo, so the map does not
depend on how the region is cut into units; without the halo, unit seams would show."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.bands import BASE_BANDS
from pipelines.bundles import save_bundle
from pipelines.errors import InputError
from pipelines.inputs import MapInputs, bind_inputs
from pipelines.layers import stack_from_bands, terrain_params
from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.mapping.plan import MapPlan, TileLayout
from pipelines.raster import Grid, open_mosaic, read_window
from pipelines.synthetic.writers import write_region

sys.path.insert(0, str(Path(__file__).parents[1]))
from layer_rasters import write_dem_on_lattice  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_cluster")

SIZE = 224
MARGIN = 40  # m of DEM beyond the RGB on every side: real neighbours for the edge units
BANDS = stack_from_bands((*BASE_BANDS, "slope", "relative_elevation"), {"relative_radius_m": 12.0})
NORM = {
    "norm_mean": [110.0, 110.0, 100.0, 1800.0, 20.0, 0.0],
    "norm_std": [40.0, 40.0, 40.0, 150.0, 10.0, 3.0],
}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """The synthetic region, with its DEM resampled once onto the RGB's 1 m lattice (see
    :func:`write_dem_on_lattice`)."""
    path = tmp_path_factory.mktemp("terrain_region")
    write_region(str(path), size=SIZE, seed=7)
    write_dem_on_lattice(path, MARGIN)
    return path


@pytest.fixture(scope="module")
def terrain_bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=len(BANDS), base_width=4, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(
        model,
        bands=list(BANDS.names),
        terrain=terrain_params(BANDS),
        tile_size=32,
        resolution_m=1.0,
        **NORM,
    )
    return save_bundle(bundle, str(tmp_path_factory.mktemp("terrain_model")))


def _map(bundle: str, region, out, chunk: int) -> np.ndarray:
    map_region(
        bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem_1m.tif")},
        str(out),
        chunk=chunk,
        batch_size=1,  # every tile alone: a forward pass then never depends on its batch
        dtype="float32",
        quicklook=False,
        progress=False,
    )
    return open_probability(OutputLayout(str(out))).values


def test_map_with_terrain_bands_is_the_same_for_any_unit_size(region, terrain_bundle, tmp_path):
    # Neither unit size divides the region or the other; tile halos and terrain halos both
    # cross unit borders everywhere.
    small = _map(terrain_bundle, region, tmp_path / "small", chunk=72)
    large = _map(terrain_bundle, region, tmp_path / "large", chunk=100)
    assert small.shape == (SIZE, SIZE)
    assert np.isfinite(small).all()  # the DEM covers the region: no nodata at all
    assert 0.0 < small.min() < small.max() < 1.0
    assert small.tobytes() == large.tobytes()


def _inputs(region) -> MapInputs:
    """The inputs ``map_region`` binds for the terrain bundle, on the RGB's grid."""
    given = {"image": str(region / "rgb.tif"), "dem": str(region / "dem_1m.tif")}
    return bind_inputs(BANDS, given, lambda grid: grid).inputs


def test_unit_reads_need_the_terrain_halo(region):
    """The control: a unit's terrain bands equal one pass over the whole DEM with the halo, and
    differ along the unit's borders without it."""
    inputs = _inputs(region)
    dem = inputs["dem"]
    assert dem.halo == 12  # 12 m at 1 m pixels
    assert dem.box == (-MARGIN, -MARGIN, SIZE + MARGIN, SIZE + MARGIN)
    plane = Grid.from_dataarray(open_mosaic(str(region / "rgb.tif")))
    plan = MapPlan(plane, 72, TileLayout(32, 16))
    box = plane.window(-MARGIN, -MARGIN, SIZE + 2 * MARGIN, SIZE + 2 * MARGIN)
    whole = dem.layer.encode(read_window(open_mosaic(dem.uri), box), box, dem.uri)[1:]

    unit = plan.unit(5)  # an inner unit: its read window has neighbours on every side
    row, col, height, width = unit.read
    grid = plan.read_grid(unit)
    expected = whole[:, row + MARGIN : row + MARGIN + height, col + MARGIN : col + MARGIN + width]
    derived = inputs.read(grid, unit.read, plane)[4:]
    np.testing.assert_array_equal(derived, expected)

    no_halo = MapInputs(inputs.stack, (inputs["image"], dataclasses.replace(dem, halo=0)))
    seamed = no_halo.read(grid, unit.read, plane)[4:]
    border = np.zeros((height, width), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    error = np.abs(seamed - expected)
    # The edge rule (linear extrapolation) stands in for the neighbours: close on smooth ground,
    # but not the same map; far beyond float rounding, which the halo'd read matches exactly.
    for band in range(len(dem.layer.terrain)):
        assert error[band][border].max() > 1e-3
        assert error[band][dem.halo : -dem.halo, dem.halo : -dem.halo].max() == 0.0


def test_bundle_bands_the_mapper_cannot_build_are_refused(region, tmp_path):
    net = build_model("unet", in_channels=5, base_width=4, depth=3, dropout=0.0)
    foreign = ModelBundle.from_model(
        net,
        bands=[*BASE_BANDS, "ndvi"],
        tile_size=32,
        norm_mean=[0.0] * 5,
        norm_std=[1.0] * 5,
    )
    with pytest.raises(InputError, match=r"unknown band\(s\) ndvi.*followed by any of slope"):
        _map(save_bundle(foreign, str(tmp_path / "ndvi")), region, tmp_path / "out", 96)
    newer = ModelBundle.from_model(
        net,
        bands=[*BASE_BANDS, "slope"],
        terrain={"relative_radius_m": 50.0, "slope_algorithm": 2.0},
        tile_size=32,
        norm_mean=[0.0] * 5,
        norm_std=[1.0] * 5,
    )
    with pytest.raises(InputError, match="terrain parameters slope_algorithm are unknown"):
        _map(save_bundle(newer, str(tmp_path / "newer")), region, tmp_path / "out", 96)
