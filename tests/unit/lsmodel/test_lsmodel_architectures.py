"""Architectures: shapes, input checks, gradient flow, and that each one can learn a blob."""

from __future__ import annotations

import pytest
import torch

from lsmodel.losses import build_loss
from lsmodel.metrics import SegmentationMetrics
from lsmodel.models import ARCHITECTURES, build_model

ARCHS = sorted(ARCHITECTURES)


def test_registry_names_the_papers_six_models():
    assert set(ARCHITECTURES) == {
        "unet",
        "resunet",
        "unetpp",
        "unetpp_sa",
        "unetpp_ca",
        "unetpp_sa_ca",
    }


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ValueError, match="unetpp_sa_ca"):
        build_model("segformer")


@pytest.mark.parametrize("arch", ARCHS)
def test_output_is_one_logit_per_pixel(arch):
    torch.manual_seed(0)
    model = build_model(arch, base_width=4, depth=4).eval()
    with torch.no_grad():
        for height, width in [(128, 128), (256, 256), (64, 128)]:
            logits = model(torch.randn(2, 4, height, width))
            assert logits.shape == (2, 1, height, width)
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["unet", "unetpp_sa_ca"])
def test_input_size_must_divide_by_two_to_the_depth(arch):
    model = build_model(arch, base_width=4, depth=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 4, 32, 36))


def test_widths_double_per_level_and_in_channels_is_honoured():
    model = build_model("unet", in_channels=3, base_width=6, depth=3)
    assert [block[0][0].out_channels for block in model.encoder] == [6, 12, 24, 48]
    assert model.encoder[0][0][0].in_channels == 3
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_every_conv_is_followed_by_batch_norm():
    model = build_model("unetpp_sa_ca", base_width=4, depth=3)
    modules = list(model.modules())
    # 3x3 convs are the feature convs; attention convs (7x7, 1x1 MLP) and the head are exempt.
    for index, module in enumerate(modules):
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
            assert isinstance(modules[index + 1], torch.nn.BatchNorm2d)


def test_unetpp_has_nested_nodes_and_a_single_head():
    model = build_model("unetpp", base_width=4, depth=3)
    assert sorted(model.nodes) == sorted(f"x{i}_{j}" for j in range(1, 4) for i in range(4 - j))
    # X^{0,3} sees X^{0,0..2} (3 x 4 channels) and the upsampled X^{1,2} (8 channels).
    assert model.nodes["x0_3"][0][0].in_channels == 3 * 4 + 8
    assert model.get_submodule(model.cam_layer) is model.nodes["x0_3"]


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = build_model(arch, base_width=4, depth=3, dropout=0.0)
    model(torch.randn(2, 4, 32, 32)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def _blob_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four 32x32 chips, each with one disc of landslide that shows in all four bands."""
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    target = torch.zeros(4, 1, 32, 32)
    for i in range(4):
        cy, cx = torch.randint(8, 24, (2,), generator=generator)
        target[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= (4 + i) ** 2).float()
    signature = torch.tensor([1.0, -0.5, 0.8, 0.3]).view(1, 4, 1, 1)
    x = 0.5 * torch.randn(4, 4, 32, 32, generator=generator) + target * signature
    return x, target


@pytest.mark.parametrize("arch", ARCHS)
def test_training_on_a_fixed_batch_reaches_high_miou(arch):
    torch.manual_seed(0)
    x, target = _blob_batch()
    model = build_model(arch, base_width=4, depth=3, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = build_loss("bce+dice")
    miou = 0.0
    for step in range(1, 301):
        model.train()
        optimizer.zero_grad()
        loss_fn(model(x), target).backward()
        optimizer.step()
        if step % 25 == 0:
            metrics = SegmentationMetrics()
            with torch.no_grad():
                metrics.update(torch.sigmoid(model.eval()(x)), target)
            miou = metrics.compute()["miou"]
            if miou > 0.9:
                break
    assert miou > 0.9


def test_pixel_baseline_has_no_spatial_context():
    model = build_model("pixel", base_width=8, depth=2, dropout=0.0).eval()
    x = torch.randn(1, 4, 32, 48)
    changed = x.clone()
    changed[..., 5, 7] += 3.0
    with torch.no_grad():
        difference = (model(changed) - model(x)).abs()[0, 0]
    assert difference[5, 7] > 0
    difference[5, 7] = 0
    assert difference.max() == 0
