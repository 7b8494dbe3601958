"""Tile a unit's window, run the model in fixed-size batches, and blend tiles back into one map.

A unit's tiles are always cut into the same batches, and tiles are blended with ``fold``, whose
per-pixel summation order depends only on where a pixel sits in its tiles: a unit's output is a
function of its inputs alone, whichever actor computes it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from lsmodel.bundle import ModelBundle
from pipelines.mapping.plan import PRECISIONS, TileLayout


class TilePredictor:
    """A model loaded once (per Ray actor), predicting landslide probability for unit windows."""

    def __init__(
        self,
        bundle: ModelBundle,
        layout: TileLayout,
        batch_size: int = 16,
        device: str = "cpu",
        precision: str = "fp32",
        static_shapes: bool | None = None,
    ) -> None:
        """``precision``: one of ``PRECISIONS``. ``static_shapes``: pad a unit's last batch so
        every forward pass has one shape (cuDNN plans once); default on for CUDA, off on CPU where
        padding only costs."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.layout = layout
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.model = bundle.build().to(self.device).to(memory_format=torch.channels_last)
        self.model.eval()
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        self.static_shapes = self.device.type == "cuda" if static_shapes is None else static_shapes
        self.weights = torch.from_numpy(layout.weights()).to(self.device)

    @torch.inference_mode()
    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Probabilities (H, W) float32 for a normalised window (C, H, W) that holds whole tiles."""
        tile, stride = self.layout.tile, self.layout.stride
        channels, height, width = window.shape
        x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)).to(self.device)
        tiles = x.unfold(1, tile, stride).unfold(2, tile, stride)  # C, ny, nx, T, T
        ny, nx = tiles.shape[1:3]
        tiles = tiles.permute(1, 2, 0, 3, 4).reshape(ny * nx, channels, tile, tile)
        probs = torch.cat([self._predict(batch) for batch in tiles.split(self.batch_size)])
        weighted = (probs[:, 0] * self.weights).reshape(ny * nx, tile * tile).T[None]
        ones = self.weights.reshape(tile * tile, 1).expand(-1, ny * nx)[None]
        fold = {"output_size": (height, width), "kernel_size": tile, "stride": stride}
        blended = F.fold(weighted, **fold) / F.fold(ones, **fold)
        return blended[0, 0].float().cpu().numpy()

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        if count < self.batch_size and self.static_shapes:
            padding = batch.new_zeros((self.batch_size - count, *batch.shape[1:]))
            batch = torch.cat([batch, padding])
        batch = batch.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            logits = self.model(batch)
        return torch.sigmoid(logits.float())[:count]
