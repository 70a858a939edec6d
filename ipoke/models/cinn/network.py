"""The conditional invertible network tau_theta of iPOKE (paper 3.1-3.2, appendix E.2).

``forward(z, cond)`` maps a video latent z (d x 8 x 8) to the residual r ~ N(0, I) and returns
log|det dr/dz|; ``reverse(r, cond)`` maps back. ``cond`` is the concatenation of the conditioning maps (c_x0
and, with poke conditioning, c_poke; see ``ipoke.models.encoders.Conditioner``). Multi-scale: after each of
the K blocks a share of the channels leaves for r, so later blocks transform fewer channels.

Training minimises ``0.5 ||r||^2 - log|det J|`` (Eq. 8/16); ``nll`` adds the Gaussian constant so that it is
the exact negative log-likelihood of z, and ``bits_per_dim`` divides it by d*h*w*ln 2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ipoke.errors import IpokeError
from ipoke.models.cinn.blocks import flow_block
from ipoke.models.cinn.config import CINNConfig

MAX_REDRAWS = 100  # residual draws retried per sample when the inverse overflows (see CINN.sample)


class CINN(nn.Module):
    def __init__(self, config: CINNConfig, cond_channels: int):
        super().__init__()
        if cond_channels < 1:
            raise ValueError(f"cond_channels must be >= 1 (c_x0 always conditions), got {cond_channels}")
        self.config = config
        self.cond_channels = cond_channels
        self.exits = config.exit_channels
        self.blocks = nn.ModuleList(
            flow_block(config, channels, cond_channels, n, seed=config.shuffle_seed + k)
            for k, (channels, n) in enumerate(zip(config.block_channels, config.subblocks, strict=True))
        )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.config.latent_size
        return (self.config.latent_channels, size, size)

    def _check(self, name: str, x: Tensor, cond: Tensor) -> None:
        if tuple(x.shape[1:]) != self.latent_shape:
            shape = ", ".join(map(str, self.latent_shape))
            raise ValueError(f"{name} must be (B, {shape}), got {tuple(x.shape)}")
        expected = (x.shape[0], self.cond_channels, *self.latent_shape[1:])
        if tuple(cond.shape) != expected:
            raise ValueError(f"cond must be {expected} for this {name}, got {tuple(cond.shape)}")

    def forward(self, z: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """z -> (r, log|det dr/dz|) per sample."""
        self._check("z", z, cond)
        x, log_det, outputs = z, z.new_zeros(z.shape[0]), []
        for block, leave in zip(self.blocks[:-1], self.exits[:-1], strict=True):
            x, block_log_det = block(x, [cond])
            log_det = log_det + block_log_det
            outputs.append(x[:, :leave])
            x = x[:, leave:]
        x, block_log_det = self.blocks[-1](x, [cond])
        outputs.append(x)
        return torch.cat(outputs, dim=1), log_det + block_log_det

    def reverse(self, r: Tensor, cond: Tensor) -> Tensor:
        """r -> z, the exact inverse of ``forward``."""
        self._check("r", r, cond)
        parts = list(r.split(self.exits, dim=1))
        x, _ = self.blocks[-1](parts.pop(), [cond], rev=True)
        for block, part in zip(reversed(self.blocks[:-1]), reversed(parts), strict=True):
            x, _ = block(torch.cat([part, x], dim=1), [cond], rev=True)
        return x

    @torch.no_grad()
    def sample(self, cond: Tensor, n: int = 1, seed: int | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` latents per conditioning map: (B, n, d, h, w); the same seed gives the same samples.

        The masked convolutions invert row by row, and for residuals in the tails that solve overflows. How
        often depends on the trained model and the conditioning: one demo model overflowed for about 1 draw
        in 400, a retrain of it on the same data for 1 in 10 over the test clips and for up to 7 in 10 on a
        few clips' pokes, which needed up to 12 rounds of redraws. A failed draw is redrawn from the same
        generator, up to ``MAX_REDRAWS`` times, so a sample is never a non-finite video.
        """
        generator = None if seed is None else torch.Generator(device=cond.device).manual_seed(seed)
        cond = cond.repeat_interleave(n, dim=0)

        def draw(count: int) -> Tensor:
            shape = (count, *self.latent_shape)
            return torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype) * temperature

        z = self.reverse(draw(len(cond)), cond)
        failed = ~torch.isfinite(z).flatten(1).all(1)
        for _ in range(MAX_REDRAWS):
            if not failed.any():
                break
            z[failed] = self.reverse(draw(int(failed.sum())), cond[failed])
            failed = ~torch.isfinite(z).flatten(1).all(1)
        if failed.any():
            raise IpokeError(
                f"the cINN's inverse overflowed for {MAX_REDRAWS + 1} draws in a row (temperature "
                f"{temperature}): the model is probably broken; check its training NLL"
            )
        return z.view(-1, n, *self.latent_shape)

    def nll(self, z: Tensor, cond: Tensor) -> Tensor:
        """Exact negative log-likelihood of z given cond, in nats per sample."""
        r, log_det = self(z, cond)
        return objective(r, log_det) + 0.5 * r[0].numel() * math.log(2 * math.pi)


def objective(r: Tensor, log_det: Tensor) -> Tensor:
    """The training loss per sample, 0.5 ||r||^2 - log|det J| (the NLL without its constant)."""
    return 0.5 * r.pow(2).flatten(1).sum(1) - log_det


def bits_per_dim(nll: Tensor, dims: int) -> Tensor:
    """Converts an NLL in nats per sample to bits per latent dimension."""
    return nll / (dims * math.log(2))
