"""Run any ``lsmap`` command as a job on a Ray cluster, through Ray's job submission SDK.

The job runs ``python -m pipelines <command>`` on the cluster's head node, in a runtime
environment that carries:

- the project (``working_dir``): this source checkout by default, without virtual environments,
  git data, caches and outputs; clusters that have lsmap installed need none (``working_dir=None``
  when lsmap is not run from a checkout);
- packages to install first (``pip``), for clusters whose image lacks lsmap's dependencies;
- the submitter's ``AWS_*`` and ``RAY_*`` variables, so the job reaches the same storage; never
  ``RAY_ADDRESS`` (where the submitter reaches the cluster is not where the job does) nor Ray's
  own token (the cluster has it). AWS credentials stay behind unless asked for
  (``forward_credentials``): Ray keeps a job's runtime environment in its job table, readable by
  anyone who can list jobs, so a cluster should get them from its own role or secrets. Values are
  never printed.

A job's submission id is derived from the command unless given, so submitting the same command
twice does not start it twice: the second submission finds the first job and reports (or, with
``wait``, follows) it. Give another id to run a command again, e.g. a scheduled scan with the date.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pipelines import storage
from pipelines.errors import InputError, LsmapError

EXCLUDES = [
    ".venv",
    "venv",
    ".git",
    "outputs",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "build",
    "dist",
]
FORWARDED_PREFIXES = ("AWS_", "RAY_")
NOT_FORWARDED = frozenset({"RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"})
CREDENTIALS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})


def validate_command(command: Sequence[str]) -> argparse.Namespace:
    """Parse ``command`` as lsmap arguments (nothing runs); an InputError if it is not one."""
    from pipelines.cli import build_parser

    command = list(command)
    if not command:
        raise InputError("no lsmap command to submit; put it after '--', e.g. -- map --model ...")
    if command[0] == "submit":
        raise InputError("a submitted command cannot itself be `submit`")
    try:
        args = build_parser().parse_args(command)
    except SystemExit as err:  # argparse has printed what is wrong
        raise InputError(f"not a valid lsmap command: {shlex.join(command)}") from err
    if not getattr(args, "func", None):
        raise InputError(f"not an lsmap command: {shlex.join(command)}")
    return args


def default_submission_id(command: Sequence[str]) -> str:
    """``lsmap-<subcommand>-<hash of the whole command>``: equal commands, equal ids."""
    digest = hashlib.sha256(json.dumps(list(command)).encode()).hexdigest()[:16]
    return f"lsmap-{command[0]}-{digest}"


def project_dir() -> str | None:
    """The source checkout lsmap runs from, or None when it is installed as a package."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "lsmap"' in pyproject.read_text():
        return str(root)
    return None


def runtime_env(
    working_dir: str | None,
    pip: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    forward_credentials: bool = False,
) -> dict:
    """The job's runtime environment: the project folder, packages to install (``pip``
    requirements, e.g. ``lsmap==0.1.0`` on a cluster whose image lacks it) and the forwarded
    variables (AWS credentials only with ``forward_credentials``)."""
    environ = os.environ if environ is None else environ
    withheld = NOT_FORWARDED if forward_credentials else NOT_FORWARDED | CREDENTIALS
    env_vars = {
        name: value
        for name, value in sorted(environ.items())
        if name.startswith(FORWARDED_PREFIXES) and name not in withheld and value
    }
    env: dict = {"env_vars": env_vars}
    if working_dir is not None:
        if not os.path.isdir(working_dir):
            raise InputError(f"--working-dir {working_dir}: not a directory")
        env |= {"working_dir": working_dir, "excludes": list(EXCLUDES)}
    if pip:
        env["pip"] = list(pip)
    return env


def entrypoint(command: Sequence[str]) -> str:
    """The shell command the job runs."""
    return f"python -m pipelines {shlex.join(command)}"


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise LsmapError(
            f"cannot reach a Ray job server at {storage.redact(address)}: {storage.redact(str(err))}"
        ) from err


def _existing(client, submission_id: str):
    """The job with this submission id on the cluster, or None."""
    return next((job for job in client.list_jobs() if job.submission_id == submission_id), None)


async def _stream_logs(client, submission_id: str, out: TextIO) -> None:
    async for lines in client.tail_job_logs(submission_id):
        out.write(storage.redact(lines))
        out.flush()


def _final_status(client, submission_id: str, out: TextIO):
    from ray.job_submission import JobStatus

    try:
        asyncio.run(_stream_logs(client, submission_id, out))
    except RuntimeError as err:  # the log stream broke; the job may still be running
        print(f"log stream ended early ({storage.redact(str(err))}); polling", file=sys.stderr)
    status = client.get_job_status(submission_id)
    while not JobStatus(status).is_terminal():
        time.sleep(1.0)
        status = client.get_job_status(submission_id)
    return JobStatus(status)


def submit(
    address: str,
    command: Sequence[str],
    *,
    wait: bool = False,
    submission_id: str | None = None,
    working_dir: str | None = None,
    pip: Sequence[str] = (),
    forward_credentials: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Submit ``command`` (lsmap arguments) to the Ray cluster at ``address`` (dashboard URL).

    Returns the exit code: 0 once submitted (without ``wait``) or when the job SUCCEEDED (with
    it), 1 when it failed or was stopped. ``working_dir`` defaults to :func:`project_dir`;
    ``pip`` lists requirements the job installs (see :func:`runtime_env`).
    """
    from ray.job_submission import JobStatus

    command = list(command)
    validate_command(command)
    submission_id = submission_id or default_submission_id(command)
    client = _client(address)
    where = storage.redact(address)
    job = _existing(client, submission_id)
    if job is None:
        env = runtime_env(
            working_dir or project_dir(), pip, forward_credentials=forward_credentials
        )
        try:
            client.submit_job(
                entrypoint=entrypoint(command),
                submission_id=submission_id,
                runtime_env=env,
                metadata={"lsmap_command": storage.redact(shlex.join(command))},
            )
        except RuntimeError as err:
            # Refused: another submission of the same command got there first, or a real error.
            job = _existing(client, submission_id)
            if job is None:
                raise LsmapError(
                    f"{where} refused job {submission_id}: {storage.redact(str(err))}"
                ) from err
    if job is None:
        forwarded = ", ".join(env["env_vars"]) or "none"
        print(
            f"submitted {submission_id} to {where}: {storage.redact(entrypoint(command))}\n"
            f"  working dir: {env.get('working_dir', 'none (lsmap installed on the cluster)')}; "
            f"pip: {', '.join(pip) or 'none'}; environment forwarded: {forwarded}",
            file=out,
            flush=True,
        )
        status = JobStatus.PENDING
    else:
        status = JobStatus(job.status)
        print(
            f"{submission_id} was already submitted to {where} ({status}); not submitting it "
            "again (pass another --submission-id to run the command once more)",
            file=out,
            flush=True,
        )
    if not wait and not status.is_terminal():
        return 0
    if not status.is_terminal():
        status = _final_status(client, submission_id, out)
    print(f"{submission_id}: {status}", file=out, flush=True)
    return 0 if status == JobStatus.SUCCEEDED else 1
