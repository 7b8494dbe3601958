"""Segmentation losses on landslide logits: BCE, focal, soft Dice, weighted CE, and sums of them.

Every loss is called as ``loss(logits, target, valid=None)`` with logits (N, 1, H, W), a float
target in {0, 1} of the same shape and an optional boolean ``valid`` mask of the same shape;
pixels where ``valid`` is False (nodata, padding) contribute nothing. Pixel losses average over
the valid pixels of the whole batch. Log-probabilities come from ``logsigmoid``, so large logits
neither overflow nor give ``log(0)``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn


def _check(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> None:
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}"
        )
    if valid is not None and valid.shape != logits.shape:
        raise ValueError(f"valid shape {tuple(valid.shape)} != logits shape {tuple(logits.shape)}")


class PixelLoss(nn.Module):
    """Base of losses that are a mean of per-pixel terms; subclasses define ``pixel_loss``."""

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check(logits, target, valid)
        losses = self.pixel_loss(logits, target.to(logits.dtype))
        if valid is None:
            return losses.mean()
        # A batch without valid pixels gives 0 (not NaN) and keeps the graph intact.
        mask = valid.to(losses.dtype)
        return (losses * mask).sum() / mask.sum().clamp_min(1.0)


class BCELoss(PixelLoss):
    """Binary cross-entropy: ``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(logit)``."""

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits))


class FocalLoss(PixelLoss):
    """Focal loss (Lin et al., 2017), defaults from that paper.

    ``-alpha (1 - p)^gamma log p`` on landslide pixels and ``-(1 - alpha) p^gamma log(1 - p)`` on
    background; ``alpha=None`` weighs both classes by 1.
    """

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal alpha must be in [0, 1], got {alpha}")
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.alpha = alpha
        self.gamma = gamma

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
        pos = -((1 - log_p.exp()) ** self.gamma) * log_p
        neg = -(log_p.exp() ** self.gamma) * log_q
        if self.alpha is not None:
            pos, neg = self.alpha * pos, (1 - self.alpha) * neg
        return target * pos + (1 - target) * neg


class DiceLoss(nn.Module):
    """Soft Dice loss ``1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)`` over the whole batch.

    Summing over the batch (not per image) keeps chips without landslides from dominating; the
    smoothing ``s`` makes an empty target with an empty prediction a loss of 0.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check(logits, target, valid)
        probs, target = torch.sigmoid(logits), target.to(logits.dtype)
        if valid is not None:
            mask = valid.to(logits.dtype)
            probs, target = probs * mask, target * mask
        overlap = (probs * target).sum()
        return 1 - (2 * overlap + self.smooth) / (probs.sum() + target.sum() + self.smooth)


class WeightedCELoss(PixelLoss):
    """Class-weighted cross-entropy ``-(w1 y log p + w0 (1 - y) log(1 - p))``, mean over pixels.

    ``class_weights=(w_background, w_landslide)``; ``(1, 1)`` is plain BCE. Use
    ``WeightedCELoss.from_positive_fraction`` (or ``positive_fraction=`` in ``build_loss``) to
    derive balanced weights from the landslide pixel fraction of the training set.
    """

    def __init__(self, class_weights: tuple[float, float] = (1.0, 1.0)) -> None:
        super().__init__()
        w_background, w_landslide = (float(w) for w in class_weights)
        if w_background < 0 or w_landslide < 0:
            raise ValueError(f"class weights must be >= 0, got {class_weights}")
        self.class_weights = (w_background, w_landslide)

    @classmethod
    def from_positive_fraction(cls, positive_fraction: float) -> WeightedCELoss:
        """Inverse-frequency weights ``(0.5 / (1 - f), 0.5 / f)`` for landslide pixel fraction f.

        Both classes then carry half of the total weight and the mean weight per pixel is 1, so
        the loss stays on the scale of BCE.
        """
        if not 0.0 < positive_fraction < 1.0:
            raise ValueError(f"positive_fraction must be in (0, 1), got {positive_fraction}")
        return cls((0.5 / (1 - positive_fraction), 0.5 / positive_fraction))

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w_background, w_landslide = self.class_weights
        return -(
            w_landslide * target * F.logsigmoid(logits)
            + w_background * (1 - target) * F.logsigmoid(-logits)
        )


class SumLoss(nn.Module):
    """Sum of several losses, each called with the same arguments."""

    def __init__(self, losses: list[nn.Module]) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        return sum(loss(logits, target, valid) for loss in self.losses)


LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "focal": FocalLoss,
    "dice": DiceLoss,
    "wce": WeightedCELoss,
}


def _accepted(name: str) -> set[str]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    accepted = set(inspect.signature(LOSSES[name]).parameters)
    return accepted | {"positive_fraction"} if name == "wce" else accepted


def _make(name: str, kwargs: dict) -> nn.Module:
    own = {k: v for k, v in kwargs.items() if k in _accepted(name)}
    if "positive_fraction" in own:
        if "class_weights" in own:
            raise ValueError("give wce either class_weights or positive_fraction, not both")
        return WeightedCELoss.from_positive_fraction(own["positive_fraction"])
    return LOSSES[name](**own)


def build_loss(spec: str, **kwargs) -> nn.Module:
    """Loss from a spec like ``"bce"``, ``"focal"`` or ``"bce+dice"`` (the sum of the parts).

    Keyword arguments go to every part that accepts them: ``alpha``/``gamma`` (focal), ``smooth``
    (dice), ``class_weights`` or ``positive_fraction`` (wce). An argument no part accepts is an
    error, so typos do not pass silently.
    """
    names = [name.strip().lower() for name in spec.split("+")]
    unused = set(kwargs).difference(*(_accepted(name) for name in names))
    if unused:
        raise ValueError(f"loss {spec!r} takes no argument(s) {sorted(unused)}")
    losses = [_make(name, kwargs) for name in names]
    return losses[0] if len(losses) == 1 else SumLoss(losses)
