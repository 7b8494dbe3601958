"""A region file: a layers file (:func:`pipelines.inputs.read_layers_file`) plus the region's
landslide inventory, what ``lsmap train --region`` learns from.

::

    layers:
      - {name: image, uri: rgb.tif}
      - {name: dem, uri: dem.tif}
    inventory:
      uri: inventory.gpkg       # polygons; or points.csv with label: and crs:
      date: date                # optional: keep the landslides of one period
      start: 2020-01-01
      end: 2020-12-31
      point_radius_m: 10        # points: the labelled disc around each
    aoi: study_area.gpkg        # optional: polygons the inventory covers; elsewhere is unknown

Relative URIs resolve against the file's folder, as in a layers file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from pipelines import storage
from pipelines.errors import InputError, LsmapError
from pipelines.inputs import LayersFile, read_layers_file
from pipelines.inventory import InventorySpec

TOP_LEVEL = ("layers", "inventory", "aoi")
DEFAULT_POINT_RADIUS_M = 10.0


@dataclass(frozen=True)
class RegionFile:
    """A region's layers, its inventory, the radius of the disc each inventory point labels and
    the vector file of the area the inventory covers (None: all of the layers)."""

    layers: LayersFile
    inventory: InventorySpec
    point_radius_m: float = DEFAULT_POINT_RADIUS_M
    aoi: str | None = None


def read_region_file(path: str | Path) -> RegionFile:
    """Parse a region file; refuses unknown keys and an inventory without a ``uri``."""
    import yaml

    name = storage.redact(str(path))
    try:
        document = yaml.safe_load(storage.read_bytes(str(path)))
    except (OSError, LsmapError, yaml.YAMLError) as err:
        raise InputError(f"region file {name}: cannot read it ({err})") from err
    if not isinstance(document, dict):
        raise InputError(f"region file {name}: expected `layers:` and `inventory:`")
    unknown = sorted(set(document) - set(TOP_LEVEL))
    if unknown:
        raise InputError(
            f"region file {name}: unknown key(s) {', '.join(unknown)}; a region file holds "
            f"{' and '.join(TOP_LEVEL)}"
        )
    entry = document.get("inventory")
    if not isinstance(entry, dict) or "uri" not in entry:
        raise InputError(
            f"region file {name}: needs `inventory:` with the `uri` of the landslide inventory "
            "(polygons, or points with a presence/absence label)"
        )
    options = dict(entry)
    radius = options.pop("point_radius_m", DEFAULT_POINT_RADIUS_M)
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise InputError(f"region file {name}: point_radius_m must be metres > 0, got {radius!r}")
    known = {f.name for f in fields(InventorySpec)}
    wrong = sorted(set(options) - known)
    if wrong:
        raise InputError(
            f"region file {name}: unknown inventory option(s) {', '.join(wrong)}; it takes "
            f"{', '.join(sorted(known | {'point_radius_m'}))}"
        )
    uri = _resolve(str(options["uri"]), path)
    aoi = document.get("aoi")
    if aoi is not None and not isinstance(aoi, str):
        raise InputError(f"region file {name}: aoi must be the URI of a polygon file, got {aoi!r}")
    for key in ("start", "end"):  # YAML reads unquoted ISO dates as dates
        if options.get(key) is not None:
            options[key] = str(options[key])
    if options.get("events") is not None:
        options["events"] = tuple(str(e) for e in options["events"])
    inventory = InventorySpec(**{**options, "uri": uri})
    return RegionFile(
        read_layers_file(path), inventory, float(radius), _resolve(aoi, path) if aoi else None
    )


def _resolve(uri: str, region_file: str | Path) -> str:
    if storage.is_remote(uri) or Path(uri).is_absolute():
        return uri
    return storage.join(storage.absolute(str(region_file)).rsplit("/", 1)[0], uri)
