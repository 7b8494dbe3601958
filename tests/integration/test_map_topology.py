"""Where each actor has resources of its own (GPU nodes: ``--gpus-per-worker 1 --cpus-per-worker
4``), Ray Data cannot fuse the read into the actors: reads run as tasks on the node's other CPUs
and their windows reach the actors through the object store. That topology runs here on CPUs
(an actor of 2 CPUs on a 3-CPU head) and must give the bytes of the fused one."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from clusters.head import ray_head

from pipelines.mapping import map_region
from pipelines.mapping.output import OutputLayout, open_array
from pipelines.synthetic.writers import write_region


@pytest.mark.usefixtures("ray_cluster")
def test_reads_in_their_own_tasks_give_the_bytes_of_reads_fused_into_the_actors(
    random_bundle, tmp_path
):
    region = write_region(tmp_path / "region", size=256, seed=3)
    inputs = ["--rgb", str(region.rgb), "--dem", str(region.dem), "--chunk", "96"]
    fused = str(tmp_path / "fused")
    map_region(
        random_bundle,
        {"image": str(region.rgb), "dem": str(region.dem)},
        fused,
        chunk=96,
        progress=False,
    )

    unfused = str(tmp_path / "unfused")
    with ray_head(num_cpus=3) as head:
        command = [sys.executable, "-m", "pipelines", "map", "--model", random_bundle, *inputs]
        command += ["--out", unfused, "--cpus-per-worker", "2", "--quiet"]
        env = dict(os.environ, RAY_ADDRESS=head.address)
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        from ray.util.state import list_tasks

        names = {task.name for task in list_tasks(address=head.dashboard_url, limit=10_000)}
    assert "Map(read_unit)" in names, names  # the reads were tasks of their own
    assert "MapWorker(MapBatches(InferAndWriteUnits)).submit" in names, names

    stored = open_array(OutputLayout(unfused))[:]
    assert (stored != 255).any()
    np.testing.assert_array_equal(stored, open_array(OutputLayout(fused))[:])
