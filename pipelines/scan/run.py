"""``scan``: map every new image of every watched region and report what changed.

For each region: list its images, skip those in the ledger, take the region's lock, then for each
remaining image in id order: map it with the mapper (``<output>/<region>/<image-id>/``), compare
with the previous image's map, write polygons, picture, summary and report, and only then add it
to the ledger. A scan that finds nothing new writes nothing. A failing image stops its region
(later images are compared with it, so they wait) but not the other regions.
"""

from __future__ import annotations

import datetime
import logging

from pipelines import storage
from pipelines.errors import LsmapError
from pipelines.mapping import map_region
from pipelines.mapping.polygons import write_geojson
from pipelines.scan.compare import compare_maps, write_picture
from pipelines.scan.config import Region, WatchList, load_watchlist
from pipelines.scan.discovery import Image, discover
from pipelines.scan.ledger import RegionLock, read_ledger, write_ledger
from pipelines.scan.report import render_markdown, summarise

log = logging.getLogger(__name__)

# Files of one scanned image, beside the mapper's probability.zarr, manifest.json and quicklook.png.
LANDSLIDES = "landslides.geojson"
NEW_LANDSLIDES = "new_landslides.geojson"
PICTURE = "landslides.png"
SUMMARY = "summary.json"
REPORT = "report.md"


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
        images, result["ignored"] = discover(region.imagery)
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
                previous = max((i for i in done if i < current.id), default=None)
                summary = scan_image(region, current, previous, progress=progress)
                done[current.id] = {
                    "image_uri": summary["image_uri"],
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
            result["error"] += (
                f" (later images of {region.name} wait for this one; fix it, or rename it with a "
                "leading '_' to skip it)"
            )
    return result


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
    map_region(
        region.model,
        image.uri,
        region.dem,
        out,
        workers=options.workers,
        cpus_per_worker=options.cpus_per_worker,
        gpus_per_worker=options.gpus_per_worker,
        batch_size=options.batch_size,
        overlap=options.overlap,
        chunk=options.chunk,
        bbox=region.aoi.bbox,
        bbox_crs=region.aoi.crs,
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
    outputs = {
        "probability": "probability.zarr",
        "quicklook": "quicklook.png",
        "landslides": LANDSLIDES,
    }
    write_geojson(storage.join(out, LANDSLIDES), comparison.landslides, comparison.grid)
    if comparison.new is not None:
        outputs["new_landslides"] = NEW_LANDSLIDES
        write_geojson(storage.join(out, NEW_LANDSLIDES), comparison.new, comparison.grid)
    outputs["picture"] = PICTURE
    write_picture(storage.join(out, PICTURE), comparison.picture)
    outputs |= {"summary": SUMMARY, "report": REPORT}
    summary = summarise(region, image, previous, comparison, outputs)
    storage.write_json(storage.join(out, SUMMARY), summary)
    storage.write_text(storage.join(out, REPORT), render_markdown(summary))
    return summary
