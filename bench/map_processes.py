"""Where the memory and CPU of one `lsmap map` run go, process by process (issue: explain the gap
to the floor and the memory against the window loop).

Runs `lsmap map` in a fresh process with its own local Ray cluster and samples every process under
it every 0.25 s: proportional set size, and CPU seconds used so far. Processes are grouped by role
(from their titles: Ray names a worker by what it runs): the driver, the inference actors, read
tasks (when they are not fused into the actors), Ray Data's helper actors, idle workers and Ray's
daemons. The table gives each role's memory at the moment the whole tree peaked, and its CPU
seconds over the run.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
from _common import random_bundle, record

# Role by a substring of the process title, first match wins.
ROLES = (
    ("InferAndWriteUnits", "inference actors (read fused in, when it is)"),
    ("read_unit", "read tasks"),
    ("_StatsActor", "Ray Data helper actors"),
    ("AutoscalingCoordinator", "Ray Data helper actors"),
    ("ActorLocationTracker", "Ray Data helper actors"),
    ("UsageCollection", "Ray Data helper actors"),
    ("ray::IDLE", "idle Ray workers"),
)
DAEMONS = "Ray daemons (GCS, raylet, dashboard and runtime-env agents, log monitor)"


def role(process: psutil.Process, driver: int) -> str:
    if process.pid == driver:
        return "driver (lsmap map: plan, Ray Data's executor, finalize)"
    title = " ".join(process.cmdline())
    return next((name for key, name in ROLES if key in title), DAEMONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048, help="side of the region in pixels")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=960)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from pipelines.synthetic.writers import write_region

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_uri = random_bundle(work / "model", "unetpp_ca", args.base_width, tile=128)
        region = write_region(work / "region", size=args.size, seed=1)
        command = [sys.executable, "-m", "pipelines", "map", "--model", model_uri]
        command += ["--rgb", str(region.rgb), "--dem", str(region.dem), "--out", str(work / "m")]
        command += ["--chunk", str(args.chunk), "--workers", str(args.workers)]
        command += ["--blend", "crop", "--overlap", "32", "--no-quicklook", "--quiet"]
        started = time.perf_counter()
        driver = subprocess.Popen(command, env={"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"})
        root = psutil.Process(driver.pid)
        roles: dict[int, str] = {}  # a worker's last title: what it ran
        cpu: dict[int, float] = {}
        peak_total, at_peak, counts, most = 0, Counter(), Counter(), 0
        while driver.poll() is None:
            memory: Counter = Counter()
            with contextlib.suppress(psutil.NoSuchProcess):
                processes = [root, *root.children(recursive=True)]
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    times = process.cpu_times()
                    pss = process.memory_full_info().pss
                    roles[process.pid] = role(process, driver.pid)
                    cpu[process.pid] = times.user + times.system
                    memory[roles[process.pid]] += pss
            if sum(memory.values()) > peak_total:
                peak_total, at_peak = sum(memory.values()), memory
            for name, count in Counter(roles[p.pid] for p in processes if p.pid in roles).items():
                counts[name] = max(counts[name], count)
            most = max(most, len(processes))
            time.sleep(0.25)
        wall = time.perf_counter() - started
        if driver.returncode:
            raise SystemExit(f"lsmap map failed with exit code {driver.returncode}")

    cpu_by_role: Counter = Counter()
    for pid, seconds in cpu.items():
        cpu_by_role[roles[pid]] += seconds
    table = "| role | processes (most at once) | memory at the peak (MiB) | CPU seconds |\n"
    table += "|---|---|---|---|\n"
    for name in sorted(counts, key=lambda name: -cpu_by_role[name]):
        table += f"| {name} | {counts[name]} | {at_peak[name] / 2**20:,.0f} | "
        table += f"{cpu_by_role[name]:.1f} |\n"
    table += f"| all | {most} | {peak_total / 2**20:,.0f} | {sum(cpu_by_role.values()):.1f} |\n"
    record(
        "Mapping: memory and CPU by process",
        table,
        f"{args.size} x {args.size} px region, unetpp_ca base {args.base_width}, 128 px tiles, "
        f"crop, overlap 32, chunk {args.chunk}, {args.workers} actors x 1 thread; wall "
        f"{wall:.1f} s, so the cores offered {2 * wall:.0f} CPU seconds. CPU seconds are the last "
        "sample's (up to 0.25 s short of a process's end), counted under the role a worker last had "
        "(idle workers become actors). Memory is proportional set size "
        "(shared pages split between the processes sharing them).",
    )


if __name__ == "__main__":
    main()
