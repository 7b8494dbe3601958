"""Bundles round-trip exactly and refuse anything broken, foreign or executable."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import torch

from lsmodel.bundle import FORMAT_VERSION, BundleError, ModelBundle
from lsmodel.models import build_model

BANDS = ["red", "green", "blue", "elevation"]


def _bundle(arch: str = "unetpp_sa_ca", **overrides) -> ModelBundle:
    torch.manual_seed(0)
    model = build_model(arch, base_width=4, depth=3)
    # Non-trivial running statistics, so that buffers must travel too.
    model.train()(torch.randn(4, 4, 32, 32) * 3 + 1)
    fields = {
        "bands": BANDS,
        "norm_mean": [90.0, 100.0, 80.0, 1500.0],
        "norm_std": [30.0, 28.0, 25.0, 400.0],
        "tile_size": 64,
        "resolution_m": 0.8,
        "threshold": 0.4,
        "metrics": {"miou": 0.81, "auc": 0.93},
        **overrides,
    }
    return ModelBundle.from_model(model, **fields)


def _rezip(data: bytes, **replace: bytes) -> bytes:
    """Copy of bundle ``data`` with members replaced (value None drops the member)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = replace.get(name, src.read(name))
            if content is not None:
                dst.writestr(name, content)
    return out.getvalue()


def _config(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("bundle.json"))


def test_round_trip_gives_identical_predictions():
    bundle = _bundle()
    data = bundle.to_bytes()
    restored = ModelBundle.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.sha256 == bundle.sha256
    for name in ("arch", "arch_kwargs", "bands", "norm_mean", "norm_std", "tile_size"):
        assert getattr(restored, name) == getattr(bundle, name)
    assert (restored.resolution_m, restored.threshold, restored.metrics) == (
        0.8,
        0.4,
        bundle.metrics,
    )
    x = torch.randn(2, 4, 64, 64)
    original, rebuilt = bundle.build(), restored.build()
    assert not rebuilt.training
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), original(x), rtol=0, atol=0)


def test_config_is_readable_json_with_versions():
    config = _config(_bundle().to_bytes())
    assert config["format_version"] == FORMAT_VERSION
    assert config["bands"] == BANDS
    assert "lsmap_version" in config
    assert "state_dict" not in config


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40])
def test_corrupt_bytes_are_refused(data):
    with pytest.raises(BundleError, match="not a model bundle"):
        ModelBundle.from_bytes(data)


def test_truncated_bundle_is_refused():
    data = _bundle().to_bytes()
    with pytest.raises(BundleError):
        ModelBundle.from_bytes(data[: len(data) // 2])


def test_missing_member_is_refused():
    with pytest.raises(BundleError, match="weights.pt"):
        ModelBundle.from_bytes(_rezip(_bundle().to_bytes(), **{"weights.pt": None}))


def test_unknown_format_version_is_refused():
    data = _bundle().to_bytes()
    config = {**_config(data), "format_version": FORMAT_VERSION + 1}
    with pytest.raises(BundleError, match="format_version"):
        ModelBundle.from_bytes(_rezip(data, **{"bundle.json": json.dumps(config).encode()}))


def test_weights_of_another_architecture_are_refused():
    data = _bundle("unetpp_sa_ca").to_bytes()
    with zipfile.ZipFile(io.BytesIO(_bundle("unet").to_bytes())) as archive:
        unet_weights = archive.read("weights.pt")
    with pytest.raises(BundleError, match="do not match"):
        ModelBundle.from_bytes(_rezip(data, **{"weights.pt": unet_weights}))


def test_band_count_must_match_input_channels():
    data = _bundle().to_bytes()
    config = {**_config(data), "bands": ["red", "green", "blue"], "norm_mean": [0.0] * 3}
    config["norm_std"] = [1.0] * 3
    with pytest.raises(BundleError, match="3 bands"):
        ModelBundle.from_bytes(_rezip(data, **{"bundle.json": json.dumps(config).encode()}))
    with pytest.raises(BundleError, match="bands"):
        _bundle(bands=["red", "green", "blue"])


def test_wrongly_typed_field_is_refused():
    data = _bundle().to_bytes()
    config = {**_config(data), "tile_size": "64"}
    with pytest.raises(BundleError, match="tile_size"):
        ModelBundle.from_bytes(_rezip(data, **{"bundle.json": json.dumps(config).encode()}))


class _Payload:
    """Unpickling this would create a directory: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickled_code_in_weights_is_never_run(tmp_path):
    marker = tmp_path / "code-ran"
    evil = io.BytesIO()
    torch.save({"head.weight": torch.zeros(1), "payload": _Payload(str(marker))}, evil)
    data = _rezip(_bundle().to_bytes(), **{"weights.pt": evil.getvalue()})
    with pytest.raises(BundleError, match="weights.pt"):
        ModelBundle.from_bytes(data)
    assert not marker.exists()


def test_unknown_architecture_settings_are_refused():
    data = _bundle().to_bytes()
    config = {**_config(data), "arch_kwargs": {"depth": "3", "base_width": 4}}
    with pytest.raises(BundleError, match="arch_kwargs"):
        ModelBundle.from_bytes(_rezip(data, **{"bundle.json": json.dumps(config).encode()}))


def test_damaged_compressed_weights_are_refused():
    data = bytearray(_bundle().to_bytes())
    start = data.index(b"weights.pt") + len(b"weights.pt")
    data[start + 100 : start + 140] = bytes(40)  # inside the deflated weights
    with pytest.raises(BundleError, match="not a model bundle"):
        ModelBundle.from_bytes(bytes(data))


def test_terrain_parameters_travel_with_the_bundle():
    model = build_model("unet", in_channels=6, base_width=4, depth=3)
    terrain = {"relative_radius_m": 30.0, "hillshade_azimuth": 315.0, "hillshade_altitude": 45.0}
    bundle = ModelBundle.from_model(
        model,
        bands=[*BANDS, "slope", "relative_elevation"],
        norm_mean=[0.0] * 6,
        norm_std=[1.0] * 6,
        tile_size=32,
        resolution_m=1.0,
        terrain=terrain,
    )
    restored = ModelBundle.from_bytes(bundle.to_bytes())
    assert restored.terrain == terrain
    assert restored.bands == [*BANDS, "slope", "relative_elevation"]
    assert _config(bundle.to_bytes())["terrain"] == terrain


def test_bundle_written_before_terrain_existed_reads_with_none():
    data = _bundle().to_bytes()
    config = _config(data)
    del config["terrain"]
    old = ModelBundle.from_bytes(_rezip(data, **{"bundle.json": json.dumps(config).encode()}))
    assert old.terrain == {}
    assert old.bands == BANDS


@pytest.mark.parametrize(
    ("terrain", "message"),
    [
        ({"relative_radius_m": "50"}, "must map names to finite numbers"),
        ({"relative_radius_m": float("nan")}, "must map names to finite numbers"),
        ({"relative_radius_m": True}, "must map names to finite numbers"),
    ],
)
def test_invalid_terrain_parameters_are_refused(terrain, message):
    with pytest.raises(BundleError, match=message):
        _bundle(terrain=terrain)


def test_terrain_that_is_not_a_mapping_is_refused():
    config = _config(_bundle().to_bytes())
    config["terrain"] = ["relative_radius_m", 50]
    bad = _rezip(_bundle().to_bytes(), **{"bundle.json": json.dumps(config).encode()})
    with pytest.raises(BundleError, match="'terrain' has the wrong type"):
        ModelBundle.from_bytes(bad)


def test_a_band_named_twice_is_refused():
    with pytest.raises(BundleError, match="name a band more than once"):
        _bundle(bands=["red", "green", "red", "elevation"])
