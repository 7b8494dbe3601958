"""Zone a finished probability map into susceptibility classes: read -> histogram -> breaks ->
classify and tabulate -> write.

The map is read chunk by chunk twice (memory stays bounded however large the region): first
into histograms of area and landslides by probability level (:mod:`pipelines.susceptibility.classes`),
which give the class breaks and the success- and prediction-rate curves; then each chunk is
classified, counted into the class table and written into the class raster. Everything lands in
``OUT``; ``zones.json``, written last, says the folder is complete and stores the thresholds, so a
later map of the same model is zoned into the same classes (``--thresholds``).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import rasterio.shutil
import xarray as xr

from pipelines import storage
from pipelines.errors import InputError
from pipelines.inventory import Inventory, InventorySpec, read_inventory
from pipelines.mapping import export, output
from pipelines.raster import Grid
from pipelines.stac import run_id as stac_run_id
from pipelines.stac import write_output_catalog
from pipelines.susceptibility import classes as zc
from pipelines.susceptibility import outputs as zo

ZONES_FILE = "zones.json"
# Mean radius of the WGS84 ellipsoid's equal-area sphere: pixel areas of geographic grids.
AUTHALIC_RADIUS_M = 6371007.2
NODATA_CLASS = 0
# A class further than this from its target share (quantile, equal-area) is reported as a tie.
SHARE_TOLERANCE = 0.01


@dataclass(frozen=True)
class ProbabilityMap:
    """A finished ``lsmap map`` output: its stored values (lazy), grid, levels and manifest."""

    uri: str
    values: xr.DataArray
    grid: Grid
    levels: int
    chunk: int
    manifest: dict

    @classmethod
    def open(cls, uri: str) -> ProbabilityMap:
        """Open the map in ``uri``; refuses a folder that is not a finished map."""
        layout = output.OutputLayout(uri)
        name = storage.redact(uri)
        if not storage.exists(layout.manifest):
            raise InputError(f"{name}: no manifest.json; give the output folder of `lsmap map`")
        manifest = storage.read_json(layout.manifest)
        if manifest.get("status") != "complete":
            raise InputError(
                f"{name}: the map is not finished (status {manifest.get('status')!r}); run the "
                "same `lsmap map` command again to finish it"
            )
        values = export.open_probability(layout)
        levels = zc.UINT8_LEVELS if values.dtype == np.uint8 else zc.FLOAT_LEVELS
        chunk = int(manifest["run"]["chunk"])
        return cls(uri, values, Grid.from_dataarray(values), levels, chunk, manifest)

    @property
    def model_sha256(self) -> str:
        return self.manifest["run"]["model_sha256"]

    def chunks(self) -> list[tuple[int, int, Grid]]:
        """``(row, col, grid)`` of every chunk, in row-major order."""
        grid = self.grid
        return [
            (
                row,
                col,
                grid.window(
                    row, col, min(self.chunk, grid.height - row), min(self.chunk, grid.width - col)
                ),
            )
            for row in range(0, grid.height, self.chunk)
            for col in range(0, grid.width, self.chunk)
        ]

    def read(self, row: int, col: int, window: Grid) -> tuple[np.ndarray, np.ndarray]:
        """``(probability float64, valid bool)`` of a chunk; invalid pixels hold 0."""
        stored = self.values[row : row + window.height, col : col + window.width].values
        if self.levels == zc.UINT8_LEVELS:
            valid = stored != output.NODATA_UINT8
            probability = stored / float(output.UINT8_SCALE)
        else:
            valid = np.isfinite(stored)
            probability = stored.astype(np.float64)
        return np.where(valid, probability, 0.0), valid


def pixel_areas(grid: Grid, row: int, rows: int) -> np.ndarray:
    """Ground area in m² of a pixel of each of ``rows`` rows from ``row``: constant on a
    projected grid, shrinking towards the poles on a geographic one (sphere of equal area)."""
    t = grid.transform
    if grid.crs.is_geographic:
        edges = np.radians(t.f + t.e * np.arange(row, row + rows + 1))
        band = np.abs(np.sin(edges[:-1]) - np.sin(edges[1:]))
        return AUTHALIC_RADIUS_M**2 * np.radians(abs(t.a)) * band
    metres = grid.crs.linear_units_factor[1]
    return np.full(rows, abs(t.a * t.e) * metres * metres)


def inventory_spec(uri: str) -> tuple[InventorySpec, str | None]:
    """The inventory of ``uri`` (a vector file, or a region file's ``inventory:`` with its aoi)."""
    if uri.lower().endswith((".yaml", ".yml")):
        from pipelines.regional.region_file import read_region_file

        region = read_region_file(uri)
        return region.inventory, region.aoi
    return InventorySpec(uri=uri), None


def read_landslides(uri: str, grid: Grid) -> Inventory:
    """The landslides (presences) of the inventory at ``uri`` on the map's CRS; refuses one
    outside the map or without a landslide."""
    spec, aoi_uri = inventory_spec(uri)
    aoi = None
    if aoi_uri is not None:
        import shapely

        from pipelines.vectors import read_features

        aoi = shapely.union_all(
            read_features(aoi_uri, "the area of interest").to_crs(grid.crs).geometries
        )
    inventory = read_inventory(spec, grid.crs, grid.bounds, aoi)
    if not len(inventory.presences):
        raise InputError(f"{inventory.source}: no landslide (presence) to zone against")
    return Inventory(inventory.kind, inventory.presences, inventory.complete, inventory.source)


def landslide_weights(inventory: Inventory, window: Grid, areas: np.ndarray) -> np.ndarray:
    """Landslide amount per pixel of ``window``: the pixel's area (m²) inside a polygon (its
    centre inside), or the number of points in it."""
    import shapely
    from rasterio.features import rasterize

    frame = inventory.frame
    near = frame.iloc[frame.sindex.query(shapely.box(*window.bounds), predicate="intersects")]
    if inventory.kind == "points":
        rows, cols = window.pixels(near.geometry.x.to_numpy(), near.geometry.y.to_numpy())
        inside = (rows >= 0) & (rows < window.height) & (cols >= 0) & (cols < window.width)
        counts = np.zeros(window.shape)
        np.add.at(counts, (rows[inside], cols[inside]), 1.0)
        return counts
    if not len(near):
        return np.zeros(window.shape)
    mask = rasterize(
        near.geometry, out_shape=window.shape, transform=window.transform, dtype="uint8"
    )
    return mask * areas[:, None]


@dataclass
class Histograms:
    """Pixel counts, area (m²) and landslide amounts by probability level over the valid pixels;
    ``missed``: landslide amount that fell on no-data pixels."""

    counts: np.ndarray
    area: np.ndarray
    landslides: dict[str, np.ndarray]
    missed: dict[str, float]


def measure(probability_map: ProbabilityMap, inventories: dict[str, Inventory]) -> Histograms:
    """Pass 1: the histograms of the whole map, chunk by chunk."""
    levels = probability_map.levels
    counts, area = np.zeros(levels), np.zeros(levels)
    landslides = {key: np.zeros(levels) for key in inventories}
    missed = dict.fromkeys(inventories, 0.0)
    for row, col, window in probability_map.chunks():
        probability, valid = probability_map.read(row, col, window)
        level = zc.levels_of(probability[valid], levels)
        areas = pixel_areas(probability_map.grid, row, window.height)
        pixel_area = np.broadcast_to(areas[:, None], window.shape)[valid]
        counts += np.bincount(level, minlength=levels)
        area += np.bincount(level, weights=pixel_area, minlength=levels)
        for key, inventory in inventories.items():
            weights = landslide_weights(inventory, window, areas)
            landslides[key] += np.bincount(level, weights=weights[valid], minlength=levels)
            missed[key] += float(weights[~valid].sum())
    return Histograms(counts, area, landslides, missed)


@dataclass(frozen=True)
class ClassTable:
    """Per class (lowest first): valid pixels, area (m²) and landslide amount of each inventory."""

    pixels: np.ndarray
    area: np.ndarray
    landslides: dict[str, np.ndarray]


def classify_map(
    probability_map: ProbabilityMap,
    inventories: dict[str, Inventory],
    thresholds: list[float],
    path: str,
) -> ClassTable:
    """Pass 2: classify every chunk into the tiled GeoTIFF ``path`` (classes 1..N, 0 = no data,
    with the class colours) and count the class table."""
    import rasterio
    import rasterio.windows

    n = len(thresholds) + 1
    grid = probability_map.grid
    profile = {
        "driver": "GTiff",
        "height": grid.height,
        "width": grid.width,
        "count": 1,
        "dtype": "uint8",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": NODATA_CLASS,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    pixels, area = np.zeros(n), np.zeros(n)
    landslides = {key: np.zeros(n) for key in inventories}
    colours = {0: (0, 0, 0, 0)} | {k + 1: (*rgb, 255) for k, rgb in enumerate(zc.class_colours(n))}
    with rasterio.open(path, "w", **profile) as dst:
        dst.set_band_description(1, "landslide susceptibility class")
        dst.write_colormap(1, colours)
        for row, col, window in probability_map.chunks():
            probability, valid = probability_map.read(row, col, window)
            zone = np.where(valid, zc.classify(probability, thresholds), NODATA_CLASS)
            areas = pixel_areas(grid, row, window.height)
            index = zone[valid] - 1
            pixels += np.bincount(index, minlength=n)
            pixel_area = np.broadcast_to(areas[:, None], window.shape)[valid]
            area += np.bincount(index, weights=pixel_area, minlength=n)
            for key, inventory in inventories.items():
                weights = landslide_weights(inventory, window, areas)[valid]
                landslides[key] += np.bincount(index, weights=weights, minlength=n)
            placed = rasterio.windows.Window(col, row, window.width, window.height)
            dst.write(zone.astype(np.uint8), 1, window=placed)
    return ClassTable(pixels, area, landslides)


def zonate(
    map_uri: str,
    inventory: str,
    out: str,
    classes: int = 5,
    method: str = "quantile",
    held_out: str | None = None,
    thresholds_from: str | None = None,
) -> dict:
    """Zone the finished map in ``map_uri`` into ``classes`` classes by ``method`` (or by the
    thresholds stored in the ``zones.json`` of an earlier zonation of the same model), score them
    against the ``inventory`` (success rate) and the ``held_out`` one (prediction rate), and
    write everything to ``out``; returns the ``zones.json`` document."""
    probability_map = ProbabilityMap.open(map_uri)
    stored = _stored_thresholds(thresholds_from, probability_map) if thresholds_from else None
    if stored is not None:
        classes, method = len(stored["thresholds"]) + 1, stored["method"]
    if classes not in zc.NAMES:
        raise InputError(
            f"--classes must be between {min(zc.NAMES)} and {max(zc.NAMES)}, got {classes}"
        )
    if method not in zc.METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(zc.METHODS)}")
    inventories = {"training": read_landslides(inventory, probability_map.grid)}
    if held_out is not None:
        inventories["held_out"] = read_landslides(held_out, probability_map.grid)

    marker = storage.join(out, ZONES_FILE)
    storage.remove(marker)  # the folder is complete again only when the new one is written
    histograms = measure(probability_map, inventories)
    for key, source in ((k, inventories[k].source) for k in inventories):
        if not histograms.landslides[key].sum() > 0:
            raise InputError(
                f"{source}: none of its landslides falls on a mapped pixel of {storage.redact(map_uri)}"
            )
    if stored is not None:
        thresholds = [float(t) for t in stored["thresholds"]]
    else:
        chosen = zc.breaks(
            method, histograms.counts, histograms.area, histograms.landslides["training"], classes
        )
        thresholds = chosen.thresholds(probability_map.levels)

    with tempfile.TemporaryDirectory() as tmp:
        staging, cog = os.path.join(tmp, "staging.tif"), os.path.join(tmp, "zones.tif")
        table = classify_map(probability_map, inventories, thresholds, staging)
        rasterio.shutil.copy(staging, cog, driver="COG", **zo.cog_options())
        storage.upload_file(cog, storage.join(out, "zones.tif"))

    document = _document(
        probability_map, inventories, histograms, table, thresholds, method, classes
    )
    document["thresholds_from"] = thresholds_from
    _write_outputs(out, probability_map, histograms, document)
    return document


def _stored_thresholds(uri: str, probability_map: ProbabilityMap) -> dict:
    """The thresholds of an earlier zonation (its folder or ``zones.json``); refuses those of
    another model, whose probabilities mean something else."""
    if not uri.endswith(".json"):
        uri = storage.join(uri, ZONES_FILE)
    document = storage.read_json(uri)
    name = storage.redact(uri)
    if not isinstance(document, dict) or not {"thresholds", "method", "model_sha256"} <= set(
        document
    ):
        raise InputError(f"{name}: not the zones.json of `lsmap zones` (no thresholds)")
    if document["model_sha256"] != probability_map.model_sha256:
        raise InputError(
            f"{name}: thresholds of model sha256:{document['model_sha256'][:12]}, but "
            f"{storage.redact(probability_map.uri)} was mapped by sha256:"
            f"{probability_map.model_sha256[:12]}; zone it afresh (without --thresholds)"
        )
    return document


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 else None


def _document(
    probability_map: ProbabilityMap,
    inventories: dict[str, Inventory],
    histograms: Histograms,
    table: ClassTable,
    thresholds: list[float],
    method: str,
    classes: int,
) -> dict:
    """The ``zones.json`` content: inputs, thresholds, class table, rate curves' AUC, notes."""
    names = zc.class_names(classes)
    points = inventories["training"].kind == "points"
    training = table.landslides["training"]
    held = table.landslides.get("held_out")
    total_area = table.area.sum()
    limits = [0.0, *thresholds, None]
    rows = []
    for k in range(classes):
        area_share = _share(table.area[k], total_area)
        landslide_share = _share(training[k], training.sum())
        held_share = None if held is None else _share(held[k], held.sum())
        rows.append(
            {
                "class": k + 1,
                "name": names[k],
                "min_probability": limits[k],
                "below_probability": limits[k + 1],
                "pixels": int(table.pixels[k]),
                "area_km2": float(table.area[k] / 1e6),
                "area_share": area_share,
                "landslides": float(training[k]),
                "landslide_share": landslide_share,
                "frequency_ratio": _share(landslide_share, area_share) if area_share else None,
                # landslides per km² (points), or the share of the class's area that slid
                "density": _share(training[k], table.area[k] / 1e6 if points else table.area[k]),
                "held_out_share": held_share,
                "held_out_frequency_ratio": (
                    _share(held_share, area_share)
                    if held_share is not None and area_share
                    else None
                ),
            }
        )
    success = zc.rate_curve(histograms.area, histograms.landslides["training"])
    prediction = (
        zc.rate_curve(histograms.area, histograms.landslides["held_out"])
        if "held_out" in inventories
        else None
    )
    return {
        "version": 1,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "map": probability_map.uri,
        "model_sha256": probability_map.model_sha256,
        "method": method,
        "classes": classes,
        "names": list(names),
        "colours": ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in zc.class_colours(classes)],
        "thresholds": thresholds,
        "inventory": inventories["training"].source,
        "held_out": inventories["held_out"].source if "held_out" in inventories else None,
        "landslide_unit": "landslide points" if points else "landslide area in m²",
        "table": rows,
        "success_rate": {
            "auc": success.auc,
            "landslide_area_share": None if points else _share(training.sum(), total_area),
        },
        "prediction_rate": None if prediction is None else {"auc": prediction.auc},
        "notes": _notes(probability_map, inventories, histograms, table, method, classes),
    }


def _notes(
    probability_map: ProbabilityMap,
    inventories: dict[str, Inventory],
    histograms: Histograms,
    table: ClassTable,
    method: str,
    classes: int,
) -> list[str]:
    """What a reader of the tables must know: shares ties kept from their target, landslides on
    pixels without data, empty classes, how to reuse the classes."""
    notes = []
    weights = {
        "quantile": (table.pixels, histograms.counts, "pixels"),
        "equal-area": (table.area, histograms.area, "area"),
        "success-rate": (
            table.landslides["training"],
            histograms.landslides["training"],
            "landslides",
        ),
    }
    if method in weights:
        achieved, by_level, what = weights[method]
        deviation = float(np.max(np.abs(achieved / achieved.sum() - 1 / classes)))
        if deviation > SHARE_TOLERANCE:
            level = int(np.argmax(by_level))
            probability = zc.level_probabilities(probability_map.levels)[level]
            notes.append(
                f"Ties: {by_level[level] / by_level.sum():.1%} of the valid {what} has one stored "
                f"probability ({probability:.4f}), which no threshold can split, so class shares "
                f"of {what} are as close to 1/{classes} as that allows: up to {deviation:.3f} away."
            )
    for key, inventory in inventories.items():
        missed = histograms.missed[key]
        if missed > 0:
            share = missed / (missed + histograms.landslides[key].sum())
            notes.append(
                f"{share:.1%} of the landslides of {inventory.source} fall on pixels without "
                "data in the map and are not counted."
            )
    empty = [str(k + 1) for k in range(classes) if table.pixels[k] == 0]
    if empty:
        notes.append(
            f"Class(es) {', '.join(empty)} hold no pixel: ties left no value between their thresholds."
        )
    notes.append(
        "Later maps of the same model are zoned into these classes with "
        "`lsmap zones --thresholds` and this folder's zones.json."
    )
    return notes


def _write_outputs(
    out: str, probability_map: ProbabilityMap, histograms: Histograms, document: dict
) -> None:
    """Every file beside ``zones.tif``, then ``zones.json`` last."""
    classes = document["classes"]
    names, colours = zc.class_names(classes), zc.class_colours(classes)
    storage.write_text(storage.join(out, "zones.tif.aux.xml"), zo.category_names_xml(names))
    storage.write_text(storage.join(out, "zones.qml"), zo.qgis_style(names, colours))
    storage.write_text(storage.join(out, "zones.csv"), zo.table_csv(document["table"]))
    success = zc.rate_curve(histograms.area, histograms.landslides["training"])
    prediction = (
        zc.rate_curve(histograms.area, histograms.landslides["held_out"])
        if document["held_out"]
        else None
    )
    # One row per level that holds area, from the most susceptible.
    descending = zc.level_probabilities(probability_map.levels)[::-1]
    keep = np.concatenate([[True], histograms.area[::-1] > 0])
    storage.write_text(
        storage.join(out, "rates.csv"),
        zo.rates_csv(
            np.concatenate([[np.nan], descending])[keep][1:],
            _kept(success, keep),
            None if prediction is None else _kept(prediction, keep),
        ),
    )
    storage.write_bytes(storage.join(out, "rates.png"), zo.rates_figure(success, prediction))
    storage.write_bytes(
        storage.join(out, "classes.png"), zo.classes_figure(document["table"], colours)
    )
    storage.write_text(storage.join(out, "report.md"), zo.report_markdown(document))
    files = [
        "zones.tif",
        "zones.tif.aux.xml",
        "zones.qml",
        "zones.csv",
        "rates.csv",
        "rates.png",
        "classes.png",
        "report.md",
        ZONES_FILE,
    ]
    run = probability_map.manifest["run"]
    write_output_catalog(
        out,
        f"{stac_run_id(run)}-zones",
        {"run": run, "started_at": document["created"]},
        files,
        title=f"lsmap susceptibility zones ({document['method']}, {classes} classes)",
        extra_properties={
            "processing:lineage": (
                f"Landslide susceptibility classes ({document['method']}, {classes}) of the "
                f"probability map {document['map']} (model sha256:{document['model_sha256']})."
            ),
            "lsmap:zones_thresholds": document["thresholds"],
        },
    )
    storage.write_json(storage.join(out, ZONES_FILE), document)


def _kept(curve: zc.RateCurve, keep: np.ndarray) -> zc.RateCurve:
    return zc.RateCurve(curve.area_share[keep], curve.landslide_share[keep], curve.auc)
