"""Simulated user pokes, sampled from a clip's start->end flow at load time (paper 3.3, appendix E.3).

Foreground pokes: candidate pixels are those whose min-max normalised flow magnitude exceeds
``mean + 2 std`` of the normalised map (falling back to ``mean + std``, then ``mean``, when no pixel passes;
as in the authors' code). ``n`` ~ uniform ``1..max_pokes`` distinct candidates are drawn; each poke is the
flow vector at its pixel, written as a ``patch_size`` square of that displacement into a ``(2, H, W)`` map.

Background pokes (probability ``background_prob``, 1/12 in the paper): locations are drawn from static
pixels (normalised magnitude at most its mean, and no moving pixel within the patch radius so the patch
stays off the object) and the displacements from the foreground candidates, so they look like real pokes;
the training target for such a sample is the still video (handled by the loader).

``motion_evidence`` (a deviation, on by default): weight-free flow puts its largest magnitudes on flat
walls and dark backdrops, so the authors' candidates are then also required to show, in the clip's own
frames, that they move (:mod:`ipoke.data.motion_evidence`: the pixel's appearance changes over the clip
beyond the camera noise, and x0 has texture there). Where no candidate of the threshold chain passes,
every pixel with that evidence is a candidate. Background pokes then keep their patch off every changing
pixel, and off textured pixels with above-mean flow, whatever the flow says elsewhere. On a textured
figure moving in front of a noisy flat wall (``tests/test_poke_evidence.py``) this takes foreground
pokes on the figure from 0-40% to over 90%.

``foreground_filter``: when the sample carries an object mask (synthetic GT), foreground candidates are
restricted to the object and background candidates to its complement.

A clip with no motion at all has no candidates above threshold; then every pixel is a candidate and the
pokes carry zero displacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from scipy.ndimage import binary_dilation

from ipoke.config import Section
from ipoke.data.motion_evidence import MotionEvidence


class PokeParams(Section):
    max_pokes: int = Field(5, ge=1, description="n_pokes is uniform in 1..max_pokes")
    patch_size: int = Field(5, ge=1, description="side of the square patch each poke is written into (odd)")
    background_prob: float = Field(1 / 12, ge=0.0, le=1.0, description="share of background pokes")
    foreground_filter: bool = Field(False, description="restrict pokes with the GT object mask if present")
    motion_evidence: bool = Field(
        True, description="require candidates to change over the clip and have texture (see module doc)"
    )


@dataclass
class Pokes:
    poke: np.ndarray  # float32 (2, H, W): (dx, dy) inside each patch, zero elsewhere
    points: np.ndarray  # float32 (max_pokes, 4): rows (x, y, dx, dy), zero-padded
    n: int
    background: bool


def normalised_magnitude(flow: np.ndarray) -> np.ndarray:
    mag = np.linalg.norm(np.asarray(flow, np.float32), axis=0)
    span = float(mag.max() - mag.min())
    return (mag - mag.min()) / span if span > 0 else np.zeros_like(mag)


def foreground_candidates(norm: np.ndarray, moving: np.ndarray | None = None) -> np.ndarray:
    """Boolean (H, W): pixels clearly above the clip's typical motion (the authors' thresholds over the
    whole map), and among them those with evidence of ``moving`` when it is given and any has it."""
    mean, std = float(norm.mean()), float(norm.std())
    within = moving if moving is not None and moving.any() else np.ones_like(norm, dtype=bool)
    for threshold in (mean + 2 * std, mean + std, mean):
        cand = (norm > threshold) & within
        if cand.any():
            return cand
    return within.copy()


def background_candidates(
    norm: np.ndarray, patch_size: int, evidence: MotionEvidence | None = None
) -> np.ndarray:
    """Boolean (H, W): static pixels whose poke patch does not touch moving pixels.

    Moving: above-mean flow magnitude; with ``evidence``, changing pixels and textured ones with
    above-mean flow (flow on flat regions is not trusted either way)."""
    moving = norm > norm.mean()
    if evidence is not None:
        moving = evidence.changing | (moving & evidence.textured)
    static = ~moving
    radius = patch_size // 2
    if radius > 0 and moving.any():
        far = ~binary_dilation(moving, structure=np.ones((2 * radius + 1,) * 2, bool))
        if far.any():
            return far
    return static if static.any() else np.ones_like(norm, dtype=bool)


def draw_patches(points: np.ndarray, size: tuple[int, int], patch_size: int) -> np.ndarray:
    """(n, 4) rows (x, y, dx, dy) -> (2, H, W) map with each displacement in a square around (x, y)."""
    h, w = size
    out = np.zeros((2, h, w), np.float32)
    r = patch_size // 2
    for x, y, dx, dy in points:
        x, y = int(round(x)), int(round(y))
        ys, xs = slice(max(y - r, 0), min(y + r + 1, h)), slice(max(x - r, 0), min(x + r + 1, w))
        out[0, ys, xs] = dx
        out[1, ys, xs] = dy
    return out


def sample_pokes(
    flow: np.ndarray, rng: np.random.Generator, params: PokeParams, mask: np.ndarray | None = None,
    evidence: MotionEvidence | None = None,
) -> Pokes:
    """Simulate ``1..max_pokes`` pokes from a ``(2, H, W)`` flow field (see the module docstring).

    ``evidence`` (from the clip's frames, :func:`ipoke.data.motion_evidence.motion_evidence`) is used
    when given and ``params.motion_evidence`` is on; callers without frames get the flow-only pokes.
    """
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[1:]
    norm = normalised_magnitude(flow)
    evidence = evidence if params.motion_evidence else None
    fg = foreground_candidates(norm, None if evidence is None else evidence.moving)
    bg = background_candidates(norm, params.patch_size, evidence)
    if params.foreground_filter and mask is not None:
        obj = np.asarray(mask) > 0
        fg = fg & obj if (fg & obj).any() else fg
        bg = bg & ~obj if (bg & ~obj).any() else bg
    background = bool(rng.random() < params.background_prob)
    n = int(rng.integers(1, params.max_pokes + 1))
    fg_idx = np.flatnonzero(fg)
    if background:
        loc_idx = rng.choice(np.flatnonzero(bg), size=min(n, int(bg.sum())), replace=False)
        src_idx = rng.choice(fg_idx, size=len(loc_idx), replace=True)
    else:
        loc_idx = rng.choice(fg_idx, size=min(n, len(fg_idx)), replace=False)
        src_idx = loc_idx
    ys, xs = np.divmod(loc_idx, w)
    sy, sx = np.divmod(src_idx, w)
    points = np.zeros((params.max_pokes, 4), np.float32)
    points[: len(loc_idx)] = np.stack([xs, ys, flow[0, sy, sx], flow[1, sy, sx]], axis=1)
    poke = draw_patches(points[: len(loc_idx)], (h, w), params.patch_size)
    return Pokes(poke, points, len(loc_idx), background)
