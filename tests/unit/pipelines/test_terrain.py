"""Terrain derivatives: analytic planes and cones in projected and geographic grids, NaN holes,
and the halo contract (tiles equal one pass; without the halo they do not)."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.transform import from_origin
from scipy.ndimage import binary_dilation

from pipelines.errors import InputError
from pipelines.raster import Grid
from pipelines.terrain import (
    TERRAIN_BANDS,
    compute_terrain,
    compute_terrain_tiled,
    ground_spacing,
    required_halo,
)

ALL = list(TERRAIN_BANDS)
US_FOOT = 1200 / 3937  # metres
UTM_1M = Grid("EPSG:32648", from_origin(500_000, 3_000_000, 1.0, 1.0), 100, 130)
UTM_5M = Grid("EPSG:32648", from_origin(500_000, 3_000_000, 5.0, 5.0), 100, 130)
# About 9.9 m x 11.1 m pixels at 27 N, on UTM 48N's central meridian (105 E).
GEO_27N = Grid("EPSG:4326", from_origin(105.0, 27.01, 1e-4, 1e-4), 100, 130)
FEET = Grid("EPSG:2227", from_origin(6_000_000, 2_000_000, 3.0, 3.0), 100, 130)
GRIDS = {"utm-1m": UTM_1M, "utm-5m": UTM_5M, "wgs84-27N": GEO_27N, "us-feet": FEET}


def ground_xy(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in metres (east, north): UTM 48N for geographic grids, else the CRS scaled."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    x, y = grid.transform * (cols, rows)
    if grid.crs.is_geographic:
        return Transformer.from_crs(grid.crs, "EPSG:32648", always_xy=True).transform(x, y)
    scale = US_FOOT if grid.crs == FEET.crs else 1.0
    return x * scale, y * scale


def angle_between(sin_a, cos_a, sin_b, cos_b) -> np.ndarray:
    """Angle in degrees between two directions given as (east, north) vectors of any length."""
    return np.abs(
        np.degrees(np.arctan2(sin_a * cos_b - cos_a * sin_b, sin_a * sin_b + cos_a * cos_b))
    )


def band(result: np.ndarray, name: str) -> np.ndarray:
    """One band of a result computed for ``ALL`` bands."""
    return result[ALL.index(name)]


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
@pytest.mark.parametrize("gradient", [(0.3, -0.4), (-1.2, 0.0), (0.05, 0.9)])
def test_plane_slope_aspect_and_flat_bands(grid, gradient):
    east, north = ground_xy(grid)
    dem = 1500.0 + gradient[0] * (east - east.mean()) + gradient[1] * (north - north.mean())
    result = compute_terrain(dem, grid, ALL, relative_radius_m=40.0)
    magnitude = np.hypot(*gradient)
    # The plane is defined in UTM metres, whose scale factor (0.9996 on the central meridian)
    # bounds the error of the degree -> metre conversion: 0.012 degrees of slope at most here.
    # A spherical earth would be ~0.1 off; degrees taken as metres ~90.
    tolerance = 0.02 if grid.crs.is_geographic else 1e-5  # float32 results
    # Every pixel, the edges too: the edge rule (linear extrapolation) is exact on planes.
    np.testing.assert_allclose(
        band(result, "slope"), np.degrees(np.arctan(magnitude)), atol=tolerance
    )
    downslope = -gradient[0] / magnitude, -gradient[1] / magnitude
    error = angle_between(band(result, "aspect_sin"), band(result, "aspect_cos"), *downslope)
    assert error.max() < tolerance
    np.testing.assert_allclose(
        np.hypot(band(result, "aspect_sin"), band(result, "aspect_cos")), 1, atol=1e-6
    )
    assert np.abs(band(result, "curvature")).max() < 1e-4
    assert np.abs(band(result, "relative_elevation")).max() < 0.02


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
@pytest.mark.parametrize("direction", [-1, 1], ids=["mountain", "pit"])
def test_cone_slope_constant_and_aspect_radial(grid, direction):
    east, north = ground_xy(grid)
    apex_e, apex_n = east[50, 60], north[50, 60]
    distance = np.hypot(east - apex_e, north - apex_n)
    steepness = 0.7  # 35 degrees
    dem = (1000.0 + direction * steepness * distance).astype(np.float32)
    result = compute_terrain(dem, grid, ["slope", "aspect_sin", "aspect_cos"])
    pixel = np.hypot(*[np.abs(d).max() for d in ground_spacing(grid)])
    # Away from the apex (where the cone is not smooth) and from the edges (one-sided there).
    use = distance > 10 * pixel
    use[[0, -1], :] = use[:, [0, -1]] = False
    slope = result[0][use]
    np.testing.assert_allclose(slope, np.degrees(np.arctan(steepness)), atol=0.1)
    # Mountain: downslope points away from the apex; pit: towards it.
    expected = -direction * (east - apex_e), -direction * (north - apex_n)
    error = angle_between(result[1], result[2], *expected)[use]
    assert error.max() < 0.1


def test_hillshade_values():
    east, north = ground_xy(UTM_5M)
    east, north = east - east.mean(), north - north.mean()
    flat = np.full(UTM_5M.shape, 250.0, np.float32)
    assert np.allclose(compute_terrain(flat, UTM_5M, ["hillshade"]), np.sin(np.radians(45)))
    # Facing the sun (north-west) at 45 degrees: the normal points at the sun.
    facing_sun = (100 + (east - north) / np.sqrt(2)).astype(np.float32)
    assert np.allclose(compute_terrain(facing_sun, UTM_5M, ["hillshade"]), 1.0, atol=1e-5)
    # Facing away (south-east), steeper than the sun is high: in shadow.
    away = (100 - 1.7 * (east - north) / np.sqrt(2)).astype(np.float32)
    assert np.allclose(compute_terrain(away, UTM_5M, ["hillshade"]), 0.0)


def test_curvature_of_a_bowl_and_a_dome():
    east, north = ground_xy(UTM_5M)
    bowl = 0.01 * ((east - east.mean()) ** 2 + (north - north.mean()) ** 2)
    for dem, expected in ((bowl, -0.04), (-bowl, 0.04)):
        curvature = compute_terrain(dem.astype(np.float64), UTM_5M, ["curvature"])[0]
        np.testing.assert_allclose(curvature[1:-1, 1:-1], expected, rtol=1e-4)


def test_relative_elevation_of_a_bump_is_its_height_above_the_window():
    east, north = ground_xy(UTM_5M)
    bump = 20.0 * np.exp(-((east - east[50, 60]) ** 2 + (north - north[50, 60]) ** 2) / 30.0**2)
    dem = (800.0 + 0.2 * (east - east.mean()) + bump).astype(np.float32)
    relative = compute_terrain(dem, UTM_5M, ["relative_elevation"], relative_radius_m=40.0)[0]
    assert relative[50, 60] > 10
    assert relative[50, 60] == relative.max()
    # 40 m at 5 m pixels: a 17 x 17 window.
    window = dem[42:59, 52:69].astype(np.float64)
    assert relative[50, 60] == pytest.approx(dem[50, 60] - window.mean(), abs=1e-3)
    assert abs(relative[90, 10]) < 0.01  # far from the bump: the plane, 0


def test_nan_holes_never_make_cliffs():
    east, north = ground_xy(UTM_1M)
    dem = (2000.0 + 0.5 * (east - east.mean()) - 0.3 * (north - north.mean())).astype(np.float32)
    hole = np.zeros(dem.shape, bool)
    hole[40:46, 50:55] = True
    hole[80, 20] = True
    hole[0:3, 100:104] = True  # at the DEM's edge
    dem[hole] = np.nan
    result = compute_terrain(dem, UTM_1M, ALL, relative_radius_m=6.0)
    stencil = binary_dilation(hole, np.ones((3, 3), bool))
    for name in ("slope", "aspect_sin", "aspect_cos", "hillshade"):
        np.testing.assert_array_equal(np.isnan(band(result, name)), stencil, err_msg=name)
    curvature = np.isnan(band(result, "curvature"))
    assert (curvature >= hole).all() and (curvature <= stencil).all()
    np.testing.assert_array_equal(np.isnan(band(result, "relative_elevation")), hole)
    # Next to the holes the plane's slope is unchanged (to the 1e-4 m steps of float32 near
    # 2000 m): no zero-filled cliffs, which would be 89.9 degrees.
    slope = band(result, "slope")[~stencil]
    np.testing.assert_allclose(slope, np.degrees(np.arctan(np.hypot(0.5, 0.3))), atol=0.01)
    assert np.abs(band(result, "curvature")[~stencil]).max() < 1e-3
    # A lopsided window near a hole shifts the mean by less than slope x radius, not ~2000 m.
    assert np.nanmax(np.abs(band(result, "relative_elevation"))) < 0.6 * 6


def rough_terrain(grid: Grid) -> np.ndarray:
    """Hills, a valley and noise, with a NaN hole straddling a tile seam."""
    east, north = ground_xy(grid)
    u, v = (east - east.min()) / np.ptp(east), (north - north.min()) / np.ptp(north)
    rng = np.random.default_rng(7)
    dem = (
        900.0
        + 60 * np.sin(7 * u) * np.cos(5 * v)
        + 25 * np.exp(-((u - 0.3) ** 2 + (v - 0.6) ** 2) / 0.01)
        + rng.normal(0, 0.5, u.shape)
    ).astype(np.float32)
    dem[35:40, 70:78] = np.nan
    return dem


def seam_distance(shape: tuple[int, int], tile: int) -> np.ndarray:
    """Each pixel's distance in pixels to the nearest seam between tiles (the DEM's sides are none)."""

    def along(size: int) -> np.ndarray:
        index = np.arange(size)
        seams = np.arange(tile, size, tile)  # first index of every tile but the first
        return np.min([np.where(index < s, s - 1 - index, index - s) for s in seams], axis=0)

    return np.minimum(along(shape[0])[:, None], along(shape[1])[None, :])


@pytest.mark.parametrize(
    "grid, radius",
    [
        (UTM_1M, 6.0),
        # At 60 N the window's half-width straddles 6.5 px: it is 6 px on some rows, 7 on others.
        (Grid("EPSG:4326", from_origin(105.0, 60.3, 1e-4, 1e-4), 100, 130), None),
    ],
    ids=["utm-1m", "wgs84-60N"],
)
def test_tiles_with_halo_equal_one_pass_and_without_differ_at_seams(grid, radius):
    if radius is None:
        dx, _ = ground_spacing(grid)
        radius = 6.5 * abs(dx[50])
        widths = {TERRAIN_BANDS["relative_elevation"].halo(abs(d), radius) for d in dx}
        assert widths == {6, 7}
    dem = rough_terrain(grid)
    tile = 37  # divides neither 100 nor 130
    halo = required_halo(ALL, grid, relative_radius_m=radius)
    assert halo in (6, 7)
    whole = compute_terrain(dem, grid, ALL, relative_radius_m=radius)
    tiled = compute_terrain_tiled(dem, grid, ALL, tile, relative_radius_m=radius)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))

    # The control: no halo changes every band, and only near the seams (within its own halo).
    seams = compute_terrain_tiled(dem, grid, ALL, tile, halo=0, relative_radius_m=radius)
    distance = seam_distance(dem.shape, tile)
    for i, name in enumerate(ALL):
        differs = ~np.isclose(seams[i], whole[i], rtol=0, atol=1e-3, equal_nan=True)
        reach = halo if name == "relative_elevation" else 1
        assert differs.any(), name
        assert distance[differs].max() < reach, name


def test_tiled_with_plain_pixel_size_equals_one_pass():
    dem = rough_terrain(UTM_5M)
    whole = compute_terrain(dem, 5.0, ALL, relative_radius_m=30.0)
    tiled = compute_terrain_tiled(dem, 5.0, ALL, 37, relative_radius_m=30.0)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4)


@pytest.mark.parametrize("tile", [23, 37, 64])
def test_tiles_equal_one_pass_bit_for_bit_on_a_projected_grid(tile):
    """What keeps a mapper's output the same bytes for any unit size: no band's value depends
    on where its window starts (relative elevation sums in fixed point: a running float sum
    drifts with its start for elevations of full float64 precision, such as a DEM in feet).
    """
    dem = rough_terrain(UTM_1M) + 1800.0
    kwargs = {"relative_radius_m": 9.0, "z_factor": 0.3048}
    whole = compute_terrain(dem, UTM_1M, ALL, **kwargs)
    tiled = compute_terrain_tiled(dem, UTM_1M, ALL, tile, **kwargs)
    np.testing.assert_array_equal(tiled, whole)


def test_units_of_grid_and_elevation():
    # The same terrain as a metre DEM on a 1 m UTM grid and as a feet DEM on a foot grid.
    feet = Grid("EPSG:2227", from_origin(6_000_000, 2_000_000, 1.0, 1.0), 40, 50)
    east, north = ground_xy(feet)
    metres = 300 + 0.4 * (east - east.mean()) + 0.01 * (north - north.mean()) ** 2
    in_feet = compute_terrain(metres / 0.3048, feet, ["slope"], z_factor=0.3048)
    in_metres = compute_terrain(metres, feet, ["slope"])
    np.testing.assert_allclose(in_feet, in_metres, atol=1e-4)
    expected = np.degrees(np.arctan(np.hypot(0.4, 0.02 * (north - north.mean()))))
    np.testing.assert_allclose(in_metres[0][1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-3)


def test_geographic_spacing_shrinks_east_west_with_latitude():
    dx, dy = ground_spacing(GEO_27N)
    # One 1e-4 degree step: ~9.9 m along the parallel at 27 N, ~11.1 m along the meridian.
    assert dx[0] == pytest.approx(9.92, abs=0.01)
    assert dy[0] == pytest.approx(-11.08, abs=0.01)
    assert (np.diff(dx) > 0).all()  # rows run south: towards the equator, wider
    np.testing.assert_allclose(ground_spacing(UTM_5M), [[5.0] * 100, [-5.0] * 100])
    np.testing.assert_allclose(ground_spacing(FEET)[0], 3 * US_FOOT)


def test_halo_per_band():
    assert required_halo(["slope", "hillshade"], 5.0) == 1
    assert required_halo(["curvature", "relative_elevation"], 5.0, relative_radius_m=50) == 10
    assert required_halo(["relative_elevation"], 30.0, relative_radius_m=10) == 1
    assert required_halo([], 5.0) == 0
    # A geographic grid: the narrowest pixel (~9.9 m at 27 N) sets it.
    assert required_halo(["relative_elevation"], GEO_27N, relative_radius_m=100) == 10


def test_band_names_are_checked_and_keep_their_order():
    with pytest.raises(InputError, match=r"'sloap'.*known: slope, aspect_sin"):
        required_halo(["sloap"], 5.0)
    with pytest.raises(InputError, match="more than once"):
        compute_terrain(np.zeros((4, 4)), 1.0, ["slope", "slope"])
    east, _ = ground_xy(UTM_1M)
    dem = east - east.mean()
    pair = compute_terrain(dem, UTM_1M, ["hillshade", "slope"])
    assert pair.shape == (2, *dem.shape) and pair.dtype == np.float32
    np.testing.assert_allclose(pair[1], 45.0, atol=1e-4)
