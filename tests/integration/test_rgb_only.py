"""RGB-only models end to end, as real inventories often come: image and mask chips with no DEM
folder train a model, which maps an RGB mosaic with no DEM."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.synthetic.writers import write_chips, write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_chips_without_dems_train_a_model_that_maps_rgb_alone(tmp_path, monkeypatch):
    chips = write_chips(tmp_path / "chips", 36, size=64, seed=3)  # the size of the real case
    for cls in ("landslide", "non-landslide"):
        shutil.rmtree(chips / cls / "dem")
    region = write_region(tmp_path / "region", size=160, seed=4)
    monkeypatch.chdir(tmp_path)

    train = ["train", "--data", "chips", "--out", "run", "--bands", "rgb", "--arch", "unet"]
    train += ["--epochs", "2", "--workers", "1", "--batch-size", "4", "--lr", "3e-3"]
    train += ["--size", "64", "--base-width", "4", "--depth", "2", "--dropout", "0"]
    assert main(train) == 0
    assert main(["evaluate", "--model", "run", "--data", "chips", "--split", "test"]) == 0
    assert (
        main(["explain", "--model", "run", "--data", "chips", "--out", "cam", "--count", "2"]) == 0
    )
    assert len(list((tmp_path / "cam").glob("*.png"))) == 2

    rgb_only = ["map", "--model", "run", "--rgb", str(region.rgb), "--chunk", "96", "--quiet"]
    assert main([*rgb_only, "--out", "map"]) == 0
    probability = open_probability(OutputLayout(str(tmp_path / "map")), decode=True).values
    assert probability.shape == (160, 160) and np.isfinite(probability).all()
    # A DEM given to an RGB-only model is not read: the same map.
    assert main([*rgb_only, "--dem", str(region.dem), "--out", "with-dem"]) == 0
    with_dem = open_probability(OutputLayout(str(tmp_path / "with-dem")), decode=True).values
    np.testing.assert_array_equal(with_dem, probability)
