"""Procedural textures: part sprites (texture fixed in the part's frame, so it moves rigidly) and
static scene backgrounds. Everything is drawn from explicit seeds, so it is reproducible."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from ipoke.data.synthetic.objects import Look

SUPERSAMPLE = 4


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Band-limited noise in [0, 1] with features about ``cell`` pixels wide."""
    h, w = shape
    small = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 1)


def coverage(outline: np.ndarray, shape: tuple[int, int], origin: np.ndarray) -> np.ndarray:
    """Anti-aliased area coverage (H, W) in [0, 1] of a polygon given in local coordinates.

    Pixel centres sit at integer coordinates; the polygon is filled at ``SUPERSAMPLE`` times the
    resolution and box-filtered down, so edge pixels hold the fraction of their area inside.
    """
    s = SUPERSAMPLE
    shift = 4
    pts = ((outline + origin + 0.5) * s - 0.5) * (1 << shift)
    big = np.zeros((shape[0] * s, shape[1] * s), np.uint8)
    cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=shift)
    return cv2.resize(big.astype(np.float32) / 255, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _pattern(look: Look, local: np.ndarray, half_width: float, rng: np.random.Generator) -> np.ndarray:
    """Mixing weight (H, W) in [0, 1] between the part's colour and its accent."""
    x, y = local[..., 0], local[..., 1]
    kind = look.texture
    if kind == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(3.0, 7.0)
        t = np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / period + rng.uniform(0, 2 * np.pi))
        return np.clip(0.5 + 1.5 * t, 0, 1)
    if kind == "checks":
        p = rng.uniform(3.0, 6.0)
        t = np.sin(np.pi * x / p) * np.sin(np.pi * y / p)
        return np.clip(0.5 + 2.0 * t, 0, 1)
    if kind == "spots":
        n = smooth_noise(rng, x.shape, rng.uniform(2.5, 4.0))
        return np.clip((n - 0.55) * 6, 0, 1)
    if kind == "bark":
        t = np.sin(2 * np.pi * y / rng.uniform(1.8, 3.0) + 2.5 * smooth_noise(rng, x.shape, 4.0))
        return np.clip(0.5 + 0.8 * t, 0, 1)
    if kind == "veins":
        side = np.sin(2 * np.pi * (x - 1.2 * np.abs(y)) / rng.uniform(3.5, 5.5))
        mid = np.exp(-(y**2) / 0.5)
        return np.clip(np.maximum(mid, 0.35 + 0.35 * side), 0, 1)
    if kind == "noise":
        return smooth_noise(rng, x.shape, rng.uniform(2.0, 4.0))
    raise ValueError(f"unknown texture {kind!r}")


def sprite(outline: np.ndarray, look: Look, pad: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A premultiplied RGBA sprite (H, W, 4) float32 of one part and the sprite pixel of its pivot."""
    lo = np.floor(outline.min(0)) - pad
    hi = np.ceil(outline.max(0)) + pad
    origin = -lo
    w, h = (hi - lo + 1).astype(int)
    alpha = coverage(outline, (h, w), origin)
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    local = np.stack([u, v], -1) - origin.astype(np.float32)
    half_width = float(np.abs(outline[:, 1]).max())
    rng = np.random.default_rng(look.seed)
    mix = _pattern(look, local, half_width, rng)[..., None]
    colour = (1 - mix) * np.array(look.colour, np.float32) + mix * np.array(look.accent, np.float32)
    shade = 1.0 - 0.25 * np.clip(np.abs(local[..., 1]) / max(half_width, 1.0), 0, 1) ** 2
    grain = 1.0 + 0.08 * (smooth_noise(rng, (h, w), 1.5) - 0.5)
    rgb = np.clip(colour * (shade * grain)[..., None], 0, 1)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1).astype(np.float32), origin


def background(rng: np.random.Generator, size: int, ground: float, texture: float = 1.0) -> np.ndarray:
    """A static scene (size, size, 3) float32 in [0, 1]: a wall with blotches and shapes, a floor below
    ``ground`` (pixel row), textured at several scales so that it is trackable but motionless.

    ``texture`` scales the amplitude of the wall's noise and the floor's grain (0: smooth)."""
    hue = rng.uniform(0, 1)
    wall = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.95)), np.float32)
    wall2 = np.array(
        colorsys.hsv_to_rgb(hue + rng.normal(0, 0.1), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.9))
    )
    rows = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    img = (1 - rows) * wall + rows * wall2.astype(np.float32)
    img = img * np.ones((size, size, 1), np.float32)
    for cell in (size / 4, size / 12, 3.0):
        img *= (1 + 0.25 * texture * (smooth_noise(rng, (size, size), cell) - 0.5))[..., None]
    for _ in range(int(rng.integers(3, 8))):
        colour = np.array(
            colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.95))
        )
        centre = tuple(int(c) for c in rng.uniform(0, size, 2))
        axes = tuple(int(a) for a in rng.uniform(size / 16, size / 4, 2))
        layer = np.zeros((size, size), np.float32)
        if rng.random() < 0.5:
            cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(
                layer,
                (centre[0] - axes[0], centre[1] - axes[1]),
                (centre[0] + axes[0], centre[1] + axes[1]),
                1.0,
                -1,
                cv2.LINE_AA,
            )
        layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.5, 2.0))[..., None] * rng.uniform(0.3, 0.8)
        img = img * (1 - layer) + layer * colour.astype(np.float32)
    floor = np.array(
        colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.6))
    )
    below = np.clip(np.arange(size, dtype=np.float32) - ground + 0.5, 0, 1)[:, None, None]
    grain = (1 + 0.3 * texture * (smooth_noise(rng, (size, size), 2.5) - 0.5))[..., None]
    img = img * (1 - below) + below * floor.astype(np.float32) * grain
    return np.clip(img, 0, 1).astype(np.float32)
