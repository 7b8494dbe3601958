"""The synthetic world makes the DEM necessary: RGB + DEM clearly beats RGB alone.

Scars and their look-alikes are drawn alike and differ only in the terrain they lie on, so the
same small U-Net, trained the same way on the same chips, must do better when the DEM is stacked
as a fourth band. If this fails, the world (not this test) needs changing.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from lsmodel.metrics import SegmentationMetrics
from lsmodel.models import build_model
from pipelines.bands import BASE_BANDS, RGB_BANDS
from pipelines.chips import ChipDataset, band_stats, scan_bijie, split_records
from pipelines.synthetic import write_chips

SIZE = 64
EPOCHS = 10
BATCH = 16


@pytest.fixture
def two_threads():
    """Both cores (unless OMP_NUM_THREADS says otherwise: `make test-cpus` runs on one)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    yield
    torch.set_num_threads(saved)


def _tensors(dataset: ChipDataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(xs), torch.stack(ys)


def _train_and_test(
    splits: dict, mean: np.ndarray, std: np.ndarray, bands: tuple[str, ...]
) -> float:
    torch.manual_seed(0)
    # RGB's statistics are the first three of RGB + DEM's.
    mean, std = mean[: len(bands)], std[: len(bands)]
    x_train, y_train = _tensors(ChipDataset(splits["train"], SIZE, mean, std, bands))
    x_test, y_test = _tensors(ChipDataset(splits["test"], SIZE, mean, std, bands))
    model = build_model("unet", in_channels=len(bands), base_width=8, depth=3, dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters())
    steps = EPOCHS * -(-len(x_train) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x_train), generator=order)
        for i in range(0, len(perm), BATCH):
            batch = perm[i : i + BATCH]
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    metrics = SegmentationMetrics()
    with torch.no_grad():
        metrics.update(torch.sigmoid(model(x_test)), y_test)
    return metrics.compute()["miou"]


@pytest.mark.slow
def test_rgb_and_dem_beat_rgb_alone(tmp_path, two_threads) -> None:
    start = time.perf_counter()
    write_chips(tmp_path, 300, size=SIZE, seed=0)
    splits = split_records(scan_bijie(tmp_path), seed=0)
    mean, std = band_stats(splits["train"], SIZE)
    chips_s = time.perf_counter() - start

    with_dem = _train_and_test(splits, mean, std, bands=BASE_BANDS)
    rgb_only = _train_and_test(splits, mean, std, bands=RGB_BANDS)
    print(
        f"\ntest mIoU: RGB+DEM {with_dem:.3f}, RGB only {rgb_only:.3f} "
        f"(chips {chips_s:.1f} s, total {time.perf_counter() - start:.1f} s)"
    )
    assert with_dem > 0.7
    assert with_dem > rgb_only + 0.08
