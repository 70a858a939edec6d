"""iPOKE's cVAE counterpart (paper 4.3 "Ablation", appendix F): iPOKE's parts, a Gaussian z instead of a cINN.

The parts are iPOKE's: the autoencoder's 3D-ResNet video encoder, latent ConvGRU and SPADE decoder
(:mod:`ipoke.models.autoencoder`, built from the same :class:`AEConfig`) and two conditioning encoders with
the architecture of Phi_x0 and Phi_c (:class:`ipoke.models.encoders.ConvEncoder`). The two differences from
iPOKE, as appendix F states them:

1. ``z`` is reparameterised, ``z = mu + sigma * eps``, and pulled towards N(0, I) by a KL term (weight 0.1,
   annealed in over 5 epochs; see :mod:`ipoke.train.cvae`). At test time ``z ~ N(0, I)``.
2. The GRU's hidden state starts at the stacked ``[z, Phi_x0(x0), Phi_c(c, x0)]`` (iPOKE's starts at z alone),
   so the GRU and the decoder are the AE's, widened to ``d + c1 + c2`` channels.

The authors' code (``PokeVAE`` in CompVis/ipoke) stacks z with a single encoding of ``[x0, c]`` and feeds the
GRU zeros; we follow the paper's description (both encodings, the AE's learned constant input).
"""

from __future__ import annotations

import torch
from torch import nn

from ipoke.config import Section
from ipoke.models.autoencoder import AEConfig, VideoAutoencoder, VideoEncoder
from ipoke.models.encoders import ConvEncoder, EncoderConfig


class CVAEConfig(Section):
    """The cVAE's parts: the autoencoder's architecture and the conditioning encoders'."""

    ae: AEConfig
    encoders: EncoderConfig

    @property
    def hidden_channels(self) -> int:
        """Channels of the GRU's hidden state ``[z, Phi_x0, Phi_c]``."""
        return self.ae.z_dim + self.encoders.image_channels + self.encoders.poke_channels


class CVAE(nn.Module):
    """Clip -> q(z | clip); ``(z, x0, poke)`` -> frames 1..T."""

    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        self.cfg = cfg
        res = cfg.ae.resolution
        self.encoder = VideoEncoder(cfg.ae)  # posterior mean and log-variance of z (d x 8 x 8)
        self.image_encoder = ConvEncoder(3, cfg.encoders.image_channels, cfg.encoders, res)  # Phi_x0
        self.poke_encoder = ConvEncoder(2 + 3, cfg.encoders.poke_channels, cfg.encoders, res)  # Phi_c
        # The AE's latent GRU and decoder at the width of the stacked hidden state; its own encoder is
        # replaced by the posterior above, whose z is only a part of that state.
        self.renderer = VideoAutoencoder(cfg.ae.model_copy(update={"z_dim": cfg.hidden_channels}))
        del self.renderer.encoder

    def condition(self, x0: torch.Tensor, poke: torch.Tensor) -> torch.Tensor:
        """``[Phi_x0(x0), Phi_c(poke, x0)]`` (B, c1 + c2, 8, 8); Phi_c sees ``[poke, x0]`` as iPOKE's does."""
        return torch.cat([self.image_encoder(x0), self.poke_encoder(torch.cat([poke, x0], dim=1))], dim=1)

    def decode(self, z: torch.Tensor, x0: torch.Tensor, poke: torch.Tensor) -> torch.Tensor:
        """``z`` (B, d, 8, 8) -> frames 1..T (B, T, 3, H, W) given the start frame and the poke map."""
        return self.renderer.decode(torch.cat([z, self.condition(x0, poke)], dim=1), x0)

    def forward(
        self, video: torch.Tensor, poke: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct frames 1..T of ``video`` (B, T+1, 3, H, W) from a posterior sample (training) or its
        mean (eval). Returns ``(frames, mu, logvar)``, as :class:`VideoAutoencoder` does."""
        return self.reconstruct(video, poke)[:3]

    def reconstruct(self, video: torch.Tensor, poke: torch.Tensor):
        """As ``forward``, plus the warp decoder's flows (see :meth:`VideoAutoencoder.reconstruct`)."""
        self.renderer.check_input(video)
        mu, logvar = self.encoder(video)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        x0 = video[:, 0]
        frames, flow = self.renderer.render(torch.cat([z, self.condition(x0, poke)], dim=1), x0)
        return frames, mu, logvar, flow

    @torch.inference_mode()
    def sample_batch(self, x0: torch.Tensor, poke: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """``n`` videos per start frame with ``z ~ N(0, I)``: (B, n, T + 1, 3, H, W), x0 first, the
        interface of :class:`ipoke.sampling.PokePipeline`; the same seed gives the same videos."""
        cfg = self.cfg.ae
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(len(x0) * n, cfg.z_dim, cfg.latent_size, cfg.latent_size, generator=generator)
        x0_n, poke_n = x0.repeat_interleave(n, dim=0), poke.repeat_interleave(n, dim=0)
        frames = self.decode(z.to(x0), x0_n, poke_n)
        return torch.cat([x0_n[:, None], frames], dim=1).unflatten(0, (len(x0), n))
