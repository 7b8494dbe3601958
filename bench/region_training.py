"""Training from a region: windows streamed from the mosaics by Ray Data against the same windows
already in memory.

Both runs train the same model on the same region, with the same seeded windows per epoch, the
same workers, batch and validation tiles, through the same Ray Train loop
(:func:`pipelines.training.run.fit`). The streamed run reads every window in Ray Data tasks as
`lsmap train --region` does; the in-memory run first reads them all into Ray's object store
(``Dataset.materialize``), so its epochs cost the training alone. How CPUs are shared: each Ray
Train worker holds one logical CPU (torch runs one thread in it); window reads ask for no logical
CPU and run at most ``READ_TASKS`` at once per dataset, on whatever cores the workers leave idle.

Steady state excludes start-up: the median over epochs 2..N of the seconds from one epoch's end
to the next (training pass, validation, checkpoint). The runs alternate (streamed, in memory,
streamed) to bracket drift in the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import record


def epoch_seconds(history: list[dict]) -> float:
    """Median seconds between the ends of consecutive epochs, epochs 2..N."""
    ends = [entry["finished_at"] for entry in history]
    return statistics.median(b - a for a, b in zip(ends, ends[1:], strict=False))


def run(config, plan, in_memory: bool) -> float:
    from pipelines.training.region import region_datasets
    from pipelines.training.run import fit
    from pipelines.training.worker import WorkerInputs

    datasets = region_datasets(config, plan)
    if in_memory:
        datasets = {
            name: (dataset() if callable(dataset) else dataset).materialize()
            for name, dataset in datasets.items()
        }
    state = fit(config, WorkerInputs(config, plan.stats), datasets, None, 0)
    return epoch_seconds(state.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="region side in pixels (1 m)")
    parser.add_argument("--window", type=int, default=64, help="model window in pixels")
    parser.add_argument("--windows", type=int, default=256, help="training windows per epoch")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--base-width", type=int, default=8)
    args = parser.parse_args()

    from dataclasses import replace

    from pipelines.ray_runtime import init_ray
    from pipelines.regional.dataset import READ_TASKS
    from pipelines.synthetic.writers import write_region
    from pipelines.training import TrainConfig
    from pipelines.training.region import plan_region

    init_ray(num_cpus=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        region = write_region(Path(tmp) / "region", args.size, seed=0)
        config = TrainConfig(
            region=str(region.layers),
            out=str(Path(tmp) / "run"),
            arch="unetpp_ca",
            loss="bce+dice",
            epochs=args.epochs,
            workers=args.workers,
            batch_size=args.batch_size,
            lr=1e-3,
            size=args.window,
            base_width=args.base_width,
            depth=3,
            dropout=0.1,
            windows_per_epoch=args.windows,
        )
        config, plan = plan_region(config)
        seconds = {"streamed": [], "in memory": []}
        for k, in_memory in enumerate((False, True, False)):
            out = str(Path(tmp) / f"run-{k}")
            seconds["in memory" if in_memory else "streamed"].append(
                run(replace(config, out=out), plan, in_memory)
            )
    streamed = statistics.mean(seconds["streamed"])
    memory = seconds["in memory"][0]
    table = "\n".join(
        [
            "| windows | epoch s (median, epochs 2..N) |",
            "|---|---|",
            f"| streamed by Ray Data (2 runs) | {' / '.join(f'{s:.2f}' for s in seconds['streamed'])} |",
            f"| in memory | {memory:.2f} |",
            f"| ratio streamed / in memory | **{streamed / memory:.3f}** (goal <= 1.15) |",
        ]
    )
    notes = (
        f"{args.size} px synthetic region, {args.windows} windows of {args.window} px per epoch, "
        f"{args.epochs} epochs, unetpp_ca base {args.base_width} depth 3, batch "
        f"{args.batch_size} per worker, {args.workers} Ray Train workers of one logical CPU "
        f"each; window reads ask for no logical CPU, at most {READ_TASKS} at once per dataset."
    )
    record("Training from a region: streamed windows vs in memory", table, notes)


if __name__ == "__main__":
    main()
