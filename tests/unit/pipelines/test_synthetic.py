"""The synthetic world: determinism, seamless blocks, where scars and confusers lie, and writers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds
from scipy.ndimage import binary_dilation

from pipelines.chips import load_chip, scan_bijie
from pipelines.cli import main
from pipelines.synthetic import (
    CONFUSERS,
    DEM_NODATA,
    ORIGIN,
    Cover,
    World,
    write_chips,
    write_region,
)

X0, Y0 = ORIGIN


def test_render_is_deterministic_per_seed() -> None:
    rgb, mask = World(3).render(X0, Y0, 96, 80)
    again_rgb, again_mask = World(3).render(X0, Y0, 96, 80)
    assert rgb.shape == (3, 96, 80) and rgb.dtype == np.uint8
    assert mask.shape == (96, 80) and mask.dtype == np.uint8
    np.testing.assert_array_equal(rgb, again_rgb)
    np.testing.assert_array_equal(mask, again_mask)
    other, _ = World(4).render(X0, Y0, 96, 80)
    assert np.abs(other.astype(int) - rgb).mean() > 5


def test_blocks_join_seamlessly() -> None:
    world = World(5)
    # Blocks of uneven sizes, many of them cut along the edges of the 64 m cells that scars are
    # drawn from: shapes from neighbouring cells cross those edges.
    x0, y0 = 64.0 * 8300, 64.0 * 47175
    col_edges, row_edges = (0, 37, 64, 128, 200, 256, 384), (0, 64, 100, 192, 256)
    whole = world.scene(x0, y0, row_edges[-1], col_edges[-1], event=2)
    assert whole.mask.any() and np.isin(whole.cover, CONFUSERS).any()
    blocks = [
        [
            world.scene(x0 + c0, y0 - r0, r1 - r0, c1 - c0, event=2)
            for c0, c1 in itertools.pairwise(col_edges)
        ]
        for r0, r1 in itertools.pairwise(row_edges)
    ]
    for field in ("rgb", "mask", "cover", "elevation"):
        joined = np.concatenate(
            [np.concatenate([getattr(b, field) for b in row], axis=-1) for row in blocks], axis=-2
        )
        np.testing.assert_array_equal(joined, getattr(whole, field), err_msg=field)


def test_elevation_at_points_matches_rendered_grid() -> None:
    world = World(5)
    scene = world.scene(X0, Y0, 64, 48, pixel_size=2.0)
    xs = X0 + (np.arange(48) + 0.5) * 2.0
    ys = Y0 - (np.arange(64) + 0.5) * 2.0
    np.testing.assert_array_equal(world.elevation(xs[None, :], ys[:, None]), scene.elevation)
    assert scene.elevation.min() > 1300.0 and scene.elevation.max() < 2300.0


def test_scars_on_steep_slopes_confusers_on_gentle_ones() -> None:
    scene = World(7).scene(X0, Y0, 1024, 1024, pixel_size=2.0)
    scar = scene.cover == Cover.SCAR
    confuser = np.isin(scene.cover, CONFUSERS)
    assert scar.mean() > 0.005 and confuser.mean() > 0.005
    assert np.median(scene.slope[scar]) > 25.0
    assert np.mean(scene.slope[scar] < 10.0) < 0.05
    assert np.median(scene.slope[confuser]) < 6.0
    assert np.mean(scene.slope[confuser] > 20.0) < 0.05
    # Look-alikes are the same bare soil as scars: colour alone does not tell them apart.
    patch = scene.cover == Cover.BARE_PATCH
    scar_rgb, patch_rgb = scene.rgb[:, scar].mean(axis=1), scene.rgb[:, patch].mean(axis=1)
    assert np.abs(scar_rgb - patch_rgb).max() < 20.0


def test_scar_table_matches_the_mask() -> None:
    world = World(8)
    scene = world.scene(X0, Y0, 300, 300, event=3)
    scars = world.scars(X0, Y0 - 300.0, X0 + 300.0, Y0, event=3)
    assert scars.x.size > 3 and (scars.event <= 3).all()
    assert (scars.length >= 5.0).all() and (scars.length <= 60.0).all()
    cols = ((scars.x - X0) // 1).astype(int)
    rows = ((Y0 - scars.y) // 1).astype(int)
    assert scene.mask[rows, cols].all()


@pytest.fixture(scope="module")
def regions(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("regions")
    # 300 px in blocks of 128: uneven edge blocks.
    before = write_region(root / "event0", 300, seed=5, block=128, event=0)
    after = write_region(root / "event1", 300, seed=5, block=128, event=1)
    return before, after


def test_region_grids_and_crs(regions) -> None:
    files, _ = regions
    with rasterio.open(files.rgb) as rgb, rasterio.open(files.truth) as truth:
        assert rgb.crs.to_epsg() == 32648 and truth.crs.to_epsg() == 32648
        assert rgb.count == 3 and rgb.dtypes[0] == "uint8" and rgb.shape == (300, 300)
        assert tuple(rgb.transform)[:6] == (1.0, 0.0, X0, 0.0, -1.0, Y0)
        assert truth.transform == rgb.transform and truth.shape == rgb.shape
        assert rgb.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        rgb_bounds = rgb.bounds
    with rasterio.open(files.dem) as dem:
        assert dem.crs.to_epsg() == 4326 and dem.dtypes[0] == "float32"
        assert dem.nodata == DEM_NODATA
        assert dem.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        west, south, east, north = transform_bounds(32648, 4326, *rgb_bounds)
        assert dem.bounds.left < west and dem.bounds.right > east
        assert dem.bounds.bottom < south and dem.bounds.top > north
        # About 4-5 m pixels: coarser than the imagery.
        assert 3.5 < dem.res[0] * 98_900 < 5.0 and 4.0 < dem.res[1] * 110_800 < 5.0
        values = dem.read(1)
    assert (values != DEM_NODATA).all() and values.min() > 1300.0 and values.max() < 2300.0


def test_region_matches_the_world(regions) -> None:
    files, _ = regions
    world = World(5)
    rgb, mask = world.render(X0, Y0, 300, 300)
    with rasterio.open(files.rgb) as src:
        np.testing.assert_array_equal(src.read(), rgb)
    with rasterio.open(files.truth) as src:
        truth = src.read(1)
    np.testing.assert_array_equal(truth, mask)
    assert truth.any()
    # Truth sits on bare soil: reddish inside, green vegetation in a ring around it.
    ring = binary_dilation(truth, iterations=6) & ~binary_dilation(truth, iterations=2)
    inside = rgb[:, truth.astype(bool)].astype(float).mean(axis=1)
    around = rgb[:, ring].astype(float).mean(axis=1)
    assert inside[0] > inside[1] and around[1] > around[0]
    assert inside[0] - around[0] > 30.0
    # Each DEM pixel holds the world's elevation at its centre, wherever that falls in UTM.
    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    with rasterio.open(files.dem) as dem:
        values = dem.read(1)
        rows, cols = np.array([3, 40, 77]), np.array([5, 38, 70])
        xs, ys = to_utm.transform(*dem.xy(rows, cols))
    np.testing.assert_allclose(values[rows, cols], world.elevation(xs, ys), atol=1e-3)


def test_later_event_adds_scars(regions) -> None:
    before, after = regions
    with rasterio.open(before.truth) as a, rasterio.open(after.truth) as b:
        mask0, mask1 = a.read(1).astype(bool), b.read(1).astype(bool)
    assert (mask1 >= mask0).all() and mask1.sum() > mask0.sum()
    with rasterio.open(before.dem) as a, rasterio.open(after.dem) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_write_chips_loads_as_bijie(tmp_path: Path) -> None:
    write_chips(tmp_path / "a", 12, size=48, seed=2, landslide_fraction=0.25)
    records = scan_bijie(tmp_path / "a")
    assert len(records) == 12 and sum(r.landslide for r in records) == 3
    world = World(2)
    for r in records:
        stack, mask = load_chip(r, 48)
        assert mask.any() == r.landslide
        # The DEM is georeferenced on the image grid and holds the world's elevation.
        with rasterio.open(r.dem) as dem:
            assert dem.crs.to_epsg() == 32648
            x0, y0 = dem.transform.c, dem.transform.f
        rgb, truth = world.render(x0, y0, 48, 48)
        np.testing.assert_array_equal(stack[:3], rgb)
        if r.landslide:
            np.testing.assert_array_equal(mask, truth)
        scene = world.scene(x0, y0, 48, 48)
        np.testing.assert_array_equal(stack[3], scene.elevation)
    write_chips(tmp_path / "b", 12, size=48, seed=2, landslide_fraction=0.25)
    for r in records:
        image = Path(r.image)
        twin = tmp_path / "b" / image.relative_to(tmp_path / "a")
        assert twin.read_bytes() == image.read_bytes()


def test_cli_writes_chips_and_regions(tmp_path: Path, capsys) -> None:
    assert main(["synth", "chips", str(tmp_path / "chips"), "--count", "4", "--size", "32"]) == 0
    assert len(scan_bijie(tmp_path / "chips")) == 4
    code = main(["synth", "region", str(tmp_path / "region"), "--size", "64", "--event", "1"])
    assert code == 0
    written = {p.name for p in (tmp_path / "region").iterdir()}
    assert written == {
        "rgb.tif",
        "dem.tif",
        "truth.tif",
        "layers.yaml",
        "inventory.gpkg",
        "points.csv",
    }
    assert main(["synth", "chips", str(tmp_path / "bad"), "--count", "0"]) == 1
    assert "--count" in capsys.readouterr().err


def test_layer_options_leave_a_seeds_world_as_it_was() -> None:
    """Options only add: the same seed's scene is the same with them off, its lithology world's
    scars are a subset of the plain world's, and shrubs paint only where nothing else is."""
    plain = World(4).scene(X0 + 900, Y0 - 900, 256, 256)
    off = World(4, lithology_scars=False, shrub_lookalikes=False).scene(
        X0 + 900, Y0 - 900, 256, 256
    )
    for name in ("rgb", "mask", "elevation", "cover", "nir", "lithology"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(off, name))
    bounds = (X0, Y0 - 6000.0, X0 + 6000.0, Y0)
    all_scars = World(4).scars(*bounds, event=30)
    some = World(4, lithology_scars=True).scars(*bounds, event=30)
    assert 0 < some.x.size < all_scars.x.size
    assert set(zip(some.x, some.y, strict=True)) <= set(zip(all_scars.x, all_scars.y, strict=True))


def test_lithology_shifts_where_scars_occur() -> None:
    """With lithology_scars, steep limestone (code 2) keeps far fewer scars than steep shale
    (code 1); without it, both keep about as many."""
    bounds = (X0, Y0 - 12000.0, X0 + 12000.0, Y0)
    for lithology_scars, low, high in ((False, 0.6, 1.6), (True, 0.0, 0.35)):
        world = World(5, lithology_scars=lithology_scars)
        scars = world.scars(*bounds, event=30)
        codes = world.lithology(scars.x, scars.y)
        per_class = [np.count_nonzero(codes == code) for code in (1, 2)]
        assert per_class[0] > 20 and low < per_class[1] / per_class[0] < high, per_class


def test_near_infrared_tells_shrubs_from_scars_but_not_soil_look_alikes() -> None:
    world = World(6, shrub_lookalikes=True)
    scene = world.scene(X0 + 3000, Y0 - 3000, 1024, 1024)
    nir = scene.nir.astype(float)
    rgb = scene.rgb.astype(float)

    def mean(cover):
        where = scene.cover == cover
        return rgb[:, where].mean(axis=1), nir[where].mean()

    scar_rgb, scar_nir = mean(Cover.SCAR)
    shrub_rgb, shrub_nir = mean(Cover.SHRUB)
    patch_rgb, patch_nir = mean(Cover.BARE_PATCH)
    leaves = nir[scene.cover == Cover.VEGETATION].mean()
    assert leaves > 1.5 * scar_nir and shrub_nir > 1.5 * scar_nir  # leaves are bright
    assert abs(patch_nir - scar_nir) < 0.15 * scar_nir  # bare look-alikes are dark too
    assert np.abs(shrub_rgb - scar_rgb).max() < 20  # shrubs look like scars in RGB
    assert np.median(scene.slope[scene.cover == Cover.SHRUB]) > 20  # and lie where scars do


def test_chips_and_regions_write_the_layers_asked_for(tmp_path: Path) -> None:
    write_chips(tmp_path / "chips", 6, size=32, seed=1, nir=True, lithology=True, dtype="uint16")
    record = scan_bijie(tmp_path / "chips")[0]
    with rasterio.open(record.layers["ms"]) as ms:
        assert ms.count == 4 and ms.dtypes[0] == "uint16"
        values = ms.read()
    with rasterio.open(record.dem) as dem:
        x0, y0 = dem.transform.c, dem.transform.f
    scene = World(1, lithology_scars=True, shrub_lookalikes=True).scene(x0, y0, 32, 32)
    np.testing.assert_array_equal(values[3], scene.nir.astype(np.uint16) * 40)
    with rasterio.open(record.layers["lithology"]) as lithology:
        np.testing.assert_array_equal(lithology.read(1), scene.lithology)

    files = write_region(tmp_path / "region", 96, seed=1, nir=True, lithology=True)
    with rasterio.open(files.ms) as ms, rasterio.open(files.lithology) as lithology:
        assert ms.descriptions == ("red", "green", "blue", "nir") and ms.dtypes[0] == "uint8"
        assert set(np.unique(lithology.read())) <= {1, 2, 3, 4}
        assert lithology.res == (5.0, 5.0)
    assert "name: lithology" in files.layers.read_text()


def test_river_lines_follow_the_painted_rivers_into_chips_and_regions(tmp_path: Path) -> None:
    """The river network's lines run along the water the scene paints; a region's
    rivers.geojson (in degrees) read as a distance layer is near 0 there, and chips' rivers/
    folders hold the distance to them."""
    from pipelines.inputs import bind_inputs
    from pipelines.layers import DistanceLayer, ImageryLayer, LayerStack

    files = write_region(tmp_path / "region", 128, seed=1, rivers=True)
    assert "name: rivers" in files.layers.read_text()
    scene = World(1).scene(X0, Y0, 128, 128)
    water = scene.cover == Cover.RIVER
    assert water.mean() > 0.05
    stack = LayerStack((ImageryLayer(), DistanceLayer("rivers", max_distance=200.0)))
    given = {"image": str(files.rgb), "rivers": str(files.rivers)}
    bound = bind_inputs(stack, given, lambda grid: grid)
    distance = bound.inputs.read(bound.grid, (0, 0, 128, 128), bound.grid)[-1]
    assert np.median(distance[water]) < 6.0  # water is 5 m wide beside gravel
    assert np.median(distance[~binary_dilation(water, iterations=20)]) > 30.0

    write_chips(tmp_path / "chips", 4, size=32, seed=1, rivers=True)
    record = scan_bijie(tmp_path / "chips")[0]
    with rasterio.open(record.layers["rivers"]) as rivers:
        values, (x0, y0) = rivers.read(1), (rivers.transform.c, rivers.transform.f)
    reach = 2000.0
    lines = World(1).rivers(x0 - reach, y0 - 32 - reach, x0 + 32 + reach, y0 + reach)
    corners = shapely.points([x0 + 0.5, x0 + 31.5], [y0 - 0.5, y0 - 31.5])
    exact = np.min([shapely.distance(corners, shapely.LineString(line)) for line in lines], axis=0)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values[[0, -1], [0, -1]], np.minimum(exact, 1000.0), atol=1.5)


def test_every_region_comes_with_its_inventory_as_polygons_and_points(tmp_path: Path) -> None:
    """inventory.gpkg outlines the scars truth.tif holds (rasterised, the same pixels to within
    a fraction of a per cent); points.csv has a presence at each scar's head and as many
    absences clear of every scar, in longitude/latitude."""
    import geopandas
    import pandas
    from rasterio.features import rasterize

    files = write_region(tmp_path / "region", 256, seed=4, block=128)
    with rasterio.open(files.truth) as src:
        truth, transform = src.read(1), src.transform
    inventory = geopandas.read_file(files.inventory)
    assert inventory.crs.to_epsg() == 32648 and inventory.geometry.is_valid.all()
    assert list(inventory.columns) == ["id", "event", "date", "geometry"]
    assert inventory["id"].is_unique and (inventory["event"] == 0).all()
    drawn = rasterize(inventory.geometry, out_shape=truth.shape, transform=transform)
    assert np.count_nonzero(drawn != truth) <= 0.005 * np.count_nonzero(truth)

    points = pandas.read_csv(files.points)
    assert list(points.columns) == ["id", "lon", "lat", "landslide", "event", "date"]
    presence, absence = points[points.landslide == 1], points[points.landslide == 0]
    assert len(presence) == len(absence) > 0
    to_world = Transformer.from_crs("EPSG:4326", "EPSG:32648", always_xy=True)
    for subset, label in ((presence, 1), (absence, 0)):
        x, y = to_world.transform(subset.lon.to_numpy(), subset.lat.to_numpy())
        rows, cols = rasterio.transform.rowcol(transform, x, y)
        assert (truth[rows, cols] == label).mean() >= (0.9 if label else 1.0)
    # A later event's inventory of a larger area holds more scars, each dated by its event.
    later = geopandas.read_file(write_region(tmp_path / "later", 512, seed=4, event=1).inventory)
    assert set(inventory["id"]) < set(later["id"])
    assert set(later.loc[later.event == 1, "date"]) == {"2021-07-15"}
