"""ResUNet: the U-Net layout with residual conv blocks (after Zhang et al., 2018)."""

from __future__ import annotations

from lsmodel.models.blocks import ResidualBlock
from lsmodel.models.unet import UNet


class ResUNet(UNet):
    """U-Net whose encoder and decoder blocks are residual blocks (see ``ResidualBlock``)."""

    block_type = ResidualBlock
