"""Learning from a region: spatial split, inventory labels per window, window sampling."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scipy.ndimage import binary_dilation, label

from pipelines.errors import InputError
from pipelines.inventory import InventorySpec, read_inventory
from pipelines.layers import stack_from_bands
from pipelines.raster import Grid
from pipelines.regional.labels import window_labels
from pipelines.regional.region_file import read_region_file
from pipelines.regional.sampling import WindowSampler
from pipelines.regional.split import TEST, TRAIN, VAL, SpatialSplit, SplitSpec
from pipelines.regional.windows import bind_region, measure_windows
from pipelines.synthetic.writers import write_region

SIZE = 512  # m: 1 m pixels
WINDOW = 32


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    files = write_region(tmp_path_factory.mktemp("regional"), SIZE, seed=4, block=256)
    with rasterio.open(files.rgb) as src:
        grid = Grid(src.crs, src.transform, src.height, src.width)
    with rasterio.open(files.truth) as src:
        truth = src.read(1)
    return files, grid, truth


def _polygons(files, grid, **options):
    return read_inventory(InventorySpec(str(files.inventory), **options), grid.crs, grid.bounds)


def _points(files, grid):
    spec = InventorySpec(str(files.points), label="landslide", crs="EPSG:4326")
    return read_inventory(spec, grid.crs, grid.bounds)


def test_blocks_are_dealt_deterministically_and_every_fold_tests_each_block_once(region):
    _, grid, _ = region
    spec = SplitSpec(block_m=64, buffer_m=16, seed=3)
    split = SpatialSplit.of(grid, spec)
    assert split.blocks.shape == (8, 8)
    assert split.counts() == {"train": 44, "val": 10, "test": 10}  # 15% of 64, rounded
    np.testing.assert_array_equal(split.blocks, SpatialSplit.of(grid, spec).blocks)
    assert SplitSpec.from_record(spec.record()) == spec
    other = SpatialSplit.of(grid, SplitSpec(block_m=64, buffer_m=16, seed=4))
    assert (other.blocks != split.blocks).any()

    tested = sum(
        SpatialSplit.of(grid, SplitSpec(block_m=64, folds=4, fold=k)).blocks == TEST
        for k in range(4)
    )
    np.testing.assert_array_equal(tested, 1)
    with pytest.raises(InputError, match="0 <= fold < folds"):
        SplitSpec(folds=4, fold=4)
    with pytest.raises(InputError, match="too few to split"):
        SpatialSplit.of(grid, SplitSpec(block_m=1000, val_fraction=0.4, test_fraction=0.5))


def test_kmeans_folds_are_compact_and_test_each_block_once(region):
    _, grid, _ = region
    specs = [SplitSpec(block_m=32, folds=5, fold=k, partition="kmeans", seed=2) for k in range(5)]
    splits = [SpatialSplit.of(grid, spec) for spec in specs]
    tested = sum(split.blocks == TEST for split in splits)
    np.testing.assert_array_equal(tested, 1)
    for split in splits:
        _, pieces = label(split.blocks == TEST)
        assert pieces == 1, "a k-means fold is one compact part of the region"
        assert split.counts()["val"] > 0
    again = SpatialSplit.of(grid, specs[0])
    np.testing.assert_array_equal(again.blocks, splits[0].blocks)


def test_random_folds_deal_pixels_and_count_only_training_pixels(region):
    """The leaky contrast: test pixels lie among training pixels, and training windows hold them
    (their loss counts only the training pixels)."""
    files, grid, _ = region
    splits = [
        SpatialSplit.of(grid, SplitSpec(folds=4, fold=k, partition="random", seed=1))
        for k in range(4)
    ]
    assert splits[0].block == 1 and splits[0].buffer == 0
    tested = sum(split.blocks == TEST for split in splits)
    np.testing.assert_array_equal(tested, 1)
    assert abs((splits[0].blocks == TEST).mean() - 0.25) < 0.01
    sampler = WindowSampler(splits[0], _polygons(files, grid), WINDOW, seed=5)
    windows = sampler.train_windows(1)
    assert len(windows) > 0
    top, left = windows[0]
    mask = splits[0].mask(TRAIN, int(top), int(left), WINDOW, WINDOW)
    assert mask.any() and not mask.all()
    with pytest.raises(InputError, match="random partition deals folds"):
        SplitSpec(partition="random")


def test_no_test_blocks_for_a_final_model(region):
    _, grid, _ = region
    split = SpatialSplit.of(grid, SplitSpec(block_m=64, val_fraction=0.15, test_fraction=0.0))
    assert split.counts()["test"] == 0 and split.counts()["val"] == 10


@pytest.mark.parametrize("kind", ["polygons", "points", "kmeans"])
def test_no_training_window_touches_held_out_ground(region, kind):
    """Pixel by pixel: every training window of several epochs stays further than the buffer
    from every validation and test block."""
    files, grid, _ = region
    spec = SplitSpec(block_m=96, buffer_m=20, seed=1)
    if kind == "kmeans":
        spec = SplitSpec(block_m=48, buffer_m=20, seed=1, folds=3, fold=1, partition="kmeans")
    split = SpatialSplit.of(grid, spec)
    held_out = split.mask(VAL, 0, 0, grid.height, grid.width) | split.mask(
        TEST, 0, 0, grid.height, grid.width
    )
    # Dilating by the buffer in the chessboard metric covers the buffer's square around a window.
    forbidden = binary_dilation(held_out, np.ones((3, 3), bool), iterations=split.buffer)
    inventory = _points(files, grid) if kind == "points" else _polygons(files, grid)
    sampler = WindowSampler(split, inventory, WINDOW, seed=5)
    seen = 0
    for epoch in range(3):
        for top, left in sampler.train_windows(epoch):
            assert not forbidden[top : top + WINDOW, left : left + WINDOW].any()
            seen += 1
    assert seen > 0


def test_samples_are_seeded_per_epoch_and_centre_on_landslides(region):
    files, grid, truth = region
    split = SpatialSplit.of(grid, SplitSpec(block_m=128, buffer_m=0, seed=0))
    sampler = WindowSampler(split, _polygons(files, grid), WINDOW, negatives=1.0, seed=7)
    first = sampler.train_windows(0)
    np.testing.assert_array_equal(first, sampler.train_windows(0))
    assert not np.array_equal(first, sampler.train_windows(1))
    assert (first >= 0).all() and (first <= SIZE - WINDOW).all()
    with_scar = [truth[t : t + WINDOW, c : c + WINDOW].any() for t, c in first]
    # Positives hold their scar; negatives, as many, are placed anywhere.
    assert sum(with_scar) >= len(first) // 2
    tiles = sampler.tiles(TEST)
    assert len(tiles) and all(split.mask(TEST, t, c, WINDOW, WINDOW).any() for t, c in tiles)


def test_polygon_labels_are_the_truth_and_known_as_the_user_says(region):
    files, grid, truth = region
    window = grid.window(100, 60, 200, 300)
    landslide, known = window_labels(_polygons(files, grid), window)
    expected = truth[100:300, 60:360]
    assert np.count_nonzero(landslide != expected) <= 0.01 * max(np.count_nonzero(expected), 1)
    assert known.all()
    landslide, known = window_labels(_polygons(files, grid, complete=False), window)
    np.testing.assert_array_equal(known, landslide == 1)  # only its polygons are known


def test_point_labels_are_discs_and_the_rest_is_unknown(region):
    files, grid, truth = region
    points = _points(files, grid)
    landslide, known = window_labels(points, grid, point_radius_m=5.0)
    discs = len(points.frame)
    assert abs(np.count_nonzero(known) - discs * np.pi * 25) < 0.15 * discs * np.pi * 25
    assert np.count_nonzero(landslide) == pytest.approx(
        len(points.presences) * np.pi * 25, rel=0.15
    )
    assert not landslide[~known].any()
    # Presence discs sit at scar heads: mostly on the scars themselves.
    assert truth[landslide == 1].mean() > 0.7
    assert not truth[known & (landslide == 0)].any()


def test_a_synthetic_regions_layers_file_is_its_region_file(region, tmp_path, monkeypatch):
    files, grid, _ = region
    monkeypatch.chdir(tmp_path)  # relative URIs resolve against the file, not the directory
    parsed = read_region_file(files.layers)
    assert parsed.inventory.uri == str(files.inventory)
    assert parsed.layers.inputs["image"].uri == str(files.rgb)
    assert len(read_inventory(parsed.inventory, grid.crs, grid.bounds).frame) > 0

    points = tmp_path / "points.yaml"
    points.write_text(
        f"layers: [{{name: image, uri: {files.rgb}}}]\n"
        f"inventory: {{uri: {files.points}, label: landslide, crs: EPSG:4326,\n"
        "  date: date, start: 2020-01-01, end: 2020-12-31, point_radius_m: 4}\n"
    )
    parsed = read_region_file(points)
    assert parsed.point_radius_m == 4.0 and parsed.inventory.start == "2020-01-01"
    points.write_text(f"layers: []\ninventory: {{uri: {files.points}, radius: 4}}\n")
    with pytest.raises(InputError, match=r"points\.yaml: unknown inventory option\(s\) radius"):
        read_region_file(points)
    points.write_text(f"layers: []\ninventroy: {{uri: {files.points}}}\n")
    with pytest.raises(InputError, match=r"points\.yaml: unknown key\(s\) inventroy"):
        read_region_file(points)


def test_training_windows_are_read_as_the_mapper_reads_them_with_their_labels(region):
    """A window of a synthetic region (RGB in UTM, DEM in degrees): the model input is the
    mapper's read of that window, the labels its truth, every pixel counts."""
    files, grid, truth = region
    stack = stack_from_bands(["red", "green", "blue", "elevation", "slope"])
    source = bind_region(read_region_file(files.layers), stack, resolution_m=1.0)
    assert source.grid == grid
    window = source.read(200, 120, 64)
    expected = source.inputs.read(grid.window(200, 120, 64, 64), (200, 120, 64, 64), grid)
    np.testing.assert_array_equal(window.image, expected)
    assert window.image.shape == (5, 64, 64) and np.isfinite(window.image).all()
    assert np.count_nonzero(window.landslide != truth[200:264, 120:184]) <= 10
    assert window.valid.all()
    # Half outside the region: no data there, so those pixels do not count.
    edge = source.read(grid.height - 32, 0, 64)
    assert not edge.valid[32:].any() and edge.valid[:32].all()


def test_training_statistics_come_from_the_windows_a_model_trains_on(region):
    files, grid, truth = region
    stack = stack_from_bands(["red", "green", "blue", "elevation"])
    source = bind_region(read_region_file(files.layers), stack, resolution_m=1.0)
    windows = np.array([[0, 0], [100, 200], [448, 448]])
    stats = measure_windows(source, windows, 64)
    images = np.stack([source.read(t, c, 64).image for t, c in windows], axis=1)
    np.testing.assert_allclose(stats.mean, images.reshape(4, -1).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats.std, images.reshape(4, -1).std(axis=1), rtol=1e-5)
    scars = sum(np.count_nonzero(truth[t : t + 64, c : c + 64]) for t, c in windows)
    assert stats.positive_fraction == pytest.approx(scars / (3 * 64 * 64), abs=1e-3)
    assert stats.layer_stack() == stack
