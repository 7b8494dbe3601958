"""``lsmap train`` on a local Ray cluster: learning with two workers from chips on S3, outputs,
kill and resume."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lsmodel.metrics import SegmentationMetrics
from lsmodel.models import build_model
from pipelines import storage
from pipelines.bundles import load_bundle
from pipelines.chips import scan_bijie
from pipelines.errors import InputError
from pipelines.evaluate import bundle_dataset, score_model
from pipelines.synthetic.writers import write_chips
from pipelines.training import TrainConfig
from pipelines.training.data import load_splits
from pipelines.training.run import latest_state, train

pytestmark = pytest.mark.usefixtures("ray_cluster")

# Tiny but able to learn the synthetic scars in a few seconds of CPU.
SMALL = {
    "arch": "unet",
    "loss": "bce+dice",
    "batch_size": 4,
    "lr": 3e-3,
    "size": 64,
    "base_width": 8,
    "depth": 3,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    return str(write_chips(tmp_path_factory.mktemp("chips"), 80, size=64, seed=1))


def _miou(model, dataset) -> float:
    return score_model(model, dataset).compute()["miou"]


def _upload_folder(local: str, uri: str) -> str:
    for path in sorted(Path(local).rglob("*")):
        if path.is_file():
            storage.upload_file(str(path), storage.join(uri, path.relative_to(local).as_posix()))
    return uri


def test_two_workers_learn_from_chips_on_s3_and_write_outputs(chips, s3_bucket, tmp_path):
    """On a cluster the workers share no folder: they read the chips from the bucket."""
    data = _upload_folder(chips, f"s3://{s3_bucket}/chips")
    assert [r.name for r in scan_bijie(data)] == [r.name for r in scan_bijie(chips)]
    # Terrain bands ride along: the bundle must record them so the mapper can rebuild them.
    bands = ("red", "green", "blue", "elevation", "slope", "relative_elevation")
    config = TrainConfig(
        data=data,
        out=str(tmp_path / "run"),
        epochs=8,
        workers=2,
        bands=bands,
        resolution_m=1.0,
        relative_radius_m=10.0,
        **SMALL,
    )
    lines: list[str] = []
    train(config, progress=lines.append)

    assert [line.split()[1] for line in lines] == [f"{e}/8" for e in range(1, 9)]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [entry["epoch"] for entry in metrics["history"]] == list(range(1, 9))
    assert metrics["config"]["workers"] == 2
    assert set(metrics["test"]) >= {"miou", "auc", "precision", "recall", "f1", "accuracy"}
    assert (tmp_path / "run" / "loss_curve.png").read_bytes().startswith(b"\x89PNG")

    # The bundle on disk scores the validation split as the workers reported for its epoch.
    bundle = load_bundle(str(tmp_path / "run"))
    assert tuple(bundle.bands) == bands and bundle.terrain["relative_radius_m"] == 10.0
    val = load_splits(data, config.seed, config.split_fractions)["val"]
    dataset = bundle_dataset(bundle, val)
    trained = _miou(bundle.build(), dataset)
    assert trained == pytest.approx(metrics["best_val"]["miou"], abs=1e-9)
    assert bundle.metrics["test"]["miou"] == pytest.approx(metrics["test"]["miou"])

    # Baselines on the same chips: the initial weights, and predicting background everywhere.
    torch.manual_seed(config.seed)
    untrained = build_model(
        "unet",
        in_channels=len(bands),
        base_width=config.base_width,
        depth=config.depth,
        dropout=config.dropout,
    )
    background = SegmentationMetrics()
    for _, y in dataset:
        background.update(torch.zeros_like(y), y)
    assert trained > max(_miou(untrained, dataset), background.compute()["miou"]) + 0.1


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def test_killed_run_resumes_on_s3_without_repeating_epochs(chips, ray_cluster, s3_bucket, tmp_path):
    out = f"s3://{s3_bucket}/run"
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in SMALL.items()]
    command = [sys.executable, "-u", "-m", "pipelines", "train", "--data", chips, "--out", out]
    command += [*flags, "--epochs=6", "--workers=1"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
    )
    printed: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, printed), daemon=True).start()
    try:
        deadline = time.time() + 180
        while not printed.get(timeout=max(deadline - time.time(), 0.1)).startswith("epoch"):
            pass
        while (checkpointed := latest_state(out)) is None and time.time() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    assert checkpointed is not None, "no checkpoint was registered before the deadline"
    assert not storage.exists(f"{out}/model.lsmap"), "outputs appear only when a run finishes"

    config = TrainConfig(data=chips, out=out, epochs=6, workers=1, **SMALL)
    lines: list[str] = []
    rerun_started = time.time()
    result = train(config, progress=lines.append)

    assert lines[0].startswith("resuming after epoch")
    resumed_after = int(lines[0].split()[3])
    assert checkpointed.epoch <= resumed_after < 6
    rerun = [int(line.split()[1].split("/")[0]) for line in lines[1:]]
    assert rerun == list(range(resumed_after + 1, 7))  # done epochs are not trained again
    history = storage.read_json(f"{out}/metrics.json")["history"]
    assert [entry["epoch"] for entry in history] == list(range(1, 7))
    for entry in history:
        assert (entry["finished_at"] < rerun_started) == (entry["epoch"] <= resumed_after)

    # The bundle stored on S3 loads back and predicts exactly as the trained weights do.
    loaded = load_bundle(out)
    assert loaded.sha256 == result.bundle.sha256
    reference = build_model("unet", base_width=8, depth=3, dropout=0.0).eval()
    reference.load_state_dict(result.state.best_weights)
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.build()(x), reference(x))

    # Once finished, a rerun trains nothing and writes the same outputs again.
    lines.clear()
    assert train(config, progress=lines.append).bundle.sha256 == result.bundle.sha256
    assert lines == [f"{out} already holds 6 epoch(s); writing its outputs"]
    with pytest.raises(InputError, match=r"other settings \(arch: 'unet' -> 'resunet'\)"):
        train(replace(config, arch="resunet"), progress=None)
