"""Landslide polygons do not depend on how the mosaic is cut into chunks, and every polygon file
has one schema that GIS tools read back as written."""

import datetime

import geopandas
import numpy as np
import pandas
import pytest
from affine import Affine

from pipelines.mapping.polygons import (
    POLYGON_FORMATS,
    SCHEMA,
    Provenance,
    SourceImage,
    chunk_pieces,
    landslide_features,
    landslide_frame,
    write_landslides,
)
from pipelines.raster import Grid

GRID = Grid("EPSG:32648", Affine(2, 0, 530_000, 0, -2, 3_021_000), 60, 60)


def _features(probability: np.ndarray, chunk: int) -> list[dict]:
    pieces = []
    for row in range(0, GRID.height, chunk):
        for col in range(0, GRID.width, chunk):
            block = probability[row : row + chunk, col : col + chunk]
            pieces += chunk_pieces(block >= 0.5, block, GRID.window(row, col, *block.shape))
    return landslide_features(pieces, GRID)


def test_a_landslide_cut_by_chunk_borders_is_one_polygon_with_exact_statistics():
    probability = np.zeros((60, 60), np.float32)
    probability[10:35, 12:40] = np.linspace(0.6, 0.9, 28, dtype=np.float32)  # crosses 3 borders
    probability[50:55, 50:53] = 0.7
    whole, chunked = _features(probability, 60), _features(probability, 16)
    assert [f["properties"] for f in chunked] == [f["properties"] for f in whole]
    largest = chunked[0]["properties"]
    assert largest["area_m2"] == 25 * 28 * 4
    assert largest["prob_mean"] == pytest.approx(probability[10:35, 12:40].mean(), abs=1e-4)
    assert largest["prob_max"] == pytest.approx(0.9, abs=1e-4)
    assert [f["properties"]["id"] for f in chunked] == [1, 2]
    assert 100 < chunked[0]["properties"]["centroid_lon"] < 110  # UTM 48N lies at 102-108 E


def test_corner_contact_is_not_a_merge_and_no_landslide_is_no_feature():
    probability = np.zeros((60, 60), np.float32)
    probability[10:16, 10:16] = 0.8
    probability[16:20, 16:20] = 0.8  # touches the first square at one corner only
    assert len(_features(probability, 16)) == 2
    assert _features(np.zeros((60, 60), np.float32), 16) == []


PROVENANCE = Provenance(
    origin="bijie-2024-07-15",
    model_sha256="0123456789abcdef" * 4,
    detected_at=datetime.datetime(2024, 7, 16, 8, 30, tzinfo=datetime.UTC),
    source=SourceImage(
        "S2B_48RUU_20240715",
        datetime.datetime(2024, 7, 15, 3, 40, tzinfo=datetime.UTC),
        "sentinel-2b/msi",
        10.0,
    ),
    scan_id="bijie/2024-07-15",
    event_id="bijie-rain-2024",
    event_date="2024-07-14",
)


@pytest.fixture
def frame():
    """Three landslides (means 0.9, 0.75, 0.55); the first and a sliver of the second are new."""
    probability = np.zeros((60, 60), np.float32)
    probability[5:15, 5:20] = 0.9
    probability[30:40, 30:40] = 0.75
    probability[50:54, 2:6] = 0.55
    new = np.zeros((60, 60), bool)
    new[5:15, 5:20] = True
    new[30:32, 30:40] = True  # 20% of the second
    everything = landslide_features(chunk_pieces(probability >= 0.5, probability, GRID), GRID)
    fresh = landslide_features(chunk_pieces(new, probability, GRID), GRID)
    return landslide_frame(everything, GRID, PROVENANCE, fresh)


def test_polygon_schema_values(frame):
    assert list(frame.columns) == [*SCHEMA, "geometry"]
    assert frame["landslide_id"].tolist() == [f"bijie-2024-07-15-{n:04d}" for n in (1, 2, 3)]
    assert frame["status"].tolist() == ["new", "existing", "existing"]
    assert frame["confidence"].tolist() == ["high", "medium", "low"]
    assert (frame["det_method"] == "automatic extraction").all()
    assert (frame["model_version"] == "sha256:0123456789ab").all()
    assert frame["area_m2"].tolist() == [150 * 4, 100 * 4, 16 * 4]
    assert frame["area_ha"].tolist() == pytest.approx(frame["area_m2"] / 10_000)
    assert frame["source_sensor"].iloc[0] == "sentinel-2b/msi"
    # Without a previous map nothing is new or existing.
    assert landslide_frame([], GRID, PROVENANCE).empty
    first = landslide_frame(_features(np.full((60, 60), 0.8, np.float32), 60), GRID, PROVENANCE)
    assert first["status"].isna().all()


@pytest.mark.parametrize("kind", list(POLYGON_FORMATS))
def test_polygon_files_read_back_with_schema_crs_and_areas(frame, tmp_path, kind):
    uris = write_landslides(str(tmp_path / "landslides"), frame)
    assert sorted(uris) == sorted(POLYGON_FORMATS)
    read = geopandas.read_parquet if kind == "geoparquet" else geopandas.read_file
    back = read(uris[kind]).set_index("landslide_id").loc[frame["landslide_id"]].reset_index()
    if kind == "geojson":  # GeoJSON has no types: GDAL takes a date-like string for a date
        back["event_date"] = back["event_date"].dt.strftime("%Y-%m-%d").astype("str")
    assert list(back.columns) == [*SCHEMA, "geometry"]
    assert {name: str(back[name].dtype) for name in SCHEMA} == {
        name: str(frame[name].dtype) for name in SCHEMA
    }
    assert back.crs.to_epsg() == 32648
    assert back.geometry.area.tolist() == pytest.approx(back["area_m2"].tolist())
    pandas.testing.assert_frame_equal(
        pandas.DataFrame(back[list(SCHEMA)]), pandas.DataFrame(frame[list(SCHEMA)])
    )


def test_empty_polygon_files_keep_the_schema(tmp_path):
    uris = write_landslides(str(tmp_path / "none"), landslide_frame([], GRID, PROVENANCE))
    back = geopandas.read_parquet(uris["geoparquet"])
    assert back.empty and list(back.columns) == [*SCHEMA, "geometry"]
    assert geopandas.read_file(uris["flatgeobuf"]).empty
