"""The two video layouts the metrics accept, and conversions between them.

- ``uint8`` numpy ``(..., T, H, W, 3)`` in [0, 255]: decoded frames and sampler output.
- ``float`` torch ``(..., T, 3, H, W)`` in [-1, 1]: model tensors.

Leading dimensions (videos, samples) are kept by every conversion.
"""

from __future__ import annotations

import numpy as np
import torch


def check_uint8_videos(videos: np.ndarray, ndim: int, name: str = "videos") -> np.ndarray:
    """Raise unless ``videos`` is uint8 with ``ndim`` dimensions, RGB last."""
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != ndim or videos.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected uint8 array of {ndim} dims ending in 3 RGB channels, "
            f"got {videos.dtype} {videos.shape}"
        )
    return videos


def check_float_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Raise unless ``frames`` is a floating tensor ``(..., 3, H, W)``."""
    if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
        raise ValueError(f"{name}: expected a float torch tensor in [-1, 1], got {type(frames).__name__}")
    if frames.ndim < 3 or frames.shape[-3] != 3:
        raise ValueError(f"{name}: expected shape (..., 3, H, W), got {tuple(frames.shape)}")
    return frames


def uint8_to_float(videos: np.ndarray) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 in [0, 255] -> ``(..., 3, H, W)`` float32 in [-1, 1]."""
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim < 3 or videos.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (..., H, W, 3), got {videos.dtype} {videos.shape}")
    return torch.from_numpy(videos).movedim(-1, -3).float() / 127.5 - 1.0


def float_to_uint8(videos: torch.Tensor) -> np.ndarray:
    """``(..., 3, H, W)`` float in [-1, 1] -> ``(..., H, W, 3)`` uint8, rounded and clipped."""
    check_float_frames(videos, "videos")
    scaled = ((videos.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return scaled.to(torch.uint8).movedim(-3, -1).numpy()


def broadcast_frame_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Broadcast two ``(..., 3, H, W)`` tensors and flatten them to ``(N, 3, H, W)`` pairs.

    Returns both flattened tensors and the leading shape to reshape per-frame scores back to, so that
    e.g. five samples ``(5, T, 3, H, W)`` compare against one ground truth ``(T, 3, H, W)``.
    """
    check_float_frames(a, "prediction")
    check_float_frames(b, "target")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"frame sizes differ: {tuple(a.shape[-2:])} vs {tuple(b.shape[-2:])}")
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError as err:
        raise ValueError(f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from err
    lead = a.shape[:-3]
    return a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:]), lead
