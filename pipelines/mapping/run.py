"""``map_region``: RGB mosaic + DEM -> georeferenced landslide probability mosaic, with Ray Data.
(RGB-only models need no DEM.)

Stages, top to bottom: plan units -> read + warp + derive the bundle's terrain bands + stack +
normalise (the DEM read reaches the bands' halo further; tasks, which Ray Data fuses into the
actors when both ask for the same resources, as on CPUs) -> tile, infer, blend and write one
chunk + marker (actor pool, model loaded once per actor) -> finalize (driver: status, manifest,
exports).
"""

from __future__ import annotations

import datetime
import math
import time
import warnings
from dataclasses import asdict

from tqdm import tqdm

from lsmodel.bundle import ModelBundle
from pipelines import stac, storage
from pipelines.bands import BandSet
from pipelines.bundles import load_bundle, resolve_bundle_uri
from pipelines.errors import InputError, LsmapError, UnreadableInputError
from pipelines.mapping import export, output
from pipelines.mapping.plan import PRECISIONS, MapPlan, TileLayout, output_grid
from pipelines.mapping.stages import InferAndWriteUnits, MapSpec, read_unit
from pipelines.raster import Grid, check_nodata_declared, open_mosaic
from pipelines.ray_runtime import init_ray


def map_region(
    model: str,
    rgb: str,
    dem: str | None,
    out: str,
    *,
    workers: int = 1,
    cpus_per_worker: int = 1,
    gpus_per_worker: float = 0,
    batch_size: int = 16,
    precision: str = "auto",
    overlap: int | None = None,
    blend: str = "ramp",
    chunk: int = 1024,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: str | None = None,
    resample_to_model: bool = True,
    dtype: str = "uint8",
    resume: bool = True,
    overwrite: bool = False,
    tolerate_read_errors: bool = False,
    dem_nodata: float | None = None,
    rgb_asset: str | None = None,
    dem_asset: str | None = None,
    cog: bool = False,
    polygons: bool = False,
    quicklook: bool = True,
    progress: bool = True,
) -> dict:
    """Map landslide probability over the RGB mosaic (or ``bbox`` of it) into ``out``.

    ``dem`` may be None when the model's bands need no elevation (an RGB-only model).

    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 on GPUs, fp32 on CPUs).
    Returns the run manifest. Reruns with the same inputs, model and parameters compute only the
    units that have no marker yet; a different run in ``out`` is refused unless ``overwrite``.
    """
    started = time.perf_counter()
    precision = _precision(precision, gpus_per_worker)
    rgb, rgb_item = stac.resolve_raster(rgb, rgb_asset)
    bundle = load_bundle(model)
    bands = _band_set(bundle)
    rgb_mosaic = open_mosaic(rgb)
    _check_rgb(rgb, rgb_mosaic)
    if not bands.needs_dem:  # an RGB-only model: a DEM given is not read
        dem = dem_item = dem_mosaic = None
    elif dem is None:
        raise InputError(
            f"the model's bands {', '.join(bands.names)} need elevation: give a DEM (--dem)"
        )
    else:
        dem, dem_item = stac.resolve_raster(dem, dem_asset)
        dem_mosaic = open_mosaic(dem)
        declared = dem_mosaic if dem_nodata is None else dem_mosaic.rio.write_nodata(dem_nodata)
        check_nodata_declared(declared, dem, "--dem-nodata")
        _check_dem(dem, dem_mosaic)
    source = Grid.from_dataarray(rgb_mosaic)
    grid = output_grid(
        source, bundle.resolution_m if resample_to_model else None, bbox=bbox, bbox_crs=bbox_crs
    )
    dem_coverage = _dem_coverage(grid, dem, dem_mosaic) if dem else None
    layout = TileLayout(
        bundle.tile_size, bundle.tile_size // 2 if overlap is None else overlap, blend
    )
    plan = MapPlan(grid, chunk, layout)
    spec = MapSpec(
        rgb=rgb,
        dem=dem,
        model=resolve_bundle_uri(model),
        out=out,
        plan=plan,
        norm_mean=tuple(bundle.norm_mean),
        norm_std=tuple(bundle.norm_std),
        batch_size=batch_size,
        device="cuda" if gpus_per_worker else "cpu",
        threads=cpus_per_worker,
        precision=precision,
        dtype=dtype,
        tolerate_read_errors=tolerate_read_errors,
        dem_nodata=dem_nodata,
        bands=bands,
        # From the whole output grid (its smallest ground pixel), so every unit reads the same.
        halo=bands.halo(grid),
        dem_box=dem_box(grid, dem_mosaic) if bands.terrain else None,
    )
    run = _run_identity(spec, bundle.sha256)
    done = _prepare_output(spec, run, resume=resume, overwrite=overwrite)
    # Largest read windows first: the small edge units then fill the end of the run, so no actor
    # idles long while another finishes a big unit. The bytes written do not depend on order.
    todo = sorted(
        (index for index in range(len(plan)) if index not in done),
        key=lambda index: (-math.prod(plan.unit(index).read[2:]), index),
    )

    manifest = {
        "status": "running",
        "run": run,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": {
            "workers": workers,
            "cpus_per_worker": cpus_per_worker,
            "gpus_per_worker": gpus_per_worker,
            "batch_size": batch_size,
            "precision": precision,
        },
        "units": {"total": len(plan), "already_done": len(done), "to_compute": len(todo)},
        "dem_coverage": None if dem_coverage is None else round(dem_coverage, 4),
    }
    output.write_manifest(spec.layout, manifest)
    stats = _execute(spec, todo, workers, cpus_per_worker, gpus_per_worker, progress)
    if not done and all(s["valid_pixels"] == 0 for s in stats):
        inputs = (
            f"{storage.redact(rgb)} and {storage.redact(dem)} are nodata everywhere they overlap"
        )
        if dem is None:
            inputs = f"{storage.redact(rgb)} is nodata everywhere in it"
        raise InputError(
            f"no valid input anywhere in the area to map: {inputs}; the output stays marked "
            "incomplete"
        )

    outputs = {"probability": spec.layout.zarr}
    if cog:
        outputs["cog"] = export.write_cog(spec.layout, grid, chunk)
    if polygons:
        outputs["polygons"] = export.write_polygons(
            spec.layout, grid, chunk, bundle.threshold, rgb_item=rgb_item
        )
    if quicklook:
        outputs["quicklook"] = export.write_quicklook(spec.layout, grid, chunk, rgb)
    manifest["outputs"] = spec.layout.relative(outputs)
    output.set_status(spec.layout, "complete")
    manifest["status"] = "complete"
    manifest["units"] |= {
        "computed": len(stats),
        "nodata_only": sum(1 for s in stats if s["valid_pixels"] == 0),
    }
    manifest["unreadable_units"] = [
        {"unit": s["unit"], "error": s["error"]} for s in stats if s["error"]
    ]
    manifest["timings_s"] = {
        "total": round(time.perf_counter() - started, 3),
        **{key: round(sum(s[key] for s in stats), 3) for key in ("read_s", "infer_s", "write_s")},
    }
    catalog = stac.write_map_catalog(out, manifest, {"rgb": rgb_item, "dem": dem_item})
    manifest["outputs"]["stac"] = spec.layout.relative(catalog)
    output.write_manifest(spec.layout, manifest)
    return manifest


def _band_set(bundle: ModelBundle) -> BandSet:
    """The bundle's bands, to build per unit; refused when the mapper cannot build them."""
    try:
        return BandSet.from_record(bundle.bands, bundle.terrain)
    except InputError as err:
        raise InputError(
            f"model bundle expects bands {bundle.bands}, which the mapper cannot build: {err}"
        ) from err


def _check_rgb(rgb_uri: str, rgb) -> None:
    """Refuse RGB the model would silently misread."""
    name = storage.redact(rgb_uri)
    if rgb.sizes["band"] != 3:
        raise InputError(f"{name}: expected an RGB mosaic with 3 bands, found {rgb.sizes['band']}")
    if rgb.dtype != "uint8":
        raise InputError(
            f"{name}: RGB is {rgb.dtype}, but lsmap models learn from 8-bit RGB; convert it to "
            "8-bit first (e.g. gdal_translate -ot Byte -scale MIN MAX 0 255) so values mean what "
            "the model learned"
        )


def _check_dem(dem_uri: str, dem) -> None:
    if dem.sizes["band"] != 1:
        raise InputError(
            f"{storage.redact(dem_uri)}: expected a single-band DEM, found {dem.sizes['band']} bands"
        )


def dem_box(grid: Grid, dem) -> tuple[int, int, int, int]:
    """The DEM's extent as output-grid pixels ``(top, left, bottom, right)``, rounded inwards
    (it may reach beyond the grid): where terrain bands stop using neighbours and take the
    terrain edge rule."""
    from rasterio.warp import transform_bounds

    dem_grid = Grid.from_dataarray(dem)
    left, bottom, right, top = transform_bounds(
        dem_grid.crs, grid.crs, *dem_grid.bounds, densify_pts=21
    )
    inverse = ~grid.transform
    cols, rows = zip(*(inverse * (x, y) for x in (left, right) for y in (bottom, top)), strict=True)
    # Inwards, but edges within float noise of a pixel boundary stay on it.
    return (
        math.ceil(min(rows) - 1e-6),
        math.ceil(min(cols) - 1e-6),
        math.floor(max(rows) + 1e-6),
        math.floor(max(cols) + 1e-6),
    )


def _dem_coverage(grid: Grid, dem_uri: str, dem) -> float:
    """Fraction of the output grid's area that the DEM covers; refuses no overlap at all."""
    from rasterio.warp import transform_bounds

    dem_grid = Grid.from_dataarray(dem)
    left, bottom, right, top = transform_bounds(
        dem_grid.crs, grid.crs, *dem_grid.bounds, densify_pts=21
    )
    g_left, g_bottom, g_right, g_top = grid.bounds
    width = max(0.0, min(right, g_right) - max(left, g_left))
    height = max(0.0, min(top, g_top) - max(bottom, g_bottom))
    coverage = width * height / ((g_right - g_left) * (g_top - g_bottom))
    if coverage == 0:
        raise InputError(
            f"{storage.redact(dem_uri)} does not overlap the area to map: the DEM covers "
            f"({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}) and the RGB "
            f"({g_left:.1f}, {g_bottom:.1f}, {g_right:.1f}, {g_top:.1f}) in {grid.crs}"
        )
    if coverage < 0.999:
        warnings.warn(
            f"the DEM covers {coverage:.1%} of the area to map; pixels without elevation are "
            "written as nodata",
            stacklevel=3,
        )
    return coverage


def _run_identity(spec: MapSpec, bundle_sha256: str) -> dict:
    """What makes two runs the same run: a rerun may resume only if this is unchanged."""
    grid = spec.plan.grid
    return {
        "model_sha256": bundle_sha256,
        "rgb": spec.rgb,
        "dem": spec.dem,
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "shape": [grid.height, grid.width],
        "chunk": spec.plan.chunk,
        "layout": asdict(spec.plan.layout),
        "dtype": spec.dtype,
        # bf16 and fp32 maps differ in the last bits: a rerun must not mix their units.
        "precision": spec.precision,
    }


def _precision(precision: str, gpus_per_worker: float) -> str:
    if precision == "auto":
        return "bf16" if gpus_per_worker else "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"precision must be auto or one of {PRECISIONS}, got {precision!r}")
    return precision


def _prepare_output(spec: MapSpec, run: dict, *, resume: bool, overwrite: bool) -> set[int]:
    """Create the store, or find what an earlier identical run already finished."""
    layout = spec.layout
    existing = output.stored_run(layout)
    if existing is not None and not overwrite:
        if _with_absolute_inputs(existing) != run:
            raise LsmapError(
                f"{storage.redact(spec.out)} already holds a different run (other model, inputs or "
                "parameters); choose another --out or pass --overwrite"
            )
        if resume:
            return output.finished_units(layout)
    if storage.exists(layout.units):  # markers of a run being replaced
        storage.remove(layout.units, recursive=True)
    output.create_store(layout, spec.plan.grid, spec.plan.chunk, spec.dtype, run)
    return set()


def _with_absolute_inputs(run: dict) -> dict:
    """A recorded run identity with its input paths absolute, as the command line now makes
    them: a run recorded with relative paths, resumed from the same directory, is the same run."""
    return run | {key: storage.absolute(run[key]) for key in ("rgb", "dem") if key in run}


def _execute(
    spec: MapSpec,
    todo: list[int],
    workers: int,
    cpus_per_worker: int,
    gpus_per_worker: float,
    progress: bool,
) -> list[dict]:
    """Run the Ray Data pipeline over the units in ``todo``; returns their stats."""
    if not todo:
        return []
    import ray

    init_ray()
    units = ray.data.from_items([{"unit": index} for index in todo], override_num_blocks=len(todo))
    mapped = units.map(read_unit, fn_kwargs={"spec": spec}).map_batches(
        InferAndWriteUnits,
        fn_constructor_kwargs={"spec": spec},
        batch_size=1,
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
    )

    stats = []
    pixels = 0
    started = time.perf_counter()
    with tqdm(total=len(todo), unit="unit", desc="mapping", disable=not progress) as bar:
        for row in mapped.iter_rows():
            if not row["written"]:
                raise UnreadableInputError(row["error"])
            stats.append(row)
            pixels += row["pixels"]
            rate = pixels / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{rate / 1e6:.2f} Mpx/s", refresh=False)
            bar.update()
    return sorted(stats, key=lambda row: row["unit"])
