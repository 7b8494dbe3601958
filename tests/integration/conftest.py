"""Fixtures for integration tests that need a model which has really learned the synthetic world."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.losses import build_loss
from lsmodel.models import build_model
from pipelines.bundles import save_bundle
from pipelines.chips import normalize
from pipelines.raster import Grid, open_mosaic, read_window
from pipelines.synthetic.writers import write_region

TILE, STRIDE = 64, 32


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory) -> str:
    """A tiny untrained U-Net (32 px tiles): enough to exercise the mapper; its bundle URI."""
    torch.manual_seed(0)
    net = build_model("unet", in_channels=4, base_width=4, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(
        net,
        bands=["red", "green", "blue", "elevation"],
        tile_size=32,
        resolution_m=1.0,
        norm_mean=[110.0, 110.0, 100.0, 1500.0],
        norm_std=[40.0, 40.0, 40.0, 300.0],
    )
    return save_bundle(bundle, str(tmp_path_factory.mktemp("random") / "model"))


def _region_tiles(region, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping tiles of a synthetic region as the mapper sees it (DEM warped onto the RGB grid):
    every tile with scars, and as many scar-free ones drawn at random."""
    rgb = open_mosaic(str(region.rgb))
    dem = read_window(open_mosaic(str(region.dem)), Grid.from_dataarray(rgb))
    stack = np.concatenate([rgb.values.astype(np.float32), dem])
    with rasterio.open(region.truth) as src:
        truth = src.read(1).astype(np.float32)
    corners = [
        (row, col)
        for row in range(0, truth.shape[0] - TILE + 1, STRIDE)
        for col in range(0, truth.shape[1] - TILE + 1, STRIDE)
    ]
    x = np.stack([stack[:, r : r + TILE, c : c + TILE] for r, c in corners])
    y = np.stack([truth[None, r : r + TILE, c : c + TILE] for r, c in corners])
    scarred = y.mean(axis=(1, 2, 3)) > 0.005
    rng = np.random.default_rng(seed)
    negatives = rng.choice(np.flatnonzero(~scarred), scarred.sum(), replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(scarred), negatives]))
    return x[keep], y[keep]


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory) -> str:
    """A small U-Net trained in-process on tiles of a synthetic region; returns its bundle URI.

    Tiles cut from a region (not chips) give the model the DEM as the mapper delivers it: warped
    from the DEM's own grid. A plain loop keeps this fixture fast; Ray Train is tested in
    test_train.py. The region (seed 9) is a different world from every region the tests map.
    """
    root = tmp_path_factory.mktemp("trained")
    region = write_region(root / "region", size=1024, seed=9, event=2)
    tiles, labels = _region_tiles(region, seed=0)
    mean, std = tiles.mean(axis=(0, 2, 3)), tiles.std(axis=(0, 2, 3))
    x = torch.from_numpy(normalize(tiles, mean, std)).float()
    y = torch.from_numpy(labels)

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
        tile_size=TILE,
        resolution_m=1.0,
    )
    return save_bundle(bundle, str(root / "model"))
