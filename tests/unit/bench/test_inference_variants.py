"""bench/inference_variants.py on CPU: every GPU variant runs and computes what fp32 computes."""

from __future__ import annotations

import math

import pytest
import torch
from bench_scripts import bench_script

from lsmodel.models import build_model


@pytest.fixture(scope="module")
def variants():
    with bench_script("inference_variants") as module:
        yield module


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unetpp_ca", 4, base_width=4, depth=2, dropout=0.0)


@pytest.mark.parametrize(
    "variant", ["fp32", "channels_last", "bf16", "bf16_channels_last", "compile"]
)
def test_each_variant_computes_the_fp32_probabilities(variants, variant):
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    reference, _ = variants.prepare(_tiny_model(), "fp32", "cpu")
    # aot_eager traces the model as inductor would, without compiling C++ on the test machine.
    forward, _ = variants.prepare(_tiny_model(), variant, "cpu", compile_backend="aot_eager")

    expected = torch.sigmoid(reference(x))
    got = torch.sigmoid(forward(x))
    assert got.shape == expected.shape == (2, 1, 32, 32)
    tolerance = 2e-2 if "bf16" in variant or variant == "compile" else 1e-5
    assert torch.allclose(got, expected, atol=tolerance)


def test_measure_times_a_variant_per_tile(variants):
    result = variants.measure(
        _tiny_model(),
        "bf16_channels_last",
        device="cpu",
        tile=32,
        batch=2,
        repeats=2,
        warmup=1,
    )
    assert result.variant == "bf16_channels_last"
    assert math.isfinite(result.ms_per_tile) and result.ms_per_tile > 0
    assert result.tiles_per_s == pytest.approx(1000 / result.ms_per_tile)


def test_an_unknown_variant_is_refused(variants):
    with pytest.raises(ValueError, match="unknown variant 'fp16'"):
        variants.prepare(_tiny_model(), "fp16", "cpu")
