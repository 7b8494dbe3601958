"""STAC in (a raster given as a STAC Item) and out (a static catalog beside a map's outputs).

JSON-schema validation here covers the STAC core only: pystac ships the core schemas, but the
extension schemas (projection, label, processing) would be downloaded, which tests must not do;
their fields are checked by reading them back.
"""

from __future__ import annotations

import datetime
import json

import pystac
import pytest
from affine import Affine
from pystac.extensions.label import LabelExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.validation import validate_dict

from pipelines import stac, storage
from pipelines.errors import InputError
from pipelines.mapping.output import OutputLayout, create_store, write_manifest
from pipelines.raster import Grid

GRID = Grid("EPSG:32648", Affine(2, 0, 530_000, 0, -2, 3_021_000), 64, 96)
WHEN = datetime.datetime(2024, 7, 15, 3, 40, tzinfo=datetime.UTC)


def _item(path, assets: dict[str, tuple[str, str | None, list[str]]], **properties) -> str:
    """Write a STAC Item with ``assets`` (key -> href, media type, roles) to ``path``."""
    item = pystac.Item(
        id=path.stem,
        geometry={"type": "Point", "coordinates": [105.3, 27.3]},
        bbox=[105.3, 27.3, 105.3, 27.3],
        datetime=WHEN,
        properties=properties,
    )
    for key, (href, media_type, roles) in assets.items():
        item.add_asset(key, pystac.Asset(href=href, media_type=media_type, roles=roles))
    path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return str(path)


def test_a_raster_uri_is_itself_and_an_item_resolves_to_its_raster_asset(tmp_path):
    assert stac.resolve_raster("s3://b/rgb.tif") == ("s3://b/rgb.tif", None)
    with pytest.raises(InputError, match="is a raster, not a STAC Item"):
        stac.resolve_raster("s3://b/rgb.tif", asset="visual")

    uri = _item(
        tmp_path / "scene.json",
        {
            "image": ("./scene.tif", pystac.MediaType.COG, ["data"]),
            "thumbnail": ("./scene.png", pystac.MediaType.PNG, ["thumbnail"]),
        },
    )
    href, item = stac.resolve_raster(uri)
    assert href == str(tmp_path / "scene.tif") and item.id == "scene"
    assert stac.resolve_raster(uri, asset="thumbnail")[0] == str(tmp_path / "scene.png")


def test_an_item_with_several_rasters_needs_a_role_or_a_key(tmp_path):
    bands = {f"B0{n}": (f"./B0{n}.tif", pystac.MediaType.COG, ["data"]) for n in (2, 3, 4)}
    sentinel = _item(
        tmp_path / "s2.json", bands | {"visual": ("./TCI.tif", pystac.MediaType.COG, ["visual"])}
    )
    # Three data bands are no single choice; the one "visual" (true colour) asset is.
    assert stac.resolve_raster(sentinel)[0] == str(tmp_path / "TCI.tif")
    ambiguous = _item(tmp_path / "bands.json", bands)
    with pytest.raises(InputError, match=r"cannot tell which asset.*B02, B03, B04"):
        stac.resolve_raster(ambiguous)
    assert stac.resolve_raster(ambiguous, asset="B03")[0] == str(tmp_path / "B03.tif")
    with pytest.raises(InputError, match="has no asset 'B08'"):
        stac.resolve_raster(ambiguous, asset="B08")
    # Zarr by media type, and untyped assets by their suffix.
    zarr = _item(tmp_path / "z.json", {"mosaic": ("s3://b/m.zarr", pystac.MediaType.ZARR, [])})
    assert stac.resolve_raster(zarr)[0] == "s3://b/m.zarr"
    untyped = _item(tmp_path / "u.json", {"dem": ("./dem.tiff", None, [])})
    assert stac.resolve_raster(untyped)[0] == str(tmp_path / "dem.tiff")


def test_a_json_that_is_not_an_item_is_refused_with_its_name(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(pystac.Catalog("c", "d").to_dict(include_self_link=False)))
    with pytest.raises(InputError, match=r"catalog.json: expected a STAC Item.*Catalog"):
        stac.resolve_raster(str(catalog))
    with pytest.raises(InputError, match="missing.json: cannot read it"):
        stac.resolve_raster(str(tmp_path / "missing.json"))


def test_source_image_comes_from_the_item_or_the_file_name(tmp_path):
    uri = _item(
        tmp_path / "S2B_48RUU.json",
        {"visual": ("./TCI.tif", pystac.MediaType.COG, ["visual"])},
        platform="sentinel-2b",
        instruments=["msi"],
        gsd=10,
    )
    href, item = stac.resolve_raster(uri)
    source = stac.source_image(href, item, gsd_m=0.5)
    assert (source.id, source.datetime, source.sensor, source.gsd_m) == (
        "S2B_48RUU",
        WHEN,
        "sentinel-2b/msi",
        10.0,
    )
    plain = stac.source_image("s3://b/imagery/2024-07-15.tif", None, gsd_m=0.5)
    assert (plain.id, plain.datetime, plain.sensor, plain.gsd_m) == ("2024-07-15", None, None, 0.5)


def test_output_catalog_describes_the_outputs(tmp_path):
    rgb_uri = _item(
        tmp_path / "scene.json", {"visual": ("./scene.tif", pystac.MediaType.COG, ["visual"])}
    )
    rgb_href, rgb_item = stac.resolve_raster(rgb_uri)
    out = tmp_path / "map"
    run = {
        "model_sha256": "ab" * 32,
        "rgb": rgb_href,
        "dem": "s3://b/dem.tif",
        "crs": "EPSG:32648",
        "transform": list(GRID.transform)[:6],
        "shape": [GRID.height, GRID.width],
    }
    layout = OutputLayout(str(out))
    create_store(layout, GRID, 32, "uint8", run)
    manifest = {"run": run, "started_at": "2024-07-16T08:30:00+00:00", "status": "complete"}
    write_manifest(layout, manifest)
    files = ["probability.zarr", "probability.tif", "polygons.parquet", "polygons.fgb"]
    files += ["manifest.json", "quicklook.png"]
    files += ["probability.vrt", "probability/r0_c0.tif"]  # as a region exported in blocks
    catalog_uri = stac.write_output_catalog(
        str(out), stac.run_id(run), manifest, files, sources={"image": rgb_item, "dem": None}
    )

    assert catalog_uri == str(out / "catalog.json")
    catalog = pystac.read_file(catalog_uri)
    [item] = catalog.get_items()
    assert item.id == stac.run_id(run) and item.datetime == WHEN  # acquisition time of the image
    assert item.get_self_href() == str(out / "item.json")
    media = {key: (asset.media_type, asset.roles) for key, asset in item.assets.items()}
    assert media == {
        "probability_zarr": ("application/vnd+zarr", ["data"]),
        "probability_tif": (pystac.MediaType.COG, ["data"]),
        "probability_vrt": ("application/xml", ["data"]),
        "probability_r0_c0_tif": (pystac.MediaType.COG, ["data"]),
        "polygons_parquet": ("application/vnd.apache.parquet", ["data", "labels"]),
        "polygons_fgb": ("application/vnd.flatgeobuf", ["data", "labels"]),
        "manifest_json": (pystac.MediaType.JSON, ["metadata"]),
        "quicklook_png": (pystac.MediaType.PNG, ["overview"]),
    }
    assert item.assets["probability_tif"].get_absolute_href() == str(out / "probability.tif")
    block = item.assets["probability_r0_c0_tif"].get_absolute_href()
    assert block == str(out / "probability" / "r0_c0.tif")
    # The footprint is the mapped grid, in longitude/latitude (UTM 48N lies at 102-108 E).
    left, bottom, right, top = item.bbox
    assert 102 < left < right < 108 and 27 < bottom < top < 28

    projection = ProjectionExtension.ext(item)
    assert projection.code == "EPSG:32648"
    assert projection.shape == [64, 96]
    assert projection.transform == [2.0, 0.0, 530_000.0, 0.0, -2.0, 3_021_000.0]
    assert item.properties["processing:software"] == {"lsmap": "0.1.0"}
    assert "sha256:" + "ab" * 32 in item.properties["processing:lineage"]
    assert item.properties["lsmap:model_sha256"] == "ab" * 32
    assert stac.PROCESSING_SCHEMA in item.stac_extensions
    label = LabelExtension.ext(item)
    assert label.label_type == "vector" and label.label_properties == ["status", "confidence"]
    assert [source.id for source in label.get_sources()] == ["scene"]
    links = {link.rel: link for link in item.links if link.rel in ("source", "derived_from")}
    assert links["source"].get_absolute_href() == rgb_uri
    assert (links["derived_from"].get_absolute_href(), links["derived_from"].title) == (
        rgb_uri,
        "image",
    )

    # The STAC core (pystac's own copies of its schemas: nothing is downloaded).
    document = json.loads(storage.read_text(str(out / "item.json")))
    assert validate_dict(document, extensions=[])
    assert validate_dict(json.loads((out / "catalog.json").read_text()), extensions=[])
    assert all(not asset["href"].startswith("/") for asset in document["assets"].values())
