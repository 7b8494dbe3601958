"""The summary (JSON) and the short report (markdown) of one scanned image.

Both are plain functions of the scan's results, with no clock in them: scanning the same image
again writes the same bytes.

The alert level is a rule on the landslides that call for attention: the new ones when there is
a previous map, else (the region's first image) all of them. By their total area: ``green`` none,
``yellow`` under 1 ha, ``orange`` 1 to 10 ha, ``red`` 10 ha or more (:data:`ALERT_LEVELS`).
"""

from __future__ import annotations

from pipelines import storage
from pipelines.scan.compare import Comparison
from pipelines.scan.config import Region
from pipelines.scan.discovery import Image

TOP = 10  # polygons listed in the summary and the report
# (level, lowest total area in m²), highest level first; any landslide at all is at least yellow.
ALERT_LEVELS = (("red", 100_000.0), ("orange", 10_000.0), ("yellow", 0.0))


def alert_level(features: list[dict]) -> str:
    """The alert level (see the module docstring) for the landslides ``features``."""
    if not features:
        return "green"
    area = sum(f["properties"]["area_m2"] for f in features)
    return next(level for level, low in ALERT_LEVELS if area >= low)


def _totals(features: list[dict]) -> dict:
    return {
        "count": len(features),
        "area_m2": round(sum(f["properties"]["area_m2"] for f in features), 2),
    }


def summarise(
    region: Region,
    image: Image,
    previous: str | None,
    comparison: Comparison,
    outputs: dict[str, str],
) -> dict:
    """What a scan of ``image`` found. ``outputs`` maps kinds of output to file names beside the
    summary; ``previous`` is the id of the image compared with (None for the region's first)."""
    new = comparison.new
    grid = comparison.grid
    return {
        "region": region.name,
        "scan_id": f"{region.name}/{image.id}",
        "image": image.id,
        "image_uri": storage.redact(image.uri),
        "image_datetime": image.datetime,
        "previous_image": previous,
        "event": {"id": region.event.id, "date": region.event.date},
        "threshold": region.threshold,
        "before_threshold": region.before_threshold,
        "min_area_m2": region.min_area_m2,
        "crs": grid.crs.to_string(),
        "pixel_size": list(grid.res),
        "bbox": [round(v, 7) for v in _lonlat(grid.crs, grid.bounds)],
        "landslides_bbox": _features_bbox(comparison.landslides, grid),
        "max_probability": comparison.max_probability,
        "alert_level": alert_level(comparison.landslides if new is None else new),
        "alert_basis": "all landslides (first image)" if new is None else "new landslides",
        "landslides": _totals(comparison.landslides),
        "new_landslides": None if new is None else _totals(new),
        "top_landslides": [f["properties"] for f in comparison.landslides[:TOP]],
        "top_new_landslides": None if new is None else [f["properties"] for f in new[:TOP]],
        "outputs": outputs,
    }


def _lonlat(crs, bounds) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)


def _features_bbox(features: list[dict], grid) -> list[float] | None:
    """Longitude/latitude bounds of ``features`` (None when there are none)."""
    import shapely

    if not features:
        return None
    bounds = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in features]).bounds
    return [round(v, 7) for v in _lonlat(grid.crs, bounds)]


def _area(m2: float) -> str:
    return f"{m2:,.0f} m² ({m2 / 10_000:,.2f} ha)"


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| # | area (m²) | mean p | max p | longitude | latitude |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p['id']} | {p['area_m2']:,.0f} | {p['prob_mean']:.2f} | {p['prob_max']:.2f} "
        f"| {p['centroid_lon']:.6f} | {p['centroid_lat']:.6f} |"
        for p in rows
    ]
    return lines


def render_markdown(summary: dict) -> str:
    """The report of one scanned image, in markdown, with pictures and files named relatively."""
    outputs = summary["outputs"]
    total, new = summary["landslides"], summary["new_landslides"]
    if summary["previous_image"] is None:
        compared = "nothing: the first image of this region, so no landslide is counted as new"
    else:
        compared = f"`{summary['previous_image']}`"
    rule = f"probability ≥ {summary['threshold']:g}"
    if new is not None:
        rule += f"; new where it was < {summary['before_threshold']:g} in the previous map"
    if summary["min_area_m2"]:
        rule += f"; polygons under {summary['min_area_m2']:g} m² left out"
    lines = [
        f"# Landslide scan: {summary['region']}, image {summary['image']}",
        "",
        "| | |",
        "|---|---|",
        f"| Region | {summary['region']} |",
        f"| Image | `{summary['image']}` ({summary['image_uri']}) |",
        f"| Compared with | {compared} |",
        f"| Landslides | {total['count']} polygons, {_area(total['area_m2'])} |",
    ]
    if new is not None:
        lines.append(f"| New landslides | {new['count']} polygons, {_area(new['area_m2'])} |")
    highest = summary["max_probability"]
    lines += [
        f"| Alert level | **{summary['alert_level']}** (by the area of "
        f"{summary['alert_basis']}: yellow < 1 ha ≤ orange < 10 ha ≤ red) |",
        f"| Highest probability | {'no data' if highest is None else f'{highest:.2f}'} |",
        f"| Rule | {rule} |",
        "",
    ]
    if new is not None:
        lines += ["## New landslides, largest first", ""]
        top = summary["top_new_landslides"]
        lines += (_table(top) if top else ["None found."]) + [""]
    lines += ["## All landslides, largest first", ""]
    top = summary["top_landslides"]
    lines += (_table(top) if top else ["None found."]) + [""]
    lines += ["## Pictures", ""]
    caption = (
        "Landslides (orange)" if new is None else "New landslides (red) and earlier ones (orange)"
    )
    lines += [f"![{caption}]({outputs['picture']})", ""]
    lines += [f"![Landslide probability]({outputs['quicklook']})", "", "## Files", ""]
    lines += [f"- {kind.replace('_', ' ')}: `{name}`" for kind, name in outputs.items()]
    return "\n".join(lines) + "\n"
