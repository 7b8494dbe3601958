"""Finding post-event images of a region: under a storage prefix, or by STAC.

Prefix: an image is a GeoTIFF/COG (``<id>.tif``/``.tiff``) or a Zarr mosaic (``<id>.zarr``)
directly under the prefix; its id is the name without the suffix. Names starting with ``.`` or
``_`` (uploads in progress, lsmap's own files) are not images. Write images whole (upload, or copy
and rename): a scan may run at any moment.

STAC: the items of a STAC API search (pystac-client: the region's area of interest, collection
and time window; cloud cover on the server when it supports CQL2 filters) or of a static catalog
walked with pystac, filtered here by area, time and ``eo:cloud_cover`` (items without it are
kept). An item's id is the image id and its raster asset (:func:`pipelines.stac.raster_asset`)
the image.

Images are ordered by acquisition time (STAC), then id: the previous image of an image is the
one before it. Prefix images have no time, so names that sort by time (``2024-07-15.tif``,
``20240715T0312.tif``) are what a user wants.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines import storage
from pipelines.errors import InputError, LsmapError
from pipelines.inputs import LayerInput

if TYPE_CHECKING:
    import pystac

    from pipelines.scan.config import AreaOfInterest, Region, StacImagery

SUFFIXES = (".tif", ".tiff", ".zarr")
# Ids name output folders: they start with a letter or digit, so they never clash with the
# ``_``-prefixed names lsmap keeps beside them, and cannot be ``..``.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Image:
    """One post-event image: its id, URI, acquisition time (ISO 8601, UTC) and STAC Item when
    known. ``inputs`` are the model layers (and mask) it gives by name; by default its URI is
    the layer ``image``."""

    id: str
    uri: str
    datetime: str | None = None
    item: pystac.Item | None = field(default=None, compare=False, repr=False)
    inputs: dict[str, LayerInput] = field(default_factory=dict, compare=False, repr=False)

    def layers(self) -> dict[str, LayerInput]:
        """The map inputs of this image: its ``inputs``, or its URI as the layer ``image``."""
        return dict(self.inputs) or {"image": LayerInput(self.uri)}

    @property
    def order(self) -> tuple[str, str]:
        """What images sort by: acquisition time (if known), then id."""
        return (self.datetime or "", self.id)


def find_images(region: Region) -> tuple[list[Image], list[str]]:
    """The region's images in order, and what was found but not taken (names, or item ids with
    the reason)."""
    if isinstance(region.imagery, str):
        return discover(region.imagery)
    return discover_stac(region.imagery, region.aoi)


def discover(prefix: str) -> tuple[list[Image], list[str]]:
    """Images under ``prefix`` sorted by id, and the names found there that were not taken.

    Two images with one id (``a.tif`` and ``a.zarr``) are an InputError: which one is meant?
    """
    images: dict[str, Image] = {}
    ignored = []
    for name in storage.listdir(prefix):
        suffix = next((s for s in SUFFIXES if name.lower().endswith(s)), None)
        if name.startswith((".", "_")) or suffix is None:
            ignored.append(name)
            continue
        image_id = name[: -len(suffix)]
        if not ID_PATTERN.match(image_id):
            ignored.append(name)
            continue
        if image_id in images:
            raise InputError(
                f"{storage.redact(prefix)}: two images have the id {image_id!r} "
                f"({images[image_id].uri.rsplit('/', 1)[-1]} and {name}); keep one"
            )
        images[image_id] = Image(image_id, storage.join(prefix, name))
    return [images[key] for key in sorted(images)], ignored


def discover_stac(
    source: StacImagery, aoi: AreaOfInterest, now: datetime.datetime | None = None
) -> tuple[list[Image], list[str]]:
    """Images of the STAC items in ``source`` over ``aoi`` (see the module docstring), in order;
    ``now`` ends a ``days`` window (default: the current time)."""
    from pipelines.stac import item_datetime

    bbox = _lonlat_bbox(aoi)
    start, end = _window(source, now)
    where = storage.redact(source.api or source.catalog or "")
    items = _search(source, bbox, start, end) if source.api else _walk(source.catalog)
    images: dict[str, Image] = {}
    ignored = []
    for item in items:
        when = item_datetime(item)
        reason = _rejected(item, when, source, bbox, start, end)
        if reason is None and not ID_PATTERN.match(item.id):
            reason = "its id cannot name a folder"
        if reason is not None:
            ignored.append(f"{item.id} ({reason})")
            continue
        if item.id in images:
            raise InputError(f"{where}: two items have the id {item.id!r}; keep one")
        try:
            inputs = _item_inputs(item, source)
        except LsmapError as err:
            ignored.append(f"{item.id} ({err})")
            continue
        stamp = when.astimezone(datetime.UTC).isoformat() if when else None
        first = next(iter(inputs.values())).uri
        href = first if isinstance(first, str) else first[0]
        images[item.id] = Image(item.id, href, stamp, item, inputs)
    return sorted(images.values(), key=lambda image: image.order), ignored


def _item_inputs(item: pystac.Item, source: StacImagery) -> dict[str, LayerInput]:
    """An item's map inputs: its raster asset as the layer ``image``, or the ``layers`` of
    ``source`` (one asset per band), and its ``mask`` asset."""
    from pipelines.stac import raster_asset

    if source.layers:
        inputs = {}
        for name, keys in source.layers:
            hrefs = tuple(raster_asset(item, key) for key in keys)
            inputs[name] = LayerInput(hrefs[0] if len(hrefs) == 1 else hrefs)
    else:
        inputs = {"image": LayerInput(raster_asset(item, source.asset))}
    if source.mask_asset:
        href = raster_asset(item, source.mask_asset)
        inputs["mask"] = LayerInput(href, mask=source.mask_codes)
    return inputs


def parse_interval(text: str) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """A STAC datetime interval ``start/end`` (``..`` or empty: open) or a single instant, as
    UTC datetimes; a date alone means its whole day. ValueError when it is neither."""
    parts = text.split("/")
    if len(parts) > 2:
        raise ValueError(f"expected 'start/end', got {text!r}")
    bounds = []
    for index, part in enumerate(parts if len(parts) == 2 else [text, text]):
        part = part.strip()
        if part in ("", ".."):
            bounds.append(None)
            continue
        try:
            value = datetime.datetime.fromisoformat(part.replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"{part!r} is not an ISO 8601 date or time") from err
        if len(part) == 10 and index == 1:  # a date as the end: to the end of that day
            value += datetime.timedelta(days=1) - datetime.timedelta(microseconds=1)
        bounds.append(value if value.tzinfo else value.replace(tzinfo=datetime.UTC))
    return bounds[0], bounds[1]


def _window(
    source: StacImagery, now: datetime.datetime | None
) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    if source.days is not None:
        end = now or datetime.datetime.now(datetime.UTC)
        return end - datetime.timedelta(days=source.days), end
    return parse_interval(source.datetime) if source.datetime else (None, None)


def _lonlat_bbox(aoi: AreaOfInterest) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return transform_bounds(aoi.crs, "EPSG:4326", *aoi.bbox, densify_pts=21)


def _search(source: StacImagery, bbox, start, end) -> list[pystac.Item]:
    import pystac_client
    from pystac_client.exceptions import APIError

    try:
        client = pystac_client.Client.open(source.api)
        query: dict = {
            "bbox": bbox,
            "datetime": [start, end] if start or end else None,
            "collections": [source.collection] if source.collection else None,
        }
        # Only a server that says it filters gets the filter; the client-side check stays anyway.
        if source.max_cloud_cover is not None and client.conforms_to("FILTER"):
            query |= {
                "filter": {
                    "op": "<=",
                    "args": [{"property": "eo:cloud_cover"}, source.max_cloud_cover],
                },
                "filter_lang": "cql2-json",
            }
        return list(client.search(**query).items())
    except (APIError, OSError, ValueError) as err:
        raise InputError(f"STAC API {storage.redact(source.api)}: search failed ({err})") from err


def _walk(uri: str) -> list[pystac.Item]:
    import pystac

    from pipelines.stac import StorageStacIO

    try:
        root = pystac.read_file(uri, stac_io=StorageStacIO())
    except (LsmapError, OSError, ValueError, pystac.STACError) as err:
        raise InputError(f"STAC catalog {storage.redact(uri)}: cannot read it ({err})") from err
    if isinstance(root, pystac.Item):
        return [root]
    if not isinstance(root, pystac.Catalog):
        raise InputError(f"{storage.redact(uri)}: expected a STAC catalog or collection")
    return list(root.get_items(recursive=True))


def _rejected(item, when, source: StacImagery, bbox, start, end) -> str | None:
    """Why ``item`` is not an image of the region (None: it is)."""
    if source.collection and item.collection_id != source.collection:
        return f"collection {item.collection_id!r}"
    if item.bbox is not None:
        box = item.bbox  # 2D, or 3D: [minx, miny, minz, maxx, maxy, maxz]
        left, bottom, right, top = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        if right < bbox[0] or left > bbox[2] or top < bbox[1] or bottom > bbox[3]:
            return "outside the area of interest"
    if (start or end) and when is None:
        return "no acquisition time"
    if when is not None and (start and when < start or end and when > end):
        return "outside the time window"
    cloud = item.properties.get("eo:cloud_cover")
    if source.max_cloud_cover is not None and cloud is not None and cloud > source.max_cloud_cover:
        return f"cloud cover {cloud}%"
    return None
