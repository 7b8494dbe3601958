"""What reading and deriving input layers costs next to the model, in `lsmap map` itself.

A synthetic region (``lsmap synth region --nir --lithology --dtype uint16``) is mapped twice with
random-weight U-Net++ CA bundles of the same width: once with the full layer stack of the issue
(4-band uint16 image, DEM with slope, NDVI, one-hot lithology at 5 m) and once with RGB + DEM as a
reference. The manifest's ``timings_s`` sum, over units, the seconds each unit spent reading
(every layer's window read, warped, derived, stacked and normalised) and inferring (tiling,
forward passes, blending). Goal: read <= 10% of infer for the full stack at 4096² px, base 16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import record

LAYERS = [
    {
        "name": "ms",
        "kind": "imagery",
        "bands": ["red", "green", "blue", "nir"],
        "dtype": "uint16",
        "scale": 0.0001,
    },
    {"name": "dem", "kind": "elevation", "terrain": ["slope"]},
    {"name": "ndvi", "kind": "ndvi", "of": "ms"},
    {"name": "lithology", "kind": "categorical", "categories": [1, 2, 3, 4]},
]
REFERENCE = [{"name": "image", "kind": "imagery"}, {"name": "dem", "kind": "elevation"}]


def bundle(path: Path, layers: list[dict], base_width: int) -> str:
    """A random-weight U-Net++ CA bundle of ``layers`` (128 px tiles, 1 m); speed does not
    depend on the weights."""
    import torch

    from lsmodel.bundle import ModelBundle
    from lsmodel.models import build_model
    from pipelines.bundles import save_bundle
    from pipelines.layers import LayerStack

    stack = LayerStack.from_record(layers)
    torch.manual_seed(0)
    net = build_model("unetpp_ca", in_channels=len(stack), base_width=base_width, dropout=0.0)
    model = ModelBundle.from_model(
        net,
        bands=list(stack.names),
        layers=stack.record(),
        tile_size=128,
        resolution_m=1.0,
        norm_mean=[0.0] * len(stack),
        norm_std=[1.0] * len(stack),
    )
    return save_bundle(model, str(path))


def map_timings(model: str, layers: Path, out: Path, chunk: int, workers: int) -> dict:
    """``lsmap map`` in its own process (its own local Ray), as a user runs it; the manifest's
    timings."""
    command = [sys.executable, "-m", "pipelines", "map", "--model", model, "--layers", str(layers)]
    command += ["--out", str(out), "--chunk", str(chunk), "--workers", str(workers)]
    command += ["--quiet", "--no-quicklook"]
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    subprocess.run(command, check=True, env=env)
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest["timings_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096, help="region side in pixels")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from pipelines.synthetic.writers import write_region

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = write_region(
            work / "region", args.size, seed=1, nir=True, lithology=True, dtype="uint16"
        )
        rows = []
        for label, layers in (
            ("uint16 RGBN + DEM/slope + NDVI + lithology", LAYERS),
            ("RGB + DEM (reference)", REFERENCE),
        ):
            model = bundle(work / f"model-{len(rows)}", layers, args.base_width)
            timings = map_timings(
                model, files.layers, work / f"map-{len(rows)}", args.chunk, args.workers
            )
            rows.append((label, timings))

    table = "| inputs | read + derive (s) | infer (s) | read / infer | wall (s) |\n"
    table += "|---|---|---|---|---|\n"
    for label, t in rows:
        ratio = t["read_s"] / t["infer_s"]
        table += f"| {label} | {t['read_s']:.1f} | {t['infer_s']:.1f} | **{ratio:.3f}** | {t['total']:.1f} |\n"
    full = rows[0][1]["read_s"] / rows[0][1]["infer_s"]
    notes = (
        f"U-Net++ CA base {args.base_width}, 128 px tiles (ramp blend, overlap 64), fp32, chunk "
        f"{args.chunk}, {args.workers} inference actors, {args.size}² px at 1 m. Seconds are "
        "summed over units (CPU time of the actors, not wall time). Goal: the full stack's "
        f"reading and deriving <= 10% of the model's time: **{full:.1%}** "
        f"({'met' if full <= 0.10 else 'missed'})."
    )
    record("Input layers: read and derive vs the model", table, notes)


if __name__ == "__main__":
    main()
