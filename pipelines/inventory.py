"""A landslide inventory for training: polygons, or points labelled presence/absence.

:func:`read_inventory` reads a user's inventory (a vector file, GeoParquet or a CSV of
coordinates; local or s3://), checks it, reprojects it to the layers' CRS, filters it by date and
event, clips it to an area of interest and returns an :class:`Inventory`: one ``landslide``
(bool) column and the geometries. Every problem is an :class:`~pipelines.errors.InputError`
naming the file, what is wrong and what to do.

A polygon inventory is *complete* by default: outside every polygon is background (absence).
Points never are: a loss that needs absences asks :meth:`Inventory.require_absences`.
"""

from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines import storage
from pipelines.errors import InputError, LsmapError

if TYPE_CHECKING:
    import geopandas
    import pandas
    import shapely

PRESENT = ("true", "1", "1.0", "yes", "presence", "present")
ABSENT = ("false", "0", "0.0", "no", "absence", "absent")
# Coordinate columns of a CSV tried in order when x:/y: are not given (case-insensitive).
COORDINATE_COLUMNS = (
    ("lon", "lat"),
    ("longitude", "latitude"),
    ("x", "y"),
    ("easting", "northing"),
)
POLYGON_TYPES = ("Polygon", "MultiPolygon")
POINT_TYPES = ("Point", "MultiPoint")
_SHOWN = 5  # offending values or rows a message lists


@dataclass(frozen=True)
class InventorySpec:
    """Where an inventory is and how to read it.

    ``uri``: a vector file (GeoPackage, GeoJSON, FlatGeobuf, zipped Shapefile, GeoParquet
    ``.parquet``) or a ``.csv`` of point coordinates, local or s3://. ``label``: the
    presence/absence column (None: every feature is a presence). ``x``/``y``: a CSV's coordinate
    columns (default: the first of :data:`COORDINATE_COLUMNS` found); ``crs``: a CSV's CRS
    (required), or that of a vector file lacking one. ``date`` with ``start``/``end`` (inclusive
    ISO dates, None: open) and ``event`` with ``events`` keep the matching features; absences with
    no date or event are kept (stable ground holds whatever the event). ``complete``: whether
    outside every polygon is background (polygons: default True; points: never).
    """

    uri: str
    label: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str | None = None
    date: str | None = None
    start: str | None = None
    end: str | None = None
    event: str | None = None
    events: tuple[str, ...] | None = None
    complete: bool | None = None


@dataclass(frozen=True)
class Inventory:
    """A checked inventory: ``frame`` holds ``landslide`` (bool) and geometries in the target CRS.

    ``kind``: ``"polygons"`` or ``"points"``; ``complete``: whether outside every polygon is
    background; ``source``: the file, as messages name it.
    """

    kind: str
    frame: geopandas.GeoDataFrame
    complete: bool
    source: str

    @property
    def presences(self) -> geopandas.GeoDataFrame:
        """The features that are landslides (a GeoDataFrame)."""
        return self.frame[self.frame["landslide"]]

    @property
    def absences(self) -> geopandas.GeoDataFrame:
        """The features labelled absence (a GeoDataFrame)."""
        return self.frame[~self.frame["landslide"]]

    def require_absences(self, why: str) -> None:
        """Refuse an inventory with no absence for ``why`` (e.g. a loss that needs them); a
        complete polygon inventory has its background."""
        if self.complete or len(self.absences):
            return
        what = (
            "points need absence rows"
            if self.kind == "points"
            else "an incomplete polygon inventory (complete: false) needs absence polygons"
        )
        raise InputError(
            f"{self.source}: {what} (label 0/false) for {why}, and it has none; add some and "
            "name their column with label:"
        )


def read_inventory(
    spec: InventorySpec,
    crs: Any,
    bounds: tuple[float, float, float, float] | None = None,
    aoi: shapely.Geometry | None = None,
) -> Inventory:
    """Read, validate, reproject to ``crs`` (anything pyproj accepts), filter by date/event, clip
    to ``aoi`` (a shapely geometry in ``crs``) when given; ``bounds`` (left, bottom, right, top in
    ``crs``) is the layers' extent: an inventory with no feature inside it is refused."""
    import geopandas
    import shapely
    from pyproj import CRS

    name = storage.redact(spec.uri)
    target = CRS.from_user_input(crs)
    _check_spec(spec, name)
    frame = _read_csv(spec, name) if _is_csv(spec.uri) else _read_vector(spec, name)
    for column in (spec.label, spec.date, spec.event):
        if column is not None and column not in frame.columns:
            columns = [c for c in frame.columns if c != frame.geometry.name]
            raise InputError(f"{name}: no column {column!r}; its columns are {columns}")

    present = frame.geometry.notna() & ~frame.geometry.is_empty
    if not present.any():
        raise InputError(f"{name}: the inventory holds no geometry")
    frame = frame[present]
    kind = _kind(frame, name)
    if kind == "polygons":
        invalid = frame.index[~shapely.is_valid(frame.geometry.values)]
        if len(invalid):
            rows = ", ".join(str(i) for i in invalid[:_SHOWN])
            raise InputError(
                f"{name}: {len(invalid)} invalid polygon(s) (rows {rows}, counting from 0); "
                "repair them with shapely.make_valid or `ogr2ogr -makevalid`"
            )
    elif spec.complete:
        raise InputError(
            f"{name}: points cannot make the rest of the area background; drop complete: true "
            "(or give polygons)"
        )
    complete = kind == "polygons" and spec.complete is not False

    landslide = (
        _labels(frame[spec.label], name, spec.label)
        if spec.label is not None
        else np.ones(len(frame), bool)
    )
    frame = frame.assign(landslide=landslide)
    if kind == "points":
        frame = frame.explode(index_parts=False)
    frame = frame.to_crs(target)
    if spec.date is not None:
        frame = _filter_dates(frame, spec, name)
    if spec.events is not None:
        frame = _filter_events(frame, spec, name)
    if aoi is not None:
        frame = geopandas.clip(frame, aoi, keep_geom_type=True)
        if not len(frame):
            raise InputError(
                f"{name}: no feature lies within the area of interest; check the aoi and the "
                "inventory's CRS"
            )
    if bounds is not None and not frame.intersects(shapely.box(*bounds)).any():
        raise InputError(
            f"{name}: no feature lies within the layers' extent: the inventory spans "
            f"{_extent(frame.total_bounds)}, the layers {_extent(bounds)}, both in "
            f"{target.to_string()}; check the inventory's CRS (crs:)"
        )
    frame = geopandas.GeoDataFrame(
        {"landslide": frame["landslide"].to_numpy(bool)},
        geometry=frame.geometry.to_numpy(),
        crs=target,
    )
    return Inventory(kind, frame, complete, name)


def _check_spec(spec: InventorySpec, name: str) -> None:
    """Refuse options that contradict each other, before reading anything."""
    if (spec.start is not None or spec.end is not None) and spec.date is None:
        raise InputError(f"{name}: start:/end: filter on dates; name their column with date:")
    if spec.events is not None and spec.event is None:
        raise InputError(f"{name}: events: filter on event ids; name their column with event:")
    if not _is_csv(spec.uri) and (spec.x is not None or spec.y is not None):
        raise InputError(f"{name}: x:/y: name the coordinate columns of a CSV only")
    for option in ("start", "end"):
        _iso_date(getattr(spec, option), name, option)


def _is_csv(uri: str) -> bool:
    return uri.lower().endswith(".csv")


def _read_vector(spec: InventorySpec, name: str) -> geopandas.GeoDataFrame:
    """A vector file or GeoParquet as a GeoDataFrame with a CRS."""
    import geopandas

    from pipelines.vectors import read_vector_file

    try:
        if spec.uri.lower().endswith((".parquet", ".geoparquet")):
            frame = geopandas.read_parquet(io.BytesIO(storage.read_bytes(spec.uri)))
        else:
            frame = read_vector_file(spec.uri)
    except Exception as err:  # OGR, Arrow and storage raise many kinds: all, an unreadable file
        raise InputError(f"{name}: cannot read it as an inventory ({err})") from err
    if not isinstance(frame, geopandas.GeoDataFrame):
        raise InputError(f"{name}: the file holds no geometry")
    if frame.crs is None:
        if spec.crs is None:
            raise InputError(
                f"{name}: the file has no CRS; give it with crs: (e.g. crs: EPSG:32648) or set "
                "one with `ogr2ogr -a_srs`"
            )
        return frame.set_crs(spec.crs)
    if spec.crs is not None and not frame.crs.equals(spec.crs):
        raise InputError(
            f"{name}: the file's CRS is {frame.crs.to_string()} but crs: says {spec.crs}; "
            "drop crs: (it is for files without one) or fix the file"
        )
    return frame


def _read_csv(spec: InventorySpec, name: str) -> geopandas.GeoDataFrame:
    """A CSV of coordinates as a GeoDataFrame of points."""
    import geopandas
    import pandas

    if spec.crs is None:
        raise InputError(
            f"{name}: a CSV has no CRS; give its coordinates' CRS with crs: (e.g. EPSG:4326)"
        )
    try:
        table = pandas.read_csv(io.BytesIO(storage.read_bytes(spec.uri)))
    except (OSError, ValueError, LsmapError) as err:
        raise InputError(f"{name}: cannot read it as a CSV ({err})") from err
    x, y = _coordinate_columns(table, spec, name)
    coordinates = {}
    for column in (x, y):
        values = pandas.to_numeric(table[column], errors="coerce")
        bad = table[column][values.isna() & table[column].notna()]
        if len(bad):
            raise InputError(
                f"{name}: column {column!r} holds values that are not numbers: "
                f"{_examples(bad)}; fix them"
            )
        coordinates[column] = values.to_numpy(float)
    xs, ys = coordinates[x], coordinates[y]
    # Rows missing a coordinate become empty points, dropped with other empty geometries.
    missing = np.isnan(xs) | np.isnan(ys)
    points = geopandas.points_from_xy(np.where(missing, 0, xs), np.where(missing, 0, ys))
    points[missing] = None
    return geopandas.GeoDataFrame(table, geometry=points, crs=spec.crs)


def _coordinate_columns(table: pandas.DataFrame, spec: InventorySpec, name: str) -> tuple[str, str]:
    columns = list(table.columns)
    if spec.x is not None or spec.y is not None:
        if spec.x is None or spec.y is None:
            raise InputError(f"{name}: give both x: and y: (the coordinate columns)")
        for column in (spec.x, spec.y):
            if column not in columns:
                raise InputError(f"{name}: no column {column!r}; its columns are {columns}")
        return spec.x, spec.y
    lower = {str(c).lower(): c for c in columns}
    for x, y in COORDINATE_COLUMNS:
        if x in lower and y in lower:
            return lower[x], lower[y]
    tried = ", ".join(f"{x}/{y}" for x, y in COORDINATE_COLUMNS)
    raise InputError(
        f"{name}: no coordinate columns ({tried}) among {columns}; name them with x: and y:"
    )


def _kind(frame: geopandas.GeoDataFrame, name: str) -> str:
    """``"polygons"`` or ``"points"``; refuses lines and a mix."""
    types = frame.geometry.geom_type
    polygons, points = types.isin(POLYGON_TYPES), types.isin(POINT_TYPES)
    other = sorted(set(types[~(polygons | points)]))
    if other:
        raise InputError(
            f"{name}: an inventory holds polygons or points, this one has {', '.join(other)}; "
            "keep the landslide outlines (polygons) or their points"
        )
    if polygons.any() and points.any():
        raise InputError(
            f"{name}: it mixes {int(polygons.sum())} polygon(s) and {int(points.sum())} point(s); "
            "an inventory holds one kind: split it into two files"
        )
    return "polygons" if polygons.any() else "points"


def _label(value: Any) -> bool | None:
    """A presence/absence value as a bool; None if it is no accepted spelling."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Real):
        return {1: True, 0: False}.get(value) if not math.isnan(value) else None
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in PRESENT else False if text in ABSENT else None
    return None


def _labels(values: pandas.Series, name: str, column: str) -> np.ndarray:
    if values.map(_missing).all():
        raise InputError(f"{name}: column {column!r} is empty; fill it with presence/absence")
    parsed = [_label(v) for v in values]
    bad = values[[p is None for p in parsed]]
    if len(bad):
        raise InputError(
            f"{name}: column {column!r} holds values that are not presence/absence: "
            f"{_examples(bad)}; use {'/'.join(PRESENT)} for a landslide and "
            f"{'/'.join(ABSENT)} for none (any case)"
        )
    return np.asarray(parsed, bool)


def _examples(values: Any) -> str:
    """Up to :data:`_SHOWN` distinct values, missing ones shown as ``empty``."""
    shown = []
    for value in values:
        text = "empty" if _missing(value) else repr(value)
        if text not in shown:
            shown.append(text)
    return ", ".join(shown[:_SHOWN]) + (", ..." if len(shown) > _SHOWN else "")


def _missing(value: Any) -> bool:
    import pandas

    return value is None or (isinstance(value, str) and not value.strip()) or pandas.isna(value)


def _iso_date(text: str | None, name: str, option: str) -> pandas.Timestamp | None:
    import pandas

    if text is None:
        return None
    try:
        return pandas.Timestamp(date.fromisoformat(str(text)))
    except ValueError as err:
        raise InputError(f"{name}: {option}: {text!r} is not an ISO date (YYYY-MM-DD)") from err


def _filter_dates(
    frame: geopandas.GeoDataFrame, spec: InventorySpec, name: str
) -> geopandas.GeoDataFrame:
    """Rows dated within ``start``..``end`` (whole days; times with a zone compare in UTC)."""
    import pandas

    values = frame[spec.date]
    missing = values.map(_missing).to_numpy(bool)
    parsed = pandas.to_datetime(
        values.where(~missing), errors="coerce", format="ISO8601", utc=True
    ).dt.tz_localize(None)
    bad = values[parsed.isna().to_numpy() & ~missing]
    if len(bad):
        raise InputError(
            f"{name}: column {spec.date!r} holds values that are not dates: {_examples(bad)}; "
            "write them as ISO dates (YYYY-MM-DD)"
        )
    days = parsed.dt.normalize()
    start, end = _iso_date(spec.start, name, "start"), _iso_date(spec.end, name, "end")
    keep = ~missing
    if start is not None:
        keep &= (days >= start).to_numpy(bool)
    if end is not None:
        keep &= (days <= end).to_numpy(bool)
    kept = frame[keep | (missing & ~frame["landslide"].to_numpy(bool))]
    if not len(kept):
        dated = days[~missing]
        span = f"{dated.min():%Y-%m-%d} to {dated.max():%Y-%m-%d}" if len(dated) else "none"
        raise InputError(
            f"{name}: the date filter (start: {spec.start}, end: {spec.end}) removed every "
            f"feature; column {spec.date!r} spans {span}; widen start:/end:"
        )
    return kept


def _event_text(value: Any) -> str | None:
    """An event id as text: ``3.0`` (a CSV column with gaps reads as floats) is ``"3"``."""
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _filter_events(
    frame: geopandas.GeoDataFrame, spec: InventorySpec, name: str
) -> geopandas.GeoDataFrame:
    """Rows whose event is one of ``events``."""
    ids = frame[spec.event].map(_event_text)
    wanted = {str(e).strip() for e in spec.events or ()}
    missing = ids.isna().to_numpy(bool)
    keep = ids.isin(wanted).to_numpy(bool) | (missing & ~frame["landslide"].to_numpy(bool))
    if not keep.any():
        present = sorted(set(ids[~missing]))
        shown = ", ".join(map(repr, present[:_SHOWN])) + (", ..." if len(present) > _SHOWN else "")
        raise InputError(
            f"{name}: the event filter (events: {sorted(wanted)}) removed every feature; column "
            f"{spec.event!r} holds {shown or 'no event'}; check events:"
        )
    return frame[keep]


def _extent(bounds: Any) -> str:
    return "(" + ", ".join(f"{float(v):.10g}" for v in bounds) + ")"
