"""A test double with the ``PokePipeline`` interface, for the web app's tests (not a model).

``sample`` centre-crops and resizes the input to ``size`` and slides it along the first poke: frame t is the
image rolled by t/(T-1) of the poke's displacement, times a per-sample gain drawn from the seed. It is
deterministic in the seed, records every call, can be held on a gate, and counts how many calls overlap.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np


def gradient_image(height: int, width: int, hue: int) -> np.ndarray:
    """A gradient with a coloured disc: enough structure to see shifts and crops."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 96)], -1)
    image = image.astype(np.uint8)
    colour = cv2.cvtColor(np.uint8([[[hue, 200, 230]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
    cv2.circle(image, (width // 2, height // 2), min(height, width) // 4, colour, -1)
    return image


def model_view(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


class ShiftPipeline:
    def __init__(self, size: int = 32, n_frames: int = 5, max_pokes: int = 5):
        self.size, self.n_frames, self.max_pokes = size, n_frames, max_pokes
        self.calls: list[dict] = []
        self.gate: threading.Event | None = None  # when set to an Event, sample() waits for it
        self.max_overlap = 0
        self._running = 0
        self._lock = threading.Lock()

    def test_frames(self) -> list[tuple[str, np.ndarray]]:
        return [(f"frame-{i}", gradient_image(48, 64, hue)) for i, hue in enumerate((10, 60, 120))]

    def sample(self, image, pokes, n, seed, temperature=1.0):
        with self._lock:
            self._running += 1
            self.max_overlap = max(self.max_overlap, self._running)
            self.calls.append({"shape": image.shape, "pokes": list(pokes), "n": n, "seed": seed})
        try:
            if self.gate is not None:
                assert self.gate.wait(timeout=30), "test gate never opened"
            return self._videos(image, pokes, n, seed, temperature)
        finally:
            with self._lock:
                self._running -= 1

    def _videos(self, image, pokes, n, seed, temperature):
        start = model_view(image, self.size)
        scale = self.size / min(image.shape[:2])
        _, _, dx, dy = pokes[0] if pokes else (0.0, 0.0, 0.0, 0.0)  # no poke: the still image
        gains = 1.0 + 0.3 * temperature * np.random.default_rng(seed).standard_normal(n)
        out = np.empty((n, self.n_frames, self.size, self.size, 3), np.uint8)
        for i, gain in enumerate(gains):
            for t in range(self.n_frames):
                f = t / (self.n_frames - 1) * gain * scale
                out[i, t] = np.roll(start, (round(dy * f), round(dx * f)), axis=(0, 1))
        return out
