"""Turning uploaded bytes into the square RGB image the page shows and the model samples from."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps

ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class ImageRejected(Exception):
    """An upload the server refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, max_side: int, min_side: int) -> np.ndarray:
    """Decode PNG/JPEG/WebP bytes to uint8 RGB (H, W, 3), checking type and size before decoding pixels.

    EXIF rotation is applied (phone photos) and transparency is composited onto white.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected(413, f"image has too many pixels: {err}") from err
    except Exception as err:
        raise ImageRejected(415, "the upload is not a readable image; send a PNG, JPEG or WebP file") from err
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(415, f"unsupported image type {image.format}; send a PNG, JPEG or WebP file")
    width, height = image.size
    if max(width, height) > max_side:
        raise ImageRejected(413, f"image is {width}x{height} px; the limit is {max_side} px per side")
    if min(width, height) < min_side:
        raise ImageRejected(422, f"image is {width}x{height} px; it needs at least {min_side} px per side")
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba)
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except Exception as err:
        raise ImageRejected(415, f"the {image.format} image is truncated or corrupt: {err}") from err


def square_crop(image: np.ndarray, max_side: int) -> np.ndarray:
    """Centre-crop to a square (what the model sees) and shrink it to at most ``max_side`` px."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    if side > max_side:
        square = cv2.resize(square, (max_side, max_side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(square)
