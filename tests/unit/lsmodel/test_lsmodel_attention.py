"""Attention blocks do what the paper describes, in the stated order, where the paper puts them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsmodel.models import (
    ChannelAttention,
    ContextualAttention,
    SpatialAttention,
    build_model,
    make_attention,
)


def test_spatial_attention_weights_depend_only_on_channel_mean_and_max():
    torch.manual_seed(0)
    attention = SpatialAttention()
    x = torch.randn(2, 6, 16, 16)
    weights = attention.weights(x)
    assert weights.shape == (2, 1, 16, 16)
    assert ((weights > 0) & (weights < 1)).all()
    # Any channel permutation keeps the per-pixel mean and max, hence the weights.
    torch.testing.assert_close(attention.weights(x[:, torch.randperm(6)]), weights)
    # Channels with a different content but the same mean and max give the same weights too.
    mean, peak = x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    other = torch.cat([peak, 2 * mean - peak, mean.expand(-1, 4, -1, -1)], dim=1)
    torch.testing.assert_close(attention.weights(other), weights)
    torch.testing.assert_close(attention(x), x * weights)


def test_spatial_attention_uses_a_7x7_conv_on_two_pooled_maps():
    conv = SpatialAttention().conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (2, 1, (7, 7))


def test_channel_attention_scales_whole_channels():
    torch.manual_seed(0)
    attention = ChannelAttention(8)
    x = torch.randn(2, 8, 8, 8)
    weights = attention.weights(x)
    assert weights.shape == (2, 8, 1, 1)
    torch.testing.assert_close(attention(x), x * weights)
    # A spatial permutation keeps global avg/max pooling, hence the channel weights.
    shuffled = x.flatten(2)[:, :, torch.randperm(64)].view_as(x)
    torch.testing.assert_close(attention.weights(shuffled), weights)


def test_contextual_attention_is_channel_then_spatial():
    torch.manual_seed(0)
    attention = ContextualAttention(8)
    # Non-constant spatial weights so that the order of the two steps matters.
    nn.init.normal_(attention.spatial.conv.weight)
    x = torch.randn(2, 8, 8, 8)
    channel_first = attention.spatial(attention.channel(x))
    spatial_first = attention.channel(attention.spatial(x))
    assert not torch.allclose(channel_first, spatial_first)
    torch.testing.assert_close(attention(x), channel_first)


def test_both_attentions_run_spatial_then_contextual():
    torch.manual_seed(0)
    both = make_attention("spatial+contextual", 8)
    spatial, contextual = both
    assert isinstance(spatial, SpatialAttention)
    assert isinstance(contextual, ContextualAttention)
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(both(x), contextual(spatial(x)))
    assert not torch.allclose(both(x), spatial(contextual(x)))


@pytest.mark.parametrize(
    ("arch", "kind"),
    [
        ("unetpp", nn.Identity),
        ("unetpp_sa", SpatialAttention),
        ("unetpp_ca", ContextualAttention),
        ("unetpp_sa_ca", nn.Sequential),
    ],
)
def test_attention_follows_every_encoder_block(arch, kind):
    torch.manual_seed(0)
    model = build_model(arch, base_width=4, depth=3)
    assert len(model.attention) == len(model.encoder) == 4
    seen = []
    for block, attention in zip(model.encoder, model.attention, strict=True):
        assert isinstance(attention, kind)
        block.register_forward_hook(lambda m, i, out: seen.append(("block", out)))
        attention.register_forward_hook(lambda m, i, out: seen.append(("attention", i[0])))
    model(torch.randn(1, 4, 32, 32))
    # Each attention block receives exactly what its encoder block produced.
    assert [tag for tag, _ in seen] == ["block", "attention"] * 4
    for (_, produced), (_, received) in zip(seen[::2], seen[1::2], strict=True):
        assert received is produced


def test_unknown_attention_is_rejected():
    with pytest.raises(ValueError, match="spatial"):
        make_attention("self", 8)
