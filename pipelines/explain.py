"""Grad-CAM figures for chips: image, DEM, truth, prediction and heat map side by side (Fig. 6)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch

from lsmodel.bundle import ModelBundle
from lsmodel.explain import grad_cam
from pipelines import storage
from pipelines.bands import BASE_BANDS, RGB_BANDS
from pipelines.chips import ChipRecord, load_chip
from pipelines.evaluate import bundle_dataset
from pipelines.layers import stack_from_bands

PANELS = ("image", "DEM", "ground truth", "prediction", "Grad-CAM")


def select_chips(records: Sequence[ChipRecord], count: int) -> list[ChipRecord]:
    """The first ``count`` chips, landslide chips first (the ones a heat map is about)."""
    return sorted(records, key=lambda r: not r.landslide)[:count]


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) raw bands as an (H, W, 3) image in [0, 1], 2-98 % stretch over all bands."""
    low, high = np.percentile(rgb, (2, 98))
    return np.clip((rgb - low) / max(high - low, 1e-6), 0, 1).transpose(1, 2, 0)


def render_panels(
    stack: np.ndarray,
    truth: np.ndarray,
    prob: np.ndarray,
    cam: np.ndarray,
    threshold: float,
    title: str,
) -> bytes:
    """One PNG: RGB, DEM, truth mask, predicted mask and the Grad-CAM heat map over the image.

    ``stack`` is the raw (4, H, W) chip (or (3, H, W): a chip without a DEM), ``truth`` its 0/1
    mask, ``prob`` the landslide probability and ``cam`` the heat map in [0, 1].
    """
    from matplotlib.figure import Figure

    image = _stretch(stack[:3])
    figure = Figure(figsize=(3 * len(PANELS), 3.4), dpi=100)
    axes = figure.subplots(1, len(PANELS))
    axes[0].imshow(image)
    if len(stack) > 3:
        dem = axes[1].imshow(stack[3], cmap="terrain")
        figure.colorbar(dem, ax=axes[1], fraction=0.046, pad=0.02)
    else:
        axes[1].text(0.5, 0.5, "no DEM", ha="center", va="center", transform=axes[1].transAxes)
    axes[2].imshow(truth, cmap="gray", vmin=0, vmax=1)
    axes[3].imshow(prob >= threshold, cmap="gray", vmin=0, vmax=1)
    axes[4].imshow(image.mean(axis=2), cmap="gray")
    heat = axes[4].imshow(cam, cmap="jet", vmin=0, vmax=1, alpha=0.5)
    figure.colorbar(heat, ax=axes[4], fraction=0.046, pad=0.02)
    for ax, name in zip(axes, PANELS, strict=True):
        ax.set_title(name)
        ax.set_axis_off()
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _iou(pred: np.ndarray, truth: np.ndarray) -> float | None:
    union = np.count_nonzero(pred | truth)
    return np.count_nonzero(pred & truth) / union if union else None


def explain_chips(
    bundle: ModelBundle,
    records: Sequence[ChipRecord],
    out: str,
    layer: str | None = None,
    batch_size: int = 8,
) -> list[str]:
    """Write one Grad-CAM figure per chip to ``out`` (local or s3://); returns the PNG URIs.

    The heat map explains the landslide logit summed over the predicted landslide pixels (the
    whole chip where none is predicted), at ``layer`` or the model's default Grad-CAM layer.
    """
    model = bundle.build()
    dataset = bundle_dataset(bundle, records)
    written = []
    for start in range(0, len(records), batch_size):
        batch = range(start, min(start + batch_size, len(records)))
        x = torch.stack([dataset[i][0] for i in batch])
        with torch.no_grad():
            probs = torch.sigmoid(model(x))[:, 0].numpy()
        cams = grad_cam(model, x, layer=layer).numpy()
        for k, i in enumerate(batch):
            record = records[i]
            panels = stack_from_bands(RGB_BANDS if record.dem is None else BASE_BANDS)
            stack, truth = load_chip(record, bundle.tile_size, panels)
            iou = _iou(probs[k] >= bundle.threshold, truth > 0)
            title = record.name + ("" if iou is None else f"  (landslide IoU {iou:.2f})")
            png = render_panels(stack, truth, probs[k], cams[k], bundle.threshold, title)
            uri = storage.join(out, record.name.replace("/", "_") + ".png")
            storage.write_bytes(uri, png)
            written.append(uri)
    return written
