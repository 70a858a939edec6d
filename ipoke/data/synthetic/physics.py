"""Joint dynamics: damped rotational springs about each rest angle, smooth random disturbance torques and
a poke spring pulling one point through the kinematic chain.

Integration is linearly implicit Euler (the spring forces are linearised over each substep), which is
stable for any stiffness, so a stiff poke spring cannot make the simulation explode. Joint limits are hard
stops. Velocity-product (Coriolis) terms are left out: motion is slow and strongly damped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ipoke.data.synthetic.kinematics import Skeleton, forward, mass_matrix, point_jacobian
from ipoke.data.synthetic.pokes import Poke, Timing


@dataclass(frozen=True)
class Dynamics:
    """Hidden per-video physical parameters."""

    stiffness: np.ndarray  # (P,) torque per radian
    damping: np.ndarray  # (P, P) torque per radian/s
    wobble_amp: np.ndarray  # (P, W) disturbance in radians of equivalent deflection
    wobble_hz: np.ndarray  # (P, W)
    wobble_phase: np.ndarray  # (P, W)

    def disturbance(self, t: float) -> np.ndarray:
        waves = self.wobble_amp * np.sin(2 * np.pi * self.wobble_hz * t + self.wobble_phase)
        return self.stiffness * waves.sum(1)


def sample_dynamics(
    skeleton: Skeleton,
    rng: np.random.Generator,
    natural_hz: tuple[float, float],
    damping_ratio: tuple[float, float],
    disturbance: tuple[float, float],
    n_waves: int = 3,
) -> Dynamics:
    """Random joint stiffnesses scaled so that the object's slowest vibration mode (at rest) has a
    frequency drawn from ``natural_hz`` and a damping ratio drawn from ``damping_ratio`` (modal damping).
    The disturbance is a sum of slow sinusoids per joint."""
    mass = mass_matrix(skeleton, forward(skeleton, skeleton.rest))
    n = skeleton.n_parts
    stiffness = np.diag(mass) * rng.uniform(0.7, 1.4, n)
    eig, modes = scipy.linalg.eigh(np.diag(stiffness), mass)  # modes.T @ mass @ modes = I
    scale = (2 * np.pi * rng.uniform(*natural_hz)) ** 2 / eig[0]
    stiffness, omega = stiffness * scale, np.sqrt(eig * scale)
    # Faster modes are damped more (ratio growing with frequency, as with stiffness-proportional damping),
    # so a light limb cannot whip around when a poke releases, and every mode decays about as fast as the
    # slowest one.
    zeta = rng.uniform(*damping_ratio) * rng.uniform(0.9, 1.1, n) * omega / omega[0]
    shape = mass @ modes
    damping = shape @ np.diag(2 * zeta * omega) @ shape.T
    weights = rng.dirichlet(np.ones(n_waves), size=n)
    amp = rng.uniform(*disturbance) * rng.uniform(0.5, 1.0, (n, 1)) * weights
    return Dynamics(
        stiffness, damping, amp, rng.uniform(0.2, 1.5, (n, n_waves)), rng.uniform(0, 2 * np.pi, (n, n_waves))
    )


def _ease(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3 - 2 * s)


def _along(path: np.ndarray, s: float) -> np.ndarray:
    """Point at fraction ``s`` of a polyline's vertex sequence (linear between vertices)."""
    x = s * (len(path) - 1)
    i = min(int(x), len(path) - 2)
    return path[i] + (x - i) * (path[i + 1] - path[i])


@dataclass(frozen=True)
class Trajectory:
    q: np.ndarray  # (T, P) joint angles at each frame
    pokes: list[tuple[Timing, Poke]]


def simulate(
    skeleton: Skeleton,
    dynamics: Dynamics,
    timings: list[Timing],
    choose: Callable[[np.ndarray], Poke | None],
    n_frames: int,
    fps: float,
    substeps: int,
    poke_hz: float,
) -> Trajectory:
    """Integrate from the rest pose; at each poke's start ``choose(q)`` picks what to pull (None: skip)."""
    dt = 1.0 / (fps * substeps)
    q = skeleton.rest.copy()
    v = np.zeros_like(q)
    stiff, damp = dynamics.stiffness, dynamics.damping
    starts = {t.start: t for t in timings}
    active: tuple[Timing, Poke, float, float] | None = None
    done: list[tuple[Timing, Poke]] = []
    frames = [q.copy()]
    for f in range(n_frames - 1):
        if active is not None and f == active[0].end:
            active = None
        if f in starts:
            poke = choose(q)
            if poke is not None:
                active = (starts[f], poke, *_poke_spring(skeleton, q, poke, poke_hz))
                done.append((starts[f], poke))
        mass = mass_matrix(skeleton, forward(skeleton, q))  # varies slowly: refreshed once per frame
        for s in range(substeps):
            time = (f + s / substeps) / fps
            pose = forward(skeleton, q)
            force = -stiff * (q - skeleton.rest) + dynamics.disturbance(time)
            lhs = mass + dt * damp + np.diag(dt * dt * stiff)
            if active is not None:
                timing, poke, kp, cp = active
                frac = (f + s / substeps - timing.start) / (timing.drag_end - timing.start)
                handle = _along(poke.path, _ease(frac))
                jac = point_jacobian(skeleton, pose, poke.part, pose.to_world(poke.part, poke.local))
                force += jac.T @ (kp * (handle - pose.to_world(poke.part, poke.local)))
                lhs += (dt * cp + dt * dt * kp) * (jac.T @ jac)
            v = _solve_with_limits(lhs, mass @ v + dt * force, q, skeleton, dt)
            q = skeleton.clamp(q + dt * v)
        frames.append(q.copy())
    return Trajectory(np.array(frames), done)


def _solve_with_limits(
    lhs: np.ndarray, rhs: np.ndarray, q: np.ndarray, skeleton: Skeleton, dt: float
) -> np.ndarray:
    """Solve ``lhs v = rhs`` for the new velocities with joints that would pass a limit stopped exactly at
    it (an inelastic stop whose reaction acts through the whole chain, not just on the stopped joint)."""
    lo, hi = skeleton.rest + skeleton.lower, skeleton.rest + skeleton.upper
    locked = np.zeros(len(q), dtype=bool)
    v = np.linalg.solve(lhs, rhs)
    for _ in range(len(q)):
        nxt = q + dt * v
        hit = ~locked & ((nxt < lo) | (nxt > hi))
        if not hit.any():
            break
        locked |= hit
        v = np.where(locked, (np.clip(nxt, lo, hi) - q) / dt, v)
        free = ~locked
        v[free] = np.linalg.solve(lhs[np.ix_(free, free)], rhs[free] - lhs[np.ix_(free, locked)] @ v[locked])
    return v


def _poke_spring(skeleton: Skeleton, q: np.ndarray, poke: Poke, hz: float) -> tuple[float, float]:
    """Stiffness and critical damping giving the poked point a natural frequency ``hz`` along its most
    mobile direction."""
    pose = forward(skeleton, q)
    jac = point_jacobian(skeleton, pose, poke.part, poke.origin)
    mobility = jac @ np.linalg.solve(mass_matrix(skeleton, pose), jac.T)
    m_eff = 1.0 / np.linalg.eigvalsh(mobility)[-1]
    kp = m_eff * (2 * np.pi * hz) ** 2
    return kp, 2 * np.sqrt(kp * m_eff)
