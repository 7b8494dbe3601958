"""Lazy mosaics on local files: COG and ingested Zarr agree, windows, DEM warping, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import from_bounds

from pipelines.cli import main
from pipelines.errors import InputError
from pipelines.ingest import ingest
from pipelines.raster import (
    COMPLETE_ATTR,
    Grid,
    check_nodata_declared,
    open_mosaic,
    read_window,
    suspect_undeclared_nodata,
)

RGB_GRID = Grid("EPSG:32648", from_origin(500_000, 3_000_000, 1.0, 1.0), 96, 112)
DEM_RES = 3e-5  # degrees, about 3 m: coarser than the 1 m RGB, as real DEMs are
DEM_NODATA = -9999.0
CHUNK = 16


def write_raster(path: Path, data: np.ndarray, grid: Grid, names=None, **profile) -> None:
    with rasterio.open(
        path,
        "w",
        count=data.shape[0],
        dtype=data.dtype,
        height=data.shape[1],
        width=data.shape[2],
        crs=grid.crs,
        transform=grid.transform,
        **profile,
    ) as dst:
        dst.write(data)
        if names:
            dst.descriptions = names


def write_rgb(path: Path) -> np.ndarray:
    """A 3-band uint8 COG in EPSG:32648 with band names and a nodata (0) corner."""
    data = np.random.default_rng(0).integers(1, 256, (3, *RGB_GRID.shape), dtype=np.uint8)
    data[:, :5, :7] = 0
    write_raster(path, data, RGB_GRID, names=("red", "green", "blue"), driver="COG", nodata=0)
    return data


def write_dem(path: Path) -> tuple[np.ndarray, Grid]:
    """A smooth float32 DEM in EPSG:4326 covering the RGB grid with a margin and a nodata hole."""
    left, bottom, right, top = transform_bounds(RGB_GRID.crs, "EPSG:4326", *RGB_GRID.bounds)
    margin = 10
    grid = Grid(
        "EPSG:4326",
        from_origin(left - margin * DEM_RES, top + margin * DEM_RES, DEM_RES, DEM_RES),
        int((top - bottom) / DEM_RES) + 2 * margin,
        int((right - left) / DEM_RES) + 2 * margin,
    )
    yy, xx = np.mgrid[0 : grid.height, 0 : grid.width]
    dem = (800 + 40 * np.sin(xx / 6.0) + 25 * np.cos(yy / 4.0) + 0.5 * xx).astype(np.float32)
    dem[20:23, 25:29] = DEM_NODATA  # inside the RGB footprint
    write_raster(
        path, dem[None], grid, tiled=True, blockxsize=CHUNK, blockysize=CHUNK, nodata=DEM_NODATA
    )
    return dem, grid


@pytest.fixture
def rgb(tmp_path):
    path = tmp_path / "rgb.tif"
    return str(path), write_rgb(path)


@pytest.fixture
def dem(tmp_path):
    path = tmp_path / "dem.tif"
    return (str(path), *write_dem(path))


def as_float(data: np.ndarray, nodata: float) -> np.ndarray:
    out = data.astype(np.float32)
    out[data == nodata] = np.nan
    return out


def warp_whole(dem: np.ndarray, dem_grid: Grid, grid: Grid) -> np.ndarray:
    """The reference: GDAL's warp of the complete DEM onto ``grid``."""
    out = np.full((1, grid.height, grid.width), np.nan, dtype=np.float32)
    reproject(
        as_float(dem, DEM_NODATA)[None],
        out,
        src_transform=dem_grid.transform,
        src_crs=dem_grid.crs,
        src_nodata=np.nan,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return out


def test_grid_window_shifts_the_origin_and_may_reach_outside():
    sub = RGB_GRID.window(-4, 10, 8, 20)
    assert sub.transform.c == RGB_GRID.transform.c + 10
    assert sub.transform.f == RGB_GRID.transform.f + 4
    assert sub.shape == (8, 20) and sub.res == (1.0, 1.0) and sub.crs == RGB_GRID.crs
    assert sub.bounds == (500_010.0, 2_999_996.0, 500_030.0, 3_000_004.0)


def test_cog_opens_lazily_with_georeferencing_and_band_names(rgb):
    path, data = rgb
    mosaic = open_mosaic(path, chunks=CHUNK)
    assert mosaic.dims == ("band", "y", "x")
    assert mosaic.chunks is not None  # dask-backed: nothing read yet
    assert list(mosaic.band.values) == ["red", "green", "blue"]
    assert Grid.from_dataarray(mosaic) == RGB_GRID
    assert mosaic.rio.nodata == 0 and mosaic.dtype == np.uint8
    np.testing.assert_array_equal(mosaic.values, data)


def test_ingested_zarr_matches_the_cog(rgb, tmp_path):
    path, data = rgb
    store = str(tmp_path / "rgb.zarr")
    ingest(path, store, chunk=CHUNK)
    cog, zarr_mosaic = open_mosaic(path), open_mosaic(store)
    assert Grid.from_dataarray(zarr_mosaic) == Grid.from_dataarray(cog)
    assert zarr_mosaic.rio.nodata == cog.rio.nodata == 0
    assert zarr_mosaic.dtype == cog.dtype == np.uint8
    assert list(zarr_mosaic.band.values) == list(cog.band.values) == ["red", "green", "blue"]
    np.testing.assert_array_equal(zarr_mosaic.values, data)
    assert zarr.open_array(store, path="mosaic", mode="r").chunks == (3, CHUNK, CHUNK)


def test_zarr_opens_in_a_fresh_process(rgb, tmp_path):
    # Workers that only ever read Zarr never import rioxarray by way of a GeoTIFF.
    store = str(tmp_path / "rgb.zarr")
    ingest(rgb[0], store, chunk=CHUNK)
    code = "import sys; from pipelines.raster import open_mosaic; print(open_mosaic(sys.argv[1]).rio.crs)"
    result = subprocess.run(
        [sys.executable, "-c", code, store], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "EPSG:32648"


def test_unnamed_bands_get_default_names_and_survive_ingest(dem, tmp_path):
    path, data, grid = dem
    store = f"file://{tmp_path / 'dem.zarr'}"
    ingest(path, store, chunk=CHUNK)
    for uri in (path, store):
        mosaic = open_mosaic(uri)
        assert list(mosaic.band.values) == ["b1"]
        assert Grid.from_dataarray(mosaic) == grid
        assert mosaic.rio.nodata == DEM_NODATA and mosaic.dtype == np.float32
        np.testing.assert_array_equal(mosaic.values[0], data)


def test_ingest_replaces_an_existing_store(rgb, dem, tmp_path):
    store = str(tmp_path / "m.zarr")
    ingest(rgb[0], store, chunk=CHUNK)
    ingest(dem[0], store, chunk=CHUNK)
    mosaic = open_mosaic(store)
    assert mosaic.sizes["band"] == 1
    np.testing.assert_array_equal(mosaic.values[0], dem[1])


def test_ingest_never_replaces_something_that_is_not_a_zarr_store(rgb, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="precious: exists and is not a Zarr store"):
        ingest(rgb[0], str(tmp_path / "precious"), chunk=CHUNK)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_incomplete_zarr_is_refused(rgb, tmp_path):
    store = str(tmp_path / "rgb.zarr")
    ingest(rgb[0], store, chunk=CHUNK)
    # What an ingest that died before its last step leaves: chunks, but no completion mark.
    del zarr.open_group(store, mode="r+").attrs[COMPLETE_ATTR]
    with pytest.raises(InputError, match=f"{store}: incomplete Zarr mosaic"):
        open_mosaic(store)


def test_aligned_window_is_a_slice_with_nodata_as_nan(rgb):
    path, data = rgb
    mosaic = open_mosaic(path, chunks=CHUNK)
    window = read_window(mosaic, RGB_GRID.window(0, 3, 40, 50))
    assert window.dtype == np.float32 and window.shape == (3, 40, 50)
    np.testing.assert_array_equal(window, as_float(data[:, 0:40, 3:53], 0))
    assert np.isnan(window[:, :5, :4]).all()  # the nodata corner
    assert np.nanmax(window) > 200  # uint8 values keep their 0-255 scale


def test_window_reaching_outside_is_padded_with_nan(rgb):
    path, data = rgb
    mosaic = open_mosaic(path, chunks=CHUNK)
    window = read_window(mosaic, RGB_GRID.window(80, -6, 30, 20))
    assert window.shape == (3, 30, 20)
    assert np.isnan(window[:, 16:, :]).all() and np.isnan(window[:, :, :6]).all()
    np.testing.assert_array_equal(window[:, :16, 6:], as_float(data[:, 80:96, 0:14], 0))
    assert np.isnan(read_window(mosaic, RGB_GRID.window(200, 200, 8, 8))).all()


def test_dem_warped_onto_the_rgb_grid_matches_warping_the_whole_dem(dem):
    path, data, dem_grid = dem
    expected = warp_whole(data, dem_grid, RGB_GRID)
    window = read_window(open_mosaic(path, chunks=CHUNK), RGB_GRID)
    assert window.shape == (1, *RGB_GRID.shape)
    assert np.isnan(expected).any() and not np.isnan(expected).all()  # the hole is in view
    np.testing.assert_array_equal(np.isnan(window), np.isnan(expected))
    np.testing.assert_allclose(window, expected, rtol=1e-6, atol=1e-3)


def test_dem_sub_window_equals_the_crop_of_the_full_warp(dem):
    path, data, dem_grid = dem
    full = warp_whole(data, dem_grid, RGB_GRID)
    mosaic = open_mosaic(path, chunks=CHUNK)
    for row, col, height, width in [(10, 20, 30, 40), (50, 60, 46, 52), (0, 0, 17, 23)]:
        window = read_window(mosaic, RGB_GRID.window(row, col, height, width))
        np.testing.assert_allclose(
            window, full[:, row : row + height, col : col + width], rtol=1e-6, atol=1e-3
        )


def test_dem_outside_its_extent_is_nan(dem):
    mosaic = open_mosaic(dem[0])
    far = Grid(RGB_GRID.crs, from_origin(600_000, 3_000_000, 1.0, 1.0), 8, 8)
    assert np.isnan(read_window(mosaic, far)).all()


def _corrupt_chunks(store: Path, keep) -> int:
    """Overwrite every chunk file of the mosaic whose (chunk row, chunk col) ``keep`` rejects."""
    corrupted = 0
    for chunk_file in (store / "mosaic" / "c").glob("*/*/*"):
        row, col = int(chunk_file.parent.name), int(chunk_file.name)
        if not keep(row, col):
            chunk_file.write_bytes(b"not a zstd frame")
            corrupted += 1
    return corrupted


def test_aligned_window_reads_only_the_chunks_it_covers(rgb, tmp_path):
    path, data = rgb
    store = tmp_path / "rgb.zarr"
    ingest(path, str(store), chunk=CHUNK)
    # The window covers chunk rows 1-2 and chunk columns 2-3; everything else becomes unreadable.
    grid = RGB_GRID.window(CHUNK + 2, 2 * CHUNK + 1, CHUNK + 10, CHUNK + 12)
    assert _corrupt_chunks(store, lambda r, c: r in (1, 2) and c in (2, 3)) > 20
    mosaic = open_mosaic(str(store), chunks=CHUNK)
    np.testing.assert_array_equal(read_window(mosaic, grid), as_float(data[:, 18:44, 33:61], 0))
    with pytest.raises(RuntimeError, match="[Zz]std"):  # the corruption is real
        read_window(mosaic, RGB_GRID.window(0, 0, 4, 4))


def test_warped_window_reads_only_the_source_chunks_near_it(dem, tmp_path):
    path, data, dem_grid = dem
    store, chunk = tmp_path / "dem.zarr", 8  # the DEM is small: small chunks to have many
    ingest(path, str(store), chunk=chunk)
    grid = RGB_GRID.window(8, 8, 24, 24)
    window = from_bounds(
        *transform_bounds(grid.crs, dem_grid.crs, *grid.bounds), dem_grid.transform
    )
    # Keep the chunks under the grid's footprint plus one chunk of margin for the kernel.
    last_row = int(window.row_off + window.height) // chunk + 1
    last_col = int(window.col_off + window.width) // chunk + 1
    assert _corrupt_chunks(store, lambda r, c: r <= last_row and c <= last_col) > 20
    mosaic = open_mosaic(str(store), chunks=chunk)
    np.testing.assert_allclose(
        read_window(mosaic, grid), warp_whole(data, dem_grid, grid), rtol=1e-6, atol=1e-3
    )
    with pytest.raises(RuntimeError, match="[Zz]std"):
        read_window(mosaic, RGB_GRID.window(60, 60, 24, 24))


def test_missing_file_is_an_input_error_naming_it(tmp_path):
    missing = tmp_path / "nope.tif"
    with pytest.raises(InputError, match=f"{missing}: no such raster"):
        open_mosaic(str(missing))


def test_raster_without_crs_is_refused(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(
        path, "w", count=1, dtype="uint8", height=8, width=8, transform=RGB_GRID.transform
    ) as dst:
        dst.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(InputError, match=f"{path}: has no CRS"):
        open_mosaic(str(path))


def test_plain_image_without_geotransform_is_refused(tmp_path):
    path = tmp_path / "plain.tif"
    with (
        pytest.warns(rasterio.errors.NotGeoreferencedWarning),
        rasterio.open(
            path, "w", count=1, dtype="uint8", height=8, width=8, crs="EPSG:32648"
        ) as dst,
    ):
        dst.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(InputError, match=f"{path}: has no geotransform"):
        open_mosaic(str(path))


def test_unreadable_file_is_an_input_error(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"this is not a tiff")
    with pytest.raises(InputError, match=f"{path}: cannot read as a raster"):
        open_mosaic(str(path))


def test_cli_ingest_prints_the_store_and_reports_errors(rgb, tmp_path, capsys):
    store = str(tmp_path / "cli.zarr")
    assert main(["ingest", rgb[0], store, "--chunk", str(CHUNK)]) == 0
    out = capsys.readouterr().out
    assert store in out and "red, green, blue" in out and "96 x 112" in out
    assert main(["ingest", str(tmp_path / "missing.tif"), store]) == 1
    assert "missing.tif: no such raster" in capsys.readouterr().err


def survey_dem(path: Path, fill, dtype="float32", nodata=None, terrain=(1200.0, 600.0)) -> str:
    """A DEM whose survey (a disc of terrain) leaves its corners at ``fill`` (None: no corners)."""
    yy, xx = np.mgrid[0:120, 0:100]
    base, relief = terrain
    dem = base + relief * (0.5 + 0.25 * np.sin(xx / 7.0) + 0.25 * np.cos(yy / 5.0))
    if fill is not None:
        dem[(yy - 60) ** 2 + (xx - 50) ** 2 > 50**2] = fill
    write_raster(path, dem.astype(dtype)[None], RGB_GRID, driver="GTiff", nodata=nodata)
    return str(path)


@pytest.mark.parametrize(
    "fill,dtype",
    [(0, "float32"), (-32768, "int16"), (-9999, "float32"), (-3.4028235e38, "float32")],
)
def test_undeclared_nodata_around_a_survey_is_found(tmp_path, fill, dtype):
    uri = survey_dem(tmp_path / "dem.tif", fill, dtype)
    assert suspect_undeclared_nodata(open_mosaic(uri)) == pytest.approx(fill)
    with pytest.raises(InputError) as caught:
        check_nodata_declared(open_mosaic(uri), uri, "--dem-nodata")
    message = str(caught.value)
    assert message.startswith(f"{uri}: declares no nodata value")
    assert f"--dem-nodata {fill:g}" in message


def test_declared_nodata_is_accepted_and_a_wrong_one_is_named(tmp_path):
    right = survey_dem(tmp_path / "right.tif", -9999, nodata=-9999)
    assert suspect_undeclared_nodata(open_mosaic(right)) is None
    check_nodata_declared(open_mosaic(right), right, "--dem-nodata")
    # -9999 declared, but zeros fill the corners.
    wrong = survey_dem(tmp_path / "wrong.tif", 0, nodata=-9999)
    with pytest.raises(InputError, match="declares nodata -9999, but .* `--dem-nodata 0`"):
        check_nodata_declared(open_mosaic(wrong), wrong, "--dem-nodata")
    # Declaring the value afterwards (what --dem-nodata does) silences it.
    assert suspect_undeclared_nodata(open_mosaic(wrong).rio.write_nodata(0)) is None


@pytest.mark.parametrize(
    "fill,terrain",
    [
        (None, (1200.0, 600.0)),  # no empty area at all
        (0, (0.2, 40.0)),  # a coast: the sea at 0 m next to land rising from it
        (500.0, (1200.0, 600.0)),  # constant, far away, but not a no-data sentinel: a lake
    ],
)
def test_real_terrain_is_not_suspected(tmp_path, fill, terrain):
    uri = survey_dem(tmp_path / "dem.tif", fill, terrain=terrain)
    assert suspect_undeclared_nodata(open_mosaic(uri)) is None
    check_nodata_declared(open_mosaic(uri), uri, "--dem-nodata")
