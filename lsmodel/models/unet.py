"""U-Net (Ronneberger et al., 2015) with batch norm and dropout at the bottleneck."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from lsmodel.models.blocks import ConvBlock, check_input_size, widths


class UNet(nn.Module):
    """Encoder of ``depth`` max-pool halvings, transposed-conv decoder with skips, 1x1 head.

    Input (N, in_channels, H, W) with H and W multiples of ``2**depth``; output (N, 1, H, W)
    landslide logits. Level ``i`` has ``base_width * 2**i`` channels.
    """

    block_type: ClassVar[type[nn.Module]] = ConvBlock

    def __init__(
        self, in_channels: int = 4, base_width: int = 32, depth: int = 4, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.depth = depth
        width = widths(base_width, depth)
        self.encoder = nn.ModuleList(
            self.block_type(in_channels if level == 0 else width[level - 1], width[level])
            for level in range(depth + 1)
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        # decoder[k] and up[k] bring level depth-k back to level depth-k-1; the last one is level 0.
        levels = range(depth - 1, -1, -1)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(width[i + 1], width[i], 2, stride=2) for i in levels
        )
        self.decoder = nn.ModuleList(self.block_type(2 * width[i], width[i]) for i in levels)
        self.head = nn.Conv2d(width[0], 1, 1)
        # Grad-CAM default: the full-resolution features right before the head.
        self.cam_layer = f"decoder.{depth - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.depth)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for up, block in zip(self.up, self.decoder, strict=True):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)
