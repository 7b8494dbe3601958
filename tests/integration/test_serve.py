"""``lsmap serve`` on a real map output: tiles, WMTS for QGIS, and the page in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from PIL import Image
from serve_client import centre_tile, centre_tiles, get, get_json, lsmap_serve, tile_url

from pipelines import storage
from pipelines.cli import main
from pipelines.mapping import map_region
from pipelines.mapping.export import open_probability
from pipelines.mapping.output import OutputLayout
from pipelines.mapping.score import score_map
from pipelines.synthetic.writers import write_region

CHROMIUM = "/usr/bin/chromium"
WMTS = "{http://www.opengis.net/wmts/1.0}"
OWS = "{http://www.opengis.net/ows/1.1}"


@pytest.fixture(scope="module")
def map_output(ray_cluster, trained_bundle, tmp_path_factory) -> str:
    """A finished map run with COG and polygons, by a model that really finds the landslides of
    this region (seed 11 has several scars in its first 256 m)."""
    root = tmp_path_factory.mktemp("serve")
    write_region(root / "region", size=256, seed=11)
    out = str(root / "map")
    manifest = map_region(
        trained_bundle,
        {"image": str(root / "region" / "rgb.tif"), "dem": str(root / "region" / "dem.tif")},
        out,
        chunk=256,
        cog=True,
        polygons=True,
        quicklook=False,
        progress=False,
    )
    assert {"cog", "polygons"} <= set(manifest["outputs"])
    return out


@pytest.fixture(scope="module")
def server(map_output):
    """``lsmap serve OUT`` in a subprocess, as a user starts it; yields the base URL."""
    with lsmap_serve(map_output) as base:
        yield base


def test_tiles_of_cog_and_zarr_show_the_same_probability(server):
    description = get_json(f"{server}/api/map.json")
    assert [layer["id"] for layer in description["layers"]] == ["cog", "zarr"]
    pictures = {}
    for layer in description["layers"]:
        tilejson = get_json(layer["tilejson"])
        tile = centre_tile(tilejson)
        for fmt, media_type in (("png", "image/png"), ("webp", "image/webp")):
            content_type, body = get(tile_url(tilejson, *tile, fmt))
            assert content_type == media_type
            rgba = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"), dtype=np.float32)
            assert (rgba[..., 3] > 0).mean() > 0.2, "the centre tile should be mostly data"
            assert rgba[..., :3][rgba[..., 3] > 0].std() > 5, "a tile of one flat colour"
            pictures[layer["id"], fmt] = rgba
    # The same map through GDAL (COG) and through xarray (Zarr): same colours, within rounding.
    difference = np.abs(pictures["cog", "png"] - pictures["zarr", "png"])
    assert difference.mean() < 2


def test_wmts_capabilities_name_a_layer_whose_tiles_load(server):
    """What QGIS does with the WMTS address: read the capabilities, pick a layer, get tiles."""
    for layer_id in ("cog", "zarr"):
        _, body = get(f"{server}/{layer_id}/WMTSCapabilities.xml")
        root = ET.fromstring(body)
        layers = {layer.findtext(f"{OWS}Identifier"): layer for layer in root.iter(f"{WMTS}Layer")}
        name = f"lsmap_{layer_id}_WebMercatorQuad_probability"
        assert name in layers, sorted(layers)
        limits = layers[name].find(f".//{WMTS}TileMatrixLimits")
        template = layers[name].find(f"{WMTS}ResourceURL").get("template")
        url = (
            template.replace("{TileMatrix}", limits.findtext(f"{WMTS}TileMatrix"))
            .replace("{TileCol}", limits.findtext(f"{WMTS}MinTileCol"))
            .replace("{TileRow}", limits.findtext(f"{WMTS}MinTileRow"))
        )
        content_type, tile = get(url)
        assert content_type == "image/png"
        assert Image.open(io.BytesIO(tile)).size == (256, 256)


@dataclass
class Viewer:
    page: Any
    errors: list[str]


@pytest.fixture(scope="module")
def viewer(server):
    """The viewer page in headless Chromium, with every console error and page error recorded."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "needs Debian's chromium: apt-get install chromium"
    errors: list[str] = []

    def console(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.on("console", console)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server}/")
        try:  # window.lsmap is set once every layer is on the map
            page.wait_for_function("() => window.lsmap !== undefined", timeout=90_000)
        except Exception as error:
            raise AssertionError(f"page not ready: {page.title()!r}, errors {errors}") from error
        page.wait_for_selector("img.leaflet-tile-loaded")
        page.wait_for_load_state("networkidle")
        yield Viewer(page, errors)
        browser.close()


def _data_bounds_on_screen(page) -> tuple[float, float, float, float]:
    """The probability layer's bounds in page pixels: (left, top, right, bottom)."""
    return page.evaluate(
        """() => {
            const map = window.lsmap.map;
            let bounds = null;
            map.eachLayer((layer) => { if (layer instanceof L.TileLayer) bounds = layer.options.bounds; });
            const nw = map.latLngToContainerPoint(bounds.getNorthWest());
            const se = map.latLngToContainerPoint(bounds.getSouthEast());
            return [nw.x, nw.y, se.x, se.y];
        }"""
    )


def test_page_shows_the_probability_map(viewer):
    page = viewer.page
    left, top, right, bottom = _data_bounds_on_screen(page)
    assert right - left > 300 and bottom - top > 300, "the map should open on the data"
    # The lower-right quarter of the data: clear of the panel and the layer switcher.
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    clip = {"x": centre_x, "y": centre_y, "width": right - centre_x, "height": bottom - centre_y}
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"), float)
    background = np.array([0xD9, 0xDC, 0xDF])
    assert np.abs(shot - background).sum(axis=-1).mean() > 40, "no probability tiles shown"
    assert shot.std(axis=(0, 1)).max() > 10, "the map is one flat colour"
    assert page.locator("#legend-ramp").evaluate("img => img.complete && img.naturalWidth") > 0
    assert viewer.errors == []


def test_opacity_slider_sets_the_probability_layer_opacity(viewer):
    page = viewer.page
    layer = page.locator(".leaflet-tile-pane .leaflet-layer").first
    slider = page.locator("#opacity")
    for key, expected in (("Home", 0.0), ("End", 1.0)):
        slider.press(key)
        assert float(layer.evaluate("element => getComputedStyle(element).opacity")) == expected
        assert page.locator("#opacity-value").inner_text() == f"{expected:.0%}"
    assert viewer.errors == []


def test_clicking_a_polygon_shows_its_attributes(viewer, server):
    page = viewer.page
    features = get_json(f"{server}/polygons.geojson")["features"]
    assert features, "the map run should have found landslides"
    feature = features[0]
    point = shapely.geometry.shape(feature["geometry"]).representative_point()
    # Bring the polygon to the middle of the map (clear of the panel), then click it as a user.
    page.evaluate(
        "([lat, lon]) => window.lsmap.map.setView([lat, lon], 20, {animate: false})",
        [point.y, point.x],
    )
    size = page.viewport_size
    page.mouse.click(size["width"] / 2, size["height"] / 2)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    text = popup.inner_text()
    for key, value in feature["properties"].items():
        if value is not None:
            assert key in text
    assert f"{feature['properties']['prob_mean']:.4f}" in text
    assert viewer.errors == []


def test_serve_refuses_an_unfinished_output(tmp_path, capsys):
    out = tmp_path / "map"
    assert main(["serve", str(out)]) == 1
    assert f"{out} is not a map output" in capsys.readouterr().err
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"status": "running"}))
    assert main(["serve", str(out)]) == 1
    assert f"{out} holds an unfinished map run" in capsys.readouterr().err


def test_a_moved_and_an_uploaded_output_show_the_same_map(map_output, s3_bucket, tmp_path):
    """A finished output folder is whole wherever it goes: moved to another directory or uploaded
    to a bucket, lsmap serve, lsmap score and xarray read the same values from it."""
    copy = tmp_path / "copy"
    shutil.copytree(map_output, copy)
    moved = tmp_path / "moved" / "map"
    moved.parent.mkdir()
    copy.rename(moved)  # the folder it was copied into is gone too
    uploaded = f"s3://{s3_bucket}/maps/map"
    for path in sorted(p for p in moved.rglob("*") if p.is_file()):
        storage.upload_file(str(path), f"{uploaded}/{path.relative_to(moved)}")
    truth = str(Path(map_output).parent / "region" / "truth.tif")

    def seen(out: str) -> tuple:
        with lsmap_serve(out) as base:
            tiles = centre_tiles(base)
            _, polygons = get(f"{base}/polygons.geojson")
        values = open_probability(OutputLayout(out), decode=True).values
        return values, score_map(out, truth), tiles, json.loads(polygons)

    values, metrics, tiles, polygons = seen(map_output)
    assert set(tiles) == {"cog", "zarr"} and polygons["features"]
    for out in (str(moved), uploaded):
        other_values, other_metrics, other_tiles, other_polygons = seen(out)
        np.testing.assert_array_equal(other_values, values)
        assert other_metrics == metrics
        for layer, tile in tiles.items():
            np.testing.assert_array_equal(_pixels(other_tiles[layer]), _pixels(tile))
        assert other_polygons == polygons


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_a_zones_folder_shows_its_classes_with_their_legend(map_output, viewer, tmp_path):
    """``lsmap serve ZONES`` shows the classes of ``lsmap zones`` over the map it zoned."""
    inventory = str(Path(map_output).parent / "region" / "inventory.gpkg")
    zones = str(tmp_path / "zones")
    assert main(["zones", "--map", map_output, "--inventory", inventory, "--out", zones]) == 0
    document = json.loads((tmp_path / "zones" / "zones.json").read_text())
    colours = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in document["colours"]}

    with lsmap_serve(zones) as base:
        description = get_json(f"{base}/api/map.json")
        assert [layer["id"] for layer in description["layers"]] == ["zones", "cog", "zarr"]
        legend = description["zones"]["classes"]
        assert [entry["name"] for entry in legend] == document["names"][::-1]
        tilejson = get_json(description["layers"][0]["tilejson"])
        _, body = get(tile_url(tilejson, *centre_tile(tilejson), "png"))
        rgba = _pixels(body)
        shown = {tuple(pixel) for pixel in rgba[rgba[..., 3] > 0][:, :3].tolist()}
        assert shown and shown <= colours, "zone tiles are drawn in the class colours only"

        page = viewer.page.context.browser.new_page()  # the module's browser: one per thread
        page.goto(f"{base}/")
        page.wait_for_function("() => window.lsmap !== undefined", timeout=90_000)
        items = page.locator("#zones-classes li")
        assert items.count() == len(document["names"])
        assert "very high" in items.first.inner_text()
        assert page.locator("#zones-legend").is_visible()
        page.close()
