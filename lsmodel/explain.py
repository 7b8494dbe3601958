"""Grad-CAM (Selvaraju et al., 2017) for the landslide logit of a segmentation model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    name = layer if layer is not None else getattr(model, "cam_layer", None)
    if name is None:
        raise ValueError("model has no cam_layer attribute: pass layer= (a name or a module)")
    return model.get_submodule(name)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | nn.Module | None = None,
    roi: torch.Tensor | None = None,
) -> torch.Tensor:
    """Grad-CAM heat maps (N, H, W) in [0, 1] for the landslide logit summed over a region.

    ``layer`` is a submodule or its name; by default the model's ``cam_layer``. ``roi`` is a bool
    mask broadcastable to the logits (N, 1, H, W); by default the predicted landslide mask
    (probability >= 0.5). Images whose region is empty use the whole image. Each map is
    ``ReLU(sum_k mean(d score / d A_k) * A_k)`` over the layer's channels ``A_k``, upsampled
    bilinearly to the input size and divided by its maximum (all-zero maps stay zero).
    The model runs in eval mode; its modes are restored and the hook removed afterwards.
    """
    target = _resolve_layer(model, layer)
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.enable_grad():
            # Input needing grad keeps a graph even for a model with frozen parameters.
            logits = model(x.detach().requires_grad_(True))
            region = (logits >= 0) if roi is None else roi.to(torch.bool).expand_as(logits)
            empty = ~region.flatten(1).any(dim=1)
            region = region | empty.view(-1, 1, 1, 1)
            # Images are independent in eval mode, so one backward pass serves the whole batch.
            score = (logits * region).sum()
            (grads,) = torch.autograd.grad(score, captured[-1])
    finally:
        handle.remove()
        for module, training in modes.items():
            module.train(training)
    activations = captured[-1].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear").squeeze(1)
    peak = cam.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), 0.0)
