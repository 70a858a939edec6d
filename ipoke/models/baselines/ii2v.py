"""II2V: the hierarchical image-to-sequence UNet of "Understanding Object Dynamics for Interactive
Image-to-Video Synthesis" (Blattmann et al., CVPR 2021), iPOKE's deterministic predecessor.

The object encoder E_sigma maps a frame to a hierarchy of object states ``[s_0, ..., s_n]``, fine to coarse:
one per halving of the resolution down to ``min_size`` (strided conv-norm-ELU blocks), plus a residual
bottleneck ``s_n`` at the coarsest size. The poke encoder E_delta maps the poke map to the latent interaction
``delta`` at the coarsest size. The hierarchical predictor (paper eq. 5) advances every level by one ConvGRU
step per frame, coarse to fine: the bottleneck GRU is driven by ``delta``, every finer GRU by the new state of
its coarser neighbour brought to its size and width by an upsampling function U (a transposed convolution
where the size doubles). The decoder G renders a frame from the whole hierarchy, fed at every scale as in a
UNet. So the states of frame ``t`` are the hierarchy of an image, and the state-matching loss of the second
training stage can compare them with E_sigma of the real frame ``t``.

Sizes follow the authors' code (``SkipSequenceModel`` of CompVis/interactive-image2video-synthesis): the
coarsest size is 16 px, object-encoder widths double from ``max(32, 512 / 2**n)`` up to 512 (128, 256 at
64 px; 64, 128, 256 at 128 px), the bottleneck and the poke encoding have 512 channels, the poke encoder's
widths double from 32 and end in two residual blocks, and the poke drives the predictor at every step. Hidden
states are as wide as the encoder level they start from. Deviations: GroupNorm with ``norm_groups`` groups
where the authors use instance normalisation (which removes every channel's mean per image; with a pixel loss
and few channels it cost the demo 8 dB of reconstruction: 22 against 30 dB after 300 batches), and each
level's GRU input is mapped to the level's width by U (the authors upsample it at its own width and widen
the gates instead).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import nn

from ipoke.config import Section
from ipoke.models.autoencoder import ConvGRUCell, group_norm


class II2VConfig(Section):
    """Architecture of II2V; the ``paper`` profile's values are the authors' 64 px model."""

    resolution: int = Field(64, gt=0)  # frame size H = W in pixels
    n_frames: int = Field(10, gt=0)  # frames T predicted after x0
    min_size: int = Field(16, gt=0)  # spatial size of the coarsest object state
    width: int = Field(128, gt=0)  # object-encoder channels at the first level (doubled per level)
    deep_width: int = Field(512, gt=0)  # cap of the doubling; channels of the bottleneck and of delta
    poke_width: int = Field(32, gt=0)  # poke-encoder channels at the first level (doubled per level)
    norm_groups: int = Field(16, gt=0)  # GroupNorm groups (fewer where a width is not divisible)

    @property
    def n_stages(self) -> int:
        """Halvings from the frame size to ``min_size``."""
        return int(math.log2(self.resolution // self.min_size))

    @property
    def widths(self) -> list[int]:
        """Channels of the object states ``s_0 .. s_n`` (the last one is the bottleneck)."""
        levels = [min(self.width * 2**i, self.deep_width) for i in range(self.n_stages)]
        return [*levels, self.deep_width]

    @model_validator(mode="after")
    def _check_sizes(self) -> II2VConfig:
        k = self.resolution // self.min_size
        if self.resolution % self.min_size or k < 2 or k & (k - 1):
            raise ValueError(
                f"resolution {self.resolution} must be min_size {self.min_size} times 2**k, k >= 1"
            )
        return self


def down_block(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    """Strided 3x3 convolution, GroupNorm, ELU: halves the size."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), group_norm(c_out, groups), nn.ELU())


class ResBlock(nn.Module):
    """conv-norm-ELU-conv-norm plus a (projected) shortcut; ``up`` doubles the size with transposed
    convolutions in the first conv and the shortcut (the authors' decoder blocks)."""

    def __init__(self, c_in: int, c_out: int, groups: int, up: bool = False):
        super().__init__()
        if up:
            first = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
            self.shortcut = nn.ConvTranspose2d(c_in, c_out, 2, 2)
        else:
            first = nn.Conv2d(c_in, c_out, 3, 1, 1)
            self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        second = nn.Conv2d(c_out, c_out, 3, 1, 1)
        norm1, norm2 = group_norm(c_out, groups), group_norm(c_out, groups)
        self.main = nn.Sequential(first, norm1, nn.ELU(), second, norm2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class ObjectEncoder(nn.Module):
    """E_sigma: frame (B, 3, H, W) -> object states ``[s_0, ..., s_n]``, fine to coarse."""

    def __init__(self, cfg: II2VConfig):
        super().__init__()
        widths, g = cfg.widths, cfg.norm_groups
        self.levels = nn.ModuleList(
            down_block(c_in, c_out, g) for c_in, c_out in zip([3, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottleneck = ResBlock(widths[-2], widths[-1], g)

    def forward(self, frame: torch.Tensor) -> list[torch.Tensor]:
        states, h = [], frame
        for level in self.levels:
            h = level(h)
            states.append(h)
        return [*states, self.bottleneck(h)]


class PokeEncoder(nn.Module):
    """E_delta: poke map (B, 2, H, W) in pixels -> latent interaction (B, deep_width, min_size, min_size)."""

    def __init__(self, cfg: II2VConfig):
        super().__init__()
        widths, g = [min(cfg.poke_width * 2**i, cfg.deep_width) for i in range(cfg.n_stages)], cfg.norm_groups
        blocks: list[nn.Module] = [
            down_block(c_in, c_out, g) for c_in, c_out in zip([2, *widths[:-1]], widths, strict=True)
        ]
        blocks += [ResBlock(widths[-1], cfg.deep_width, g), ResBlock(cfg.deep_width, cfg.deep_width, g)]
        self.net = nn.Sequential(*blocks)

    def forward(self, poke: torch.Tensor) -> torch.Tensor:
        return self.net(poke)


class HierarchicalPredictor(nn.Module):
    """One ConvGRU per level (paper eq. 5): ``delta`` drives the bottleneck, each new state the next finer
    level through U_l; every level's hidden state starts at the object state of x0."""

    def __init__(self, cfg: II2VConfig):
        super().__init__()
        widths = cfg.widths
        self.cells = nn.ModuleList(ConvGRUCell(c) for c in widths)
        # U_l maps the new state of level l + 1 to level l; levels n - 1 and n share the coarsest size.
        self.links = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1)
            if i < len(widths) - 2
            else nn.Conv2d(widths[i + 1], widths[i], 3, 1, 1)
            for i in range(len(widths) - 1)
        )

    def forward(self, delta: torch.Tensor, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """One time step: the states of the previous frame -> those of the next."""
        new = list(states)
        x = delta
        for level in reversed(range(len(states))):
            new[level] = self.cells[level](x, states[level])
            if level:
                x = self.links[level - 1](new[level])
        return new


class SkipDecoder(nn.Module):
    """G: object states ``[s_0, ..., s_n]`` -> frame (B, 3, H, W) in [-1, 1]; every level enters as a skip."""

    def __init__(self, cfg: II2VConfig):
        super().__init__()
        widths, g = cfg.widths, cfg.norm_groups
        self.head = ResBlock(widths[-1], widths[-2], g)
        outs = [widths[max(level - 1, 0)] for level in reversed(range(cfg.n_stages))]
        ins = [2 * widths[level] for level in reversed(range(cfg.n_stages))]
        self.ups = nn.ModuleList(
            ResBlock(c_in, c_out, g, up=True) for c_in, c_out in zip(ins, outs, strict=True)
        )
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, 1, 1)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        h = self.head(states[-1])
        for level, up in zip(reversed(range(len(self.ups))), self.ups, strict=True):
            h = up(torch.cat([h, states[level]], dim=1))
        return torch.tanh(self.to_rgb(h))


class II2V(nn.Module):
    """Start frame and poke map -> T frames, deterministically."""

    def __init__(self, cfg: II2VConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ObjectEncoder(cfg)
        self.poke_encoder = PokeEncoder(cfg)
        self.predictor = HierarchicalPredictor(cfg)
        self.decoder = SkipDecoder(cfg)

    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, 3, H, W) through E_sigma and G: the object state space of the first training stage."""
        return self.decoder(self.encoder(frames))

    def forward(self, x0: torch.Tensor, poke: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """``x0`` (B, 3, H, W) in [-1, 1], ``poke`` (B, 2, H, W) in pixels -> frames 1..T (B, T, 3, H, W) and
        the predicted state hierarchy of every frame (for the state-matching loss)."""
        s = self.cfg.resolution
        if x0.ndim != 4 or tuple(x0.shape[1:]) != (3, s, s) or tuple(poke.shape) != (len(x0), 2, s, s):
            raise ValueError(f"x0 must be (B, 3, {s}, {s}) and poke (B, 2, {s}, {s}); got {tuple(x0.shape)}, "
                             f"{tuple(poke.shape)}")
        states, delta = self.encoder(x0), self.poke_encoder(poke)
        frames, trajectory = [], []
        for _ in range(self.cfg.n_frames):
            states = self.predictor(delta, states)
            trajectory.append(states)
            frames.append(self.decoder(states))
        return torch.stack(frames, dim=1), trajectory

    @torch.inference_mode()
    def sample_batch(self, x0: torch.Tensor, poke: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        """The sampling interface of :class:`ipoke.sampling.PokePipeline`: (B, n, T + 1, 3, H, W), x0 first.
        II2V is deterministic, so the ``n`` videos are one video repeated and ``seed`` is unused."""
        frames, _ = self(x0, poke)
        video = torch.cat([x0[:, None], frames], dim=1)
        return video[:, None].expand(-1, n, *video.shape[1:])
