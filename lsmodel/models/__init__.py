"""Segmentation architectures of the paper, by name; ``build_model`` is the one way to make them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from lsmodel.models.attention import (
    ChannelAttention,
    ContextualAttention,
    SpatialAttention,
    make_attention,
)
from lsmodel.models.pixel import PixelClassifier
from lsmodel.models.resunet import ResUNet
from lsmodel.models.unet import UNet
from lsmodel.models.unetpp import UNetPlusPlus

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "resunet": ResUNet,
    "unetpp": UNetPlusPlus,
    "unetpp_sa": partial(UNetPlusPlus, attention="spatial"),
    "unetpp_ca": partial(UNetPlusPlus, attention="contextual"),
    "unetpp_sa_ca": partial(UNetPlusPlus, attention="spatial+contextual"),
}
# Reference models outside the paper's comparison: buildable and bundleable, not in the study.
BASELINES: dict[str, Callable[..., nn.Module]] = {"pixel": PixelClassifier}
REGISTRY: dict[str, Callable[..., nn.Module]] = ARCHITECTURES | BASELINES


def build_model(
    arch: str, in_channels: int = 4, base_width: int = 32, depth: int = 4, dropout: float = 0.5
) -> nn.Module:
    """Build architecture ``arch`` (a key of REGISTRY) with freshly initialised weights.

    The model maps (N, in_channels, H, W) to (N, 1, H, W) landslide logits for any H, W that are
    multiples of ``2**depth``. It carries ``arch`` and ``arch_kwargs`` (what rebuilds it),
    ``in_channels``, ``depth`` and ``cam_layer`` (the submodule name Grad-CAM uses by default).
    """
    if arch not in REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; valid names: {', '.join(REGISTRY)}")
    kwargs = {
        "in_channels": in_channels,
        "base_width": base_width,
        "depth": depth,
        "dropout": dropout,
    }
    model = REGISTRY[arch](**kwargs)
    model.arch = arch
    model.arch_kwargs = kwargs
    return model


__all__ = [
    "ARCHITECTURES",
    "BASELINES",
    "PixelClassifier",
    "REGISTRY",
    "ChannelAttention",
    "ContextualAttention",
    "ResUNet",
    "SpatialAttention",
    "UNet",
    "UNetPlusPlus",
    "build_model",
    "make_attention",
]
