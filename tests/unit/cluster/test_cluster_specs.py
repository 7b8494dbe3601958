"""The cluster specs in cluster/: they parse, run real lsmap commands, ask only for resources their
clusters have, turn token authentication on and hold no credentials."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pipelines.scan.config import parse_watchlist
from pipelines.scan.cron import validate_cron
from pipelines.submit import validate_command

CLUSTER = Path(__file__).resolve().parents[3] / "cluster"
KUBERAY = sorted((CLUSTER / "kuberay").glob("*.yaml"))
LAUNCHER = CLUSTER / "aws" / "lsmap-cluster.yaml"
WATCHLIST = CLUSTER / "watchlist.example.yaml"
SECRET_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "RAY_AUTH_TOKEN",
}
ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _kuberay_resources() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['kind']}", doc) for path in KUBERAY for doc in _documents(path)]


def _job_spec(resource: dict) -> dict | None:
    """The RayJob spec of a RayJob or of a RayCronJob's template; None for a RayCluster."""
    if resource["kind"] == "RayJob":
        return resource["spec"]
    if resource["kind"] == "RayCronJob":
        return resource["spec"]["jobTemplate"]
    return None


def _cluster_spec(resource: dict) -> dict:
    job = _job_spec(resource)
    return resource["spec"] if job is None else job["rayClusterSpec"]


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def _gpus(group: dict) -> int:
    limits = _containers(group)[0]["resources"].get("limits", {})
    return int(limits.get("nvidia.com/gpu", 0))


def _gpu_capacity(cluster: dict) -> int:
    return sum(_gpus(group) * group["maxReplicas"] for group in cluster.get("workerGroupSpecs", []))


def _lsmap_args(entrypoint: str):
    words = shlex.split(entrypoint)
    assert words[0] == "lsmap", f"entrypoint {entrypoint!r} is not an lsmap command"
    return validate_command(words[1:])  # parses only; an InputError names a bad command


def _gpus_needed(args) -> float:
    """GPUs the command's actors or workers ask for at once."""
    if args.command == "map":
        return args.workers * args.gpus_per_worker
    if args.command == "train":
        return args.workers if args.gpu else 0
    if args.command == "scan":
        regions = parse_watchlist(WATCHLIST.read_text(), str(WATCHLIST)).select(args.region)
        # Regions are scanned one after another: the largest one sets the need.
        return max(r.mapping.workers * r.mapping.gpus_per_worker for r in regions)
    raise AssertionError(f"no GPU rule for `lsmap {args.command}`")


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def _assert_no_inline_credentials(path: Path, documents: list) -> None:
    assert not ACCESS_KEY.search(path.read_text()), f"{path.name}: an AWS access key id"
    for node in _walk(documents):
        if isinstance(node, dict) and node.get("name") in SECRET_VARIABLES:
            assert "value" not in node, f"{path.name}: {node['name']} given inline"
        if isinstance(node, str) and node.lstrip().startswith(("pip:", "env_vars:")):
            runtime_env = yaml.safe_load(node)  # a runtimeEnvYAML block
            assert not SECRET_VARIABLES & set(runtime_env.get("env_vars", {}))


def test_the_expected_specs_exist():
    kinds = sorted(kind for kind, _ in _kuberay_resources())
    assert [k.split(":")[1] for k in kinds].count("RayJob") == 2
    assert {k.split(":")[1] for k in kinds} == {"RayCluster", "RayJob", "RayCronJob"}
    assert LAUNCHER.is_file() and WATCHLIST.is_file()


@pytest.mark.parametrize(
    "resource", [pytest.param(resource, id=name) for name, resource in _kuberay_resources()]
)
def test_kuberay_resource_is_consistent(resource):
    assert resource["apiVersion"] == "ray.io/v1"
    cluster = _cluster_spec(resource)
    assert cluster["authOptions"] == {"mode": "token"}, "token authentication must be on"

    head = cluster["headGroupSpec"]
    assert _gpus(head) == 0, "the head is a CPU node"
    for group in [head, *cluster.get("workerGroupSpecs", [])]:
        image = _containers(group)[0]["image"]
        assert image.split(":")[1].startswith(cluster["rayVersion"]), (
            f"{image} is not Ray {cluster['rayVersion']}"
        )
        assert image.endswith("-gpu") == (_gpus(group) > 0), f"{image}: GPU image iff GPU pods"
        secrets = [e["secretRef"]["name"] for e in _containers(group)[0].get("envFrom", [])]
        assert secrets, "storage credentials come from a Kubernetes secret"

    job = _job_spec(resource)
    if job is None:  # the long-running cluster: autoscaling GPU workers
        assert cluster["enableInTreeAutoscaling"] is True
        gpu_groups = [g for g in cluster["workerGroupSpecs"] if _gpus(g)]
        assert gpu_groups and all(g["minReplicas"] == 0 < g["maxReplicas"] for g in gpu_groups)
        return
    args = _lsmap_args(job["entrypoint"])
    needed, capacity = _gpus_needed(args), _gpu_capacity(cluster)
    assert needed <= capacity, (
        f"`lsmap {args.command}` needs {needed} GPUs, the cluster has {capacity}"
    )
    assert (needed > 0) == (capacity > 0), "GPU workers exactly where the command uses GPUs"
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert any(req.startswith("lsmap") for req in runtime_env["pip"]["packages"])
    assert job["shutdownAfterJobFinishes"] is True
    if resource["kind"] == "RayCronJob":
        validate_cron(resource["spec"]["schedule"])
        [region] = parse_watchlist(WATCHLIST.read_text(), str(WATCHLIST)).select(args.region)
        assert resource["spec"]["schedule"] == region.schedule


def test_train_job_mounts_its_chips_on_every_pod():
    [resource] = [r for _, r in _kuberay_resources() if "train" in r["metadata"]["name"]]
    data = _lsmap_args(resource["spec"]["entrypoint"]).data
    cluster = resource["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        mounts = [m["mountPath"] for m in _containers(group)[0].get("volumeMounts", [])]
        assert any(data.startswith(m.rstrip("/") + "/") for m in mounts)


@pytest.mark.parametrize("path", [*KUBERAY, LAUNCHER, WATCHLIST], ids=lambda p: p.name)
def test_no_credentials_inline(path):
    _assert_no_inline_credentials(path, _documents(path))


def test_launcher_has_a_cpu_head_and_autoscaling_gpu_workers():
    [config] = _documents(LAUNCHER)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) > 0]
    assert gpu and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu)
    assert config["max_workers"] >= max(t["max_workers"] for t in gpu)
    assert all("IamInstanceProfile" in t["node_config"] for t in types.values())
    assert any(re.search(r"pip install .*lsmap", c) for c in config["setup_commands"])
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in commands)
    assert "~/.ray/auth_token" in config["file_mounts"]
