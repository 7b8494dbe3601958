"""Models of other input layers, end to end: 16-bit multispectral imagery + DEM + NDVI + one-hot
lithology, and terrain-only models with distance to faults, trained from chip folders and mapped
from a layers file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines import storage
from pipelines.bundles import load_bundle, save_bundle
from pipelines.cli import main
from pipelines.layers import LayerStack
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.synthetic.writers import write_chips, write_region

sys.path.insert(0, str(Path(__file__).parents[1]))
from layer_rasters import (  # noqa: E402
    LAYERS,
    LITHOLOGY_CODES,
    write_dem_on_lattice,
    write_layers,
)

pytestmark = pytest.mark.usefixtures("ray_cluster")

SIZE = 192
MARGIN = 24  # m of DEM beyond the image: real neighbours for the slope of edge units


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """The synthetic region with the fake layers, its DEM resampled once onto the image's 1 m
    lattice (see :func:`write_dem_on_lattice`)."""
    path = tmp_path_factory.mktemp("layers_map")
    write_region(str(path), size=SIZE, seed=11)
    write_layers(path)
    write_dem_on_lattice(path, MARGIN)
    layers = yaml.safe_load((path / "layers.yaml").read_text())
    layers["layers"][1]["uri"] = "dem_1m.tif"
    (path / "layers.yaml").write_text(yaml.safe_dump(layers, sort_keys=False))
    return path


def _random_bundle(records: list[dict], folder: Path) -> str:
    stack = LayerStack.from_record(records)
    torch.manual_seed(0)
    net = build_model("unet", in_channels=len(stack), base_width=4, depth=3, dropout=0.0)
    means = {"elevation": 1800.0, "slope": 20.0, "faults": 20.0}
    stds = {"elevation": 150.0, "slope": 10.0, "faults": 10.0}
    bundle = ModelBundle.from_model(
        net,
        bands=list(stack.names),
        layers=stack.record(),
        tile_size=32,
        resolution_m=1.0,
        norm_mean=[means.get(name, 0.3) for name in stack.names],
        norm_std=[stds.get(name, 0.2) for name in stack.names],
    )
    return save_bundle(bundle, str(folder))


def _definitions(names: list[str]) -> list[dict]:
    records = [{k: v for k, v in layer.items() if k != "uri"} for layer in LAYERS]
    records[-1] |= {"categories": list(LITHOLOGY_CODES)}
    return [record for record in records if record["name"] in names]


def _map_cli(model: str, layers: Path, out: Path, chunk: int, cwd: Path, monkeypatch) -> np.ndarray:
    monkeypatch.chdir(cwd)
    args = ["map", "--model", model, "--layers", str(layers), "--out", str(out)]
    args += ["--chunk", str(chunk), "--batch-size", "1", "--dtype", "float32", "--quiet"]
    assert main(args) == 0
    return open_probability(OutputLayout(str(out))).values


@pytest.mark.parametrize(
    "names",
    [["image", "dem", "ndvi", "lithology"], ["dem", "faults", "lithology"]],
    ids=["multispectral16+dem+ndvi+lithology", "terrain+faults+lithology"],
)
def test_layer_models_map_the_same_bytes_whatever_the_chunks(region, names, tmp_path, monkeypatch):
    model = _random_bundle(_definitions(names), tmp_path / "model")
    # Relative URIs in the layers file resolve against its folder, wherever the command runs.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.warns(UserWarning, match="lithology.*covers"):
        small = _map_cli(
            model, region / "layers.yaml", tmp_path / "small", 72, elsewhere, monkeypatch
        )
        large = _map_cli(
            model, region / "layers.yaml", tmp_path / "large", 100, elsewhere, monkeypatch
        )
    assert np.isfinite(small).any() and np.nanmin(small) < np.nanmax(small)
    assert small.tobytes() == large.tobytes()
    # Pixels without lithology (its nodata corner) are nodata in the map.
    assert np.isnan(small[:8, :8]).all() if names[0] == "image" else np.isnan(small).any()


def test_train_from_layer_folders_and_map_with_the_described_layers(
    region, tmp_path, monkeypatch, capsys
):
    """Chips with a 16-bit multispectral folder, a lithology folder and a folder of distances to
    rivers train a model of those layers; the bundle records them (categories found in the
    chips); `lsmap models --describe` prints the layers file that, filled in, maps the region
    (distance to its fault lines in place of rivers)."""
    chips = tmp_path / "chips"
    write_chips(str(chips), count=24, size=32, seed=2, rivers=True)
    rng = np.random.default_rng(0)
    for image in sorted(chips.glob("*/image/*")):
        rgb = np.asarray(rasterio.open(image).read() if image.suffix == ".tif" else _png(image))
        nir = np.clip(2.2 * rgb[1].astype(np.float32) - 0.8 * rgb[0], 0, 255)
        data = (np.concatenate([rgb[:3], nir[None]]) * 40).astype(np.uint16)
        codes = np.kron(rng.choice(LITHOLOGY_CODES, (2, 2)), np.ones((16, 16))).astype(np.uint8)
        for folder, values in (("ms", data), ("lithology", codes[None])):
            target = image.parent.parent / folder / f"{image.stem}.tif"
            target.parent.mkdir(exist_ok=True)
            profile = {"driver": "GTiff", "height": 32, "width": 32, "count": values.shape[0]}
            with rasterio.open(target, "w", dtype=values.dtype, **profile) as f:
                f.write(values)
    records = _definitions(["image", "dem", "ndvi", "lithology"])
    records[0]["name"], records[2]["of"] = "ms", "ms"
    del records[-1]["categories"]  # found in the chips
    records.append({"name": "rivers", "kind": "distance", "max_distance": 300})
    layers = tmp_path / "train_layers.yaml"
    layers.write_text(yaml.safe_dump({"layers": records}))
    monkeypatch.chdir(tmp_path)
    train = ["train", "--data", "chips", "--out", "run", "--layers", "train_layers.yaml"]
    train += ["--arch", "unet", "--epochs", "1", "--size", "32", "--base-width", "4"]
    train += ["--depth", "3", "--resolution-m", "1"]
    assert main(train) == 0
    bundle = load_bundle(str(tmp_path / "run"))
    assert bundle.bands[-4:] == [*(f"lithology={code}" for code in LITHOLOGY_CODES), "rivers"]
    assert [layer["name"] for layer in bundle.layers] == [
        "ms",
        "dem",
        "ndvi",
        "lithology",
        "rivers",
    ]

    capsys.readouterr()
    assert main(["models", "--describe", "run"]) == 0
    described = yaml.safe_load(capsys.readouterr().out)
    files = {"ms": "image16.tif", "dem": "dem_1m.tif", "lithology": "lithology.tif"}
    files["rivers"] = "faults.gpkg"
    for layer in described["layers"]:
        if "uri" in layer:
            suffix = "gpkg" if layer["kind"] == "distance" else "tif"
            assert layer["uri"] == f"<{layer['name']}.{suffix}>"
            layer["uri"] = files[layer["name"]]
    filled = region / "described.yaml"
    filled.write_text(yaml.safe_dump(described))
    with pytest.warns(UserWarning, match="lithology.*covers"):
        assert (
            main(["map", "--model", "run", "--layers", str(filled), "--out", "map", "--quiet"]) == 0
        )
    manifest = storage.read_json(str(tmp_path / "map" / "manifest.json"))
    assert manifest["status"] == "complete"
    assert set(manifest["run"]["inputs"]) == {"ms", "dem", "lithology", "rivers"}

    # 8-bit imagery given for the model's 16-bit layer: refused naming layer and file, no output.
    described["layers"][0]["uri"] = "rgb.tif"
    (region / "wrong.yaml").write_text(yaml.safe_dump(described))
    assert (
        main(["map", "--model", "run", "--layers", str(region / "wrong.yaml"), "--out", "wrong"])
        == 1
    )
    error = capsys.readouterr().err
    assert (
        "rgb.tif (layer 'ms' (imagery)): the image is uint8, but the layer declares uint16" in error
    )
    assert not (tmp_path / "wrong").exists()


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path)).transpose(2, 0, 1)


def test_an_unseen_category_stops_the_map_whatever_errors_are_tolerated(region, tmp_path, capsys):
    records = _definitions(["dem", "lithology"])
    records[-1]["categories"] = list(LITHOLOGY_CODES[:2])
    model = _random_bundle(records, tmp_path / "model")
    args = ["map", "--model", model, "--layers", str(region / "layers.yaml")]
    args += ["--out", str(tmp_path / "out"), "--quiet", "--tolerate-read-errors"]
    with pytest.warns(UserWarning, match="lithology.*covers"):
        assert main(args) == 1
    error = capsys.readouterr().err
    assert "lithology.tif (layer 'lithology' (categorical)): category code(s) [11]" in error
    assert "--tolerate-read-errors" not in error.split("incomplete")[-1]
    manifest = storage.read_json(str(tmp_path / "out" / "manifest.json"))
    assert manifest["status"] == "running"  # never marked complete
