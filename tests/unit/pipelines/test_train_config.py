"""Training settings: paper defaults, YAML file, flags overriding it, and clear errors."""

from __future__ import annotations

import os

import pytest
import yaml

from pipelines.cli import build_parser
from pipelines.cli.train import overrides
from pipelines.errors import InputError
from pipelines.training.config import TrainConfig, config_keys


def _from_command_line(*argv: str) -> TrainConfig:
    args = build_parser().parse_args(["train", *argv])
    return TrainConfig.from_sources(args.config, overrides(args))


def _write(path, document) -> str:
    path.write_text(yaml.safe_dump(document) if isinstance(document, dict) else document)
    return str(path)


def test_paper_protocol_where_nothing_is_given():
    config = _from_command_line("--data", "chips", "--out", "run")

    assert (config.batch_size, config.lr, config.epochs) == (2, 1e-5, 50)
    assert (config.dropout, config.size, config.base_width, config.depth) == (0.5, 128, 32, 4)
    assert (config.workers, config.gpu, config.resolution_m) == (1, False, None)


def test_flags_given_override_the_file_and_the_rest_comes_from_it(tmp_path):
    # YAML 1.1 reads 3e-4 as a string; it must still count as the learning rate.
    text = "data: chips\nout: s3://b/run\nlr: 3e-4\nbatch-size: 8\nepochs: 3\ngpu: true\n"
    path = _write(tmp_path / "train.yaml", text)

    config = _from_command_line("--config", path, "--epochs", "7", "--out", "elsewhere")

    # Flags win; the command line makes local paths absolute (Ray workers run elsewhere).
    assert (config.epochs, config.out) == (7, os.path.abspath("elsewhere"))
    assert (config.lr, config.batch_size, config.gpu) == (3e-4, 8, True)  # file kept
    assert _from_command_line("--config", path, "--no-gpu").gpu is False


def test_a_recorded_config_reloads_as_the_same_settings(tmp_path):
    config = TrainConfig(
        data="chips",
        out="run",
        arch="unetpp_sa_ca",
        loss="bce+dice",
        split_fractions=(0.7, 0.2, 0.1),
    )
    path = _write(tmp_path / "again.yaml", config.to_dict())

    assert TrainConfig.from_sources(path) == config
    assert list(config.to_dict()) == config_keys()


def test_bands_by_name_from_flags_or_file(tmp_path):
    config = _from_command_line(
        "--data", "c", "--out", "r", "--bands", "rgbd,slope,relative_elevation",
        "--resolution-m", "2", "--relative-radius-m", "30",
    )  # fmt: skip
    assert config.bands == ("red", "green", "blue", "elevation", "slope", "relative_elevation")
    assert config.layer_stack()["dem"].halo(config.resolution_m) == 15
    assert config.to_dict()["bands"] == list(config.bands)
    path = _write(tmp_path / "t.yaml", {**config.to_dict(), "bands": ["rgb"]})
    assert TrainConfig.from_sources(path).bands == ("red", "green", "blue")


def test_unknown_key_in_the_file_is_named(tmp_path):
    path = _write(tmp_path / "bad.yaml", {"data": "chips", "out": "run", "learning_rate": 0.1})

    with pytest.raises(InputError, match=r"bad\.yaml.*unknown key\(s\) learning_rate"):
        TrainConfig.from_sources(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"data": "c", "out": "r", "epochs": "many"}, "epochs must be int"),
        ({"data": "c", "out": "r", "split_fractions": [0.5, 0.5]}, "split_fractions must be"),
        ({"data": "c", "out": "r", "size": 100, "depth": 4}, "multiple of 2\\*\\*depth = 16"),
        ({"data": "c", "out": "r", "arch": "segformer"}, "arch 'segformer'"),
        ({"data": "c", "out": "r", "loss": "bce+hinge"}, "loss 'bce\\+hinge'"),
        ({"out": "r"}, "missing data"),
        ("- just\n- a list\n", "expected a mapping"),
        ({"data": "c", "out": "r", "bands": "rgbd,slope"}, "slope need resolution_m"),
        ({"data": "c", "out": "r", "bands": ["rgbd", "ndvi"]}, r"unknown band\(s\) ndvi"),
        ({"data": "c", "out": "r", "relative_radius_m": 0}, "relative_radius_m must be > 0"),
    ],
)
def test_bad_settings_are_input_errors(tmp_path, document, message):
    path = _write(tmp_path / "c.yaml", document)

    with pytest.raises(InputError, match=message):
        TrainConfig.from_sources(path)
