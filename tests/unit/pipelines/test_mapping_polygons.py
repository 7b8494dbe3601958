"""Landslide polygons do not depend on how the mosaic is cut into chunks."""

import numpy as np
import pytest
from affine import Affine

from pipelines.mapping.polygons import chunk_pieces, landslide_features
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
