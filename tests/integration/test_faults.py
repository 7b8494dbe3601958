"""Ray faults: a killed mapping actor (reading, inferring or writing a unit) costs a map time,
never bytes; a killed training worker costs the epochs since the last checkpoint (here a region's
run, whose restarted workers stream the windows of the epochs after it).

Ray Data restarts a dead actor of the pool and retries its unfinished calls, and retries tasks
whose worker died (its defaults: ``max_restarts=-1``, ``max_task_retries=-1``, ``max_retries=-1``);
each unit rewrites exactly its own chunk, so a retried unit writes the same bytes. Ray Train
restarts its workers from the last checkpoint (``FailureConfig(max_failures)``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipelines import storage
from pipelines.mapping import map_region
from pipelines.synthetic.writers import write_region
from pipelines.training import TrainConfig
from pipelines.training.run import latest_state, train

pytestmark = pytest.mark.usefixtures("ray_cluster")

CHUNK = 64
UNITS = 16  # a 256 px region in 64 px chunks
# What Ray Data calls the inference actor's process: read_unit fused with InferAndWriteUnits,
# which writes each unit's chunk and marker itself.
INFER_ACTOR = "ray::MapWorker(Map(read_unit)->MapBatches(InferAndWriteUnits))"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, random_bundle):
    root = tmp_path_factory.mktemp("faults")
    write_region(str(root / "region"), size=256, seed=7)
    return random_bundle, str(root / "region" / "rgb.tif"), str(root / "region" / "dem.tif")


def _map(inputs, out: Path) -> dict:
    model, rgb, dem = inputs
    # One tile per batch: the run lasts long enough to be hit part-way.
    return map_region(
        model, {"image": rgb, "dem": dem}, str(out), chunk=CHUNK, batch_size=1, progress=False
    )


@pytest.fixture(scope="module")
def clean(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "map"
    _map(inputs, out)
    return out


def _chunks(out: Path) -> dict[str, bytes]:
    """The probability array's chunk files (not its metadata, which names the run's paths)."""
    root = out / "probability.zarr" / "probability"
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".") and path.name != "zarr.json"
    }


def _cluster_processes(title: str) -> list[psutil.Process]:
    """This session's Ray processes whose title starts with ``title``.

    The session cluster was started by this process, so its workers are our descendants; Ray
    processes of anyone else on the machine are not.
    """
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(title):
                found.append(process)
        except psutil.Error:  # ended meanwhile
            pass
    return found


class Killer(threading.Thread):
    """Once ``progress()`` is truthy, SIGKILL a process titled ``title`` and keep what
    ``progress()`` returned; then note any other process with that title (its replacement)."""

    def __init__(self, title: str, progress: Callable[[], Any], every_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.title, self.progress, self.every_s = title, progress, every_s
        self.killed: int | None = None
        self.progress_at_kill: Any = None
        self.later: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            targets = [p.pid for p in _cluster_processes(self.title)]
            if self.killed is None and targets and (progress := self.progress()):
                os.kill(targets[0], signal.SIGKILL)
                self.killed, self.progress_at_kill = targets[0], progress
            elif self.killed is not None:
                self.later |= set(targets) - {self.killed}
            time.sleep(self.every_s)


def _finished_units(out: Path) -> int:
    return len(os.listdir(out / "units")) if (out / "units").is_dir() else 0


def _map_while_killing(inputs, out: Path, title: str) -> tuple[dict, Killer]:
    killer = Killer(title, lambda: _finished_units(out))
    killer.start()
    try:
        manifest = _map(inputs, out)
    finally:
        killer.stop.set()
        killer.join()
    return manifest, killer


def _assert_complete_and_identical(manifest: dict, out: Path, clean: Path) -> None:
    assert manifest["status"] == "complete"
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert manifest["units"]["computed"] == UNITS
    # A write killed mid-way may leave its hidden temporary file; only named markers count.
    markers = [name for name in os.listdir(out / "units") if not name.startswith(".")]
    assert len(markers) == UNITS
    assert len(_chunks(out)) == UNITS
    assert _chunks(out) == _chunks(clean)


def test_killed_mapping_actor_is_replaced_and_the_map_is_identical(inputs, clean, tmp_path):
    out = tmp_path / "map"
    manifest, killer = _map_while_killing(inputs, out, INFER_ACTOR)

    assert killer.killed is not None, "the inference actor was never seen"
    assert 1 <= killer.progress_at_kill < UNITS, "the kill must land part-way"
    assert killer.later, "no actor took over from the killed one"
    _assert_complete_and_identical(manifest, out, clean)


def test_killed_worker_of_a_region_run_on_s3_resumes_streaming(tmp_path, s3_bucket):
    local = Path(write_region(tmp_path / "region", 256, seed=4, block=128).layers).parent
    for name in ("rgb.tif", "dem.tif", "inventory.gpkg", "layers.yaml"):
        storage.write_bytes(f"s3://{s3_bucket}/region/{name}", (local / name).read_bytes())
    out = f"s3://{s3_bucket}/run"
    config = TrainConfig(
        region=f"s3://{s3_bucket}/region/layers.yaml",
        out=out,
        epochs=5,
        workers=2,
        arch="unet",
        loss="bce",
        batch_size=4,
        lr=3e-3,
        size=32,
        base_width=4,
        depth=2,
        dropout=0.0,
        block_m=64,
        buffer_m=8,
        windows_per_epoch=32,
    )
    lines: list[str] = []
    killer = Killer("ray::RayTrainWorker", lambda: latest_state(out), every_s=0.2)
    killer.start()
    try:
        result = train(config, progress=lines.append)
    finally:
        killer.stop.set()
        killer.join()

    assert killer.killed is not None, "no training worker was seen"
    resumed = [line for line in lines if line.startswith("resuming after epoch")]
    assert len(resumed) == 1, lines
    resumed_after = int(resumed[0].split()[3])
    assert killer.progress_at_kill.epoch <= resumed_after < 5
    # The restarted workers stream the windows of the epochs after the checkpoint, no others.
    after = [int(line.split()[1].split("/")[0]) for line in lines[lines.index(resumed[0]) + 1 :]]
    assert after == list(range(resumed_after + 1, 6))
    history = storage.read_json(f"{out}/metrics.json")["history"]
    assert [entry["epoch"] for entry in history] == list(range(1, 6))
    assert result.test_metrics["pixels"] > 0
