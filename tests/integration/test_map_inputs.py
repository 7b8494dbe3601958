"""Bad inputs to ``lsmap map``: a clear error naming the file, a non-zero exit, and no output that
claims to be complete; or, where the user asked to tolerate a problem, a map around it."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.bundles import save_bundle
from pipelines.cli import main
from pipelines.errors import InputError
from pipelines.ingest import ingest
from pipelines.inputs import LayerInput
from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.synthetic.writers import write_region

NORM = {"norm_mean": [110.0, 110.0, 100.0, 1500.0], "norm_std": [40.0, 40.0, 40.0, 300.0]}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    path = tmp_path_factory.mktemp("region")
    write_region(path, size=192, seed=5)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model("unet", base_width=4, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(
        net, bands=["red", "green", "blue", "elevation"], tile_size=32, resolution_m=1.0, **NORM
    )
    return save_bundle(bundle, str(tmp_path_factory.mktemp("model")))


def _rewrite(src, dst, data=None, **profile_changes) -> str:
    with rasterio.open(src) as f:
        profile, values = f.profile, f.read()
    profile.update(driver="GTiff", **profile_changes)
    values = values if data is None else data(values)
    with rasterio.open(
        dst, "w", **{**profile, "count": values.shape[0], "dtype": values.dtype}
    ) as f:
        f.write(values)
    return str(dst)


def _map(model, rgb, dem, out, dem_nodata=None, **kwargs):
    inputs = {"image": LayerInput(str(rgb)), "dem": LayerInput(str(dem), nodata=dem_nodata)}
    return map_region(model, inputs, str(out), chunk=64, progress=False, **kwargs)


def test_single_band_rgb_is_refused_naming_the_file(region, model, tmp_path):
    gray = _rewrite(region / "rgb.tif", tmp_path / "gray.tif", data=lambda v: v[:1])
    with pytest.raises(InputError, match=r"gray\.tif.*3 bands \(red, green, blue\), found 1"):
        _map(model, gray, region / "dem.tif", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_16_bit_rgb_is_refused_not_misread(region, model, tmp_path):
    deep = _rewrite(
        region / "rgb.tif", tmp_path / "deep.tif", data=lambda v: v.astype(np.uint16) * 257
    )
    with pytest.raises(
        InputError, match=r"deep\.tif.*image is uint16, but the layer declares uint8.*dtype: uint16"
    ):
        _map(model, deep, region / "dem.tif", tmp_path / "out")


def test_dem_elsewhere_is_refused(region, model, tmp_path):
    far = tmp_path / "far_dem.tif"
    profile = {
        "driver": "GTiff",
        "height": 10,
        "width": 10,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": from_origin(10.0, 10.0, 0.001, 0.001),
    }
    with rasterio.open(far, "w", **profile) as f:
        f.write(np.full((1, 10, 10), 100.0, np.float32))
    with pytest.raises(
        InputError, match=r"far_dem\.tif \(layer .dem. \(elevation\)\) does not overlap"
    ):
        _map(model, region / "rgb.tif", far, tmp_path / "out")


def test_bundle_with_other_bands_is_refused(region, tmp_path):
    net = build_model("unet", in_channels=4, base_width=4, depth=3, dropout=0.0)
    bands = ["red", "green", "blue", "nir"]
    bundle = ModelBundle.from_model(
        net, bands=bands, tile_size=32, norm_mean=[1.0] * 4, norm_std=[1.0] * 4
    )
    other = save_bundle(bundle, str(tmp_path / "nir"))
    with pytest.raises(InputError, match="expects bands .*nir.*cannot build"):
        _map(other, region / "rgb.tif", region / "dem.tif", tmp_path / "out")


def test_a_model_of_elevation_needs_a_dem(region, model, tmp_path):
    with pytest.raises(
        InputError,
        match=r"reads layer .dem. \(elevation\), bands elevation: give its file \(--dem URI",
    ):
        map_region(model, {"image": str(region / "rgb.tif")}, str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_prints_the_error_and_exits_non_zero(region, model, tmp_path, capsys):
    gray = _rewrite(region / "rgb.tif", tmp_path / "gray.tif", data=lambda v: v[:1])
    code = main(
        [
            "map",
            "--model",
            model,
            "--rgb",
            gray,
            "--dem",
            str(region / "dem.tif"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "gray.tif" in err and "Traceback" not in err


@pytest.mark.usefixtures("ray_cluster")
def test_partial_dem_maps_the_overlap_and_says_how_much_is_missing(region, model, tmp_path):
    with rasterio.open(region / "dem.tif") as f:
        half_width = f.width // 2
    half = _rewrite(
        region / "dem.tif",
        tmp_path / "half_dem.tif",
        data=lambda v: v[:, :, :half_width],
        width=half_width,
    )
    with pytest.warns(UserWarning, match=r"half_dem\.tif \(layer .dem. \(elevation\)\) covers"):
        manifest = _map(model, region / "rgb.tif", half, tmp_path / "out")
    assert 0.2 < manifest["dem_coverage"] < 0.8
    stored = open_probability(OutputLayout(str(tmp_path / "out"))).values
    assert (stored[:, -20:] == 255).all() and (stored[:, :20] < 255).all()


@pytest.mark.usefixtures("ray_cluster")
def test_nodata_everywhere_fails_and_never_claims_completion(region, model, tmp_path):
    empty = _rewrite(region / "rgb.tif", tmp_path / "empty.tif", data=np.zeros_like, nodata=0)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="nodata everywhere"):
        _map(model, empty, region / "dem.tif", out)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"


@pytest.mark.usefixtures("ray_cluster")
def test_corrupt_chunk_is_named_or_mapped_around_when_tolerated(region, model, tmp_path):
    store = tmp_path / "rgb.zarr"
    ingest(str(region / "rgb.tif"), str(store), chunk=64)
    victim = store / "mosaic" / "c" / "0" / "2" / "2"  # the south-east corner chunk
    victim.write_bytes(victim.read_bytes()[:7])

    with pytest.raises(InputError, match=r"rgb\.zarr .*cannot read the window"):
        _map(model, store, region / "dem.tif", tmp_path / "strict")
    assert json.loads((tmp_path / "strict" / "manifest.json").read_text())["status"] == "running"

    manifest = _map(
        model, store, region / "dem.tif", tmp_path / "tolerant", tolerate_read_errors=True
    )
    assert manifest["status"] == "complete"
    assert manifest["unreadable_units"] and all(
        "rgb.zarr" in u["error"] for u in manifest["unreadable_units"]
    )
    stored = open_probability(OutputLayout(str(tmp_path / "tolerant"))).values
    assert (stored == 255).any() and (stored < 255).mean() > 0.5
    shutil.rmtree(store)
    assert os.path.exists(tmp_path / "tolerant" / "probability.zarr")


@pytest.mark.usefixtures("ray_cluster")
def test_undeclared_dem_nodata_is_named_and_mapped_as_nodata_once_declared(region, model, tmp_path):
    def collar(values):  # the survey stops short of the east: a fill value, never declared
        filled = values.copy()
        filled[:, :, -values.shape[2] // 3 :] = -32768
        return filled

    dem = _rewrite(region / "dem.tif", tmp_path / "collar_dem.tif", data=collar, nodata=None)
    out = tmp_path / "out"
    with pytest.raises(
        InputError, match=r"collar_dem\.tif: declares no nodata.*--dem-nodata -32768"
    ):
        _map(model, region / "rgb.tif", dem, out)
    assert not (out / "manifest.json").exists()

    _map(model, region / "rgb.tif", dem, out, dem_nodata=-32768)
    stored = open_probability(OutputLayout(str(out))).values
    assert (stored[:, -10:] == 255).all() and (stored[:, :20] < 255).all()
