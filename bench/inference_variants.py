"""Inference throughput per execution variant: tiles/s and achieved TFLOP/s of one model.

The issue's GPU bench (run it on a GPU machine; it runs on CPU too): the attention U-Net++ at
128 x 128 in fp32, channels_last, bf16 autocast, both, and torch.compile on top of both. FLOPs per
tile come from ``lsmodel.cost.model_cost`` (2 per multiply-add), so TFLOP/s is the work the model
needs, not what the hardware counts. Each variant times ``--repeats`` batches after ``--warmup``
untimed ones (compilation happens there) and reports the median batch.

``measure`` is what the tests call on CPU with a tiny model, so the GPU code paths (autocast,
channels_last, compile) cannot rot on machines without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from dataclasses import dataclass

from _common import record

VARIANTS = ("fp32", "channels_last", "bf16", "bf16_channels_last", "compile")


@dataclass(frozen=True)
class Result:
    variant: str
    ms_per_tile: float

    @property
    def tiles_per_s(self) -> float:
        return 1000 / self.ms_per_tile


def prepare(model, variant: str, device: str, compile_backend: str = "inductor"):
    """``(forward, memory_format)``: ``forward(x)`` runs ``model`` as ``variant`` on ``device``
    (eval, inference mode, autocast where the variant asks) and returns float32 logits."""
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    channels_last = variant in ("channels_last", "bf16_channels_last", "compile")
    bf16 = variant in ("bf16", "bf16_channels_last", "compile")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(device=device, memory_format=memory_format)
    compiled = torch.compile(model, backend=compile_backend) if variant == "compile" else model
    device_type = torch.device(device).type

    def forward(x):
        autocast = (
            torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            return compiled(x.contiguous(memory_format=memory_format)).float()

    return forward, memory_format


def measure(
    model,
    variant: str,
    *,
    device: str,
    tile: int = 128,
    batch: int = 64,
    repeats: int = 10,
    warmup: int = 3,
    compile_backend: str = "inductor",
) -> Result:
    """Median milliseconds per tile of ``model`` run as ``variant`` on ``device``."""
    import torch

    forward, memory_format = prepare(model, variant, device, compile_backend)
    x = torch.randn(batch, model.in_channels, tile, tile, device=device)
    x = x.contiguous(memory_format=memory_format)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    times = []
    for step in range(warmup + repeats):
        sync()
        start = time.perf_counter()
        forward(x)
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return Result(variant, statistics.median(times) * 1000 / batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--arch", default="unetpp_ca")
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on GPU, 16 on CPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--compile-backend", default="inductor")
    args = parser.parse_args()

    import torch

    from lsmodel.cost import model_cost
    from lsmodel.models import build_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch or (256 if device.startswith("cuda") else 16)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    gflops = model_cost(args.arch, args.tile, 4, args.base_width, args.depth)["gflops"]
    hardware = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"

    table = "| variant | ms per tile | tiles/s | TFLOP/s |\n|---|---|---|---|\n"
    for variant in args.variants:
        torch.manual_seed(0)
        model = build_model(args.arch, 4, args.base_width, args.depth)
        result = measure(
            model,
            variant,
            device=device,
            tile=args.tile,
            batch=batch,
            repeats=args.repeats,
            warmup=args.warmup,
            compile_backend=args.compile_backend,
        )
        row = (
            f"| {variant} | {result.ms_per_tile:.3f} | {result.tiles_per_s:,.0f} | "
            f"{gflops * result.tiles_per_s / 1000:.2f} |"
        )
        print(row, flush=True)
        table += row + "\n"
    record(
        f"Inference variants on {hardware}",
        table,
        f"{args.arch} base {args.base_width} depth {args.depth}, {args.tile} px tiles, "
        f"{gflops:.2f} GFLOPs per tile, batch {batch}, median of {args.repeats} batches after "
        f"{args.warmup} warm-up batches; compile = torch.compile ({args.compile_backend}) on "
        f"bf16 autocast + channels_last. torch {torch.__version__}.",
    )


if __name__ == "__main__":
    main()
