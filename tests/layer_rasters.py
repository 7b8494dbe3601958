"""Fake input layers beside a synthetic region: 16-bit 4-band imagery, a lithology map in another
CRS and resolution, fault lines in a GeoPackage in degrees, and the layers file naming them (what
the layer tests map and train on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.warp import Resampling, calculate_default_transform, reproject

# Lithology codes of the fake map; 0 is its nodata.
LITHOLOGY_CODES = (3, 7, 11)


def write_multispectral(rgb_path: Path, dst: Path) -> Path:
    """A 4-band uint16 image (red, green, blue, nir; band descriptions set) on the RGB's grid:
    reflectance-like DNs (x 40), NIR bright where green dominates (vegetation)."""
    with rasterio.open(rgb_path) as src:
        rgb = src.read().astype(np.float32)
        profile = src.profile
    nir = np.clip(2.2 * rgb[1] - 0.8 * rgb[0], 0, 255)
    data = (np.concatenate([rgb, nir[None]]) * 40).astype(np.uint16)
    profile.update(driver="GTiff", count=4, dtype="uint16", nodata=None, tiled=True)
    profile.update(blockxsize=64, blockysize=64)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        out.descriptions = ("red", "green", "blue", "nir")
    return dst


def write_lithology(rgb_path: Path, dst: Path, *, crs: str = "EPSG:3857", seed: int = 0) -> Path:
    """Blocks of :data:`LITHOLOGY_CODES` at about 3x the RGB's pixel size, in another CRS, with
    a nodata (0) corner."""
    with rasterio.open(rgb_path) as src:
        src_crs, bounds, height, width = src.crs, src.bounds, src.height, src.width
        src_transform = src.transform
    rng = np.random.default_rng(seed)
    coarse = rng.choice(LITHOLOGY_CODES, size=(-(-height // 24), -(-width // 24)))
    codes = np.kron(coarse, np.ones((24, 24), np.uint8))[:height, :width].astype(np.uint8)
    codes[: height // 6, : width // 6] = 0
    transform, out_width, out_height = calculate_default_transform(
        src_crs, crs, width // 3, height // 3, *bounds
    )
    warped = np.zeros((out_height, out_width), np.uint8)
    reproject(
        codes,
        warped,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=transform,
        dst_crs=crs,
        src_nodata=0,
        dst_nodata=0,
        resampling=Resampling.nearest,
    )
    profile = {
        "driver": "GTiff",
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "crs": crs,
        "transform": transform,
        "height": out_height,
        "width": out_width,
    }
    with rasterio.open(dst, "w", **profile) as out:
        out.write(warped[None])
    return dst


def write_faults(rgb_path: Path, dst: Path, *, shift_m: float = 0.0) -> Path:
    """Two fault lines in EPSG:4326 (a GeoPackage): one across the RGB's area and beyond it, one
    short one inside it; ``shift_m`` moves both north."""
    import geopandas
    from shapely import LineString

    with rasterio.open(rgb_path) as src:
        crs, (left, bottom, right, top) = src.crs, src.bounds
    top, bottom = top + shift_m, bottom + shift_m
    lines = [
        LineString([(left + 20.3, top + 50.7), (right - 30.2, bottom - 50.9)]),
        LineString([(left + 100.4, bottom + 10.6), (left + 130.1, bottom + 60.2)]),
    ]
    frame = geopandas.GeoDataFrame({"name": ["a", "b"]}, geometry=lines, crs=crs)
    frame.to_crs("EPSG:4326").to_file(dst, driver="GPKG")
    return dst


LAYERS = [
    {
        "name": "image",
        "kind": "imagery",
        "uri": "image16.tif",
        "bands": ["red", "green", "blue", "nir"],
        "dtype": "uint16",
        "scale": 0.0001,
    },
    {"name": "dem", "kind": "elevation", "uri": "dem.tif", "terrain": ["slope"]},
    {"name": "ndvi", "kind": "ndvi", "of": "image"},
    {"name": "faults", "kind": "distance", "uri": "faults.gpkg", "max_distance": 40},
    {"name": "lithology", "kind": "categorical", "uri": "lithology.tif"},
]


def write_layers(region: Path) -> Path:
    """The fake layers beside ``write_region``'s ``rgb.tif``/``dem.tif`` and ``layers.yaml``
    naming them with relative URIs."""
    write_multispectral(region / "rgb.tif", region / "image16.tif")
    write_lithology(region / "rgb.tif", region / "lithology.tif")
    write_faults(region / "rgb.tif", region / "faults.gpkg")
    path = region / "layers.yaml"
    path.write_text(yaml.safe_dump({"layers": LAYERS}, sort_keys=False))
    return path


def write_dem_on_lattice(region: Path, margin: int, name: str = "dem_1m.tif") -> Path:
    """``region``'s DEM resampled once onto its RGB's 1 m lattice, ``margin`` px wider on every
    side. On a shared lattice every unit's DEM read is a plain slice, so derived bands (and maps)
    compare to the last bit across unit sizes; a DEM on another grid is warped per unit, and
    GDAL's warps of overlapping windows differ in the last float bits."""
    from pipelines.raster import Grid, open_mosaic, read_window

    rgb = Grid.from_dataarray(open_mosaic(str(region / "rgb.tif")))
    grid = rgb.window(-margin, -margin, rgb.height + 2 * margin, rgb.width + 2 * margin)
    dem = read_window(open_mosaic(str(region / "dem.tif")), grid)
    profile = {"driver": "GTiff", "count": 1, "dtype": "float32", "nodata": np.nan}
    profile |= {"crs": grid.crs, "transform": grid.transform}
    with rasterio.open(region / name, "w", height=grid.height, width=grid.width, **profile) as f:
        f.write(dem)
    return region / name
