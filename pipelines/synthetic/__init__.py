"""A seeded synthetic landslide world with known truth, for tests, demos and benchmarks.

The world is a pure function of the seed and global map coordinates (metres in EPSG:32648, UTM
48N, Bijie's zone): any window can be rendered on its own, and windows rendered separately join
exactly, so regions of any size are generated block by block in bounded memory.

Terrain
    Cone karst (fengcong, as around Bijie): flat basins and river plains near 1650 m (regional
    swells of +-60 m over 12-30 km; river corridors 30 m lower) with cones and ridges from
    ridged gradient noise (wavelengths 900 and 430 m) rising up to 400 m above them on steep
    flanks, so elevations lie roughly between 1550 and 2100 m. Elevation is sampled on an 8 m
    lattice and interpolated with Catmull-Rom splines, so slopes (central differences at the
    pixel size) have no seams.
Landslides
    One candidate per 64 m cell, at a hashed position, kept with probability rising from 0 at
    22 deg of slope to 0.9 at 36 deg. A scar is a teardrop 5-60 m long (median 29 m), 25-60 % as
    wide, with an irregular outline, its long axis downslope, bare soil inside (a shadowed head
    scarp upslope). Each scar has an event index, geometric with ratio 1/2: a scene for event
    ``k`` shows scars of events ``0..k`` (event 0 is the pre-event state), so the mask of event
    ``k + 1`` contains that of event ``k``.
Confusers (gentle ground only, below about 5-9 deg)
    Bare-soil look-alikes drawn exactly like scars (earthworks, eroded plots; one candidate per
    64 m cell), bare and cropped fields (rectangles sharing a drifting orientation), villages
    (clusters of bright roofs), roads and river beds (gravel and water along the river corridors).
    Scars and look-alikes differ only in the terrain they lie on (steep cone flanks above the
    basins versus flat basin floors), so RGB alone cannot separate them: a model needs the DEM.
Appearance
    Forest-to-grass vegetation with canopy texture and metre grain, Lambertian hill shading from
    the north-west, and an uneven haze.

Objects are generated per cell from a hash of ``(seed, layer, cell)`` and drawn from the
neighbouring cells too, so a scar crossing a block edge appears in both blocks. See
:class:`World` (rendering), :func:`write_chips` (Bijie-layout chip datasets) and
:func:`write_region` (RGB, DEM and truth COGs).
"""

from pipelines.synthetic.world import CONFUSERS, Cover, Scars, Scene, World
from pipelines.synthetic.writers import (
    DEM_CRS,
    DEM_NODATA,
    DEM_RESOLUTION,
    ORIGIN,
    WORLD_CRS,
    RegionFiles,
    write_chips,
    write_region,
)

__all__ = [
    "CONFUSERS",
    "DEM_CRS",
    "DEM_NODATA",
    "DEM_RESOLUTION",
    "ORIGIN",
    "WORLD_CRS",
    "Cover",
    "RegionFiles",
    "Scars",
    "Scene",
    "World",
    "write_chips",
    "write_region",
]
