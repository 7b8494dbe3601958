"""The files of a zonation: class COG with its category names and QGIS style, tables, rate curves,
figures and a report. Each function renders one file's content; :mod:`zonation` writes them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from xml.etree import ElementTree as ET

import numpy as np

from pipelines.susceptibility.classes import RateCurve

TABLE_COLUMNS = (
    "class",
    "name",
    "min_probability",
    "below_probability",
    "pixels",
    "area_km2",
    "area_share",
    "landslides",
    "landslide_share",
    "frequency_ratio",
    "density",
    "held_out_share",
    "held_out_frequency_ratio",
)


def cog_options() -> dict[str, str]:
    """GDAL COG creation options for a class raster: overviews by the most common class."""
    return {
        "BLOCKSIZE": "512",
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "2",
        "OVERVIEW_RESAMPLING": "MODE",
        "BIGTIFF": "IF_SAFER",
    }


def category_names_xml(names: Sequence[str]) -> str:
    """GDAL's PAM sidecar (``zones.tif.aux.xml``) naming the classes: GDAL, rasterio's ``rio
    info`` and QGIS show "very low" ... instead of 1 ... N (0 is no data)."""
    dataset = ET.Element("PAMDataset")
    band = ET.SubElement(dataset, "PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    for name in ("no data", *names):
        ET.SubElement(categories, "Category").text = name
    ET.indent(dataset)
    return ET.tostring(dataset, encoding="unicode") + "\n"


def qgis_style(names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> str:
    """A QGIS layer style (``zones.qml``, loaded with ``zones.tif``): a paletted renderer with the
    class colours and names."""
    qgis = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    pipe = ET.SubElement(qgis, "pipe")
    renderer = ET.SubElement(
        pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1"
    )
    palette = ET.SubElement(renderer, "colorPalette")
    for value, (name, rgb) in enumerate(zip(names, colours, strict=True), start=1):
        ET.SubElement(
            palette,
            "paletteEntry",
            value=str(value),
            color="#{:02x}{:02x}{:02x}".format(*rgb),
            label=name,
            alpha="255",
        )
    ET.indent(qgis)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        qgis, encoding="unicode"
    )


def table_csv(rows: list[dict]) -> str:
    """The class table as CSV (columns :data:`TABLE_COLUMNS`; empty cells where undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in TABLE_COLUMNS})
    return buffer.getvalue()


def rates_csv(thresholds: np.ndarray, success: RateCurve, prediction: RateCurve | None) -> str:
    """The rate curves as CSV, one row per probability level with area, plus the origin:
    ``probability`` (pixels at or above it are counted), ``area_share``, ``success_rate``,
    ``prediction_rate``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["probability", "area_share", "success_rate", "prediction_rate"])
    for i in range(len(success.area_share)):
        writer.writerow(
            [
                "" if i == 0 else f"{thresholds[i - 1]:.6g}",
                f"{success.area_share[i]:.6g}",
                f"{success.landslide_share[i]:.6g}",
                "" if prediction is None else f"{prediction.landslide_share[i]:.6g}",
            ]
        )
    return buffer.getvalue()


def rates_figure(success: RateCurve, prediction: RateCurve | None) -> bytes:
    """PNG of the success-rate (and prediction-rate) curve with their AUCs."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="no skill")
    ax.plot(
        success.area_share, success.landslide_share, label=f"success rate (AUC {success.auc:.3f})"
    )
    if prediction is not None:
        ax.plot(
            prediction.area_share,
            prediction.landslide_share,
            label=f"prediction rate (AUC {prediction.auc:.3f})",
        )
    ax.set_xlabel("share of area, most susceptible first")
    ax.set_ylabel("share of landslides")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def classes_figure(rows: list[dict], colours: Sequence[tuple[int, int, int]]) -> bytes:
    """PNG of area share and landslide share per class, side by side."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.subplots()
    x = np.arange(len(rows))
    fill = [tuple(c / 255 for c in rgb) for rgb in colours]
    ax.bar(x - 0.2, [r["area_share"] for r in rows], 0.4, color=fill, alpha=0.45, label="area")
    ax.bar(x + 0.2, [r["landslide_share"] for r in rows], 0.4, color=fill, label="landslides")
    ax.set_xticks(x, [r["name"] for r in rows])
    ax.set_ylabel("share")
    ax.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def report_markdown(document: dict) -> str:
    """``report.md``: what was zoned how, the class table, the rate curves and any caveat."""
    rows = document["table"]
    held_out = document["prediction_rate"] is not None
    lines = [
        "# Landslide susceptibility zones",
        "",
        f"- Map: `{document['map']}` (model sha256:{document['model_sha256'][:12]})",
        f"- Method: {document['method']}, {document['classes']} classes"
        + (
            f" (thresholds reused from `{document['thresholds_from']}`)"
            if document["thresholds_from"]
            else ""
        ),
        "- Thresholds (lowest probability of each class from the second): "
        + ", ".join(f"{t:.4f}" for t in document["thresholds"]),
        f"- Training inventory: `{document['inventory']}` ({document['landslide_unit']})",
    ]
    if held_out:
        lines.append(f"- Held-out inventory: `{document['held_out']}`")
    lines += [
        "",
        "| class | probability | area share | landslide share | frequency ratio |"
        + (" held-out share |" if held_out else ""),
        "|---|---|---|---|---|" + ("---|" if held_out else ""),
    ]
    for row in rows:
        ratio = "" if row["frequency_ratio"] is None else f"{row['frequency_ratio']:.2f}"
        cells = [
            f"{row['class']} {row['name']}",
            f"[{row['min_probability']:.4f}, "
            + ("1]" if row["below_probability"] is None else f"{row['below_probability']:.4f})"),
            f"{row['area_share']:.3f}",
            f"{row['landslide_share']:.3f}",
            ratio,
        ]
        if held_out:
            cells.append(f"{row['held_out_share']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    success = document["success_rate"]
    lines += [
        "",
        f"Success rate (training inventory): AUC {success['auc']:.3f}.",
    ]
    if held_out:
        lines.append(
            f"Prediction rate (held-out inventory): AUC {document['prediction_rate']['auc']:.3f}."
        )
    lines += ["", "![rate curves](rates.png)", "", "![classes](classes.png)"]
    notes = document["notes"]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
