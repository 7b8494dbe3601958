"""U-Net++ (Zhou et al., 2018): nested dense skip pathways, optional encoder attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsmodel.models.attention import make_attention
from lsmodel.models.blocks import ConvBlock, check_input_size, widths


class UNetPlusPlus(nn.Module):
    """U-Net++ with nodes X^{i,j}: level ``i`` (0..depth), ``j`` convolutions along the skip path.

    X^{i,0} is the encoder (each followed by ``attention``, see ``make_attention``); for j >= 1,
    X^{i,j} = conv(cat(X^{i,0}, ..., X^{i,j-1}, up(X^{i+1,j-1}))) with bilinear 2x upsampling.
    One 1x1 head on X^{0,depth} gives (N, 1, H, W) logits (no deep supervision).
    """

    def __init__(
        self,
        in_channels: int = 4,
        base_width: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
        attention: str | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.depth = depth
        width = widths(base_width, depth)
        self.encoder = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else width[i - 1], width[i]) for i in range(depth + 1)
        )
        self.attention = nn.ModuleList(
            make_attention(attention, width[i]) for i in range(depth + 1)
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.nodes = nn.ModuleDict(
            {
                f"x{i}_{j}": ConvBlock(j * width[i] + width[i + 1], width[i])
                for j in range(1, depth + 1)
                for i in range(depth - j + 1)
            }
        )
        self.head = nn.Conv2d(width[0], 1, 1)
        self.cam_layer = f"nodes.x0_{depth}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.depth)
        grid: list[list[torch.Tensor]] = []
        for i, (block, attention) in enumerate(zip(self.encoder, self.attention, strict=True)):
            x = attention(block(x if i == 0 else self.pool(x)))
            grid.append([x])
        grid[-1][0] = self.dropout(grid[-1][0])
        # Column by column: X^{i,j} needs X^{i+1,j-1} from the previous column.
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                up = F.interpolate(grid[i + 1][j - 1], scale_factor=2, mode="bilinear")
                grid[i].append(self.nodes[f"x{i}_{j}"](torch.cat([*grid[i], up], dim=1)))
        return self.head(grid[0][self.depth])
