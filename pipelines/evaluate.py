"""Scoring a model bundle on chips: mIoU, AUC, precision, recall, F1 and accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from lsmodel.bundle import ModelBundle
from lsmodel.metrics import SegmentationMetrics
from pipelines.chips import SPLITS, ChipDataset, ChipRecord, scan_bijie, split_records
from pipelines.errors import InputError
from pipelines.layers import stack_for_bundle

TABLE_METRICS = ("miou", "auc", "precision", "recall", "f1", "accuracy")
SPLIT_CHOICES = (*SPLITS, "all")


@torch.no_grad()
def score_model(
    model: nn.Module,
    dataset: ChipDataset,
    threshold: float = 0.5,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> SegmentationMetrics:
    """Metric counts of ``model`` (logits out) over every chip of ``dataset``."""
    model = model.to(device).eval()
    metrics = SegmentationMetrics(threshold)
    for x, y in DataLoader(dataset, batch_size=batch_size):
        metrics.update(torch.sigmoid(model(x.to(device))), y)
    return metrics


def bundle_split(bundle: ModelBundle, data: str | Path, split: str) -> list[ChipRecord]:
    """The chips of ``split`` as the bundle's training run drew them (``all``: every chip).

    The run's split seed and fractions travel in ``bundle.metrics["split"]``.
    """
    records = scan_bijie(data)
    if split == "all":
        return records
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    info = bundle.metrics.get("split")
    if not isinstance(info, dict) or "seed" not in info or "fractions" not in info:
        raise InputError(
            f"the model bundle does not record its training split, so --split {split} is "
            "undefined; use --split all"
        )
    return split_records(records, int(info["seed"]), tuple(info["fractions"]))[split]


def bundle_dataset(bundle: ModelBundle, records: Sequence[ChipRecord]) -> ChipDataset:
    """Chips prepared as the bundle expects: its tile size, bands (terrain bands derived with its
    parameters at its resolution) and normalisation."""
    return ChipDataset(
        records,
        bundle.tile_size,
        bundle.norm_mean,
        bundle.norm_std,
        stack_for_bundle(bundle),
        bundle.resolution_m,
    )


def evaluate_bundle(
    bundle: ModelBundle,
    data: str | Path,
    split: str = "test",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metrics of ``bundle`` on a split of the chip directory ``data``, with chip and pixel counts."""
    records = bundle_split(bundle, data, split)
    if not records:
        raise InputError(f"{data}: the {split} split holds no chips")
    metrics = score_model(
        bundle.build(), bundle_dataset(bundle, records), bundle.threshold, batch_size, device
    )
    return {
        "split": split,
        "chips": len(records),
        "pixels": metrics.pixels,
        "threshold": bundle.threshold,
        **metrics.compute(),
    }


def format_table(results: dict[str, Any]) -> str:
    """The six metrics of the paper as an aligned two-column table."""
    lines = [f"{'metric':<10} {'value':>8}"]
    for name in TABLE_METRICS:
        value = results.get(name)
        shown = "n/a" if value is None or value != value else f"{value:.4f}"
        lines.append(f"{name:<10} {shown:>8}")
    return "\n".join(lines)
