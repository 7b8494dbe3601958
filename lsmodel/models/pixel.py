"""A per-pixel baseline: the same inputs, no spatial context at all."""

from __future__ import annotations

import torch
from torch import nn


class PixelClassifier(nn.Module):
    """``depth`` hidden 1x1 conv-BN-ReLU layers of ``base_width`` channels, then a 1x1 head.

    Each output pixel depends only on the input bands at that pixel. It shows what the paper's
    encoders gain from spatial context, and, because its output cannot depend on where a pixel sits
    in a tile, it is the reference model for checking that the mapper's tiling leaves no seams.
    """

    def __init__(
        self, in_channels: int = 4, base_width: int = 32, depth: int = 4, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.depth = depth
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(width, base_width, 1, bias=False),
                nn.BatchNorm2d(base_width),
                nn.ReLU(inplace=True),
            ]
            width = base_width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv2d(width, 1, 1)
        self.cam_layer = "features"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))
