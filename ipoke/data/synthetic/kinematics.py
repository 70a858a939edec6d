"""Planar kinematic trees of rigid parts joined by rotational joints.

Part ``i`` has a pivot (its joint) and a local frame whose x axis runs from the pivot to its tip. Its
generalised coordinate ``q[i]`` is the joint angle relative to the parent's frame (for the root: the
world angle about a fixed anchor). All positions are in pixels at render resolution, y pointing down.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


def rotation(theta: np.ndarray | float) -> np.ndarray:
    """2x2 rotation matrices (..., 2, 2) for angles ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def perp(v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 2) by +90 degrees: the velocity of ``v`` under unit angular velocity."""
    return np.stack([-v[..., 1], v[..., 0]], -1)


@dataclass(frozen=True)
class Skeleton:
    """Topology, rest pose, joint limits and mass properties of an articulated object.

    ``parents`` lists each part's parent (-1 for the root, which must be part 0; parents precede
    children). ``offsets`` is each pivot in its parent's frame (root: the world anchor). ``lower`` and
    ``upper`` bound ``q - rest`` per joint. ``centroids`` are local centres of mass.
    """

    parents: np.ndarray  # (P,) int; only part 0 is a root
    offsets: np.ndarray  # (P, 2)
    rest: np.ndarray  # (P,)
    lower: np.ndarray  # (P,)
    upper: np.ndarray  # (P,)
    lengths: np.ndarray  # (P,) pivot-to-tip distance along the local x axis
    masses: np.ndarray  # (P,)
    inertias: np.ndarray  # (P,) about the centroid
    centroids: np.ndarray  # (P, 2)

    @property
    def n_parts(self) -> int:
        return len(self.parents)

    @functools.cached_property
    def ancestry(self) -> np.ndarray:
        """(P, P) bool: ``ancestry[i, j]`` when joint ``j`` moves part ``i`` (j is i or an ancestor)."""
        a = np.eye(self.n_parts, dtype=bool)
        for i, p in enumerate(self.parents):
            if p >= 0:
                a[i] |= a[p]
        return a

    @property
    def terminal(self) -> np.ndarray:
        """Indices of parts without children (their tips are extra keypoints)."""
        has_child = np.zeros(self.n_parts, dtype=bool)
        has_child[self.parents[self.parents >= 0]] = True
        return np.flatnonzero(~has_child)

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.rest + self.lower, self.rest + self.upper)


@dataclass(frozen=True)
class Pose:
    """World pose of every part: pivot positions (P, 2) and frame angles (P,)."""

    pivots: np.ndarray
    angles: np.ndarray

    def to_world(self, part: int | np.ndarray, local: np.ndarray) -> np.ndarray:
        """Map local points (..., 2) of ``part`` to world pixels."""
        c, s = np.cos(self.angles[part]), np.sin(self.angles[part])
        x, y = local[..., 0], local[..., 1]
        return self.pivots[part] + np.stack([c * x - s * y, s * x + c * y], -1)

    def affine(self) -> np.ndarray:
        """(P, 2, 3) affine maps local -> world pixels, one per part."""
        return np.concatenate([rotation(self.angles), self.pivots[:, :, None]], axis=2)

    def tips(self, skeleton: Skeleton) -> np.ndarray:
        local = np.stack([skeleton.lengths, np.zeros_like(skeleton.lengths)], -1)
        return self.to_world(np.arange(skeleton.n_parts), local)


def forward(skeleton: Skeleton, q: np.ndarray) -> Pose:
    """World angles sum the joint angles down the chain; each pivot adds its offset rotated by its
    parent's angle (vectorised over parts through the ancestry matrix)."""
    chain = skeleton.ancestry.astype(float)
    angles = chain @ q
    parents = np.maximum(skeleton.parents, 0)
    c, s = np.cos(angles[parents]), np.sin(angles[parents])
    ox, oy = skeleton.offsets[:, 0], skeleton.offsets[:, 1]
    steps = np.stack([c * ox - s * oy, s * ox + c * oy], -1)
    steps[skeleton.parents < 0] = 0.0
    root = skeleton.offsets[0]
    return Pose(root + chain @ steps, angles)


def point_jacobian(skeleton: Skeleton, pose: Pose, part: int, world: np.ndarray) -> np.ndarray:
    """(2, P) Jacobian of a world point rigidly attached to ``part`` with respect to ``q``."""
    moves = skeleton.ancestry[part]
    return (perp(world[None, :] - pose.pivots) * moves[:, None]).T


def mass_matrix(skeleton: Skeleton, pose: Pose) -> np.ndarray:
    """(P, P) joint-space inertia: sum over parts of m Jv^T Jv + I Jw^T Jw."""
    anc = skeleton.ancestry.astype(float)
    com = pose.to_world(np.arange(skeleton.n_parts), skeleton.centroids)
    jv = perp(com[:, None, :] - pose.pivots[None, :, :]) * anc[:, :, None]  # (part, joint, 2)
    return np.einsum("i,ija,ika->jk", skeleton.masses, jv, jv) + np.einsum(
        "i,ij,ik->jk", skeleton.inertias, anc, anc
    )
