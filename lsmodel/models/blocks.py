"""Convolution blocks shared by the architectures: every conv is followed by batch norm."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm supplies it), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvBlock(nn.Sequential):
    """Two conv-BN-ReLU layers: the U-Net / U-Net++ building block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels)
        )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv + BN when the width changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def check_input_size(x: torch.Tensor, depth: int) -> None:
    """Raise ValueError unless both spatial sizes divide by ``2**depth`` (one halving per level)."""
    height, width = x.shape[-2:]
    factor = 2**depth
    if height % factor or width % factor:
        raise ValueError(
            f"input of {height}x{width} px does not fit a depth-{depth} model: "
            f"height and width must be multiples of {factor}"
        )


def widths(base_width: int, depth: int) -> list[int]:
    """Channel widths of levels 0..depth: ``base_width * 2**level``."""
    if base_width < 1 or depth < 1:
        raise ValueError(f"base_width and depth must be >= 1, got {base_width} and {depth}")
    return [base_width * 2**level for level in range(depth + 1)]
