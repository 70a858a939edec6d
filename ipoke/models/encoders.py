"""The conditioning encoders of iPOKE (paper 3.2, appendix E.2): Phi_x0 and Phi_c.

Phi_x0 maps the start frame x0 (3 x H x W in [-1, 1]) to c_x0 (c1 x 8 x 8) and is pretrained with a decoder as
an image autoencoder; Phi_c maps the sparse poke map (2 x H x W, pixels) concatenated with x0 to c_poke
(c2 x 8 x 8) and is pretrained with a decoder to predict the dense start->end flow (2 x H x W, pixels). Both
are frozen while the cINN trains; their decoders are discarded after pretraining. The layout follows the
authors' code: a strided 3x3 convolution, strided residual blocks doubling the width up to ``max_width``
until 8 x 8, and a residual bottleneck to the output channels (GroupNorm, ELU); decoders mirror it with
transposed convolutions (the authors' spectral normalisation of the encoder is left out).

``Conditioner`` concatenates the maps; without a poke encoder it is the image-only conditioning of the cINN
image-to-video model.

``poke_grid`` (not in the paper; on in the CPU demo) appends to c_poke, average-pooled to the latent grid,
the poke map itself (per cell the mean displacement in units of ``flow_unit_px`` and the share of poked
pixels) and the dense flow Phi_c's decoder predicts from it. A small encoder trained for minutes blurs
where and how far a 5x5 poke pulls; the pooled maps hand the cINN both, and the motion the poke implies
elsewhere, next to the learned features.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor, nn

from ipoke.config import Section
from ipoke.errors import IpokeError


class EncoderConfig(Section):
    image_channels: int = Field(ge=1, description="c1: channels of c_x0")
    poke_channels: int = Field(ge=1, description="c2: channels of c_poke")
    width: int = Field(32, ge=1, description="channels after the first (strided) convolution")
    max_width: int = Field(64, ge=1, description="cap of the channel doubling")
    latent_size: int = Field(8, ge=1, description="spatial size of the conditioning maps")
    poke_grid: bool = Field(False, description="append the poke map pooled to the latent grid to c_poke")
    flow_unit_px: float = Field(8.0, gt=0, description="pixels per unit of the pooled poke displacement")


ENCODER_PROFILES: dict[str, EncoderConfig] = {
    "demo": EncoderConfig(image_channels=32, poke_channels=32, width=16, max_width=32),
    "paper": EncoderConfig(image_channels=64, poke_channels=64, width=32, max_width=64),
}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 16), channels)


class ResBlock(nn.Module):
    """conv-norm-ELU-conv-norm plus a (projected) skip, then ELU; ``resample`` halves or doubles the size."""

    def __init__(self, in_channels: int, out_channels: int, resample: str = "none"):
        super().__init__()
        if resample == "down":
            first = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
            skip = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        elif resample == "up":
            first = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
            skip = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:
            first = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.main = nn.Sequential(
            first,
            _norm(out_channels),
            nn.ELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            _norm(out_channels),
        )
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.elu(self.main(x) + self.skip(x))


def _widths(config: EncoderConfig, resolution: int) -> list[int]:
    """Channels after each halving of the resolution down to ``latent_size``."""
    ratio = resolution // config.latent_size
    if resolution % config.latent_size or ratio < 2 or ratio & (ratio - 1):
        raise IpokeError(
            f"encoder resolution {resolution} px must be the latent size {config.latent_size} times a power "
            "of two (e.g. 64 or 128)"
        )
    n_down = int(math.log2(ratio))
    return [min(config.width * 2**i, config.max_width) for i in range(n_down)]


class ConvEncoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, config: EncoderConfig, resolution: int):
        super().__init__()
        widths = _widths(config, resolution)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1),
            _norm(widths[0]),
            nn.ELU(),
        ]
        layers += [ResBlock(a, b, "down") for a, b in zip(widths, widths[1:], strict=False)]
        layers.append(ResBlock(widths[-1], out_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, config: EncoderConfig, resolution: int):
        super().__init__()
        widths = _widths(config, resolution)[::-1]
        layers: list[nn.Module] = [ResBlock(in_channels, widths[0])]
        layers += [ResBlock(a, b, "up") for a, b in zip(widths, widths[1:], strict=False)]
        layers.append(ResBlock(widths[-1], widths[-1], "up"))
        layers.append(nn.Conv2d(widths[-1], out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, c: Tensor) -> Tensor:
        return self.net(c)


def _check_image(name: str, x: Tensor, channels: int, resolution: int) -> None:
    if x.ndim != 4 or x.shape[1] != channels or tuple(x.shape[2:]) != (resolution, resolution):
        raise ValueError(f"{name} must be (B, {channels}, {resolution}, {resolution}), got {tuple(x.shape)}")


class ImageEncoder(nn.Module):
    """Phi_x0: x0 -> c_x0, with the decoder of its image-autoencoder pretraining (output in [-1, 1])."""

    def __init__(self, config: EncoderConfig, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.out_channels = config.image_channels
        self.encoder = ConvEncoder(3, config.image_channels, config, resolution)
        self.decoder = ConvDecoder(config.image_channels, 3, config, resolution)

    def forward(self, x0: Tensor) -> Tensor:
        _check_image("x0", x0, 3, self.resolution)
        return self.encoder(x0)

    def decode(self, c_x0: Tensor) -> Tensor:
        return torch.tanh(self.decoder(c_x0))

    def reconstruct(self, x0: Tensor) -> Tensor:
        return self.decode(self(x0))


class PokeEncoder(nn.Module):
    """Phi_c: (poke map, x0) -> c_poke, with the decoder predicting the dense start->end flow in pixels."""

    GRID_CHANNELS = 5  # pooled poke dx, dy, share of poked pixels, and the predicted flow's dx, dy

    def __init__(self, config: EncoderConfig, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.grid = config.poke_grid
        self.latent_size, self.flow_unit_px = config.latent_size, config.flow_unit_px
        self.out_channels = config.poke_channels + (self.GRID_CHANNELS if self.grid else 0)
        self.encoder = ConvEncoder(2 + 3, config.poke_channels, config, resolution)
        self.decoder = ConvDecoder(config.poke_channels, 2, config, resolution)

    def forward(self, poke: Tensor, x0: Tensor) -> Tensor:
        _check_image("poke", poke, 2, self.resolution)
        _check_image("x0", x0, 3, self.resolution)
        features = self.encoder(torch.cat([poke, x0], dim=1))
        if not self.grid:
            return features
        poked = (poke != 0).any(dim=1, keepdim=True).to(poke.dtype)
        flow = self.decoder(features)  # the dense flow this encoder was pretrained to predict
        pooled = nn.functional.adaptive_avg_pool2d(
            torch.cat([poke / self.flow_unit_px, poked, flow / self.flow_unit_px], dim=1), self.latent_size
        )
        return torch.cat([features, pooled], dim=1)

    def decode(self, c_poke: Tensor) -> Tensor:
        """The dense flow from c_poke (the learned features; a pooled poke grid is left out)."""
        return self.decoder(c_poke[:, : self.out_channels - (self.GRID_CHANNELS if self.grid else 0)])

    def predict_flow(self, poke: Tensor, x0: Tensor) -> Tensor:
        return self.decode(self(poke, x0))


class Conditioner(nn.Module):
    """The cINN's conditioning map: c_x0, concatenated with c_poke when a poke encoder is given.

    ``freeze()`` fixes both encoders (eval mode, no gradients), as in the cINN stage.
    """

    def __init__(self, image_encoder: ImageEncoder, poke_encoder: PokeEncoder | None = None):
        super().__init__()
        self.image_encoder = image_encoder
        self.poke_encoder = poke_encoder

    @property
    def poke_conditioning(self) -> bool:
        return self.poke_encoder is not None

    @property
    def out_channels(self) -> int:
        poke = self.poke_encoder.out_channels if self.poke_encoder is not None else 0
        return self.image_encoder.out_channels + poke

    def forward(self, x0: Tensor, poke: Tensor | None = None) -> Tensor:
        if self.poke_encoder is None:
            if poke is not None:
                raise ValueError("this conditioner has no poke encoder (image-only conditioning); got a poke")
            return self.image_encoder(x0)
        if poke is None:
            raise ValueError("this conditioner is poke-conditioned: pass the poke map")
        return torch.cat([self.image_encoder(x0), self.poke_encoder(poke, x0)], dim=1)

    def freeze(self) -> Conditioner:
        self.eval()
        self.requires_grad_(False)
        return self


def build_conditioner(config: EncoderConfig, resolution: int, poke_conditioning: bool = True) -> Conditioner:
    poke = PokeEncoder(config, resolution) if poke_conditioning else None
    return Conditioner(ImageEncoder(config, resolution), poke)
