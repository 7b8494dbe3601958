"""Losses equal their formulas on values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lsmodel.losses import WeightedCELoss, build_loss

LN2 = math.log(2)
# Two pixels: p = sigmoid(0) = 0.5 on a landslide pixel, p = sigmoid(ln 3) = 0.75 on background.
LOGITS = torch.tensor([0.0, math.log(3)]).view(1, 1, 1, 2)
TARGET = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)


def _value(spec: str, **kwargs) -> float:
    return build_loss(spec, **kwargs)(LOGITS, TARGET).item()


def test_bce():
    # (-ln 0.5 - ln 0.25) / 2
    assert _value("bce") == pytest.approx(1.5 * LN2)


def test_focal():
    # landslide: -0.25 * 0.5^2 * ln 0.5 = 0.0625 ln 2; background: -0.75 * 0.75^2 * ln 0.25
    expected = (0.0625 * LN2 + 0.75 * 0.5625 * 2 * LN2) / 2
    assert _value("focal", alpha=0.25, gamma=2.0) == pytest.approx(expected)
    # Without class weighting and focusing it is BCE.
    assert _value("focal", alpha=None, gamma=0.0) == pytest.approx(1.5 * LN2)


def test_soft_dice():
    # sum(p y) = 0.5, sum(p) = 1.25, sum(y) = 1
    assert _value("dice", smooth=0.0) == pytest.approx(1 - 1.0 / 2.25)
    assert _value("dice", smooth=1.0) == pytest.approx(1 - 2.0 / 3.25)


def test_weighted_cross_entropy():
    # landslide: 3 * ln 2; background: 1 * ln 4
    assert _value("wce", class_weights=(1.0, 3.0)) == pytest.approx(2.5 * LN2)


def test_wce_weights_from_positive_fraction_balance_the_classes():
    loss = WeightedCELoss.from_positive_fraction(0.25)
    assert loss.class_weights == pytest.approx((2 / 3, 2.0))
    assert build_loss("wce", positive_fraction=0.25).class_weights == loss.class_weights
    with pytest.raises(ValueError, match="positive_fraction"):
        WeightedCELoss.from_positive_fraction(0.0)


def test_wce_with_equal_weights_is_bce_and_sums_add():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8) * 3
    target = (torch.rand(2, 1, 8, 8) > 0.7).float()
    bce = build_loss("bce")(logits, target)
    torch.testing.assert_close(build_loss("wce", class_weights=(1.0, 1.0))(logits, target), bce)
    dice = build_loss("dice")(logits, target)
    torch.testing.assert_close(build_loss("bce+dice")(logits, target), bce + dice)
    focal = build_loss("focal", gamma=1.0)(logits, target)
    torch.testing.assert_close(build_loss("focal + bce", gamma=1.0)(logits, target), focal + bce)


def test_valid_mask_excludes_pixels():
    valid = torch.tensor([True, False]).view(1, 1, 1, 2)
    assert build_loss("bce")(LOGITS, TARGET, valid).item() == pytest.approx(LN2)
    # Dice on the landslide pixel alone: (2 * 0.5) / (0.5 + 1)
    assert build_loss("dice", smooth=0.0)(LOGITS, TARGET, valid).item() == pytest.approx(
        1 - 1 / 1.5
    )
    none = torch.zeros_like(valid)
    assert build_loss("bce")(LOGITS, TARGET, none).item() == 0.0


def test_extreme_logits_stay_finite():
    logits = torch.tensor([200.0, -200.0, 200.0]).view(1, 1, 1, 3).requires_grad_()
    target = torch.tensor([1.0, 0.0, 0.0]).view(1, 1, 1, 3)
    for spec in ["bce", "focal", "dice", "wce"]:
        loss = build_loss(spec)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), spec
    # One confidently wrong pixel out of three costs its logit.
    assert build_loss("bce")(logits, target).item() == pytest.approx(200 / 3)


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="bce, focal, dice, wce"):
        build_loss("bce+lovasz")
    with pytest.raises(ValueError, match="gama"):
        build_loss("focal", gama=2.0)
    with pytest.raises(ValueError, match="shape"):
        build_loss("bce")(LOGITS, TARGET.view(1, 1, 2, 1))
