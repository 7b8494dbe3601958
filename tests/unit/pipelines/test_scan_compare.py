"""New-landslide detection between two probability maps, its polygons, picture and report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine

from pipelines.mapping.output import OutputLayout, create_store, encode, open_array
from pipelines.raster import Grid
from pipelines.scan.compare import LANDSLIDE, NEW, compare_maps
from pipelines.scan.config import parse_watchlist
from pipelines.scan.discovery import Image
from pipelines.scan.report import alert_level, render_markdown, summarise

PIXEL = 2.0  # m: a pixel is 4 m²
GRID = Grid("EPSG:32648", Affine(PIXEL, 0, 530_000, 0, -PIXEL, 3_021_000), 80, 96)
CHUNK = 32
A = np.s_[5:15, 5:15]  # 100 px, there before and after
B = np.s_[28:40, 40:52]  # 144 px, new, across a chunk corner (row 32, column 48)
C = np.s_[60:64, 10:20]  # 40 px, 0.45 before (just under the threshold), 0.6 after


def _store(path, grid: Grid, probability: np.ndarray) -> str:
    layout = OutputLayout(str(path))
    create_store(layout, grid, CHUNK, "uint8", {"test": str(path)})
    valid = np.isfinite(probability)
    open_array(layout)[:] = encode(np.nan_to_num(probability), valid, "uint8")
    return str(path)


@pytest.fixture
def maps(tmp_path):
    before = np.full(GRID.shape, 0.05)
    before[A] = 0.9
    before[C] = 0.45
    after = before.copy()
    after[B] = 0.8
    after[C] = 0.6
    after[70:72, 90:92] = np.nan  # no data now
    return _store(tmp_path / "before", GRID, before), _store(tmp_path / "after", GRID, after)


def _areas(features):
    return [f["properties"]["area_m2"] for f in features]


def test_first_map_reports_every_landslide_and_none_as_new(maps):
    _, after = maps
    result = compare_maps(after, None, threshold=0.5, before_threshold=0.5, chunk=CHUNK)
    assert result.new is None
    assert _areas(result.landslides) == [144 * 4, 100 * 4, 40 * 4]  # largest first
    assert [f["properties"]["id"] for f in result.landslides] == [1, 2, 3]
    first = result.landslides[0]["properties"]
    assert first["prob_mean"] == pytest.approx(0.8, abs=0.003)
    assert 105 < first["centroid_lon"] < 106 and 27 < first["centroid_lat"] < 28


def test_new_landslides_are_high_now_and_low_before(maps):
    before, after = maps
    result = compare_maps(after, before, threshold=0.5, before_threshold=0.5, chunk=CHUNK)
    # B is one polygon although four chunks cut it; A was there before.
    assert _areas(result.new) == [144 * 4, 40 * 4]
    assert _areas(result.landslides) == [144 * 4, 100 * 4, 40 * 4]


def test_a_lower_before_threshold_ignores_flicker(maps):
    before, after = maps
    result = compare_maps(after, before, threshold=0.5, before_threshold=0.3, chunk=CHUNK)
    assert _areas(result.new) == [144 * 4]  # C was 0.45 before: not clearly landslide-free


def test_small_polygons_are_left_out(maps):
    before, after = maps
    result = compare_maps(
        after, before, threshold=0.5, before_threshold=0.5, min_area_m2=200, chunk=CHUNK
    )
    assert _areas(result.new) == [144 * 4]
    assert _areas(result.landslides) == [144 * 4, 100 * 4]


def test_previous_map_on_another_footprint(tmp_path):
    """The previous image covered less (columns 4-63) on a lattice shifted by whole pixels: only
    what it covered can be new."""
    offset = 4
    earlier_grid = GRID.window(0, offset, GRID.height, 60)
    before = np.full(earlier_grid.shape, 0.05)
    before[A[0], A[1].start - offset : A[1].stop - offset] = 0.9
    after = np.full(GRID.shape, 0.05)
    after[A] = 0.9
    after[B] = 0.8
    after[50:56, 70:80] = 0.9  # outside what the previous image covered
    result = compare_maps(
        _store(tmp_path / "after", GRID, after),
        _store(tmp_path / "before", earlier_grid, before),
        threshold=0.5,
        before_threshold=0.5,
        chunk=CHUNK,
    )
    assert _areas(result.new) == [144 * 4]
    assert _areas(result.landslides) == [144 * 4, 100 * 4, 60 * 4]


def test_picture_keeps_small_new_landslides_visible(tmp_path):
    before = np.full(GRID.shape, 0.05)
    after = before.copy()
    after[A] = 0.9
    before[A] = 0.9
    after[41, 77] = 0.9  # one new pixel
    result = compare_maps(
        _store(tmp_path / "after", GRID, after),
        _store(tmp_path / "before", GRID, before),
        threshold=0.5,
        before_threshold=0.5,
        chunk=CHUNK,
        picture_size=16,
    )
    step = 6  # 96 px across at most 16 coarse pixels
    assert result.picture.shape == (-(-80 // step), -(-96 // step))
    assert result.picture[41 // step, 77 // step] == NEW
    assert result.picture[10 // step, 10 // step] == LANDSLIDE
    assert (result.picture == NEW).sum() == 1


def test_summary_and_report(maps, tmp_path):
    before, after = maps
    result = compare_maps(after, before, threshold=0.5, before_threshold=0.3, chunk=CHUNK)
    [region] = parse_watchlist(
        """
regions:
  - name: bijie
    aoi: {bbox: [530000, 3020840, 530192, 3021000], crs: EPSG:32648}
    imagery: s3://b/imagery/
    dem: s3://b/dem.tif
    model: s3://b/model.lsmap
    output: s3://b/scans/
    threshold: 0.5
    before_threshold: 0.3
    schedule: "@daily"
""",
        "w.yaml",
    ).regions
    outputs = {"quicklook": "quicklook.png", "picture": "landslides.png", "report": "report.md"}
    summary = summarise(
        region, Image("2024-07-15", "s3://b/imagery/2024-07-15.tif"), "2024-06-01", result, outputs
    )
    assert summary["landslides"] == {"count": 3, "area_m2": (144 + 100 + 40) * 4}
    assert summary["new_landslides"] == {"count": 1, "area_m2": 144 * 4}
    assert summary["top_new_landslides"][0]["area_m2"] == 144 * 4
    json.dumps(summary)  # plain JSON values only

    report = render_markdown(summary)
    assert report == render_markdown(summary)  # no clock in it
    assert "| New landslides | 1 polygons, 576 m² (0.06 ha) |" in report
    assert "`2024-06-01`" in report and "(landslides.png)" in report
    assert "new where it was < 0.3 in the previous map" in report

    assert summary["max_probability"] == pytest.approx(0.9, abs=0.003)
    assert summary["alert_level"] == "yellow" and summary["alert_basis"] == "new landslides"
    assert "| Alert level | **yellow** (by the area of new landslides" in report
    left, bottom, right, top = summary["bbox"]
    assert 105 < left < right < 106 and 27 < bottom < top < 28
    # The landslides lie inside the mapped area.
    inner = summary["landslides_bbox"]
    assert left <= inner[0] < inner[2] <= right and bottom <= inner[1] < inner[3] <= top


@pytest.mark.parametrize(
    ("areas", "level"),
    [([], "green"), ([9_999.0], "yellow"), ([6_000.0, 4_000.0], "orange"), ([100_000.0], "red")],
)
def test_alert_level_follows_the_total_area(areas, level):
    assert alert_level([{"properties": {"area_m2": area}} for area in areas]) == level
