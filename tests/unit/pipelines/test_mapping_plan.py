"""The mapper's geometry: global tile grid, units and their halos, blend weights."""

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from pipelines.errors import LsmapError
from pipelines.mapping.plan import MapPlan, TileLayout, output_grid
from pipelines.raster import Grid

GRID = Grid(
    crs=CRS.from_epsg(32648),
    transform=Affine(1, 0, 500_000, 0, -1, 3_000_000),
    height=300,
    width=430,
)


def _tiles_covering(layout: TileLayout, pixel: int, length: int) -> list[int]:
    low, high = layout.support
    starts = [layout.origin + k * layout.stride for k in range(layout.count(length))]
    return [k for k, s in enumerate(starts) if s + low <= pixel < s + high]


LAYOUTS = [
    (32, 8, "ramp"),
    (32, 0, "ramp"),
    (64, 16, "ramp"),
    (64, 31, "ramp"),
    (32, 8, "crop"),
    (64, 31, "crop"),
]


@pytest.mark.parametrize("tile,overlap,blend", LAYOUTS)
def test_every_pixel_is_covered_and_units_read_all_its_tiles(tile, overlap, blend):
    layout = TileLayout(tile, overlap, blend)
    plan = MapPlan(GRID, chunk=100, layout=layout)  # 100 divides neither the scene nor the stride
    for index in range(len(plan)):
        unit = plan.unit(index)
        row, col, height, width = unit.chunk
        for axis_start, axis_len, read_start, read_len, length in (
            (row, height, unit.read[0], unit.read[2], GRID.height),
            (col, width, unit.read[1], unit.read[3], GRID.width),
        ):
            assert (read_len - tile) % layout.stride == 0  # the read holds whole tiles
            for pixel in range(axis_start, axis_start + axis_len):
                covering = _tiles_covering(layout, pixel, length)
                assert covering, f"pixel {pixel} not covered"
                if blend == "crop":
                    assert len(covering) == 1
                for k in covering:  # every tile covering a chunk pixel lies inside the read
                    start = layout.origin + k * layout.stride
                    assert read_start <= start and start + tile <= read_start + read_len


def test_units_partition_the_grid_exactly():
    plan = MapPlan(GRID, chunk=128, layout=TileLayout(32, 8))
    counts = np.zeros((GRID.height, GRID.width), dtype=int)
    for index in range(len(plan)):
        row, col, height, width = plan.unit(index).chunk
        counts[row : row + height, col : col + width] += 1
    assert plan.shape == (3, 4)
    assert (counts == 1).all()


def test_blend_weights_cross_fade_to_one_where_tiles_overlap():
    layout = TileLayout(32, 8)
    ramp = layout.weights()[16]  # one row through the tile's middle
    shared = ramp[layout.stride :] + ramp[: layout.overlap]
    assert np.allclose(shared, ramp[16])
    assert (layout.weights() > 0).all()


def test_crop_blend_computes_no_tile_twice_when_chunks_are_whole_strides():
    layout = TileLayout(32, 8, "crop")
    plan = MapPlan(GRID, chunk=4 * layout.stride, layout=layout)
    tiles_read = 0
    for index in range(len(plan)):
        _, _, height, width = plan.unit(index).read
        tiles_read += ((height - 32) // layout.stride + 1) * ((width - 32) // layout.stride + 1)
    assert tiles_read == layout.count(GRID.height) * layout.count(GRID.width)
    assert layout.weights().sum() == layout.stride**2


def test_read_grid_is_georeferenced_from_the_unit():
    plan = MapPlan(GRID, chunk=128, layout=TileLayout(32, 8))
    unit = plan.unit(5)
    read = plan.read_grid(unit)
    assert read.crs == GRID.crs
    assert (read.height, read.width) == unit.read[2:]
    assert read.transform @ (0, 0) == GRID.transform @ (unit.read[1], unit.read[0])


def test_bad_layouts_are_explained():
    with pytest.raises(LsmapError, match="overlap"):
        TileLayout(32, 32)
    with pytest.raises(LsmapError, match="chunk"):
        MapPlan(GRID, chunk=0, layout=TileLayout(32, 8))


def test_output_grid_clips_to_an_aoi_in_another_crs():
    left, bottom, right, top = GRID.bounds
    clipped = output_grid(GRID, bbox=(left + 10.2, bottom + 20.5, left + 50.0, bottom + 60.0))
    assert (clipped.height, clipped.width) == (40, 40)
    assert clipped.transform.c == left + 10 and clipped.transform.f == bottom + 60
    with pytest.raises(LsmapError, match="outside the data"):
        output_grid(GRID, bbox=(0.0, 0.0, 1.0, 1.0), bbox_crs="EPSG:4326")


def test_output_grid_resamples_to_the_model_resolution():
    coarse = output_grid(GRID, resolution=2.0)
    assert (coarse.height, coarse.width) == (150, 215)
    assert coarse.bounds == pytest.approx(GRID.bounds)
