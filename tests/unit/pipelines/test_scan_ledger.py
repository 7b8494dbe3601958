"""The scan ledger and the region lock, on the local filesystem and on S3."""

from __future__ import annotations

import datetime
import json
import time
import uuid

import pytest

from pipelines import storage
from pipelines.errors import StorageError
from pipelines.scan.ledger import RegionLock, create_exclusive, read_ledger, write_ledger


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "scans" / "region")
    import boto3

    # A bucket of our own: the shared s3_bucket fixture names buckets after the test, and
    # parametrised test names are not valid bucket names.
    bucket = f"lsmap-ledger-{uuid.uuid4().hex[:12]}"
    endpoint = request.getfixturevalue("s3_endpoint")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/scans/region"


def test_ledger_round_trip(root):
    assert read_ledger(root) == {}
    images = {
        "2024-06-01": {"previous_image": None},
        "2024-07-15": {"previous_image": "2024-06-01"},
    }
    write_ledger(root, "region", images)
    assert read_ledger(root) == images


def test_a_file_that_is_not_a_ledger_is_refused(root):
    storage.write_json(storage.join(root, "_ledger.json"), {"something": "else"})
    with pytest.raises(StorageError, match="not an lsmap scan ledger"):
        read_ledger(root)


def test_exclusive_create_refuses_an_existing_file(root):
    uri = storage.join(root, "claim.json")
    create_exclusive(uri, b"first")
    with pytest.raises(FileExistsError):
        create_exclusive(uri, b"second")
    assert storage.read_bytes(uri) == b"first"


def test_one_scan_at_a_time(root):
    first, second = RegionLock(root), RegionLock(root)
    assert first.acquire() is None
    try:
        holder = second.acquire()
        assert holder is not None and holder["owner"] == first.owner
    finally:
        first.release()
    assert storage.listdir(storage.join(root, "_lock")) == []
    assert second.acquire() is None
    second.release()


def test_a_dead_scans_lock_is_taken_over(root):
    stale = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).isoformat()
    storage.write_json(
        storage.join(root, "_lock", "0.json"), {"owner": "dead", "renewed_at": stale}
    )
    lock = RegionLock(root, timeout_s=60)
    assert lock.acquire() is None
    assert lock.generation == 1
    assert RegionLock(root, timeout_s=60).acquire()["owner"] == lock.owner
    lock.release()
    assert storage.listdir(storage.join(root, "_lock")) == []


def test_the_holder_renews_its_lock(tmp_path):
    root = str(tmp_path / "region")
    lock = RegionLock(root, timeout_s=2.0)
    assert lock.acquire() is None
    try:
        uri = storage.join(root, "_lock", "0.json")
        first = json.loads(storage.read_bytes(uri))["renewed_at"]
        time.sleep(2.5)  # longer than the timeout: only renewal keeps the lock alive
        assert json.loads(storage.read_bytes(uri))["renewed_at"] > first
        assert RegionLock(root, timeout_s=2.0).acquire()["owner"] == lock.owner
    finally:
        lock.release()
