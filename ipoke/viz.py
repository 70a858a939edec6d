"""Drawing pokes on frames: an arrow from the poked pixel to its target and a dot on the target.

A poke is ``(x, y, dx, dy)`` in the frames' pixel coordinates (x right, y down). The n-th poke always gets
the n-th colour of :data:`POKE_COLORS`, so a page, a figure and a video show the same poke in the same colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Poke = tuple[float, float, float, float]

POKE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (64, 160, 255),
    (255, 200, 0),
    (64, 220, 120),
    (220, 96, 255),
)

# Sub-pixel precision of cv2 drawing calls: coordinates are passed as integers scaled by 2**_SHIFT.
_SHIFT = 4


def poke_color(index: int) -> tuple[int, int, int]:
    return POKE_COLORS[index % len(POKE_COLORS)]


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _fixed(x: float, y: float) -> tuple[int, int]:
    return round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT))


def draw_pokes(frames: np.ndarray, pokes: Sequence[Poke], thickness: int | None = None) -> np.ndarray:
    """Return a copy of uint8 ``frames`` (..., H, W, 3) with every poke drawn on every frame.

    Line thickness and dot size follow the frame size unless ``thickness`` is given, so a 64 px frame
    gets a 1 px arrow and a 256 px frame a 2 px one. Each arrow gets a dark outline to stay visible on
    bright and dark content alike.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(
            f"draw_pokes: expected uint8 frames (..., H, W, 3), got {frames.dtype} {frames.shape}"
        )
    height, width = frames.shape[-3:-1]
    width_px = thickness or max(1, round(min(height, width) / 128))
    overlay = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    for index, (x, y, dx, dy) in enumerate(pokes):
        start, end = _fixed(x, y), _fixed(x + dx, y + dy)
        length = float(np.hypot(dx, dy))
        tip = min(0.4, 6.0 * width_px / length) if length > 0 else 0.0
        radius = round((2.0 * width_px + 1.0) * (1 << _SHIFT))
        for color, extra in (((0, 0, 0), width_px), (poke_color(index), 0)):
            for canvas, value in ((overlay, color), (mask, 255)):
                if length > 0:
                    cv2.arrowedLine(canvas, start, end, value, width_px + extra, cv2.LINE_AA, _SHIFT, tip)
                cv2.circle(canvas, end, radius + (extra << _SHIFT) // 2, value, -1, cv2.LINE_AA, _SHIFT)
    drawn = frames.copy()
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return drawn
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))  # blend only where something is drawn
    alpha = (mask[box].astype(np.float32) / 255.0)[..., None]
    region = drawn[(..., *box, slice(None))]
    blended = region.astype(np.float32) * (1.0 - alpha) + overlay[box].astype(np.float32) * alpha
    drawn[(..., *box, slice(None))] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return drawn
