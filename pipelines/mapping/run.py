"""``map_region``: a model's input layers (RGB, DEM, ...) -> georeferenced landslide probability
mosaic, with Ray Data.

Stages, top to bottom: bind the layers to their files -> plan units -> read + warp each layer +
derive its bands + stack + normalise (layers with a halo, such as a DEM's terrain bands, read
that much further; tasks, which Ray Data fuses into the actors when both ask for the same
resources, as on CPUs) -> tile, infer, blend and write one chunk + marker (actor pool, model
loaded once per actor) -> finalize (driver: status, manifest, exports).
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from dataclasses import asdict

from tqdm import tqdm

from pipelines import stac, storage
from pipelines.bundles import load_bundle, resolve_bundle_uri
from pipelines.errors import InputError, LsmapError, UnreadableInputError
from pipelines.inputs import LayerInput, bind_inputs
from pipelines.layers import stack_for_bundle
from pipelines.mapping import export, output
from pipelines.mapping.plan import PRECISIONS, MapPlan, TileLayout, model_grid
from pipelines.mapping.stages import InferAndWriteUnits, MapSpec, read_unit
from pipelines.ray_runtime import init_ray


def map_region(
    model: str,
    inputs: Mapping[str, LayerInput | str],
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
    cog: bool = False,
    polygons: bool = False,
    quicklook: bool = True,
    progress: bool = True,
) -> dict:
    """Map landslide probability over the area of the model's first layer (or ``bbox`` of it)
    into ``out``.

    ``inputs`` gives each of the model's file layers by name (``image``, ``dem``, ...; see
    ``lsmap models --describe``) as a URI or a :class:`~pipelines.inputs.LayerInput`.
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 on GPUs, fp32 on CPUs).
    Returns the run manifest. Reruns with the same inputs, model and parameters compute only the
    units that have no marker yet; a different run in ``out`` is refused unless ``overwrite``.
    """
    started = time.perf_counter()
    precision = _precision(precision, gpus_per_worker)
    bundle = load_bundle(model)
    stack = stack_for_bundle(bundle)
    resolution = bundle.resolution_m if resample_to_model else None

    bound = bind_inputs(
        stack, inputs, lambda source: model_grid(source, resolution, bbox, bbox_crs)
    )
    grid = bound.grid
    layout = TileLayout(
        bundle.tile_size, bundle.tile_size // 2 if overlap is None else overlap, blend
    )
    plan = MapPlan(grid, chunk, layout)
    spec = MapSpec(
        inputs=bound.inputs,
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
        "coverage": {name: round(share, 4) for name, share in bound.coverage.items()},
        "dem_coverage": (round(bound.coverage["dem"], 4) if "dem" in bound.coverage else None),
    }
    output.write_manifest(spec.layout, manifest)
    stats = _execute(spec, todo, workers, cpus_per_worker, gpus_per_worker, progress)
    if not done and all(s["valid_pixels"] == 0 for s in stats):
        files = [source.name for source in spec.inputs.sources]
        inputs_text = (
            f"{files[0]} is nodata everywhere in it"
            if len(files) == 1
            else f"{', '.join(files[:-1])} and {files[-1]} are nodata everywhere they overlap"
        )
        raise InputError(
            f"no valid input anywhere in the area to map: {inputs_text}; the output stays "
            "marked incomplete"
        )

    image, image_uri = output.source_image(run)
    outputs = {"probability": spec.layout.zarr}
    if cog:
        outputs["cog"] = export.write_cog(spec.layout, grid, chunk)
    if polygons:
        outputs["polygons"] = export.write_polygons(
            spec.layout, grid, chunk, bundle.threshold, image_item=bound.items.get(image)
        )
    if quicklook:
        outputs["quicklook"] = export.write_quicklook(spec.layout, grid, chunk, image_uri)
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
    catalog = stac.write_map_catalog(out, manifest, bound.items)
    manifest["outputs"]["stac"] = spec.layout.relative(catalog)
    output.write_manifest(spec.layout, manifest)
    return manifest


def _run_identity(spec: MapSpec, bundle_sha256: str) -> dict:
    """What makes two runs the same run: a rerun may resume only if this is unchanged."""
    grid = spec.plan.grid
    return {
        "model_sha256": bundle_sha256,
        "inputs": spec.inputs.uris,
        **(
            {"masks": {mask.layer.name: list(mask.layer.codes) for mask in spec.inputs.masks}}
            if spec.inputs.masks
            else {}
        ),
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
    them: a run recorded with relative paths, resumed from the same directory, is the same run.
    Runs recorded before layers name their RGB and DEM as the layers ``image`` and ``dem``."""
    inputs = {
        name: storage.absolute(uri) if isinstance(uri, str) else [storage.absolute(u) for u in uri]
        for name, uri in output.run_inputs(run).items()
    }
    legacy = {key: value for key, value in run.items() if key not in ("rgb", "dem")}
    return legacy | {"inputs": inputs}


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
                # Values the model cannot take are the input's fault, not a read error to map
                # around: --tolerate-read-errors does not apply.
                if row["refused"]:
                    raise InputError(f"{row['error']}; the output stays marked incomplete")
                raise UnreadableInputError(row["error"])
            stats.append(row)
            pixels += row["pixels"]
            rate = pixels / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{rate / 1e6:.2f} Mpx/s", refresh=False)
            bar.update()
    return sorted(stats, key=lambda row: row["unit"])
