"""``scan``: map every new image of every watched region and report what changed.

For each region: list its images, skip those in the ledger, take the region's lock, then for each
remaining image in id order: map it with the mapper (``<output>/<region>/<image-id>/``), compare
with the previous image's map, write polygons, picture, summary and report, and only then add it
to the ledger. A scan that finds nothing new writes nothing. A failing image stops its region
(later images are compared with it, so they wait) but not the other regions.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

from pipelines import stac, storage
from pipelines.bundles import load_bundle
from pipelines.errors import LsmapError
from pipelines.mapping import map_region
from pipelines.mapping.export import map_provenance
from pipelines.mapping.output import OutputLayout, stored_run
from pipelines.mapping.polygons import landslide_frame, write_landslides
from pipelines.scan.compare import compare_maps, write_picture
from pipelines.scan.config import Region, WatchList, load_watchlist
from pipelines.scan.discovery import Image, find_images
from pipelines.scan.ledger import RegionLock, read_ledger, write_ledger
from pipelines.scan.report import render_markdown, summarise

log = logging.getLogger(__name__)

# Files of one scanned image, beside the mapper's probability.zarr, manifest.json and quicklook.png.
# Landslides (all, with status new/existing) in every polygon format; new ones as GeoJSON for
# reports; the STAC catalog describes them all.
LANDSLIDES = "landslides"
NEW_LANDSLIDES = "new_landslides"
PICTURE = "landslides.png"
SUMMARY = "summary.json"
REPORT = "report.md"
SETTINGS = "_scan.json"


def scan(
    watchlist: str | WatchList,
    *,
    regions: list[str] | None = None,
    lock_timeout_s: float = 900.0,
    progress: bool = False,
) -> list[dict]:
    """Scan the regions of a watch list (a URI or a parsed one); ``regions`` picks some by name.

    Returns one result per region: ``status`` (``up to date``, ``scanned``, ``busy`` when another
    scan holds the region, ``failed``), the images ``scanned`` now with their counts, how many
    were scanned before, the names under the imagery prefix that are not images, and ``error``.
    """
    if isinstance(watchlist, str):
        watchlist = load_watchlist(watchlist)
    return [
        scan_region(region, lock_timeout_s=lock_timeout_s, progress=progress)
        for region in watchlist.select(regions)
    ]


def scan_region(region: Region, *, lock_timeout_s: float = 900.0, progress: bool = False) -> dict:
    """Scan one region's new images (see :func:`scan` for the result)."""
    result: dict = {
        "region": region.name,
        "status": "up to date",
        "scanned": [],
        "already_scanned": 0,
        "ignored": [],
        "error": None,
    }
    current: Image | None = None
    try:
        images, result["ignored"] = find_images(region)
        done = read_ledger(region.root)
        result["already_scanned"] = sum(image.id in done for image in images)
        if all(image.id in done for image in images):
            return result
        lock = RegionLock(region.root, lock_timeout_s)
        holder = lock.acquire()
        if holder is not None:
            result |= {"status": "busy", "held_by": holder}
            log.info("%s: skipped, another scan holds it (%s)", region.name, holder)
            return result
        try:
            done = read_ledger(region.root)  # as it is now that no one else can change it
            for current in (image for image in images if image.id not in done):
                previous = _previous(done, current)
                summary = scan_image(region, current, previous, progress=progress)
                done[current.id] = {
                    "image_uri": summary["image_uri"],
                    "image_datetime": current.datetime,
                    "previous_image": previous,
                    "landslides": summary["landslides"]["count"],
                    "new_landslides": (summary["new_landslides"] or {}).get("count"),
                    "report": f"{current.id}/{REPORT}",
                    "scanned_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                }
                write_ledger(region.root, region.name, done)
                result["status"] = "scanned"
                result["scanned"].append(
                    {
                        "image": current.id,
                        "previous_image": previous,
                        "landslides": summary["landslides"],
                        "new_landslides": summary["new_landslides"],
                        "report": storage.redact(storage.join(region.root, current.id, REPORT)),
                    }
                )
            current = None
        finally:
            lock.release()
    except Exception as err:
        # One bad region or image must not stop the others: say which, and why (with a traceback
        # only for what is not a user-facing error).
        log.error(
            "%s: scan failed: %s",
            region.name,
            storage.redact(str(err)),
            exc_info=not isinstance(err, LsmapError),
        )
        where = f"image {current.id}" if current is not None else "listing or ledger"
        result |= {"status": "failed", "error": f"{where}: {storage.redact(str(err))}"}
        if current is not None:
            skip = (
                "rename it with a leading '_' to skip it"
                if isinstance(region.imagery, str)
                else "leave it out of the imagery (its catalog, collection or time window)"
            )
            result["error"] += (
                f" (later images of {region.name} wait for this one; fix it, or {skip})"
            )
    return result


def _previous(done: dict[str, dict], image: Image) -> str | None:
    """The finished image just before ``image`` (by acquisition time, then id), if any."""
    earlier = [
        (record.get("image_datetime") or "", image_id)
        for image_id, record in done.items()
        if ((record.get("image_datetime") or ""), image_id) < image.order
    ]
    return max(earlier)[1] if earlier else None


def scan_image(
    region: Region, image: Image, previous: str | None, *, progress: bool = False
) -> dict:
    """Map one image, compare it with the ``previous`` image's map, write every output; returns
    the summary."""
    out = storage.join(region.root, image.id)
    log.info(
        "%s: scanning %s (%s)",
        region.name,
        image.id,
        f"compared with {previous}" if previous else "first image",
    )
    options = region.mapping
    dem, dem_item = stac.resolve_raster(region.dem)
    manifest = map_region(
        region.model,
        {**image.layers(), "dem": dem},
        out,
        workers=options.workers,
        cpus_per_worker=options.cpus_per_worker,
        gpus_per_worker=options.gpus_per_worker,
        batch_size=options.batch_size,
        precision=options.precision,
        overlap=options.overlap,
        chunk=options.chunk,
        bbox=region.aoi.bbox,
        bbox_crs=region.aoi.crs,
        overwrite=_settings_changed(region, image, dem, out),
        quicklook=True,
        progress=progress,
    )
    comparison = compare_maps(
        out,
        storage.join(region.root, previous) if previous else None,
        threshold=region.threshold,
        before_threshold=region.before_threshold,
        min_area_m2=region.min_area_m2,
        chunk=options.chunk,
    )
    provenance = map_provenance(
        OutputLayout(out),
        image.item,
        scan_id=f"{region.name}/{image.id}",
        event_id=region.event.id,
        event_date=region.event.date,
    )
    frame = landslide_frame(comparison.landslides, comparison.grid, provenance, comparison.new)
    written = write_landslides(storage.join(out, LANDSLIDES), frame)
    outputs = {"probability": "probability.zarr", "quicklook": "quicklook.png"}
    outputs |= {f"landslides_{kind}": _name(uri) for kind, uri in written.items()}
    if comparison.new is not None:
        new_provenance = dataclasses.replace(provenance, origin=f"{provenance.origin}-new")
        new_frame = landslide_frame(comparison.new, comparison.grid, new_provenance, comparison.new)
        written = write_landslides(storage.join(out, NEW_LANDSLIDES), new_frame, ["geojson"])
        outputs["new_landslides"] = _name(written["geojson"])
    write_picture(storage.join(out, PICTURE), comparison.picture)
    outputs |= {"picture": PICTURE, "summary": SUMMARY, "report": REPORT}
    summary = summarise(region, image, previous, comparison, outputs | {"stac": stac.CATALOG})
    storage.write_json(storage.join(out, SUMMARY), summary)
    storage.write_text(storage.join(out, REPORT), render_markdown(summary))
    stac.write_output_catalog(
        out,
        f"{region.name}-{image.id}",
        manifest,
        [*outputs.values(), "manifest.json"],
        sources={"image": image.item, "dem": dem_item},
        title=f"lsmap scan {region.name}/{image.id}",
        extra_properties={
            "lsmap:scan_id": summary["scan_id"],
            "lsmap:alert_level": summary["alert_level"],
            "lsmap:threshold": region.threshold,
        },
    )
    return summary


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _settings_changed(region: Region, image: Image, dem: str, out: str) -> bool:
    """Whether ``out`` holds a map of an earlier, interrupted scan of ``image`` made with other
    settings (the watch list or the model changed since). Nothing was reported from it (the image
    is not in the ledger), so it is mapped again from scratch instead of refused; with the same
    settings the mapper resumes it. Records this scan's settings for the next time."""
    settings = {
        "image": image.uri,
        **(
            {"layers": {k: dataclasses.asdict(v) for k, v in image.inputs.items()}}
            if image.inputs
            else {}
        ),
        "dem": dem,
        "aoi": [list(region.aoi.bbox), region.aoi.crs],
        "mapping": dataclasses.asdict(region.mapping),
        "model_sha256": load_bundle(region.model).sha256,
    }
    marker = storage.join(out, SETTINGS)
    earlier = storage.read_json(marker) if storage.exists(marker) else None
    changed = stored_run(OutputLayout(out)) is not None and earlier != settings
    if changed:
        log.warning(
            "%s: %s was partly mapped with other settings; mapping it again", region.name, image.id
        )
    storage.write_json(marker, settings)
    return changed
