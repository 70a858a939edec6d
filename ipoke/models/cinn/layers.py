"""The Glow-style invertible layers of a flow block, all behind FrEIA's interface.

FrEIA provides ActNorm and Glow's two-sided affine coupling; this module adds a guard and a multi-process
initialisation to the former, the authors' coupling with bounded scales, the couplings' subnet, and a fixed
channel shuffle. The shuffle is our own because FrEIA's ``PermuteRandom`` reseeds numpy's global random
generator, which would silently reset every other consumer of it (poke sampling, data augmentation).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from FrEIA.modules import ActNorm as FrEIAActNorm
from FrEIA.modules import InvertibleModule
from torch import nn

from ipoke.errors import IpokeError


class ActNorm(FrEIAActNorm):
    """Per-channel scale and bias, initialised from the first batch it transforms (zero mean, unit variance).

    Initialisation only happens in the density direction; running it backwards uninitialised is refused, since
    that would initialise it from noise.

    Under data-parallel training (``torch.distributed`` initialised) the statistics are those of all ranks'
    batches together, reduced across the processes: otherwise every rank would start from its own batch and
    the replicas would differ for the whole run, since DDP only keeps gradients in step. Every rank must then
    run its first forward pass together, as the first training step does.
    """

    def _initialize_with_data(self, data):
        channels = self.dims_in[0]
        x = data.detach().transpose(0, 1).reshape(channels, -1).double()
        count = x.new_tensor(float(x.shape[1]))
        total = x.sum(dim=1)
        _sum_over_ranks(count, total)
        mean = total / count
        squares = (x - mean[:, None]).pow(2).sum(dim=1)
        _sum_over_ranks(squares)
        log_scale = -0.5 * torch.log(squares / (count - 1))  # 1 / unbiased std, as FrEIA's
        self.scale.data.view(-1)[:] = log_scale.to(self.scale.dtype)
        self.bias.data.view(-1)[:] = (-mean * log_scale.exp()).to(self.bias.dtype)
        self.init_on_next_batch = False

    def forward(self, x, rev=False, jac=True):
        if rev and self.init_on_next_batch:
            raise IpokeError(
                "cINN ActNorm run in the sampling direction before initialisation: load trained weights "
                "(load_state_dict) or pass a batch of training latents forward first"
            )
        return super().forward(x, rev=rev, jac=jac)


def _sum_over_ranks(*tensors: torch.Tensor) -> None:
    """Sum each tensor in place over the processes of a data-parallel run (nothing in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def bounded_scale(raw: torch.Tensor, bound: float) -> torch.Tensor:
    """Affine scales in (1 - bound, 1 + bound), as the authors' flows (MaCow's ``Affine``) compute them."""
    return 1.0 + bound * torch.tanh(raw / 2)


class BoundedAffineCoupling(InvertibleModule):
    """Two-sided affine coupling with scales ``1 + bound * tanh(s / 2)``, the authors' ``NICE2d`` pair.

    The second half of the channels is transformed from the first, then the first from the new second. Unlike
    Glow's ``exp(clamp * tanh(s / clamp))`` (up to e^2 per coupling), a scale here lies in (1 - bound,
    1 + bound), as in the masked convolutions.
    """

    def __init__(self, dims_in, dims_c=None, subnet_constructor=None, scale_bound: float = 1.0):
        super().__init__(dims_in, dims_c)
        channels = dims_in[0][0]
        cond_channels = sum(d[0] for d in self.dims_c)
        self.split = channels // 2
        self.scale_bound = scale_bound
        rest = channels - self.split
        self.second_from_first = subnet_constructor(self.split + cond_channels, 2 * rest)
        self.first_from_second = subnet_constructor(rest + cond_channels, 2 * self.split)

    def _shift_scale(self, net: nn.Module, given: torch.Tensor, c: list[torch.Tensor]):
        shift, raw = net(torch.cat([given, *c], dim=1)).chunk(2, dim=1)
        scale = bounded_scale(raw, self.scale_bound)
        return shift, scale, scale.log().flatten(1).sum(1)

    def forward(self, x, c=(), rev=False, jac=True):
        c = list(c)
        first, second = x[0][:, : self.split], x[0][:, self.split :]
        if not rev:
            shift, scale, log_det2 = self._shift_scale(self.second_from_first, first, c)
            second = scale * second + shift
            shift, scale, log_det1 = self._shift_scale(self.first_from_second, second, c)
            first = scale * first + shift
            return (torch.cat([first, second], dim=1),), log_det1 + log_det2
        shift, scale, log_det1 = self._shift_scale(self.first_from_second, second, c)
        first = (first - shift) / scale
        shift, scale, log_det2 = self._shift_scale(self.second_from_first, first, c)
        second = (second - shift) / scale
        return (torch.cat([first, second], dim=1),), -(log_det1 + log_det2)

    def output_dims(self, input_dims):
        return input_dims


class ChannelShuffle(InvertibleModule):
    """A fixed random permutation of the channels (the paper's replacement for Glow's 1x1 convolutions)."""

    def __init__(self, dims_in, dims_c=None, seed: int = 0):
        super().__init__(dims_in, dims_c)
        generator = torch.Generator().manual_seed(seed)
        perm = torch.randperm(dims_in[0][0], generator=generator, device="cpu")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x, c=(), rev=False, jac=True):
        index = self.inverse_perm if rev else self.perm
        return (x[0][:, index],), x[0].new_zeros(x[0].shape[0])

    def output_dims(self, input_dims):
        return input_dims


def coupling_subnet(in_channels: int, out_channels: int, hidden: int) -> nn.Module:
    """3x3, 1x1, 3x3 convolutions (as the authors' coupling nets); the last starts at zero (identity flow)."""
    last = nn.Conv2d(hidden, out_channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ELU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ELU(),
        last,
    )
