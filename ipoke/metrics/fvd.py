"""Frechet Video Distance with the Kinetics-400 I3D used by StyleGAN-V / DIGAN.

Protocol (paper appendix G): 1000 generated and 1000 real clips, each the start frame x0 followed by the
10 frames after it (11 frames); the generated clips start with the conditioning frame. Clips go to the
detector as uint8 ``(N, 3, T, H, W)``; with ``rescale=True`` it maps [0, 255] to [-1, 1], with
``resize=True`` it resizes every frame to 224x224 itself, and ``return_features=True`` returns the 400-d
pre-softmax logits. Moments use the unbiased covariance (``np.cov``) and the distance uses
``scipy.linalg.sqrtm`` as in the TTUR/pytorch-fid reference and the authors' code. The authors ran a
different PyTorch I3D port; absolute numbers are therefore comparable with StyleGAN-V-style FVD, not
exactly with the paper's tables.

Weights: ``i3d_torchscript.pt`` from :data:`I3D_URL`, looked up in ``$IPOKE_WEIGHTS_DIR`` or
``~/.cache/ipoke/weights``; without it FVD is reported as :class:`MetricUnavailable`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from ipoke.errors import IpokeError
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import check_uint8_videos
from ipoke.stage import progress

I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
I3D_FILENAME = "i3d_torchscript.pt"
I3D_CALL_KWARGS = {"rescale": True, "resize": True, "return_features": True}
WEIGHTS_DIR_ENV = "IPOKE_WEIGHTS_DIR"
FVD_NUM_VIDEOS = 1000
FVD_NUM_FRAMES = 11  # x0 + 10 generated frames


def weights_dir() -> Path:
    """``$IPOKE_WEIGHTS_DIR`` if set, else ``~/.cache/ipoke/weights``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "ipoke" / "weights"


def i3d_path() -> Path:
    return weights_dir() / I3D_FILENAME


class I3DFeatures:
    """Runs a TorchScript I3D over uint8 clips in batches and returns one feature row per clip."""

    def __init__(
        self,
        module: torch.nn.Module,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        source: str = "I3D",
    ):
        self.module = module.eval().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.source = source

    @torch.no_grad()
    def __call__(self, videos: np.ndarray) -> np.ndarray:
        """``(N, T, H, W, 3)`` uint8 clips -> ``(N, D)`` float64 features."""
        videos = check_uint8_videos(videos, ndim=5)
        rows = []
        starts = range(0, videos.shape[0], self.batch_size)
        for start in progress(starts, desc="I3D features", total=len(starts), unit="batch"):
            batch = torch.from_numpy(videos[start : start + self.batch_size]).permute(0, 4, 1, 2, 3)
            try:
                out = self.module(batch.contiguous().to(self.device), **I3D_CALL_KWARGS)
            except Exception as err:
                raise IpokeError(f"{self.source}: I3D failed on clips {tuple(batch.shape)}: {err}") from err
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != batch.shape[0]:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise IpokeError(
                    f"{self.source}: expected (batch, features) from the I3D, got {shape}; "
                    f"is it the TorchScript model from {I3D_URL}?"
                )
            rows.append(out.double().cpu().numpy())
        return np.concatenate(rows)


def load_i3d(
    path: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 16
) -> I3DFeatures | MetricUnavailable:
    """The I3D from ``path`` (default :func:`i3d_path`), or why it cannot be used."""
    path = Path(path) if path is not None else i3d_path()
    if not path.is_file():
        return MetricUnavailable(
            metric="fvd",
            reason=f"I3D weights not found at {path}",
            how_to_fix=(
                f"Download {I3D_URL} to {path} (e.g. `curl -L -o {path} '{I3D_URL}'`), or set "
                f"{WEIGHTS_DIR_ENV} to the folder holding {I3D_FILENAME}, or pass its path explicitly."
            ),
        )
    try:
        with warnings.catch_warnings():  # the published I3D only exists as TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise IpokeError(
            f"{path}: not a TorchScript module ({err}); download it again from {I3D_URL}"
        ) from err
    return I3DFeatures(module, device=device, batch_size=batch_size, source=str(path))


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
