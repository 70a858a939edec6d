"""Hao et al. (CVPR 2018, "Controllable Video Generation with Sparse Trajectories") as iPOKE appendix F runs
it: no training, x0 warped along sparse flow trajectories of the test clip.

Appendix F: "we first sample k flow vectors between x0 and x1. We then extend these initial vectors to
discrete trajectories of length T - 1 in the image space by tracking the initial points using consecutive
flow vectors between xi and xi+1. Videos are finally obtained by successively warping x0 using the shift
vectors from the trajectories. [...] k = 5. The motion trajectories are generated from the same optical flow
which was used to train our own model." The trajectories come from the real test clip: like the paper's,
this baseline sees the motion of k points of the future, where the other methods see one poke.

Choices where the text is silent, and what differs from the original method:

- How the poke enters: the poked points are the first trajectories (up to k); the rest are pixels drawn
  uniformly from the frame (so they tell moving parts and still background apart). Each poked point's
  tracked trajectory is bent linearly in time so that it ends exactly at the poke's target: the poke gives
  the endpoints of the poked points, the clip their path.
- Flow: OpenCV DIS between consecutive frames, tracked with :func:`ipoke.metrics.control.track_points` (the
  pipeline's default flow method; the tracker of the control metric).
- Dense motion: at frame t every pixel q takes the kernel-weighted mean shift of the trajectories, weights
  ``softmax_i(-|q - p_i(t)|^2 / (2 sigma^2))`` around their current positions ``p_i(t)``, and samples x0 at
  ``q - shift(q)`` (bilinear, borders replicated). A uniform translation is therefore reproduced exactly.
- Hao et al. predict each frame with a network that turns the sparse trajectories into dense motion, warps
  x0 and hallucinates what warping cannot show (disocclusions, appearance changes), trained per dataset. Here
  there is no network: the kernel interpolation and the warp are the whole model, as in appendix F's
  description of the procedure. Occluded and newly visible regions are smeared, not hallucinated.

Deterministic: the same clip, pokes and seed give the same video; the seed only picks the uniform points.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pydantic import Field

from ipoke.config import Section
from ipoke.metrics.control import track_points
from ipoke.metrics.videos import float_to_uint8


class HaoConfig(Section):
    k: int = Field(5, ge=1, description="trajectories per clip (Hao et al.'s protocol: 5)")
    bandwidth: float = Field(0.1, gt=0, description="kernel width sigma of the dense motion, frame fraction")


def start_points(pokes: np.ndarray, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(k, 2) start points: the poked pixels ``pokes[:, :2]`` first, then pixels drawn uniformly."""
    poked = np.asarray(pokes, np.float64).reshape(-1, 4)[:k, :2]
    pixel = np.clip(np.round(poked), 0, size - 1).astype(int)
    free = np.setdiff1d(np.arange(size * size), pixel[:, 1] * size + pixel[:, 0])
    drawn = rng.choice(free, size=k - len(poked), replace=False)
    ys, xs = np.divmod(drawn, size)
    return np.concatenate([poked, np.stack([xs, ys], axis=1).astype(np.float64)])


def bend_to_targets(trajectories: np.ndarray, pokes: np.ndarray) -> np.ndarray:
    """``trajectories`` (T + 1, K, 2) with the first ``len(pokes)`` ending at their pokes' targets: the gap
    between the tracked end and the target is closed linearly over time."""
    out = trajectories.copy()
    n = min(len(pokes), out.shape[1])
    targets = pokes[:n, :2] + pokes[:n, 2:]
    ramp = np.linspace(0.0, 1.0, len(out))[:, None, None]
    out[:, :n] += ramp * (targets - out[-1, :n])[None]
    return out


def dense_shift(positions: np.ndarray, shifts: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """(H, W, 2) shift at every pixel: the kernel-weighted mean of ``shifts`` (K, 2) of the trajectories at
    ``positions`` (K, 2), both in pixels (x, y)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    d2 = (xs[..., None] - positions[:, 0]) ** 2 + (ys[..., None] - positions[:, 1]) ** 2  # (H, W, K)
    logits = -d2 / (2 * sigma**2)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ shifts


def warp(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) float32 sampled at ``q - shift(q)`` for every pixel q (bilinear, replicated
    borders): content at p moves to p + shift."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs - shift[..., 0].astype(np.float32)
    map_y = ys - shift[..., 1].astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_along(x0: np.ndarray, trajectories: np.ndarray, sigma: float) -> np.ndarray:
    """Frames 1..T (T, H, W, C) of ``x0`` (H, W, C) float32 warped along ``trajectories`` (T + 1, K, 2)."""
    size = x0.shape[0]
    frames = []
    for t in range(1, len(trajectories)):
        shift = dense_shift(trajectories[t], trajectories[t] - trajectories[0], size, sigma)
        frames.append(warp(x0, shift))
    return np.stack(frames)


class HaoWarping:
    """The whole baseline: trajectories of the test clip, bent to the pokes, x0 warped along them."""

    def __init__(self, cfg: HaoConfig):
        self.cfg = cfg

    def clip_video(self, clip: np.ndarray, pokes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``clip`` (T + 1, S, S, 3) uint8 with x0 first, ``pokes`` (n, 4) rows (x, y, dx, dy) -> the
        baseline's frames 1..T (T, S, S, 3) float32 in [-1, 1]; ``rng`` draws the uniform points."""
        size = clip.shape[1]
        points = start_points(pokes, self.cfg.k, size, rng)
        trajectories = bend_to_targets(track_points(clip[0], clip[1:], points), np.asarray(pokes, np.float64))
        x0 = clip[0].astype(np.float32) / 127.5 - 1.0
        return warp_along(x0, trajectories, self.cfg.bandwidth * size)

    def batch_videos(
        self, video: torch.Tensor, poke_points: torch.Tensor, n_pokes: torch.Tensor, seed: int
    ) -> torch.Tensor:
        """Real clips (B, T + 1, 3, S, S) in [-1, 1] and their pokes (B, P, 4), ``n_pokes`` (B,) of them
        -> (B, 1, T + 1, 3, S, S), x0 first. Clip b draws its uniform points with ``(seed, b)``."""
        clips = float_to_uint8(video)
        out = []
        for b, clip in enumerate(clips):
            pokes = poke_points[b, : int(n_pokes[b])].double().numpy()
            frames = self.clip_video(clip, pokes, np.random.default_rng([seed, b]))
            frames = torch.from_numpy(frames).permute(0, 3, 1, 2)
            out.append(torch.cat([video[b, :1].cpu().float(), frames], dim=0))
        return torch.stack(out)[:, None]
