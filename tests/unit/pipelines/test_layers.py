"""Input layers: kinds, their records, reading them onto a grid, and the refusals users rely on."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import yaml

from pipelines.errors import InputError
from pipelines.inputs import LayerInput, bind_inputs, describe_layers, read_layers_file
from pipelines.layers import LayerStack, stack_for_bundle, stack_from_bands
from pipelines.mapping.plan import MapPlan, TileLayout
from pipelines.raster import Grid, open_mosaic, read_window
from pipelines.synthetic.writers import write_region
from pipelines.vectors import read_features

sys.path.insert(0, str(Path(__file__).parents[2]))
from layer_rasters import LAYERS, LITHOLOGY_CODES, write_faults, write_layers  # noqa: E402

SIZE = 160


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("layers_region")
    write_region(path, size=SIZE, seed=3)
    write_layers(path)
    return path


def _stack(**lithology) -> LayerStack:
    records = [{k: v for k, v in layer.items() if k != "uri"} for layer in LAYERS]
    records[-1] |= {"categories": list(LITHOLOGY_CODES), **lithology}
    return LayerStack.from_record(records)


def _bind(region: Path, stack: LayerStack, **changes):
    inputs = read_layers_file(region / "layers.yaml").inputs | changes
    with pytest.warns(UserWarning, match="lithology.*covers"):  # its nodata corner is outside
        return bind_inputs(stack, inputs, lambda grid: grid)


def test_a_layer_stack_names_its_bands_in_order_and_records_itself():
    stack = _stack()
    assert stack.names == (
        *("red", "green", "blue", "nir"),
        *("elevation", "slope", "ndvi", "faults"),
        *(f"lithology={code}" for code in LITHOLOGY_CODES),
    )
    assert LayerStack.from_record(stack.record()) == stack
    assert len(_stack(unseen="other")) == len(stack) + 1


def test_band_list_bundles_read_as_image_and_dem_layers():
    class Bundle:  # what a bundle written before layers records
        bands = ["red", "green", "blue", "elevation", "slope"]
        terrain = {"relative_radius_m": 50.0}
        layers: list = []

    stack = stack_for_bundle(Bundle())
    assert [layer.name for layer in stack.layers] == ["image", "dem"]
    assert stack.names == tuple(Bundle.bands)


def test_a_categorical_layer_in_another_crs_keeps_only_its_codes(region):
    """Warped by nearest neighbour: only the file's codes or nodata, never a blend of codes; its
    one-hot bands sum to 1 where it has data and are NaN (all of them) where it has none."""
    stack = _stack()
    bound = _bind(region, stack)
    grid = bound.grid
    source = bound.inputs["lithology"]
    assert open_mosaic(source.uri).rio.crs != grid.crs
    codes = read_window(open_mosaic(source.uri), grid, resampling=source.layer.resampling)[0]
    assert set(np.unique(codes[np.isfinite(codes)])) <= set(LITHOLOGY_CODES)
    assert np.isnan(codes).any()  # the nodata corner

    values = bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid)
    onehot = values[-len(LITHOLOGY_CODES) :]
    valid = np.isfinite(codes)
    np.testing.assert_array_equal(onehot[:, valid].sum(axis=0), 1.0)
    assert np.isnan(onehot[:, ~valid]).all()


@pytest.mark.parametrize("chunk", [48, 70])
def test_derived_and_one_hot_bands_per_unit_equal_the_whole_region(region, chunk):
    stack = _stack()
    bound = _bind(region, stack)
    grid = bound.grid
    whole = bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid)
    plan = MapPlan(grid, chunk, TileLayout(32, 16))
    pieced = np.full_like(whole, np.nan)
    for index in range(len(plan)):
        unit = plan.unit(index)
        top, left, height, width = unit.chunk
        values = bound.inputs.read(plan.read_grid(unit), unit.read, grid)
        pieced[:, top : top + height, left : left + width] = values[
            (slice(None), *unit.chunk_in_read)
        ]
    for name in ("red", "nir", "ndvi", "faults", *(f"lithology={c}" for c in LITHOLOGY_CODES)):
        band = stack.names.index(name)
        np.testing.assert_array_equal(pieced[band], whole[band], err_msg=name)
    ndvi = whole[stack.names.index("ndvi")]
    red, nir = whole[stack.names.index("red")], whole[stack.names.index("nir")]
    np.testing.assert_allclose(ndvi, (nir - red) / (nir + red), rtol=1e-5)
    assert np.nanmax(whole[:4]) < 1.1  # uint16 DNs times the declared scale 1e-4


def test_16_bit_imagery_is_read_only_when_declared(region):
    rgb_layers = stack_from_bands(["red", "green", "blue", "nir"][:3])
    with pytest.raises(
        InputError,
        match=r"image16\.tif \(layer 'image' \(imagery\)\): the image is uint16, but the layer declares uint8",
    ):
        bind_inputs(rgb_layers, {"image": str(region / "image16.tif")}, lambda grid: grid)


def test_bands_are_picked_by_name_or_index_and_a_missing_one_is_named(region):
    image = {k: v for k, v in LAYERS[0].items() if k != "uri"}
    by_name = LayerStack.from_record([image | {"bands": ["nir", "red"], "pick": ["nir", "red"]}])
    by_index = LayerStack.from_record([image | {"bands": ["nir", "red"], "pick": [4, 1]}])
    given = {"image": str(region / "image16.tif")}
    grid_of = lambda grid: grid  # noqa: E731
    a, b = bind_inputs(by_name, given, grid_of), bind_inputs(by_index, given, grid_of)
    window = (0, 0, 16, 16)
    small = a.grid.window(*window)
    np.testing.assert_array_equal(
        a.inputs.read(small, window, a.grid), b.inputs.read(small, window, b.grid)
    )
    missing = LayerStack.from_record([image | {"bands": ["swir"], "pick": [5]}])
    with pytest.raises(
        InputError,
        match=r"image16\.tif \(layer 'image'.*band index 5 does not exist; the file has 4",
    ):
        bind_inputs(missing, given, grid_of)
    unnamed = LayerStack.from_record([image | {"bands": ["swir"], "pick": ["swir16"]}])
    with pytest.raises(
        InputError,
        match=r"no band named 'swir16'; the file's bands are \['red', 'green', 'blue', 'nir'\]",
    ):
        bind_inputs(unnamed, given, grid_of)


def test_an_unseen_category_is_an_error_or_other_as_the_user_chose(region):
    known = _stack(categories=list(LITHOLOGY_CODES[:2]))
    bound = _bind(region, known)
    grid = bound.grid
    with pytest.raises(
        InputError,
        match=r"lithology\.tif \(layer 'lithology'.*code\(s\) \[11\] were not in the model's training data",
    ):
        bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid)
    other = _stack(categories=list(LITHOLOGY_CODES[:2]), unseen="other")
    bound = _bind(region, other)
    values = bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid)
    assert other.names[-1] == "lithology=other"
    assert np.nansum(values[-1]) > 0  # code 11 went to "other"
    valid = np.isfinite(values[-1])
    np.testing.assert_array_equal(values[-3:, valid].sum(axis=0), 1.0)


def test_layers_files_name_and_resolve_their_layers(region, tmp_path):
    layers = read_layers_file(region / "layers.yaml")
    assert layers.inputs["image"].uri == str(region / "image16.tif")  # relative to the file
    assert [d["name"] for d in layers.definitions] == [
        "image",
        "dem",
        "ndvi",
        "faults",
        "lithology",
    ]
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump({"layers": [LAYERS[1], LAYERS[1]]}))
    with pytest.raises(InputError, match=r"twice\.yaml: two layers are named 'dem'"):
        read_layers_file(twice)
    with pytest.raises(InputError, match=r"two layers are named 'dem'"):
        LayerStack.from_record([{"name": "dem", "kind": "elevation"}] * 2)
    with pytest.raises(
        InputError, match=r"layer 'ndvi' \(ndvi\): needs an imagery layer named 'ms'"
    ):
        LayerStack.from_record([{"name": "ndvi", "kind": "ndvi", "of": "ms"}])
    with pytest.raises(InputError, match=r"layer 'dem' \(elevation\): unknown option\(s\) slope"):
        LayerStack.from_record([{"name": "dem", "kind": "elevation", "slope": True}])

    # What `lsmap models --describe` prints is a layers file: with URIs filled in, it maps.
    described = yaml.safe_load(describe_layers(_stack()))
    for layer in described["layers"]:
        if "uri" in layer:
            layer["uri"] = Path(
                LAYERS[[x["name"] for x in LAYERS].index(layer["name"])]["uri"]
            ).name
    path = region / "described.yaml"
    path.write_text(yaml.safe_dump(described))
    again = read_layers_file(path)
    assert LayerStack.from_record(list(again.definitions)) == _stack()
    assert set(again.inputs) == {"image", "dem", "faults", "lithology"}


def test_a_layer_outside_the_area_is_refused_naming_it(region, tmp_path):
    far = tmp_path / "far_lithology.tif"
    with rasterio.open(region / "lithology.tif") as src:
        profile, data = src.profile, src.read()
    profile["transform"] = profile["transform"] * rasterio.Affine.translation(0, -1e5)
    with rasterio.open(far, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(
        InputError,
        match=r"far_lithology\.tif \(layer 'lithology' \(categorical\)\) does not overlap",
    ):
        bind_inputs(
            _stack(),
            read_layers_file(region / "layers.yaml").inputs | {"lithology": str(far)},
            lambda g: g,
        )


def test_a_distance_layer_is_metres_to_the_nearest_feature_capped(region):
    """Fault lines in degrees, read onto the metre grid: each pixel's value is its distance to
    the nearest line (to within a pixel: lines are rasterised), never above max_distance."""
    import shapely

    bound = _bind(region, _stack())
    grid = bound.grid
    distance = bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid)[
        _stack().names.index("faults")
    ]
    faults = read_features(str(region / "faults.gpkg")).to_crs(grid.crs).geometries
    rows, cols = np.mgrid[0 : grid.height : 7, 0 : grid.width : 7]
    xs = grid.transform.c + (cols + 0.5) * grid.transform.a
    ys = grid.transform.f + (rows + 0.5) * grid.transform.e
    exact = shapely.distance(shapely.points(xs, ys)[..., None], faults).min(axis=-1)
    sampled = distance[rows, cols]
    assert sampled.max() == 40.0 and sampled.min() == 0.0
    np.testing.assert_allclose(sampled, np.minimum(exact, 40.0), atol=1.5)
    assert read_features(str(region / "faults.gpkg")).crs.to_epsg() == 4326


def test_vector_files_without_crs_or_near_features_are_refused_naming_them(region, tmp_path):
    import geopandas
    from shapely import LineString

    stack = _stack()
    inputs = read_layers_file(region / "layers.yaml").inputs
    far = write_faults(region / "rgb.tif", tmp_path / "far.gpkg", shift_m=5000.0)
    with pytest.raises(
        InputError, match=r"far\.gpkg \(layer 'faults' \(distance\)\): no feature lies within"
    ):  # refused before the lithology's partial coverage is reported
        bind_inputs(stack, inputs | {"faults": LayerInput(str(far))}, lambda grid: grid)
    bare = tmp_path / "bare.gpkg"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        geopandas.GeoDataFrame(geometry=[LineString([(0, 0), (1, 1)])]).to_file(bare)
    with pytest.raises(
        InputError, match=r"bare\.gpkg \(layer 'faults' \(distance\)\): the vector file has no CRS"
    ):
        bind_inputs(stack, inputs | {"faults": LayerInput(str(bare))}, lambda grid: grid)
    with pytest.raises(InputError, match=r"faults.*needs `max_distance`"):
        LayerStack.from_record([{"name": "faults", "kind": "distance"}])


def test_grid_is_the_first_layers(region):
    """Terrain-only models map on the DEM's grid, resampled as the model asks."""
    stack = stack_from_bands(["elevation", "slope"])
    bound = bind_inputs(stack, {"dem": str(region / "dem.tif")}, lambda grid: grid)
    assert bound.grid == Grid.from_dataarray(open_mosaic(str(region / "dem.tif")))


def _split_bands(region: Path, folder: Path) -> list[Path]:
    """image16.tif as one single-band file per band (Sentinel-2 style)."""
    folder.mkdir(exist_ok=True)
    with rasterio.open(region / "image16.tif") as src:
        profile, data = src.profile, src.read()
    paths = []
    for index, name in enumerate(("red", "green", "blue", "nir")):
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **{**profile, "count": 1}) as dst:
            dst.write(data[index : index + 1])
        paths.append(path)
    return paths


def test_bands_in_separate_files_or_stac_assets_read_as_one_image(region, tmp_path):
    stack = _stack()
    whole = _bind(region, stack)
    grid = whole.grid
    expected = whole.inputs.read(grid, (0, 0, grid.height, grid.width), grid)

    paths = _split_bands(region, tmp_path / "bands")
    layers = yaml.safe_load((region / "layers.yaml").read_text())
    layers["layers"][0]["uri"] = [str(path) for path in paths]
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(layers))
    split = read_layers_file(tmp_path / "split.yaml").inputs
    for name in ("dem", "faults", "lithology"):
        split[name] = read_layers_file(region / "layers.yaml").inputs[name]
    with pytest.warns(UserWarning, match="lithology.*covers"):
        bound = bind_inputs(stack, split, lambda g: g)
    np.testing.assert_array_equal(
        bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid), expected
    )

    item = pystac.Item("scene", None, None, datetime.datetime(2024, 7, 15), {})
    for name, path in zip(("red", "green", "blue", "nir"), paths, strict=True):
        item.add_asset(name, pystac.Asset(str(path), media_type=pystac.MediaType.GEOTIFF))
    (tmp_path / "item.json").write_text(json.dumps(item.to_dict()))
    from_item = dict(split) | {
        "image": LayerInput(str(tmp_path / "item.json"), asset=("red", "green", "blue", "nir"))
    }
    with pytest.warns(UserWarning, match="lithology.*covers"):
        bound = bind_inputs(stack, from_item, lambda g: g)
    np.testing.assert_array_equal(
        bound.inputs.read(grid, (0, 0, grid.height, grid.width), grid), expected
    )


def test_a_scene_classification_mask_makes_its_codes_nodata(region, tmp_path):
    """An SCL-style mask at 20 m in the same CRS: pixels whose class is listed become nodata in
    every band; the others keep their values."""
    with rasterio.open(region / "image16.tif") as src:
        crs, transform, height, width = src.crs, src.transform, src.height, src.width
    coarse = rasterio.Affine(transform.a * 20, 0, transform.c, 0, transform.e * 20, transform.f)
    codes = np.full((-(-height // 20), -(-width // 20)), 4, np.uint8)  # vegetation
    codes[:2, :3] = 9  # cloud, high probability
    profile = {"driver": "GTiff", "count": 1, "dtype": "uint8", "crs": crs, "transform": coarse}
    with rasterio.open(
        tmp_path / "scl.tif", "w", height=codes.shape[0], width=codes.shape[1], **profile
    ) as dst:
        dst.write(codes[None])
    layers = yaml.safe_load((region / "layers.yaml").read_text())
    layers["layers"].append(
        {"name": "scl", "kind": "mask", "uri": str(tmp_path / "scl.tif"), "codes": [8, 9, 10]}
    )
    for layer in layers["layers"]:
        if "uri" in layer and not Path(layer["uri"]).is_absolute():
            layer["uri"] = str(region / layer["uri"])
    (tmp_path / "masked.yaml").write_text(yaml.safe_dump(layers))
    parsed = read_layers_file(tmp_path / "masked.yaml")
    assert "scl" not in [d["name"] for d in parsed.definitions]  # a mask is no model input
    stack = _stack()
    plain = _bind(region, stack)
    masked = _bind(region, stack, scl=parsed.inputs["scl"])
    grid = plain.grid
    window = (0, 0, grid.height, grid.width)
    a, b = plain.inputs.read(grid, window, grid), masked.inputs.read(grid, window, grid)
    cloud = np.zeros((grid.height, grid.width), bool)
    cloud[:40, :60] = True
    assert np.isnan(b[:, cloud]).all()
    np.testing.assert_array_equal(a[:, ~cloud], b[:, ~cloud])
    with pytest.raises(InputError, match=r"a mask needs `codes`"):
        layers["layers"][-1].pop("codes")
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(layers))
        read_layers_file(tmp_path / "bad.yaml")
