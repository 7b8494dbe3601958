"""STAC end to end: a map from STAC Items on S3, and scans that find imagery through a real STAC
API (rustac's, served from memory on 127.0.0.1) and publish STAC catalogs of their outputs.

Extension JSON schemas (projection, label, processing) are not validated: they would be downloaded.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import geopandas
import numpy as np
import pystac
import pytest
import rasterio

from pipelines import stac, storage
from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout, create_store
from pipelines.mapping.polygons import SCHEMA
from pipelines.raster import Grid
from pipelines.scan import scan
from pipelines.scan.config import AreaOfInterest, StacImagery
from pipelines.scan.discovery import discover_stac
from pipelines.synthetic.writers import write_region

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]

SIZE, SEED = 128, 4  # seed 4 has landslide scars within 128 m
# Acquisition times; the ids sort the other way round, so order must come from the times.
SCENES = {"scene-b": ("2024-06-01T03:00:00Z", 4.0), "scene-a": ("2024-07-15T03:00:00Z", 12.0)}
CLOUDY = "scene-cloudy"
S2_SCENE = "S2B_48RUT_20240720_0_L2A"  # bands as separate assets, clouds in a classification
S2_CLOUD = 9  # the scene classification's "cloud, high probability"
RUSTAC = shutil.which("rustac") or str(Path(__file__).parents[2] / ".venv" / "bin" / "rustac")


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("stac-events")
    return [write_region(root / f"event{k}", size=SIZE, seed=SEED, event=k) for k in range(2)]


def _bounds(path) -> AreaOfInterest:
    with rasterio.open(path) as src:
        return AreaOfInterest(tuple(src.bounds), src.crs.to_string())


def _scene(item_id: str, when: str, cloud: float, href: str, aoi: AreaOfInterest) -> pystac.Item:
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(aoi.crs, "EPSG:4326", *aoi.bbox)
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    item = pystac.Item(
        id=item_id,
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=[left, bottom, right, top],
        datetime=pystac.utils.str_to_datetime(when),
        properties={"eo:cloud_cover": cloud, "platform": "drone", "gsd": 1.0},
        collection="post-event",
    )
    item.add_asset("visual", pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["visual"]))
    return item


def _sentinel2_scene(rgb: Path, folder: Path, aoi: AreaOfInterest) -> pystac.Item:
    """A Sentinel-2 L2A style Item of ``rgb``: one single-band COG asset per band and an ``scl``
    scene classification at twice the pixel size, clouds (:data:`S2_CLOUD`) over its top-left
    quarter, vegetation (4) elsewhere."""
    folder.mkdir()
    with rasterio.open(rgb) as src:
        profile, bands = src.profile | {"driver": "COG", "count": 1}, src.read()
    profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
    item = _scene(S2_SCENE, "2024-07-20T03:00:00Z", 5.0, rgb.as_uri(), aoi)
    item.collection_id = "sentinel-2-l2a"
    del item.assets["visual"]
    for band, values in zip(("red", "green", "blue"), bands, strict=True):
        with rasterio.open(folder / f"{band}.tif", "w", **profile) as dst:
            dst.write(values[None])
        item.add_asset(band, pystac.Asset((folder / f"{band}.tif").as_uri()))
    half = SIZE // 2
    scl = np.full((1, half, half), 4, np.uint8)
    scl[:, : half // 2, : half // 2] = S2_CLOUD
    transform = profile["transform"] * rasterio.Affine.scale(2)
    scl_profile = profile | {"height": half, "width": half, "transform": transform, "nodata": 0}
    with rasterio.open(folder / "scl.tif", "w", **scl_profile) as dst:
        dst.write(scl)
    item.add_asset("scl", pystac.Asset((folder / "scl.tif").as_uri()))
    return item


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stac_api(events, tmp_path_factory):
    """A STAC API on 127.0.0.1 serving post-event scenes of the region (one too cloudy)."""
    root = tmp_path_factory.mktemp("stac-api")
    aoi = _bounds(events[0].rgb)
    # file:// hrefs: a bare path in an item served over http means a path on that server.
    items = [
        _scene(item_id, when, cloud, events[k].rgb.as_uri(), aoi)
        for k, (item_id, (when, cloud)) in enumerate(SCENES.items())
    ]
    items.append(_scene(CLOUDY, "2024-07-01T03:00:00Z", 90.0, events[1].rgb.as_uri(), aoi))
    items.append(_sentinel2_scene(events[1].rgb, root / "s2", aoi))
    extent = pystac.Extent(
        pystac.SpatialExtent([items[0].bbox]), pystac.TemporalExtent([[None, None]])
    )
    for name in ("post-event", "sentinel-2-l2a"):
        collection = pystac.Collection(name, f"{name} scenes", extent)
        (root / f"{name}.json").write_text(json.dumps(collection.to_dict(include_self_link=False)))
    features = [item.to_dict(include_self_link=False) for item in items]
    (root / "items.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    address = f"127.0.0.1:{_free_port()}"
    server = subprocess.Popen(
        [
            RUSTAC,
            "serve",
            "--addr",
            address,
            str(root / "post-event.json"),
            str(root / "sentinel-2-l2a.json"),
            str(root / "items.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{address}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{url}/search", timeout=1) as r:
                    if len(json.load(r)["features"]) == len(items):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"rustac serve did not come up at {url}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_stac_api_search_finds_the_scenes_over_the_area_in_time_order(stac_api, events):
    aoi = _bounds(events[0].rgb)
    source = StacImagery(
        api=stac_api, collection="post-event", max_cloud_cover=20, datetime="2024-05-01/.."
    )
    images, ignored = discover_stac(source, aoi)
    assert [image.id for image in images] == ["scene-b", "scene-a"]
    assert images[0].uri == events[0].rgb.as_uri()
    assert ignored == [f"{CLOUDY} (cloud cover 90.0%)"]
    # Outside the time window, or outside the area: nothing.
    late = StacImagery(api=stac_api, collection="post-event", datetime="2025-01-01/..")
    assert discover_stac(late, aoi) == ([], [])
    far = AreaOfInterest((600_000.0, 3_100_000.0, 601_000.0, 3_101_000.0), aoi.crs)
    assert discover_stac(StacImagery(api=stac_api), far) == ([], [])


def test_scan_by_stac_api_publishes_polygons_and_stac(stac_api, events, trained_bundle, tmp_path):
    aoi = _bounds(events[0].rgb)
    watchlist = tmp_path / "watch.yaml"
    watchlist.write_text(
        f"""
regions:
  - name: bijie
    aoi: {{bbox: {list(aoi.bbox)}, crs: {aoi.crs}}}
    imagery: {{stac_api: "{stac_api}", collection: post-event, max_cloud_cover: 20}}
    dem: {events[0].dem}
    model: {trained_bundle}
    output: {tmp_path / "scans"}
    threshold: 0.5
    schedule: "@daily"
    event: {{id: bijie-rain-2024, date: 2024-05-30}}
    mapping: {{chunk: 128}}
"""
    )
    # A partial map of the first scene from an interrupted scan with other settings: not reported
    # yet, so the scan maps it again instead of stopping at the mapper's "different run" refusal.
    root = tmp_path / "scans" / "bijie"
    with rasterio.open(events[0].rgb) as src:
        grid = Grid(src.crs, src.transform, src.height, src.width)
    create_store(OutputLayout(str(root / "scene-b")), grid, 64, "uint8", {"other": "settings"})

    [result] = scan(str(watchlist))
    assert result["status"] == "scanned", result["error"]
    assert [s["image"] for s in result["scanned"]] == ["scene-b", "scene-a"]
    assert result["scanned"][1]["previous_image"] == "scene-b"
    ledger = json.loads((root / "_ledger.json").read_text())
    assert sorted(ledger["images"]) == ["scene-a", "scene-b"]

    out = root / "scene-a"
    landslides = geopandas.read_parquet(out / "landslides.parquet")
    assert list(landslides.columns) == [*SCHEMA, "geometry"] and len(landslides) > 0
    assert set(landslides["status"]) <= {"new", "existing"}
    assert (landslides["source_id"] == "scene-a").all()
    assert (landslides["source_sensor"] == "drone").all()
    assert (landslides["event_id"] == "bijie-rain-2024").all()
    assert (landslides["scan_id"] == "bijie/scene-a").all()
    assert landslides["source_datetime"].iloc[0].isoformat() == "2024-07-15T03:00:00+00:00"
    assert landslides.crs == aoi.crs
    fgb = geopandas.read_file(out / "landslides.fgb")
    assert sorted(fgb["landslide_id"]) == sorted(landslides["landslide_id"])
    assert fgb.geometry.area.sum() == pytest.approx(landslides["area_m2"].sum())

    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_datetime"] == "2024-07-15T03:00:00+00:00"
    assert summary["alert_level"] in {"green", "yellow", "orange", "red"}
    assert summary["landslides"]["count"] == len(landslides)
    assert summary["max_probability"] >= landslides["prob_max"].max() - 1e-3

    [item] = pystac.read_file(str(out / "catalog.json")).get_items()
    assert item.id == "bijie-scene-a"
    assert item.properties["lsmap:alert_level"] == summary["alert_level"]
    assert item.assets["landslides_parquet"].get_absolute_href() == str(out / "landslides.parquet")
    assert "labels" in item.assets["landslides_fgb"].roles
    derived = [link.get_absolute_href() for link in item.links if link.rel == "derived_from"]
    assert derived == [f"{stac_api}/collections/post-event/items/scene-a"]


def test_scan_maps_band_assets_and_masks_clouds_of_a_sentinel2_style_item(
    stac_api, events, trained_bundle, tmp_path
):
    """Sentinel-2 L2A style: the model's image layer from the Item's red, green and blue assets
    (one file each), pixels its scene classification calls cloud are nodata in the map."""
    aoi = _bounds(events[1].rgb)
    watchlist = tmp_path / "watch.yaml"
    watchlist.write_text(
        f"""
regions:
  - name: s2
    aoi: {{bbox: {list(aoi.bbox)}, crs: {aoi.crs}}}
    imagery:
      stac_api: "{stac_api}"
      collection: sentinel-2-l2a
      layers: {{image: [red, green, blue]}}
      mask: {{asset: scl, codes: [{S2_CLOUD}, 10]}}
    dem: {events[1].dem}
    model: {trained_bundle}
    output: {tmp_path / "scans"}
    threshold: 0.5
    schedule: "@daily"
    mapping: {{chunk: 64}}
"""
    )
    [result] = scan(str(watchlist))
    assert result["status"] == "scanned", result["error"]
    assert [s["image"] for s in result["scanned"]] == [S2_SCENE]
    out = tmp_path / "scans" / "s2" / S2_SCENE
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert set(manifest["run"]["inputs"]) == {"image", "dem", "mask"}
    probability = open_probability(OutputLayout(str(out)), decode=True).values
    cloud = SIZE // 2  # the classification's cloudy quarter, at its 2 m pixels
    assert np.isnan(probability[:cloud, :cloud]).all()
    assert np.isfinite(probability[cloud:, :]).all() and np.isfinite(probability[:, cloud:]).all()


def test_map_from_stac_items_on_s3(events, trained_bundle, s3_bucket):
    bucket = f"s3://{s3_bucket}"
    aoi = _bounds(events[1].rgb)
    for name, path in (("rgb", events[1].rgb), ("dem", events[1].dem)):
        storage.write_bytes(f"{bucket}/items/{name}.tif", Path(path).read_bytes())
        item = _scene(name, "2024-07-15T03:00:00Z", 0.0, f"./{name}.tif", aoi)
        storage.write_text(f"{bucket}/items/{name}.json", json.dumps(item.to_dict()))
    out = f"{bucket}/map"
    manifest = map_region(
        trained_bundle,
        {"image": f"{bucket}/items/rgb.json", "dem": f"{bucket}/items/dem.json"},
        out,
        chunk=128,
        cog=True,
        polygons=True,
        progress=False,
    )
    # The items' assets, resolved.
    assert manifest["run"]["inputs"] == {
        "image": f"{bucket}/items/rgb.tif",
        "dem": f"{bucket}/items/dem.tif",
    }
    outputs = OutputLayout(out).resolve(manifest["outputs"])
    catalog = outputs["stac"]

    item = next(pystac.read_file(catalog, stac_io=stac.StorageStacIO()).get_items())
    assert sorted(item.assets) == [
        "manifest_json",
        "polygons_fgb",
        "polygons_geojson",
        "polygons_parquet",
        "probability_tif",
        "probability_zarr",
        "quicklook_png",
    ]
    assert item.properties["proj:shape"] == [SIZE, SIZE]
    derived = sorted(link.title for link in item.links if link.rel == "derived_from")
    assert derived == ["dem", "image"]
    polygons = geopandas.read_parquet(
        io.BytesIO(storage.read_bytes(outputs["polygons"]["geoparquet"]))
    )
    assert (polygons["source_id"] == "rgb").all() and polygons["status"].isna().all()
    assert polygons["model_version"].str.startswith("sha256:").all()
