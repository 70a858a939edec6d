"""The baselines the evaluation scores beside iPOKE (paper Tables 1 and 3), behind one small interface.

A :class:`Method` is a key, labels, whether it is stochastic, and ``sample(batch, n, seed)``: ``n`` videos
(B, n, T + 1, 3, S, S) in [-1, 1], x0 first, for a test batch of the loader's batch contract. Methods that
only need the start frame and the poke map wrap a model with the ``sample_batch(x0, poke, n, seed)`` of
:class:`ipoke.sampling.PokePipeline` (:func:`poke_method`); Hao et al.'s warping also reads the real clip
(its trajectories come from the test video, as in appendix F). The protocol samples a deterministic method
once per clip and reports no diversity for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ipoke.models.baselines.cvae import CVAE, CVAEConfig
from ipoke.models.baselines.hao import HaoConfig, HaoWarping
from ipoke.models.baselines.ii2v import II2V, II2VConfig
from ipoke.models.baselines.io import load_model

BASELINES = ("ii2v", "hao", "cvae")


@dataclass(frozen=True)
class Method:
    key: str  # its key in metrics.json and the per-clip table
    name: str  # short, for grid columns
    label: str  # for table rows
    stochastic: bool
    sample: Callable[[dict, int, int], torch.Tensor]  # (batch, n, seed) -> (B, n, T + 1, 3, S, S)


class PokeSampler(Protocol):
    def sample_batch(self, x0: torch.Tensor, poke: torch.Tensor, n: int, seed: int) -> torch.Tensor: ...


def poke_method(
    key: str, name: str, label: str, stochastic: bool, model: PokeSampler, device: torch.device
) -> Method:
    """A method from a model that samples from the start frame and the poke map alone."""

    def sample(batch: dict, n: int, seed: int) -> torch.Tensor:
        return model.sample_batch(batch["video"][:, 0].to(device), batch["poke"].to(device), n, seed)

    return Method(key, name, label, stochastic, sample)


def hao_method(cfg: HaoConfig) -> Method:
    hao = HaoWarping(cfg)

    def sample(batch: dict, n: int, seed: int) -> torch.Tensor:
        return hao.batch_videos(batch["video"], batch["poke_points"], batch["n_pokes"], seed)

    label = f"Hao et al. [27]: x0 warped along {cfg.k} tracked trajectories (appendix F, no network)"
    return Method("hao", "Hao et al.", label, False, sample)


def load_baselines(
    keys: Sequence[str], models: Path, hao: HaoConfig, device: torch.device
) -> list[Method]:
    """The methods named in ``keys`` (of :data:`BASELINES`), trained ones from ``models/<key>/``."""
    methods = []
    for key in keys:
        if key == "hao":
            methods.append(hao_method(hao))
        elif key == "ii2v":
            model = load_model(models / key, key, II2VConfig, II2V, "train_ii2v").to(device)
            label = "II2V [6]: hierarchical image-to-sequence UNet, deterministic"
            methods.append(poke_method(key, "II2V", label, False, model, device))
        elif key == "cvae":
            model = load_model(models / key, key, CVAEConfig, CVAE, "train_cvae").to(device)
            label = "iPOKE cVAE: the same parts with a Gaussian z, sampled from the prior"
            methods.append(poke_method(key, "iPOKE cVAE", label, True, model, device))
        else:
            raise ValueError(f"unknown baseline {key!r}; known: {', '.join(BASELINES)}")
    return methods
