"""``lsmap submit`` against a real Ray head started with ``ray start --head`` on 127.0.0.1.

The head (tests/clusters/head.py) runs in its own process group and is torn down by killing that
group, never with ``ray stop`` (which would also end the test session's own Ray cluster).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from clusters.head import ray_head as start_head

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.bundles import save_bundle
from pipelines.submit import default_submission_id, submit
from pipelines.synthetic.writers import write_region

SECRET = "not-a-real-secret-0123456789"


@pytest.fixture(scope="module")
def ray_head():
    """A head node of its own (2 CPUs, dashboard on 127.0.0.1); yields the job server URL."""
    with start_head() as head:
        yield head.dashboard_url


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    """A 128 px synthetic region and a random-weight bundle: enough to exercise a map job."""
    root = tmp_path_factory.mktemp("submit")
    region = write_region(root / "region", size=128, seed=3)
    torch.manual_seed(0)
    model = build_model("unet", base_width=4, depth=3, dropout=0.0)
    bundle = ModelBundle.from_model(
        model,
        bands=["red", "green", "blue", "elevation"],
        norm_mean=[110.0, 110.0, 100.0, 1500.0],
        norm_std=[40.0, 40.0, 40.0, 300.0],
        tile_size=32,
        resolution_m=1.0,
    )
    return root, region, save_bundle(bundle, str(root / "model"))


def _map_command(region, model: str, out: Path) -> list[str]:
    return [
        "map",
        "--model",
        model,
        "--rgb",
        str(region.rgb),
        "--dem",
        str(region.dem),
        "--out",
        str(out),
        "--chunk",
        "128",
        "--quiet",
    ]


def test_a_submitted_map_job_writes_its_map_once(ray_head, tiny_inputs, monkeypatch):
    from ray.job_submission import JobSubmissionClient

    root, region, model = tiny_inputs
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    out = root / "map"
    command = _map_command(region, model, out)

    printed = io.StringIO()
    assert submit(ray_head, command, wait=True, out=printed) == 0, printed.getvalue()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["units"]["computed"] == 1
    assert "SUCCEEDED" in printed.getvalue()
    assert SECRET not in printed.getvalue()

    # The secret stayed behind: the job's spec, readable by anyone who can list jobs, lacks it.
    job_id = default_submission_id(command)
    client = JobSubmissionClient(ray_head)
    assert SECRET not in json.dumps(client.get_job_info(job_id).runtime_env)

    again = io.StringIO()
    assert submit(ray_head, command, out=again) == 0
    assert "already submitted" in again.getvalue()
    assert [job.submission_id for job in client.list_jobs()].count(job_id) == 1


def test_a_failing_job_is_a_failing_exit_status(ray_head, tiny_inputs):
    root, region, _ = tiny_inputs
    command = _map_command(region, str(root / "no-such-model.lsmap"), root / "never")
    printed = io.StringIO()
    assert submit(ray_head, command, wait=True, out=printed) == 1
    assert "FAILED" in printed.getvalue()
    assert "no-such-model.lsmap" in printed.getvalue()  # the job's own error, streamed back
    assert not (root / "never" / "manifest.json").exists()
