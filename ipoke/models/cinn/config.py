"""Sizes of the conditional invertible network (paper 3.2, appendix E.2).

One config describes the flow: K blocks (``len(subblocks)``), block k holding ``subblocks[k]`` masked-
convolution sub-blocks followed by ActNorm, an affine coupling and a fixed channel shuffle; after every block
but the last, ``latent_channels // K`` channels leave for the output ``r``.

``PROFILES`` holds the demo and paper values (what ``params.yaml`` carries for the cINN stage);
``AUTHORS_REFERENCE`` rebuilds the size of the authors' released flow (2048-channel couplings that never see
the conditioning, four masked-convolution units and four couplings per sub-block) for the cost comparison
in ``bench/bench_cinn.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ipoke.config import Section


class CINNConfig(Section):
    latent_channels: int = Field(ge=2, description="d: channels of the video latent z (d x size x size)")
    latent_size: int = Field(8, ge=2, description="spatial size of z and of the conditioning maps")
    subblocks: list[int] = Field(min_length=1, description="N_k: masked-convolution sub-blocks per block")
    kernel_size: tuple[int, int] = Field(
        (2, 3), description="masked convolution kernel: rows before the current one, width (odd)"
    )
    maskedconv_hidden_factor: int = Field(4, ge=1, description="conditioner width = factor x flow channels")
    units_per_subblock: int = Field(1, ge=1, description="four-orientation masked-conv units per sub-block")
    subblock_couplings: int = Field(0, ge=0, description="extra affine couplings inside every sub-block")
    coupling_hidden: int = Field(ge=1, description="hidden channels of the affine couplings' subnets")
    coupling_conditioned: bool = Field(True, description="the couplings see the conditioning maps too")
    scale_bound: float = Field(
        1.0, gt=0.0, le=1.0, description="masked-conv and bounded coupling scales: 1 + bound * tanh(s / 2)"
    )
    coupling_transform: Literal["glow", "bounded"] = Field(
        "glow", description="glow: scales exp(soft-clamped s); bounded: 1 + scale_bound * tanh(s / 2)"
    )
    coupling_clamp: float = Field(2.0, gt=0.0, description="glow: log-scales soft-clamped to +-clamp")
    shuffle_seed: int = Field(0, description="seed of the fixed channel shuffles")

    @model_validator(mode="after")
    def _check_layout(self) -> CINNConfig:
        if any(n < 1 for n in self.subblocks):
            raise ValueError(f"subblocks: every block needs at least one sub-block, got {self.subblocks}")
        rows, width = self.kernel_size
        if rows < 1 or width < 1 or width % 2 == 0:
            raise ValueError(f"kernel_size: need rows >= 1 and an odd width, got {self.kernel_size}")
        if len(self.subblocks) > 1 and self.latent_channels // len(self.subblocks) < 1:
            raise ValueError(
                f"latent_channels={self.latent_channels} cannot give each of {len(self.subblocks)} blocks "
                "an exit channel: use fewer blocks or more channels"
            )
        if self.exit_channels[-1] < 2:
            raise ValueError(
                f"latent_channels={self.latent_channels} leaves {self.exit_channels[-1]} channel(s) for the "
                "last block; its coupling needs at least 2"
            )
        return self

    @property
    def n_blocks(self) -> int:
        return len(self.subblocks)

    @property
    def exit_channels(self) -> list[int]:
        """Channels leaving after each block: d // K for all but the last, which outputs the rest."""
        share = self.latent_channels // self.n_blocks
        return [share] * (self.n_blocks - 1) + [self.latent_channels - share * (self.n_blocks - 1)]

    @property
    def block_channels(self) -> list[int]:
        """Channels entering each block."""
        channels, out = self.latent_channels, []
        for leave in self.exit_channels:
            out.append(channels)
            channels -= leave
        return out


PAPER_SUBBLOCKS = [10, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1]

PROFILES: dict[str, CINNConfig] = {
    # CPU-sized: a few blocks, narrow subnets; trains on the synthetic data in minutes.
    "demo": CINNConfig(
        latent_channels=16,
        subblocks=[3, 2, 2, 1],
        maskedconv_hidden_factor=4,
        coupling_hidden=64,
    ),
    # Appendix E.2 layout (K=15, N_k as published, d=32 for iPER/TaiChi; set 64 for plants/H3.6M), with the
    # authors' bounded coupling scales; the couplings see the conditioning and are 256 wide instead of 2048
    # (see bench/bench_cinn.py for the cost, bench/bench_cinn_nll.py for the NLL).
    "paper": CINNConfig(
        latent_channels=32,
        subblocks=PAPER_SUBBLOCKS,
        maskedconv_hidden_factor=4,
        coupling_hidden=256,
        coupling_transform="bounded",
    ),
}

# The authors' released flow, for size, speed and NLL comparison only: per sub-block 4 masked-convolution
# units and 4 unconditioned one-sided couplings (two two-sided ones here) of 2048 hidden channels, all with
# bounded scales (their NICE2d with the Affine transform).
AUTHORS_REFERENCE = CINNConfig(
    latent_channels=32,
    subblocks=PAPER_SUBBLOCKS,
    maskedconv_hidden_factor=4,
    units_per_subblock=4,
    subblock_couplings=2,
    coupling_hidden=2048,
    coupling_conditioned=False,
    coupling_transform="bounded",
)
