"""The arithmetic of bench/scale_on_paper.py against the mapper's own plan and a hand count."""

from __future__ import annotations

import pytest
from affine import Affine
from bench_scripts import bench_script

from pipelines.mapping.plan import MapPlan, TileLayout
from pipelines.raster import Grid


@pytest.fixture(scope="module")
def scale():
    with bench_script("scale_on_paper") as module:
        yield module


@pytest.mark.parametrize("blend", ["ramp", "crop"])
def test_unit_geometry_matches_an_interior_unit_of_the_mappers_plan(scale, blend):
    layout = TileLayout(128, 64, blend)
    grid = Grid("EPSG:32648", Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 3000000.0), 5 * 1024, 5 * 1024)
    unit = MapPlan(grid, 1024, layout).unit(12)  # row 2, column 2: the centre unit
    geometry = scale.unit_geometry(1024, layout, block=512)
    row, col, height, width = unit.read
    assert (geometry.read, geometry.read) == (height, width)
    assert geometry.tiles == (height - 128) // layout.stride + 1
    # Blocks of 512 px from the grid origin that the read window [row, row + height) touches.
    assert geometry.blocks == (row + height - 1) // 512 - row // 512 + 1


def test_default_unit_reads_four_blocks_a_side_and_computes_18_tiles(scale):
    geometry = scale.unit_geometry(1024, TileLayout(128, 64, "ramp"), block=512)
    assert geometry == scale.UnitGeometry(tiles=18, read=17 * 64 + 128, blocks=4)


def test_province_budget_of_one_unit_by_hand(scale):
    area_km2 = 1024 * 1024 / 1e6  # exactly one 1024 px unit at 1 m
    budget = scale.province_budget(area_km2, 1.0, 1024, TileLayout(128, 64, "ramp"), 512, 32.0)
    assert budget["units"] == pytest.approx(1)
    assert budget["tiles"] == pytest.approx(18 * 18)
    assert budget["unique_tiles"] == pytest.approx(16 * 16)
    assert budget["rgb_read_bytes"] == pytest.approx(1216 * 1216 * 3)
    assert budget["rgb_block_bytes"] == pytest.approx((4 * 512) ** 2 * 3)
    assert budget["rgb_gets"] == pytest.approx(16)
    dem_side = 1216 / 32 + 2  # 38 DEM pixels plus the bilinear margin
    assert budget["dem_read_bytes"] == pytest.approx(dem_side**2 * 4)
    assert budget["zarr_bytes"] == pytest.approx(1024 * 1024)
    assert budget["zarr_puts"] == pytest.approx(2)
    assert scale.hours(budget["tiles"], tiles_per_s=18 * 18, devices=1) == pytest.approx(1 / 3600)


def test_totals_grow_with_area_and_hours_shrink_with_devices(scale):
    layout = TileLayout(128, 64, "ramp")
    small = scale.province_budget(1000, 1.0, 1024, layout, 512, 30.0)
    large = scale.province_budget(4000, 1.0, 1024, layout, 512, 30.0)
    for key in ("units", "tiles", "rgb_read_bytes", "dem_gets", "zarr_puts"):
        assert large[key] == pytest.approx(4 * small[key])
    assert scale.hours(large["tiles"], 5000, 8) == pytest.approx(
        scale.hours(large["tiles"], 5000, 1) / 8
    )
