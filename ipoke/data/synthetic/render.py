"""Rendering: rigid, textured part sprites warped by each part's transform and alpha-composited in depth
order over a static background. Bilinear warping of premultiplied sprites keeps edges anti-aliased and
makes every object pixel move exactly by its part's rigid motion.

Everything here is float64 numpy with elementwise operations only (no OpenCV warps, whose results depend
on the CPU's SIMD path and on how the image is split into blocks): the same scene and pose give the same
bytes on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipoke.data.synthetic import textures
from ipoke.data.synthetic.objects import ObjectModel


@dataclass(frozen=True)
class Scene:
    """What stays fixed across the videos of one object instance: the object and its background."""

    model: ObjectModel
    background: np.ndarray  # (H, W, 3) float64 in [0, 1]
    sprites: tuple[np.ndarray, ...]  # premultiplied RGBA per part
    origins: np.ndarray  # (P, 2) sprite pixel of each part's pivot

    @property
    def size(self) -> tuple[int, int]:
        return self.background.shape[:2]


def make_scene(model: ObjectModel, background: np.ndarray) -> Scene:
    made = [textures.sprite(o, look) for o, look in zip(model.outlines, model.looks, strict=True)]
    return Scene(model, background, tuple(s for s, _ in made), np.array([o for _, o in made]))


def _window(scene: Scene, part: int, warp: np.ndarray) -> tuple[int, int, int, int] | None:
    """Canvas box (x0, y0, x1, y1) that the warped sprite can touch, or None when it is off-canvas."""
    sh, sw = scene.sprites[part].shape[:2]
    corners = (
        np.array([[0, 0], [sw - 1, 0], [0, sh - 1], [sw - 1, sh - 1]], float) @ warp[:, :2].T + warp[:, 2]
    )
    h, w = scene.size
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, (w, h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def warp_sprite(sprite: np.ndarray, warp: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The sprite (h, w, C) mapped by the affine ``warp`` (2, 3) (sprite pixel -> canvas pixel), sampled
    bilinearly (zero outside the sprite) over the canvas ``box`` (x0, y0, x1, y1): (y1 - y0, x1 - x0, C)."""
    x0, y0, x1, y1 = box
    (a, b), (c, d) = warp[:, :2]
    det = a * d - b * c
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    dx, dy = gx - warp[0, 2], gy - warp[1, 2]
    u = (d * dx - b * dy) / det  # canvas -> sprite coordinates (the inverse of the 2x2 part)
    v = (a * dy - c * dx) / det
    h, w = sprite.shape[:2]
    padded = np.pad(sprite, ((1, 1), (1, 1), (0, 0)))  # one ring of zeros: samples fade out at the edge
    fu, fv = np.floor(u), np.floor(v)
    inside = (fu >= -1) & (fu <= w - 1) & (fv >= -1) & (fv <= h - 1)
    iu = np.clip(fu, -1, w - 1).astype(np.int64) + 1
    iv = np.clip(fv, -1, h - 1).astype(np.int64) + 1
    au, av = (u - fu)[..., None], (v - fv)[..., None]
    top = padded[iv, iu] * (1 - au) + padded[iv, iu + 1] * au
    bottom = padded[iv + 1, iu] * (1 - au) + padded[iv + 1, iu + 1] * au
    return (top * (1 - av) + bottom * av) * inside[..., None]


def render_frame(scene: Scene, affines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) and part labels uint8 (H, W) (0 background, p+1 part p) for (P, 2, 3) affines.

    A pixel belongs to the front-most part covering more than half of it.
    """
    out = scene.background.copy()
    labels = np.zeros(scene.size, np.uint8)
    for p in scene.model.depth:
        a = affines[p]
        warp = np.concatenate([a[:, :2], (a[:, 2] - a[:, :2] @ scene.origins[p])[:, None]], axis=1)
        box = _window(scene, p, warp)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        layer = warp_sprite(scene.sprites[p], warp, box)
        alpha = layer[..., 3:]
        roi = out[y0:y1, x0:x1]
        roi *= 1 - alpha
        roi += layer[..., :3]
        labels[y0:y1, x0:x1][alpha[..., 0] > 0.5] = p + 1
    rgb = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    return rgb, labels
