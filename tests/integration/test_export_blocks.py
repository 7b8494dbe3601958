"""A region of several blocks is read by one Ray task per block: its COG becomes block COGs plus a
VRT mosaic that GIS tools open as one raster, locally and on S3, with the store's values; its
polygons, quicklook and scan comparison are what one pass over the region makes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from probability_stores import CHUNK, GRID, write_probability_store
from rio_cogeo.cogeo import cog_validate

from pipelines import storage
from pipelines.bundles import load_bundle
from pipelines.mapping import map_region
from pipelines.mapping.blocks import region_blocks
from pipelines.mapping.export import open_probability, write_cog, write_polygons, write_quicklook
from pipelines.mapping.output import NODATA_UINT8, OutputLayout, open_array
from pipelines.raster import Grid
from pipelines.scan.compare import compare_maps
from pipelines.synthetic.writers import write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")

BLOCK = 512  # GRID is 700 x 600 px: 2 x 2 blocks, the last ones partial


@pytest.mark.parametrize(("where", "dtype"), [("local", "uint8"), ("s3", "float32")])
def test_blocks_and_mosaic_hold_the_stored_values(tmp_path, s3_bucket, where, dtype):
    root = str(tmp_path / "map") if where == "local" else f"s3://{s3_bucket}/map"
    layout, stored = write_probability_store(root, dtype)

    outputs = write_cog(layout, GRID, CHUNK, block=BLOCK)

    assert outputs == {
        "mosaic": f"{root}/probability.vrt",
        **{
            f"r{row}_c{col}": f"{root}/probability/r{row}_c{col}.tif"
            for row in (0, 512)
            for col in (0, 512)
        },
    }
    assert not storage.exists(f"{root}/probability.tif")
    storage.configure_gdal()  # as any GDAL reader of the bucket must
    with rasterio.open(storage.gdal_path(outputs["mosaic"])) as mosaic:
        assert (mosaic.crs, mosaic.transform, mosaic.shape) == (
            GRID.crs,
            GRID.transform,
            GRID.shape,
        )
        assert mosaic.descriptions == ("landslide probability",)
        if dtype == "uint8":
            assert mosaic.nodata == NODATA_UINT8 and mosaic.scales == (1 / 254,)
        else:
            assert np.isnan(mosaic.nodata)
        np.testing.assert_array_equal(mosaic.read(1), stored)
    for name, uri in outputs.items():
        if name == "mosaic":
            continue
        row, col = (int(part[1:]) for part in name.split("_"))
        with rasterio.open(storage.gdal_path(uri)) as block:
            assert block.transform == GRID.window(row, col, 1, 1).transform
            np.testing.assert_array_equal(
                block.read(1), stored[row : row + BLOCK, col : col + BLOCK]
            )
        if where == "local":
            valid, errors, _ = cog_validate(uri)
            assert valid and errors == [], (name, errors)


def test_polygons_and_quicklook_made_in_blocks_are_those_of_one_pass(trained_bundle, tmp_path):
    region = write_region(tmp_path / "region", size=256, seed=11)
    out = str(tmp_path / "map")
    map_region(
        trained_bundle,
        {"image": str(region.rgb), "dem": str(region.dem)},
        out,
        chunk=64,
        progress=False,
    )
    layout = OutputLayout(out)
    grid = Grid.from_dataarray(open_probability(layout))
    threshold = load_bundle(trained_bundle).threshold
    assert len(region_blocks(grid, 64, block=128)) == 4 and len(region_blocks(grid, 64)) == 1

    one_pass = write_polygons(layout, grid, 64, threshold, name="one")
    in_blocks = write_polygons(layout, grid, 64, threshold, name="blocks", block=128)
    assert storage.read_bytes(one_pass["geojson"]).count(b'"Feature"') >= 2
    for kind, uri in one_pass.items():
        assert storage.read_bytes(in_blocks[kind]) == storage.read_bytes(uri), kind
    # A lattice of every 3rd pixel, which the 128 px blocks do not start on.
    one_look = write_quicklook(layout, grid, 64, str(region.rgb), max_size=100, name="one.png")
    look = write_quicklook(layout, grid, 64, str(region.rgb), 100, "blocks.png", block=128)
    assert storage.read_bytes(look) == storage.read_bytes(one_look)


def test_a_scan_comparison_made_in_blocks_is_that_of_one_pass(tmp_path):
    after, stored = write_probability_store(str(tmp_path / "after"), "uint8")
    before, _ = write_probability_store(str(tmp_path / "before"), "uint8")
    open_array(before)[:] = np.roll(stored, 100, axis=1)  # landslides moved: some are new
    # Coarse picture pixels of 7 px, which straddle the 512 px blocks.
    options = {"threshold": 0.5, "before_threshold": 0.5, "chunk": CHUNK, "picture_size": 100}
    one_pass = compare_maps(after.root, before.root, **options)
    in_blocks = compare_maps(after.root, before.root, block=BLOCK, **options)

    assert len(one_pass.new) >= 2 and one_pass.landslides
    assert in_blocks.landslides == one_pass.landslides and in_blocks.new == one_pass.new
    np.testing.assert_array_equal(in_blocks.picture, one_pass.picture)
    assert in_blocks.max_probability == one_pass.max_probability
