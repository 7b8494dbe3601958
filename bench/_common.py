"""Shared by the benchmark scripts: random-weight bundles, peak memory of a process tree, and
BENCHMARKS.md records."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
# One-minute load average when the script started: the cores may be shared, and the record says so.
LOAD_AT_START = os.getloadavg()[0]


def random_bundle(path: Path, arch: str, base_width: int, tile: int, depth: int = 4) -> str:
    """Save a random-weight bundle (RGB + elevation, seed 0) under ``path``; returns its URI.
    Speed and memory do not depend on the weights."""
    import torch

    from lsmodel.bundle import ModelBundle
    from lsmodel.models import build_model
    from pipelines.bundles import save_bundle

    torch.manual_seed(0)
    model = build_model(arch, base_width=base_width, depth=depth, dropout=0.0)
    bundle = ModelBundle.from_model(
        model,
        bands=["red", "green", "blue", "elevation"],
        tile_size=tile,
        resolution_m=1.0,
        norm_mean=[110.0, 110.0, 100.0, 1500.0],
        norm_std=[40.0, 40.0, 40.0, 300.0],
    )
    return save_bundle(bundle, str(path))


def tree_memory(pid: int) -> int:
    """Proportional set size (bytes) of a process and all its descendants: shared pages (Ray's
    object store, libraries) are split between sharers instead of counted once per process."""
    total = 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_full_info().pss
    return total


def run_measured(
    command: list[str], env: dict[str, str] | None = None, interval: float = 0.25
) -> tuple[float, int]:
    """Run ``command``; return its wall seconds and the peak memory of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_memory(process.pid))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    stop.set()
    sampler.join()
    if code:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}")
    return time.perf_counter() - started, peak


def cpu() -> str:
    """The CPU model and whether it has bf16 matrix units (AMX): bf16 timings depend on them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.MULTILINE)
    amx = "with" if flags and "amx_bf16" in flags.group(1).split() else "without"
    return f"{model.group(1) if model else platform.machine()} {amx} AMX"


def machine() -> str:
    """The machine, and its one-minute load average at the script's start and now: a load above
    zero before the run means other processes were using the cores while it ran."""
    return (
        f"{cpu()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"load average {LOAD_AT_START:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )


def record(title: str, table: str, notes: str = "") -> None:
    """Print a result table and append it, with the command, machine and date, to BENCHMARKS.md."""
    command = " ".join(["python", *[os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]])
    today = datetime.date.today().isoformat()
    section = f"\n## {title}\n\n`{command}` on {today} ({machine()})\n\n{table}\n"
    if notes:
        section += f"\n{notes}\n"
    print(section)
    if not BENCHMARKS.exists():
        BENCHMARKS.write_text(
            "# Benchmarks\n\nEvery section is appended by a script in `bench/`; re-run it to check.\n"
        )
    with BENCHMARKS.open("a") as f:
        f.write(section)
