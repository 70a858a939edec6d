"""Physical sanity of the synthetic world over many seeds: stable, within joint limits, no parts passing
through each other, pokes that land, objects that settle, and hidden parameters that make motion vary."""

from __future__ import annotations

import numpy as np
import pytest

from ipoke.data.sources.synthetic import Params
from ipoke.data.synthetic import objects, physics, pokes, world
from ipoke.data.synthetic.kinematics import forward

PARAMS = Params(n_objects=24, videos_per_object=1)


def keypoints(skeleton, q_frames) -> np.ndarray:
    poses = [forward(skeleton, q) for q in q_frames]
    return np.array([np.concatenate([p.pivots, p.tips(skeleton)]) for p in poses])


@pytest.fixture(scope="module")
def simulated():
    """One video for each of 24 instances (12 plants, 12 puppets) with the default physics params."""
    out = []
    for spec in world.plan(PARAMS):
        scene = world.make_scene(PARAMS, spec.object_index, spec.family)
        trajectory, dynamics = world.simulate_video(PARAMS, scene, spec)
        out.append((spec, scene.model, trajectory))
    return out


def test_stable_within_limits_in_frame_and_without_self_penetration(simulated):
    for spec, model, tr in simulated:
        sk = model.skeleton
        assert np.isfinite(tr.q).all(), spec.video_id
        assert (tr.q >= sk.rest + sk.lower - 1e-9).all() and (tr.q <= sk.rest + sk.upper + 1e-9).all()
        assert np.abs(np.diff(tr.q, axis=0)).max() < 0.35, f"{spec.video_id}: a joint jumps between frames"
        kp = keypoints(sk, tr.q)
        assert np.linalg.norm(np.diff(kp, axis=0), axis=-1).max() < 0.12 * PARAMS.resolution
        may_touch = objects._may_touch(model)
        for t, q in enumerate(tr.q):
            assert objects.crossings(model, q, may_touch) == 0, f"{spec.video_id} frame {t}: parts cross"
            lo, hi = objects.extent(model, q)
            assert (lo >= 0).all() and (hi <= PARAMS.resolution - 1).all(), f"{spec.video_id} frame {t}"


def test_poked_point_reaches_its_target(simulated):
    errors, lengths = [], []
    for spec, model, tr in simulated:
        assert tr.pokes, f"{spec.video_id} has no poke"
        for timing, poke in tr.pokes:
            end = forward(model.skeleton, tr.q[timing.end]).to_world(poke.part, poke.local)
            start = forward(model.skeleton, tr.q[timing.start]).to_world(poke.part, poke.local)
            np.testing.assert_allclose(start, poke.origin, atol=1e-9)
            errors.append(np.linalg.norm(end - poke.target))
            lengths.append(np.linalg.norm(poke.target - poke.origin))
    lo, hi = (r * PARAMS.resolution for r in PARAMS.poke_reach)
    assert min(lengths) >= lo - 1e-6 and max(lengths) <= hi + 1e-6
    assert max(errors) < 2.5, f"worst poke misses its target by {max(errors):.2f} px"
    assert np.mean(errors) < 1.0


def test_objects_move_when_poked_and_settle_between_pokes(simulated):
    poked, settled = [], []
    for spec, model, tr in simulated:
        kp = keypoints(model.skeleton, tr.q)
        speed = np.linalg.norm(np.diff(kp, axis=0), axis=-1).max(1)  # fastest keypoint, frame t -> t+1
        busy = np.zeros(len(speed), bool)
        for timing, _ in tr.pokes:
            busy[timing.start : timing.end + 8] = True  # the poke and the first frames after release
        poked.append(speed[busy].mean())
        settled.append(speed[~busy].mean())
        window = max(np.linalg.norm(kp[t + 20] - kp[t], axis=-1).max() for t in range(len(kp) - 20))
        assert window > 0.05 * PARAMS.resolution, f"{spec.video_id}: no substantial motion over 20 frames"
    assert np.mean(settled) < 0.3 * np.mean(poked)


def test_same_image_and_poke_give_different_but_controlled_motion():
    spec = world.plan(PARAMS)[0]
    scene = world.make_scene(PARAMS, spec.object_index, spec.family)
    sk = scene.model.skeleton
    rng = np.random.default_rng(5)
    chain_parts = None
    poke = None
    while poke is None or chain_parts.all():
        poke = pokes.choose_poke(sk, scene.model.outlines, sk.rest, (12.0, 24.0), PARAMS.resolution, rng,
                                 lambda q, p, xy: True)  # fmt: skip
        chain_parts = sk.ancestry[poke.part]
    timing = [pokes.Timing(2, 10, 16)]
    runs = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        dyn = physics.sample_dynamics(
            sk, rng, PARAMS.natural_hz, PARAMS.damping_ratio, PARAMS.disturbance_rad
        )
        runs.append(
            physics.simulate(sk, dyn, timing, lambda q: poke, 24, PARAMS.fps, PARAMS.substeps, PARAMS.poke_hz)
        )
    for tr in runs:
        np.testing.assert_array_equal(tr.q[0], sk.rest)  # the same first frame
        end = forward(sk, tr.q[16]).to_world(poke.part, poke.local)
        assert np.linalg.norm(end - poke.target) < 2.5
    kps = [keypoints(sk, tr.q) for tr in runs]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.linalg.norm(kps[a] - kps[b], axis=-1).max() > 1.0, "hidden parameters changed nothing"


def test_simulation_is_deterministic():
    spec = world.plan(PARAMS)[1]
    scene = world.make_scene(PARAMS, spec.object_index, spec.family)
    a, _ = world.simulate_video(PARAMS, scene, spec)
    b, _ = world.simulate_video(PARAMS, world.make_scene(PARAMS, spec.object_index, spec.family), spec)
    np.testing.assert_array_equal(a.q, b.q)
    assert [(t, p.part) for t, p in a.pokes] == [(t, p.part) for t, p in b.pokes]


def test_poke_timings_follow_the_params():
    rng = np.random.default_rng(0)
    for _ in range(200):
        timings = pokes.plan_timings(rng, 48, (10, 18), (6, 12), 0.25, (6, 12))
        assert timings
        for k, t in enumerate(timings):
            assert 10 <= t.end - t.start <= 18 and t.start < t.drag_end < t.end <= 47
            if k:
                assert t.start - timings[k - 1].end >= 6


def test_pokes_start_on_the_onset_grid_without_overlapping():
    rng = np.random.default_rng(1)
    for _ in range(200):
        timings = pokes.plan_timings(rng, 48, (18, 22), (4, 8), 0.0, (6, 12), onset_grid=4)
        assert timings
        for k, t in enumerate(timings):
            assert t.start % 4 == 0 and 18 <= t.end - t.start <= 22 and t.end <= 47
            if k:
                assert t.start - timings[k - 1].end >= 4
