"""``lsmap submit`` before it reaches a cluster: command checks, ids, runtime environment."""

from __future__ import annotations

import os

import pytest

from pipelines.cli import build_parser
from pipelines.errors import InputError
from pipelines.submit import (
    EXCLUDES,
    default_submission_id,
    entrypoint,
    project_dir,
    runtime_env,
    validate_command,
)

MAP = [
    "map",
    "--model",
    "s3://b/m",
    "--rgb",
    "s3://b/rgb.tif",
    "--dem",
    "s3://b/dem.tif",
    "--out",
    "s3://b/out",
]


@pytest.mark.parametrize(
    "command,problem",
    [
        ([], "no lsmap command"),
        (["submit", "--address", "x", "--", "map"], "cannot itself be `submit`"),
        (["paint", "--everything"], "not a valid lsmap command"),
        (["map", "--model", "m"], "not a valid lsmap command"),  # --rgb, --dem, --out missing
        ([*MAP, "--workers", "two"], "not a valid lsmap command"),
    ],
)
def test_invalid_commands_are_refused_before_submission(command, problem):
    with pytest.raises(InputError, match=problem):
        validate_command(command)


def test_a_valid_command_parses():
    args = validate_command([*MAP, "--workers", "4", "--gpus-per-worker", "1"])
    assert (args.command, args.workers, args.gpus_per_worker) == ("map", 4, 1.0)


def test_submission_ids_are_stable_and_distinct():
    assert default_submission_id(MAP) == default_submission_id(list(MAP))
    assert default_submission_id(MAP).startswith("lsmap-map-")
    assert default_submission_id(MAP) != default_submission_id([*MAP, "--cog"])


def test_runtime_env_forwards_storage_and_ray_settings_only():
    environ = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_SESSION_TOKEN": "",
        "RAY_AUTH_MODE": "token",
        "RAY_ADDRESS": "http://127.0.0.1:8265",
        "RAY_AUTH_TOKEN": "ray-token",
        "HOME": "/root",
        "PATH": "/usr/bin",
    }
    env = runtime_env(None, environ=environ)
    # Credentials stay behind: a job's spec is readable by anyone who can list jobs.
    assert env == {
        "env_vars": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "RAY_AUTH_MODE": "token"}
    }
    forwarded = runtime_env(None, environ=environ, forward_credentials=True)["env_vars"]
    assert forwarded["AWS_ACCESS_KEY_ID"] == "id"
    assert forwarded["AWS_SECRET_ACCESS_KEY"] == "secret"
    assert "RAY_AUTH_TOKEN" not in forwarded


def test_runtime_env_carries_the_project_without_its_clutter(tmp_path):
    env = runtime_env(str(tmp_path), pip=["lsmap==0.1.0"], environ={})
    assert env["working_dir"] == str(tmp_path)
    assert {".venv", ".git", "outputs"} <= set(env["excludes"]) == set(EXCLUDES)
    assert env["pip"] == ["lsmap==0.1.0"]
    with pytest.raises(InputError, match="not a directory"):
        runtime_env(str(tmp_path / "missing"), environ={})


def test_the_project_is_this_checkout():
    root = project_dir()
    assert root is not None
    assert os.path.isfile(os.path.join(root, "pipelines", "submit.py"))


def test_entrypoint_quotes_arguments():
    assert entrypoint(["scan", "--config", "my watch.yaml"]) == (
        "python -m pipelines scan --config 'my watch.yaml'"
    )


def test_cli_takes_the_command_after_double_dash():
    args = build_parser().parse_args(
        [
            "submit",
            "--address",
            "http://h:8265",
            "--wait",
            "--pip",
            "lsmap==0.1.0",
            "--",
            *MAP,
            "--workers",
            "2",
        ]
    )
    assert args.address == "http://h:8265" and args.wait and args.pip == ["lsmap==0.1.0"]
    assert args.command == "submit"
    assert args.wrapped == [*MAP, "--workers", "2"]
