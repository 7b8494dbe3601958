"""Grad-CAM highlights what a model with a known response looks at."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsmodel.explain import grad_cam
from lsmodel.models import build_model

SIZE = 32


class GatedModel(nn.Module):
    """Logit = 10 * A - 5 in the left half and 10 * B - 5 in the right half.

    A and B are input channels 0 and 1 passed through an identity conv and a 2x average pool
    (the Grad-CAM layer, at half resolution). Dropout would scramble the output in train mode.
    """

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(2, 2, 1, bias=False)
        conv.weight.data = torch.eye(2).view(2, 2, 1, 1)
        self.features = nn.Sequential(conv, nn.AvgPool2d(2))
        self.dropout = nn.Dropout(0.9)
        left = torch.zeros(1, 1, SIZE, SIZE)
        left[..., : SIZE // 2] = 1
        self.register_buffer("left", left)
        self.cam_layer = "features"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = F.interpolate(self.dropout(self.features(x)), scale_factor=2).split(1, dim=1)
        return 10 * (self.left * a + (1 - self.left) * b) - 5


def _image(a_value: float = 1.0) -> torch.Tensor:
    """Channel A: blob at top-left; channel B: blob at bottom-left (where the logit ignores B)."""
    x = torch.zeros(1, 2, SIZE, SIZE)
    x[0, 0, 4:12, 4:12] = a_value
    x[0, 1, 20:28, 4:12] = 1.0
    return x


TOP_LEFT = (slice(6, 10), slice(6, 10))
BOTTOM_LEFT = (slice(22, 26), slice(6, 10))


def test_default_region_is_the_predicted_mask():
    model = GatedModel().train()
    cam = grad_cam(model, _image())
    assert cam.shape == (1, SIZE, SIZE)
    # Only the A blob is predicted; the logit there depends on A alone.
    assert (cam[0][TOP_LEFT] > 0.99).all()
    assert (cam[0][BOTTOM_LEFT] == 0).all()
    assert cam[0, :, 20:].max() == 0
    assert model.training and model.dropout.training
    assert not model.features._forward_hooks


def test_explicit_region_selects_the_channel_it_depends_on():
    roi = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.bool)
    roi[..., 20:28, 20:28] = True  # right half: the logit reads channel B
    cam = grad_cam(GatedModel(), _image(), roi=roi)
    assert (cam[0][BOTTOM_LEFT] > 0.99).all()
    assert (cam[0][TOP_LEFT] == 0).all()


def test_empty_prediction_falls_back_to_the_whole_image():
    # A = 0.3 gives logit -2: nothing is predicted, so both halves (A and B) count.
    cam = grad_cam(GatedModel(), _image(a_value=0.3))
    assert (cam[0][TOP_LEFT] > 0.2).all()
    assert (cam[0][BOTTOM_LEFT] > 0.99).all()


def test_real_model_maps_are_per_sample_normalised_and_leave_no_trace():
    torch.manual_seed(0)
    model = build_model("unetpp_sa_ca", base_width=4, depth=3).train()
    x = torch.randn(3, 4, 32, 64)
    cam = grad_cam(model, x)
    assert cam.shape == (3, 32, 64)
    assert cam.min() >= 0
    assert torch.allclose(cam.flatten(1).amax(dim=1), torch.ones(3))
    assert all(module.training for module in model.modules())
    assert all(param.grad is None for param in model.parameters())
    layer = model.get_submodule(model.cam_layer)
    assert not layer._forward_hooks
    # The named layer and the module itself give the same map.
    torch.testing.assert_close(grad_cam(model, x, layer=layer), grad_cam(model, x))
