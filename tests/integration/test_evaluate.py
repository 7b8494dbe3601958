"""``lsmap evaluate`` and ``lsmap explain`` on a tiny model trained with ``lsmap train``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image

from pipelines.bundles import load_bundle, save_bundle
from pipelines.cli import main
from pipelines.errors import InputError
from pipelines.evaluate import bundle_split, evaluate_bundle
from pipelines.synthetic.writers import write_chips
from pipelines.training import TrainConfig
from pipelines.training.run import train

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory of ``lsmap train`` (one worker, three epochs) and its chip directory."""
    chips = str(write_chips(tmp_path_factory.mktemp("chips"), 40, size=32, seed=3))
    out = str(tmp_path_factory.mktemp("run"))
    config = TrainConfig(
        data=chips,
        out=out,
        arch="unetpp",
        loss="bce",
        epochs=3,
        workers=1,
        batch_size=4,
        lr=3e-3,
        size=32,
        base_width=4,
        depth=3,
        dropout=0.0,
        resolution_m=1.0,
    )
    return train(config, progress=None), chips, out


def test_evaluate_reproduces_the_test_split_of_training(run, tmp_path, capsys):
    result, chips, out = run
    report = tmp_path / "eval.json"

    assert main(["evaluate", "--model", out, "--data", chips, "--json", str(report)]) == 0

    printed = capsys.readouterr().out
    for name in ("miou", "auc", "precision", "recall", "f1", "accuracy"):
        assert name in printed
    scores = json.loads(report.read_text())
    assert scores["split"] == "test"
    assert scores["chips"] == len(bundle_split(result.bundle, chips, "test"))
    for name, value in result.test_metrics.items():
        assert scores[name] == pytest.approx(value)


def test_evaluate_needs_the_training_split_unless_all(run, tmp_path):
    result, chips, _ = run
    path = save_bundle(replace(result.bundle, metrics={}), str(tmp_path))
    bundle = load_bundle(path)

    with pytest.raises(InputError, match="--split all"):
        evaluate_bundle(bundle, chips, "test")
    assert evaluate_bundle(bundle, chips, "all")["chips"] == 40


def test_explain_writes_one_figure_per_chip_landslides_first(run, tmp_path, capsys):
    _, chips, out = run
    figures = tmp_path / "figures"

    assert (
        main(["explain", "--model", out, "--data", chips, "--out", str(figures), "--count", "3"])
        == 0
    )

    written = capsys.readouterr().out.split()
    assert len(written) == 3
    assert sorted(p.name for p in figures.iterdir()) == sorted(p.split("/")[-1] for p in written)
    assert all(p.split("/")[-1].startswith("landslide_") for p in written)
    with Image.open(written[0]) as image:
        assert image.width > 4 * image.height  # five panels side by side
