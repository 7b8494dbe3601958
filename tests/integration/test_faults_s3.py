"""S3 faults on loopback and credentials: a flaky endpoint changes no byte, a permanent error is
not retried and names the URI, and secrets never reach output, logs or messages."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.proxy import FaultProxy

from lsmodel.bundle import ModelBundle
from pipelines import storage
from pipelines.bundles import save_bundle
from pipelines.errors import StorageError
from pipelines.ingest import ingest
from pipelines.mapping import map_region
from pipelines.synthetic.writers import write_region

# Recognisable values the local endpoint accepts like any other; neither looks like an AWS key,
# so only never writing them, not pattern-based redaction, keeps them out.
KEY_ID = "lsmapKeyId7Q4W9ZR2"
SECRET = "lsmap-Secret-5Xq9Vb2Lr8TzKp3"
FLAKY = {"fail_every": 5, "delay_every": 7}  # 20% of requests fail, every 7th is held back


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    path = tmp_path_factory.mktemp("region")
    write_region(str(path), size=192, seed=7)
    return path


@pytest.fixture(scope="module")
def model(random_bundle):
    return random_bundle


def _objects(prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` (relative key -> bytes), read straight from the endpoint."""
    fs, path = storage.filesystem(prefix)
    return {key[len(path) :]: fs.cat_file(key) for key in fs.find(path)}


@contextlib.contextmanager
def routed_through(proxy: FaultProxy) -> Iterator[None]:
    """This process's S3 traffic (s3fs and GDAL) goes through ``proxy`` inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", proxy.url)
        patch.setenv("AWS_S3_ENDPOINT", proxy.url.split("://")[1])
        # Quick retries: the defaults' longer delays are meant for real endpoints.
        patch.setenv("GDAL_HTTP_RETRY_DELAY", "0.05")
        yield
    storage.configure_gdal()  # GDAL back on the direct endpoint


def test_ingest_through_a_flaky_endpoint_writes_the_same_bytes(region, s3_endpoint, s3_bucket):
    bucket = f"s3://{s3_bucket}"
    storage.write_bytes(f"{bucket}/rgb.tif", (region / "rgb.tif").read_bytes())
    ingest(f"{bucket}/rgb.tif", f"{bucket}/clean.zarr", chunk=64)
    with FaultProxy(s3_endpoint, **FLAKY) as proxy, routed_through(proxy):
        ingest(f"{bucket}/rgb.tif", f"{bucket}/flaky.zarr", chunk=64)
    # GDAL read the COG and s3fs wrote the store through every kind of fault.
    assert set(proxy.injected) == {"slowdown", "reset", "delay"}
    assert proxy.injected["slowdown"] + proxy.injected["reset"] >= 4
    assert _objects(f"{bucket}/flaky.zarr") == _objects(f"{bucket}/clean.zarr")


@pytest.mark.parametrize(
    "key,denied,reason",
    [("denied.bin", 403, "access denied"), ("missing.bin", None, "not found")],
)
def test_permanent_errors_are_not_retried_and_name_the_uri(
    s3_endpoint, s3_bucket, key, denied, reason
):
    """403 from the proxy, 404 from the endpoint itself (the key does not exist)."""
    uri = f"s3://{s3_bucket}/in/{key}"
    deny = {f"/{s3_bucket}/in/{key}": denied} if denied else {}
    with (
        FaultProxy(s3_endpoint, deny=deny) as proxy,
        routed_through(proxy),
        pytest.raises(StorageError) as caught,
    ):
        storage.read_bytes(uri)
    assert str(caught.value).startswith(f"{uri}: cannot read: {reason}")
    assert [count for request, count in proxy.requests.items() if key in request] == [1]


def _chunks(files: dict[str, bytes]) -> dict[str, bytes]:
    """The chunk files of an array's files (Zarr v2 or v3): all but its metadata."""
    return {
        key: data
        for key, data in files.items()
        if not key.rsplit("/", 1)[-1].startswith(".") and not key.endswith("zarr.json")
    }


@pytest.fixture(scope="module")
def flaky_s3_map(region, model, s3_endpoint, tmp_path_factory):
    """``lsmap map`` in a fresh process with its own Ray, S3 inputs and output behind a flaky
    endpoint, and recognisable credentials; returns what it printed, wrote and logged."""
    import boto3

    bucket = "lsmap-flaky-map"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}"
    for name in ("rgb.tif", "dem.tif"):
        storage.write_bytes(f"{root}/in/{name}", (region / name).read_bytes())
    save_bundle(ModelBundle.from_bytes(storage.read_bytes(model)), f"{root}/model")
    # Ray's socket paths must stay short: its session folder goes in a short temporary folder.
    ray_tmp = tempfile.mkdtemp(prefix="lsmap-ray-", dir="/tmp")
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "pipelines", "map", "--model", f"{root}/model"]
    command += ["--rgb", f"{root}/in/rgb.tif", "--dem", f"{root}/in/dem.tif"]
    command += ["--out", f"{root}/map", "--chunk", "64", "--quiet"]
    with FaultProxy(s3_endpoint, **FLAKY) as proxy:
        env |= {
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "GDAL_HTTP_RETRY_DELAY": "0.05",
            "RAY_TMPDIR": ray_tmp,
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    yield {
        "done": done,
        "root": root,
        "injected": proxy.injected,
        "ray_files": [path for path in Path(ray_tmp).rglob("*") if path.is_file()],
    }
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_map_on_a_flaky_endpoint_gives_the_bytes_of_a_clean_run(
    flaky_s3_map, region, model, tmp_path, ray_cluster
):
    done = flaky_s3_map["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert flaky_s3_map["injected"]["slowdown"] + flaky_s3_map["injected"]["reset"] >= 4
    clean = tmp_path / "clean"
    map_region(
        model,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        str(clean),
        chunk=64,
        progress=False,
    )
    flaky = _objects(f"{flaky_s3_map['root']}/map/probability.zarr/probability")
    local = clean / "probability.zarr" / "probability"
    expected = {
        f"/{path.relative_to(local)}": path.read_bytes()
        for path in local.rglob("*")
        if path.is_file()
    }
    # The chunks, not the metadata (which names the run's own paths).
    assert len(_chunks(expected)) == 9
    assert _chunks(flaky) == _chunks(expected)
    assert storage.read_json(f"{flaky_s3_map['root']}/map/manifest.json")["status"] == "complete"


def test_credentials_never_reach_output_logs_or_messages(flaky_s3_map):
    done = flaky_s3_map["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    secrets = [SECRET, KEY_ID]
    written = _objects(f"{flaky_s3_map['root']}/map")
    assert "/manifest.json" in written
    assert any(key.startswith("/units/") for key in written)
    assert any(path.name.startswith("worker-") for path in flaky_s3_map["ray_files"])
    places = {"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}
    places |= {f"s3 object map{key}": data for key, data in written.items()}
    places |= {f"Ray file {path}": path.read_bytes() for path in flaky_s3_map["ray_files"]}
    assert len(places) > 20
    leaks = [where for where, data in places.items() for s in secrets if s.encode() in data]
    assert leaks == []
