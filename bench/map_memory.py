"""Peak memory of `lsmap map` for a region and one 16x its area (issue: bounded memory), and
with ``--naive`` of the usual window loop (bench/naive_mapper.py) on the same regions and model.

Each map runs in its own process with its own local Ray cluster; the peak is the proportional set
size of that process and every Ray process under it (GCS, raylet, workers, object store), sampled
every 0.25 s. Goal: the larger region's peak is at most 1.2x the smaller one's. The loop holds
the whole mosaic in memory, so its peak grows with the area; from its two peaks the script
derives the bytes it adds per pixel and the area above which it needs more memory than lsmap.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import ROOT, random_bundle, record, run_measured

OVERLAP = 32  # lsmap's default for the 64 px model below: half a tile


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
    parser.add_argument(
        "--naive", action="store_true", help="also measure the window loop (2 threads)"
    )
    args = parser.parse_args()

    from pipelines.synthetic.writers import write_region

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_uri = random_bundle(work / "model", "unetpp_ca", base_width=8, tile=64, depth=3)
        rows, loop_rows = [], []
        for size in (args.size, args.size * args.factor):
            region = work / f"region{size}"
            write_region(region, size=size, seed=1)
            inputs = ["--rgb", str(region / "rgb.tif"), "--dem", str(region / "dem.tif")]
            command = [sys.executable, "-m", "pipelines", "map", "--model", model_uri, *inputs]
            command += ["--out", str(work / f"map{size}"), "--chunk", str(args.chunk)]
            command += ["--workers", str(args.workers), "--quiet", "--no-quicklook"]
            seconds, peak = run_measured(
                command, env={"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
            )
            rows.append((size, seconds, peak))
            if args.naive:
                loop = [sys.executable, str(ROOT / "bench" / "naive_mapper.py"), *inputs]
                loop += ["--model", model_uri, "--out", str(work / f"loop{size}.tif")]
                loop += ["--overlap", str(OVERLAP), "--threads", "2"]
                loop_rows.append(run_measured(loop))
    small, large = rows[0][2], rows[1][2]
    table = "| region (px) | area ratio | wall (s) | peak memory (GiB) |"
    table += " window loop wall (s) | window loop peak (GiB) |" if loop_rows else ""
    table += "\n|---|---|---|---|" + ("---|---|" if loop_rows else "") + "\n"
    for index, (size, seconds, peak) in enumerate(rows):
        table += f"| {size} x {size} | {(size / args.size) ** 2:.0f}x | {seconds:.1f} | "
        table += f"{peak / 2**30:.2f} |"
        if loop_rows:
            table += f" {loop_rows[index][0]:.1f} | {loop_rows[index][1] / 2**30:.2f} |"
        table += "\n"
    notes = (
        f"Peak ratio (large / small): **{large / small:.2f}** (goal <= 1.20). "
        f"chunk {args.chunk}, {args.workers} inference actors, U-Net++ CA base 8, 64 px tiles."
    )
    if loop_rows:
        (_, loop_small), (_, loop_large) = loop_rows
        sizes = [size for size, _, _ in rows]
        per_pixel = (loop_large - loop_small) / (sizes[1] ** 2 - sizes[0] ** 2)
        crossover = sizes[1] ** 2 + (large - loop_large) / per_pixel
        notes += (
            f" Window loop: overlap {OVERLAP} as lsmap, 2 threads; peak ratio "
            f"{loop_large / loop_small:.2f}; it adds {per_pixel:.1f} bytes per pixel of region "
            f"(two float32 mosaics are 8), so above about {crossover / 1e6:,.0f} Mpx "
            f"({crossover**0.5:,.0f} px square), extrapolated from these two sizes, it needs "
            f"more memory than lsmap did at {sizes[1]} x {sizes[1]}."
        )
    record("Mapping memory: region vs 16x region", table, notes)


if __name__ == "__main__":
    main()
