"""What a scan does before it maps anything: find images, skip what is done or locked, fail loudly."""

from __future__ import annotations

import os

import pytest

from pipelines import storage
from pipelines.errors import InputError
from pipelines.scan import parse_watchlist, scan
from pipelines.scan.discovery import discover
from pipelines.scan.ledger import RegionLock, write_ledger


@pytest.fixture
def watchlist(tmp_path):
    (tmp_path / "imagery").mkdir()
    text = """
regions:
  - name: bijie
    aoi: {bbox: [530000, 3020616, 530384, 3021000], crs: EPSG:32648}
    imagery: imagery/
    dem: dem.tif
    model: model.lsmap
    output: out
    threshold: 0.5
    schedule: "0 * * * *"
"""
    return parse_watchlist(text, str(tmp_path / "watch.yaml"))


def _touch(path) -> None:
    with open(path, "wb") as f:
        f.write(b"not read by these tests")


def _files(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )


def test_discovery_orders_images_by_id_and_reports_other_names(tmp_path):
    for name in [
        "2024-07-15.tif",
        "2024-06-01.TIFF",
        "2024-08-30.zarr",
        "notes.txt",
        ".part.tif",
        "_skip.tif",
        "bad name.tif",
    ]:
        _touch(tmp_path / name)
    images, ignored = discover(str(tmp_path))
    assert [i.id for i in images] == ["2024-06-01", "2024-07-15", "2024-08-30"]
    assert images[0].uri == str(tmp_path / "2024-06-01.TIFF")
    assert sorted(ignored) == [".part.tif", "_skip.tif", "bad name.tif", "notes.txt"]


def test_two_images_with_one_id_are_an_error(tmp_path):
    _touch(tmp_path / "a.tif")
    _touch(tmp_path / "a.tiff")
    with pytest.raises(InputError, match="two images have the id 'a'"):
        discover(str(tmp_path))


def test_nothing_new_writes_nothing(watchlist, tmp_path):
    [result] = scan(watchlist)
    assert result["status"] == "up to date" and result["scanned"] == []
    assert not (tmp_path / "out").exists()

    _touch(tmp_path / "imagery" / "2024-06-01.tif")
    [region] = watchlist.regions
    write_ledger(region.root, region.name, {"2024-06-01": {"previous_image": None}})
    before = _files(tmp_path / "out")
    [result] = scan(watchlist)
    assert result["status"] == "up to date" and result["already_scanned"] == 1
    assert _files(tmp_path / "out") == before


def test_a_region_held_by_another_scan_is_skipped(watchlist, tmp_path):
    _touch(tmp_path / "imagery" / "2024-06-01.tif")
    [region] = watchlist.regions
    other = RegionLock(region.root)
    assert other.acquire() is None
    try:
        [result] = scan(watchlist)
    finally:
        other.release()
    assert result["status"] == "busy"
    assert result["held_by"]["owner"] == other.owner
    assert not storage.exists(storage.join(region.root, "_ledger.json"))


def test_a_failing_image_fails_its_region_and_says_what_to_do(watchlist, tmp_path):
    _touch(tmp_path / "imagery" / "2024-06-01.tif")  # the model does not exist
    [result] = scan(watchlist)
    assert result["status"] == "failed"
    assert result["error"].startswith("image 2024-06-01: ")
    assert "model.lsmap" in result["error"]
    assert "leading '_'" in result["error"]
    [region] = watchlist.regions
    assert storage.listdir(storage.join(region.root, "_lock")) == []  # given back
