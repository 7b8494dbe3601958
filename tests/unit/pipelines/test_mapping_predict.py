"""Tile prediction and blending inside one unit, including the GPU options run on the CPU."""

import numpy as np
import pytest
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.mapping.plan import TileLayout
from pipelines.mapping.predict import TilePredictor


def _bundle(arch: str) -> ModelBundle:
    torch.manual_seed(0)
    model = build_model(arch, base_width=4, depth=3, dropout=0.0)
    return ModelBundle.from_model(
        model,
        bands=["red", "green", "blue", "elevation"],
        tile_size=32,
        norm_mean=[0.0] * 4,
        norm_std=[1.0] * 4,
    )


@pytest.mark.parametrize("blend", ["ramp", "crop"])
def test_blended_tiles_equal_the_whole_window_for_a_per_pixel_model(blend):
    bundle = _bundle("pixel")
    layout = TileLayout(32, 12, blend)
    window = np.random.default_rng(0).normal(size=(4, 32 + 20 * 5, 32 + 20 * 3)).astype(np.float32)
    predicted = TilePredictor(bundle, layout, batch_size=4)(window)
    with torch.inference_mode():
        whole = torch.sigmoid(bundle.build()(torch.from_numpy(window)[None]))[0, 0].numpy()
    inner = np.s_[
        layout.overlap // 2 : -(layout.overlap // 2), layout.overlap // 2 : -(layout.overlap // 2)
    ]
    np.testing.assert_allclose(predicted[inner], whole[inner], atol=1e-5)


def test_gpu_options_on_cpu_give_the_same_map_within_bf16_precision():
    bundle = _bundle("unetpp_ca")
    layout = TileLayout(32, 16)
    window = np.random.default_rng(1).normal(size=(4, 32 + 16 * 4, 32 + 16 * 2)).astype(np.float32)
    fp32 = TilePredictor(bundle, layout, batch_size=4)(window)
    padded = TilePredictor(bundle, layout, batch_size=4, static_shapes=True)(window)
    bf16 = TilePredictor(bundle, layout, batch_size=4, precision="bf16", static_shapes=True)(window)
    np.testing.assert_allclose(padded, fp32, atol=1e-6)
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    assert not np.array_equal(bf16, fp32)  # autocast really ran in bf16


def test_a_unit_is_predicted_the_same_way_every_time():
    bundle = _bundle("unet")
    layout = TileLayout(32, 16)
    window = np.random.default_rng(2).normal(size=(4, 96, 96)).astype(np.float32)
    first = TilePredictor(bundle, layout, batch_size=3)(window)
    again = TilePredictor(bundle, layout, batch_size=3)(window)
    assert first.tobytes() == again.tobytes()
