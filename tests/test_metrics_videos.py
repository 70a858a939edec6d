"""Video layout conversions between uint8 (T, H, W, 3) and float (T, 3, H, W) in [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ipoke.metrics.videos import broadcast_frame_pairs, float_to_uint8, uint8_to_float


def test_uint8_float_round_trip_is_exact():
    videos = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 6, 3), dtype=np.uint8)
    floats = uint8_to_float(videos)
    assert floats.shape == (2, 4, 3, 5, 6) and floats.dtype == torch.float32
    assert floats.min() >= -1 and floats.max() <= 1
    np.testing.assert_array_equal(float_to_uint8(floats), videos)


def test_out_of_range_floats_are_clipped():
    frames = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 5).expand(3, 1, 5).clone()
    assert float_to_uint8(frames)[0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_bad_layouts_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        uint8_to_float(np.zeros((4, 5, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        float_to_uint8(torch.zeros(4, 5, 6, 3))


def test_frame_pairs_broadcast_samples_against_one_target():
    a, b, lead = broadcast_frame_pairs(torch.zeros(5, 4, 3, 8, 8), torch.ones(4, 3, 8, 8))
    assert a.shape == b.shape == (20, 3, 8, 8) and lead == (5, 4)
    with pytest.raises(ValueError, match="frame sizes differ"):
        broadcast_frame_pairs(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 9))
