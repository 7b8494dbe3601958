"""A region's training windows, read exactly as the mapper reads them.

:func:`bind_region` binds a model's layers to a region file's mosaics on the grid the mapper
would map them on (:func:`pipelines.mapping.plan.model_grid`); :meth:`RegionSource.read` reads a
window's model input through the mapper's own reader (:meth:`pipelines.inputs.MapInputs.read`:
the same warps, halos and layer encodings) and the inventory's labels on the same pixels. A
model trained on these windows sees what mapping feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import storage
from pipelines.chips import BandMoments
from pipelines.errors import InputError
from pipelines.inputs import MapInputs, bind_inputs
from pipelines.inventory import Inventory, read_inventory
from pipelines.layers import LayerStack
from pipelines.raster import Grid
from pipelines.regional.labels import window_labels
from pipelines.regional.region_file import RegionFile
from pipelines.training.data import TrainingStats


@dataclass(frozen=True)
class RegionWindow:
    """One window: the raw model input ``(bands, H, W)`` (NaN = no data), the landslide label
    and the pixels that count (labelled by the inventory and with data in every band)."""

    image: np.ndarray
    landslide: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class RegionSource:
    """A model's layers bound to a region's mosaics and its inventory, on the mapping grid."""

    inputs: MapInputs
    grid: Grid
    inventory: Inventory
    point_radius_m: float
    aoi: Any = None  # a shapely geometry in the grid's CRS; beyond it the inventory knows nothing

    def read(self, top: int, left: int, size: int) -> RegionWindow:
        """The ``size`` px window whose top-left pixel is ``(top, left)`` of :attr:`grid`."""
        window = (top, left, size, size)
        grid = self.grid.window(*window)
        with storage.gdal_env():
            image = self.inputs.read(grid, window, self.grid)
            landslide, known = window_labels(self.inventory, grid, self.point_radius_m)
            if self.aoi is not None:
                from rasterio.features import geometry_mask

                known &= ~geometry_mask([self.aoi], (size, size), grid.transform)
        return RegionWindow(image, landslide, known & np.isfinite(image).all(axis=0))


def measure_windows(source: RegionSource, windows: np.ndarray, size: int) -> TrainingStats:
    """Band mean/std (raw units, every pixel with data) and the landslide share of the labelled
    pixels over the ``(top, left)`` windows of ``size`` px: what normalises the model's input."""
    stack = source.inputs.stack
    undeclared = [layer.name for layer in stack.categorical if not layer.categories]
    if undeclared:
        raise InputError(
            f"categorical layer(s) {', '.join(undeclared)}: declare their `categories:` (class "
            "codes) in the layers file to train from a region"
        )
    moments = BandMoments()
    positives = labelled = 0
    for top, left in windows:
        window = source.read(int(top), int(left), size)
        moments.add(window.image)
        positives += int(np.count_nonzero(window.landslide[window.valid]))
        labelled += int(np.count_nonzero(window.valid))
    mean, std = moments.result(stack.names, "training window")
    return TrainingStats(
        [float(m) for m in mean],
        [float(s) for s in std],
        positives / max(labelled, 1),
        stack.names,
        tuple(stack.record()),
    )


def bind_region(region: RegionFile, stack: LayerStack, resolution_m: float | None) -> RegionSource:
    """Open the region's layers for ``stack`` at ``resolution_m`` (None: the first layer's
    pixels) and read its inventory onto that grid, clipped to the area of interest; refuses what
    mapping refuses, and an inventory outside the layers."""
    from pipelines.mapping.plan import model_grid

    bound = bind_inputs(
        stack, region.layers.inputs, lambda source: model_grid(source, resolution_m)
    )
    aoi = None
    if region.aoi is not None:
        import shapely

        from pipelines.vectors import read_features

        features = read_features(region.aoi, "the area of interest").to_crs(bound.grid.crs)
        aoi = shapely.union_all(features.geometries)
    inventory = read_inventory(region.inventory, bound.grid.crs, bound.grid.bounds, aoi)
    return RegionSource(bound.inputs, bound.grid, inventory, region.point_radius_m, aoi)
