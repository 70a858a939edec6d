"""Discriminators of the video autoencoder (appendix E.1) and their losses.

- Spatial: a PatchGAN on single frames. Temporal: a 3D ResNet-18 on whole clips (x0 + T frames), one logit
  per remaining time step. Both use GroupNorm and spectral norm and return ``(logits, features)``; the
  features feed the generator's feature-matching losses.
- Hinge losses for both discriminators (eqs. 20, 21); R1 gradient penalty on real clips for the temporal one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ipoke.config import Section
from ipoke.models.autoencoder import group_norm


class DiscConfig(Section):
    """Widths and depths of both discriminators (paper: PatchGAN 64/3 layers, 3D ResNet-18 from 64)."""

    spatial_width: int = 64
    spatial_layers: int = 3  # stride-2 convolutions of the PatchGAN
    temporal_width: int = 64  # stage widths are width * (1, 2, 4, 8)
    temporal_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)  # ResNet-18
    groups: int = 16


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(N, 3, H, W)`` frames -> ``(N, 1, h, w)`` patch logits."""

    def __init__(self, cfg: DiscConfig):
        super().__init__()
        w = cfg.spatial_width
        self.stem = spectral_norm(nn.Conv2d(3, w, 4, 2, 1))
        widths = [w * min(2**n, 8) for n in range(cfg.spatial_layers + 1)]
        strides = [2] * (cfg.spatial_layers - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Sequential(
                spectral_norm(nn.Conv2d(c_in, c_out, 4, s, 1, bias=False)), group_norm(c_out, cfg.groups)
            )
            for c_in, c_out, s in zip(widths[:-1], widths[1:], strides, strict=True)
        )
        self.head = spectral_norm(nn.Conv2d(widths[-1], 1, 4, 1, 1))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = F.leaky_relu(self.stem(frames), 0.2)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.head(h), features


class BasicBlock3d(nn.Module):
    """ResNet basic block in 3D with separate temporal and spatial strides."""

    def __init__(self, c_in: int, c_out: int, stride_t: int, stride_s: int, groups: int):
        super().__init__()
        stride = (stride_t, stride_s, stride_s)
        self.conv1 = spectral_norm(nn.Conv3d(c_in, c_out, 3, stride, 1, bias=False))
        self.norm1 = group_norm(c_out, groups)
        self.conv2 = spectral_norm(nn.Conv3d(c_out, c_out, 3, 1, 1, bias=False))
        self.norm2 = group_norm(c_out, groups)
        self.shortcut = nn.Identity()
        if c_in != c_out or stride != (1, 1, 1):
            self.shortcut = nn.Sequential(
                spectral_norm(nn.Conv3d(c_in, c_out, 1, stride, bias=False)), group_norm(c_out, groups)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


class TemporalDiscriminator(nn.Module):
    """3D ResNet-18: clips ``(B, T, 3, H, W)`` -> ``(B, T')`` logits, one per remaining time step."""

    def __init__(self, cfg: DiscConfig):
        super().__init__()
        w = cfg.temporal_width
        self.stem = nn.Sequential(
            spectral_norm(nn.Conv3d(3, w, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)),
            group_norm(w, cfg.groups),
            nn.ReLU(),
            nn.MaxPool3d(3, (1, 2, 2), 1),
        )
        widths = [w, w, 2 * w, 4 * w, 8 * w]
        strides = [(1, 1), (2, 1), (2, 2), (2, 2)]  # (time, space) of each stage's first block
        stages = []
        for i, n_blocks in enumerate(cfg.temporal_blocks):
            blocks = [BasicBlock3d(widths[i], widths[i + 1], *strides[i], cfg.groups)]
            blocks += [
                BasicBlock3d(widths[i + 1], widths[i + 1], 1, 1, cfg.groups) for _ in range(n_blocks - 1)
            ]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = spectral_norm(nn.Linear(widths[-1], 1))

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(clips.transpose(1, 2))
        features = []
        for stage in self.stages:
            h = stage(h)
            features.append(h)
        pooled = h.mean(dim=(3, 4)).transpose(1, 2)  # (B, T', C)
        return self.head(pooled).squeeze(-1), features


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: relu(1 - D(real)) + relu(1 + D(fake))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: -D(fake)."""
    return -fake_logits.mean()


def feature_matching_loss(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 distance between discriminator features of fake and (detached) real inputs."""
    return torch.stack([(f - r.detach()).abs().mean() for f, r in zip(fake, real, strict=True)]).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty ||grad_x D(x)||^2 on real inputs (``real_inputs`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
