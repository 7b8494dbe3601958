"""Model cost table: parameters, GFLOPs per tile and measured milliseconds per tile, per architecture.

The six architectures of the paper's comparison and the per-pixel baseline, with random weights,
in eval and inference mode with channels_last tensors (what the mapper runs). Time is the median
of ``--repeats`` batches after one untimed warm-up batch (``lsmodel.cost.time_forward``).
"""

from __future__ import annotations

import argparse

from _common import record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from lsmodel.cost import model_cost, time_forward
    from lsmodel.models import ARCHITECTURES, BASELINES, build_model

    torch.set_num_threads(args.threads)
    table = (
        "| architecture | parameters | GFLOPs per tile | ms per tile | tiles/s | GFLOP/s |\n"
        "|---|---|---|---|---|---|\n"
    )
    for arch in [*ARCHITECTURES, *BASELINES]:
        cost = model_cost(arch, args.tile, 4, args.base_width, args.depth)
        torch.manual_seed(0)
        model = build_model(arch, 4, args.base_width, args.depth)
        ms = time_forward(model, args.tile, args.batch, args.repeats)
        row = (
            f"| {arch} | {cost['params']:,} | {cost['gflops']:.3f} | {ms:.1f} | "
            f"{1000 / ms:.1f} | {cost['gflops'] * 1000 / ms:.0f} |"
        )
        print(row, flush=True)
        table += row + "\n"
    record(
        "Model cost per architecture",
        table,
        f"{args.tile} x {args.tile} px tiles, 4 bands, base width {args.base_width}, depth "
        f"{args.depth}, batch {args.batch}, {args.threads} torch threads, channels_last, "
        f"inference mode, median of {args.repeats} batches after a warm-up batch; torch "
        f"{torch.__version__}. GFLOPs count 2 per multiply-add in convolutions and matrix "
        "products (torch's FlopCounterMode); `pixel` is the per-pixel baseline outside the "
        "paper's comparison.",
    )


if __name__ == "__main__":
    main()
