"""An inventory as per-window labels: landslide (0/1) and whether the inventory knows the pixel.

Polygons are rasterised (a pixel is inside when its centre is, as :mod:`pipelines.synthetic`
draws its truth). A complete polygon inventory knows every pixel: outside its polygons is
background. An incomplete one knows only its polygons (presence or absence). Points know a disc of
``point_radius_m`` around each: landslide at presences, background at absences; every other pixel
is unknown and ignored by losses and metrics (their ``valid`` mask).
"""

from __future__ import annotations

import numpy as np

from pipelines.inventory import Inventory
from pipelines.raster import Grid


def window_labels(
    inventory: Inventory, grid: Grid, point_radius_m: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(landslide uint8 (H, W), known bool (H, W))`` of ``grid`` (in the inventory's CRS);
    where a presence and an absence overlap, the presence wins."""
    import shapely
    from rasterio.features import rasterize

    shape = (grid.height, grid.width)
    frame = inventory.frame
    reach = point_radius_m if inventory.kind == "points" else 0.0  # discs beyond their points
    area = shapely.box(*grid.bounds).buffer(reach, join_style="mitre")
    near = frame.iloc[frame.sindex.query(area, predicate="intersects")]
    geometries = near.geometry
    if inventory.kind == "points":
        geometries = geometries.buffer(point_radius_m, quad_segs=16)
    landslide = np.zeros(shape, np.uint8)
    known = np.full(shape, inventory.complete, bool)
    for is_landslide in (False, True):  # presences last: they win where both cover a pixel
        chosen = geometries[near["landslide"].to_numpy(bool) == is_landslide]
        if not len(chosen):
            continue
        inside = rasterize(chosen, out_shape=shape, transform=grid.transform, dtype="uint8") > 0
        landslide[inside] = int(is_landslide)
        known |= inside
    return landslide, known
