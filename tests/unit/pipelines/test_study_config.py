"""Study settings: the paper's grid by default, a file and flags over it, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lsmodel.models import ARCHITECTURES
from pipelines.cli import build_parser
from pipelines.cli.study import overrides
from pipelines.errors import InputError
from pipelines.study.config import ATTENTION_MODELS, BASE_MODELS, StudyConfig


def _from_command_line(*argv: str) -> StudyConfig:
    args = build_parser().parse_args(["study", *argv])
    return StudyConfig.from_sources(args.config, overrides(args))


def _write(path: Path, document: dict) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_the_grids_cover_every_architecture_once():
    assert sorted(BASE_MODELS + ATTENTION_MODELS) == sorted(ARCHITECTURES)


def test_paper_grid_and_protocol_where_nothing_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _from_command_line("--data", "chips", "--out", "study")

    assert config.phase1() == [
        (arch, loss)
        for arch in ("unet", "resunet", "unetpp")
        for loss in ("bce", "focal", "dice", "wce")
    ]
    assert config.phase2("dice") == [
        ("unetpp_sa", "dice"),
        ("unetpp_ca", "dice"),
        ("unetpp_sa_ca", "dice"),
    ]
    assert (config.base.epochs, config.base.lr, config.base.batch_size) == (50, 1e-5, 2)
    # Ray runs the trainings in other processes: local paths must not depend on their cwd.
    assert config.base.data == str(tmp_path / "chips")
    run = config.run_config("resunet", "focal")
    assert (run.arch, run.loss) == ("resunet", "focal")
    assert run.out == str(tmp_path / "study" / "runs" / "resunet-focal")
    assert (run.epochs, run.data) == (config.base.epochs, config.base.data)


def test_flags_override_the_file_and_grid_lists_come_from_either(tmp_path):
    path = _write(
        tmp_path / "study.yaml",
        {
            "data": "chips",
            "out": "s3://bucket/study",
            "epochs": 3,
            "base-width": 8,
            "lr": "3e-4",
            "losses": ["dice", "bce"],
            "attention": ["unetpp_ca"],
        },
    )

    config = _from_command_line("--config", path, "--epochs", "2", "--archs", "unetpp,unet")

    assert (config.base.epochs, config.base.base_width, config.base.lr) == (2, 8, 3e-4)
    assert config.out == "s3://bucket/study"  # object-store URIs are kept as given
    assert (config.archs, config.losses, config.attention) == (
        ("unetpp", "unet"),
        ("dice", "bce"),
        ("unetpp_ca",),
    )
    assert config.run_config("unet", "dice").out == "s3://bucket/study/runs/unet-dice"
    assert config.to_dict()["archs"] == ["unetpp", "unet"]
    assert "arch" not in config.to_dict()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"arch": "unet"}, r"arch are set by the study's grid"),
        ({"learning_rate": 0.1}, r"unknown key\(s\) learning_rate; valid keys: out, data, epochs"),
        ({"epochs": "many"}, r"study config .*: epochs must be int"),
        ({"losses": "bce, nope"}, r"loss 'nope'"),
        ({"archs": ["unet", "resunet"]}, r"archs must include unetpp"),
        ({"archs": ["unet", "unetpp_sa"]}, r"archs may hold unet, resunet, unetpp, not unetpp_sa"),
        ({"attention": ["unet"]}, r"attention may hold .*, not unet"),
        ({"attention": []}, r"attention is empty"),
        ({"losses": ["bce", "bce"]}, r"losses repeats a name"),
        ({"losses": 3}, r"losses must be a list of names"),
        ({"split_fractions": [0.8, 0.2, 0.0]}, r"no test chips"),
        ({"band_sets": "rgbd,rgbd+ndvi"}, r"band set 'rgbd\+ndvi': unknown band\(s\) ndvi"),
        ({"band_sets": "rgbd+slope"}, r"slope need resolution_m"),
        ({"band_sets": "rgb,rgb"}, r"band_sets repeats a name"),
    ],
)
def test_bad_settings_are_named(tmp_path, document, message):
    path = _write(tmp_path / "study.yaml", {"data": "chips", "out": "study", **document})

    with pytest.raises(InputError, match=message):
        StudyConfig.from_sources(path)


def test_band_sets_from_flags():
    config = _from_command_line(
        "--data", "chips", "--out", "study", "--band-sets", "rgb,rgbd+slope", "--resolution-m", "2"
    )  # fmt: skip
    assert config.band_sets == ("rgb", "rgbd+slope")
    assert config.base.resolution_m == 2.0
    assert config.to_dict()["band_sets"] == ["rgb", "rgbd+slope"]
    assert config.run_config("unetpp", "dice", "rgb").bands == ("red", "green", "blue")
    assert _from_command_line("--data", "chips", "--out", "study").band_sets == ()


def test_missing_data_is_named():
    with pytest.raises(InputError, match="missing data"):
        _from_command_line("--out", "study")
