"""Outlines of rigid parts in their local frame (pivot at the origin, tip along +x) and their mass."""

from __future__ import annotations

import numpy as np


def capsule(length: float, width0: float, width1: float, n: int = 10) -> np.ndarray:
    """Tapered segment from the pivot to (length, 0) with round caps of the end widths."""
    r0, r1 = width0 / 2, width1 / 2
    back = np.linspace(np.pi / 2, 3 * np.pi / 2, n)
    front = np.linspace(-np.pi / 2, np.pi / 2, n)
    pts = np.concatenate(
        [
            np.stack([length + r1 * np.cos(front), r1 * np.sin(front)], -1),
            np.stack([r0 * np.cos(back), r0 * np.sin(back)], -1),
        ]
    )
    return pts[::-1].copy()


def leaf(length: float, width: float, n: int = 12, base: float = 0.12) -> np.ndarray:
    """A pointed blade from slightly behind the pivot to the tip, widest at about 40% of its length."""
    u = np.linspace(0, 1, n)
    x = -base * length + u * (1 + base) * length
    half = width / 2 * np.sin(np.pi * u**0.8) ** 0.7 + 0.6
    upper = np.stack([x, half], -1)
    lower = np.stack([x, -half], -1)[::-1]
    return np.concatenate([upper, lower])


def disc(radius: float, centre: float, n: int = 20) -> np.ndarray:
    """A circle of ``radius`` centred at (centre, 0)."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre + radius * np.cos(a), radius * np.sin(a)], -1)


def box(x0: float, x1: float, half_width: float, corner: float, n: int = 5) -> np.ndarray:
    """A rounded rectangle spanning [x0, x1] along the axis and +-half_width across it."""
    corner = min(corner, half_width, (x1 - x0) / 2)
    pts = []
    centres = [
        (x1 - corner, half_width - corner),
        (x0 + corner, half_width - corner),
        (x0 + corner, -half_width + corner),
        (x1 - corner, -half_width + corner),
    ]
    for k, (cx, cy) in enumerate(centres):
        a = np.linspace(k * np.pi / 2, (k + 1) * np.pi / 2, n)
        pts.append(np.stack([cx + corner * np.cos(a), cy + corner * np.sin(a)], -1))
    return np.concatenate(pts)


def mass_properties(outline: np.ndarray, density: float = 1.0) -> tuple[float, np.ndarray, float]:
    """Mass, centroid (2,) and moment of inertia about the centroid of a uniform simple polygon."""
    x, y = outline[:, 0], outline[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    polar = ((x**2 + x * xn + xn**2 + y**2 + y * yn + yn**2) * cross).sum() / 12  # about the origin
    mass = abs(area) * density
    inertia = abs(polar) * density - mass * (cx**2 + cy**2)
    return mass, np.array([cx, cy]), inertia
