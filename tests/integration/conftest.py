"""Fixtures for integration tests that need a model which has really learned the synthetic world."""

from __future__ import annotations

import pytest
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.losses import build_loss
from lsmodel.models import build_model
from pipelines.bundles import save_bundle
from pipelines.chips import ChipDataset, band_stats, scan_bijie, split_records
from pipelines.synthetic.writers import write_chips

CHIP = 64


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory) -> str:
    """A small U-Net trained in-process on synthetic chips; returns its bundle URI.

    A plain loop keeps this fixture fast; Ray Train itself is tested in test_train.py.
    """
    root = tmp_path_factory.mktemp("trained")
    write_chips(root / "chips", count=200, size=CHIP, seed=3)
    splits = split_records(scan_bijie(root / "chips"), seed=0)
    mean, std = band_stats(splits["train"], CHIP)
    train = ChipDataset(splits["train"], CHIP, mean, std)
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.stack([train[i][1] for i in range(len(train))])

    torch.manual_seed(0)
    model = build_model("unet", base_width=8, depth=3, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = build_loss("bce+dice")
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        for batch in torch.randperm(len(x), generator=generator).split(16):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    bundle = ModelBundle.from_model(
        model,
        bands=["red", "green", "blue", "elevation"],
        norm_mean=mean.tolist(),
        norm_std=std.tolist(),
        tile_size=CHIP,
        resolution_m=1.0,
    )
    return save_bundle(bundle, str(root / "model"))
