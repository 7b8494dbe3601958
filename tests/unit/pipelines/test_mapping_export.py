"""The probability outputs open as they are in GIS tools: a valid COG, and a Zarr with CF
georeferencing that xarray + rioxarray and GDAL read, on the same grid as the COG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr
from probability_stores import CHUNK, GRID, write_probability_store
from rio_cogeo.cogeo import cog_validate

from pipelines.mapping.export import write_cog
from pipelines.mapping.output import NODATA_UINT8, gdal_path


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_probability_cog_is_valid_and_self_describing(tmp_path, dtype):
    layout, stored = write_probability_store(str(tmp_path / "map"), dtype)
    uri = write_cog(layout, GRID, CHUNK)

    valid, errors, warnings = cog_validate(uri)
    assert valid and errors == [] and warnings == []
    with rasterio.open(uri) as src:
        assert src.block_shapes == [(512, 512)]
        assert src.overviews(1) == [2]
        assert src.compression.name == "deflate"
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == ("2" if dtype == "uint8" else "3")
        assert src.descriptions == ("landslide probability",)
        assert src.crs == GRID.crs and src.transform == GRID.transform
        full = src.read(1)
        overview = src.read(1, out_shape=(350, 300))  # the overview level
        tags = src.tags(1)
        if dtype == "uint8":
            assert src.nodata == NODATA_UINT8
            assert src.scales == (1 / 254,) and src.offsets == (0.0,)
        else:
            assert np.isnan(src.nodata)
    np.testing.assert_array_equal(full, stored)
    data = np.where(full == src.nodata, np.nan, full) if dtype == "uint8" else full
    assert float(tags["STATISTICS_MAXIMUM"]) == pytest.approx(np.nanmax(data))
    assert float(tags["STATISTICS_MEAN"]) == pytest.approx(np.nanmean(data), rel=1e-4)
    # Overviews are 2x2 averages (away from nodata), not samples.
    means = data[10:, :].reshape(345, 2, 300, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(
        overview[5:].astype(np.float64), means, atol=1.0 if dtype == "uint8" else 1e-4
    )


def test_probability_zarr_has_cf_georeferencing_matching_the_cog(tmp_path):
    layout, _ = write_probability_store(str(tmp_path / "map"), "uint8")
    cog = write_cog(layout, GRID, CHUNK)
    dataset = xr.open_zarr(layout.zarr, consolidated=False, decode_coords="all")
    probability = dataset["probability"]
    with rasterio.open(cog) as src:
        assert probability.rio.crs == src.crs
        assert probability.rio.transform() == src.transform
        assert np.isnan(probability.rio.nodata) and probability.rio.encoded_nodata == src.nodata
    assert probability.encoding["grid_mapping"] == "spatial_ref"
    spatial_ref = dataset["spatial_ref"].attrs
    assert rasterio.crs.CRS.from_wkt(spatial_ref["crs_wkt"]) == GRID.crs
    assert spatial_ref["spatial_ref"] == spatial_ref["crs_wkt"]
    assert [float(v) for v in spatial_ref["GeoTransform"].split()] == list(GRID.transform.to_gdal())
    assert dataset["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert dataset["y"].attrs["standard_name"] == "projection_y_coordinate"
    # The attribute GDAL and CF readers look for is on the variable itself, not only in xarray.
    attributes = json.loads((tmp_path / "map/probability.zarr/probability/.zattrs").read_text())
    assert attributes["grid_mapping"] == "spatial_ref"


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_gdal_reads_the_probability_zarr_as_the_cog_and_xarray_see_it(tmp_path, dtype):
    layout, stored = write_probability_store(str(tmp_path / "map"), dtype)
    cog = write_cog(layout, GRID, CHUNK)
    with rasterio.open(gdal_path(layout.zarr)) as zarr_src, rasterio.open(cog) as cog_src:
        assert zarr_src.driver == "Zarr"
        assert zarr_src.crs == cog_src.crs == GRID.crs
        assert zarr_src.transform == cog_src.transform == GRID.transform
        assert zarr_src.dtypes == cog_src.dtypes == (dtype,)
        assert zarr_src.scales == cog_src.scales
        np.testing.assert_equal(zarr_src.nodata, cog_src.nodata)
        from_gdal = zarr_src.read(1)
        np.testing.assert_array_equal(from_gdal, cog_src.read(1))
    np.testing.assert_array_equal(from_gdal, stored)
    from_xarray = xr.open_zarr(layout.zarr, consolidated=False, mask_and_scale=False)
    np.testing.assert_array_equal(from_gdal, from_xarray["probability"].values)
