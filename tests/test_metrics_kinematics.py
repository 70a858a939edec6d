"""Kinematics maps (Fig. 7): the map lights up where motion follows the poke."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_scenes import render, textures

from ipoke.metrics.kinematics import end_displacements, kinematics_map, random_pokes, sample_kinematics_map


def test_random_pokes_sit_at_the_location_with_bounded_shifts():
    pokes = random_pokes((5.0, 7.0), 200, max_shift=4.0, rng=np.random.default_rng(0), min_shift=1.0)
    assert pokes.shape == (200, 4)
    assert (pokes[:, 0] == 5.0).all() and (pokes[:, 1] == 7.0).all()
    magnitude = np.hypot(pokes[:, 2], pokes[:, 3])
    assert magnitude.min() >= 1.0 and magnitude.max() <= 4.0
    again = random_pokes((5.0, 7.0), 200, max_shift=4.0, rng=np.random.default_rng(0), min_shift=1.0)
    np.testing.assert_array_equal(pokes, again)
    with pytest.raises(ValueError, match="min_shift"):
        random_pokes((0, 0), 3, max_shift=1.0, rng=np.random.default_rng(0), min_shift=2.0)


def test_map_separates_coupled_constant_and_independent_motion():
    rng = np.random.default_rng(1)
    n, h, w = 64, 6, 9
    pokes = random_pokes((1.0, 1.0), n, max_shift=5.0, rng=rng)
    displacements = np.zeros((n, h, w, 2))
    displacements[:, :, :3] = 0.8 * pokes[:, None, None, 2:]  # the poked part: follows the poke
    displacements[:, :, 3:6] = [2.0, -1.0]  # moves, but the same way whatever the poke
    displacements[:, :, 6:] = rng.normal(0, 0.2, (n, h, 3, 2))  # jitters independently of the poke
    result = kinematics_map((1.0, 1.0), pokes, displacements)
    assert result.variance.shape == result.correlation.shape == (h, w)
    assert np.unravel_index(result.variance.argmax(), (h, w))[1] < 3
    assert result.variance[:, :3].min() > 10 * result.variance[:, 6:].max()
    np.testing.assert_allclose(result.variance[:, 3:6], 0.0, atol=1e-12)
    np.testing.assert_allclose(result.correlation[:, :3], 1.0, atol=1e-9)
    np.testing.assert_array_equal(result.correlation[:, 3:6], 0.0)
    assert result.correlation[:, 6:].max() < 0.3


def test_variance_is_the_total_variance_of_the_end_shift():
    rng = np.random.default_rng(2)
    pokes = random_pokes((0.0, 0.0), 10, max_shift=3.0, rng=rng)
    displacements = rng.normal(size=(10, 2, 2, 2))
    result = kinematics_map((0.0, 0.0), pokes, displacements)
    expected = displacements.var(axis=0, ddof=1).sum(axis=-1)
    np.testing.assert_allclose(result.variance, expected)


def test_too_few_pokes_are_rejected():
    with pytest.raises(ValueError, match="N >= 4"):
        kinematics_map((0, 0), np.zeros((3, 4)), np.zeros((3, 2, 2, 2)))


SIZE, PATCH = 40, 12


def patch_sampler(calls: list):
    """A stand-in sampler: the patch under the poke moves by the poke; another patch stays put."""
    background, texture = textures(SIZE, PATCH, seed=3)
    _, still = textures(SIZE, PATCH, seed=4)

    def sample(image, pokes, n, seed):
        calls.append((pokes.copy(), n, seed))
        dx, dy = pokes[0, 2:]
        frames = [
            render(background, [(texture, 4 + dx * t / 2, 4 + dy * t / 2), (still, 24, 24)]) for t in (1, 2)
        ]
        return np.stack(frames)[None].repeat(n, axis=0)

    return sample, render(background, [(texture, 4, 4), (still, 24, 24)])


def test_end_displacements_recover_a_known_shift():
    sample, image = patch_sampler([])
    displacements = end_displacements(image, sample(image, np.array([[10.0, 10.0, 3.0, -2.0]]), 1, 0))
    assert displacements.shape == (1, SIZE, SIZE, 2)
    np.testing.assert_allclose(displacements[0, 10, 10], [3.0, -2.0], atol=0.5)
    np.testing.assert_allclose(displacements[0, 30, 30], [0.0, 0.0], atol=0.2)


def test_sampled_map_lights_up_the_poked_part():
    calls = []
    sample, image = patch_sampler(calls)
    result = sample_kinematics_map(sample, image, (10.0, 10.0), max_shift=4.0, n_pokes=8, seed=7)
    assert [c[2] for c in calls] == list(range(7, 15)) and all(c[1] == 1 for c in calls)
    inner_moving, inner_still = result.variance[7:13, 7:13], result.variance[27:33, 27:33]
    assert inner_moving.min() > 1.0 > 20 * inner_still.max()
    assert result.correlation[7:13, 7:13].min() > 0.9
    assert result.location == (10.0, 10.0)


def test_a_sampler_with_the_wrong_output_is_rejected():
    _, image = patch_sampler([])
    with pytest.raises(ValueError, match="sampler returned"):
        sample_kinematics_map(lambda *a: np.zeros((2, 2, SIZE, SIZE, 3), np.uint8), image, (10, 10), 3.0, 4)
