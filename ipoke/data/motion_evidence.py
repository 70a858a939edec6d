"""Evidence, from the frames alone, that a pixel of the start frame really moves.

Weight-free flow (DIS, Farneback) reports large motion on flat walls and dark backdrops, where any
displacement explains the frames equally well. Two checks that need no flow and no weights separate
those pixels from moving ones:

* ``changing``: the pixel's appearance changes over the clip. After a light blur, the largest difference
  to x0 over all frames exceeds a level set by the clip's own camera noise (estimated from the median
  frame-to-frame difference, which static pixels dominate), so noise alone does not pass it.
* ``textured``: x0 has texture around the pixel (local standard deviation above the noise), so that a
  displacement there is measurable at all. It also keeps out the flat wall that a moving figure uncovers
  or covers, which changes but is not the figure.

``moving`` (changing and textured, eroded by one pixel) is what poke candidates are restricted to; the
complement of ``changing``, grown by the poke patch, is where background pokes may go. ``moving_share``
summarises a whole video for the still flag of ``extract_frames``.

Measured on the failure case (``tests/test_poke_evidence.py``, ``pytest -s`` prints the table): of the
candidates the flow alone picks, 0% lie on the figure; restricted by |x_T - x0|, temporal std or any-frame
change 12-30%; by texture, or change and texture, 73% (the one-pixel band of wall along the figure's
edge); by forward-backward consistency 0% (DIS's wall flow is smooth, so it agrees with itself); by the
eroded change-and-texture 98%.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import binary_erosion

MIN_CHANGE = 6.0  # grey levels (of 255): the change threshold never drops below this, even for clean video
CHANGE_SIGMAS = 4.5  # ... and is this many standard deviations of a blurred frame difference of pure noise
BLUR_NOISE = 0.375  # the 3x3 Gaussian ([1, 2, 1] / 4 per axis) keeps this share of white noise's std
MIN_TEXTURE = 3.0  # grey levels of local standard deviation (3x3) that count as texture ...
TEXTURE_NOISE = 2.0  # ... or this many noise standard deviations, whichever is larger


@dataclass(frozen=True)
class MotionEvidence:
    changing: np.ndarray  # bool (H, W): appearance changes over the clip
    textured: np.ndarray  # bool (H, W): x0 has texture here
    noise: float  # estimated camera noise, grey levels

    @property
    def moving(self) -> np.ndarray:
        """Changing and textured, in the whole 3x3 neighbourhood: the texture measure reaches one pixel
        across an edge, and without the erosion the flat wall just ahead of a moving figure, which the
        figure covers, counts too. Thin parts that the erosion removes entirely are kept as they are."""
        both = self.changing & self.textured
        core = binary_erosion(both, np.ones((3, 3), bool))
        return core if core.any() else both


def grey(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB -> float32 (T, H, W) luminance in grey levels."""
    return np.asarray(frames, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def noise_level(g: np.ndarray) -> float:
    """Camera noise (std, grey levels) from the median absolute difference of consecutive frames.

    For noise of std s, a difference has std s * sqrt(2) and median absolute value 0.6745 of that; the
    median is taken over all pixels, so a moving part covering less than half the frame does not sway it.
    """
    if len(g) < 2:
        return 0.0
    return float(np.median(np.abs(np.diff(g, axis=0)))) / (0.6745 * np.sqrt(2))


def _blur(g: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (3, 3), 0) for f in g])


def changing_pixels(g: np.ndarray, noise: float) -> np.ndarray:
    """bool (H, W): blurred grey value differs from x0's by more than the noise allows in some frame."""
    b = _blur(g)
    level = max(MIN_CHANGE, CHANGE_SIGMAS * np.sqrt(2) * BLUR_NOISE * noise)
    return np.abs(b[1:] - b[0]).max(axis=0) > level if len(b) > 1 else np.zeros(g.shape[1:], bool)


def textured_pixels(g0: np.ndarray, noise: float) -> np.ndarray:
    """bool (H, W): local (3x3) standard deviation of x0 above the texture threshold."""
    mean = cv2.blur(g0, (3, 3))
    var = np.maximum(cv2.blur(g0 * g0, (3, 3)) - mean * mean, 0.0)
    return np.sqrt(var) > max(MIN_TEXTURE, TEXTURE_NOISE * noise)


def motion_evidence(frames: np.ndarray) -> MotionEvidence:
    """Evidence for every pixel of ``frames[0]`` from uint8 (T, H, W, 3) frames (x0 first)."""
    g = grey(frames)
    noise = noise_level(g)
    return MotionEvidence(changing_pixels(g, noise), textured_pixels(g[0], noise), noise)


def moving_share(frames: np.ndarray, chunk: int = 64) -> float:
    """Share of pixels that change (see :func:`changing_pixels`) at some point of a whole video.

    Frames are compared with the first frame in chunks, so a long video costs memory per chunk only.
    """
    g0 = grey(frames[:1])
    noise = noise_level(grey(frames[: min(len(frames), 16)]))
    changed = np.zeros(frames.shape[1:3], bool)
    for lo in range(1, len(frames), chunk):
        changed |= changing_pixels(np.concatenate([g0, grey(frames[lo : lo + chunk])]), noise)
    return float(changed.mean())
