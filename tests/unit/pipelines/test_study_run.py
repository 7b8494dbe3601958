"""Before Ray: which runs a rerun submits again, and chips that would fail every run."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipelines.errors import InputError
from pipelines.study.run import check_chips, finished_summary
from pipelines.synthetic.writers import write_chips
from pipelines.training import TrainConfig


@pytest.fixture
def run(tmp_path) -> TrainConfig:
    """A run folder as a finished 3-epoch training leaves it."""
    config = TrainConfig(data=str(tmp_path / "chips"), out=str(tmp_path / "run"), epochs=3)
    out = tmp_path / "run"
    out.mkdir()
    history = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0} for e in (1, 2, 3)]
    document = {
        "config": config.to_dict(),
        "history": history,
        "best_epoch": 2,
        "best_val": {"miou": 0.7},
        "test": {"miou": 0.6},
    }
    (out / "metrics.json").write_text(json.dumps(document))
    (out / "model.lsmap").write_bytes(b"bundle")
    (out / "loss_curve.png").write_bytes(b"png")
    return config


def test_a_complete_run_is_not_trained_again(run):
    summary = finished_summary(run)

    assert summary == {
        "epochs": 3,
        "best_epoch": 2,
        "val_miou": 0.7,
        "test_miou": 0.6,
        "seconds": None,
    }
    # Like `lsmap train`, fewer epochs or other workers reuse the finished run.
    assert finished_summary(replace(run, epochs=2, workers=4)) == summary


@pytest.mark.parametrize(
    "change", [{"epochs": 5}, {"lr": 1e-3}, {"seed": 1}, {"base_width": 8, "depth": 3}]
)
def test_more_epochs_or_other_settings_go_to_training(run, change):
    # More epochs: train resumes; other settings: train names them (it refuses to mix runs).
    assert finished_summary(replace(run, **change)) is None


def test_a_run_recorded_before_band_settings_existed_is_still_finished(run, tmp_path):
    path = tmp_path / "run" / "metrics.json"
    document = json.loads(path.read_text())
    for key in ("bands", "relative_radius_m"):
        del document["config"][key]
    path.write_text(json.dumps(document))
    assert finished_summary(run) is not None
    assert finished_summary(replace(run, bands=("red", "green", "blue"))) is None


@pytest.mark.parametrize("name", ["model.lsmap", "metrics.json", "loss_curve.png"])
def test_a_run_cut_while_writing_its_outputs_goes_to_training(run, tmp_path, name):
    (tmp_path / "run" / name).unlink()

    assert finished_summary(run) is None


def test_chips_that_leave_a_split_empty_fail_before_any_run(tmp_path):
    chips = str(write_chips(tmp_path / "chips", count=3, size=16))
    config = TrainConfig(data=chips, out=str(tmp_path / "study"))

    with pytest.raises(
        InputError, match=r"chips: the val split\(s\) would be empty \(train 2, val 0, test 1"
    ):
        check_chips(config)
    check_chips(replace(config, split_fractions=(0.34, 0.33, 0.33)))
