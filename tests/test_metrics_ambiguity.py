"""Future-ambiguity curve (Fig. 9): mean error and spread of many samples for 1..5 pokes."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_scenes import render, textures

from ipoke.metrics import MetricUnavailable
from ipoke.metrics.ambiguity import (
    AmbiguityExample,
    ambiguity_curve,
    ambiguity_point,
    keypoint_error,
    lpips_error,
    poke_spacing,
    reference_error,
)
from ipoke.metrics.perceptual import load_lpips

SIZE = 32


def test_point_summarises_mean_spread_and_best_sample():
    errors = np.array([[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]])
    point = ambiguity_point(3, errors)
    assert point.n_pokes == 3 and point.n_examples == 2 and point.n_samples == 3
    assert point.mean_error == pytest.approx(2.5)
    assert point.std_error == pytest.approx((2.0 + 0.0) / 2)
    assert point.best_error == pytest.approx(1.5)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        ambiguity_point(1, errors[:, :1])


def example(seed: int) -> AmbiguityExample:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return AmbiguityExample(
        image=image, target=np.repeat(image[None], 3, axis=0), pokes=rng.uniform(2, 20, (5, 4))
    )


def noisy_sampler(calls: list):
    """Samples scatter around the ground truth, less the more pokes are given."""

    def sample(image, pokes, n, seed):
        calls.append((len(pokes), n, seed))
        noise = np.random.default_rng(seed).normal(0, 1, (n, 3, *image.shape)) * 8 * (6 - len(pokes))
        return np.clip(image[None, None] + noise, 0, 255).astype(np.uint8)

    return sample


def mean_abs_error(ex: AmbiguityExample, videos: np.ndarray) -> np.ndarray:
    return np.abs(videos.astype(float) - ex.target[None]).mean(axis=(1, 2, 3, 4))


def test_curve_falls_with_more_pokes_and_reuses_each_examples_seed():
    calls = []
    curve = ambiguity_curve(
        noisy_sampler(calls), [example(0), example(1)], mean_abs_error, n_samples=4, max_pokes=5, seed=10
    )
    assert [p.n_pokes for p in curve] == [1, 2, 3, 4, 5]
    means, spreads = [p.mean_error for p in curve], [p.std_error for p in curve]
    assert np.all(np.diff(means) < 0)
    assert np.all(np.diff(spreads) < 0)
    assert calls == [(k, 4, 10 + i) for k in range(1, 6) for i in range(2)]


def test_reference_error_averages_one_video_per_example():
    examples = [example(0), example(1)]
    assert reference_error(examples, mean_abs_error, lambda ex: ex.target) == 0.0
    brighter = {
        id(ex): np.clip(ex.target.astype(int) + 3 * i, 0, 255).astype(np.uint8)
        for i, ex in enumerate(examples)
    }
    expected = np.mean([mean_abs_error(ex, brighter[id(ex)][None])[0] for ex in examples])
    assert expected > 0
    assert reference_error(examples, mean_abs_error, lambda ex: brighter[id(ex)]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least one example"):
        reference_error([], mean_abs_error, lambda ex: ex.target)


def test_examples_need_enough_pokes():
    short = AmbiguityExample(image=example(0).image, target=example(0).target, pokes=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="fewer than 5 pokes"):
        ambiguity_curve(noisy_sampler([]), [short], mean_abs_error, n_samples=2)


def test_keypoint_error_tracks_keypoints_in_each_sample():
    background, texture = textures(SIZE, 12, seed=5)
    image = render(background, [(texture, 6, 6)])

    def shifted(dx: float, dy: float) -> np.ndarray:
        return np.stack([render(background, [(texture, 6 + dx * t / 2, 6 + dy * t / 2)]) for t in (1, 2)])

    ex = AmbiguityExample(
        image=image,
        target=shifted(2, -1),
        pokes=np.zeros((5, 4)),
        keypoints=np.array([[12.0, 12.0]]),
        gt_end_keypoints=np.array([[14.0, 11.0]]),
    )
    errors = keypoint_error(ex, np.stack([shifted(2, -1), shifted(5, 3)]))
    np.testing.assert_allclose(errors, [0.0, 5.0], atol=0.5)
    with pytest.raises(ValueError, match="keypoints"):
        keypoint_error(example(0), ex.target[None])


def test_lpips_error_is_zero_for_the_ground_truth():
    error = lpips_error(load_lpips())
    ex = example(2)
    noisy = noisy_sampler([])(ex.image, ex.pokes[:1], 1, 0)
    scores = error(ex, np.concatenate([ex.target[None], noisy]))
    assert isinstance(scores, np.ndarray) and scores.shape == (2,)
    assert abs(scores[0]) < 1e-6 < scores[1]


def test_missing_lpips_makes_the_curve_unavailable():
    missing = MetricUnavailable("lpips", "no weights", "get them")
    assert lpips_error(missing) is missing
    assert ambiguity_curve(noisy_sampler([]), [example(0)], missing) is missing


def test_poke_spacing_is_the_mean_pairwise_distance_per_example():
    def with_pokes(xy):
        pokes = np.array([[x, y, 1.0, 0.0] for x, y in xy])
        return AmbiguityExample(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4, 4, 3), np.uint8), pokes)

    triangle = with_pokes([(0, 0), (3, 4), (0, 4)])  # distances 5, 3, 4
    pair = with_pokes([(10, 10), (10, 12)])  # distance 2
    assert poke_spacing([triangle]) == pytest.approx(4.0)
    assert poke_spacing([triangle, pair]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least one example"):
        poke_spacing([])
    with pytest.raises(ValueError, match="at least two pokes"):
        poke_spacing([with_pokes([(1, 1)])])
