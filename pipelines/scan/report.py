"""The summary (JSON) and the short report (markdown) of one scanned image.

Both are plain functions of the scan's results, with no clock in them: scanning the same image
again writes the same bytes.
"""

from __future__ import annotations

from pipelines import storage
from pipelines.scan.compare import Comparison
from pipelines.scan.config import Region
from pipelines.scan.discovery import Image

TOP = 10  # polygons listed in the summary and the report


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
        "image": image.id,
        "image_uri": storage.redact(image.uri),
        "previous_image": previous,
        "threshold": region.threshold,
        "before_threshold": region.before_threshold,
        "min_area_m2": region.min_area_m2,
        "crs": grid.crs.to_string(),
        "pixel_size": list(grid.res),
        "landslides": _totals(comparison.landslides),
        "new_landslides": None if new is None else _totals(new),
        "top_landslides": [f["properties"] for f in comparison.landslides[:TOP]],
        "top_new_landslides": None if new is None else [f["properties"] for f in new[:TOP]],
        "outputs": outputs,
    }


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
    lines += [f"| Rule | {rule} |", ""]
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
