"""VGG19 perceptual loss with torchvision's ImageNet weights (the autoencoder's l_phi, appendix E.1).

The weights are read from the torch hub cache (where ``torchvision.models.vgg19(weights="IMAGENET1K_V1")``
stores them) or from an explicit path; nothing is downloaded. Without them the loss cannot be built: a
randomly initialised VGG is no perceptual metric, so training with ``perceptual: vgg19`` stops instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from ipoke.errors import IpokeError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 end at these indices of ``vgg19().features``.
SLICE_ENDS = (2, 7, 12, 21, 30)
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG19 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def load_vgg19_features(weights: str | Path | None = None) -> nn.Sequential:
    """VGG19 convolutional layers up to relu5_1 with ImageNet weights, frozen and in eval mode."""
    path = Path(weights) if weights else default_weights_path()
    if not path.is_file():
        raise IpokeError(
            f"{path}: VGG19 ImageNet weights not found (needed by perceptual: vgg19). Download {VGG19_URL} "
            f"to {default_weights_path()} or set the profile's perceptual_weights to the file, "
            "or set perceptual: none"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise IpokeError(f"{path}: not a readable VGG19 state dict: {err}") from err
    features = make_layers(cfgs["E"])[: SLICE_ENDS[-1]]
    needed = {f"features.{k}": k for k in features.state_dict()}  # conv5_2 and deeper are not used
    wanted = {needed[k]: v for k, v in state.items() if k in needed} if isinstance(state, dict) else {}
    try:
        features.load_state_dict(wanted)
    except RuntimeError as err:
        raise IpokeError(f"{path}: not torchvision VGG19 weights: {err}") from err
    return features.eval().requires_grad_(False)


class VGGPerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG19 activations (relu1_1 .. relu5_1) of two image batches in [-1, 1]."""

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        features = load_vgg19_features(weights)
        starts = (0, *SLICE_ENDS[:-1])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, SLICE_ENDS, strict=True))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x``, ``y`` (N, 3, H, W) in [-1, 1] -> scalar loss (``y`` is the target)."""
        h = torch.cat([x, y]).add(1).div(2).sub(self.mean).div(self.std)
        loss = h.new_zeros(())
        for weight, block in zip(LAYER_WEIGHTS, self.slices, strict=True):
            h = block(h)
            hx, hy = h.chunk(2)
            loss = loss + weight * F.l1_loss(hx, hy.detach())
        return loss
