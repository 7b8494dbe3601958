"""The watch list: which regions to scan, where their imagery appears and where results go.

```yaml
regions:
  - name: bijie-north                 # letters, digits, - and _: a folder name under `output`
    aoi: {bbox: [530000, 3020000, 531000, 3021000], crs: EPSG:32648}
    imagery: s3://bucket/bijie-north/imagery/   # new post-event images: <image-id>.tif or .zarr
    # ... or imagery found by STAC (see pipelines.scan.discovery), one of:
    # imagery: {stac_api: https://earth-search.example/v1, collection: sentinel-2-l2a,
    #           max_cloud_cover: 20, days: 30, asset: visual}
    # imagery: {stac_catalog: s3://bucket/event-2024/catalog.json, datetime: 2024-07-01/..}
    # imagery: {stac_api: ..., collection: sentinel-2-l2a, layers: {ms: [red, green, blue, nir]},
    #           mask: {asset: scl, codes: [3, 8, 9, 10]}}   # bands as assets, clouds masked
    dem: s3://bucket/bijie-north/dem.tif
    model: s3://bucket/models/unet/             # a bundle or a `lsmap train` run directory
    output: s3://bucket/scans/                  # results go to <output>/<name>/
    threshold: 0.5                              # probability that counts as landslide
    schedule: "0 */6 * * *"                     # 5-field cron, see pipelines.scan.cron
    before_threshold: 0.3    # optional: "new" needs probability below this before (default: threshold)
    min_area_m2: 50          # optional: smaller polygons are not reported (default 0)
    mapping: {workers: 2, gpus_per_worker: 1, batch_size: 32, chunk: 1024, precision: bf16}  # optional
    event: {id: bijie-2024-07-rain, date: 2024-07-14}   # optional: written into every polygon
```

STAC imagery keys: exactly one of ``stac_api`` (an http(s) STAC API URL, searched with
pystac-client) or ``stac_catalog`` (a static catalog or collection JSON, local, s3:// or http(s),
walked with pystac); optional ``collection`` (a collection id), ``max_cloud_cover`` (percent,
against ``eo:cloud_cover``; items without it are kept), a time window as ``days`` (the last N
days) or ``datetime`` (a STAC interval ``start/end``, ``..`` for open), and ``asset`` (the asset
key to map when an item has several GeoTIFF/Zarr assets) or ``layers`` (the model's image layers
by name, each an asset key or a list of keys, one single-band asset per band, as Sentinel-2 L2A
items hold them: ``{ms: [red, green, blue, nir]}``; see docs/layers.md). ``mask`` (``asset``
and ``codes``) makes the pixels of a scene classification asset whose class is in ``codes``
(clouds, shadows) nodata in the map.

Parsing is strict: an unknown or repeated key, a missing field, a value of the wrong type, a bad
cron expression or CRS, or a path with a ``..`` segment is an :class:`InputError` naming the file
and the key. Relative local paths are taken relative to the watch list's own folder. The file is
parsed as data (``yaml.safe_load`` rules), never executed.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipelines import storage
from pipelines.errors import InputError, StorageError
from pipelines.mapping.plan import PRECISIONS
from pipelines.scan.cron import validate_cron

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class AreaOfInterest:
    """A bounding box ``(minx, miny, maxx, maxy)`` in ``crs``."""

    bbox: tuple[float, float, float, float]
    crs: str


@dataclass(frozen=True)
class MappingOptions:
    """Settings passed on to :func:`pipelines.mapping.map_region`."""

    workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    batch_size: int = 16
    precision: str = "auto"
    chunk: int = 1024
    overlap: int | None = None


@dataclass(frozen=True)
class StacImagery:
    """Where a region's imagery is found by STAC: an API (``api``) or a static catalog
    (``catalog``), and which items count (see the module docstring)."""

    api: str | None = None
    catalog: str | None = None
    collection: str | None = None
    max_cloud_cover: float | None = None
    days: int | None = None
    datetime: str | None = None
    asset: str | None = None
    # Layer name -> asset keys (one per band), in the model's band order.
    layers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mask_asset: str | None = None
    mask_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Event:
    """The event a region is watched for; its id and date go into every polygon."""

    id: str | None = None
    date: str | None = None


@dataclass(frozen=True)
class Region:
    """One watched region. ``imagery`` is a storage prefix or a :class:`StacImagery`."""

    name: str
    aoi: AreaOfInterest
    imagery: str | StacImagery
    dem: str
    model: str
    output: str
    threshold: float
    schedule: str
    before_threshold: float
    min_area_m2: float = 0.0
    mapping: MappingOptions = field(default_factory=MappingOptions)
    event: Event = field(default_factory=Event)

    @property
    def root(self) -> str:
        """Where this region's results, ledger and lock live."""
        return storage.join(self.output, self.name)


@dataclass(frozen=True)
class WatchList:
    """The parsed watch list and the URI it came from."""

    uri: str
    regions: tuple[Region, ...]

    def select(self, names: list[str] | None) -> tuple[Region, ...]:
        """The regions called ``names`` (all when None); an unknown name is an InputError."""
        if not names:
            return self.regions
        known = {region.name: region for region in self.regions}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InputError(
                f"{storage.redact(self.uri)}: no region named {', '.join(unknown)} "
                f"(the watch list has {', '.join(known)})"
            )
        return tuple(known[name] for name in names)

    def crontab(self, program: str = "lsmap", names: list[str] | None = None) -> list[str]:
        """One crontab line per region (those called ``names``, or all): its schedule and the
        command that scans it alone."""
        config = self.uri if storage.is_remote(self.uri) else os.path.abspath(_local(self.uri))
        return [
            f"{region.schedule} {program} scan --config {shlex.quote(config)} "
            f"--region {region.name}"
            for region in self.select(names)
        ]


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_watchlist(uri: str) -> WatchList:
    """Read and validate the watch list at ``uri`` (local or s3://)."""
    try:
        text = storage.read_text(uri)
    except (StorageError, UnicodeDecodeError) as err:
        raise InputError(f"watch list {storage.redact(uri)}: cannot read it ({err})") from err
    return parse_watchlist(text, uri)


def parse_watchlist(text: str, uri: str) -> WatchList:
    """Validate watch-list YAML ``text``; ``uri`` names it in errors and anchors relative paths."""
    name = storage.redact(uri)
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        raise InputError(f"{name}: not valid YAML ({err})") from err
    top = _Fields(document, name, "")
    entries = top.take("regions", list)
    top.done()
    if not entries:
        raise InputError(f"{name}: regions: expected at least one region")
    base = _base_dir(uri)
    regions = tuple(_region(entry, name, f"regions[{i}]", base) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for i, region in enumerate(regions):
        if region.name in seen:
            raise InputError(f"{name}: regions[{i}].name: {region.name!r} is used twice")
        seen.add(region.name)
    return WatchList(uri=uri, regions=regions)


class _Fields:
    """Typed, once-only access to the keys of one YAML mapping, for precise error messages."""

    def __init__(self, mapping: Any, file: str, where: str) -> None:
        self.file, self.where = file, where
        if not isinstance(mapping, dict):
            raise self.error("", f"expected a mapping of keys to values, got {_kind(mapping)}")
        self.mapping = dict(mapping)

    def error(self, key: str, problem: str) -> InputError:
        path = ".".join(part for part in (self.where, key) if part)
        return InputError(f"{self.file}: {path or 'top level'}: {problem}")

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.mapping:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.mapping.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML booleans are ints to Python; a number field must not accept `yes`.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"expected {names}, got {_kind(value)}")
        return value

    def number(self, key: str, low: float, high: float, default: Any = ...) -> float:
        given = key in self.mapping
        value = self.take(key, (int, float), default)
        if given and not (math.isfinite(value) and low <= value <= high):
            raise self.error(key, f"expected a number in [{low}, {high}], got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        given = key in self.mapping
        value = self.take(key, str, default)
        if given and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, key: str, low: int, default: Any = ...) -> int:
        given = key in self.mapping
        value = self.take(key, int, default)
        if given and value < low:
            raise self.error(key, f"expected an integer >= {low}, got {value}")
        return value

    def uri(self, key: str, base: str | None) -> str:
        value = self.take(key, str)
        if not value.strip():
            raise self.error(key, "expected a path or URI, got an empty string")
        if ".." in re.split(r"[/\\]", value):
            raise self.error(
                key, f"{storage.redact(value)!r} has a '..' segment; write the path in full"
            )
        try:
            remote = storage.is_remote(value)
        except StorageError as err:
            raise self.error(key, str(err)) from err
        if remote or base is None or value.startswith("file://") or os.path.isabs(value):
            return value
        return os.path.normpath(os.path.join(base, value))

    def done(self) -> None:
        if self.mapping:
            unknown = ", ".join(repr(str(key)) for key in self.mapping)
            raise self.error("", f"unknown key(s) {unknown}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _base_dir(uri: str) -> str | None:
    """The folder relative paths in a local watch list are read against (None: remote list)."""
    if storage.is_remote(uri):
        return None
    return os.path.dirname(os.path.abspath(_local(uri)))


def _local(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _region(entry: Any, file: str, where: str, base: str | None) -> Region:
    fields = _Fields(entry, file, where)
    name = fields.take("name", str)
    if not NAME_PATTERN.match(name):
        raise fields.error(
            "name", f"{name!r} must be 1-64 letters, digits, '-' or '_' (it names a folder)"
        )
    fields.where = f"{where} ({name})"
    aoi = _aoi(fields.take("aoi", dict), file, f"{fields.where}.aoi")
    if isinstance(fields.mapping.get("imagery"), dict):
        imagery = _stac_imagery(fields.take("imagery", dict), file, f"{fields.where}.imagery", base)
    else:
        imagery = fields.uri("imagery", base)
    dem = fields.uri("dem", base)
    model = fields.uri("model", base)
    output = fields.uri("output", base)
    threshold = fields.number("threshold", 0.0, 1.0)
    before = fields.number("before_threshold", 0.0, threshold, default=threshold)
    min_area = fields.number("min_area_m2", 0.0, math.inf, default=0.0)
    schedule = fields.take("schedule", str)
    try:
        validate_cron(schedule)
    except ValueError as err:
        raise fields.error("schedule", str(err)) from err
    mapping = _mapping(fields.take("mapping", dict, default={}), file, f"{fields.where}.mapping")
    event = _event(fields.take("event", dict, default={}), file, f"{fields.where}.event")
    fields.done()
    return Region(
        name=name,
        aoi=aoi,
        imagery=imagery,
        dem=dem,
        model=model,
        output=output,
        threshold=float(threshold),
        schedule=schedule,
        before_threshold=float(before),
        min_area_m2=float(min_area),
        mapping=mapping,
        event=event,
    )


def _stac_imagery(entry: dict, file: str, where: str, base: str | None) -> StacImagery:
    fields = _Fields(entry, file, where)
    kinds = [key for key in ("stac_api", "stac_catalog") if key in fields.mapping]
    if len(kinds) != 1:
        raise fields.error("", "expected exactly one of 'stac_api' (a URL) or 'stac_catalog'")
    api = catalog = None
    if kinds[0] == "stac_api":
        api = fields.take("stac_api", str)
        if not api.startswith(("http://", "https://")):
            raise fields.error("stac_api", f"expected an http(s) URL, got {api!r}")
    else:
        catalog = fields.uri("stac_catalog", base)
    imagery = StacImagery(
        api=api,
        catalog=catalog,
        collection=fields.take("collection", str, default=None),
        max_cloud_cover=fields.number("max_cloud_cover", 0.0, 100.0, default=None),
        days=fields.integer("days", 1, default=None),
        datetime=fields.take("datetime", str, default=None),
        asset=fields.take("asset", str, default=None),
        layers=_asset_layers(fields.take("layers", dict, default={}), fields),
        **_mask(fields.take("mask", dict, default=None), fields),
    )
    if imagery.layers and imagery.asset is not None:
        raise fields.error("", "give the imagery as 'asset' or as 'layers', not both")
    if imagery.days is not None and imagery.datetime is not None:
        raise fields.error("", "give a time window as 'days' or as 'datetime', not both")
    if imagery.datetime is not None:
        from pipelines.scan.discovery import parse_interval

        try:
            parse_interval(imagery.datetime)
        except ValueError as err:
            raise fields.error("datetime", str(err)) from err
    fields.done()
    return imagery


def _asset_layers(entry: dict, fields: _Fields) -> tuple[tuple[str, tuple[str, ...]], ...]:
    layers = []
    for name, keys in entry.items():
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(name, str) or not (
            isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys)
        ):
            raise fields.error("layers", f"expected layer name: asset key(s), got {name}: {keys}")
        layers.append((name, tuple(keys)))
    return tuple(layers)


def _mask(entry: dict | None, fields: _Fields) -> dict[str, Any]:
    if entry is None:
        return {}
    asset, codes = entry.get("asset"), entry.get("codes")
    if (
        set(entry) != {"asset", "codes"}
        or not isinstance(asset, str)
        or not isinstance(codes, list)
        or not codes
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes)
    ):
        raise fields.error("mask", f"expected {{asset: KEY, codes: [CLASS, ...]}}, got {entry}")
    return {"mask_asset": asset, "mask_codes": tuple(codes)}


def _event(entry: dict, file: str, where: str) -> Event:
    fields = _Fields(entry, file, where)
    event_id = fields.take("id", str, default=None)
    date = fields.take("date", (str, datetime.date), default=None)
    if isinstance(date, str):
        try:
            date = datetime.date.fromisoformat(date)
        except ValueError as err:
            raise fields.error("date", f"expected a date YYYY-MM-DD, got {date!r}") from err
    fields.done()
    return Event(id=event_id, date=date.isoformat() if date is not None else None)


def _aoi(entry: dict, file: str, where: str) -> AreaOfInterest:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    fields = _Fields(entry, file, where)
    bbox = fields.take("bbox", list)
    if len(bbox) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox
    ):
        raise fields.error("bbox", f"expected 4 numbers [minx, miny, maxx, maxy], got {bbox}")
    if not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise fields.error("bbox", f"{bbox} is empty: expected minx < maxx and miny < maxy")
    crs = fields.take("crs", str)
    try:
        CRS.from_user_input(crs)
    except CRSError as err:
        raise fields.error("crs", f"{crs!r} is not a coordinate reference system ({err})") from err
    fields.done()
    return AreaOfInterest(bbox=tuple(float(v) for v in bbox), crs=crs)


def _mapping(entry: dict, file: str, where: str) -> MappingOptions:
    fields = _Fields(entry, file, where)
    defaults = MappingOptions()
    options = MappingOptions(
        workers=fields.integer("workers", 1, defaults.workers),
        cpus_per_worker=fields.integer("cpus_per_worker", 1, defaults.cpus_per_worker),
        gpus_per_worker=float(
            fields.number("gpus_per_worker", 0.0, math.inf, defaults.gpus_per_worker)
        ),
        batch_size=fields.integer("batch_size", 1, defaults.batch_size),
        precision=fields.choice("precision", ("auto", *PRECISIONS), defaults.precision),
        chunk=fields.integer("chunk", 1, defaults.chunk),
        overlap=fields.integer("overlap", 0, defaults.overlap),
    )
    fields.done()
    return options
