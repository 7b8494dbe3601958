"""A run with terrain bands: its statistics, its bundle, and evaluation and Grad-CAM from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.chips import load_chip, normalize
from pipelines.errors import InputError
from pipelines.evaluate import bundle_dataset, evaluate_bundle
from pipelines.explain import explain_chips
from pipelines.synthetic.writers import write_chips
from pipelines.training.config import TrainConfig
from pipelines.training.data import TrainingStats, load_splits
from pipelines.training.outputs import make_bundle, split_info
from pipelines.training.worker import TrainState

SIZE = 32


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    return write_chips(tmp_path_factory.mktemp("chips"), count=12, size=SIZE, seed=3)


def _config(chips, tmp_path, bands: str) -> TrainConfig:
    return TrainConfig.from_sources(
        None,
        {
            "data": str(chips),
            "out": str(tmp_path / "run"),
            "size": SIZE,
            "base_width": 4,
            "depth": 3,
            "bands": bands,
            "resolution_m": 1.0,
            "relative_radius_m": 8.0,
        },
    )


def _state(config: TrainConfig) -> TrainState:
    torch.manual_seed(0)
    model = build_model(config.arch, in_channels=len(config.bands), base_width=4, depth=3)
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_miou": 0.5}]
    return TrainState(epoch=1, history=history, best_epoch=1, best_weights=model.state_dict())


def test_terrain_bands_go_from_training_to_bundle_to_evaluation(chips, tmp_path):
    config = _config(chips, tmp_path, "rgbd,slope,relative_elevation")
    splits = load_splits(config.data, config.seed, config.split_fractions)
    stats = TrainingStats.for_config(splits["train"], config)
    assert stats.bands == config.bands and len(stats.mean) == len(stats.std) == 6

    bundle = ModelBundle.from_bytes(
        make_bundle(config, _state(config), stats, split_info(config), None).to_bytes()
    )
    assert bundle.bands == list(config.bands)
    assert bundle.terrain["relative_radius_m"] == 8.0
    assert (bundle.norm_mean, bundle.resolution_m) == (stats.mean, 1.0)

    # Evaluation builds the chips' bands from the bundle alone, exactly as training did.
    record = splits["test"][0]
    x, _ = bundle_dataset(bundle, [record])[0]
    stack, _ = load_chip(record, SIZE, config.layer_stack(), config.resolution_m)
    np.testing.assert_array_equal(x.numpy(), normalize(stack, stats.mean, stats.std))
    results = evaluate_bundle(bundle, chips, "test")
    assert results["chips"] == len(splits["test"]) and 0.0 <= results["miou"] <= 1.0
    (png,) = explain_chips(bundle, [record], str(tmp_path / "cams"))
    assert (tmp_path / "cams" / png.rsplit("/", 1)[1]).read_bytes().startswith(b"\x89PNG")


def test_statistics_of_other_bands_are_refused(chips, tmp_path):
    config = _config(chips, tmp_path, "rgbd,slope")
    splits = load_splits(config.data, config.seed, config.split_fractions)
    stats = TrainingStats.measure(splits["train"], SIZE)  # the four base bands only
    with pytest.raises(InputError, match=r"measured for bands \[.*'elevation'\] but the run"):
        make_bundle(config, _state(config), stats, split_info(config), None)
