"""Training windows of a region on S3, streamed by Ray Data: what the reads give is what the
mapper's reader gives on a local copy, normalised as mapping normalises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import storage
from pipelines.chips import normalize
from pipelines.layers import stack_from_bands
from pipelines.regional.dataset import window_dataset
from pipelines.regional.region_file import read_region_file
from pipelines.regional.sampling import WindowSampler
from pipelines.regional.split import SpatialSplit, SplitSpec
from pipelines.regional.windows import bind_region, measure_windows
from pipelines.synthetic.writers import write_region

pytestmark = pytest.mark.usefixtures("ray_cluster")

SIZE = 32
FILES = ("rgb.tif", "dem.tif", "inventory.gpkg", "layers.yaml")


def test_windows_stream_from_s3_as_the_mapper_reads_them(tmp_path, s3_bucket):
    local = Path(write_region(tmp_path / "region", 256, seed=4, block=128).layers).parent
    for name in FILES:
        storage.write_bytes(f"s3://{s3_bucket}/region/{name}", (local / name).read_bytes())
    stack = stack_from_bands(["red", "green", "blue", "elevation", "slope"])
    remote = bind_region(read_region_file(f"s3://{s3_bucket}/region/layers.yaml"), stack, 1.0)
    on_disk = bind_region(read_region_file(local / "layers.yaml"), stack, 1.0)

    split = SpatialSplit.of(remote.grid, SplitSpec(block_m=64, buffer_m=8))
    windows = WindowSampler(split, remote.inventory, SIZE, seed=1).train_windows(epoch=0)
    stats = measure_windows(remote, windows, SIZE)
    # One more window, half beyond the imagery: too little of it counts, so it is dropped.
    beyond = np.array([[remote.grid.height - SIZE // 4, 0]])
    rows = window_dataset(remote, np.concatenate([windows, beyond]), SIZE, stats).take_all()

    assert sorted((r["top"], r["left"]) for r in rows) == sorted(map(tuple, windows.tolist()))
    for row in rows:
        expected = on_disk.read(row["top"], row["left"], SIZE)
        np.testing.assert_array_equal(
            row["image"], normalize(expected.image, stats.mean, stats.std)
        )
        np.testing.assert_array_equal(row["landslide"], expected.landslide)
        np.testing.assert_array_equal(row["valid"], expected.valid)
    assert any(row["landslide"].any() for row in rows)
