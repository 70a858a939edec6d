"""Control error: tracking the poked point with optical flow through a video with known motion."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_scenes import translating_clip

from ipoke.metrics.control import control_error, end_point_error, sample_flow, track_points

SHIFT = (6.0, -4.0)
CENTRE = (24.0, 24.0)  # inside the 16x16 patch whose top-left corner starts at (16, 16)


@pytest.fixture(scope="module")
def clip():
    return translating_clip(SHIFT, n_frames=5)


def test_bilinear_sampling_is_exact_for_linear_flow():
    ys, xs = np.mgrid[0:10, 0:12].astype(np.float64)
    flow = np.stack([0.5 * xs - 0.25 * ys + 1, 0.1 * xs + 0.3 * ys], axis=-1)
    points = np.random.default_rng(0).uniform([0, 0], [11, 9], (20, 2))
    expected = np.stack(
        [0.5 * points[:, 0] - 0.25 * points[:, 1] + 1, 0.1 * points[:, 0] + 0.3 * points[:, 1]], 1
    )
    np.testing.assert_allclose(sample_flow(flow, points), expected, atol=1e-12)
    outside = sample_flow(flow, np.array([[-3.0, 4.0], [20.0, 50.0]]))
    np.testing.assert_allclose(outside, flow[[4, 9], [0, 11]])


def test_a_translating_patch_is_tracked(clip):
    trajectory = track_points(*clip, np.array([CENTRE]))
    assert trajectory.shape == (6, 1, 2)
    np.testing.assert_array_equal(trajectory[0, 0], CENTRE)
    expected = np.array(CENTRE) + np.outer(np.arange(6) / 5, SHIFT)
    np.testing.assert_allclose(trajectory[:, 0], expected, atol=0.5)


def test_control_error_is_the_known_miss(clip):
    reached = np.array([[*CENTRE, *SHIFT]])
    missed = np.array([[*CENTRE, SHIFT[0] + 3.0, SHIFT[1] - 4.0]])  # target 5 px beyond the end position
    assert control_error(*clip, reached)[0] == pytest.approx(0.0, abs=0.5)
    assert control_error(*clip, missed)[0] == pytest.approx(5.0, abs=0.5)


def test_background_poke_in_a_still_video():
    x0, video = translating_clip((0.0, 0.0), n_frames=3)
    errors = control_error(x0, video, np.array([[24.0, 24.0, 3.0, 4.0], [10.0, 30.0, 0.0, 0.0]]))
    np.testing.assert_allclose(errors, [5.0, 0.0], atol=0.2)


def test_end_point_error_against_ground_truth_keypoints(clip):
    points = np.array([CENTRE, [20.0, 28.0]])
    gt_end = points + np.array(SHIFT)
    np.testing.assert_allclose(end_point_error(*clip, points, gt_end), 0.0, atol=0.5)
    with pytest.raises(ValueError, match="must match"):
        end_point_error(*clip, points, gt_end[:1])


def test_bad_inputs_are_rejected(clip):
    x0, video = clip
    with pytest.raises(ValueError, match="outside the 48x48 frame"):
        control_error(x0, video, np.array([[60.0, 5.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        control_error(x0, video, np.array([CENTRE]))
    with pytest.raises(ValueError, match="uint8"):
        track_points(x0, video.astype(np.float32), np.array([CENTRE]))
    with pytest.raises(ValueError, match="differ in size"):
        track_points(x0[:40], video, np.array([CENTRE]))
