"""Finding post-event images under a region's imagery prefix.

An image is a GeoTIFF/COG (``<id>.tif``/``.tiff``) or a Zarr mosaic (``<id>.zarr``) directly under
the prefix; its id is the name without the suffix. Ids order the images: the previous image of an
image is the one with the greatest smaller id, so names that sort by time (``2024-07-15.tif``,
``20240715T0312.tif``) are what a user wants. Names starting with ``.`` or ``_`` (uploads in
progress, lsmap's own files) are not images. Write images whole (upload, or copy and rename):
a scan may run at any moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines import storage
from pipelines.errors import InputError

SUFFIXES = (".tif", ".tiff", ".zarr")
# Ids name output folders: they start with a letter or digit, so they never clash with the
# ``_``-prefixed names lsmap keeps beside them, and cannot be ``..``.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Image:
    """One post-event image: its id and URI."""

    id: str
    uri: str


def discover(prefix: str) -> tuple[list[Image], list[str]]:
    """Images under ``prefix`` sorted by id, and the names found there that were not taken.

    Two images with one id (``a.tif`` and ``a.zarr``) are an InputError: which one is meant?
    """
    images: dict[str, Image] = {}
    ignored = []
    for name in storage.listdir(prefix):
        suffix = next((s for s in SUFFIXES if name.lower().endswith(s)), None)
        if name.startswith((".", "_")) or suffix is None:
            ignored.append(name)
            continue
        image_id = name[: -len(suffix)]
        if not ID_PATTERN.match(image_id):
            ignored.append(name)
            continue
        if image_id in images:
            raise InputError(
                f"{storage.redact(prefix)}: two images have the id {image_id!r} "
                f"({images[image_id].uri.rsplit('/', 1)[-1]} and {name}); keep one"
            )
        images[image_id] = Image(image_id, storage.join(prefix, name))
    return [images[key] for key in sorted(images)], ignored
