"""Sample diversity (paper Table 2): mean pairwise distance between the samples drawn for one poke.

As in the authors' evaluation, MSE is taken in pixel space on frames in [-1, 1] and LPIPS is averaged over
frames; every unordered pair of the n samples counts once (the ordered pairs of the reference give the
same mean). Table 2 reports both numbers multiplied by 1e4.
"""

from __future__ import annotations

import torch

from ipoke.metrics.perceptual import Lpips
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import check_float_frames


def _pairs(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both members of every unordered pair along the sample axis of ``(..., n, T, 3, H, W)``."""
    check_float_frames(samples, "samples")
    if samples.ndim < 5 or samples.shape[-5] < 2:
        raise ValueError(f"expected at least two samples (..., n, T, 3, H, W), got {tuple(samples.shape)}")
    first, second = torch.combinations(torch.arange(samples.shape[-5]), r=2).unbind(dim=1)
    return samples.index_select(-5, first), samples.index_select(-5, second)


@torch.no_grad()
def pairwise_mse(samples: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over all sample pairs; ``(..., n, T, 3, H, W)`` -> ``(...)``."""
    a, b = _pairs(samples)
    return (a.float() - b.float()).square().mean(dim=(-4, -3, -2, -1)).mean(dim=-1)


def pairwise_lpips(
    samples: torch.Tensor, lpips: Lpips | MetricUnavailable
) -> torch.Tensor | MetricUnavailable:
    """Mean LPIPS over all sample pairs and frames; ``(..., n, T, 3, H, W)`` -> ``(...)``."""
    if isinstance(lpips, MetricUnavailable):
        return lpips
    a, b = _pairs(samples)
    return lpips.videos(a, b).mean(dim=-1)
