"""STAC in and out: input rasters given as STAC Items, and a static STAC catalog beside each output.

In: ``lsmap map --rgb ITEM.json`` and scans take a STAC Item (a local path, ``s3://`` or
``http(s)://`` URI ending in ``.json``) and map one of its assets (:func:`resolve_raster`).

Out: every map run and every scanned image gets ``catalog.json`` and ``item.json`` in its output
folder (:func:`write_output_catalog`). The Item carries the probability COG and Zarr, the polygon
files and the run's metadata files as assets with media types and roles; the projection fields
(``proj:code``, ``proj:shape``, ``proj:transform``) of the probability grid; processing fields
(software and version, lineage, the model bundle's sha256 as ``lsmap:model_sha256``); the label
extension for the polygons; and ``derived_from`` / ``source`` links to the input Items when the
inputs were STAC Items. Asset hrefs are relative, so the folder can be moved or copied whole.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
from typing import Any

import pystac
from pystac.extensions.label import LabelClasses, LabelExtension, LabelMethod, LabelTask, LabelType
from pystac.extensions.projection import ProjectionExtension

from pipelines import storage
from pipelines.errors import InputError, LsmapError
from pipelines.mapping.polygons import SourceImage

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
CATALOG = "catalog.json"
ITEM = "item.json"
RASTER_SUFFIXES = (".tif", ".tiff", ".zarr")
# Asset files lsmap writes, by suffix: media type and roles.
_ASSET_KINDS = {
    ".tif": (pystac.MediaType.COG, ["data"]),
    ".vrt": ("application/xml", ["data"]),  # GDAL's VRT mosaic of block COGs
    ".zarr": (pystac.MediaType.ZARR, ["data"]),
    ".parquet": (pystac.MediaType.VND_APACHE_PARQUET, ["data", "labels"]),
    ".fgb": (pystac.MediaType.FLATGEOBUF, ["data", "labels"]),
    ".geojson": (pystac.MediaType.GEOJSON, ["data", "labels"]),
    ".png": (pystac.MediaType.PNG, ["overview"]),
    ".json": (pystac.MediaType.JSON, ["metadata"]),
    ".md": ("text/markdown", ["metadata"]),
    ".csv": ("text/csv", ["metadata"]),
    ".xml": ("application/xml", ["metadata"]),  # GDAL's PAM sidecar: category names
    ".qml": ("application/xml", ["style"]),  # QGIS layer style
}


class StorageStacIO(pystac.StacIO):
    """pystac I/O through :mod:`pipelines.storage` (local and ``s3://``); ``http(s)`` reads go
    through pystac's own client."""

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source)
        if href.startswith(("http://", "https://")):
            return pystac.StacIO.default().read_text(href, *args, **kwargs)
        return storage.read_text(href)

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        storage.write_text(str(dest), txt)


def is_item_uri(uri: str) -> bool:
    """Whether ``uri`` names a STAC document (by its ``.json`` suffix) rather than a raster."""
    return str(uri).split("?", 1)[0].lower().endswith(".json")


def read_item(uri: str) -> pystac.Item:
    """The STAC Item at ``uri``; an InputError names the URI when it is unreadable or not an Item."""
    try:
        document = json.loads(StorageStacIO().read_text(uri))
    except (LsmapError, OSError, ValueError) as err:
        raise InputError(f"STAC item {storage.redact(uri)}: cannot read it ({err})") from err
    kind = document.get("type") if isinstance(document, dict) else None
    if kind != "Feature":
        raise InputError(
            f"{storage.redact(uri)}: expected a STAC Item (type 'Feature'), found "
            f"{kind or type(document).__name__}"
        )
    try:
        return pystac.Item.from_dict(document, href=uri, migrate=True)
    except (KeyError, TypeError, ValueError, pystac.STACError) as err:
        raise InputError(f"{storage.redact(uri)}: not a valid STAC Item ({err})") from err


def resolve_raster(uri: str, asset: str | None = None) -> tuple[str, pystac.Item | None]:
    """The raster ``uri`` means, and its STAC Item if it is one.

    A raster URI comes back as is with None. A STAC Item (:func:`is_item_uri`) comes back as the
    absolute href of its raster asset (:func:`raster_asset`) and the Item.
    """
    if not is_item_uri(uri):
        if asset is not None:
            raise InputError(
                f"asset {asset!r} was asked for, but {storage.redact(uri)} is a raster, not a "
                "STAC Item (.json)"
            )
        return uri, None
    item = read_item(uri)
    return raster_asset(item, asset), item


def raster_asset(item: pystac.Item, key: str | None = None) -> str:
    """The absolute href of the asset called ``key``, or else of the Item's one raster asset.

    Raster assets are GeoTIFF/COG or Zarr (by media type, else by the href's suffix). With several,
    the one with role ``data``, else the one with role ``visual``, is taken; if that still leaves
    a choice, the error lists the keys to choose from.
    """
    where = f"STAC item {item.id!r} ({storage.redact(item.get_self_href() or '')})"
    if key is not None:
        if key not in item.assets:
            raise InputError(f"{where} has no asset {key!r}; it has {', '.join(item.assets)}")
        return _href(item, key)
    rasters = [name for name, asset in item.assets.items() if _is_raster(asset)]
    for role in (None, "data", "visual"):
        picked = [name for name in rasters if role is None or role in _roles(item, name)]
        if len(picked) == 1:
            return _href(item, picked[0])
    found = ", ".join(rasters) if rasters else "none"
    raise InputError(
        f"{where}: cannot tell which asset to map (GeoTIFF/Zarr assets: {found}); name one "
        "(lsmap map --rgb-asset/--dem-asset, or `asset:` in a watch list's imagery)"
    )


def _roles(item: pystac.Item, key: str) -> list[str]:
    return list(item.assets[key].roles or [])


def _is_raster(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith("image/tiff") or "zarr" in media
    return asset.href.split("?", 1)[0].lower().rstrip("/").endswith(RASTER_SUFFIXES)


def _href(item: pystac.Item, key: str) -> str:
    return item.assets[key].get_absolute_href() or item.assets[key].href


def source_image(href: str, item: pystac.Item | None, gsd_m: float | None) -> SourceImage:
    """How the polygon files describe an input image: from its STAC Item when there is one
    (id, datetime, platform/instruments, ``gsd``), else from its file name; ``gsd_m`` is the
    ground resolution to report when the Item gives none."""
    if item is None:
        name = href.rstrip("/").rsplit("/", 1)[-1]
        stem = next((name[: -len(s)] for s in RASTER_SUFFIXES if name.lower().endswith(s)), name)
        return SourceImage(id=stem, gsd_m=gsd_m)
    properties = item.properties
    when = item_datetime(item)
    sensor = [properties.get("constellation") or properties.get("platform")]
    sensor += properties.get("instruments") or []
    return SourceImage(
        id=item.id,
        datetime=when,
        sensor="/".join(str(part) for part in sensor if part) or None,
        gsd_m=float(properties["gsd"]) if properties.get("gsd") else gsd_m,
    )


def item_datetime(item: pystac.Item) -> datetime.datetime | None:
    """An Item's acquisition time: ``datetime``, else ``start_datetime`` (None: neither)."""
    return item.datetime or _parse_time(item.properties.get("start_datetime"))


def _parse_time(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def run_id(run: dict) -> str:
    """A short stable id of a map run's identity (the mapper's ``run`` record)."""
    digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()
    return f"lsmap-{digest[:12]}"


def write_map_catalog(
    out: str, manifest: dict, sources: dict[str, pystac.Item | None] | None = None
) -> str:
    """The catalog of the ``lsmap map`` run in ``out`` whose ``manifest`` lists its outputs
    (paths relative to ``out``); ``sources`` as for :func:`write_output_catalog`. Returns its
    URI."""
    files: list[str] = []
    for value in manifest.get("outputs", {}).values():
        files += list(value.values()) if isinstance(value, dict) else [value]
    files.append("manifest.json")
    return write_output_catalog(out, run_id(manifest["run"]), manifest, files, sources=sources)


def write_output_catalog(
    root: str,
    item_id: str,
    manifest: dict,
    files: list[str],
    *,
    sources: dict[str, pystac.Item | None] | None = None,
    title: str | None = None,
    extra_properties: dict | None = None,
) -> str:
    """Write ``catalog.json`` and ``item.json`` describing the output folder ``root``.

    ``manifest`` is the mapper's (its ``run`` gives grid, inputs and model; ``started_at`` the
    time); ``files`` are the names under ``root`` to list as assets; ``sources`` maps input layers
    (``image``, ``dem``, ...) to their STAC Items (None: a plain file). Returns the catalog's URI.
    """
    run = manifest["run"]
    sources = sources or {}
    started = _parse_time(manifest["started_at"])
    rgb_item = sources.get("image")
    acquired = item_datetime(rgb_item) if rgb_item is not None else None
    item = pystac.Item(
        id=item_id,
        geometry=_footprint(run),
        bbox=_bbox(run),
        datetime=acquired or started,
        properties={
            "title": title or f"lsmap landslide map {item_id}",
            "created": manifest["started_at"],
            "processing:software": {"lsmap": importlib.metadata.version("lsmap")},
            "processing:datetime": manifest["started_at"],
            "processing:lineage": _lineage(run),
            "lsmap:model_sha256": run["model_sha256"],
            **(extra_properties or {}),
        },
    )
    item.stac_extensions.append(PROCESSING_SCHEMA)
    _set_projection(item, run)
    catalog = pystac.Catalog(
        id=f"{item_id}-catalog", description=f"lsmap outputs of {item_id}", title=title
    )
    catalog.set_self_href(storage.join(root, CATALOG))
    catalog.add_item(item)
    # Beside the outputs (not pystac's <id>/<id>.json), so asset hrefs are plain "./<name>".
    item.set_self_href(storage.join(root, ITEM))
    for name in files:
        media_type, roles = _ASSET_KINDS[os.path.splitext(name.rstrip("/"))[1].lower()]
        key = name.replace(".", "_").replace("/", "_")
        item.add_asset(key, pystac.Asset(href=f"./{name}", media_type=media_type, roles=roles))
    if any("labels" in (asset.roles or []) for asset in item.assets.values()):
        _describe_labels(item, rgb_item)
    for role, source in sources.items():
        if source is not None and source.get_self_href():
            item.add_link(
                pystac.Link("derived_from", source.get_self_href(), pystac.MediaType.JSON, role)
            )
    catalog.save(pystac.CatalogType.SELF_CONTAINED, stac_io=StorageStacIO())
    return storage.join(root, CATALOG)


def _lineage(run: dict) -> str:
    from pipelines.layers import file_name
    from pipelines.mapping.output import run_inputs

    inputs = [f"{name} {file_name(uri)}" for name, uri in run_inputs(run).items()]
    layers = inputs[0] + (
        f" and {', '.join(inputs[1:])} (warped onto its grid)" if inputs[1:] else ""
    )
    return (
        f"Landslide probability from the layers {layers}, by lsmap "
        f"with the model bundle sha256:{run['model_sha256']}; polygons are connected pixels at "
        "or above the model's threshold, merged across chunks."
    )


def _set_projection(item: pystac.Item, run: dict) -> None:
    from rasterio.crs import CRS

    crs = CRS.from_user_input(run["crs"])
    authority = crs.to_authority()
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.apply(
        code=":".join(authority) if authority else None,
        wkt2=None if authority else crs.to_wkt(),
        shape=list(run["shape"]),
        transform=[float(v) for v in run["transform"]],
    )


def _grid_bounds(run: dict) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = run["transform"]
    height, width = run["shape"]
    xs, ys = (c, c + a * width), (f, f + e * height)
    return min(xs), min(ys), max(xs), max(ys)


def _footprint(run: dict) -> dict:
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping

    geometry = transform_geom(
        run["crs"], "EPSG:4326", mapping(box(*_grid_bounds(run))), precision=7
    )
    return dict(geometry)


def _bbox(run: dict) -> list[float]:
    from rasterio.warp import transform_bounds

    return [round(v, 7) for v in transform_bounds(run["crs"], "EPSG:4326", *_grid_bounds(run))]


def _describe_labels(item: pystac.Item, rgb_item: pystac.Item | None) -> None:
    label = LabelExtension.ext(item, add_if_missing=True)
    label.apply(
        label_description=(
            "Landslide polygons (one row per landslide: status, confidence, probabilities, area, "
            "source image, model), in the probability grid's CRS"
        ),
        label_type=LabelType.VECTOR,
        label_properties=["status", "confidence"],
        label_classes=[
            LabelClasses.create(classes=["new", "existing"], name="status"),
            LabelClasses.create(classes=["low", "medium", "high"], name="confidence"),
        ],
        label_tasks=[LabelTask.SEGMENTATION],
        label_methods=[LabelMethod.AUTOMATED],
    )
    if rgb_item is not None and rgb_item.get_self_href():
        label.add_source(rgb_item, title="imagery the landslides were mapped from")
