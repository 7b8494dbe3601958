"""The mapper loses nothing against chip-level inference with the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmodel.metrics import SegmentationMetrics
from pipelines.bundles import load_bundle
from pipelines.chips import normalize
from pipelines.mapping import map_region
from pipelines.mapping.score import score_map
from pipelines.raster import Grid, open_mosaic, read_window
from pipelines.synthetic.writers import write_region

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def _chip_level_metrics(bundle_uri: str, region) -> dict[str, float]:
    """The model applied to each model-size chip of the region on its own, no halo, no blending."""
    bundle = load_bundle(bundle_uri)
    model = bundle.build()
    rgb, dem, truth = (
        open_mosaic(str(region / name)) for name in ("rgb.tif", "dem.tif", "truth.tif")
    )
    grid = Grid.from_dataarray(rgb)
    metrics = SegmentationMetrics(threshold=bundle.threshold)
    tile = bundle.tile_size
    for row in range(0, grid.height - tile + 1, tile):
        for col in range(0, grid.width - tile + 1, tile):
            window = grid.window(row, col, tile, tile)
            stack = np.concatenate([read_window(rgb, window), read_window(dem, window)])
            x = torch.from_numpy(normalize(stack, bundle.norm_mean, bundle.norm_std))[None]
            with torch.inference_mode():
                probability = torch.sigmoid(model(x))[0, 0].numpy()
            labels = read_window(truth, window, resampling="nearest")[0]
            metrics.update(probability, labels)
    return metrics.compute()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_region_miou_matches_chip_level_miou(trained_bundle, tmp_path, precision):
    """In bf16 too: the chip-level reference stays fp32."""
    region = tmp_path / "region"
    write_region(region, size=512, seed=11)
    out = str(tmp_path / "map")
    map_region(
        trained_bundle,
        {"image": str(region / "rgb.tif"), "dem": str(region / "dem.tif")},
        out,
        chunk=192,
        precision=precision,
        progress=False,
    )

    mapped = score_map(out, str(region / "truth.tif"))
    chips = _chip_level_metrics(trained_bundle, region)
    print(f"region mIoU {mapped['miou']:.4f}, chip-level mIoU {chips['miou']:.4f}")
    assert chips["iou_landslide"] > 0.15, "the fixture model must really find landslides"
    assert abs(mapped["miou"] - chips["miou"]) <= 0.02
