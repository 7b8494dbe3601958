"""A Ray head node of its own for tests that need a cluster outside the test process.

Started with ``ray start --head --block`` on free ports of 127.0.0.1 in its own process group and
temp dir, and torn down by killing that group, never with ``ray stop`` (which would also end the
test session's own Ray cluster and anyone else's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Head:
    address: str  # what RAY_ADDRESS takes: the GCS, host:port
    dashboard_url: str  # the job server


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def ray_head(
    cwd: Path | None = None, env: dict[str, str] | None = None, num_cpus: int = 2
) -> Iterator[Head]:
    """A head of ``num_cpus`` logical CPUs (dashboard and job server on 127.0.0.1), up once its
    job server answers.

    Its workers inherit ``env`` (default: this process's) and start in ``cwd``, as a node's
    workers inherit the environment and directory of whoever ran ``ray start``.
    """
    from ray.job_submission import JobSubmissionClient

    gcs, dashboard, client, agent, agent_grpc, runtime_env, metrics = _free_ports(7)
    # A short private temp dir: no clash with other clusters, and socket paths stay short.
    temp_dir = tempfile.mkdtemp(prefix="lsray-", dir="/tmp")
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env.pop("RAY_ADDRESS", None)
    command = [
        os.path.join(bin_dir, "ray"),
        "start",
        "--head",
        "--block",
        f"--port={gcs}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    log = open(os.path.join(temp_dir, "head.log"), "wb")  # noqa: SIM115 (closed at teardown)
    head = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert head.poll() is None, Path(temp_dir, "head.log").read_text(errors="replace")
            try:
                JobSubmissionClient(url).list_jobs()
                break
            except Exception:
                assert time.monotonic() < deadline, "the head's job server did not come up"
                time.sleep(0.5)
        yield Head(address=f"127.0.0.1:{gcs}", dashboard_url=url)
    finally:
        processes = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
        os.killpg(head.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=5)
        for process in alive:
            process.kill()
        _, alive = psutil.wait_procs(alive, timeout=5)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not alive, f"head processes left behind: {alive}"
