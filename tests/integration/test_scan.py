"""``lsmap scan`` end to end on S3: a synthetic region before and after events, a trained model.

Imagery appears under an S3 prefix one image at a time, as it would after real events; each scan
maps what is new and reports landslides that were not there in the previous image.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
import rasterio.features
import torch
from PIL import Image as PILImage

from lsmodel.bundle import ModelBundle
from lsmodel.losses import build_loss
from lsmodel.models import build_model
from pipelines import storage
from pipelines.bundles import save_bundle
from pipelines.chips import ChipDataset, band_stats, scan_bijie, split_records
from pipelines.scan import scan
from pipelines.synthetic.writers import write_chips, write_region

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]

SIZE, SEED = 384, 4
DATES = ("2024-06-01", "2024-07-15", "2024-08-30")  # images after events 0, 1 and 2


@pytest.fixture(scope="module")
def scan_model(tmp_path_factory) -> str:
    """A small U-Net trained in-process on synthetic chips (a plain loop: Ray Train is tested
    elsewhere); returns its bundle URI.

    Training runs on two torch threads whatever the machine: the float sums, hence the weights and
    this test's numbers, are then the same on every run. A model this small trained this briefly
    is good or poor depending on such details (its recall of new scars ranged from 0.2 to 0.75
    over thread counts), and the test is about the scan, not about training.
    """
    root = tmp_path_factory.mktemp("scan-model")
    write_chips(root / "chips", count=240, size=64, seed=3)
    splits = split_records(scan_bijie(root / "chips"), seed=0)
    mean, std = band_stats(splits["train"], 64)
    train = ChipDataset(splits["train"], 64, mean, std)
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.stack([train[i][1] for i in range(len(train))])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        model = build_model("unet", base_width=8, depth=3, dropout=0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        loss_fn = build_loss("bce+dice")
        generator = torch.Generator().manual_seed(0)
        for _ in range(12):
            for batch in torch.randperm(len(x), generator=generator).split(16):
                optimizer.zero_grad()
                loss_fn(model(x[batch]), y[batch]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    bundle = ModelBundle.from_model(
        model,
        bands=["red", "green", "blue", "elevation"],
        norm_mean=mean.tolist(),
        norm_std=std.tolist(),
        tile_size=64,
        resolution_m=1.0,
    )
    return save_bundle(bundle, str(root / "model"))


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    return [write_region(root / f"event{k}", size=SIZE, seed=SEED, event=k) for k in range(3)]


@pytest.fixture
def watched(events, scan_model, s3_bucket):
    """A watch list on S3 for one region whose imagery prefix is still empty."""
    base = f"s3://{s3_bucket}"
    storage.write_bytes(f"{base}/bijie/dem.tif", events[0].dem.read_bytes())
    storage.write_bytes(f"{base}/models/model.lsmap", storage.read_bytes(scan_model))
    with rasterio.open(events[0].rgb) as src:
        left, bottom, right, top = src.bounds
    watchlist = f"""
regions:
  - name: bijie
    aoi: {{bbox: [{left}, {bottom}, {right}, {top}], crs: EPSG:32648}}
    imagery: {base}/bijie/imagery/
    dem: {base}/bijie/dem.tif
    model: {base}/models/model.lsmap
    output: {base}/scans/
    threshold: 0.5
    schedule: "0 */6 * * *"
    mapping: {{chunk: 128}}
"""
    storage.write_text(f"{base}/watch.yaml", watchlist)
    return base


def _add_image(base: str, events, k: int) -> None:
    storage.write_bytes(f"{base}/bijie/imagery/{DATES[k]}.tif", events[k].rgb.read_bytes())


def _snapshot(prefix: str) -> dict[str, bytes]:
    fs, path = storage.filesystem(prefix)
    return {name: fs.cat_file(name) for name in fs.find(path)}


def _rasterized(uri: str, like) -> np.ndarray:
    features = json.loads(storage.read_text(uri))["features"]
    with rasterio.open(like) as src:
        if not features:
            return np.zeros(src.shape, bool)
        shapes = [(feature["geometry"], 1) for feature in features]
        return rasterio.features.rasterize(shapes, out_shape=src.shape, transform=src.transform) > 0


def _truth(region) -> np.ndarray:
    with rasterio.open(region.truth) as src:
        return src.read(1) > 0


def test_scans_find_new_landslides_once_and_pick_up_new_images(events, watched):
    config = f"{watched}/watch.yaml"
    out = f"{watched}/scans/bijie"

    # Nothing to scan yet: nothing is written.
    assert scan(config)[0]["status"] == "up to date"
    assert not storage.exists(out)

    # First image: mapped, every landslide reported, none counted as new.
    _add_image(watched, events, 0)
    [first] = scan(config)
    assert first["status"] == "scanned", first["error"]
    assert [s["image"] for s in first["scanned"]] == [DATES[0]]
    assert first["scanned"][0]["new_landslides"] is None
    assert not storage.exists(f"{out}/{DATES[0]}/new_landslides.geojson")

    # Post-event image: compared with the first; the new scars are found, few false ones.
    _add_image(watched, events, 1)
    [second] = scan(config)
    assert second["status"] == "scanned", second["error"]
    assert [s["image"] for s in second["scanned"]] == [DATES[1]]
    assert second["scanned"][0]["previous_image"] == DATES[0]
    image_dir = f"{out}/{DATES[1]}"
    new_truth = _truth(events[1]) & ~_truth(events[0])
    detected = _rasterized(f"{image_dir}/new_landslides.geojson", events[1].truth)
    recall = (detected & new_truth).sum() / new_truth.sum()
    precision = (detected & new_truth).sum() / max(detected.sum(), 1)
    print(f"new landslides: recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.6
    assert precision >= 0.75

    summary = storage.read_json(f"{image_dir}/summary.json")
    new_features = storage.read_json(f"{image_dir}/new_landslides.geojson")["features"]
    assert summary["new_landslides"]["count"] == len(new_features) > 0
    assert summary["new_landslides"]["area_m2"] == pytest.approx(
        sum(f["properties"]["area_m2"] for f in new_features)
    )
    report = storage.read_text(f"{image_dir}/report.md")
    assert DATES[1] in report and DATES[0] in report
    assert f"{len(new_features)} polygons" in report
    picture = PILImage.open(io.BytesIO(storage.read_bytes(f"{image_dir}/landslides.png")))
    assert picture.size == (SIZE, SIZE)

    # The same scan again: no work, not a byte changed.
    before = _snapshot(out)
    [third] = scan(config)
    assert third["status"] == "up to date" and third["scanned"] == []
    assert third["already_scanned"] == 2
    assert _snapshot(out) == before

    # A new image under the prefix is picked up by the next run and compared with the last one.
    _add_image(watched, events, 2)
    [fourth] = scan(config)
    assert [s["image"] for s in fourth["scanned"]] == [DATES[2]]
    assert fourth["scanned"][0]["previous_image"] == DATES[1]
    ledger = storage.read_json(f"{out}/_ledger.json")["images"]
    assert sorted(ledger) == list(DATES)
    assert not storage.listdir(f"{out}/_lock")  # the lock was given back
