"""The usual approach, as users write it with rasterio: a sequential window loop.

Read each tile's RGB window and the DEM through a WarpedVRT onto the RGB grid, predict in batches,
stitch the blended tiles into an in-memory mosaic, write one GeoTIFF. Same model, same tiles, the
same padding and the same ramp blending as ``lsmap map``, so it computes the same map (up to float
rounding: see ``tests/integration/test_bench_baseline.py``). This is the baseline that
``map_efficiency.py`` measures against; it is not part of lsmap.

Padding as lsmap pads: a pixel without data in any band (outside the RGB, RGB or DEM nodata) is
fed to the model as the training mean (0 after normalisation) and is nodata (NaN) in the map.
"""

from __future__ import annotations

import argparse

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from pipelines.bundles import load_bundle
from pipelines.chips import normalize
from pipelines.mapping.plan import TileLayout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--rgb", required=True)
    parser.add_argument("--dem", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    model = bundle.build().to(memory_format=torch.channels_last)
    layout = TileLayout(bundle.tile_size, args.overlap)
    tile, weights = layout.tile, layout.weights()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    with rasterio.open(args.rgb) as rgb, rasterio.open(args.dem) as dem_src:
        height, width = rgb.height, rgb.width
        mosaic = np.zeros((height, width), np.float32)
        total_weight = np.zeros((height, width), np.float32)
        valid_map = np.zeros((height, width), bool)
        # WarpedVRT reads no windows outside itself: give it a margin of one tile on every side.
        pad = tile
        vrt_options = {
            "crs": rgb.crs,
            "transform": rgb.transform * rasterio.Affine.translation(-pad, -pad),
            "width": width + 2 * pad,
            "height": height + 2 * pad,
        }
        with WarpedVRT(dem_src, resampling=Resampling.bilinear, **vrt_options) as dem:
            pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []

            def flush() -> None:
                x = torch.from_numpy(np.stack([p[2] for p in pending]))
                with torch.inference_mode(), autocast:
                    logits = model(x.contiguous(memory_format=torch.channels_last))
                probs = torch.sigmoid(logits.float())
                for (row, col, _, valid), prob in zip(pending, probs[:, 0].numpy(), strict=True):
                    r0, c0 = max(row, 0), max(col, 0)
                    r1, c1 = min(row + tile, height), min(col + tile, width)
                    inside = np.s_[r0 - row : r1 - row, c0 - col : c1 - col]
                    mosaic[r0:r1, c0:c1] += prob[inside] * weights[inside]
                    total_weight[r0:r1, c0:c1] += weights[inside]
                    valid_map[r0:r1, c0:c1] = valid[inside]
                pending.clear()

            for ky in range(layout.count(height)):
                for kx in range(layout.count(width)):
                    row, col = (
                        layout.origin + ky * layout.stride,
                        layout.origin + kx * layout.stride,
                    )
                    window = Window(col, row, tile, tile)
                    # rasterio's boundless read builds a VRT each time (slow, and GDAL's cache
                    # grows with them): only tiles that overhang the region need it.
                    inside = 0 <= row <= height - tile and 0 <= col <= width - tile
                    image = rgb.read(window=window, boundless=not inside, masked=True)
                    dem_window = Window(col + pad, row + pad, tile, tile)
                    elevation = dem.read(window=dem_window, masked=True)
                    stack = np.ma.concatenate([image.astype(np.float32), elevation])
                    valid = ~np.ma.getmaskarray(stack).any(axis=0)
                    x = normalize(stack.filled(0), bundle.norm_mean, bundle.norm_std)
                    x[:, ~valid] = 0.0
                    pending.append((row, col, x, valid))
                    if len(pending) == args.batch_size:
                        flush()
            if pending:
                flush()
        profile = rgb.profile | {"count": 1, "dtype": "float32", "nodata": None, "driver": "GTiff"}
    with rasterio.open(args.out, "w", **profile) as dst:
        dst.write(np.where(valid_map, mosaic / total_weight, np.nan), 1)


if __name__ == "__main__":
    main()
