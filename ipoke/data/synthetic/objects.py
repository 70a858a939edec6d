"""Procedural object instances: rooted plants and humanoid puppets with random shape and appearance.

An instance is rejected and redrawn when some joint configuration within its limits would let two
non-adjacent parts cross (self-penetration) or leave the frame, so physics that respects the joint limits
can never produce either.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from ipoke.data.synthetic import shapes
from ipoke.data.synthetic.kinematics import Skeleton, forward

FAMILIES = ("plant", "puppet")
UP = -np.pi / 2  # world angle of "up" in image coordinates (y down)


@dataclass(frozen=True)
class Look:
    """Appearance of one part: two colours (RGB in [0, 1]) and a texture kind with its own seed."""

    colour: tuple[float, float, float]
    accent: tuple[float, float, float]
    texture: str
    seed: int


@dataclass(frozen=True)
class ObjectModel:
    family: str
    skeleton: Skeleton
    outlines: tuple[np.ndarray, ...]
    looks: tuple[Look, ...]
    depth: np.ndarray  # part indices, back to front
    names: tuple[str, ...]
    layered: np.ndarray  # (P,) bool: flat parts (leaves) that may pass in front of others, like foliage


@dataclass
class _Builder:
    """Accumulates parts; each part's pivot is given in its parent's frame."""

    parents: list[int] = field(default_factory=list)
    offsets: list[tuple[float, float]] = field(default_factory=list)
    rest: list[float] = field(default_factory=list)
    limits: list[tuple[float, float]] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    outlines: list[np.ndarray] = field(default_factory=list)
    looks: list[Look] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, name, parent, offset, rest, limits, length, outline, look) -> int:
        self.parents.append(parent)
        self.offsets.append(offset)
        self.rest.append(rest)
        self.limits.append(limits)
        self.lengths.append(length)
        self.outlines.append(outline)
        self.looks.append(look)
        self.names.append(name)
        return len(self.parents) - 1

    def build(self, family: str, depth: list[int]) -> ObjectModel:
        props = [shapes.mass_properties(o) for o in self.outlines]
        lower, upper = np.array(self.limits).T
        skeleton = Skeleton(
            parents=np.array(self.parents),
            offsets=np.array(self.offsets, dtype=float),
            rest=np.array(self.rest),
            lower=lower,
            upper=upper,
            lengths=np.array(self.lengths),
            masses=np.array([p[0] for p in props]),
            inertias=np.array([p[2] for p in props]),
            centroids=np.array([p[1] for p in props]),
        )
        layered = np.array([n == "leaf" for n in self.names])
        return ObjectModel(
            family,
            skeleton,
            tuple(self.outlines),
            tuple(self.looks),
            np.array(depth),
            tuple(self.names),
            layered,
        )


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))


def _look(rng: np.random.Generator, hue: float, sat: float, val: float, textures: tuple[str, ...]) -> Look:
    colour = _hsv(hue + rng.normal(0, 0.02), sat + rng.normal(0, 0.05), val + rng.normal(0, 0.05))
    accent = _hsv(hue + rng.normal(0, 0.08), sat + rng.uniform(-0.3, 0.1), val + rng.uniform(-0.35, 0.25))
    return Look(colour, accent, str(rng.choice(textures)), int(rng.integers(2**31)))


def plant(rng: np.random.Generator, size: int, thickness: float = 1.0) -> ObjectModel:
    """A rooted tree: a chain of trunk segments, alternating branches of one or two segments, leaves.

    ``thickness`` scales the trunk's width and the leaves (the parts a poke moves most)."""
    b = _Builder()
    height = rng.uniform(0.6, 0.8) * size
    n_trunk = int(rng.integers(2, 5))
    seg = height * 0.62 / n_trunk
    w_base = rng.uniform(0.035, 0.06) * size * thickness
    bark_hue, leaf_hue = (
        rng.uniform(0.05, 0.11),
        rng.uniform(0.17, 0.38) if rng.random() < 0.85 else rng.uniform(0.0, 0.1),
    )
    leaf_sat, leaf_val = rng.uniform(0.45, 0.9), rng.uniform(0.35, 0.8)
    leaf_len = rng.uniform(0.1, 0.17) * size * thickness
    leaf_wid = leaf_len * rng.uniform(0.35, 0.6)
    side = 1 if rng.random() < 0.5 else -1

    def bark() -> Look:
        return _look(rng, bark_hue, rng.uniform(0.4, 0.7), rng.uniform(0.25, 0.5), ("bark", "stripes"))

    def add_leaf(parent: int, along: float, rest: float) -> None:
        length = leaf_len * rng.uniform(0.8, 1.2)
        width = leaf_wid * rng.uniform(0.85, 1.15)
        look = _look(rng, leaf_hue, leaf_sat, leaf_val, ("veins", "noise"))
        # The axis (and its tip keypoint) stops short of the pointed end, which is thinner than a pixel.
        b.add(
            "leaf", parent, (along, 0.0), rest, (-0.5, 0.5), 0.85 * length, shapes.leaf(length, width), look
        )

    base = np.array([rng.uniform(0.35, 0.65) * size, size * rng.uniform(0.9, 0.95)])
    parent, width = -1, w_base
    trunk = []
    for _ in range(n_trunk):
        w_next = width * rng.uniform(0.65, 0.85)
        offset = tuple(base) if parent < 0 else (seg, 0.0)
        rest = UP + rng.normal(0, 0.06) if parent < 0 else rng.normal(0, 0.18)
        limits = (-0.15, 0.15) if parent < 0 else (-0.25, 0.25)
        parent = b.add("trunk", parent, offset, rest, limits, seg, shapes.capsule(seg, width, w_next), bark())
        trunk.append((parent, width))
        width = w_next
    for k, (t, tw) in enumerate(trunk[1:] if n_trunk > 2 else trunk):
        for along in sorted(rng.uniform(0.1, 0.9, size=int(rng.integers(1, 3)))):
            n_seg = int(rng.integers(1, 4))
            blen = height * rng.uniform(0.25, 0.4) * (1 - 0.12 * k)
            bw = tw * rng.uniform(0.55, 0.75)
            p, rest, offset = t, side * rng.uniform(0.7, 1.1), (seg * along, 0.0)
            for _ in range(n_seg):
                length = blen / n_seg
                p = b.add(
                    "branch",
                    p,
                    offset,
                    rest,
                    (-0.3, 0.3),
                    length,
                    shapes.capsule(length, bw, bw * 0.75),
                    bark(),
                )
                bw *= 0.75
                offset, rest = (length, 0.0), -side * rng.uniform(0.1, 0.35)
                if rng.random() < 0.7:
                    add_leaf(p, length * rng.uniform(0.4, 0.7), -side * rng.uniform(0.5, 0.9))
            add_leaf(p, b.lengths[p], rng.normal(0, 0.2))
            side = -side
    add_leaf(trunk[-1][0], seg, rng.normal(0, 0.15))
    leaves = [i for i, n in enumerate(b.names) if n == "leaf"]
    woods = [i for i, n in enumerate(b.names) if n != "leaf"]
    return b.build("plant", woods + leaves)


def puppet(rng: np.random.Generator, size: int, thickness: float = 1.0) -> ObjectModel:
    """A front-view humanoid: pelvis (root), torso, head, two-segment arms and legs; ``thickness`` scales
    the limbs' widths."""
    b = _Builder()
    h = rng.uniform(0.55, 0.78) * size  # standing height
    skin = _look(rng, rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95), ("noise",))
    shirt_hue, pants_hue = rng.uniform(0, 1), rng.uniform(0, 1)
    shirt_sv, pants_sv = rng.uniform(0.3, 0.9, 2), rng.uniform(0.2, 0.8, 2)
    clothes = ("stripes", "checks", "noise", "spots")

    def shirt() -> Look:
        return _look(rng, shirt_hue, *shirt_sv, clothes)

    def pants() -> Look:
        return _look(rng, pants_hue, *pants_sv, clothes)

    pelvis_h, hip_w = h * rng.uniform(0.08, 0.1), h * rng.uniform(0.15, 0.2)
    torso_l, shoulder_w = h * rng.uniform(0.26, 0.3), h * rng.uniform(0.2, 0.26)
    head_r = h * rng.uniform(0.065, 0.08)
    upper_arm, forearm = h * rng.uniform(0.15, 0.18), h * rng.uniform(0.14, 0.17)
    thigh, shin = h * rng.uniform(0.2, 0.23), h * rng.uniform(0.19, 0.22)
    limb_w, leg_w = h * rng.uniform(0.045, 0.06) * thickness, h * rng.uniform(0.06, 0.08) * thickness
    anchor = (rng.uniform(0.42, 0.58) * size, size * 0.5 + h * 0.02)

    pelvis = b.add(
        "pelvis",
        -1,
        anchor,
        UP + rng.normal(0, 0.04),
        (-0.12, 0.12),
        pelvis_h,
        shapes.box(-pelvis_h * 0.5, pelvis_h * 0.7, hip_w / 2, pelvis_h * 0.3),
        pants(),
    )
    torso = b.add(
        "torso",
        pelvis,
        (pelvis_h * 0.4, 0.0),
        rng.normal(0, 0.04),
        (-0.3, 0.3),
        torso_l,
        shapes.capsule(torso_l, hip_w * 0.85, shoulder_w * 0.85),
        shirt(),
    )
    head = b.add(
        "head",
        torso,
        (torso_l + head_r * 0.45, 0.0),
        rng.normal(0, 0.05),
        (-0.35, 0.35),
        1.8 * head_r,
        shapes.disc(head_r, head_r * 0.9),
        skin,
    )
    arms, legs = [], []
    for s in (-1, 1):  # s = -1: the side on the image's left
        splay = rng.uniform(0.25, 0.4)
        # Outward is positive angle for the left limbs and negative for the right ones.
        out = (-0.1, 1.5) if s < 0 else (-1.5, 0.1)
        ua = b.add(
            "upper_arm",
            torso,
            (torso_l * 0.92, s * shoulder_w * 0.42),
            np.pi - s * splay,
            out,
            upper_arm,
            shapes.capsule(upper_arm, limb_w, limb_w * 0.85),
            shirt(),
        )
        bend = (-0.3, 1.3) if s < 0 else (-1.3, 0.3)
        fa = b.add(
            "forearm",
            ua,
            (upper_arm, 0.0),
            -s * rng.uniform(0.0, 0.3),
            bend,
            forearm,
            shapes.capsule(forearm, limb_w * 0.85, limb_w * 0.75),
            skin,
        )
        leg_out = (-0.05, 0.55) if s < 0 else (-0.55, 0.05)
        th = b.add(
            "thigh",
            pelvis,
            (0.0, s * hip_w * 0.28),
            np.pi - s * rng.uniform(0.05, 0.15),
            leg_out,
            thigh,
            shapes.capsule(thigh, leg_w, leg_w * 0.85),
            pants(),
        )
        knee = (-0.12, 0.45) if s < 0 else (-0.45, 0.12)
        sh = b.add(
            "shin",
            th,
            (thigh, 0.0),
            s * rng.uniform(0.0, 0.1),
            knee,
            shin,
            shapes.capsule(shin, leg_w * 0.85, leg_w * 0.75),
            pants(),
        )
        arms += [ua, fa]
        legs += [th, sh]
    return b.build("puppet", legs + [pelvis, torso, head] + arms)


MAKERS = {"plant": plant, "puppet": puppet}


def _may_touch(model: ObjectModel) -> np.ndarray:
    """(P, P) bool: pairs allowed to overlap: a part and itself, parent and child, siblings sharing a
    pivot, and any pair with a layered part."""
    skeleton = model.skeleton
    adj = np.eye(skeleton.n_parts, dtype=bool) | model.layered[:, None] | model.layered[None, :]
    for i, p in enumerate(skeleton.parents):
        if p >= 0:
            adj[i, p] = adj[p, i] = True
            for j in range(i):
                if skeleton.parents[j] == p and np.allclose(skeleton.offsets[j], skeleton.offsets[i]):
                    adj[i, j] = adj[j, i] = True
    return adj


def _segments_cross(a0, a1, b0, b1) -> np.ndarray:
    """Whether 2D segments a0-a1 and b0-b1 properly intersect (broadcast over leading axes)."""

    def orient(p, q, r):
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    return (orient(a0, a1, b0) * orient(a0, a1, b1) < 0) & (orient(b0, b1, a0) * orient(b0, b1, a1) < 0)


def crossings(model: ObjectModel, q: np.ndarray, may_touch: np.ndarray | None = None) -> int:
    """Number of part pairs not allowed to touch whose axes (pivot to tip) cross in configuration ``q``."""
    pose = forward(model.skeleton, q)
    tips = pose.tips(model.skeleton)
    piv = pose.pivots
    cross = _segments_cross(piv[:, None], tips[:, None], piv[None, :], tips[None, :])
    may_touch = _may_touch(model) if may_touch is None else may_touch
    return int(np.triu(cross & ~may_touch, 1).sum())


def extent(model: ObjectModel, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min xy, max xy) of every outline in configuration ``q``."""
    pose = forward(model.skeleton, q)
    owner = np.concatenate([np.full(len(o), i) for i, o in enumerate(model.outlines)])
    pts = pose.to_world(owner, np.concatenate(model.outlines))
    return pts.min(0), pts.max(0)


def extreme_configurations(skeleton: Skeleton, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rest pose plus ``n`` configurations with every joint at one of its limits or at rest."""
    choice = rng.integers(0, 3, size=(n, skeleton.n_parts))
    bounds = np.stack([skeleton.lower, np.zeros_like(skeleton.lower), skeleton.upper])
    return skeleton.rest + np.concatenate(
        [np.zeros((1, skeleton.n_parts)), bounds[choice, np.arange(skeleton.n_parts)]]
    )


def is_valid(
    model: ObjectModel, size: int, rng: np.random.Generator, n_checks: int = 96, margin: float = 2.0
) -> bool:
    may_touch = _may_touch(model)
    for q in extreme_configurations(model.skeleton, rng, n_checks):
        lo, hi = extent(model, q)
        if (lo < margin).any() or (hi > size - 1 - margin).any() or crossings(model, q, may_touch):
            return False
    return True


def make_object(
    family: str, rng: np.random.Generator, size: int, thickness: float = 1.0, max_tries: int = 200
) -> ObjectModel:
    """Draw instances of ``family`` until one passes :func:`is_valid`."""
    for _ in range(max_tries):
        model = MAKERS[family](rng, size, thickness)
        if is_valid(model, size, rng):
            return model
    raise RuntimeError(f"no valid {family} found in {max_tries} draws at {size}px")
