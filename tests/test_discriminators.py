"""Discriminators of the video autoencoder and their losses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ipoke.models.discriminators import (
    DiscConfig,
    PatchDiscriminator,
    TemporalDiscriminator,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    r1_penalty,
)

TINY = DiscConfig(spatial_width=8, spatial_layers=3, temporal_width=8, temporal_blocks=(1, 1, 1, 1), groups=4)


def test_patch_discriminator_shapes():
    logits, features = PatchDiscriminator(TINY)(torch.randn(5, 3, 64, 64))
    assert logits.shape == (5, 1, 6, 6)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6
    assert [f.shape[1] for f in features] == [16, 32, 64]


@pytest.mark.parametrize("size", [64, 128])
def test_temporal_discriminator_gives_one_logit_per_remaining_step(size):
    logits, features = TemporalDiscriminator(TINY)(torch.randn(2, 11, 3, size, size))
    assert logits.shape == (2, 2)  # time 11 -> 11 -> 6 -> 3 -> 2
    assert features[-1].shape == (2, 64, 2, size // 16, size // 16)


def test_paper_sized_temporal_discriminator_is_a_resnet18():
    net = TemporalDiscriminator(DiscConfig())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3)]
    assert len(convs) == 16  # 8 basic blocks of two 3x3x3 convolutions
    assert [s[-1].conv2.out_channels for s in net.stages] == [64, 128, 256, 512]


@pytest.mark.parametrize("net", [PatchDiscriminator(TINY), TemporalDiscriminator(TINY)])
def test_groupnorm_and_spectral_norm_only(net):
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in net.modules())
    weighted = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear)]
    assert all(hasattr(m, "parametrizations") for m in weighted)


def test_hinge_losses_match_their_definition():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 3.0])
    expected = (0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 4.0) / 3
    assert hinge_d_loss(real, fake).item() == pytest.approx(expected)
    assert hinge_g_loss(fake).item() == pytest.approx(-1 / 3)


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(3, 4, 5)
    x = torch.randn(6, 3, 4, 5, requires_grad=True)
    logits = (x * w).sum(dim=(1, 2, 3))
    assert r1_penalty(logits, x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_r1_penalty_trains_the_temporal_discriminator():
    net = TemporalDiscriminator(TINY)
    x = torch.randn(2, 11, 3, 64, 64, requires_grad=True)
    logits, _ = net(x)
    r1_penalty(logits, x).backward()  # double backward through GroupNorm and 3D convolutions
    grad = net.stem[0].parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0


def test_feature_matching_pulls_only_the_fake_features():
    real = [torch.randn(2, 3, requires_grad=True), torch.randn(2, 5, requires_grad=True)]
    fake = [torch.randn(2, 3, requires_grad=True), torch.randn(2, 5, requires_grad=True)]
    loss = feature_matching_loss(fake, real)
    expected = ((fake[0] - real[0]).abs().mean() + (fake[1] - real[1]).abs().mean()) / 2
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert real[0].grad is None and fake[0].grad is not None
    assert feature_matching_loss(real, real).item() == 0
