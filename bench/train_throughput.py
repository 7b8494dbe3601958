"""Training throughput: Ray Train on 2 CPU workers against a plain single-process PyTorch loop.

Both sides train the same model on the same synthetic chips at the same global batch size with the
same core budget: the plain loop uses ``--workers`` torch threads in one process, Ray Train
``--workers`` data-parallel workers (gloo) of one thread each. The plain loop reuses the training
package's own ``train_epoch`` and ``validate``, so an epoch is the same work on both sides
(training pass plus validation). It runs before and after the Ray run, which brackets drift in
the machine's load.

Steady state excludes start-up: the median of the plain loop's epochs 2..N, and of Ray Train's
epochs 2..N from one ``finished_at`` to the next in the run's history, which includes the
per-epoch checkpoint and report that Ray Train adds. Gradient all-reduce is timed on its own (two
gloo processes of one thread reducing a tensor of the model's parameter count): an upper bound on
its share, since DDP overlaps it with the backward pass.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from _common import record


def plain_epochs(
    config, splits, stats, workers: int, threads: int, epochs: int
) -> list[tuple[float, float]]:
    """Wall and CPU seconds of each of ``epochs`` epochs (training pass + validation) of a
    single-process loop with ``workers`` times the per-worker batch, i.e. the same global batch as
    Ray Train."""
    import torch
    from torch.utils.data import DataLoader

    from lsmodel.models import build_model
    from pipelines.chips import BAND_NAMES, ChipDataset
    from pipelines.training.worker import make_loss, train_epoch, validate

    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = build_model(
        config.arch,
        in_channels=len(BAND_NAMES),
        base_width=config.base_width,
        depth=config.depth,
        dropout=config.dropout,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = make_loss(config, stats)
    train_set = ChipDataset(splits["train"], config.size, stats.mean, stats.std)
    val_set = ChipDataset(splits["val"], config.size, stats.mean, stats.std)
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        train_set, batch_size=config.batch_size * workers, shuffle=True, generator=generator
    )
    # Ray Train validates in batches of max(batch, 8) per worker.
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 8) * workers)
    device = torch.device("cpu")
    seconds = []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        train_epoch(model, train_loader, loss_fn, optimizer, device)
        validate(model, val_loader, loss_fn, device, config.threshold)
        seconds.append((time.perf_counter() - start, time.process_time() - cpu))
    return seconds


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of this process and each descendant: the local Ray cluster
    (GCS, raylet, Ray Train's controller and workers) runs under the process that started it."""
    root = psutil.Process()
    usage = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            usage[process.pid] = times.user + times.system
    return usage


class EpochMeter:
    """``progress`` callback for ``train``: the CPU seconds of the process tree at each epoch's
    end, as the driver hears of it."""

    def __init__(self) -> None:
        self.snapshots: list[dict[int, float]] = []

    def __call__(self, line: str) -> None:
        self.snapshots.append(tree_cpu())

    def cpu_between(self, first: int, last: int) -> float:
        """CPU seconds used between two snapshots (processes that ended between are missed)."""
        start, end = self.snapshots[first], self.snapshots[last]
        return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())


def _allreduce_worker(rank: int, port: int, numel: int, repeats: int, result) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    tensor = torch.ones(numel)
    times = []
    for run in range(repeats + 2):  # two untimed warm-up reductions
        start = time.perf_counter()
        dist.all_reduce(tensor)
        if run >= 2:
            times.append(time.perf_counter() - start)
    dist.destroy_process_group()
    if rank == 0:
        result.put(statistics.median(times))


def allreduce_seconds(numel: int, repeats: int = 10) -> float:
    """Median seconds of one gloo all-reduce of ``numel`` float32 between two 1-thread processes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    processes = [
        context.Process(target=_allreduce_worker, args=(rank, port, numel, repeats, result))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    seconds = result.get(timeout=120)
    for process in processes:
        process.join()
    return seconds


def _worker_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--chips", type=int, default=80, help="synthetic chips (train 80%%, val 20%%)"
    )
    parser.add_argument("--size", type=int, default=128, help="chip side in pixels")
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="per Ray Train worker")
    parser.add_argument("--epochs", type=int, default=5, help="per run; epoch 1 is start-up")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers = plain threads")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 is excluded as start-up)")

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ADDRESS", "")
    import ray
    import torch

    from lsmodel.cost import model_cost
    from pipelines.ray_runtime import init_ray
    from pipelines.synthetic.writers import write_chips
    from pipelines.training import TrainConfig
    from pipelines.training.data import TrainingStats, load_splits
    from pipelines.training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_chips(work / "chips", args.chips, args.size, seed=0)
        config = TrainConfig(
            data=str(work / "chips"),
            out=str(work / "ray-out"),
            arch=args.arch,
            epochs=args.epochs,
            workers=args.workers,
            batch_size=args.batch_size,
            size=args.size,
            base_width=args.base_width,
            depth=args.depth,
            split_fractions=(0.8, 0.2, 0.0),  # no test split: nothing to score after training
        )
        splits = load_splits(config.data, config.seed, config.split_fractions)
        stats = TrainingStats.measure(splits["train"], config.size)
        samples = len(splits["train"])

        plain = plain_epochs(config, splits, stats, args.workers, args.workers, args.epochs)

        started = time.time()
        init_ray(num_cpus=args.workers)
        ray_init = time.time() - started
        threads = ray.get(ray.remote(num_cpus=1)(_worker_threads).remote())
        called = time.time()
        meter = EpochMeter()
        result = train(config, progress=meter)
        returned = time.time()
        ray.shutdown()

        plain += plain_epochs(config, splits, stats, args.workers, args.workers, args.epochs)
        # One thread: on a loaded machine, 2 OpenMP threads can be slower than one (each op's
        # barrier waits for a descheduled thread); this row shows whether that happened.
        single, single_cpu = plain_epochs(config, splits, stats, args.workers, 1, 2)[1]

    history = result.state.history
    steady_epochs = plain[1 : args.epochs] + plain[args.epochs + 1 :]
    # Medians: one load spike from elsewhere on the machine must not decide the ratio.
    plain_steady = statistics.median(wall for wall, _ in steady_epochs)
    plain_cpu = statistics.median(cpu for _, cpu in steady_epochs)
    ray_cpu = meter.cpu_between(0, len(meter.snapshots) - 1) / (len(meter.snapshots) - 1)
    finished = [entry["finished_at"] for entry in history]
    ray_epochs = [end - start for start, end in itertools.pairwise(finished)]
    ray_steady = statistics.median(ray_epochs)
    ray_compute = statistics.median(entry["seconds"] for entry in history[1:])
    ray_startup = history[0]["finished_at"] - history[0]["seconds"] - called
    ray_end = returned - history[-1]["finished_at"]
    params = model_cost(args.arch, args.size, 4, args.base_width, args.depth)["params"]
    reduce_s = allreduce_seconds(params)
    steps = -(-samples // (args.workers * args.batch_size))  # optimizer steps per epoch
    ratio = plain_steady / ray_steady

    first = f"first plain epoch {plain[0][0]:.1f} s"
    table = (
        "| trainer | start-up (s) | epoch, steady (s) | samples/s | vs plain | "
        "CPU-s per sample |\n"
        "|---|---|---|---|---|---|\n"
        f"| plain PyTorch, 1 process x {args.workers} threads | - ({first}) | "
        f"{plain_steady:.2f} | {samples / plain_steady:.2f} | 1.00 | "
        f"{plain_cpu / samples:.3f} |\n"
        f"| Ray Train, {args.workers} workers x {threads} thread (gloo) | "
        f"{ray_init:.1f} Ray init + {ray_startup:.1f} to first epoch | {ray_steady:.2f} | "
        f"{samples / ray_steady:.2f} | {ratio:.2f} | {ray_cpu / samples:.3f} |\n"
        f"| plain PyTorch, 1 process x 1 thread (contention check) | - | {single:.2f} | "
        f"{samples / single:.2f} | {plain_steady / single:.2f} | {single_cpu / samples:.3f} |\n"
    )
    notes = (
        f"Ray Train / plain samples/s in steady state: **{ratio:.2f}** (goal >= 0.85). "
        f"{args.arch} base {args.base_width} depth {args.depth} ({params:,} parameters), "
        f"{args.size} px chips, {samples} training + {len(splits['val'])} validation chips, "
        f"global batch {args.workers * args.batch_size} ({args.batch_size} per worker), "
        f"{args.epochs} epochs per run; an epoch = training pass + validation.\n\n"
        f"CPU-time view, robust to other load: Ray Train (whole local cluster) uses "
        f"{ray_cpu / single_cpu:.2f}x the CPU-seconds per sample of the one-thread loop. On "
        f"{args.workers} idle cores it would reach about {single_cpu / ray_cpu:.2f} x "
        f"{args.workers} / S of a {args.workers}-thread loop's samples/s, where S is that "
        f"loop's speed-up over one thread (at most {args.workers}).\n\n"
        f"Breakdown: plain epochs (s) {', '.join(f'{w:.2f}' for w, _ in plain)} (two runs around "
        f"the Ray run; the first epoch of each is excluded; medians of the rest). Ray Train "
        f"epochs (s) {', '.join(f'{e:.2f}' for e in ray_epochs)}: "
        f"{ray_compute:.2f} s inside the training loop, {ray_steady - ray_compute:.2f} s between "
        f"epochs (checkpoint, report); after the last epoch {ray_end:.1f} s to return (outputs). "
        f"Gradient all-reduce, timed alone: {reduce_s * 1000:.1f} ms per step x {steps} steps = "
        f"{reduce_s * steps:.2f} s per epoch, at most {reduce_s * steps / ray_steady:.0%} of a "
        f"steady epoch (DDP overlaps it with the backward pass). torch {torch.__version__}, "
        f"ray {ray.__version__}."
    )
    record("Training throughput: Ray Train vs a plain PyTorch loop", table, notes)


if __name__ == "__main__":
    main()
