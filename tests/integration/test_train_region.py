"""``lsmap train --region``: learning from a region's points alone, scored at held-out points,
and ``lsmap evaluate --region`` scoring exactly the blocks the run held out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.bundles import load_bundle
from pipelines.cli import main
from pipelines.synthetic.writers import write_region
from pipelines.training import TrainConfig
from pipelines.training.run import train

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_points_alone_teach_a_model_that_ranks_held_out_points(tmp_path, capsys):
    files = write_region(tmp_path / "region", 1024, seed=2)
    layers = yaml.safe_load(Path(files.layers).read_text())["layers"]
    # Discs of 5 m: a scar's head is at its upper edge, and a wider disc labels the ground
    # above it as landslide too.
    inventory = {"uri": "points.csv", "label": "landslide", "crs": "EPSG:4326", "point_radius_m": 5}
    region = tmp_path / "region" / "points.yaml"
    region.write_text(yaml.safe_dump({"layers": layers, "inventory": inventory}))
    config = TrainConfig(
        region=str(region),
        out=str(tmp_path / "run"),
        arch="unet",
        loss="bce",
        epochs=10,
        workers=2,
        batch_size=8,
        lr=3e-3,
        size=32,
        base_width=8,
        depth=3,
        dropout=0.0,
        block_m=256,
        buffer_m=16,
        windows_per_epoch=128,
        # 30% of the blocks held out: enough points (about 30) for their ranking to mean much.
        split_fractions=(0.55, 0.15, 0.30),
    )
    result = train(config, progress=None)

    test = result.test_metrics
    assert test["points"] >= 20, "too few held-out points to judge a ranking"
    assert test["point_auc"] >= 0.85
    # evaluate scores the same held-out blocks, from the bundle's record of the split.
    out = tmp_path / "test.json"
    assert (
        main(["evaluate", "--model", config.out, "--region", str(region), "--json", str(out)]) == 0
    )
    scored = json.loads(out.read_text())
    assert scored["points"] == test["points"] and scored["pixels"] == test["pixels"]
    assert scored["point_auc"] == pytest.approx(test["point_auc"])
    assert "AUROC at" in capsys.readouterr().out
    # Another region has other blocks: its held-out set is undefined, and evaluate says so.
    other = write_region(tmp_path / "other", 512, seed=3)
    assert main(["evaluate", "--model", config.out, "--region", str(other.layers)]) != 0
    assert "grid differs" in capsys.readouterr().err
    assert load_bundle(config.out).metrics["split"]["kind"] == "blocks"
