"""Pokes: when they happen in a video (timing plan) and what they pull (a point on a part and a target
that the kinematic chain can reach within its joint limits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ipoke.data.synthetic.kinematics import Skeleton, forward


@dataclass(frozen=True)
class Timing:
    """A poke drags its handle from frame ``start`` to ``drag_end``, holds it, and releases at ``end``."""

    start: int
    drag_end: int
    end: int


@dataclass(frozen=True)
class Poke:
    part: int
    local: np.ndarray  # (2,) the pulled point in the part's frame
    origin: np.ndarray  # (2,) its pixel position when the poke starts
    target: np.ndarray  # (2,) where the poke pulls it
    path: np.ndarray  # (N, 2) a reachable path from origin to target; the handle drags along it


def plan_timings(
    rng: np.random.Generator,
    n_frames: int,
    poke_frames: tuple[int, int],
    settle_frames: tuple[int, int],
    still_probability: float,
    still_frames: tuple[int, int],
    onset_grid: int = 1,
) -> list[Timing]:
    """Pokes one after another, each followed by a settling gap and sometimes a longer still stretch.

    Every poke starts on a multiple of ``onset_grid`` frames (the next one at or after the planned time),
    so that a pipeline cutting clips every ``onset_grid`` frames starts a clip exactly at each poke."""

    def on_grid(t: int) -> int:
        return -(-t // onset_grid) * onset_grid

    timings = []
    t = on_grid(int(rng.integers(0, 6)))
    while True:
        duration = int(rng.integers(poke_frames[0], poke_frames[1] + 1))
        if t + duration > n_frames - 1:
            return timings
        drag = max(1, round(duration * rng.uniform(0.55, 0.75)))
        timings.append(Timing(t, t + drag, t + duration))
        t += duration + int(rng.integers(settle_frames[0], settle_frames[1] + 1))
        if rng.random() < still_probability:
            t += int(rng.integers(still_frames[0], still_frames[1] + 1))
        t = on_grid(t)


def reachable_path(
    skeleton: Skeleton,
    q: np.ndarray,
    part: int,
    local: np.ndarray,
    reach: tuple[float, float],
    bounds: tuple[float, float],
    rng: np.random.Generator,
    tries: int = 30,
    steps: int = 16,
) -> np.ndarray | None:
    """A path (steps + 1, 2) for the point ``local`` on ``part`` to its target: the point's positions
    under a random change of the joints along the part's chain, applied gradually, that stays inside the
    joint limits (with a margin), moves the point by a distance within ``reach`` pixels and keeps it inside
    ``bounds``. None when no draw qualifies."""
    chain = skeleton.ancestry[part]
    start = forward(skeleton, q).to_world(part, local)
    room_lo = np.minimum(skeleton.rest + 0.85 * skeleton.lower - q, 0)
    room_hi = np.maximum(skeleton.rest + 0.85 * skeleton.upper - q, 0)
    for _ in range(tries):
        dq = np.where(chain, rng.uniform(room_lo, room_hi), 0.0)
        for scale in (1.0, 0.7, 0.5, 0.35, 0.25):
            target = forward(skeleton, q + scale * dq).to_world(part, local)
            dist = np.linalg.norm(target - start)
            if dist < reach[0]:
                break
            if dist <= reach[1] and (target >= bounds[0]).all() and (target <= bounds[1]).all():
                return np.array(
                    [
                        forward(skeleton, q + a * scale * dq).to_world(part, local)
                        for a in np.linspace(0, 1, steps + 1)
                    ]
                )
    return None


def choose_poke(
    skeleton: Skeleton,
    outlines: tuple[np.ndarray, ...],
    q: np.ndarray,
    reach: tuple[float, float],
    size: int,
    rng: np.random.Generator,
    visible: Callable[[np.ndarray, int, np.ndarray], bool],
    tries: int = 20,
) -> Poke | None:
    """Pick a visible point on some part and a reachable target for it."""
    pose = forward(skeleton, q)
    for _ in range(tries):
        part = int(rng.integers(skeleton.n_parts))
        outline = outlines[part]
        # A point well inside the outline: shrink a random outline vertex towards the part's axis.
        vertex = outline[rng.integers(len(outline))]
        local = np.array([np.clip(vertex[0], 0, skeleton.lengths[part]), vertex[1] * rng.uniform(0, 0.5)])
        origin = pose.to_world(part, local)
        if not visible(q, part, origin):
            continue
        path = reachable_path(skeleton, q, part, local, reach, (4.0, size - 5.0), rng)
        if path is not None:
            return Poke(part, local, origin, path[-1], path)
    return None
