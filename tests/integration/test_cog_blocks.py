"""A region larger than one COG block exports as block COGs plus a VRT mosaic that GIS tools open
as one raster, locally and on S3, with the same values as the store."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from probability_stores import CHUNK, GRID, write_probability_store
from rio_cogeo.cogeo import cog_validate

from pipelines import storage
from pipelines.mapping.export import write_cog
from pipelines.mapping.output import NODATA_UINT8

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
