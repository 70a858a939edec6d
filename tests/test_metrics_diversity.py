"""Diversity: mean pairwise MSE and LPIPS between the samples drawn for one poke."""

from __future__ import annotations

import itertools

import pytest
import torch

from ipoke.metrics import MetricUnavailable
from ipoke.metrics.diversity import pairwise_lpips, pairwise_mse
from ipoke.metrics.perceptual import load_lpips


def samples(n: int, seed: int, lead: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.rand(*lead, n, 3, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def lpips():
    return load_lpips()


def test_identical_samples_have_no_diversity(lpips):
    same = samples(1, 0).expand(5, -1, -1, -1, -1)
    assert pairwise_mse(same).item() == 0.0
    assert pairwise_lpips(same, lpips).abs().item() < 1e-6


def test_mse_matches_the_mean_over_ordered_pairs():
    s = samples(4, 1)
    ordered = [((s[j] - s[k]) ** 2).mean() for j, k in itertools.permutations(range(4), 2)]
    assert pairwise_mse(s).item() == pytest.approx(torch.stack(ordered).mean().item(), rel=1e-6)


def test_two_constant_samples_have_the_squared_gap():
    s = torch.stack([torch.full((2, 3, 8, 8), -0.5), torch.full((2, 3, 8, 8), 0.25)])
    assert pairwise_mse(s).item() == pytest.approx(0.75**2)


def test_leading_dimensions_give_one_score_per_poke(lpips):
    s = samples(3, 2, lead=(2,))
    mse, lp = pairwise_mse(s), pairwise_lpips(s, lpips)
    assert mse.shape == lp.shape == (2,)
    assert mse[1].item() == pytest.approx(pairwise_mse(s[1]).item(), rel=1e-6)
    brute = torch.stack(
        [lpips.videos(s[1, j], s[1, k]) for j, k in itertools.combinations(range(3), 2)]
    ).mean()
    assert lp[1].item() == pytest.approx(brute.item(), rel=1e-5)


def test_unavailable_lpips_passes_through():
    missing = MetricUnavailable("lpips", "no weights", "get them")
    assert pairwise_lpips(samples(2, 3), missing) is missing


def test_a_single_sample_is_rejected():
    with pytest.raises(ValueError, match="at least two samples"):
        pairwise_mse(samples(1, 4))
