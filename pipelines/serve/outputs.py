"""What a finished map output directory holds, as read from its manifest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipelines import storage
from pipelines.errors import InputError
from pipelines.mapping.output import OutputLayout, has_store

# Polygon formats, best first: GeoParquet is the canonical file, GeoJSON is for reports.
POLYGON_SUFFIXES = (".parquet", ".geoparquet", ".fgb", ".geojson")
COG_SUFFIXES = (".vrt", ".tif", ".tiff")


@dataclass(frozen=True)
class MapOutputs:
    """The files of one finished map run that the viewer serves."""

    root: str
    manifest: dict
    zarr: str
    cog: str | None
    polygons: str | None
    zones: Zones | None = None


@dataclass(frozen=True)
class Zones:
    """A zonation of the map (``lsmap zones``): its class COG and its ``zones.json``."""

    cog: str
    document: dict


def load_outputs(out: str) -> MapOutputs:
    """Read ``out``'s manifest and find its probability Zarr, COG and polygons; ``out`` may also
    be the folder of ``lsmap zones``, shown over the map it zoned.

    Raises :class:`InputError` naming ``out`` when it is neither a finished map run nor a finished
    zonation.
    """
    zones_file = storage.join(str(out), "zones.json")
    if storage.exists(zones_file):
        document = storage.read_json(zones_file)
        outputs = _load_map(document["map"])
        zones = Zones(storage.join(str(out), "zones.tif"), document)
        return MapOutputs(
            str(out), outputs.manifest, outputs.zarr, outputs.cog, outputs.polygons, zones
        )
    return _load_map(out)


def _load_map(out: str) -> MapOutputs:
    layout = OutputLayout(str(out))
    name = storage.redact(str(out))
    if not storage.exists(layout.manifest):
        raise InputError(
            f"{name} is not a map output: it has no manifest.json (run `lsmap map --out {name}`, "
            "or `lsmap zones` for a zones folder)"
        )
    manifest = storage.read_json(layout.manifest)
    status = manifest.get("status")
    if status != "complete":
        raise InputError(
            f"{name} holds an unfinished map run (status {status!r}); rerun `lsmap map` with the "
            "same arguments to finish it"
        )
    files = list(_uris(layout.resolve(manifest.get("outputs", {}))))
    zarr = next((uri for uri in files if uri.rstrip("/").endswith(".zarr")), layout.zarr)
    if not has_store(zarr):
        raise InputError(f"{name}: the probability store {storage.redact(zarr)} is missing")
    # A region exported as block COGs has one raster to serve: their VRT mosaic.
    cog = next(
        (uri for suffix in COG_SUFFIXES for uri in files if uri.lower().endswith(suffix)), None
    )
    polygons = next(
        (uri for suffix in POLYGON_SUFFIXES for uri in files if uri.lower().endswith(suffix)),
        None,
    )
    return MapOutputs(root=str(out), manifest=manifest, zarr=zarr, cog=cog, polygons=polygons)


def _uris(value: Any) -> Iterator[str]:
    """Every string in the manifest's ``outputs``, however nested (one per format or asset)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from _uris(item)
