"""Write the synthetic world to disk: Bijie-layout chip datasets and georeferenced regions."""

from __future__ import annotations

import contextlib
import math
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from pipelines.synthetic.world import CONFUSERS, Cover, Scene, World

WORLD_CRS = "EPSG:32648"  # UTM zone 48N, Bijie's zone; the world's coordinates are its metres
DEM_CRS = "EPSG:4326"
ORIGIN = (
    530_000.0,
    3_021_000.0,
)  # upper-left corner of regions: near Bijie, Guizhou (27.3N 105.3E)
CHIP_DOMAIN = 20_000.0  # m; chips are drawn from the square of this side below-right of ORIGIN
DEM_RESOLUTION = 4e-5  # degrees: about 4.0 m east-west and 4.4 m north-south at 27.3N
DEM_MARGIN = 100.0  # m of DEM beyond the RGB on every side
DEM_NODATA = -9999.0
STEEP_DEGREES = 30.0  # slope of the steep scar-free negatives of lithology chips
LITHOLOGY_RESOLUTION = 5.0  # m: a geological map is coarser than the imagery
# Rivers: regions' river lines reach this far beyond the DEM, chips' distance rasters are exact
# up to it (a distance layer's max_distance may be up to this).
RIVER_REACH = 1000.0  # m
RIVERS_CRS = "EPSG:4326"  # GeoJSON's own CRS: river lines are reprojected as real ones are
ABSENCE_CLEARANCE = 20.0  # m between an absence point and the nearest scar
POINTS_CRS = "EPSG:4326"  # points.csv holds longitude and latitude, as field surveys do


def event_date(event: int) -> str:
    """The synthetic date of an event (ISO): 15 July of 2020 + ``event``, monsoon season."""
    return f"{2020 + event}-07-15"


_GTIFF_TILE = 512


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    image = array.transpose(1, 2, 0) if array.ndim == 3 else array
    Image.fromarray(np.ascontiguousarray(image)).save(path)


def _write_chip_tif(
    path: Path, values: np.ndarray, x0: float, y0: float, pixel_size: float
) -> None:
    """A ``(bands, H, W)`` or ``(H, W)`` chip as a GeoTIFF on its place in the world."""
    import rasterio
    from rasterio.transform import from_origin

    values = values if values.ndim == 3 else values[None]
    profile = {
        "driver": "GTiff",
        "height": values.shape[1],
        "width": values.shape[2],
        "count": values.shape[0],
        "dtype": values.dtype,
        "crs": WORLD_CRS,
        "transform": from_origin(x0, y0, pixel_size, pixel_size),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)


MULTISPECTRAL_BANDS = ("red", "green", "blue", "nir")
MULTISPECTRAL_DTYPES = ("uint8", "uint16")
# 16-bit multispectral values are the 8-bit ones times this: digital numbers of 0-10200, as
# reflectance x 10000 in Sentinel-2 L2A (declare `scale: 0.0001` to read them as reflectance).
UINT16_GAIN = 40


def multispectral(scene: Scene, dtype: str = "uint8") -> np.ndarray:
    """Red, green, blue and near-infrared of a scene, ``(4, H, W)`` in ``dtype``."""
    if dtype not in MULTISPECTRAL_DTYPES:
        raise ValueError(f"dtype must be one of {MULTISPECTRAL_DTYPES}, got {dtype!r}")
    bands = np.concatenate([scene.rgb, scene.nir[None]])
    return bands if dtype == "uint8" else bands.astype(np.uint16) * np.uint16(UINT16_GAIN)


def write_chips(
    out_dir: str | Path,
    count: int,
    size: int = 128,
    seed: int = 0,
    landslide_fraction: float = 0.5,
    pixel_size: float = 1.0,
    *,
    nir: bool = False,
    lithology: bool = False,
    rivers: bool = False,
    dtype: str = "uint8",
) -> Path:
    """Write ``count`` chips of ``size`` px in the Bijie layout; returns ``out_dir``.

    ``landslide/{image,dem,mask}/ls_NNNNN.{png,tif,png}`` hold chips centred (within an eighth of
    the chip) on a scar; ``non-landslide/{image,dem}/nl_NNNNN.{png,tif}`` hold scar-free chips
    centred on a confuser (hard negatives), every other one on a bare-soil look-alike. Images are
    RGB PNGs, DEMs float32 GeoTIFFs on the image grid (UTM 48N, so each chip's place in the world
    is known), masks PNGs of 0/255. Chips come from a 20 km square of the world below-right of
    :data:`ORIGIN`. Deterministic in ``seed``.

    Options (off: the same chips as ever for a seed): ``nir`` adds ``ms/`` folders of
    red, green, blue and near-infrared GeoTIFFs (``dtype`` ``uint8`` or ``uint16``, see
    :data:`UINT16_GAIN`) and a world with shrub look-alikes (scars in RGB, bright in
    near-infrared), which are among the hard negatives; ``lithology`` adds ``lithology/`` folders
    of class codes and a world whose scars depend on lithology, and centres every third negative
    chip on steep scar-free ground; ``rivers`` adds ``rivers/`` folders of the distance (m,
    float32) to the nearest river line, exact up to :data:`RIVER_REACH`.
    """
    if count < 1 or size < 8 or not 0.0 <= landslide_fraction <= 1.0:
        raise ValueError("need count >= 1, size >= 8 and 0 <= landslide_fraction <= 1")
    out = Path(out_dir)
    options = {"ms": nir, "lithology": lithology, "rivers": rivers}
    folders = ["image", "dem", *(name for name, wanted in options.items() if wanted)]
    kinds = ("landslide", "non-landslide")
    dirs = {f"{kind}/{folder}": out / kind / folder for kind in kinds for folder in folders}
    dirs["landslide/mask"] = out / "landslide" / "mask"
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    if dtype not in MULTISPECTRAL_DTYPES:
        raise ValueError(f"dtype must be one of {MULTISPECTRAL_DTYPES}, got {dtype!r}")

    world = World(seed, lithology_scars=lithology, shrub_lookalikes=nir)
    rng = np.random.default_rng([seed, 7])
    extent = size * pixel_size

    def random_corner() -> tuple[float, float]:
        # Upper-left corners of 2x2-chip tiles, on a 1 m grid so chip transforms stay exact.
        x, y = np.floor(rng.uniform(0.0, CHIP_DOMAIN - 2.0 * extent, 2))
        return ORIGIN[0] + x, ORIGIN[1] - y

    def save(kind: str, name: str, scene: Scene, x0: float, y0: float) -> None:
        _write_png(dirs[f"{kind}/image"] / f"{name}.png", scene.rgb)
        _write_chip_tif(dirs[f"{kind}/dem"] / f"{name}.tif", scene.elevation, x0, y0, pixel_size)
        if nir:
            values = multispectral(scene, dtype)
            _write_chip_tif(dirs[f"{kind}/ms"] / f"{name}.tif", values, x0, y0, pixel_size)
        if lithology:
            codes = scene.lithology
            _write_chip_tif(dirs[f"{kind}/lithology"] / f"{name}.tif", codes, x0, y0, pixel_size)
        if rivers:
            distance = _river_distance(world, x0, y0, size, pixel_size)
            _write_chip_tif(dirs[f"{kind}/rivers"] / f"{name}.tif", distance, x0, y0, pixel_size)
        if kind == "landslide":
            _write_png(dirs[f"{kind}/mask"] / f"{name}.png", scene.mask * np.uint8(255))

    n_landslide = round(count * landslide_fraction)
    made = 0
    while made < n_landslide:
        x0, y0 = random_corner()
        scars = world.scars(x0, y0 - 2.0 * extent, x0 + 2.0 * extent, y0)
        if scars.x.size == 0:
            continue
        k = int(rng.integers(scars.x.size))
        cx, cy = (scars.x[k], scars.y[k]) + rng.uniform(-extent / 8.0, extent / 8.0, 2)
        x0, y0 = math.floor(cx - extent / 2.0), math.floor(cy + extent / 2.0)
        scene = world.scene(x0, y0, size, size, pixel_size)
        if scene.mask.any():
            save("landslide", f"ls_{made:05d}", scene, x0, y0)
            made += 1

    confusers = np.array((*CONFUSERS, *([Cover.SHRUB] if nir else [])), np.uint8)
    half = size // 2
    for made in range(count - n_landslide):
        while True:
            # Hard negatives: each chip is centred on a confuser, every other one on a bare-soil
            # look-alike, so that RGB alone cannot tell the class. The chip is cut from a tile
            # twice its size (blocks of the world join exactly, so this equals rendering it).
            x0, y0 = random_corner()
            tile = world.scene(x0, y0, 2 * size, 2 * size, pixel_size)
            centre = tile.cover[half : half + size, half : half + size]
            if lithology and made % 3 == 2:
                # Steep ground without scars: where lithology, not slope, tells the class.
                wanted = tile.slope[half : half + size, half : half + size] > STEEP_DEGREES
            elif made % 2 == 0:
                wanted = centre == Cover.BARE_PATCH
            else:
                wanted = np.isin(centre, confusers)
            rows, cols = np.nonzero(wanted)
            if rows.size == 0:
                continue
            k = int(rng.integers(rows.size))
            scene = _crop(tile, int(rows[k]), int(cols[k]), size)
            if not scene.mask.any():
                break
        save(
            "non-landslide",
            f"nl_{made:05d}",
            scene,
            x0 + cols[k] * pixel_size,
            y0 - rows[k] * pixel_size,
        )
    return out


def _river_distance(world: World, x0: float, y0: float, size: int, pixel_size: float) -> np.ndarray:
    """Distance (m) from each pixel of a chip to the nearest river line, capped at
    :data:`RIVER_REACH`: the chip padded by that much, as a map's windows are."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from shapely import LineString

    from pipelines.raster import Grid
    from pipelines.vectors import Features, distance_to_features, halo_pixels

    pad = halo_pixels(RIVER_REACH, pixel_size)
    reach = pad * pixel_size
    lines = world.rivers(
        x0 - reach, y0 - size * pixel_size - reach, x0 + size * pixel_size + reach, y0 + reach
    )
    transform = from_origin(x0 - reach, y0 + reach, pixel_size, pixel_size)
    padded = Grid(CRS.from_user_input(WORLD_CRS), transform, size + 2 * pad, size + 2 * pad)
    features = Features.of(np.array([LineString(line) for line in lines], dtype=object), WORLD_CRS)
    distance = distance_to_features(features, padded, RIVER_REACH)
    return distance[pad : pad + size, pad : pad + size]


def _crop(scene: Scene, row: int, col: int, size: int) -> Scene:
    window = (..., slice(row, row + size), slice(col, col + size))
    return Scene(**{f.name: getattr(scene, f.name)[window] for f in fields(Scene)})


@dataclass(frozen=True)
class RegionFiles:
    """Paths of a written region (``ms``, ``lithology``, ``rivers``: None unless asked for)."""

    rgb: Path
    dem: Path
    truth: Path
    ms: Path | None = None
    lithology: Path | None = None
    rivers: Path | None = None
    layers: Path | None = None
    inventory: Path | None = None
    points: Path | None = None


def _to_cog(src: Path, dst: Path, resampling: str, predictor: int) -> None:
    from rasterio.shutil import copy

    copy(
        src,
        dst,
        driver="COG",
        compress="DEFLATE",
        predictor=predictor,
        blocksize=_GTIFF_TILE,
        overview_resampling=resampling,
        bigtiff="IF_SAFER",
    )


def _tiled_profile(height: int, width: int, count: int, dtype: str, crs: str, transform) -> dict:
    return {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": _GTIFF_TILE,
        "blockysize": _GTIFF_TILE,
        "compress": "deflate",
        "zlevel": 1,
        "bigtiff": "if_safer",
    }


def _blocks(height: int, width: int, block: int):
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield row, col, min(block, height - row), min(block, width - col)


def write_region(
    out_dir: str | Path,
    size: int,
    seed: int,
    block: int = 1024,
    event: int = 0,
    *,
    nir: bool = False,
    lithology: bool = False,
    rivers: bool = False,
    dtype: str = "uint8",
) -> RegionFiles:
    """Write a ``size`` x ``size`` m region of the world after ``event`` as three COGs.

    - ``rgb.tif``: 3-band uint8, EPSG:32648 (UTM 48N), 1 m pixels, upper-left corner at
      :data:`ORIGIN` (easting 530000, northing 3021000), so the transform is
      ``(1, 0, 530000, 0, -1, 3021000)``.
    - ``truth.tif``: uint8 landslide mask (1 = scar of an event <= ``event``) on the RGB grid.
    - ``dem.tif``: float32 elevation (m), EPSG:4326, pixels of :data:`DEM_RESOLUTION` degrees,
      covering the RGB bounds plus :data:`DEM_MARGIN` m, nodata :data:`DEM_NODATA` declared.
    - ``inventory.gpkg``: the landslide inventory, one polygon per scar of an event <=
      ``event`` reaching into the region (EPSG:32648; columns ``id``, ``event``, ``date``, see
      :func:`event_date`), the outlines ``truth.tif`` rasterises.
    - ``points.csv``: initiation points, ``lon``, ``lat`` (EPSG:4326), ``landslide`` 1 at the
      head of each such scar inside the region, 0 at as many absence points at least
      :data:`ABSENCE_CLEARANCE` m from any scar; ``id``, ``event``, ``date`` of presences.

    Options, as for :func:`write_chips` (off: the same region as ever for a seed):

    - ``nir``: ``ms.tif``, red, green, blue and near-infrared (band descriptions set) in
      ``dtype`` on the RGB grid, of a world with shrub look-alikes;
    - ``lithology``: ``lithology.tif``, uint8 class codes (:data:`LITHOLOGY_CODES`) at
      :data:`LITHOLOGY_RESOLUTION` m covering the DEM's area, of a world whose scars depend on them;
    - ``rivers``: ``rivers.geojson``, the river centre lines (:meth:`World.rivers`) within
      :data:`RIVER_REACH` of the DEM, in EPSG:4326.

    ``layers.yaml`` names every file written as a layer (``image``: rgb.tif, ``dem``, ``ms``,
    ``lithology``, ``rivers``), for `lsmap map --layers` (a model reads the layers it needs), and
    the inventory: it is also the region's region file (:mod:`pipelines.regional.region_file`).

    Blocks of ``block`` px are generated and written one at a time into tiled GeoTIFFs, which are
    then converted to COGs, so memory stays bounded whatever the size.
    """
    import rasterio
    import yaml
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    if size < 1 or block < 1:
        raise ValueError("size and block must be positive")
    if dtype not in MULTISPECTRAL_DTYPES:
        raise ValueError(f"dtype must be one of {MULTISPECTRAL_DTYPES}, got {dtype!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = World(seed, lithology_scars=lithology, shrub_lookalikes=nir)
    x0, y0 = ORIGIN
    rgb_transform = from_origin(x0, y0, 1.0, 1.0)

    west, south, east, north = transform_bounds(
        WORLD_CRS,
        DEM_CRS,
        x0 - DEM_MARGIN,
        y0 - size - DEM_MARGIN,
        x0 + size + DEM_MARGIN,
        y0 + DEM_MARGIN,
        densify_pts=21,
    )
    dem_w = math.ceil((east - west) / DEM_RESOLUTION)
    dem_h = math.ceil((north - south) / DEM_RESOLUTION)
    dem_transform = from_origin(west, north, DEM_RESOLUTION, DEM_RESOLUTION)
    to_world = Transformer.from_crs(DEM_CRS, WORLD_CRS, always_xy=True)

    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_rgb, tmp_truth, tmp_dem = (Path(tmp) / n for n in ("rgb.tif", "truth.tif", "dem.tif"))
        tmp_ms = Path(tmp) / "ms.tif"
        with (
            rasterio.open(
                tmp_rgb, "w", **_tiled_profile(size, size, 3, "uint8", WORLD_CRS, rgb_transform)
            ) as rgb_dst,
            rasterio.open(
                tmp_truth, "w", **_tiled_profile(size, size, 1, "uint8", WORLD_CRS, rgb_transform)
            ) as truth_dst,
            contextlib.ExitStack() as extra,
        ):
            rgb_dst.colorinterp = [rasterio.enums.ColorInterp[c] for c in ("red", "green", "blue")]
            ms_dst = None
            if nir:
                profile = _tiled_profile(size, size, 4, dtype, WORLD_CRS, rgb_transform)
                ms_dst = extra.enter_context(rasterio.open(tmp_ms, "w", **profile))
                ms_dst.descriptions = MULTISPECTRAL_BANDS
            for row, col, h, w in _blocks(size, size, block):
                scene = world.scene(x0 + col, y0 - row, h, w, 1.0, event)
                window = Window(col, row, w, h)
                rgb_dst.write(scene.rgb, window=window)
                truth_dst.write(scene.mask, 1, window=window)
                if ms_dst is not None:
                    ms_dst.write(multispectral(scene, dtype), window=window)

        dem_profile = _tiled_profile(dem_h, dem_w, 1, "float32", DEM_CRS, dem_transform)
        with rasterio.open(tmp_dem, "w", nodata=DEM_NODATA, **dem_profile) as dem_dst:
            for row, col, h, w in _blocks(dem_h, dem_w, block):
                lon = west + (col + np.arange(w) + 0.5) * DEM_RESOLUTION
                lat = north - (row + np.arange(h) + 0.5) * DEM_RESOLUTION
                xs, ys = to_world.transform(*np.meshgrid(lon, lat))
                dem_dst.write(world.elevation(xs, ys), 1, window=Window(col, row, w, h))

        files = RegionFiles(rgb=out / "rgb.tif", dem=out / "dem.tif", truth=out / "truth.tif")
        _to_cog(tmp_rgb, files.rgb, "AVERAGE", predictor=2)
        _to_cog(tmp_truth, files.truth, "NEAREST", predictor=1)
        _to_cog(tmp_dem, files.dem, "BILINEAR", predictor=3)
        layers = {"image": files.rgb.name, "dem": files.dem.name}
        if nir:
            files = replace(files, ms=out / "ms.tif")
            _to_cog(tmp_ms, files.ms, "AVERAGE", predictor=2)
            layers["ms"] = files.ms.name
        if lithology:
            files = replace(files, lithology=out / "lithology.tif")
            _write_lithology(world, size, Path(tmp) / "lithology.tif", block)
            _to_cog(Path(tmp) / "lithology.tif", files.lithology, "MODE", predictor=1)
            layers["lithology"] = files.lithology.name
        if rivers:
            files = replace(files, rivers=out / "rivers.geojson")
            _write_rivers(world, size, files.rivers)
            layers["rivers"] = files.rivers.name
        files = replace(files, inventory=out / "inventory.gpkg", points=out / "points.csv")
        _write_inventory(world, size, seed, event, files.inventory, files.points)
        entries = [{"name": name, "uri": uri} for name, uri in layers.items()]
        files = replace(files, layers=out / "layers.yaml")
        region = {"layers": entries, "inventory": {"uri": files.inventory.name}}
        files.layers.write_text(yaml.safe_dump(region, sort_keys=False))
    return files


def _write_inventory(
    world: World, size: int, seed: int, event: int, polygons: Path, points: Path
) -> None:
    """The region's scars as an inventory of polygons and as presence/absence points."""
    import csv

    import geopandas
    import shapely
    from pyproj import Transformer

    x0, y0 = ORIGIN
    scars = world.scar_outlines(x0, y0 - size, x0 + size, y0, event)
    outlines = [shapely.Polygon(scar.outline) for scar in scars]
    frame = geopandas.GeoDataFrame(
        {
            "id": [scar.id for scar in scars],
            "event": [scar.event for scar in scars],
            "date": [event_date(scar.event) for scar in scars],
        },
        geometry=outlines,
        crs=WORLD_CRS,
    )
    frame.to_file(polygons, driver="GPKG", layer="landslides")

    inside = [
        scar for scar in scars if x0 <= scar.head[0] < x0 + size and y0 - size < scar.head[1] <= y0
    ]
    rng = np.random.default_rng([seed, event, 11])
    tree = shapely.STRtree(outlines)
    absent: list[tuple[float, float]] = []
    for _ in range(1000):  # rounds of candidates; scars cover a few per cent of any region
        if len(absent) >= len(inside):
            break
        x, y = x0 + rng.uniform(0, size, 64), y0 - rng.uniform(0, size, 64)
        candidates = shapely.points(x, y)
        near = tree.query(candidates, predicate="dwithin", distance=ABSENCE_CLEARANCE)[0]
        clear = np.setdiff1d(np.arange(64), near)
        absent += [(float(x[i]), float(y[i])) for i in clear]
    absent = absent[: len(inside)]
    to_points = Transformer.from_crs(WORLD_CRS, POINTS_CRS, always_xy=True)
    with points.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "lon", "lat", "landslide", "event", "date"])
        for scar in inside:
            lon, lat = to_points.transform(*scar.head)
            writer.writerow(
                [scar.id, f"{lon:.7f}", f"{lat:.7f}", 1, scar.event, event_date(scar.event)]
            )
        for k, (x, y) in enumerate(absent):
            lon, lat = to_points.transform(x, y)
            writer.writerow([f"absence-{seed}-{k}", f"{lon:.7f}", f"{lat:.7f}", 0, "", ""])


def _write_rivers(world: World, size: int, path: Path) -> None:
    """The world's river lines within :data:`RIVER_REACH` of the DEM, as GeoJSON in
    :data:`RIVERS_CRS`."""
    import geopandas
    import pyogrio
    from shapely import LineString

    reach = DEM_MARGIN + RIVER_REACH
    left, top = ORIGIN[0] - reach, ORIGIN[1] + reach
    lines = world.rivers(left, top - size - 2 * reach, left + size + 2 * reach, top)
    frame = geopandas.GeoDataFrame(
        {"kind": ["river"] * len(lines)},
        geometry=[LineString(line) for line in lines],
        crs=WORLD_CRS,
    )
    pyogrio.write_dataframe(frame.to_crs(RIVERS_CRS), path, driver="GeoJSON")


def _write_lithology(world: World, size: int, path: Path, block: int) -> None:
    """The world's lithology codes over the region plus the DEM margin, at
    :data:`LITHOLOGY_RESOLUTION` m in the world CRS (nodata 0: no class)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    step = LITHOLOGY_RESOLUTION
    left, top = ORIGIN[0] - DEM_MARGIN, ORIGIN[1] + DEM_MARGIN
    cells = math.ceil((size + 2 * DEM_MARGIN) / step)
    profile = _tiled_profile(
        cells, cells, 1, "uint8", WORLD_CRS, from_origin(left, top, step, step)
    )
    with rasterio.open(path, "w", nodata=0, **profile) as dst:
        for row, col, h, w in _blocks(cells, cells, block):
            xs = left + (col + np.arange(w) + 0.5) * step
            ys = top - (row + np.arange(h) + 0.5) * step
            codes = world.lithology(xs[None, :], ys[:, None])
            dst.write(codes, 1, window=Window(col, row, w, h))
