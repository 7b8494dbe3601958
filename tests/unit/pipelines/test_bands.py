"""Band lists by name: parsing, named sets, clear refusals, and the layers they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.bands import BASE_BANDS, RGB_BANDS, parse_bands
from pipelines.errors import InputError
from pipelines.layers import LayerStack, stack_from_bands, terrain_params
from pipelines.terrain import DEFAULT_RELATIVE_RADIUS_M, TERRAIN_BANDS, compute_terrain
from pipelines.training.config import TrainConfig


def test_names_and_named_sets_parse_in_order():
    assert parse_bands("red,green,blue,elevation") == BASE_BANDS
    assert parse_bands("rgb") == RGB_BANDS
    assert parse_bands("rgbd, relative_elevation,slope") == (
        *BASE_BANDS,
        "relative_elevation",
        "slope",
    )
    assert parse_bands(["rgbd", "terrain"]) == (*BASE_BANDS, *TERRAIN_BANDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rgbd,slop", r"unknown band\(s\) slop in .*: bands are red, green, blue .* slope, aspect"),
        ("slope,rgbd", r"not a valid band list"),
        ("rgb,slope", r"not a valid band list"),
        ("red,green", r"not a valid band list"),
        ("rgbd,slope,terrain", r"slope named more than once"),
        ("", r"not a valid band list"),
    ],
)
def test_invalid_band_lists_are_refused_naming_the_valid_bands(text, message):
    with pytest.raises(InputError, match=message):
        parse_bands(text)


def test_terrain_only_band_lists_parse():
    assert parse_bands("elevation,slope") == ("elevation", "slope")
    assert parse_bands(["elevation", "terrain"]) == ("elevation", *TERRAIN_BANDS)
    stack = stack_from_bands(("elevation", "slope"))
    assert [layer.name for layer in stack.layers] == ["dem"] and stack.needs_dem


def test_terrain_parameters_are_recorded_only_with_terrain_bands():
    assert terrain_params(stack_from_bands(BASE_BANDS)) == {}
    assert stack_from_bands(RGB_BANDS).layers[0].halo(1.0) == 0
    stack = stack_from_bands((*BASE_BANDS, "relative_elevation"), {"relative_radius_m": 20.0})
    dem = stack["dem"]
    assert dem.terrain == ("relative_elevation",)
    assert terrain_params(stack)["relative_radius_m"] == 20.0
    assert dem.halo(2.0) == 10  # 20 m at 2 m per pixel
    assert stack_from_bands(stack.names, terrain_params(stack)) == stack
    # What a bundle records of its layers reads back as the same layers.
    assert LayerStack.from_record(stack.record()) == stack


def test_a_bundle_parameter_this_version_does_not_know_is_refused():
    with pytest.raises(InputError, match="terrain parameters sun_size are unknown"):
        stack_from_bands([*BASE_BANDS, "hillshade"], {"sun_size": 1.0})
    # Bundles from before terrain bands record nothing: the defaults.
    assert stack_from_bands(list(BASE_BANDS), {}) == stack_from_bands(BASE_BANDS)


def test_training_defaults_are_the_band_defaults():
    config = TrainConfig(data="chips", out="run")
    assert config.bands == BASE_BANDS
    assert config.relative_radius_m == DEFAULT_RELATIVE_RADIUS_M
    assert config.layer_stack() == stack_from_bands(BASE_BANDS)


def test_stack_puts_bands_in_order_with_terrain_from_the_dem():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (3, 24, 24)).astype(np.float32)
    dem = rng.uniform(1000, 1010, (24, 24)).astype(np.float32)
    layers = stack_from_bands((*BASE_BANDS, "hillshade", "slope"))
    encoded = {"image": rgb, "dem": layers["dem"].encode(dem[None], 2.0, "dem.tif")}
    stack = layers.encode(encoded, 2.0)
    assert stack.shape == (6, 24, 24) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[:3], rgb)
    np.testing.assert_array_equal(stack[3], dem)
    np.testing.assert_array_equal(stack[4:], compute_terrain(dem, 2.0, ["hillshade", "slope"]))
