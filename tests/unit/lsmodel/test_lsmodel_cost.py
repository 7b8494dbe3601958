"""Model cost figures and the ``lsmap models`` table."""

from __future__ import annotations

import pytest

from lsmodel.cost import model_cost, time_forward
from lsmodel.models import ARCHITECTURES, build_model
from pipelines.cli import main


def test_flops_of_a_tiny_unet_match_a_hand_count():
    # depth 1, width 1, one band, 2x2 tile; FLOPs = 2 * multiply-adds
    level0 = 2 * (2 * 9 * 1 * 1 * 4)  # two 3x3 convs 1->1 on 2x2
    level1 = 2 * 9 * 1 * 2 * 1 + 2 * 9 * 2 * 2 * 1  # 1->2 and 2->2 on 1x1
    up = 2 * 1 * 4 * 2 * 1  # 2x2 transposed conv 2->1 from one pixel
    decoder = 2 * 9 * 2 * 1 * 4 + 2 * 9 * 1 * 1 * 4  # 2->1 and 1->1 on 2x2
    head = 2 * 1 * 4
    cost = model_cost("unet", tile=2, in_channels=1, base_width=1, depth=1)
    assert cost["gflops"] * 1e9 == pytest.approx(level0 + level1 + up + decoder + head)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_cost_counts_parameters_and_scales_with_tile_area(arch):
    cost = model_cost(arch, tile=64, base_width=4, depth=3)
    model = build_model(arch, base_width=4, depth=3)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    # Convolutions scale with the pixel count; the channel-attention MLP (on pooled vectors) not.
    assert model_cost(arch, tile=128, base_width=4, depth=3)["gflops"] == pytest.approx(
        4 * cost["gflops"], rel=1e-3
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_time_forward_reports_milliseconds_per_tile(precision):
    model = build_model("unet", base_width=4, depth=3)
    ms = time_forward(model, tile=32, batch=2, repeats=2, precision=precision)
    assert 0 < ms < 10_000
    with pytest.raises(ValueError, match="repeats"):
        time_forward(model, tile=32, batch=2, repeats=0)
    with pytest.raises(ValueError, match="precision"):
        time_forward(model, tile=32, batch=2, precision="fp16")


def test_models_command_lists_every_architecture(capsys):
    assert main(["models", "--base-width", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["arch", "params", "GFLOPs/tile"]
    assert [line.split()[0] for line in lines[1:]] == list(ARCHITECTURES)
    unet = model_cost("unet", base_width=4)
    assert lines[1].split()[1:] == [f"{unet['params']:,}", f"{unet['gflops']:.3f}"]


def test_models_command_times_on_request(capsys):
    assert (
        main(
            [
                "models",
                "--base-width",
                "4",
                "--depth",
                "3",
                "--tile",
                "32",
                "--batch",
                "2",
                "--time",
                "--precision",
                "bf16",
            ]
        )
        == 0
    )
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == len(ARCHITECTURES)
    assert all(float(row.split()[3]) > 0 for row in rows)


def test_models_command_rejects_a_tile_the_model_cannot_take(capsys):
    assert main(["models", "--tile", "100"]) == 1
    assert "--tile 100" in capsys.readouterr().err
