"""What a model costs: parameters, FLOPs per tile, and measured forward time per tile."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lsmodel.models import build_model


def model_cost(
    arch: str, tile: int = 128, in_channels: int = 4, base_width: int = 32, depth: int = 4
) -> dict[str, float]:
    """Parameter count and GFLOPs for one ``tile`` x ``tile`` forward pass of ``arch``.

    FLOPs follow torch's FlopCounterMode (2 per multiply-add in convolutions and matrix products;
    normalisation, activations, pooling and upsampling are not counted). Shapes are traced on the
    meta device, so nothing is computed or allocated.
    """
    with torch.device("meta"):
        model = build_model(arch, in_channels, base_width, depth).eval()
        x = torch.empty(1, in_channels, tile, tile)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": counter.get_total_flops() / 1e9,
    }


def time_forward(
    model: nn.Module, tile: int = 128, batch: int = 16, repeats: int = 5, precision: str = "fp32"
) -> float:
    """Median milliseconds per tile of batched inference on the model's device.

    ``model`` comes from ``build_model`` (its ``in_channels`` sizes the random input). Runs in eval
    and inference mode with channels_last tensors (1.5-2x faster on CPU), in ``precision``: fp32,
    or bf16 autocast as ``lsmap map --precision bf16`` runs it. The model is left in eval mode and
    channels_last memory format. One untimed warm-up batch comes first.
    """
    if repeats < 1 or batch < 1:
        raise ValueError(f"batch and repeats must be >= 1, got {batch} and {repeats}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    param = next(model.parameters())
    model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, model.in_channels, tile, tile, device=param.device, dtype=param.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if param.device.type == "cuda" else lambda: None
    autocast = torch.autocast(param.device.type, torch.bfloat16, enabled=precision == "bf16")
    times = []
    with torch.inference_mode(), autocast:
        for run in range(repeats + 1):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if run:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / batch
