"""Rendering: rigid, textured part sprites warped by each part's transform and alpha-composited in depth
order over a static background. Bilinear warping of premultiplied sprites keeps edges anti-aliased and
makes every object pixel move exactly by its part's rigid motion."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ipoke.data.synthetic import textures
from ipoke.data.synthetic.objects import ObjectModel


@dataclass(frozen=True)
class Scene:
    """What stays fixed across the videos of one object instance: the object and its background."""

    model: ObjectModel
    background: np.ndarray  # (H, W, 3) float32 in [0, 1]
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
        warp[:, 2] -= (x0, y0)
        layer = cv2.warpAffine(
            scene.sprites[p],
            warp,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        alpha = layer[..., 3:]
        roi = out[y0:y1, x0:x1]
        roi *= 1 - alpha
        roi += layer[..., :3]
        labels[y0:y1, x0:x1][alpha[..., 0] > 0.5] = p + 1
    rgb = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    return rgb, labels
