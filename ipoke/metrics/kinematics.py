"""Kinematics maps (paper Fig. 7): which pixels move with a poke at one fixed location.

Many random pokes (uniform direction, uniform magnitude) are applied at one location of one image, one
sampled video each; every pixel of x0 is tracked to the last frame (:func:`ipoke.metrics.control.
track_points`). Across pokes, a pixel that belongs to the poked part or to parts connected with it moves
differently for different pokes, one that is unaffected does not. The paper measures this as the variance
of the pixels' end shifts in [magnitude, angle] form; here the shift is the Cartesian end displacement
(angles are circular and undefined for pixels that stay put), and its total variance (px^2) is the map.
Measured relative to the fixed location, as in the paper, the variance is the same because the pixel and
the location are fixed. Alongside, ``correlation`` is the share of that variance explained linearly by
the poke's shift (R^2 in [0, 1]), which separates coupled motion from motion that varies on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ipoke.metrics.control import track_points
from ipoke.metrics.videos import check_uint8_videos
from ipoke.stage import progress

Sampler = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]
"""``sample(image, pokes, n, seed) -> videos``: ``image`` ``(H, W, 3)`` uint8, ``pokes`` ``(K, 4)`` rows of
``(x, y, dx, dy)``, ``n`` samples drawn with ``seed``; returns the ``(n, T, H, W, 3)`` uint8 frames after
``image``."""


def check_samples(videos: np.ndarray, image: np.ndarray, n: int) -> np.ndarray:
    """Raise unless a sampler returned ``n`` uint8 videos of ``image``'s size."""
    videos = check_uint8_videos(videos, ndim=5, name="sampled videos")
    if videos.shape[0] != n or videos.shape[2:] != image.shape:
        raise ValueError(f"sampler returned {videos.shape}, expected ({n}, T, *{image.shape})")
    return videos


@dataclass(frozen=True)
class KinematicsMap:
    location: tuple[float, float]
    variance: np.ndarray  # (H, W), total variance of each pixel's end displacement over pokes, px^2
    correlation: np.ndarray  # (H, W), share of that variance explained linearly by the poke shift


def random_pokes(
    location: tuple[float, float], n: int, max_shift: float, rng: np.random.Generator, min_shift: float = 0.0
) -> np.ndarray:
    """``n`` pokes ``(n, 4)`` at ``location`` with uniform direction and magnitude in [min, max]."""
    if not 0 <= min_shift <= max_shift or max_shift <= 0:
        raise ValueError(f"need 0 <= min_shift <= max_shift and max_shift > 0, got {min_shift}, {max_shift}")
    angle = rng.uniform(0.0, 2 * np.pi, n)
    magnitude = rng.uniform(min_shift, max_shift, n)
    x, y = location
    return np.stack([np.full(n, x), np.full(n, y), magnitude * np.cos(angle), magnitude * np.sin(angle)], 1)


def end_displacements(x0: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """``(N, H, W, 2)`` displacement of every pixel of ``x0`` to the last frame of each of ``videos``."""
    x0 = check_uint8_videos(x0, ndim=3, name="x0")
    videos = check_uint8_videos(videos, ndim=5, name="videos")
    h, w = x0.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    ends = [track_points(x0, video, grid)[-1] - grid for video in videos]
    return np.stack(ends).reshape(len(videos), h, w, 2)


def kinematics_map(
    location: tuple[float, float], pokes: np.ndarray, displacements: np.ndarray, min_variance: float = 1e-6
) -> KinematicsMap:
    """The map from ``pokes`` ``(N, 4)`` and the ``(N, H, W, 2)`` end displacements they caused.

    Pixels whose variance is below ``min_variance`` px^2 get correlation 0.
    """
    pokes = np.asarray(pokes, dtype=np.float64)
    displacements = np.asarray(displacements, dtype=np.float64)
    n = len(pokes)
    if pokes.shape != (n, 4) or displacements.shape[:1] != (n,) or displacements.ndim != 4 or n < 4:
        raise ValueError(
            f"need N >= 4 pokes (N, 4) and displacements (N, H, W, 2), "
            f"got {pokes.shape} and {displacements.shape}"
        )
    h, w = displacements.shape[1:3]
    shifts = displacements.reshape(n, -1)
    centred = shifts - shifts.mean(axis=0)
    total = np.square(centred).reshape(n, h, w, 2).sum(axis=(0, 3))
    design = np.column_stack([np.ones(n), pokes[:, 2:]])
    coefficients, *_ = np.linalg.lstsq(design, shifts, rcond=None)
    residual = np.square(shifts - design @ coefficients).reshape(n, h, w, 2).sum(axis=(0, 3))
    variance = total / (n - 1)
    moving = variance >= min_variance
    correlation = np.zeros((h, w))
    correlation[moving] = np.clip(1.0 - residual[moving] / total[moving], 0.0, 1.0)
    return KinematicsMap(
        location=(float(location[0]), float(location[1])), variance=variance, correlation=correlation
    )


def sample_kinematics_map(
    sample: Sampler,
    image: np.ndarray,
    location: tuple[float, float],
    max_shift: float,
    n_pokes: int = 1000,
    min_shift: float = 0.0,
    seed: int = 0,
) -> KinematicsMap:
    """Fig. 7 for one location: ``n_pokes`` random pokes there, one sampled video each (seed + i)."""
    image = check_uint8_videos(image, ndim=3, name="image")
    pokes = random_pokes(location, n_pokes, max_shift, np.random.default_rng(seed), min_shift=min_shift)
    displacements = []
    for i, poke in progress(enumerate(pokes), desc="kinematics map", total=n_pokes, unit="poke"):
        video = check_samples(sample(image, poke[None], 1, seed + i), image, 1)
        displacements.append(end_displacements(image, video)[0])
    return kinematics_map(location, pokes, np.stack(displacements))
