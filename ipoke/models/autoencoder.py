"""The video autoencoder of iPOKE (paper 3.2, appendix E.1).

A clip ``X = [x0, x1, ..., xT]`` is encoded by a 3D ResNet into ``z`` (``d x 8 x 8``). A convolutional GRU
whose hidden states all start at ``z`` and whose input is a learned constant unrolls ``T`` latent states; a
2D ResNet decoder with spectral norm renders each state into a frame, its upsampling blocks followed by SPADE
normalisation conditioned on ``x0``.

Two options (off in the paper, on in the CPU demo) make motion cheap to learn for a small network trained
for minutes: ``encoder_motion_input`` also feeds the encoder the differences ``x_t - x0`` (the clip's
content, made explicit), and ``decoder_output: warp`` renders a frame as ``x0`` warped by a predicted
backward flow, blended by a predicted mask with a predicted colour for what the warp cannot show
(disocclusions). The warp decoder starts as the identity (zero flow, mask on the warp): at initialisation it
copies ``x0``, and moving a part means predicting where its pixels come from rather than redrawing them.

Channel lists are written for the largest resolution: an input of ``8 * 2**k`` pixels uses the first
``k + 1`` encoder widths and the last ``k + 1`` decoder widths (the reference code's convention: 64 px drops
the last encoder and the first decoder entry of the 128 px lists).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ipoke.atomic import atomic_path, write_text
from ipoke.config import Section
from ipoke.errors import IpokeError

WEIGHTS_FILE = "ae.pt"
CONFIG_FILE = "config.json"


class AEConfig(Section):
    """Architecture of the video autoencoder; ``paper`` profile values follow appendix E.1."""

    resolution: int = 64  # frame size H = W in pixels
    n_frames: int = 10  # future frames T predicted after x0
    z_dim: int = 32  # d: channels of z (32 iPER/TaiChi, 64 plants/H3.6M)
    latent_size: int = 8  # h = w of z
    enc_channels: tuple[int, ...] = (64, 128, 256, 256, 256)
    enc_blocks: int = 2  # residual blocks per encoder stage (2: ResNet-18 stages)
    gru_layers: int = 4
    dec_channels: tuple[int, ...] = (256, 256, 256, 128, 64)
    spade_hidden: int = 128  # channels of SPADE's shared x0 embedding
    spectral_norm: bool = True  # on the decoder's ResNet convolutions
    groups: int = 16  # GroupNorm groups (fewer where a width is not divisible)
    # Initial posterior log-variance, so that z starts as a near-deterministic sample (KL weight 1e-7 barely
    # moves it); the default conv init would start at log-variance ~0, i.e. unit noise on z.
    init_logvar: float = -10.0
    encoder_motion_input: bool = False  # the encoder also sees x_t - x0 (paper: frames only)
    decoder_output: Literal["rgb", "warp"] = "rgb"  # warp: x0 warped by a predicted flow (paper: rgb)
    # warp only: flow, mask and colour are predicted at resolution / warp_stride and upsampled bilinearly
    # (motion fields are smooth; skipping the full-resolution decoder layers makes a step much cheaper)
    warp_stride: int = Field(1, ge=1)

    @property
    def n_stages(self) -> int:
        """Halvings from the frame size to the latent size."""
        return int(math.log2(self.resolution // self.latent_size))

    @model_validator(mode="after")
    def _check_sizes(self) -> AEConfig:
        k = self.resolution // self.latent_size
        if self.resolution % self.latent_size or k < 2 or k & (k - 1):
            raise ValueError(
                f"resolution {self.resolution} must be latent_size {self.latent_size} times 2**k, k >= 1"
            )
        if self.warp_stride > 1 and (self.decoder_output != "warp" or 2**self.n_stages % self.warp_stride):
            raise ValueError(
                f"warp_stride {self.warp_stride} needs decoder_output: warp and must divide "
                f"resolution / latent_size = {2**self.n_stages}"
            )
        need = self.n_stages + 1
        for name in ("enc_channels", "dec_channels"):
            if len(getattr(self, name)) < need:
                raise ValueError(f"{name} needs at least {need} entries for {self.resolution} px")
        return self


def group_norm(channels: int, groups: int, affine: bool = True) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    return nn.GroupNorm(math.gcd(channels, groups), channels, affine=affine)


# ---------------------------------------------------------------------------------------------- encoder


class EncoderBlock3d(nn.Module):
    """3D ResNet basic block (two 3x3x3 convolutions, GroupNorm, ReLU) with a projected shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int, int], groups: int):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = group_norm(c_out, groups)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = group_norm(c_out, groups)
        self.shortcut = nn.Identity()
        if c_in != c_out or stride != (1, 1, 1):
            self.shortcut = nn.Sequential(
                nn.Conv3d(c_in, c_out, 1, stride, bias=False), group_norm(c_out, groups)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class VideoEncoder(nn.Module):
    """3D ResNet over the whole clip -> posterior mean and log-variance of ``z`` (``d x 8 x 8``).

    Stem: (3, 7, 7) convolution, stride 2 in time and space. Stage 1 halves time only; every later stage
    halves time and space, so ``n_stages - 1`` of them reach the latent size. What is left of the time axis
    is averaged.
    """

    def __init__(self, cfg: AEConfig):
        super().__init__()
        widths = cfg.enc_channels[: cfg.n_stages + 1]
        self.motion_input = cfg.encoder_motion_input
        self.stem = nn.Sequential(
            nn.Conv3d(6 if self.motion_input else 3, widths[0], (3, 7, 7), (2, 2, 2), (1, 3, 3), bias=False),
            group_norm(widths[0], cfg.groups),
            nn.ReLU(),
        )
        stages = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            stride = (2, 1, 1) if i == 0 else (2, 2, 2)
            blocks = [EncoderBlock3d(c_in, c_out, stride, cfg.groups)]
            blocks += [EncoderBlock3d(c_out, c_out, (1, 1, 1), cfg.groups) for _ in range(cfg.enc_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.to_mu = nn.Conv2d(widths[-1], cfg.z_dim, 3, 1, 1)
        self.to_logvar = nn.Conv2d(widths[-1], cfg.z_dim, 3, 1, 1)
        nn.init.zeros_(self.to_logvar.weight)
        nn.init.constant_(self.to_logvar.bias, cfg.init_logvar)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``video`` (B, T+1, 3, H, W) -> ``mu``, ``logvar`` (B, d, 8, 8)."""
        if self.motion_input:
            video = torch.cat([video, video - video[:, :1]], dim=2)
        h = self.stages(self.stem(video.transpose(1, 2))).mean(dim=2)
        return self.to_mu(h), self.to_logvar(h)


# -------------------------------------------------------------------------------------------------- GRU


class ConvGRUCell(nn.Module):
    """GRU cell whose gates are 3x3 convolutions over ``[input, hidden]``."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel, padding=kernel // 2)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], 1)))
        return (1 - update) * h + update * candidate


class LatentGRU(nn.Module):
    """Stacked ConvGRU unrolled over time: all layers start at ``z``, the input is a learned constant."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cells = nn.ModuleList(ConvGRUCell(cfg.z_dim) for _ in range(cfg.gru_layers))
        self.constant_input = nn.Parameter(torch.randn(1, cfg.z_dim, cfg.latent_size, cfg.latent_size))

    def forward(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """``z`` (B, d, h, w) -> latent states (B, steps, d, h, w), the top layer's hidden state per step."""
        hidden = [z] * len(self.cells)
        x_in = self.constant_input.expand_as(z)
        states = []
        for _ in range(steps):
            x = x_in
            for i, cell in enumerate(self.cells):
                hidden[i] = x = cell(x, hidden[i])
            states.append(x)
        return torch.stack(states, 1)


# ---------------------------------------------------------------------------------------------- decoder


class DecoderBlock(nn.Module):
    """2D ResNet block with ELU; an upsampling block swaps its first conv and its shortcut for transposed
    convolutions (stride 2). Normalisation inside the block is GroupNorm only for the first, non-upsampling
    block; upsampling blocks are normalised by the SPADE layer that follows them."""

    def __init__(self, c_in: int, c_out: int, upsample: bool, cfg: AEConfig):
        super().__init__()
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        if upsample:
            self.conv1 = sn(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1))
            self.shortcut = sn(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1))
        else:
            self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
            self.shortcut = sn(nn.Conv2d(c_in, c_out, 1)) if c_in != c_out else nn.Identity()
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.norm1 = nn.Identity() if upsample else group_norm(c_out, cfg.groups)
        self.norm2 = nn.Identity() if upsample else group_norm(c_out, cfg.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.norm1(self.conv1(x)))
        return self.norm2(self.conv2(h)) + self.shortcut(x)


class Spade(nn.Module):
    """SPADE: parameter-free GroupNorm, then a per-pixel scale and shift predicted from the resized ``x0``.

    The modulation depends on ``x0`` only, so it is computed once per clip and shared by its ``T`` frames.
    """

    def __init__(self, channels: int, cfg: AEConfig):
        super().__init__()
        self.norm = group_norm(channels, cfg.groups, affine=False)
        self.embed = nn.Sequential(nn.Conv2d(3, cfg.spade_hidden, 3, 1, 1), nn.LeakyReLU(0.2))
        self.gamma = nn.Conv2d(cfg.spade_hidden, channels, 3, 1, 1)
        self.beta = nn.Conv2d(cfg.spade_hidden, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``x`` (B*T, C, h, w) for clips of ``T = len(x) // len(x0)`` frames; ``x0`` (B, 3, H, W)."""
        cond = self.embed(F.interpolate(x0, size=x.shape[-2:], mode="bilinear", align_corners=False))
        repeats = x.shape[0] // x0.shape[0]
        gamma = self.gamma(cond).repeat_interleave(repeats, 0)
        beta = self.beta(cond).repeat_interleave(repeats, 0)
        return self.norm(x) * (1 + gamma) + beta


class FrameDecoder(nn.Module):
    """Latent state (d x 8 x 8) + start frame -> frame in [-1, 1]: drawn directly (``rgb``) or as ``x0``
    warped by a predicted backward flow and blended with a predicted colour (``warp``)."""

    WARP_CHANNELS = 6  # flow (2), mask logit (1), colour (3)
    MASK_INIT = 4.0  # initial mask logit: sigmoid(4) = 0.98 of the frame comes from the warp

    def __init__(self, cfg: AEConfig):
        super().__init__()
        widths = cfg.dec_channels[-(cfg.n_stages + 1) :]
        self.warp_stride = cfg.warp_stride
        widths = widths[: len(widths) - int(math.log2(cfg.warp_stride))]  # stop at resolution / warp_stride
        self.head = DecoderBlock(cfg.z_dim, widths[0], upsample=False, cfg=cfg)
        self.ups = nn.ModuleList(
            DecoderBlock(c_in, c_out, upsample=True, cfg=cfg)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.spades = nn.ModuleList(Spade(c, cfg) for c in widths[1:])
        self.warp = cfg.decoder_output == "warp"
        self.to_rgb = nn.Conv2d(widths[-1], self.WARP_CHANNELS if self.warp else 3, 3, 1, 1)
        if self.warp:  # identity at initialisation: zero flow, mask on the warped x0
            nn.init.zeros_(self.to_rgb.weight[:3])
            nn.init.zeros_(self.to_rgb.bias)
            nn.init.constant_(self.to_rgb.bias[2], self.MASK_INIT)
            self.flow_unit = cfg.resolution / 16  # pixels per unit of the flow output

    def forward(self, states: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``states`` (B, T, d, h, w), ``x0`` (B, 3, H, W) -> frames (B, T, 3, H, W)."""
        return self.render(states, x0)[0]

    def render(self, states: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames (B, T, 3, H, W) and, for the warp decoder, the backward flows (B, T, 2, H, W) in pixels
        that they sample x0 with (None for ``rgb``)."""
        b, t = states.shape[:2]
        h = self.head(states.flatten(0, 1))
        for up, spade in zip(self.ups, self.spades, strict=True):
            h = spade(up(h), x0)
        out = self.to_rgb(F.elu(h))
        if not self.warp:
            return torch.tanh(out).unflatten(0, (b, t)), None
        if self.warp_stride > 1:
            out = F.interpolate(out, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        flow, mask, colour = out[:, :2] * self.flow_unit, torch.sigmoid(out[:, 2:3]), torch.tanh(out[:, 3:])
        warped = backward_warp(x0.repeat_interleave(t, 0), flow)
        return (mask * warped + (1 - mask) * colour).unflatten(0, (b, t)), flow.unflatten(0, (b, t))


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled bilinearly at ``p + flow(p)`` (flow (N, 2, H, W) in pixels, x then y);
    positions outside repeat the border."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=image.dtype),
        torch.arange(w, device=image.device, dtype=image.dtype),
        indexing="ij",
    )
    x = (xs + flow[:, 0]) * (2 / w) + (1 / w - 1)  # pixel centres -> [-1, 1] (align_corners=False)
    y = (ys + flow[:, 1]) * (2 / h) + (1 / h - 1)
    grid = torch.stack([x, y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ------------------------------------------------------------------------------------------ autoencoder


class VideoAutoencoder(nn.Module):
    """Encoder E, latent GRU and decoder D: ``X -> z -> [x_1 .. x_T]`` given ``x0``."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg)
        self.gru = LatentGRU(cfg)
        self.decoder = FrameDecoder(cfg)

    def encode(self, video: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """``video`` (B, T+1, 3, H, W) in [-1, 1] -> ``z`` (B, d, 8, 8): the posterior mean, or a sample."""
        mu, logvar = self.encoder(video)
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu

    def decode(self, z: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``z`` (B, d, 8, 8) and ``x0`` (B, 3, H, W) -> predicted frames 1..T (B, T, 3, H, W)."""
        return self.render(z, x0)[0]

    def render(self, z: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As ``decode``, plus the warp decoder's backward flows (B, T, 2, H, W) (None for ``rgb``)."""
        return self.decoder.render(self.gru(z, self.cfg.n_frames), x0)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct frames 1..T of ``video`` from a posterior sample (training) or the mean (eval).

        Returns ``(frames, mu, logvar)``.
        """
        frames, mu, logvar, _ = self.reconstruct(video)
        return frames, mu, logvar

    def reconstruct(self, video: torch.Tensor):
        """As ``forward``, plus the warp decoder's backward flows (B, T, 2, H, W) (None for ``rgb``)."""
        self.check_input(video)
        mu, logvar = self.encoder(video)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        frames, flow = self.render(z, video[:, 0])
        return frames, mu, logvar, flow

    def check_input(self, video: torch.Tensor) -> None:
        expected = (self.cfg.n_frames + 1, 3, self.cfg.resolution, self.cfg.resolution)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(f"video must be (B, {', '.join(map(str, expected))}), got {tuple(video.shape)}")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()


def save_autoencoder(model: VideoAutoencoder, directory: str | Path) -> None:
    """Write ``ae.pt`` (state dict) and ``config.json`` into ``directory``, each atomically."""
    directory = Path(directory)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        torch.save(model.state_dict(), tmp)
    write_text(directory / CONFIG_FILE, json.dumps(model.cfg.model_dump(mode="json"), indent=2) + "\n")


def load_autoencoder(directory: str | Path, map_location: str | torch.device = "cpu") -> VideoAutoencoder:
    """Load a trained autoencoder from the ``train_ae`` output directory (in eval mode)."""
    directory = Path(directory)
    weights, config = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for path in (weights, config):
        if not path.is_file():
            raise IpokeError(f"{path}: trained autoencoder not found (run the train_ae stage first)")
    try:
        cfg = AEConfig.model_validate_json(config.read_text())
    except ValueError as err:
        raise IpokeError(f"{config}: not a valid autoencoder config: {err}") from err
    model = VideoAutoencoder(cfg)
    try:
        model.load_state_dict(torch.load(weights, map_location=map_location, weights_only=True))
    except (RuntimeError, OSError) as err:
        raise IpokeError(f"{weights}: does not match {config}: {err}") from err
    return model.eval()
