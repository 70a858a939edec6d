"""Frame-wise reconstruction quality: PSNR and SSIM (torchmetrics) of videos in [-1, 1].

Following appendix G, each generated frame is compared with the ground-truth frame at the same time step;
the per-frame scores are returned so that callers average them per sequence and then over samples.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ipoke.metrics.videos import broadcast_frame_pairs

DATA_RANGE = 2.0  # frames live in [-1, 1]


@torch.no_grad()
def frame_psnr(pred: torch.Tensor, target: torch.Tensor, max_db: float | None = None) -> torch.Tensor:
    """PSNR in dB of each frame pair; ``pred`` and ``target`` are ``(..., 3, H, W)`` and broadcast.

    Identical frames give ``inf``; pass ``max_db`` to cap them for finite averages.
    """
    a, b, lead = broadcast_frame_pairs(pred, target)
    scores = peak_signal_noise_ratio(
        a.float(), b.float(), data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3)
    )
    if max_db is not None:
        scores = scores.clamp(max=max_db)
    return scores.reshape(lead)


@torch.no_grad()
def frame_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM (11x11 Gaussian window, sigma 1.5) of each frame pair; shapes as in :func:`frame_psnr`."""
    a, b, lead = broadcast_frame_pairs(pred, target)
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11x11 pixels, got {tuple(a.shape[-2:])}")
    scores = structural_similarity_index_measure(
        a.float(), b.float(), data_range=DATA_RANGE, reduction="none"
    )
    return scores.reshape(lead)


def _check_videos(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim < 4 or target.ndim < 4:
        raise ValueError(
            f"expected videos (..., T, 3, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def video_psnr(pred: torch.Tensor, target: torch.Tensor, max_db: float | None = None) -> torch.Tensor:
    """Per-sequence PSNR: the mean over the frame axis of ``(..., T, 3, H, W)`` videos."""
    _check_videos(pred, target)
    return frame_psnr(pred, target, max_db=max_db).mean(dim=-1)


def video_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sequence SSIM: the mean over the frame axis of ``(..., T, 3, H, W)`` videos."""
    _check_videos(pred, target)
    return frame_ssim(pred, target).mean(dim=-1)
