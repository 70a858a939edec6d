"""PSNR and SSIM of videos in [-1, 1], frame by frame."""

from __future__ import annotations

import math

import pytest
import torch

from ipoke.metrics.image import frame_psnr, frame_ssim, video_psnr, video_ssim


def video(seed: int, t: int = 4, size: int = 24) -> torch.Tensor:
    return torch.rand(t, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_identical_videos_score_perfectly():
    v = video(0)
    assert torch.isinf(video_psnr(v, v))
    assert video_psnr(v, v, max_db=60.0).item() == pytest.approx(60.0)
    assert video_ssim(v, v).item() == pytest.approx(1.0, abs=1e-5)


def test_psnr_of_a_known_offset():
    target = video(1)
    offsets = torch.tensor([0.1, 0.2, 0.05, 0.4])
    pred = target + offsets[:, None, None, None]
    expected = [10 * math.log10(2.0**2 / o**2) for o in offsets.tolist()]
    assert frame_psnr(pred, target).tolist() == pytest.approx(expected, rel=1e-4)
    assert video_psnr(pred, target).item() == pytest.approx(sum(expected) / 4, rel=1e-4)


def test_samples_broadcast_against_one_ground_truth():
    target = video(2)
    samples = torch.stack([target, target + 0.1, target + 0.2])
    assert frame_psnr(samples, target).shape == (3, 4)
    psnr, ssim = video_psnr(samples, target, max_db=100.0), video_ssim(samples, target)
    assert psnr.shape == ssim.shape == (3,)
    assert psnr[0] > psnr[1] > psnr[2]
    assert ssim[0] == pytest.approx(1.0, abs=1e-5) and ssim[1] < 1.0


def test_ssim_drops_with_noise_and_is_symmetric():
    target = video(3)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(4))
    scores = [video_ssim(target + s * noise, target).item() for s in (0.02, 0.1, 0.3)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    noisy = target + 0.1 * noise
    assert frame_ssim(noisy, target).tolist() == pytest.approx(frame_ssim(target, noisy).tolist(), abs=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="3, H, W"):
        frame_psnr(torch.zeros(4, 1, 16, 16), torch.zeros(4, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 11x11"):
        frame_ssim(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="expected videos"):
        video_psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="float torch tensor"):
        frame_psnr(torch.zeros(4, 3, 16, 16).numpy(), torch.zeros(4, 3, 16, 16))
