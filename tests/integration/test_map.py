"""``lsmap map`` end to end on a local Ray cluster: seams, determinism, resume, S3, nodata."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import zarr

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines import storage
from pipelines.bundles import save_bundle
from pipelines.chips import normalize
from pipelines.cli import main
from pipelines.errors import LsmapError
from pipelines.ingest import ingest
from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout, gdal_path
from pipelines.raster import Grid, open_mosaic, read_window
from pipelines.synthetic.writers import write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")

BANDS = ["red", "green", "blue", "elevation"]
NORM = {"norm_mean": [110.0, 110.0, 100.0, 1500.0], "norm_std": [40.0, 40.0, 40.0, 300.0]}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    path = tmp_path_factory.mktemp("region")
    write_region(str(path), size=320, seed=7)
    return path


def _bundle(arch: str, path, tile: int = 32) -> str:
    torch.manual_seed(0)
    model = build_model(arch, in_channels=4, base_width=4, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(model, bands=BANDS, tile_size=tile, resolution_m=1.0, **NORM)
    return save_bundle(bundle, str(path))


@pytest.fixture(scope="module")
def unet_bundle(tmp_path_factory):
    return _bundle("unet", tmp_path_factory.mktemp("unet"))


@pytest.fixture(scope="module")
def clean_map(region, unet_bundle, tmp_path_factory):
    """One clean single-actor run that the determinism and resume tests compare against."""
    out = str(tmp_path_factory.mktemp("clean") / "map")
    map_region(
        unet_bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        out,
        chunk=96,
        progress=False,
    )
    return out


def _stored(out: str) -> np.ndarray:
    return open_probability(OutputLayout(out)).values


def _chunk_bytes(out: str) -> dict[str, bytes]:
    """The stored chunks of the probability array by key; its metadata files start with "."."""
    root = os.path.join(out, "probability.zarr", "probability")
    return {
        os.path.relpath(os.path.join(d, f), root): Path(d, f).read_bytes()
        for d, _, files in os.walk(root)
        for f in files
        if not f.startswith(".")
    }


@pytest.mark.parametrize("blend", ["ramp", "crop"])
def test_mosaic_equals_the_model_on_the_whole_scene(region, tmp_path, blend):
    """No seams: with a model whose output does not depend on tile position, tiling, halos and
    blending over chunks that divide neither the scene nor the tile grid change nothing."""
    model_uri = _bundle("pixel", tmp_path / "pixel")
    out = str(tmp_path / "map")
    rgb, dem = str(region / "rgb.tif"), str(region / "dem.tif")
    map_region(
        model_uri,
        {"image": rgb, "dem": dem},
        out,
        chunk=100,
        overlap=8,
        blend=blend,
        dtype="float32",
        progress=False,
    )

    mapped = open_probability(OutputLayout(out), decode=True)
    grid = Grid.from_dataarray(mapped)
    stack = np.concatenate(
        [read_window(open_mosaic(rgb), grid), read_window(open_mosaic(dem), grid)]
    )
    valid = np.isfinite(stack).all(axis=0)
    x = normalize(np.where(valid, stack, 0.0), NORM["norm_mean"], NORM["norm_std"])
    from pipelines.bundles import load_bundle

    with torch.inference_mode():
        expected = torch.sigmoid(load_bundle(model_uri).build()(torch.from_numpy(x)[None]))[
            0, 0
        ].numpy()
    np.testing.assert_allclose(mapped.values[valid], expected[valid], atol=1e-5)
    assert np.isnan(mapped.values[~valid]).all()


def test_one_and_two_actors_write_identical_bytes(region, unet_bundle, clean_map, tmp_path):
    out = str(tmp_path / "map")
    map_region(
        unet_bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        out,
        chunk=96,
        workers=2,
        progress=False,
    )
    assert _chunk_bytes(out) == _chunk_bytes(clean_map)
    assert len(_chunk_bytes(out)) == 16


def test_killed_run_resumes_to_the_same_bytes(
    region, unet_bundle, clean_map, tmp_path, ray_cluster
):
    out = str(tmp_path / "map")
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "map",
        "--model",
        unet_bundle,
        "--rgb",
        str(region / "rgb.tif"),
        "--dem",
        str(region / "dem.tif"),
        "--out",
        out,
        "--chunk",
        "96",
        "--quiet",
        "--batch-size",
        "1",
    ]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    process = subprocess.Popen(command, env=env, start_new_session=True)
    units = os.path.join(out, "units")
    deadline = time.monotonic() + 120
    while not (os.path.isdir(units) and os.listdir(units)):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(os.listdir(units))
    assert json.loads(Path(out, "manifest.json").read_text())["status"] == "running"

    manifest = map_region(
        unet_bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        out,
        chunk=96,
        progress=False,
    )
    assert manifest["units"]["already_done"] >= finished_before >= 1
    assert manifest["units"]["computed"] == 16 - manifest["units"]["already_done"]
    assert _chunk_bytes(out) == _chunk_bytes(clean_map)


def test_a_different_run_in_the_output_is_refused(region, clean_map, tmp_path):
    other = _bundle("resunet", tmp_path / "other")
    with pytest.raises(LsmapError, match="different run"):
        map_region(
            other,
            {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
            clean_map,
            chunk=96,
            progress=False,
        )


def test_bf16_maps_are_deterministic_close_to_fp32_and_never_mixed_with_it(
    region, unet_bundle, clean_map, tmp_path
):
    rgb, dem = str(region / "rgb.tif"), str(region / "dem.tif")
    with pytest.raises(LsmapError, match="different run"):
        map_region(
            unet_bundle,
            {"image": rgb, "dem": dem},
            clean_map,
            chunk=96,
            precision="bf16",
            progress=False,
        )
    outs = [str(tmp_path / f"map-{workers}") for workers in (1, 2)]
    for workers, out in zip((1, 2), outs, strict=True):
        map_region(
            unet_bundle,
            {"image": rgb, "dem": dem},
            out,
            chunk=96,
            workers=workers,
            precision="bf16",
            progress=False,
        )
    assert _chunk_bytes(outs[0]) == _chunk_bytes(outs[1])
    bf16 = open_probability(OutputLayout(outs[0]), decode=True).values
    fp32 = open_probability(OutputLayout(clean_map), decode=True).values
    difference = np.abs(bf16 - fp32)
    print(f"bf16 vs fp32: max {difference.max():.4f}, mean {difference.mean():.5f}")
    assert difference.max() <= 0.03 and difference.mean() <= 0.005


def test_rerun_of_a_finished_map_computes_nothing(region, unet_bundle, clean_map):
    before = _chunk_bytes(clean_map)
    manifest = map_region(
        unet_bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        clean_map,
        chunk=96,
        progress=False,
    )
    assert manifest["units"] | {"computed": 0} == manifest["units"]
    assert manifest["units"]["to_compute"] == 0
    assert _chunk_bytes(clean_map) == before


def test_relative_paths_are_recorded_whole_and_older_relative_records_still_resume(
    region, unet_bundle, clean_map, tmp_path, monkeypatch
):
    """The command line makes local paths absolute once: the run identity names the inputs
    wherever the command ran, the manifest names the outputs relative to their folder. A run
    recorded by older versions with relative inputs is still the same run from the same place."""
    monkeypatch.chdir(tmp_path)
    rgb, dem = os.path.relpath(region / "rgb.tif"), os.path.relpath(region / "dem.tif")
    args = ["map", "--model", unet_bundle, "--rgb", rgb, "--dem", dem, "--out", "map"]
    args += ["--chunk", "96", "--quiet", "--no-quicklook"]
    assert main(args) == 0
    manifest = storage.read_json(str(tmp_path / "map" / "manifest.json"))
    assert manifest["run"]["inputs"] == {
        "image": str(region / "rgb.tif"),
        "dem": str(region / "dem.tif"),
    }
    assert manifest["outputs"] == {"probability": "probability.zarr", "stac": "catalog.json"}
    np.testing.assert_array_equal(_stored(str(tmp_path / "map")), _stored(clean_map))

    # As an older lsmap recorded it: RGB and DEM (not layers), as typed, relative to the working
    # directory.
    group = zarr.open_group(str(tmp_path / "map" / "probability.zarr"), mode="r+", zarr_format=2)
    run = json.loads(group.attrs["lsmap_run"])
    del run["inputs"]
    run |= {"rgb": rgb, "dem": dem}
    group.attrs["lsmap_run"] = json.dumps(run, sort_keys=True)
    (tmp_path / "map" / "units" / "0.json").unlink()
    assert main(args) == 0
    units = storage.read_json(str(tmp_path / "map" / "manifest.json"))["units"]
    assert (units["already_done"], units["computed"]) == (units["total"] - 1, 1)


def test_s3_zarr_and_cog_inputs_to_s3_output(region, unet_bundle, clean_map, s3_bucket):
    bucket = f"s3://{s3_bucket}"
    storage.write_bytes(f"{bucket}/in/dem.tif", (region / "dem.tif").read_bytes())
    ingest(str(region / "rgb.tif"), f"{bucket}/in/rgb.zarr", chunk=128)
    model = save_bundle(ModelBundle.from_bytes(storage.read_bytes(unet_bundle)), f"{bucket}/model")
    out = f"{bucket}/map"
    manifest = map_region(
        model,
        {"image": f"{bucket}/in/rgb.zarr", "dem": f"{bucket}/in/dem.tif"},
        out,
        chunk=96,
        cog=True,
        progress=False,
    )
    assert manifest["status"] == "complete"
    np.testing.assert_array_equal(_stored(out), _stored(clean_map))
    assert storage.exists(f"{out}/probability.tif")
    # GIS users open the store where it lies: GDAL reads it through /vsis3/.
    grid = Grid.from_dataarray(open_probability(OutputLayout(out)))
    with rasterio.open(gdal_path(OutputLayout(out).zarr)) as src:
        assert src.crs == grid.crs and src.transform == grid.transform
        np.testing.assert_array_equal(src.read(1), _stored(clean_map))


def test_nodata_is_masked_and_empty_units_skip_the_model(region, unet_bundle, tmp_path):
    with rasterio.open(region / "rgb.tif") as src:
        profile, data = src.profile, src.read()
    data[:, :, :200] = 0  # no imagery west of column 200: the first two unit columns are empty
    profile.update(driver="GTiff", nodata=0)
    holed = tmp_path / "rgb_holed.tif"
    with rasterio.open(holed, "w", **profile) as dst:
        dst.write(data)
    out = str(tmp_path / "map")
    manifest = map_region(
        unet_bundle,
        {"image": str(holed), "dem": str(region / "dem.tif")},
        out,
        chunk=96,
        progress=False,
    )
    stored = _stored(out)
    assert (stored[:, :200] == 255).all()
    assert (stored[:, 200:] < 255).all()
    assert manifest["units"]["nodata_only"] == 8
    zarr_attrs = zarr.open_group(os.path.join(out, "probability.zarr"), mode="r").attrs
    assert zarr_attrs["lsmap_status"] == "complete"
