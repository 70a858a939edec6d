"""The MaCow masked convolution flow (Ma et al. 2019), conditioned, as a FrEIA invertible module.

Each pixel is transformed affinely, ``y = scale * x + shift``, where ``(shift, scale)`` come from a small
conditioner network that sees the flow input only in the ``rows`` rows *before* the pixel (in one of four
orientations: from the top, bottom, left or right) and the conditioning maps at the pixel itself: the
conditioning is concatenated to the input of the conditioner's convolution, whose kernel is masked on the flow
channels only. The Jacobian is therefore triangular in the orientation's row order with ``scale`` on its
diagonal, so ``log|det J| = sum(log scale)`` exactly, and the inverse is exact too: rows are solved one after
the other, each from rows already solved (one step of the conditioner on a ``rows``-row window per row).

All four orientations share one implementation that works "from the top": the other three flip and/or
transpose the maps into that frame and back. Scales are bounded as in the authors' code,
``1 + bound * tanh(s / 2)``; the conditioner's output layer starts at zero so the flow starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

from ipoke.models.cinn.layers import bounded_scale

ORIENTATIONS = ("top", "bottom", "left", "right")


def to_frame_view(t: Tensor, orientation: str) -> Tensor:
    """Maps (B, C, H, W) into the frame where ``orientation``'s "before" means "in a row above"."""
    if orientation == "top":
        return t
    if orientation == "bottom":
        return t.flip(2)
    if orientation == "left":
        return t.transpose(2, 3)
    return t.transpose(2, 3).flip(2)


def to_frame(t: Tensor, orientation: str) -> Tensor:
    """``to_frame_view`` as a contiguous tensor: convolutions on transposed views run slow kernels on CPU."""
    return to_frame_view(t, orientation).contiguous()


def from_frame(t: Tensor, orientation: str) -> Tensor:
    """The inverse of ``to_frame_view``."""
    if orientation == "top":
        return t
    if orientation == "bottom":
        return t.flip(2)
    if orientation == "left":
        return t.transpose(2, 3)
    return t.flip(2).transpose(2, 3)


class MaskedConvFlow(InvertibleModule):
    def __init__(
        self,
        dims_in,
        dims_c=None,
        orientation: str = "top",
        kernel_size: tuple[int, int] = (2, 3),
        hidden_channels: int = 64,
        scale_bound: float = 1.0,
    ):
        super().__init__(dims_in, dims_c)
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        rows, width = kernel_size
        if rows < 1 or width % 2 == 0:
            raise ValueError(f"kernel_size needs rows >= 1 and an odd width, got {kernel_size}")
        channels = dims_in[0][0]
        cond_channels = sum(d[0] for d in self.dims_c)
        for d in self.dims_c:
            if tuple(d[1:]) != tuple(dims_in[0][1:]):
                raise ValueError(f"conditioning map {d} does not match the flow input {dims_in[0]} spatially")
        self.orientation = orientation
        self.rows, self.half_width = rows, width // 2
        self.scale_bound = scale_bound
        self.past = nn.Conv2d(channels, hidden_channels, kernel_size)
        self.cond = nn.Conv2d(cond_channels, hidden_channels, 1, bias=False) if cond_channels else None
        self.out = nn.Conv2d(hidden_channels, 2 * channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _cond_hidden(self, c: list[Tensor]) -> Tensor | None:
        """The conditioning's share of the conditioner's first layer, for every pixel at once."""
        if self.cond is None:
            return None
        return self.cond(to_frame(torch.cat(c, dim=1), self.orientation))

    def forward(self, x, c=(), rev=False, jac=True):
        c = list(c)
        if len(c) != len(self.dims_c):
            raise ValueError(f"expected {len(self.dims_c)} conditioning map(s), got {len(c)}")
        if rev:
            out, log_scale = self._solve(to_frame_view(x[0], self.orientation), c)
            return (from_frame(out, self.orientation),), -log_scale
        v = to_frame(x[0], self.orientation)
        padded = F.pad(v, (self.half_width, self.half_width, self.rows, 0))
        # Row i of the valid convolution sees padded rows i .. i+rows-1, i.e. input rows i-rows .. i-1.
        past = self.past(padded)[:, :, : v.shape[2]]
        cond_hidden = self._cond_hidden(c)
        hidden = past if cond_hidden is None else past + cond_hidden
        shift, raw = self.out(F.elu(hidden)).chunk(2, dim=1)
        scale = bounded_scale(raw, self.scale_bound)
        log_scale = scale.log().flatten(1).sum(1)
        return (from_frame(scale * v + shift, self.orientation),), log_scale

    def _solve(self, y: Tensor, c: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Inverts row by row in the frame; returns x and the forward log-det at x.

        Pixels are matrix rows here (B*W, channels), so each step is two small matrix products: on CPU that
        is several times faster than two convolutions on a one-row map.
        """
        batch, channels, height, width = y.shape
        pad, kernel_width = self.half_width, 2 * self.half_width + 1
        hidden_channels = self.past.out_channels
        w_past = self.past.weight.flatten(1).t()  # (channels * rows * kernel_width, hidden), window order
        w_out = self.out.weight.flatten(1).t()
        y_rows = y.permute(2, 0, 3, 1).reshape(height, batch * width, channels)
        bias_rows = self.past.bias.expand(height, batch * width, hidden_channels)
        if self.cond is not None:
            cond = to_frame_view(torch.cat(c, dim=1), self.orientation).permute(2, 0, 3, 1)
            cond_rows = cond.reshape(height * batch * width, -1)
            bias_rows = torch.addmm(self.past.bias, cond_rows, self.cond.weight.flatten(1).t())
            bias_rows = bias_rows.view(height, batch * width, hidden_channels)
        solved = [y.new_zeros(batch, width + 2 * pad, channels)] * self.rows
        scales = []
        for i in range(height):
            window = torch.stack(solved[-self.rows :], dim=1).unfold(2, kernel_width, 1)
            patches = window.permute(0, 2, 3, 1, 4).reshape(batch * width, -1)
            hidden = torch.addmm(bias_rows[i], patches, w_past)
            shift, raw = torch.addmm(self.out.bias, F.elu(hidden), w_out).chunk(2, dim=1)
            scale = bounded_scale(raw, self.scale_bound)
            row = (y_rows[i] - shift) / scale
            scales.append(scale)
            solved.append(F.pad(row.view(batch, width, channels), (0, 0, pad, pad)))
        x = torch.stack(solved[self.rows :], dim=1)[:, :, pad : pad + width].permute(0, 3, 1, 2).contiguous()
        log_scale = torch.stack(scales).log().view(height, batch, width * channels).sum((0, 2))
        return x, log_scale

    def output_dims(self, input_dims):
        if len(input_dims) != 1:
            raise ValueError(f"{type(self).__name__} takes one input")
        return input_dims
