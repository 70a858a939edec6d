"""Procedural textures: part sprites (texture fixed in the part's frame, so it moves rigidly) and
static scene backgrounds. Everything is drawn from explicit seeds and computed in float64 with numpy/scipy
(OpenCV only rasterises polygons, in integer arithmetic), so the same seed gives the same values on every
machine."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from ipoke.data.synthetic.objects import Look

SUPERSAMPLE = 4


def _cubic_upsample_axis(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Catmull-Rom interpolation of ``a`` along ``axis`` to ``size`` samples (pixel-centre aligned)."""
    n = a.shape[axis]
    x = (np.arange(size, dtype=np.float64) + 0.5) * (n / size) - 0.5
    i = np.floor(x).astype(np.int64)
    t = x - i
    weights = (  # Catmull-Rom (Keys, a = -0.5) weights of the taps i-1, i, i+1, i+2
        ((-0.5 * t + 1.0) * t - 0.5) * t,
        (1.5 * t - 2.5) * t * t + 1.0,
        ((-1.5 * t + 2.0) * t + 0.5) * t,
        (0.5 * t - 0.5) * t * t,
    )
    shape = [1] * a.ndim
    shape[axis] = size
    out = np.zeros(a.shape[:axis] + (size,) + a.shape[axis + 1 :])
    for k, w in enumerate(weights):
        out += np.take(a, np.clip(i + k - 1, 0, n - 1), axis=axis) * w.reshape(shape)
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Band-limited noise in [0, 1] with features about ``cell`` pixels wide."""
    h, w = shape
    small = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)))
    big = _cubic_upsample_axis(_cubic_upsample_axis(small, h, 0), w, 1)
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
    cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)
    return big.reshape(shape[0], s, shape[1], s).sum(axis=(1, 3), dtype=np.int64) / (s * s)


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
    """A premultiplied RGBA sprite (H, W, 4) float64 of one part and the sprite pixel of its pivot."""
    lo = np.floor(outline.min(0)) - pad
    hi = np.ceil(outline.max(0)) + pad
    origin = -lo
    w, h = (hi - lo + 1).astype(int)
    alpha = coverage(outline, (h, w), origin)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    local = np.stack([u, v], -1) - origin
    half_width = float(np.abs(outline[:, 1]).max())
    rng = np.random.default_rng(look.seed)
    mix = _pattern(look, local, half_width, rng)[..., None]
    colour = (1 - mix) * np.array(look.colour) + mix * np.array(look.accent)
    shade = 1.0 - 0.25 * np.clip(np.abs(local[..., 1]) / max(half_width, 1.0), 0, 1) ** 2
    grain = 1.0 + 0.08 * (smooth_noise(rng, (h, w), 1.5) - 0.5)
    rgb = np.clip(colour * (shade * grain)[..., None], 0, 1)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1), origin


def _shape_outline(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ellipse or axis-aligned rectangle (polygon in pixel coordinates) for the wall."""
    centre = np.floor(rng.uniform(0, size, 2))
    axes = np.floor(rng.uniform(size / 16, size / 4, 2))
    if rng.random() < 0.5:
        angle = np.deg2rad(rng.uniform(0, 180))
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        ex, ey = axes[0] * np.cos(t), axes[1] * np.sin(t)
        cos, sin = np.cos(angle), np.sin(angle)
        return np.stack([centre[0] + ex * cos - ey * sin, centre[1] + ex * sin + ey * cos], -1)
    (x0, y0), (x1, y1) = centre - axes, centre + axes
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def background(rng: np.random.Generator, size: int, ground: float, texture: float = 1.0) -> np.ndarray:
    """A static scene (size, size, 3) float64 in [0, 1]: a wall with blotches and shapes, a floor below
    ``ground`` (pixel row), textured at several scales so that it is trackable but motionless.

    ``texture`` scales the amplitude of the wall's noise and the floor's grain (0: smooth)."""
    hue = rng.uniform(0, 1)
    wall = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.95)))
    wall2 = np.array(
        colorsys.hsv_to_rgb(hue + rng.normal(0, 0.1), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.9))
    )
    rows = np.linspace(0, 1, size)[:, None, None]
    img = ((1 - rows) * wall + rows * wall2) * np.ones((size, size, 1))
    for cell in (size / 4, size / 12, 3.0):
        img *= (1 + 0.25 * texture * (smooth_noise(rng, (size, size), cell) - 0.5))[..., None]
    for _ in range(int(rng.integers(3, 8))):
        colour = np.array(
            colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.95))
        )
        layer = coverage(_shape_outline(rng, size), (size, size), np.zeros(2))
        layer = gaussian_filter(layer, rng.uniform(0.5, 2.0), mode="constant")[..., None]
        layer = layer * rng.uniform(0.3, 0.8)
        img = img * (1 - layer) + layer * colour
    floor = np.array(
        colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.6))
    )
    below = np.clip(np.arange(size, dtype=np.float64) - ground + 0.5, 0, 1)[:, None, None]
    grain = (1 + 0.3 * texture * (smooth_noise(rng, (size, size), 2.5) - 0.5))[..., None]
    img = img * (1 - below) + below * floor * grain
    return np.clip(img, 0, 1)
