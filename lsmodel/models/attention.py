"""Encoder attention blocks of the paper: spatial, contextual (CBAM-like) and both in sequence."""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_KINDS = ("spatial", "contextual", "spatial+contextual")


class SpatialAttention(nn.Module):
    """Re-weight pixels by ``sigmoid(conv([mean_c(x), max_c(x)]))``.

    The weights depend on the channel-wise average and maximum maps only, so they are blind to the
    order of the channels; the output is ``x * weights`` (weights broadcast over channels).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention map of shape (N, 1, H, W) in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class ChannelAttention(nn.Module):
    """Re-weight channels by ``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))`` with one shared MLP."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Narrow early levels (e.g. 32 channels) would otherwise get a 2-unit bottleneck.
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights of shape (N, C, 1, 1) in (0, 1)."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + peak)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class ContextualAttention(nn.Module):
    """CBAM-like block: channel attention first, then spatial attention on its output."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def make_attention(kind: str | None, channels: int) -> nn.Module:
    """Attention block of ``kind`` (one of ATTENTION_KINDS) for ``channels``; None -> identity.

    ``"spatial+contextual"`` runs spatial attention, then contextual attention.
    """
    if kind is None:
        return nn.Identity()
    if kind == "spatial":
        return SpatialAttention()
    if kind == "contextual":
        return ContextualAttention(channels)
    if kind == "spatial+contextual":
        return nn.Sequential(SpatialAttention(), ContextualAttention(channels))
    raise ValueError(f"unknown attention {kind!r}; expected None or one of {ATTENTION_KINDS}")
