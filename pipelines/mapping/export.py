"""Exports built from a finished probability store, chunk by chunk (memory stays bounded):
a Cloud-Optimized GeoTIFF, landslide polygons and a quicklook PNG.

A region larger than one block (:mod:`pipelines.mapping.blocks`) is read by parallel Ray tasks,
one per block; what each export writes does not depend on how many blocks there were.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from pipelines import storage
from pipelines.mapping import output
from pipelines.mapping.blocks import BLOCK, for_each_block, in_chunk_order, region_blocks
from pipelines.mapping.polygons import (
    Provenance,
    chunk_pieces,
    landslide_features,
    landslide_frame,
    write_landslides,
)
from pipelines.raster import Grid

if TYPE_CHECKING:
    import pystac

BAND_DESCRIPTION = "landslide probability"
# GDAL's data type names, for the VRT mosaic.
_GDAL_TYPES = {"uint8": "Byte", "float32": "Float32"}


def open_probability(layout: output.OutputLayout, decode: bool = False) -> xr.DataArray:
    """The stored probability mosaic, lazily; raw stored values unless ``decode``."""
    store = storage.zarr_store(layout.zarr, read_only=True)
    dataset = xr.open_zarr(
        store,
        consolidated=False,
        zarr_format=output.ZARR_FORMAT,
        mask_and_scale=decode,
        decode_coords="all",
    )
    return dataset[output.VARIABLE]


def _chunks(array: xr.DataArray, chunk: int) -> Iterator[tuple[int, int, np.ndarray]]:
    height, width = array.shape
    for row in range(0, height, chunk):
        for col in range(0, width, chunk):
            yield row, col, array[row : row + chunk, col : col + chunk].values


def write_cog(
    layout: output.OutputLayout, grid: Grid, chunk: int, *, block: int = BLOCK
) -> str | dict[str, str]:
    """The finished Zarr as a Cloud-Optimized GeoTIFF, ``probability.tif``; returns its URI.

    A region of several blocks (see :func:`~pipelines.mapping.blocks.region_blocks`) becomes
    ``probability/r<row>_c<col>.tif``, one COG per block (named by its top-left pixel), and
    ``probability.vrt``, the mosaic GDAL and QGIS open as one raster; returns
    ``{"mosaic": VRT URI, "r<row>_c<col>": COG URI, ...}``.
    """
    blocks = region_blocks(grid, chunk, block)
    uris = for_each_block(_write_cog_block, blocks, layout, chunk, len(blocks) == 1)
    if len(blocks) == 1:
        return uris[0]
    dtype = str(open_probability(layout).dtype)
    mosaic = layout.file("probability.vrt")
    storage.write_text(mosaic, _vrt_mosaic(grid, dtype, blocks))
    names = [_block_name(row, col) for row, col, _ in blocks]
    return {"mosaic": mosaic, **dict(zip(names, uris, strict=True))}


def _block_name(row: int, col: int) -> str:
    return f"r{row}_c{col}"


def _block_path(row: int, col: int) -> str:
    return f"probability/{_block_name(row, col)}.tif"


def _write_cog_block(
    grid: Grid, row: int, col: int, layout: output.OutputLayout, chunk: int, whole: bool
) -> str:
    """The COG of the part of the store on ``grid``, whose top-left is pixel ``(row, col)``:
    ``probability.tif`` for the ``whole`` region, else the block's file. 512 px tiles, overviews
    averaged (nodata left out), deflate with a predictor, nodata, band description, and
    statistics of the full-resolution band. uint8 probabilities carry GDAL's scale (1/254) and
    offset, so readers that apply them get [0, 1]. Returns its URI.

    GDAL's COG driver needs a complete dataset, so chunks go into a tiled GeoTIFF first.
    """
    import rasterio
    import rasterio.shutil
    import rasterio.windows

    probability = open_probability(layout)[row : row + grid.height, col : col + grid.width]
    dtype = str(probability.dtype)
    profile = {
        "driver": "GTiff",
        "height": grid.height,
        "width": grid.width,
        "count": 1,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": _nodata(dtype),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with tempfile.TemporaryDirectory() as tmp:
        staging, final = os.path.join(tmp, "staging.tif"), os.path.join(tmp, "cog.tif")
        with rasterio.open(staging, "w", **profile) as dst:
            dst.set_band_description(1, BAND_DESCRIPTION)
            if dtype == "uint8":
                dst.scales, dst.offsets = (1 / output.UINT8_SCALE,), (0.0,)
            for chunk_row, chunk_col, values in _chunks(probability, chunk):
                window = rasterio.windows.Window(
                    chunk_col, chunk_row, values.shape[1], values.shape[0]
                )
                dst.write(values, 1, window=window)
            # Exact statistics, stored in the file (STATISTICS_* tags) rather than a sidecar.
            dst.update_stats(approx=False)
        rasterio.shutil.copy(
            staging,
            final,
            driver="COG",
            BLOCKSIZE=512,
            COMPRESS="DEFLATE",
            PREDICTOR="2" if dtype == "uint8" else "3",
            OVERVIEW_RESAMPLING="AVERAGE",
            BIGTIFF="IF_SAFER",
        )
        uri = layout.file("probability.tif" if whole else _block_path(row, col))
        storage.upload_file(final, uri)
    return uri


def _nodata(dtype: str) -> float:
    return output.NODATA_UINT8 if dtype == "uint8" else float("nan")


def _vrt_mosaic(grid: Grid, dtype: str, blocks: list[tuple[int, int, Grid]]) -> str:
    """GDAL VRT XML placing the block COGs (paths relative to the VRT, so the folder can move or
    live on S3) on ``grid``, with their nodata, scale and description."""
    from xml.etree import ElementTree as ET

    dataset = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(dataset, "SRS", dataAxisToSRSAxisMapping="1,2").text = grid.crs.to_wkt()
    ET.SubElement(dataset, "GeoTransform").text = ", ".join(
        repr(value) for value in grid.transform.to_gdal()
    )
    band = ET.SubElement(dataset, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band="1")
    ET.SubElement(band, "Description").text = BAND_DESCRIPTION
    ET.SubElement(band, "NoDataValue").text = str(_nodata(dtype))
    if dtype == "uint8":
        ET.SubElement(band, "Offset").text = "0"
        ET.SubElement(band, "Scale").text = repr(1 / output.UINT8_SCALE)
    for row, col, block_grid in blocks:
        height, width = block_grid.shape
        source = ET.SubElement(band, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = _block_path(row, col)
        ET.SubElement(source, "SourceBand").text = "1"
        size = {"xSize": str(width), "ySize": str(height)}
        ET.SubElement(source, "SrcRect", xOff="0", yOff="0", **size)
        ET.SubElement(source, "DstRect", xOff=str(col), yOff=str(row), **size)
    ET.indent(dataset)
    return ET.tostring(dataset, encoding="unicode") + "\n"


def write_polygons(
    layout: output.OutputLayout,
    grid: Grid,
    chunk: int,
    threshold: float,
    name: str = "polygons",
    image_item: pystac.Item | None = None,
    *,
    block: int = BLOCK,
) -> dict[str, str]:
    """Landslide polygons (probability >= threshold), merged across chunk borders, with the
    columns of :data:`pipelines.mapping.polygons.SCHEMA`, as ``<name>.parquet``, ``.fgb`` and
    ``.geojson`` in the output CRS; returns format -> URI. ``image_item`` is the image input's
    STAC Item, when it was one (it describes the source image better than its file name)."""
    blocks = region_blocks(grid, chunk, block)
    per_block = for_each_block(_block_pieces, blocks, layout, chunk, threshold)
    pieces = [piece for chunk in in_chunk_order(per_block) for piece in chunk]
    frame = landslide_frame(
        landslide_features(pieces, grid), grid, map_provenance(layout, image_item)
    )
    return write_landslides(layout.file(name), frame)


def _block_pieces(
    grid: Grid, row: int, col: int, layout: output.OutputLayout, chunk: int, threshold: float
) -> list[tuple[tuple[int, int], list[dict]]]:
    """The landslide pieces of each chunk of the block on ``grid`` at ``(row, col)``, with the
    chunk's top-left pixel in the region."""
    probability = open_probability(layout, decode=True)
    probability = probability[row : row + grid.height, col : col + grid.width]
    per_chunk = []
    for chunk_row, chunk_col, values in _chunks(probability, chunk):
        mask = np.nan_to_num(values, nan=0.0) >= threshold
        window = grid.window(chunk_row, chunk_col, *values.shape)
        per_chunk.append(((row + chunk_row, col + chunk_col), chunk_pieces(mask, values, window)))
    return per_chunk


def map_provenance(
    layout: output.OutputLayout,
    image_item: pystac.Item | None = None,
    *,
    scan_id: str | None = None,
    event_id: str | None = None,
    event_date: str | None = None,
) -> Provenance:
    """The provenance of a map run's polygons, from its store and manifest. Landslide ids start
    with the scan id (``/`` as ``-``) in a scan, with the run's id otherwise."""
    from pipelines import stac

    run = output.stored_run(layout)
    image = output.source_image(run)[1]
    started = storage.read_json(layout.manifest)["started_at"]
    return Provenance(
        origin=scan_id.replace("/", "-") if scan_id else stac.run_id(run),
        model_sha256=run["model_sha256"],
        detected_at=datetime.datetime.fromisoformat(started),
        source=stac.source_image(image, image_item, ground_resolution(image)),
        scan_id=scan_id,
        event_id=event_id,
        event_date=event_date,
    )


def ground_resolution(uri: str) -> float | None:
    """The pixel size in metres of the raster at ``uri`` (None in a CRS not measured in metres)."""
    from pipelines.raster import open_mosaic

    grid = Grid.from_dataarray(open_mosaic(uri))
    if not grid.crs.is_projected or grid.crs.linear_units_factor[1] != 1.0:
        return None
    return float(abs(grid.res[0]))


def write_quicklook(
    layout: output.OutputLayout,
    grid: Grid,
    chunk: int,
    image: str,
    max_size: int = 1024,
    name: str = "quicklook.png",
    *,
    block: int = BLOCK,
) -> str:
    """A PNG of the whole region: probability (inferno, transparent below 0.25, more opaque where
    higher) over ``image`` (the imagery, or a DEM) in grey, from a decimated read made chunk by
    chunk (memory stays bounded). 8-bit images show as they are; others are stretched between
    their 2nd and 98th percentiles in the quicklook."""
    from matplotlib import colormaps
    from PIL import Image

    from pipelines.raster import open_mosaic

    step = max(1, -(-max(grid.height, grid.width) // max_size))
    shape = (-(-grid.height // step), -(-grid.width // step))
    small_probability = np.full(shape, np.nan, dtype=np.float32)
    grey = np.full(shape, np.nan, dtype=np.float32)
    blocks = region_blocks(grid, chunk, block)
    parts = for_each_block(_block_quicklook, blocks, layout, chunk, step, image)
    for (row, col, _), (block_probability, block_grey) in zip(blocks, parts, strict=True):
        at = np.s_[
            -(-row // step) : -(-row // step) + block_probability.shape[0],
            -(-col // step) : -(-col // step) + block_probability.shape[1],
        ]
        small_probability[at], grey[at] = block_probability, block_grey
    if open_mosaic(image, chunks=None).dtype == np.uint8:
        grey = grey / 255
    elif np.isfinite(grey).any():
        low, high = np.nanpercentile(grey, [2, 98])
        grey = np.clip((grey - low) / max(high - low, 1e-12), 0.0, 1.0)
    grey = np.nan_to_num(grey)
    heat = colormaps["inferno"](np.nan_to_num(small_probability))[..., :3]
    # Low probabilities stay transparent so the landscape shows; likely landslides glow.
    alpha = np.clip((np.nan_to_num(small_probability) - 0.25) / 0.5, 0.0, 0.85)[..., None]
    composite = (1 - alpha) * grey[..., None] + alpha * heat
    rgba = np.concatenate([composite, np.isfinite(small_probability)[..., None]], axis=-1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        Image.fromarray((rgba * 255).astype(np.uint8), mode="RGBA").save(path)
        uri = layout.file(name)
        storage.upload_file(path, uri)
    return uri


def _block_quicklook(
    grid: Grid, row: int, col: int, layout: output.OutputLayout, chunk: int, step: int, image: str
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of the block on ``grid`` at ``(row, col)`` that lie on the quicklook's lattice
    (every ``step``-th pixel of the region): probability (NaN: nodata) and the image's mean
    band, raw (NaN where it could not be read)."""
    from pipelines.raster import open_mosaic, read_window

    probability = open_probability(layout, decode=True)
    probability = probability[row : row + grid.height, col : col + grid.width]
    mosaic = open_mosaic(image, chunks=None)
    first_row, first_col = -row % step, -col % step  # the block's first lattice pixel
    shape = (-(-(grid.height - first_row) // step), -(-(grid.width - first_col) // step))
    small_probability = np.full(shape, np.nan, dtype=np.float32)
    grey = np.full(shape, np.nan, dtype=np.float32)
    for chunk_row, chunk_col, values in _chunks(probability, chunk):
        # The chunk's first lattice pixel, and where it goes in the block's lattice.
        skip_rows, skip_cols = -(row + chunk_row) % step, -(col + chunk_col) % step
        picked = values[skip_rows::step, skip_cols::step]
        at = np.s_[
            (chunk_row + skip_rows - first_row) // step :,
            (chunk_col + skip_cols - first_col) // step :,
        ]
        small_probability[at][: picked.shape[0], : picked.shape[1]] = picked
        window = grid.window(chunk_row, chunk_col, *values.shape)
        try:
            colours = read_window(mosaic, window)[:3, skip_rows::step, skip_cols::step]
        except Exception:  # a tolerated unreadable part of the image: no backdrop there
            continue
        grey[at][: picked.shape[0], : picked.shape[1]] = colours.mean(axis=0)
    return small_probability, grey
