"""Training on a region, the parts that run without Ray: settings, the run's plan (layers,
resolution, split, normalisation, refusals), a worker's epochs, and scoring held-out blocks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines.errors import InputError
from pipelines.regional.evaluate import bundle_predictor, score_region
from pipelines.regional.split import TEST, TRAIN
from pipelines.synthetic.writers import write_region
from pipelines.training import TrainConfig
from pipelines.training.region import EpochRows, plan_region

SMALL = {"size": 32, "base_width": 4, "depth": 2, "block_m": 96, "buffer_m": 8}


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_region(tmp_path_factory.mktemp("region"), 384, seed=4, block=128)


def _points_region(region, folder: Path, rows: pd.DataFrame | None = None) -> str:
    """A region file naming the synthetic points (or ``rows`` of them) as its inventory."""
    folder.mkdir(exist_ok=True)
    points = Path(region.points)
    if rows is not None:
        points = folder / "points.csv"
        rows.to_csv(points, index=False)
    layers = yaml.safe_load(Path(region.layers).read_text())
    for layer in layers["layers"]:
        layer["uri"] = str(Path(region.layers).parent / layer["uri"])
    layers["inventory"] = {"uri": str(points), "label": "landslide", "crs": "EPSG:4326"}
    layers["point_radius_m"] = 6
    path = folder / "region.yaml"
    path.write_text(yaml.safe_dump({"layers": layers["layers"], "inventory": layers["inventory"]}))
    return str(path)


def test_a_run_trains_on_chips_or_a_region_and_splits_a_region_by_its_settings():
    with pytest.raises(InputError, match="give data .* or region"):
        TrainConfig(out="run", data="chips", region="region.yaml")
    with pytest.raises(InputError, match="missing data or region"):
        TrainConfig.from_sources(None, {"out": "run"})
    config = TrainConfig(
        out="run", region="r.yaml", split_fractions=(0.6, 0.25, 0.15), block_m=100, seed=3
    )
    spec = config.split_spec()
    assert (spec.block_m, spec.val_fraction, spec.test_fraction, spec.seed) == (100, 0.25, 0.15, 3)
    # Terrain bands on a region take their resolution from its grid: none is needed here.
    TrainConfig(out="run", region="r.yaml", bands=("rgbd", "slope"))
    with pytest.raises(InputError, match="0 <= fold < folds"):
        TrainConfig(out="run", region="r.yaml", folds=4, fold=4)
    with pytest.raises(InputError, match="negatives must be >= 0"):
        TrainConfig(out="run", region="r.yaml", negatives=-1)


def test_a_region_run_takes_its_layers_and_resolution_and_measures_its_windows(region):
    config = TrainConfig(out="run", region=str(region.layers), **SMALL)
    planned, plan = plan_region(config)

    # The synthetic region file only says where `image` and `dem` are: the bands stay the
    # default RGB + DEM.
    assert planned.bands == ("red", "green", "blue", "elevation")
    assert planned.resolution_m == pytest.approx(1.0)
    assert plan.split.grid.shape == (384, 384)
    counts = plan.counts()
    assert counts["train_windows"] > 0 and counts["test_blocks"] >= 1
    windows = plan.sampler.train_windows(1)
    assert all(plan.split.allows(TRAIN, top, left, 32, 32) for top, left in windows)
    assert 0 < plan.stats.positive_fraction < 1
    record = plan.split_record()
    assert record["kind"] == "blocks" and record["spec"]["block_m"] == 96
    assert record["grid"]["width"] == 384


def test_points_without_absences_are_refused_naming_the_file(region, tmp_path):
    rows = pd.read_csv(region.points)
    presences = rows[rows["landslide"] == 1]
    path = _points_region(region, tmp_path, presences)
    with pytest.raises(InputError, match=r"points\.csv: points need absence rows"):
        plan_region(TrainConfig(out="run", region=path, **SMALL))


def test_an_inventory_outside_the_layers_is_refused(region, tmp_path):
    rows = pd.read_csv(region.points)
    rows["lon"] += 5.0  # hundreds of kilometres east
    path = _points_region(region, tmp_path, rows)
    with pytest.raises(InputError, match="points.csv"):
        plan_region(TrainConfig(out="run", region=path, **SMALL))


def test_a_worker_takes_its_rows_an_epoch_at_a_time():
    rows = [{"epoch": e, "i": i} for e, i in [(1, 0), (1, 1), (1, 2), (2, 3), (3, 4), (3, 5)]]
    stream = EpochRows(rows)
    first = stream.epoch(1)
    assert next(first)["i"] == 0  # epoch 1 cut short after one row (another worker ran out)
    assert [row["i"] for row in stream.epoch(2)] == [3]  # its leftovers are skipped
    assert [row["i"] for row in stream.epoch(3)] == [4, 5]
    assert list(stream.epoch(4)) == []


def _bundle(planned, plan, seed: int = 0) -> ModelBundle:
    torch.manual_seed(seed)
    model = build_model("unet", in_channels=4, base_width=4, depth=2, dropout=0.0)
    return ModelBundle.from_model(
        model,
        bands=list(planned.bands),
        layers=planned.layer_stack().record(),
        norm_mean=plan.stats.mean,
        norm_std=plan.stats.std,
        tile_size=planned.size,
        resolution_m=planned.resolution_m,
        threshold=0.5,
        metrics={"split": plan.split_record()},
    )


def test_points_are_scored_at_their_pixels_in_the_held_out_blocks(region, tmp_path):
    path = _points_region(region, tmp_path)
    planned, plan = plan_region(TrainConfig(out="run", region=path, **SMALL))
    predict = bundle_predictor(_bundle(planned, plan))
    results = score_region(predict, plan.source, plan.split, TEST, size=planned.size)

    frame = plan.source.inventory.frame
    inverse = ~plan.split.grid.transform
    cols, rows = inverse * (frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    rows, cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
    held_out = plan.split.blocks[rows // plan.split.block, cols // plan.split.block] == TEST
    assert results["points"] == int(held_out.sum()) > 0
    assert 0.0 <= results["point_auc"] <= 1.0
    # Pixel metrics count each labelled pixel with data in the test blocks once.
    whole = plan.source.read(0, 0, 384)
    assert results["pixels"] == np.count_nonzero(
        whole.valid & plan.split.mask(TEST, 0, 0, 384, 384)
    )


def test_beyond_the_area_of_interest_nothing_is_known(region, tmp_path):
    import geopandas
    import shapely

    planned, plan = plan_region(TrainConfig(out="run", region=str(region.layers), **SMALL))
    left, bottom, right, top = plan.split.grid.bounds
    west = shapely.box(left, bottom, (left + right) / 2, top)  # the western half
    geopandas.GeoDataFrame(geometry=[west], crs=plan.split.grid.crs).to_crs(4326).to_file(
        tmp_path / "aoi.gpkg"
    )
    document = yaml.safe_load(Path(region.layers).read_text())
    for layer in document["layers"]:
        layer["uri"] = str(Path(region.layers).parent / layer["uri"])
    document["inventory"]["uri"] = str(region.inventory)
    document["aoi"] = "aoi.gpkg"  # relative to the region file, in another CRS
    (tmp_path / "region.yaml").write_text(yaml.safe_dump(document))

    _, clipped = plan_region(TrainConfig(out="run", region=str(tmp_path / "region.yaml"), **SMALL))
    window = clipped.source.read(0, 0, 384)
    assert not window.valid[:, 200:].any() and window.valid[:, :180].all()
    bounds = clipped.source.inventory.frame.total_bounds
    assert bounds[2] <= (left + right) / 2 + 1e-6


def test_a_final_model_holds_out_no_test_blocks(region):
    """After cross-validation the chosen model trains on all blocks but the validation ones."""
    config = TrainConfig(out="run", region=str(region.layers), split_fractions=(0.84, 0.16, 0.0))
    planned, plan = plan_region(replace(config, **SMALL))
    counts = plan.counts()
    assert counts["test_blocks"] == 0 and counts["val_blocks"] > 0 and counts["train_windows"] > 0
