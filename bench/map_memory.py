"""Peak memory of `lsmap map` for a region and one 16x its area (issue: bounded memory).

Each map runs in its own process with its own local Ray cluster; the peak is the proportional set
size of that process and every Ray process under it (GCS, raylet, workers, object store), sampled
every 0.25 s. Goal: the larger region's peak is at most 1.2x the smaller one's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import record, run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="side of the small region in pixels")
    parser.add_argument(
        "--factor",
        type=int,
        default=4,
        help="side ratio of the large region (area ratio = factor^2)",
    )
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import torch

    from lsmodel.bundle import ModelBundle
    from lsmodel.models import build_model
    from pipelines.bundles import save_bundle
    from pipelines.synthetic.writers import write_region

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        model = build_model("unetpp_ca", base_width=8, depth=3, dropout=0.0)
        bundle = ModelBundle.from_model(
            model,
            bands=["red", "green", "blue", "elevation"],
            tile_size=64,
            resolution_m=1.0,
            norm_mean=[110.0, 110.0, 100.0, 1500.0],
            norm_std=[40.0, 40.0, 40.0, 300.0],
        )
        model_uri = save_bundle(bundle, str(work / "model"))
        rows = []
        for size in (args.size, args.size * args.factor):
            region = work / f"region{size}"
            write_region(region, size=size, seed=1)
            command = [
                sys.executable,
                "-m",
                "pipelines",
                "map",
                "--model",
                model_uri,
                "--rgb",
                str(region / "rgb.tif"),
                "--dem",
                str(region / "dem.tif"),
                "--out",
                str(work / f"map{size}"),
                "--chunk",
                str(args.chunk),
                "--workers",
                str(args.workers),
                "--quiet",
                "--no-quicklook",
            ]
            seconds, peak = run_measured(
                command, env={"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
            )
            rows.append((size, seconds, peak))
    small, large = rows[0][2], rows[1][2]
    table = "| region (px) | area ratio | wall (s) | peak memory (GiB) |\n|---|---|---|---|\n"
    table += "\n".join(
        f"| {s} x {s} | {(s / args.size) ** 2:.0f}x | {t:.1f} | {p / 2**30:.2f} |"
        for s, t, p in rows
    )
    ratio = large / small
    record(
        "Mapping memory: region vs 16x region",
        table,
        f"Peak ratio (large / small): **{ratio:.2f}** (goal <= 1.20). "
        f"chunk {args.chunk}, {args.workers} inference actors, U-Net++ CA base 8, 64 px tiles.",
    )


if __name__ == "__main__":
    main()
