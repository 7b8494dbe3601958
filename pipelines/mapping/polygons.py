"""Landslide polygons from a probability mosaic read chunk by chunk, and the files they go to.

Each chunk's connected landslide pixels become pieces (polygon plus pixel statistics); pieces that
share an edge across chunk borders are merged into one landslide, so the result does not depend
on the chunking.

Every polygon file lsmap writes (``lsmap map --polygons`` and ``lsmap scan``) has the columns of
:data:`SCHEMA`, in that order, whatever the format: GeoParquet (the canonical file), FlatGeobuf
(spatially indexed: its row order is the index's, not the table's) and GeoJSON (for reports), all
in the map's CRS. The columns follow what rapid-mapping and inventory users already read:
a detection method as in Copernicus EMS observed-event layers (``det_method``), an ordinal
confidence, event and source-image dates as in landslide inventories (USGS), and an event id with
centroid longitude/latitude as in NASA's landslide catalog.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipelines import storage
from pipelines.raster import Grid

DET_METHOD = "automatic extraction"
# Ordinal confidence from a polygon's mean probability, highest level first: a polygon gets the
# first level whose lower bound its ``prob_mean`` reaches.
CONFIDENCE_LEVELS = (("high", 0.85), ("medium", 0.7), ("low", 0.0))
# Share of a landslide's area that must be new (absent from the previous map) for ``status: new``.
NEW_SHARE = 0.5

_TIME = "datetime64[ms, UTC]"
# name -> (pandas dtype, meaning). Strings may be missing (NaN) where noted.
SCHEMA: dict[str, tuple[str, str]] = {
    "landslide_id": (
        "str",
        "unique id: '<scan id or map run id>-<number>', numbered largest first",
    ),
    "event_id": ("str", "triggering event's id from the watch list (missing when not given)"),
    "scan_id": ("str", "'<region>/<image id>' of the scan (missing for a plain map run)"),
    "status": ("str", "'new' or 'existing' against the previous map (missing: no previous map)"),
    "det_method": ("str", f"always {DET_METHOD!r}"),
    "confidence": ("str", "ordinal low < medium < high from prob_mean (CONFIDENCE_LEVELS)"),
    "prob_mean": ("float64", "mean landslide probability of the polygon's pixels"),
    "prob_max": ("float64", "highest landslide probability of the polygon's pixels"),
    "area_m2": ("float64", "area in square metres (pixel count x pixel area)"),
    "area_ha": ("float64", "area in hectares"),
    "centroid_lon": ("float64", "centroid longitude, WGS84"),
    "centroid_lat": ("float64", "centroid latitude, WGS84"),
    "event_date": ("str", "event date YYYY-MM-DD from the watch list (missing when not given)"),
    "detected_at": (_TIME, "when lsmap mapped the image (the map run's start)"),
    "source_id": ("str", "id of the source image (STAC item id, or the file's name)"),
    "source_datetime": (_TIME, "acquisition time of the source image (missing when unknown)"),
    "source_sensor": ("str", "platform/instrument of the source image (missing when unknown)"),
    "source_gsd_m": ("float64", "ground sample distance of the source image in metres"),
    "model_version": ("str", "'sha256:' + the first 12 hex digits of the model bundle's sha256"),
}
POLYGON_FORMATS = {"geoparquet": ".parquet", "flatgeobuf": ".fgb", "geojson": ".geojson"}


@dataclass(frozen=True)
class SourceImage:
    """The image a map was made from, as the polygon files describe it."""

    id: str
    datetime: datetime.datetime | None = None
    sensor: str | None = None
    gsd_m: float | None = None


@dataclass(frozen=True)
class Provenance:
    """What all the polygons of one map share: where, when and by what model they were found."""

    origin: str  # landslide ids start with it: the scan id, or the map run's id
    model_sha256: str
    detected_at: datetime.datetime
    source: SourceImage
    scan_id: str | None = None
    event_id: str | None = None
    event_date: str | None = None

    @property
    def model_version(self) -> str:
        return f"sha256:{self.model_sha256[:12]}"


def chunk_pieces(mask: np.ndarray, probability: np.ndarray, window: Grid) -> list[dict]:
    """Polygons of the connected parts of ``mask`` in one chunk (on grid ``window``), with the
    sum, maximum and count of their pixels' probabilities."""
    import rasterio.features
    import shapely
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    sums = ndimage.sum_labels(probability, labels, index)
    maxima = ndimage.maximum(probability, labels, index)
    pixels = ndimage.sum_labels(mask, labels, index)
    # 4-connected labels and shapes agree: one polygon (holes included) per label.
    return [
        {
            "geometry": shapely.geometry.shape(geometry),
            "sum": float(sums[int(label) - 1]),
            "max": float(maxima[int(label) - 1]),
            "pixels": int(pixels[int(label) - 1]),
        }
        for geometry, label in rasterio.features.shapes(
            labels.astype(np.int32), mask=mask, transform=window.transform
        )
    ]


def landslide_features(pieces: list[dict], grid: Grid, min_area_m2: float = 0.0) -> list[dict]:
    """Pieces merged across chunk borders into GeoJSON features, largest first, numbered from 1,
    with area, mean/max probability and the centroid in longitude/latitude."""
    import shapely
    from pyproj import Transformer

    if not pieces:
        return []
    pixel_area = abs(grid.transform.a * grid.transform.e)
    features = [_merged(group, pixel_area) for group in _touching_groups(pieces)]
    features = [f for f in features if f["properties"]["area_m2"] >= min_area_m2]
    features.sort(key=lambda f: -f["properties"]["area_m2"])
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    for number, feature in enumerate(features, start=1):
        centroid = shapely.geometry.shape(feature["geometry"]).centroid
        lon, lat = to_lonlat.transform(centroid.x, centroid.y)
        properties = feature["properties"]
        feature["properties"] = {
            "id": number,
            "area_m2": round(properties["area_m2"], 2),
            "prob_mean": round(properties["prob_mean"], 4),
            "prob_max": round(properties["prob_max"], 4),
            "centroid_lon": round(lon, 6),
            "centroid_lat": round(lat, 6),
        }
    return features


def confidence(prob_mean: float) -> str:
    """The ordinal confidence level of a polygon with mean probability ``prob_mean``."""
    return next(level for level, low in CONFIDENCE_LEVELS if prob_mean >= low)


def landslide_frame(
    features: list[dict],
    grid: Grid,
    provenance: Provenance,
    new_features: list[dict] | None = None,
):
    """The polygons of :func:`landslide_features` as a GeoDataFrame with the :data:`SCHEMA`
    columns. ``new_features`` (the new parts, from a comparison with the previous map) set each
    landslide's ``status``: ``new`` when at least :data:`NEW_SHARE` of its area is new."""
    import geopandas
    import pandas as pd
    import shapely

    geometries = [shapely.geometry.shape(f["geometry"]) for f in features]
    if new_features is None:
        status = [None] * len(features)
    else:
        new_area = _overlap_areas(geometries, [f["geometry"] for f in new_features])
        status = [
            "new" if new >= NEW_SHARE * geometry.area else "existing"
            for new, geometry in zip(new_area, geometries, strict=True)
        ]
    source = provenance.source
    rows = [
        {
            "landslide_id": f"{provenance.origin}-{p['id']:04d}",
            "event_id": provenance.event_id,
            "scan_id": provenance.scan_id,
            "status": state,
            "det_method": DET_METHOD,
            "confidence": confidence(p["prob_mean"]),
            "prob_mean": p["prob_mean"],
            "prob_max": p["prob_max"],
            "area_m2": p["area_m2"],
            "area_ha": round(p["area_m2"] / 10_000, 6),
            "centroid_lon": p["centroid_lon"],
            "centroid_lat": p["centroid_lat"],
            "event_date": provenance.event_date,
            "detected_at": provenance.detected_at,
            "source_id": source.id,
            "source_datetime": source.datetime,
            "source_sensor": source.sensor,
            "source_gsd_m": source.gsd_m,
            "model_version": provenance.model_version,
        }
        for p, state in zip((f["properties"] for f in features), status, strict=True)
    ]
    table = pd.DataFrame(rows, columns=list(SCHEMA)).astype(
        {name: dtype for name, (dtype, _) in SCHEMA.items()}
    )
    return geopandas.GeoDataFrame(table, geometry=geometries, crs=grid.crs)


def _overlap_areas(geometries: list, others: list[dict]) -> list[float]:
    import shapely

    if not others:
        return [0.0] * len(geometries)
    union = shapely.union_all([shapely.geometry.shape(g) for g in others])
    return [float(geometry.intersection(union).area) for geometry in geometries]


def write_landslides(
    base: str, frame, formats: Iterable[str] = tuple(POLYGON_FORMATS)
) -> dict[str, str]:
    """Write ``frame`` (a :func:`landslide_frame`) as ``base`` + the suffix of each of ``formats``
    (keys of :data:`POLYGON_FORMATS`); returns format -> URI."""
    import pyogrio

    uris = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in formats:
            suffix = POLYGON_FORMATS[kind]
            path = os.path.join(tmp, f"polygons{suffix}")
            if kind == "geoparquet":
                frame.to_parquet(path, index=False)
            else:
                # An empty layer has no geometry to infer its type from.
                pyogrio.write_dataframe(
                    frame,
                    path,
                    driver="FlatGeobuf" if kind == "flatgeobuf" else "GeoJSON",
                    geometry_type="Polygon" if frame.empty else None,
                )
            storage.upload_file(path, base + suffix)
            uris[kind] = base + suffix
    return uris


def _touching_groups(pieces: list[dict]) -> list[list[dict]]:
    """Group pieces that share an edge (a landslide cut by chunk borders)."""
    import shapely

    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    geometries = [piece["geometry"] for piece in pieces]
    tree = shapely.STRtree(geometries)
    for i, j in zip(*tree.query(geometries, predicate="touches"), strict=True):
        if i < j and geometries[i].intersection(geometries[j]).length > 0:
            parent[find(i)] = find(j)
    groups: dict[int, list[dict]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(find(i), []).append(piece)
    return list(groups.values())


def _merged(group: list[dict], pixel_area: float) -> dict:
    import shapely

    geometry = shapely.union_all([piece["geometry"] for piece in group])
    pixels = sum(piece["pixels"] for piece in group)
    return {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(geometry),
        "properties": {
            "area_m2": pixels * pixel_area,
            "prob_mean": sum(piece["sum"] for piece in group) / pixels,
            "prob_max": max(piece["max"] for piece in group),
        },
    }
