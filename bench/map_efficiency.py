"""Mapping throughput: `lsmap map` against the model-only floor and the usual window loop.

- floor: the same model's forward pass over the region's tiles (same count, batch size and
  threads), data already in memory: what mapping would cost if reading, warping, blending, writing
  and orchestration were free.
- lsmap: ``map_region`` (what `lsmap map` runs) end to end in a fresh process with its own local
  Ray cluster (start-up included), through bench/_map_profile.py, for each blend.
- naive: bench/naive_mapper.py, a sequential rasterio window loop stitching into memory.
Every row reports pixels/s, the ratio to the floor, and the peak memory of the whole process tree.

The stage break-down of each lsmap run needs no change to the mapper: phases from Ray's task
timeline (actor start, the actors' batches = read + warp + infer + blend + write), the
per-unit CPU-seconds in the manifest (read + warp, infer, write), and the model's share of infer
from a one-thread floor measured here. "Actors vs floor" (the floor over the span in which the
actors work) is what the ratio tends to as the region grows, if the other phases stop adding up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, random_bundle, record, run_measured


def floor_seconds(
    model, tiles: int, tile: int, batch: int, threads: int, precision: str = "fp32"
) -> float:
    """Seconds for ``tiles`` forward passes in batches of ``batch`` (one warm-up batch first)."""
    import torch

    torch.set_num_threads(threads)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 4, tile, tile).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
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
    parser.add_argument(
        "--blends",
        nargs="*",
        default=["ramp", "crop"],
        choices=["ramp", "crop"],
        help="one lsmap run per blend; none: only the floor and the naive loop",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="forward pass of the floor and of lsmap (`lsmap map --precision`)",
    )
    parser.add_argument(
        "--naive",
        nargs="*",
        choices=["fp32", "bf16"],
        default=None,
        help="precisions of the window loop runs (default: --precision); none: no window loop",
    )
    args = parser.parse_args()

    from pipelines.bundles import load_bundle
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
        model_uri = random_bundle(work / "model", args.arch, args.base_width, args.tile)
        bundle = load_bundle(model_uri)
        grid = Grid.from_dataarray(open_mosaic(str(region / "rgb.tif")))
        pixels = grid.height * grid.width

        layout = TileLayout(args.tile, args.overlap)
        unique_tiles = layout.count(grid.height) * layout.count(grid.width)
        floor = floor_seconds(
            bundle.build(), unique_tiles, args.tile, args.batch_size, threads, args.precision
        )
        # The model's CPU-seconds per tile on one thread, as each actor runs it: splits an actor's
        # infer time into the forward passes and the tiling and blending around them.
        sample = min(unique_tiles, 3 * args.batch_size)
        per_tile_1 = (
            floor_seconds(bundle.build(), sample, args.tile, args.batch_size, 1, args.precision)
            / sample
        )
        rows = [("model-only floor", floor, None, unique_tiles, None)]
        # The same floor as the actors run it, one thread per core, with no threads to wait for
        # each other: on a busy machine two OpenMP threads can lose far more than the other rows.
        ideal = unique_tiles * per_tile_1 / args.workers
        phases = {}

        for blend in args.blends:
            plan = MapPlan(grid, chunk, TileLayout(args.tile, args.overlap, blend))
            tiles = sum(
                ((u.read[2] - args.tile) // stride + 1) * ((u.read[3] - args.tile) // stride + 1)
                for u in map(plan.unit, range(len(plan)))
            )
            out = work / f"map-{blend}"
            report = work / f"profile-{blend}.json"
            command = [
                sys.executable,
                str(ROOT / "bench" / "_map_profile.py"),
                "--model",
                model_uri,
                "--rgb",
                str(region / "rgb.tif"),
                "--dem",
                str(region / "dem.tif"),
                "--out",
                str(out),
                "--report",
                str(report),
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
                "--precision",
                args.precision,
            ]
            _, peak = run_measured(command, env={"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"})
            exited = time.time()
            profile = json.loads(report.read_text())
            # Wall from the process start to its exit, less the timeline dump (profiling only).
            seconds = exited - profile["created"] - profile["dump_s"]
            profile |= {"wall": seconds, "exit_s": exited - profile["created"], "tiles": tiles}
            phases[blend] = profile
            timings = profile["timings_s"]
            rows.append((f"lsmap map, {blend} blend", seconds, peak, tiles, timings))

        naive = [args.precision] if args.naive is None else args.naive
        for precision in naive:
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
                "--precision",
                precision,
            ]
            seconds, peak = run_measured(command)
            rows.append(
                (f"naive window loop (rasterio), {precision}", seconds, peak, unique_tiles, None)
            )

    table = (
        "| pipeline | wall (s) | Mpx/s | vs floor | tiles computed | peak memory (GiB) | stage seconds summed over units (read / infer / write) |\n"
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
    table += (
        f"| model-only floor, {args.workers} x 1 thread (from {sample} tiles) | {ideal:.1f} | "
        f"{pixels / ideal / 1e6:.3f} | {floor / ideal:.2f} | {unique_tiles} | - | - |\n"
    )
    notes = (
        f"{args.size} x {args.size} px region, {args.arch} base {args.base_width}, "
        f"{args.precision} (floor and lsmap), {args.tile} px "
        f"tiles, overlap {args.overlap}, batch {args.batch_size}, {args.workers} actors x 1 thread "
        f"(floor and naive loop: {threads} threads), chunk {chunk}."
    )
    if phases:
        stages, summary = breakdown(phases, floor, per_tile_1)
        table += "\n" + stages
        best = min(profile["wall"] for profile in phases.values())
        notes += (
            " unit-s: per-unit wall seconds inside a stage, summed; model forward = tiles x "
            f"{per_tile_1 * 1000:.0f} ms, the one-thread forward pass per tile measured here; "
            "phases come from Ray's task timeline (bench/_map_profile.py). "
            + summary
            + f" Best lsmap run vs the {args.workers} x 1-thread floor: **{ideal / best:.2f}**."
        )
        for name, seconds, *_ in rows:
            if name.startswith("naive"):
                notes += f" lsmap (best blend) vs {name}: **{seconds / best:.2f}x** pixels/s."
    record("Mapping throughput vs the model-only floor and the usual window loop", table, notes)


def breakdown(phases: dict, floor: float, per_tile_1: float) -> tuple[str, str]:
    """The stage break-down table (one column per lsmap run), and a line on what it shows."""
    blends = list(phases)
    lines = [
        "| stage | " + " | ".join(f"lsmap {blend}" for blend in blends) + " |",
        "|---|" + "---|" * len(blends),
    ]

    def row(name: str, values: dict) -> None:
        lines.append(f"| {name} | " + " | ".join(values[b] for b in blends) + " |")

    def wall(key_or_fn) -> dict:
        return {b: f"{key_or_fn(phases[b]):.1f}" for b in blends}

    row("wall s, interpreter and imports", wall(lambda p: p["imports_s"]))
    row("wall s, Ray start", wall(lambda p: p["ray_init_s"]))
    row(
        "wall s, plan, store, Ray Data and actors start, to the first batch",
        wall(lambda p: p["infer_first_start"]),
    )
    row(
        "wall s, actors' batches, first to last (read + infer + blend + write)",
        wall(lambda p: p["infer_last_end"] - p["infer_first_start"]),
    )
    row(
        "wall s, after the last batch: finalize (manifest)",
        wall(lambda p: p["map_s"] - p["infer_last_end"]),
    )
    row(
        "wall s, Ray shutdown and exit",
        wall(lambda p: p["exit_s"] - p["dump_s"] - p["imports_s"] - p["ray_init_s"] - p["map_s"]),
    )
    row("wall s, total", wall(lambda p: p["wall"]))
    row("unit-s, read + warp", wall(lambda p: p["timings_s"]["read_s"]))
    row("unit-s, model forward (est.)", wall(lambda p: p["tiles"] * per_tile_1))
    row(
        "unit-s, tile + blend + waiting for a core (infer - model)",
        wall(lambda p: p["timings_s"]["infer_s"] - p["tiles"] * per_tile_1),
    )
    row("unit-s, write chunk + marker", wall(lambda p: p["timings_s"]["write_s"]))
    row("actor-s, busy in batches", wall(lambda p: p["infer_busy_s"]))
    actors = {b: floor / (p["infer_last_end"] - p["infer_first_start"]) for b, p in phases.items()}
    row("actors vs floor", {b: f"{v:.2f}" for b, v in actors.items()})
    best = max(actors, key=actors.get)
    p = phases[best]
    outside = p["wall"] - (p["infer_last_end"] - p["infer_first_start"])
    note = (
        f"Of the {best} run's {p['wall']:.0f} s, the actors' batches took "
        f"{p['infer_last_end'] - p['infer_first_start']:.0f} s ({actors[best]:.2f} of the floor's "
        f"speed); {outside:.0f} s went to start-up, finalize and shutdown."
    )
    return "\n".join(lines) + "\n", note


if __name__ == "__main__":
    main()
