"""``lsmap cv``: spatial and random folds of a network and the per-pixel baselines on a local Ray
cluster, resumed by a rerun, refused where a fold could not be scored."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import geopandas as gpd
import pytest
import yaml

from pipelines.cli import main
from pipelines.errors import InputError
from pipelines.susceptibility.cv import CvConfig, check_folds
from pipelines.synthetic.writers import write_region
from pipelines.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("ray_cluster")

NETWORK = ["--epochs", "1", "--size", "32", "--base-width", "4", "--depth", "2"]
NETWORK += ["--batch-size", "8", "--windows-per-epoch", "16", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A 512 m region with its polygon inventory."""
    return write_region(tmp_path_factory.mktemp("cv"), 512, seed=2, block=256).layers


def _cv(region, out, *extra: str) -> list[str]:
    return [
        "cv",
        "--region",
        str(region),
        "--out",
        str(out),
        "--folds",
        "2",
        "--block-m",
        "64",
        "--buffer-m",
        "8",
        *NETWORK,
        *extra,
    ]


def test_a_network_and_a_baseline_are_scored_on_every_fold_and_a_rerun_resumes(
    region, tmp_path, capsys
):
    """Random folds: the network's training windows hold test pixels, which its loss skips.
    A fold an interrupted run finished is not run again."""
    out = tmp_path / "cv"
    finished = out / "folds" / "random-r0-f0" / "unet.json"
    finished.parent.mkdir(parents=True)
    earlier = {"partition": "random", "repeat": 0, "fold": 0, "model": "unet"}
    earlier |= {"auroc": 0.625, "miou": 0.5, "f1": 0.25, "pixels": 100}
    finished.write_text(json.dumps(earlier))
    command = _cv(region, out, "--models", "unet,logistic", "--partitions", "random")
    assert main(command) == 0
    assert "4 fold run(s): 1 finished before, 3 to run" in capsys.readouterr().out
    assert json.loads(finished.read_text()) == earlier

    document = json.loads((out / "cv.json").read_text())
    assert len(document["folds"]) == 4  # 2 folds x 2 models
    for row in document["folds"]:
        assert 0.0 <= row["auroc"] <= 1.0 and row["pixels"] > 0
    assert {(s["model"], s["partition"]) for s in document["summary"]} == {
        ("unet", "random"),
        ("logistic", "random"),
    }
    assert (out / "runs" / "random-r0-f1-unet" / "model.lsmap").exists()
    assert not (out / "runs" / "random-r0-f0-unet").exists()
    unet = next(s for s in document["summary"] if s["model"] == "unet")
    trained = next(r for r in document["folds"] if r["model"] == "unet" and r["fold"] == 1)
    assert unet["auroc_mean"] == pytest.approx((0.625 + trained["auroc"]) / 2)

    # A rerun trains nothing again; other settings into the same folder are refused.
    before = {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("*.json")}
    assert main(command) == 0
    assert "4 fold run(s): 4 finished before, 0 to run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("*.json")} == before
    assert main([*command, "--epochs", "2"]) == 1
    assert "holds a cross-validation with other settings (base differ)" in capsys.readouterr().err


def test_a_baseline_on_spatial_partitions_makes_the_tables_and_the_box_plot(region, tmp_path):
    out = tmp_path / "cv"
    command = _cv(region, out, "--models", "logistic", "--partitions", "blocks,kmeans")
    assert main(command) == 0
    document = json.loads((out / "cv.json").read_text())
    assert len(document["folds"]) == 4  # 2 partitions x 2 folds
    groups = {(s["model"], s["partition"]): s for s in document["summary"]}
    assert set(groups) == {("logistic", "blocks"), ("logistic", "kmeans")}
    for entry in groups.values():
        assert entry["folds"] == 2 and entry["auroc_sd"] is not None
        assert entry["auroc_median"] is not None and 0 <= entry["auroc_mean"] <= 1
    with open(out / "cv.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    with open(out / "folds.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (out / "auroc.png").read_bytes().startswith(b"\x89PNG")
    assert document["best"]["partition"] == "blocks"
    assert "Best by spatial AUROC" in (out / "report.md").read_text()


def test_folds_that_cannot_be_scored_are_refused_before_any_run(region, tmp_path):
    base = TrainConfig(
        out=str(tmp_path / "cv"),
        region=str(region),
        size=32,
        windows_per_epoch=16,
        block_m=64,
        buffer_m=8,
    )
    config = CvConfig(base=base, models=("logistic",), folds=2, partitions=("kmeans",))
    check_folds(config)  # the whole region: every fold holds landslides

    # Four 256 m blocks, two per fold, and landslides in one of them only: one fold has none
    # to test on, or none to train on.
    scars = gpd.read_file(region.parent / "inventory.gpkg")
    centres = scars.geometry.centroid
    left, bottom, right, top = scars.total_bounds
    quadrant = (centres.x < (left + right) / 2).astype(int) * 2 + (centres.y < (top + bottom) / 2)
    scars[quadrant == quadrant.mode()[0]].to_file(tmp_path / "one-block.gpkg")
    document = yaml.safe_load(region.read_text())
    document["layers"] = [
        {**layer, "uri": str(region.parent / layer["uri"])} for layer in document["layers"]
    ]
    document["inventory"] = {"uri": str(tmp_path / "one-block.gpkg")}
    (tmp_path / "one-block.yaml").write_text(yaml.safe_dump(document))
    one_block = replace(base, region=str(tmp_path / "one-block.yaml"), block_m=256)
    with pytest.raises(InputError, match=r"fold \d of repeat 0 \(blocks partition\).*landslide"):
        check_folds(replace(config, base=one_block, partitions=("blocks",)))

    with pytest.raises(InputError, match=f"{len(scars)} landslides, fewer than the"):
        check_folds(replace(config, folds=len(scars) + 1))
