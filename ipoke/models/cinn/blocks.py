"""One flow block of the cINN: N_k masked-convolution sub-blocks, then ActNorm, affine coupling, shuffle.

A sub-block is a MaCow unit: masked convolutions from the top and the bottom, ActNorm, from the left and the
right, ActNorm (four orientations, so the receptive field grows in every direction); the conditioning maps
enter every masked convolution. ``units_per_subblock`` and ``subblock_couplings`` exist to rebuild the
authors' heavier layout (``AUTHORS_REFERENCE``); the paper and demo profiles use one unit and no inner
couplings. A block is a FrEIA ``SequenceINN``, called as ``block(x, [cond], rev=False) -> (y, log_det)``.
"""

from __future__ import annotations

from functools import partial

from FrEIA.framework import SequenceINN
from FrEIA.modules import GLOWCouplingBlock

from ipoke.models.cinn.config import CINNConfig
from ipoke.models.cinn.layers import ActNorm, BoundedAffineCoupling, ChannelShuffle, coupling_subnet
from ipoke.models.cinn.maskedconv import MaskedConvFlow


def flow_block(
    config: CINNConfig, channels: int, cond_channels: int, n_subblocks: int, seed: int
) -> SequenceINN:
    size = config.latent_size
    cond_shape = (cond_channels, size, size)
    block = SequenceINN(channels, size, size)
    masked_conv = partial(
        MaskedConvFlow,
        kernel_size=config.kernel_size,
        hidden_channels=config.maskedconv_hidden_factor * channels,
        scale_bound=config.scale_bound,
    )
    subnet = partial(coupling_subnet, hidden=config.coupling_hidden)
    if config.coupling_transform == "bounded":
        coupling = partial(BoundedAffineCoupling, subnet_constructor=subnet, scale_bound=config.scale_bound)
    else:
        coupling = partial(GLOWCouplingBlock, subnet_constructor=subnet, clamp=config.coupling_clamp)
    coupling_cond = {"cond": 0, "cond_shape": cond_shape} if config.coupling_conditioned else {}

    for _ in range(n_subblocks):
        for _ in range(config.units_per_subblock):
            for pair in (("top", "bottom"), ("left", "right")):
                for orientation in pair:
                    block.append(masked_conv, cond=0, cond_shape=cond_shape, orientation=orientation)
                block.append(ActNorm)
        for _ in range(config.subblock_couplings):
            block.append(coupling, **coupling_cond)
    block.append(ActNorm)
    block.append(coupling, **coupling_cond)
    block.append(ChannelShuffle, seed=seed)
    return block
