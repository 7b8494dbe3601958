"""Copy a GeoTIFF/COG mosaic into a chunked Zarr v3 store, streaming chunk by chunk.

The store keeps the source's dtype, nodata, band names and georeferencing (a CF ``spatial_ref``
grid-mapping variable as rioxarray writes it). Each chunk holds all bands of a ``chunk x chunk``
tile, so one read gives a tile ready for the model.

Completion rule: the destination is cleared first and the root attribute
:data:`pipelines.raster.COMPLETE_ATTR` is written last, after every chunk; an ingest that fails
part-way leaves a store that :func:`pipelines.raster.open_mosaic` refuses as incomplete.
"""

from __future__ import annotations

import numpy as np

from pipelines import raster, storage
from pipelines.errors import InputError, StorageError

VARIABLE = "mosaic"


def ingest(src_uri: str, dst_uri: str, *, chunk: int = 512) -> None:
    """Write the mosaic at ``src_uri`` to a Zarr v3 store at ``dst_uri``.

    An existing Zarr store at ``dst_uri`` is replaced; anything else there is an error.

    Memory stays bounded: dask reads and writes one ``chunk``-sized tile per task, and GDAL's block
    cache is capped (see :func:`pipelines.storage.configure_gdal`).
    """
    import rasterio.errors

    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of pixels, got {chunk}")
    # Replacing a store deletes everything under dst: never do that to something else.
    if not storage.exists(storage.join(dst_uri, "zarr.json")) and storage.listdir(dst_uri):
        raise InputError(
            f"{storage.redact(dst_uri)}: exists and is not a Zarr store; refusing to replace it"
        )
    mosaic = raster.open_mosaic(src_uri, chunks=chunk)
    grid = raster.Grid.from_dataarray(mosaic)
    # Fresh CF grid mapping from the opened georeferencing, whatever the source carried.
    da = mosaic.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    # Variable-length strings: Zarr v3 has no stable fixed-length string type yet.
    da = da.assign_coords(band=np.asarray(mosaic.band.values, dtype=object))
    da.encoding = {
        "chunks": (da.sizes["band"], chunk, chunk),
        "grid_mapping": da.encoding["grid_mapping"],
    }
    store = storage.zarr_store(dst_uri, read_only=False)
    try:
        da.to_dataset(name=VARIABLE).to_zarr(store, mode="w", consolidated=False, zarr_format=3)
    except rasterio.errors.RasterioError as err:
        raise InputError(f"{storage.redact(src_uri)}: cannot read ({err})") from err
    except OSError as err:
        raise StorageError(
            f"{storage.redact(dst_uri)}: cannot write the Zarr store ({storage.redact(str(err))})"
        ) from err
    raster.mark_complete(dst_uri)
