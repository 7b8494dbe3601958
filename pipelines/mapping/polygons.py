"""Landslide polygons from a probability mosaic read chunk by chunk.

Each chunk's connected landslide pixels become pieces (polygon plus pixel statistics); pieces that
share an edge across chunk borders are merged into one landslide, so the result does not depend
on the chunking.
"""

from __future__ import annotations

import json

import numpy as np

from pipelines import storage
from pipelines.raster import Grid


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


def write_geojson(uri: str, features: list[dict], grid: Grid) -> str:
    """Write ``features`` as a GeoJSON FeatureCollection in the grid's CRS; returns ``uri``."""
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": grid.crs.to_string()}},
        "features": features,
    }
    storage.write_bytes(uri, json.dumps(collection).encode())
    return uri


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
