"""``lsmap zones``: class breaks, rate curves and the zonation of finished probability maps."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from probability_stores import write_finished_map
from rasterio.features import rasterize
from scipy.stats import rankdata

from pipelines import storage
from pipelines.cli import main
from pipelines.errors import InputError
from pipelines.raster import Grid
from pipelines.susceptibility import classes as zc
from pipelines.susceptibility.zonation import zonate

GRID = Grid("EPSG:32648", Affine(10, 0, 500_000, 0, -10, 3_000_000), 300, 260)
CHUNK = 64


def _field(grid: Grid = GRID) -> np.ndarray:
    """A smooth probability field with a strip of no data."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    probability = (np.sin(rows / 23) * np.cos(cols / 17) + 1) / 2
    probability[:7] = np.nan
    return probability


def _scars(grid: Grid = GRID, count: int = 25, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    rows = rng.integers(10, grid.height - 10, count)
    cols = rng.integers(10, grid.width - 10, count)
    discs = [
        shapely.Point(grid.transform * (c, r)).buffer(45) for r, c in zip(rows, cols, strict=True)
    ]
    return gpd.GeoDataFrame({"id": range(count)}, geometry=discs, crs=grid.crs)


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[str, str]:
    """A finished uint8 map and a polygon inventory over it (in another CRS)."""
    write_finished_map(str(tmp_path / "map"), _field(), GRID, CHUNK)
    _scars().to_crs("EPSG:4326").to_file(tmp_path / "inventory.gpkg")
    return str(tmp_path / "map"), str(tmp_path / "inventory.gpkg")


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC, ties counted half."""
    ranks = rankdata(scores)
    positives = labels.sum()
    negatives = len(labels) - positives
    return (ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def test_share_breaks_put_ties_where_the_share_comes_closest() -> None:
    weights = np.zeros(255)
    weights[[10, 11, 12, 100, 101, 200, 201, 202]] = [5, 5, 5, 3, 3, 4, 4, 4]
    # Below level 12: 10/33 (closest to 1/3). Levels 102..200 all leave 21/33 below (closest to
    # 2/3): the break sits in the middle of that gap.
    assert zc.share_breaks(weights, 3).tolist() == [12, 151]


def test_natural_breaks_separate_clusters() -> None:
    counts = np.zeros(255)
    counts[[10, 11, 12]] = 50
    counts[[120, 125]] = 30
    counts[[240, 250]] = 20
    assert zc.natural_breaks(counts, 3).tolist() == [120, 240]


def test_rate_curve_of_a_perfect_map_hugs_the_axis() -> None:
    area = np.array([90.0, 10.0])  # low level: no landslide; high level: all of them
    landslides = np.array([0.0, 10.0])
    curve = zc.rate_curve(area, landslides)
    assert curve.area_share.tolist() == [0.0, 0.1, 1.0]
    assert curve.landslide_share.tolist() == [0.0, 1.0, 1.0]
    assert curve.auc == pytest.approx(1 - 0.1 / 2)


def test_success_rate_auc_is_the_auroc_of_the_map_weighted_by_the_landslide_share(
    mapped, tmp_path
) -> None:
    map_uri, inventory = mapped
    document = zonate(map_uri, inventory, str(tmp_path / "zones"))

    stored = np.rint(np.nan_to_num(_field(), nan=-1) * 254)  # the map's uint8 values
    valid = ~np.isnan(_field())
    truth = rasterize(_scars().geometry, out_shape=GRID.shape, transform=GRID.transform) > 0
    auroc = _auroc(stored[valid], truth[valid])
    p = truth[valid].mean()
    assert document["success_rate"]["landslide_area_share"] == pytest.approx(p, rel=1e-12)
    assert document["success_rate"]["auc"] == pytest.approx((1 - p) * auroc + p / 2, abs=1e-12)


@pytest.mark.parametrize("method", ["quantile", "equal-area"])
def test_equal_share_methods_give_each_class_a_fifth(mapped, tmp_path, method) -> None:
    map_uri, inventory = mapped
    document = zonate(map_uri, inventory, str(tmp_path / "zones"), method=method)
    shares = [row["area_share"] for row in document["table"]]
    assert all(abs(share - 0.2) <= 0.01 for share in shares), shares
    assert not any(note.startswith("Ties") for note in document["notes"])


def test_equal_area_weighs_pixels_by_ground_area_in_a_geographic_crs(tmp_path) -> None:
    # 1° x 0.5° pixels from 10°N to 70°N: a northern pixel covers a third of a southern one.
    grid = Grid("EPSG:4326", Affine(1, 0, 100, 0, -0.5, 70), 120, 20)
    probability = np.repeat(np.linspace(0, 1, grid.height)[:, None], grid.width, axis=1)
    write_finished_map(str(tmp_path / "map"), probability, grid, 64)
    scars = gpd.GeoDataFrame(geometry=[shapely.box(101, 30, 104, 33)], crs="EPSG:4326")
    scars.to_file(tmp_path / "scars.gpkg")
    runs = {
        method: zonate(
            str(tmp_path / "map"),
            str(tmp_path / "scars.gpkg"),
            str(tmp_path / method),
            method=method,
        )
        for method in ("quantile", "equal-area")
    }
    assert all(abs(r["area_share"] - 0.2) <= 0.01 for r in runs["equal-area"]["table"])
    pixel_shares = [r["pixels"] / (grid.height * grid.width) for r in runs["quantile"]["table"]]
    assert all(abs(share - 0.2) <= 0.01 for share in pixel_shares)
    assert runs["equal-area"]["thresholds"] != runs["quantile"]["thresholds"]


def test_ties_keep_shares_as_close_as_they_allow_and_are_reported(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    probability = _field()
    probability[100:200] = 0.0  # a third of the map at one value
    write_finished_map(map_uri, probability, GRID, CHUNK)
    document = zonate(map_uri, inventory, str(tmp_path / "zones"))

    valid = ~np.isnan(probability)
    levels = np.rint(probability[valid] * 254)
    below = np.array([np.mean(levels < level) for level in range(256)])  # every possible break
    first_break = round(document["thresholds"][0] * 254)
    assert abs(below[first_break] - 0.2) == pytest.approx(np.min(np.abs(below - 0.2)))
    assert any(note.startswith("Ties") and "1/5" in note for note in document["notes"])
    assert "Ties" in (tmp_path / "zones" / "report.md").read_text()


def test_outputs_are_a_class_cog_with_colours_names_style_tables_and_stac(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    held_out = tmp_path / "held_out.gpkg"
    _scars(seed=1).to_file(held_out)
    out = tmp_path / "zones"
    assert (
        main(
            [
                "zones",
                "--map",
                map_uri,
                "--inventory",
                inventory,
                "--held-out",
                str(held_out),
                "--out",
                str(out),
                "--classes",
                "4",
                "--method",
                "natural-breaks",
            ]
        )
        == 0
    )
    document = json.loads((out / "zones.json").read_text())

    with rasterio.open(out / "zones.tif") as zones:
        classes = zones.read(1)
        assert zones.nodata == 0 and zones.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert zones.colormap(1)[1][:3] != zones.colormap(1)[4][:3]
        assert zones.crs == GRID.crs and zones.transform == GRID.transform
    assert set(np.unique(classes)) == {0, 1, 2, 3, 4}
    assert (classes[:7] == 0).all()  # no data stays no data
    probability = _field()
    expected = (
        np.searchsorted(document["thresholds"], np.rint(probability[7:] * 254) / 254, side="right")
        + 1
    )
    np.testing.assert_array_equal(classes[7:], expected)

    names = document["names"]
    assert names == ["low", "moderate", "high", "very high"]
    assert all(
        f"<Category>{name}</Category>" in (out / "zones.tif.aux.xml").read_text() for name in names
    )
    assert (out / "zones.qml").read_text().count("<paletteEntry") == 4
    table = (out / "zones.csv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("class,name,min_probability")
    rows = document["table"]
    assert sum(r["area_share"] for r in rows) == pytest.approx(1)
    assert sum(r["landslide_share"] for r in rows) == pytest.approx(1)
    assert sum(r["held_out_share"] for r in rows) == pytest.approx(1)
    for row in rows:
        assert row["frequency_ratio"] == pytest.approx(row["landslide_share"] / row["area_share"])
    rates = (out / "rates.csv").read_text().splitlines()
    assert rates[1] == ",0,0,0" and rates[-1].split(",")[1:] == ["1", "1", "1"]
    assert 0 < document["prediction_rate"]["auc"] < 1
    for figure in ("rates.png", "classes.png"):
        assert (out / figure).read_bytes().startswith(b"\x89PNG")
    item = json.loads((out / "item.json").read_text())
    assert {"zones_tif", "zones_qml", "zones_csv", "report_md", "zones_json"} <= set(item["assets"])
    assert "prediction rate" in (out / "report.md").read_text().lower()


def test_the_result_does_not_depend_on_the_chunking(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    write_finished_map(str(tmp_path / "map-256"), _field(), GRID, 256)
    first = zonate(map_uri, inventory, str(tmp_path / "a"), method="natural-breaks")
    second = zonate(
        str(tmp_path / "map-256"), inventory, str(tmp_path / "b"), method="natural-breaks"
    )
    assert first["thresholds"] == second["thresholds"] and first["table"] == second["table"]
    with (
        rasterio.open(tmp_path / "a" / "zones.tif") as a,
        rasterio.open(tmp_path / "b" / "zones.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_later_maps_of_the_model_reuse_the_stored_classes(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    first = zonate(map_uri, inventory, str(tmp_path / "first"), classes=3, method="success-rate")
    later = _field() ** 2  # another event's map, same model
    write_finished_map(str(tmp_path / "later"), later, GRID, CHUNK, dtype="float32")
    reused = zonate(
        str(tmp_path / "later"),
        inventory,
        str(tmp_path / "reused"),
        thresholds_from=str(tmp_path / "first"),
    )
    assert reused["thresholds"] == first["thresholds"] and reused["method"] == "success-rate"
    with rasterio.open(tmp_path / "reused" / "zones.tif") as zones:
        classes = zones.read(1)
    np.testing.assert_array_equal(
        classes[7:],
        np.searchsorted(first["thresholds"], later[7:].astype(np.float32), side="right") + 1,
    )

    write_finished_map(str(tmp_path / "other"), _field(), GRID, CHUNK, model_sha256="cd" * 32)
    with pytest.raises(
        InputError, match=r"thresholds of model sha256:abababababab.*without --thresholds"
    ):
        zonate(
            str(tmp_path / "other"),
            inventory,
            str(tmp_path / "x"),
            thresholds_from=str(tmp_path / "first"),
        )


def test_bad_inputs_are_refused_before_anything_is_written(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    out = tmp_path / "zones"

    write_finished_map(str(tmp_path / "running"), _field(), GRID, CHUNK, status="running")
    with pytest.raises(InputError, match=r"running: the map is not finished"):
        zonate(str(tmp_path / "running"), inventory, str(out))
    with pytest.raises(InputError, match="no manifest.json"):
        zonate(str(tmp_path), inventory, str(out))

    far = _scars().translate(xoff=1e6)
    far.to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match=r"far\.gpkg: no feature lies within the layers' extent"):
        zonate(map_uri, str(tmp_path / "far.gpkg"), str(out))

    in_the_gap = gpd.GeoDataFrame(
        geometry=[shapely.box(500_100, 2_999_960, 500_200, 2_999_990)], crs=GRID.crs
    )
    in_the_gap.to_file(tmp_path / "gap.gpkg")
    with pytest.raises(
        InputError, match=r"gap\.gpkg: none of its landslides falls on a mapped pixel"
    ):
        zonate(map_uri, str(tmp_path / "gap.gpkg"), str(out))

    with pytest.raises(InputError, match="--classes must be between 2 and 7"):
        zonate(map_uri, inventory, str(out), classes=9)
    assert not out.exists() or not (out / "zones.json").exists()


def test_a_failed_rerun_leaves_no_zones_json_from_before(mapped, tmp_path) -> None:
    map_uri, inventory = mapped
    out = str(tmp_path / "zones")
    zonate(map_uri, inventory, out)
    gpd.GeoDataFrame(
        geometry=[shapely.box(500_100, 2_999_960, 500_200, 2_999_990)], crs=GRID.crs
    ).to_file(tmp_path / "gap.gpkg")
    with pytest.raises(InputError):
        zonate(map_uri, str(tmp_path / "gap.gpkg"), out)
    assert not storage.exists(storage.join(out, "zones.json"))
