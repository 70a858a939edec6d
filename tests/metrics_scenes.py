"""Small synthetic scenes for the metrics tests: textured patches moving by known amounts."""

from __future__ import annotations

import cv2
import numpy as np


def textures(size: int, patch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A faint smooth background ``(size, size)`` and a high-contrast texture ``(patch, patch)``."""
    rng = np.random.default_rng(seed)
    background = (
        cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 1.5) * 0.3 + 60
    )
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (patch, patch)).astype(np.float32), (0, 0), 1.0)
    return background, texture


def render(background: np.ndarray, patches: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
    """RGB uint8 frame: each ``(texture, x, y)`` pasted with its top-left corner at sub-pixel (x, y)."""
    h, w = background.shape
    frame = background.copy()
    for texture, x, y in patches:
        canvas = np.zeros((h, w), np.float32)
        mask = np.zeros((h, w), np.float32)
        p = texture.shape[0]
        canvas[:p, :p], mask[:p, :p] = texture, 1.0
        shift = np.float32([[1, 0, x], [0, 1, y]])
        canvas = cv2.warpAffine(canvas, shift, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, shift, (w, h), flags=cv2.INTER_LINEAR)
        frame = frame * (1 - mask) + canvas * mask
    gray = np.clip(frame, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def translating_clip(
    shift: tuple[float, float],
    n_frames: int = 5,
    size: int = 48,
    patch: int = 16,
    origin: tuple[float, float] = (16.0, 16.0),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``x0 (H, W, 3)`` and ``video (T, H, W, 3)``: a patch moving linearly by ``shift`` over T frames."""
    background, texture = textures(size, patch, seed)
    frames = [
        render(
            background, [(texture, origin[0] + shift[0] * t / n_frames, origin[1] + shift[1] * t / n_frames)]
        )
        for t in range(n_frames + 1)
    ]
    return frames[0], np.stack(frames[1:])
