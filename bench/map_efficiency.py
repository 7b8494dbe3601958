"""Mapping throughput: `lsmap map` against the model-only floor and the usual window loop.

- floor: the same model's forward pass over the region's tiles (same count, batch size and
  threads), data already in memory: what mapping would cost if reading, warping, blending, writing
  and orchestration were free.
- lsmap: `lsmap map` end to end in a fresh process (Ray start-up included), ramp and crop blends.
- naive: bench/naive_mapper.py, a sequential rasterio window loop stitching into memory.
Every row reports pixels/s, the ratio to the floor, and the peak memory of the whole process tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, record, run_measured


def floor_seconds(model, tiles: int, tile: int, batch: int, threads: int) -> float:
    """Seconds for ``tiles`` forward passes in batches of ``batch`` (one warm-up batch first)."""
    import torch

    torch.set_num_threads(threads)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 4, tile, tile).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        done = 0
        while done < tiles:
            n = min(batch, tiles - done)
            model(x[:n])
            done += n
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048, help="region side in pixels")
    parser.add_argument("--arch", default="unetpp_ca")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="inference actors, one thread each")
    parser.add_argument(
        "--chunk-strides", type=int, default=10, help="chunk = this many tile strides"
    )
    args = parser.parse_args()

    import torch

    from lsmodel.bundle import ModelBundle
    from lsmodel.models import build_model
    from pipelines.bundles import save_bundle
    from pipelines.mapping.plan import MapPlan, TileLayout
    from pipelines.raster import Grid, open_mosaic
    from pipelines.synthetic.writers import write_region

    threads = args.workers
    stride = args.tile - args.overlap
    chunk = stride * args.chunk_strides
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        region = work / "region"
        write_region(region, size=args.size, seed=1)
        torch.manual_seed(0)
        model = build_model(args.arch, base_width=args.base_width, dropout=0.0)
        bundle = ModelBundle.from_model(
            model,
            bands=["red", "green", "blue", "elevation"],
            tile_size=args.tile,
            resolution_m=1.0,
            norm_mean=[110.0, 110.0, 100.0, 1500.0],
            norm_std=[40.0, 40.0, 40.0, 300.0],
        )
        model_uri = save_bundle(bundle, str(work / "model"))
        grid = Grid.from_dataarray(open_mosaic(str(region / "rgb.tif")))
        pixels = grid.height * grid.width

        layout = TileLayout(args.tile, args.overlap)
        unique_tiles = layout.count(grid.height) * layout.count(grid.width)
        floor = floor_seconds(bundle.build(), unique_tiles, args.tile, args.batch_size, threads)
        rows = [("model-only floor", floor, None, unique_tiles, None)]

        for blend in ("ramp", "crop"):
            plan = MapPlan(grid, chunk, TileLayout(args.tile, args.overlap, blend))
            tiles = sum(
                ((u.read[2] - args.tile) // stride + 1) * ((u.read[3] - args.tile) // stride + 1)
                for u in map(plan.unit, range(len(plan)))
            )
            out = work / f"map-{blend}"
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
                str(out),
                "--chunk",
                str(chunk),
                "--blend",
                blend,
                "--overlap",
                str(args.overlap),
                "--batch-size",
                str(args.batch_size),
                "--workers",
                str(args.workers),
                "--quiet",
                "--no-quicklook",
            ]
            seconds, peak = run_measured(
                command, env={"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
            )
            timings = json.loads((out / "manifest.json").read_text())["timings_s"]
            rows.append((f"lsmap map, {blend} blend", seconds, peak, tiles, timings))

        command = [
            sys.executable,
            str(ROOT / "bench" / "naive_mapper.py"),
            "--model",
            model_uri,
            "--rgb",
            str(region / "rgb.tif"),
            "--dem",
            str(region / "dem.tif"),
            "--out",
            str(work / "naive.tif"),
            "--batch-size",
            str(args.batch_size),
            "--overlap",
            str(args.overlap),
            "--threads",
            str(threads),
        ]
        seconds, peak = run_measured(command)
        rows.append(("naive window loop (rasterio)", seconds, peak, unique_tiles, None))

    table = (
        "| pipeline | wall (s) | Mpx/s | vs floor | tiles computed | peak memory (GiB) | stage CPU-seconds (read / infer / write) |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    for name, seconds, peak, tiles, timings in rows:
        memory = f"{peak / 2**30:.2f}" if peak else "-"
        stages = (
            f"{timings['read_s']:.1f} / {timings['infer_s']:.1f} / {timings['write_s']:.1f}"
            if timings
            else "-"
        )
        table += (
            f"| {name} | {seconds:.1f} | {pixels / seconds / 1e6:.3f} | {floor / seconds:.2f} "
            f"| {tiles} | {memory} | {stages} |\n"
        )
    naive = rows[-1][1]
    best = min(r[1] for r in rows[1:-1])
    record(
        "Mapping throughput vs the model-only floor and the usual window loop",
        table,
        f"{args.size} x {args.size} px region, {args.arch} base {args.base_width}, {args.tile} px "
        f"tiles, overlap {args.overlap}, batch {args.batch_size}, {args.workers} actors x 1 thread "
        f"(floor and naive loop: {threads} threads), chunk {chunk}. lsmap (best blend) vs naive: "
        f"**{naive / best:.2f}x** pixels/s.",
    )


if __name__ == "__main__":
    main()
