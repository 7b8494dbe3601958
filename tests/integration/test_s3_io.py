"""Storage and mosaics on a real (local) S3 endpoint, reached through the AWS environment only."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from pipelines import storage
from pipelines.errors import InputError, StorageError
from pipelines.ingest import ingest
from pipelines.raster import Grid, open_mosaic, read_window

RGB_GRID = Grid("EPSG:32648", from_origin(500_000, 3_000_000, 1.0, 1.0), 96, 112)
DEM_RES = 3e-5
CHUNK = 32  # few objects: the local endpoint is slow per request


def write_cog(path, data: np.ndarray, grid: Grid, nodata: float, names=None) -> str:
    with rasterio.open(
        path,
        "w",
        driver="COG",
        count=data.shape[0],
        dtype=data.dtype,
        nodata=nodata,
        crs=grid.crs,
        transform=grid.transform,
        height=grid.height,
        width=grid.width,
    ) as dst:
        dst.write(data)
        if names:
            dst.descriptions = names
    return str(path)


@pytest.fixture(scope="module")
def local_mosaics(tmp_path_factory):
    """A 3-band uint8 COG (EPSG:32648, named bands, nodata 0) and a float32 DEM COG (EPSG:4326)."""
    root = tmp_path_factory.mktemp("mosaics")
    rgb = np.random.default_rng(1).integers(0, 256, (3, *RGB_GRID.shape), dtype=np.uint8)
    left, bottom, right, top = transform_bounds(RGB_GRID.crs, "EPSG:4326", *RGB_GRID.bounds)
    dem_grid = Grid(
        "EPSG:4326",
        from_origin(left - 4 * DEM_RES, top + 4 * DEM_RES, DEM_RES, DEM_RES),
        int((top - bottom) / DEM_RES) + 8,
        int((right - left) / DEM_RES) + 8,
    )
    yy, xx = np.mgrid[0 : dem_grid.height, 0 : dem_grid.width]
    dem = (500 + 30 * np.sin(xx / 5.0) + 20 * np.cos(yy / 3.0)).astype(np.float32)
    return {
        "rgb": write_cog(root / "rgb.tif", rgb, RGB_GRID, 0, ("red", "green", "blue")),
        "dem": write_cog(root / "dem.tif", dem[None], dem_grid, -9999),
        "rgb_data": rgb,
    }


def upload(local: str, uri: str) -> str:
    storage.upload_file(local, uri)
    return uri


def test_a_file_larger_than_a_multipart_part_uploads_whole(s3_bucket, tmp_path):
    """COGs of large regions go up as multipart uploads (s3fs: from 100 MiB, in 50 MiB parts)."""
    local = tmp_path / "large.bin"
    content = np.random.default_rng(0).bytes(100 * 2**20 + 1)
    local.write_bytes(content)
    uri = upload(str(local), f"s3://{s3_bucket}/out/large.bin")
    fs, path = storage.filesystem(uri)
    assert fs.info(path)["ETag"].strip('"').endswith("-3")  # S3's mark of a 3-part upload
    assert storage.read_bytes(uri) == content


def test_storage_round_trip_and_fresh_listings(s3_bucket):
    root = f"s3://{s3_bucket}/run"
    storage.write_json(storage.join(root, "manifest.json"), {"units": 2})
    storage.write_bytes(storage.join(root, "units", "0.json"), b"{}")
    assert storage.read_json(f"{root}/manifest.json") == {"units": 2}
    assert storage.exists(f"{root}/units/0.json") and not storage.exists(f"{root}/units/1.json")
    assert storage.listdir(f"{root}/units") == ["0.json"]
    # Another writer adds a unit: the next listing must show it (no stale listings cache).
    storage.write_bytes(f"{root}/units/1.json", b"{}")
    assert storage.listdir(f"{root}/units") == ["0.json", "1.json"]
    assert storage.listdir(f"{root}/none") == []
    storage.remove(f"{root}/units", recursive=True)
    assert not storage.exists(f"{root}/units/0.json")
    assert storage.listdir(root) == ["manifest.json"]


def test_missing_bucket_and_key_are_storage_errors_naming_the_uri(s3_bucket):
    with pytest.raises(
        StorageError, match="s3://lsmap-no-such-bucket/x.json: cannot read: not found"
    ):
        storage.read_bytes("s3://lsmap-no-such-bucket/x.json")
    with pytest.raises(
        StorageError, match=f"s3://{s3_bucket}/missing.json: cannot read: not found"
    ):
        storage.read_bytes(f"s3://{s3_bucket}/missing.json")
    with pytest.raises(StorageError, match="s3://lsmap-no-such-bucket/units: cannot list"):
        storage.listdir("s3://lsmap-no-such-bucket/units")
    with pytest.raises(InputError, match=f"s3://{s3_bucket}/missing.tif: no such raster"):
        open_mosaic(f"s3://{s3_bucket}/missing.tif")


def test_unreachable_endpoint_is_a_storage_error(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore retries: fail fast here
    with pytest.raises(
        StorageError, match="s3://bucket/x.json: .*cannot reach endpoint http://127.0.0.1:9"
    ):
        storage.read_bytes("s3://bucket/x.json")


def test_cog_from_s3_matches_the_local_file(s3_bucket, local_mosaics):
    uri = upload(local_mosaics["rgb"], f"s3://{s3_bucket}/in/rgb.tif")
    remote, local = open_mosaic(uri, chunks=CHUNK), open_mosaic(local_mosaics["rgb"])
    assert Grid.from_dataarray(remote) == Grid.from_dataarray(local) == RGB_GRID
    assert list(remote.band.values) == ["red", "green", "blue"] and remote.rio.nodata == 0
    np.testing.assert_array_equal(remote.values, local_mosaics["rgb_data"])


def test_ingest_s3_cog_to_s3_zarr_round_trips(s3_bucket, local_mosaics):
    src = upload(local_mosaics["rgb"], f"s3://{s3_bucket}/in/rgb.tif")
    dst = f"s3://{s3_bucket}/zarr/rgb.zarr"
    ingest(src, dst, chunk=CHUNK)
    assert storage.exists(f"{dst}/zarr.json")
    mosaic = open_mosaic(dst)
    assert Grid.from_dataarray(mosaic) == RGB_GRID
    assert list(mosaic.band.values) == ["red", "green", "blue"]
    assert mosaic.rio.nodata == 0 and mosaic.dtype == np.uint8
    np.testing.assert_array_equal(mosaic.values, local_mosaics["rgb_data"])


def test_read_window_from_s3_equals_the_local_result(s3_bucket, local_mosaics):
    dem_cog = upload(local_mosaics["dem"], f"s3://{s3_bucket}/in/dem.tif")
    dem_zarr = f"s3://{s3_bucket}/in/dem.zarr"
    ingest(local_mosaics["dem"], dem_zarr, chunk=CHUNK)
    rgb_zarr = f"s3://{s3_bucket}/in/rgb.zarr"
    ingest(local_mosaics["rgb"], rgb_zarr, chunk=CHUNK)
    grid = RGB_GRID.window(20, 30, 48, 64)
    dem = read_window(open_mosaic(local_mosaics["dem"]), grid)
    assert np.isfinite(dem).all()
    np.testing.assert_array_equal(read_window(open_mosaic(dem_cog), grid), dem)
    np.testing.assert_array_equal(read_window(open_mosaic(dem_zarr), grid), dem)
    np.testing.assert_array_equal(
        read_window(open_mosaic(rgb_zarr), grid),
        read_window(open_mosaic(local_mosaics["rgb"]), grid),
    )


def test_ingest_into_a_missing_bucket_is_a_storage_error(s3_endpoint, local_mosaics):
    dst = "s3://lsmap-no-such-bucket/rgb.zarr"
    with pytest.raises(StorageError, match=f"{dst}: cannot .*bucket does not exist"):
        ingest(local_mosaics["rgb"], dst, chunk=CHUNK)


def test_vector_features_from_s3_match_the_local_file(s3_bucket, tmp_path):
    """A distance layer's vector file in a bucket is read through the same GDAL path as COGs."""
    import geopandas
    import shapely

    from pipelines.vectors import read_features

    lines = [shapely.LineString([(500_010, 2_999_990), (500_080, 2_999_920)])]
    local = tmp_path / "faults.gpkg"
    geopandas.GeoDataFrame(geometry=lines, crs=RGB_GRID.crs).to_file(local)
    remote = read_features(upload(str(local), f"s3://{s3_bucket}/in/faults.gpkg"))
    assert remote.crs == read_features(str(local)).crs
    assert shapely.equals(remote.geometries, read_features(str(local)).geometries).all()
    with pytest.raises(InputError, match=f"s3://{s3_bucket}/in/none.gpkg: cannot read it"):
        read_features(f"s3://{s3_bucket}/in/none.gpkg")
