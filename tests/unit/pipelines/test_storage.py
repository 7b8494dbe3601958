"""Storage URIs on the local filesystem: paths and file:// URLs, atomic writes, GDAL settings."""

from __future__ import annotations

import os

import pytest

from pipelines import storage
from pipelines.errors import StorageError


def test_join_keeps_scheme_and_single_slashes():
    assert storage.join("s3://bucket/run/", "units", "/3.json") == "s3://bucket/run/units/3.json"
    assert storage.join("file:///data/out", "a.zarr") == "file:///data/out/a.zarr"
    assert storage.join("out", "", "m.json") == "out/m.json"


def test_absolute_fixes_relative_local_paths_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("maps/region") == f"{tmp_path}/maps/region"
    for uri in ("/data/rgb.tif", "s3://bucket/rgb.tif", "file:///data/rgb.tif", "https://x/i.json"):
        assert storage.absolute(uri) == uri


def test_is_remote_and_gdal_path():
    assert storage.is_remote("s3://bucket/key")
    assert not storage.is_remote("/data/x.tif")
    assert not storage.is_remote("file:///data/x.tif")
    assert storage.gdal_path("s3://bucket/dir/x.tif") == "/vsis3/bucket/dir/x.tif"
    assert storage.gdal_path("file:///data/x.tif") == "/data/x.tif"


def test_unsupported_scheme_is_a_storage_error():
    with pytest.raises(StorageError, match="gs://bucket/x.tif.*unsupported"):
        storage.read_bytes("gs://bucket/x.tif")


def test_plain_paths_and_file_urls_reach_the_same_files(tmp_path):
    path = tmp_path / "sub" / "a.json"
    storage.write_json(f"file://{path}", {"b": 1, "a": [1, 2]})
    assert storage.read_json(str(path)) == {"a": [1, 2], "b": 1}
    assert storage.exists(str(path)) and storage.exists(f"file://{path}")
    storage.write_text(storage.join(str(tmp_path), "sub", "b.txt"), "héllo")
    assert storage.read_bytes(f"file://{tmp_path}/sub/b.txt") == "héllo".encode()
    assert storage.listdir(f"file://{tmp_path}/sub") == ["a.json", "b.txt"]
    fs, inner = storage.filesystem(f"file://{path}")
    assert inner == str(path) and fs.exists(inner)


def test_write_bytes_replaces_the_file_whole(tmp_path):
    path = tmp_path / "manifest.json"
    storage.write_bytes(str(path), b"old content")
    with open(path, "rb") as reader:
        storage.write_bytes(str(path), b"new")
        # A reader that opened the old file still sees all of it: the new file was renamed over
        # it, not written into it.
        assert reader.read() == b"old content"
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_failed_write_keeps_old_content_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "manifest.json"
    storage.write_bytes(str(path), b"old content")
    with pytest.raises(TypeError):
        storage.write_bytes(str(path), object())
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_upload_file_copies_whole_and_replaces_atomically(tmp_path):
    source = tmp_path / "staging.tif"
    source.write_bytes(b"x" * (40 * 2**20 + 7))  # more than one copy buffer
    target = tmp_path / "out" / "probability.tif"
    storage.write_bytes(str(target), b"old")
    with open(target, "rb") as reader:
        storage.upload_file(str(source), str(target))
        assert reader.read() == b"old"
    assert target.read_bytes() == source.read_bytes()
    assert os.listdir(target.parent) == ["probability.tif"]


def test_missing_file_is_a_storage_error_naming_it(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(StorageError, match=f"{missing}: cannot read: not found"):
        storage.read_bytes(str(missing))
    assert not storage.exists(str(missing))


def test_listdir_of_missing_directory_is_empty_and_remove_is_idempotent(tmp_path):
    assert storage.listdir(str(tmp_path / "units")) == []
    storage.write_bytes(str(tmp_path / "units" / "1.json"), b"{}")
    storage.write_bytes(str(tmp_path / "units" / "2.json"), b"{}")
    storage.remove(str(tmp_path / "units" / "1.json"))
    storage.remove(str(tmp_path / "units" / "1.json"))
    assert storage.listdir(str(tmp_path / "units")) == ["2.json"]
    storage.remove(str(tmp_path / "units"), recursive=True)
    assert not storage.exists(str(tmp_path / "units"))


def test_redact_removes_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
    text = (
        "s3://user:p4ssw0rd@host/bucket "
        "AWS_SECRET_ACCESS_KEY=abc123 "
        '{"secret": "s3cr3t", "token": "tok", "endpoint_url": "http://127.0.0.1:9000"} '
        "key id AKIAIOSFODNN7EXAMPLE "
        "error: signature mismatch for wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY "
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d"
    )
    clean = storage.redact(text)
    for secret in (
        "p4ssw0rd",
        "abc123",
        "s3cr3t",
        '"tok"',
        "AKIAIOSFODNN7EXAMPLE",
        "EXAMPLEKEY",
        "f00d",
    ):
        assert secret not in clean
    # What is not a credential survives.
    assert "http://127.0.0.1:9000" in clean and "s3://***@host/bucket" in clean


def test_configure_gdal_derives_s3_settings_from_the_aws_endpoint(monkeypatch):
    for key in (
        "AWS_S3_ENDPOINT",
        "AWS_HTTPS",
        "AWS_VIRTUAL_HOSTING",
        "GDAL_DISABLE_READDIR_ON_OPEN",
    ):
        # setenv first, so that the test's end removes what configure_gdal sets.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "9")
    storage.configure_gdal()
    storage.configure_gdal()
    assert os.environ["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    assert os.environ["AWS_HTTPS"] == "NO"
    assert os.environ["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert os.environ["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert os.environ["GDAL_HTTP_MAX_RETRY"] == "9"  # the user's own setting wins
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.org")
    storage.configure_gdal()
    assert os.environ["AWS_S3_ENDPOINT"] == "s3.example.org"
    assert os.environ["AWS_HTTPS"] == "YES"


def test_s3_filesystem_uses_the_endpoint_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    fs, path = storage.filesystem("s3://bucket/dir/key.json")
    assert path == "bucket/dir/key.json"
    assert fs.endpoint_url == "http://127.0.0.1:9000"
    other, _ = storage.filesystem("s3://bucket/other")
    assert other is fs  # one client per process and settings


@pytest.mark.parametrize(
    "uri", ["s3://AKEYID:s3cr3tValue9@bucket/map", "file://me:s3cr3tValue9@host/x"]
)
def test_credentials_in_a_uri_are_refused_without_echoing_them(uri):
    with pytest.raises(StorageError) as caught:
        storage.exists(uri)
    message = str(caught.value)
    assert "credentials in URIs are not supported" in message
    assert "s3cr3tValue9" not in message and "AKEYID" not in message


def test_s3_clients_retry_transient_errors_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    for variable in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(variable, raising=False)
    fs, _ = storage.filesystem("s3://bucket/key")
    # botocore's standard mode: backoff with jitter on throttling, 5xx and dropped connections.
    assert fs.config_kwargs["retries"] == {"mode": "standard", "max_attempts": 10}
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    fs, _ = storage.filesystem("s3://bucket/key")
    assert "retries" not in fs.config_kwargs  # botocore reads the user's setting itself
