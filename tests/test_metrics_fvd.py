"""FVD: Frechet distance against closed forms and scipy; I3D loading and batching with a tiny TorchScript."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from ipoke.errors import IpokeError
from ipoke.metrics import MetricUnavailable
from ipoke.metrics.fvd import (
    I3D_URL,
    I3DFeatures,
    feature_statistics,
    frechet_distance,
    fvd,
    i3d_path,
    load_i3d,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=8), random_spd(rng, 8)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8 * np.trace(sigma))


def test_shifted_means_give_squared_mean_distance():
    rng = np.random.default_rng(1)
    mu, sigma, shift = rng.normal(size=6), random_spd(rng, 6), rng.normal(size=6)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(shift @ shift, rel=1e-6)


def test_diagonal_covariances_match_the_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-8)


def test_scalar_gaussians():
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(2.0**2 + (2.0 - 3.0) ** 2)


def test_general_covariances_match_the_symmetric_scipy_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    s1, s2 = random_spd(rng, 10), random_spd(rng, 10)
    root1 = scipy.linalg.sqrtm(s1).real
    cross = scipy.linalg.sqrtm(root1 @ s2 @ root1).real  # symmetric PSD: same trace as sqrt(S1 S2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-7)


def test_rank_deficient_covariances_stay_finite():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 12)), rng.normal(size=(3, 12)) + 1
    value = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert np.isfinite(value) and value > 0


def test_mismatched_moments_are_rejected():
    with pytest.raises(ValueError, match="moments do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_statistics_are_mean_and_unbiased_covariance():
    features = np.random.default_rng(5).normal(size=(20, 4))
    mu, sigma = feature_statistics(features)
    np.testing.assert_allclose(mu, features.mean(0))
    np.testing.assert_allclose(sigma, np.cov(features.T, ddof=1))
    with pytest.raises(ValueError, match="at least two"):
        feature_statistics(features[:1])


class TinyI3D(torch.nn.Module):
    """Same call signature as the StyleGAN-V I3D TorchScript; checks the layout it is given."""

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 5 or x.shape[1] != 3:
            raise ValueError("expected uint8 (N, 3, T, H, W)")
        if not (rescale and resize and return_features):
            raise ValueError("expected rescale, resize and return_features")
        y = x.float() / 127.5 - 1.0
        y = F.interpolate(y, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        return torch.cat(
            [y.mean(dim=(2, 3, 4)), y[:, :, -1].mean(dim=(2, 3)) - y[:, :, 0].mean(dim=(2, 3))], 1
        )


class WrongOutput(torch.nn.Module):
    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        return x.float().mean()


@pytest.fixture(scope="module")
def tiny_i3d_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "i3d_torchscript.pt"
    torch.jit.script(TinyI3D()).save(str(path))
    return path


def clips(n: int, seed: int, t: int = 11, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, size, size, 3), dtype=np.uint8)


def test_i3d_is_found_in_the_weights_dir(tiny_i3d_file, monkeypatch):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tiny_i3d_file.parent))
    assert i3d_path() == tiny_i3d_file
    assert isinstance(load_i3d(), I3DFeatures)


def test_default_weights_dir_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("IPOKE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert i3d_path() == tmp_path / ".cache" / "ipoke" / "weights" / "i3d_torchscript.pt"


def test_missing_i3d_is_reported_not_computed(tmp_path):
    missing = load_i3d(tmp_path / "i3d_torchscript.pt")
    assert isinstance(missing, MetricUnavailable)
    assert str(tmp_path) in missing.reason and I3D_URL in missing.how_to_fix
    assert missing.as_record()["status"] == "not computed"
    assert fvd(clips(2, 0), clips(2, 1), missing) is missing


def test_features_follow_the_call_convention(tiny_i3d_file):
    i3d = load_i3d(tiny_i3d_file)
    gray = np.full((2, 11, 16, 16, 3), 51, np.uint8)
    np.testing.assert_allclose(i3d(gray)[:, :3], 51 / 127.5 - 1, atol=1e-6)


def test_batching_does_not_change_features(tiny_i3d_file):
    videos = clips(7, 2)
    whole = load_i3d(tiny_i3d_file, batch_size=16)(videos)
    batched = load_i3d(tiny_i3d_file, batch_size=3)(videos)
    assert whole.shape == (7, 6) and whole.dtype == np.float64
    np.testing.assert_allclose(batched, whole, rtol=1e-6, atol=1e-6)


def test_fvd_is_the_frechet_distance_of_feature_moments(tiny_i3d_file):
    i3d = load_i3d(tiny_i3d_file)
    real, generated = clips(8, 3, t=3), clips(8, 4, t=3) // 2
    expected = frechet_distance(*feature_statistics(i3d(generated)), *feature_statistics(i3d(real)))
    assert fvd(real, generated, i3d) == pytest.approx(expected)
    assert expected > 0.1
    assert fvd(real, real, i3d) == pytest.approx(0.0, abs=1e-6)


def test_bad_clips_are_rejected(tiny_i3d_file):
    i3d = load_i3d(tiny_i3d_file)
    with pytest.raises(ValueError, match="uint8"):
        i3d(clips(2, 0).astype(np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        fvd(clips(3, 0), clips(3, 1, t=10), i3d)


def test_corrupt_or_foreign_weights_name_the_file(tmp_path):
    corrupt = tmp_path / "i3d_torchscript.pt"
    corrupt.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(IpokeError, match=str(corrupt)):
        load_i3d(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.jit.script(WrongOutput()).save(str(foreign))
    with pytest.raises(IpokeError, match="expected \\(batch, features\\)"):
        load_i3d(foreign)(clips(2, 0))
