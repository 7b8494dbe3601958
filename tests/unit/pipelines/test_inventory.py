"""Reading a landslide inventory: formats, reprojection, labels, filters and every refusal."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas
import numpy as np
import pandas
import pytest
import rasterio
import shapely
from pyproj import Transformer

from pipelines.errors import InputError
from pipelines.inventory import Inventory, InventorySpec, read_inventory
from pipelines.synthetic.writers import write_region

UTM = "EPSG:32648"
LAYERS = (530000.0, 3020800.0, 530200.0, 3021000.0)  # the layers' extent, in UTM


def scars() -> geopandas.GeoDataFrame:
    """Three landslide outlines in UTM 48N, of events 1, 2, 2."""
    return geopandas.GeoDataFrame(
        {
            "id": ["a", "b", "c"],
            "event": [1, 2, 2],
            "date": ["2021-03-01", "2021-07-15", "2022-01-01T08:30:00"],
            "label": ["yes", "yes", "no"],
        },
        geometry=[
            shapely.box(530000, 3020800, 530050, 3020850),
            shapely.box(530100, 3020900, 530150, 3020950),
            shapely.box(530150, 3020800, 530200, 3020860),
        ],
        crs=UTM,
    )


def write(frame: geopandas.GeoDataFrame, path: Path) -> str:
    frame.to_file(path)
    return str(path)


def write_csv(path: Path, **columns: list) -> str:
    pandas.DataFrame(columns).to_csv(path, index=False)
    return str(path)


def test_polygons_in_another_crs_are_reprojected(tmp_path: Path) -> None:
    uri = write(scars().to_crs("EPSG:4326"), tmp_path / "scars.gpkg")
    inventory = read_inventory(InventorySpec(uri), UTM, LAYERS)
    assert inventory.kind == "polygons" and inventory.complete
    assert inventory.source == uri
    assert list(inventory.frame.columns) == ["landslide", "geometry"]
    assert inventory.frame.crs == UTM
    assert inventory.frame["landslide"].all() and len(inventory.absences) == 0
    for got, want in zip(inventory.frame.geometry, scars().geometry, strict=True):
        np.testing.assert_allclose(
            shapely.get_coordinates(got), shapely.get_coordinates(want), atol=1e-3
        )


def test_synthetic_region_polygons_and_points(tmp_path: Path) -> None:
    files = write_region(tmp_path / "r", 128, seed=4, block=128)
    with rasterio.open(files.rgb) as rgb:
        crs, bounds = rgb.crs, tuple(rgb.bounds)
    polygons = read_inventory(InventorySpec(str(files.inventory)), crs, bounds)
    truth = geopandas.read_file(files.inventory)
    assert polygons.kind == "polygons" and len(polygons.presences) == len(truth)

    table = pandas.read_csv(files.points)
    spec = InventorySpec(str(files.points), label="landslide", crs="EPSG:4326")
    points = read_inventory(spec, crs, bounds)
    assert points.kind == "points" and not points.complete
    assert len(points.presences) == (table["landslide"] == 1).sum() > 0
    assert len(points.absences) == (table["landslide"] == 0).sum() > 0
    xs, ys = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        table["lon"], table["lat"]
    )
    np.testing.assert_allclose(points.frame.geometry.x, xs, atol=1e-3)
    np.testing.assert_allclose(points.frame.geometry.y, ys, atol=1e-3)
    # Presences lie on the outlines; the events filter keeps absences, which have no event.
    assert points.presences.intersects(polygons.frame.union_all().buffer(1)).all()
    spec = InventorySpec(
        str(files.points), label="landslide", crs="EPSG:4326", event="event", events=("0",)
    )
    assert len(read_inventory(spec, crs, bounds).frame) == len(table)


@pytest.mark.parametrize(
    "values",
    [
        ["true", "FALSE", "Yes", "no", "Presence", "absence", "PRESENT", "Absent", "1", "0"],
        [1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        [True, False, True, False, True, False, True, False, True, False],
        ["1.0", " 0.0", "YES", "NO", "yes ", "no", "1", "0", "True ", "false"],
    ],
)
def test_every_label_spelling(tmp_path: Path, values: list) -> None:
    lon = [105.3 + i * 1e-4 for i in range(10)]
    uri = write_csv(tmp_path / "pts.csv", lon=lon, lat=[27.3] * 10, status=values)
    inventory = read_inventory(InventorySpec(uri, label="status", crs="EPSG:4326"), UTM)
    assert inventory.frame["landslide"].tolist() == [True, False] * 5


def test_polygon_labels_and_require_absences(tmp_path: Path) -> None:
    uri = write(scars(), tmp_path / "scars.gpkg")
    spec = InventorySpec(uri, label="label", complete=False)
    inventory = read_inventory(spec, UTM)
    assert not inventory.complete
    assert len(inventory.presences) == 2 and len(inventory.absences) == 1
    inventory.require_absences("the focal loss")

    complete = read_inventory(InventorySpec(uri), UTM)
    complete.require_absences("the focal loss")  # the background is the absence
    incomplete = read_inventory(InventorySpec(uri, complete=False), UTM)
    with pytest.raises(InputError, match=r"scars\.gpkg: an incomplete polygon inventory"):
        incomplete.require_absences("the focal loss")


def test_points_of_presences_only_need_absences_when_asked(tmp_path: Path) -> None:
    uri = write_csv(tmp_path / "pts.csv", lon=[105.30, 105.31], lat=[27.30, 27.31], ls=[1, 1])
    inventory = read_inventory(InventorySpec(uri, label="ls", crs="EPSG:4326"), UTM)
    assert isinstance(inventory, Inventory) and len(inventory.absences) == 0
    with pytest.raises(
        InputError, match=r"pts\.csv: points need absence rows \(label 0/false\) for the BCE loss"
    ):
        inventory.require_absences("the BCE loss")


def test_bad_labels_are_listed(tmp_path: Path) -> None:
    uri = write_csv(
        tmp_path / "pts.csv",
        lon=[105.30, 105.31, 105.32, 105.33],
        lat=[27.3] * 4,
        status=["yes", "maybe", "2", None],
    )
    spec = InventorySpec(uri, label="status", crs="EPSG:4326")
    with pytest.raises(InputError, match=r"pts\.csv: column 'status'.*'maybe', '2', empty") as err:
        read_inventory(spec, UTM)
    assert "true/1/1.0/yes/presence/present" in str(err.value)


def test_missing_or_empty_label_column(tmp_path: Path) -> None:
    uri = write_csv(tmp_path / "pts.csv", lon=[105.3], lat=[27.3], status=[None])
    with pytest.raises(
        InputError, match=r"pts\.csv: no column 'landslide'.*'lon', 'lat', 'status'"
    ):
        read_inventory(InventorySpec(uri, label="landslide", crs="EPSG:4326"), UTM)
    with pytest.raises(InputError, match=r"pts\.csv: column 'status' is empty"):
        read_inventory(InventorySpec(uri, label="status", crs="EPSG:4326"), UTM)


def test_csv_coordinate_columns_and_crs(tmp_path: Path) -> None:
    uri = write_csv(tmp_path / "pts.csv", Longitude=[105.3], Latitude=[27.3])
    with pytest.raises(InputError, match=r"pts\.csv: a CSV has no CRS; .*crs:"):
        read_inventory(InventorySpec(uri), UTM)
    found = read_inventory(InventorySpec(uri, crs="EPSG:4326"), "EPSG:4326")
    assert found.frame.geometry[0].equals(shapely.Point(105.3, 27.3))

    uri = write_csv(tmp_path / "utm.csv", e=[530010.0, None], n=[3020810.0, 3020820.0])
    with pytest.raises(InputError, match=r"utm\.csv: no coordinate columns .*name them with x:"):
        read_inventory(InventorySpec(uri, crs=UTM), UTM)
    named = read_inventory(InventorySpec(uri, x="e", y="n", crs=UTM), UTM)
    assert len(named.frame) == 1  # the row without coordinates is dropped

    uri = write_csv(tmp_path / "bad.csv", x=["530010", "east"], y=[3020810.0, 3020820.0])
    with pytest.raises(InputError, match=r"bad\.csv: column 'x' .*not numbers: 'east'"):
        read_inventory(InventorySpec(uri, crs=UTM), UTM)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_vector_file_without_crs(tmp_path: Path) -> None:
    uri = write(scars().set_crs(None, allow_override=True), tmp_path / "nocrs.gpkg")
    with pytest.raises(InputError, match=r"nocrs\.gpkg: the file has no CRS; give it with crs:"):
        read_inventory(InventorySpec(uri), UTM)
    inventory = read_inventory(InventorySpec(uri, crs=UTM), "EPSG:4326")
    assert inventory.frame.crs == "EPSG:4326" and len(inventory.frame) == 3

    declared = write(scars(), tmp_path / "scars.gpkg")
    with pytest.raises(InputError, match=r"scars\.gpkg: the file's CRS is EPSG:32648 but crs:"):
        read_inventory(InventorySpec(declared, crs="EPSG:4326"), UTM)


def test_geometry_kinds(tmp_path: Path) -> None:
    polygon = shapely.box(530000, 3020800, 530050, 3020850)
    mixed = geopandas.GeoDataFrame(geometry=[polygon, shapely.Point(530100, 3020900)], crs=UTM)
    with pytest.raises(InputError, match=r"mixed\.gpkg: it mixes 1 polygon\(s\) and 1 point"):
        read_inventory(InventorySpec(write(mixed, tmp_path / "mixed.gpkg")), UTM)

    line = shapely.LineString([(530000, 3020800), (530100, 3020900)])
    lines = geopandas.GeoDataFrame(geometry=[line], crs=UTM)
    with pytest.raises(InputError, match=r"lines\.gpkg: an inventory holds polygons or points"):
        read_inventory(InventorySpec(write(lines, tmp_path / "lines.gpkg")), UTM)

    multi = geopandas.GeoDataFrame(
        {"ls": [1, 0]},
        geometry=[
            shapely.MultiPoint([(530010, 3020810), (530020, 3020820)]),
            shapely.Point(530100, 3020900),
        ],
        crs=UTM,
    )
    spec = InventorySpec(write(multi, tmp_path / "multi.gpkg"), label="ls")
    inventory = read_inventory(spec, UTM)
    assert inventory.kind == "points"
    assert inventory.frame.geom_type.eq("Point").all()
    assert inventory.frame["landslide"].tolist() == [True, True, False]

    with pytest.raises(InputError, match=r"multi\.gpkg: points cannot make the rest"):
        read_inventory(InventorySpec(spec.uri, label="ls", complete=True), UTM)


def test_invalid_and_empty_geometries(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(530000, 3020800), (530050, 3020850), (530050, 3020800),
                              (530000, 3020850)])  # fmt: skip
    frame = scars()
    frame.loc[1, "geometry"] = bowtie
    frame.loc[2, "geometry"] = bowtie
    with pytest.raises(
        InputError, match=r"bad\.gpkg: 2 invalid polygon\(s\) \(rows 1, 2.*make_valid"
    ):
        read_inventory(InventorySpec(write(frame, tmp_path / "bad.gpkg")), UTM)

    frame = scars()
    frame.loc[1, "geometry"] = None
    inventory = read_inventory(InventorySpec(write(frame, tmp_path / "gaps.gpkg")), UTM)
    assert len(inventory.frame) == 2

    frame.loc[[0, 2], "geometry"] = None
    with pytest.raises(InputError, match=r"none\.gpkg: the inventory holds no geometry"):
        read_inventory(InventorySpec(write(frame, tmp_path / "none.gpkg")), UTM)


def test_date_filter_is_inclusive(tmp_path: Path) -> None:
    uri = write(scars(), tmp_path / "scars.gpkg")

    def ids(start: str | None, end: str | None) -> int:
        spec = InventorySpec(uri, date="date", start=start, end=end)
        return len(read_inventory(spec, UTM).frame)

    assert ids("2021-07-15", "2022-01-01") == 2  # the time of day on the end date is kept
    assert ids(None, "2021-07-14") == 1
    assert ids("2021-03-02", None) == 2
    with pytest.raises(InputError, match=r"scars\.gpkg: the date filter .*spans 2021-03-01 to"):
        ids("2023-01-01", None)
    with pytest.raises(InputError, match=r"scars\.gpkg: start: '2021/01/01' is not an ISO date"):
        ids("2021/01/01", None)
    with pytest.raises(InputError, match=r"scars\.gpkg: start:/end: filter on dates; .*date:"):
        read_inventory(InventorySpec(uri, start="2021-01-01"), UTM)

    frame = scars().assign(date=["2021-03-01", "last spring", "15/07/2021"])
    bad = write(frame, tmp_path / "dates.gpkg")
    with pytest.raises(InputError, match=r"dates\.gpkg: column 'date' .*'last spring', '15/07"):
        read_inventory(InventorySpec(bad, date="date", end="2022-01-01"), UTM)


def test_event_filter_compares_text(tmp_path: Path) -> None:
    uri = write(scars(), tmp_path / "scars.gpkg")
    inventory = read_inventory(InventorySpec(uri, event="event", events=("2",)), UTM)
    assert len(inventory.frame) == 2
    assert inventory.frame.geometry[0].equals(scars().geometry[1])
    with pytest.raises(InputError, match=r"scars\.gpkg: the event filter .*holds '1', '2'"):
        read_inventory(InventorySpec(uri, event="event", events=("7",)), UTM)
    with pytest.raises(InputError, match=r"scars\.gpkg: no column 'quake'"):
        read_inventory(InventorySpec(uri, event="quake", events=("7",)), UTM)


def test_aoi_clips_features(tmp_path: Path) -> None:
    uri = write(scars(), tmp_path / "scars.gpkg")
    aoi = shapely.box(530025, 3020800, 530125, 3021000)
    inventory = read_inventory(InventorySpec(uri), UTM, LAYERS, aoi=aoi)
    assert len(inventory.frame) == 2
    assert sorted(inventory.frame.area) == pytest.approx([25 * 50, 25 * 50])
    with pytest.raises(
        InputError, match=r"scars\.gpkg: no feature lies within the area of interest"
    ):
        read_inventory(InventorySpec(uri), UTM, aoi=shapely.box(0, 0, 10, 10))


def test_inventory_outside_the_layers_is_refused(tmp_path: Path) -> None:
    uri = write(scars(), tmp_path / "scars.gpkg")
    elsewhere = (600000.0, 3000000.0, 600100.0, 3000100.0)
    with pytest.raises(
        InputError, match=r"scars\.gpkg: no feature lies within the layers' extent"
    ) as err:
        read_inventory(InventorySpec(uri), UTM, elsewhere)
    message = str(err.value)
    assert "(530000, 3020800, 530200, 3020950)" in message
    assert "(600000, 3000000, 600100, 3000100), both in EPSG:32648" in message
    assert "check the inventory's CRS" in message


def test_parquet_and_zipped_shapefile(tmp_path: Path) -> None:
    scars().to_parquet(tmp_path / "scars.parquet")
    parquet = read_inventory(InventorySpec(str(tmp_path / "scars.parquet"), label="label"), UTM)
    assert parquet.frame["landslide"].tolist() == [True, True, False]

    folder = tmp_path / "shp"
    folder.mkdir()
    scars().to_file(folder / "scars.shp")
    with zipfile.ZipFile(tmp_path / "scars.zip", "w") as archive:
        for part in folder.iterdir():
            archive.write(part, part.name)
    zipped = read_inventory(InventorySpec(str(tmp_path / "scars.zip")), UTM, LAYERS)
    assert len(zipped.frame) == 3

    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    with pytest.raises(InputError, match=r"junk\.gpkg: cannot read it as an inventory"):
        read_inventory(InventorySpec(str(tmp_path / "junk.gpkg")), UTM)
    with pytest.raises(InputError, match=r"scars\.gpkg: x:/y: name the coordinate columns"):
        read_inventory(InventorySpec(str(tmp_path / "scars.gpkg"), x="lon", y="lat"), UTM)
