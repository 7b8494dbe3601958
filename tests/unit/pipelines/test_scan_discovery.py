"""Scan discovery through a static STAC catalog: area, time window, cloud cover, assets, order."""

from __future__ import annotations

import datetime

import pystac
import pytest

from pipelines.errors import InputError
from pipelines.inputs import LayerInput
from pipelines.scan.config import AreaOfInterest, StacImagery
from pipelines.scan.discovery import discover_stac, parse_interval

# 1 km around (105.30 E, 27.30 N), in UTM 48N as a watch list gives it.
AOI = AreaOfInterest((529_700.0, 3_019_700.0, 530_700.0, 3_020_700.0), "EPSG:32648")
INSIDE = [105.29, 27.29, 105.31, 27.31]
ELSEWHERE = [106.5, 28.5, 106.6, 28.6]
NOW = datetime.datetime(2024, 9, 1, tzinfo=datetime.UTC)


def _item(item_id, when, bbox=INSIDE, cloud=None, assets=("visual",), collection="post-event"):
    left, bottom, right, top = bbox
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    item = pystac.Item(
        id=item_id,
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=list(bbox),
        datetime=datetime.datetime.fromisoformat(when),
        properties={} if cloud is None else {"eo:cloud_cover": cloud},
        collection=collection,
    )
    for key in assets:
        item.add_asset(key, pystac.Asset(f"./{item_id}-{key}.tif", media_type=pystac.MediaType.COG))
    return item


@pytest.fixture
def catalog(tmp_path):
    """An event catalog as agencies publish them: a collection of post-event scenes."""
    root = pystac.Catalog("event", "post-event imagery")
    collection = pystac.Collection(
        "post-event",
        "scenes",
        pystac.Extent(
            pystac.SpatialExtent([[105, 27, 107, 29]]), pystac.TemporalExtent([[None, None]])
        ),
    )
    root.add_child(collection)
    for item in [
        _item("z-first", "2024-07-16T03:00:00+00:00", cloud=5),  # ids do not sort by time
        _item("a-second", "2024-08-20T03:00:00+00:00"),  # no cloud cover given: kept
        _item("cloudy", "2024-08-01T03:00:00+00:00", cloud=80),
        _item("far", "2024-08-02T03:00:00+00:00", bbox=ELSEWHERE),
        _item("old", "2024-05-01T03:00:00+00:00", cloud=0),
        _item("bands", "2024-08-03T03:00:00+00:00", assets=("B02", "B03")),
        _item("bad id!", "2024-08-04T03:00:00+00:00"),
    ]:
        collection.add_item(item)
    root.normalize_hrefs(str(tmp_path / "catalog"))
    root.save(pystac.CatalogType.SELF_CONTAINED)
    return str(tmp_path / "catalog" / "catalog.json")


def test_static_catalog_items_are_filtered_and_ordered_by_time(catalog, tmp_path):
    source = StacImagery(catalog=catalog, max_cloud_cover=20, datetime="2024-06-01/..")
    images, ignored = discover_stac(source, AOI)
    assert [image.id for image in images] == ["z-first", "a-second"]
    first = images[0]
    assert first.datetime == "2024-07-16T03:00:00+00:00"
    assert first.uri == str(tmp_path / "catalog/post-event/z-first/z-first-visual.tif")
    assert first.item.id == "z-first"
    reasons = dict(entry.split(" (", 1) for entry in ignored)
    assert reasons["cloudy"].startswith("cloud cover 80")
    assert reasons["far"] == "outside the area of interest)"
    assert reasons["old"] == "outside the time window)"
    assert "cannot tell which asset" in reasons["bands"]
    assert reasons["bad id!"] == "its id cannot name a folder)"
    # An asset key picks among several; a window of days ends now.
    picked, _ = discover_stac(StacImagery(catalog=catalog, asset="B03", days=30), AOI, now=NOW)
    assert [image.id for image in picked] == ["bands"]


def test_stac_errors_name_the_catalog_or_api(tmp_path):
    with pytest.raises(InputError, match="nothing.json: cannot read it"):
        discover_stac(StacImagery(catalog=str(tmp_path / "nothing.json")), AOI)
    with pytest.raises(InputError, match=r"STAC API http://127.0.0.1:9: search failed"):
        discover_stac(StacImagery(api="http://127.0.0.1:9"), AOI)  # nothing listens there


def test_interval_parsing():
    utc = datetime.UTC
    assert parse_interval("2024-07-01/..") == (datetime.datetime(2024, 7, 1, tzinfo=utc), None)
    start, end = parse_interval("2024-07-01T00:00:00Z/2024-07-31")
    assert end == datetime.datetime(2024, 7, 31, 23, 59, 59, 999999, tzinfo=utc)
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_interval("last week")


def test_band_assets_map_to_layers_and_a_classification_asset_to_a_mask(tmp_path):
    """Sentinel-2 L2A style: each band a single-band asset, clouds in a scene classification."""
    root = pystac.Catalog("s2", "sentinel-2 style scenes")
    root.add_item(_item("s2a", "2024-07-20T03:00:00+00:00", assets=("red", "green", "nir", "scl")))
    root.normalize_hrefs(str(tmp_path / "s2"))
    root.save(pystac.CatalogType.SELF_CONTAINED)
    source = StacImagery(
        catalog=str(tmp_path / "s2" / "catalog.json"),
        layers=(("ms", ("red", "green", "nir")),),
        mask_asset="scl",
        mask_codes=(3, 8, 9, 10),
    )
    (image,), _ = discover_stac(source, AOI)
    folder = tmp_path / "s2" / "s2a"
    layers = image.layers()
    assert layers["ms"].uri == tuple(
        str(folder / f"s2a-{band}.tif") for band in ("red", "green", "nir")
    )
    assert layers["mask"] == LayerInput(str(folder / "s2a-scl.tif"), mask=(3, 8, 9, 10))
    assert image.uri == str(folder / "s2a-red.tif")
    missing = StacImagery(catalog=source.catalog, layers=(("ms", ("red", "swir16")),))
    images, ignored = discover_stac(missing, AOI)
    assert not images and "has no asset 'swir16'" in ignored[0]
