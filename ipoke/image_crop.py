"""What the model sees of an image of any size: its centre square. Says so in words, and checks pokes given
in the image's own pixels against it, so that messages use the coordinates the user gave."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ipoke.errors import IpokeError


def crop_note(shape: tuple[int, ...]) -> str:
    """What the model sees of an image of ``shape`` (H, W, ...): "" for a square one, else e.g.
    ``"image 200x128: using its centre 128x128 square (x 36..163)"``."""
    height, width = int(shape[0]), int(shape[1])
    if height == width:
        return ""
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    span = f"x {left}..{left + side - 1}" if width > height else f"y {top}..{top + side - 1}"
    return f"image {width}x{height}: using its centre {side}x{side} square ({span})"


def check_pokes(shape: tuple[int, ...], pokes: Sequence[Sequence[float]]) -> None:
    """Raise naming the poke, in the image's own pixels, when its start or target lies outside the centre
    square the model sees (the same rule as the web app's)."""
    height, width = int(shape[0]), int(shape[1])
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    for number, (x, y, dx, dy) in enumerate(np.asarray(pokes, np.float64).reshape(-1, 4), start=1):
        for what, (px, py) in (("start", (x, y)), ("target", (x + dx, y + dy))):
            if not (left <= px <= left + side - 1 and top <= py <= top + side - 1):
                where = crop_note(shape) or f"image {width}x{height}"
                raise IpokeError(
                    f"poke {number}: {what} ({px:g}, {py:g}) lies outside the part of the image the model "
                    f"sees ({where}; x {left}..{left + side - 1}, y {top}..{top + side - 1})"
                )
