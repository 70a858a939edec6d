"""Every invertible layer of the cINN: exact inverse, exact log-det, causality, data-dependent init (also
across data-parallel processes)."""

from __future__ import annotations

import socket
from functools import partial

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from FrEIA.modules import GLOWCouplingBlock

from ipoke.errors import IpokeError
from ipoke.models.cinn.blocks import flow_block
from ipoke.models.cinn.config import CINNConfig
from ipoke.models.cinn.layers import ActNorm, BoundedAffineCoupling, ChannelShuffle, coupling_subnet
from ipoke.models.cinn.maskedconv import ORIENTATIONS, MaskedConvFlow

C, H, W, COND = 2, 4, 4, 3


def perturb(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Random parameters everywhere (zero-initialised output layers would make every layer the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)
    return module


def brute_log_det(f, x: torch.Tensor) -> torch.Tensor:
    """log|det df/dx| per sample from the full autograd Jacobian."""
    out = []
    for sample in x:
        jac = torch.autograd.functional.jacobian(lambda s: f(s.unsqueeze(0)).flatten(), sample)
        out.append(torch.linalg.slogdet(jac.reshape(sample.numel(), sample.numel()))[1])
    return torch.stack(out)


def data(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, C, H, W, generator=generator, dtype=torch.float64)
    c = torch.randn(batch, COND, H, W, generator=generator, dtype=torch.float64)
    return x, c


def check_invertible_with_exact_log_det(module, x, cond):
    c = {"c": [cond]} if cond is not None else {}
    (y,), log_det = module([x], **c)
    (x_back,), log_det_rev = module([y], rev=True, **c)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_det_rev, -log_det, atol=1e-10, rtol=0)
    first = {"c": [cond[:1]]} if cond is not None else {}
    brute = brute_log_det(lambda s: module([s], **first)[0][0], x[:1])
    torch.testing.assert_close(log_det[:1], brute, atol=1e-8, rtol=0)


def masked_conv(orientation="top", kernel_size=(2, 3), cond=True):
    dims_c = [(COND, H, W)] if cond else None
    module = MaskedConvFlow(
        [(C, H, W)], dims_c, orientation=orientation, kernel_size=kernel_size, hidden_channels=8
    )
    return perturb(module.double())


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("kernel_size", [(2, 3), (1, 1), (3, 5)])
def test_masked_conv_is_invertible_with_exact_log_det(orientation, kernel_size):
    x, c = data()
    check_invertible_with_exact_log_det(masked_conv(orientation, kernel_size), x, c)


def test_masked_conv_without_conditioning_is_invertible():
    x, _ = data()
    check_invertible_with_exact_log_det(masked_conv(cond=False), x, None)


def _order(orientation: str, i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(position along the orientation's order, position across it) of pixels (i, j)."""
    return {
        "top": (i, j),
        "bottom": (H - 1 - i, j),
        "left": (j, i),
        "right": (W - 1 - j, i),
    }[orientation]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_masked_conv_output_depends_only_on_earlier_pixels(orientation):
    rows, width = 2, 3
    module = masked_conv(orientation, (rows, width))
    x, c = data(batch=1)
    jac = torch.autograd.functional.jacobian(lambda s: module([s], c=[c])[0][0], x)[0, :, :, :, 0]
    jac = jac.reshape(C * H * W, C * H * W)

    grid = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
    ch, i, j = (t.flatten() for t in grid)
    along, across = _order(orientation, i, j)
    ahead = along[:, None] - along[None, :]  # > 0: the input pixel comes before the output pixel
    sideways = (across[:, None] - across[None, :]).abs()
    same = (ahead == 0) & (sideways == 0) & (ch[:, None] == ch[None, :])
    in_window = (ahead >= 1) & (ahead <= rows) & (sideways <= width // 2)

    assert torch.all(jac[~(same | in_window)] == 0), "an output depends on a pixel at or after it"
    assert torch.all(jac[same] != 0)
    assert (jac[in_window] != 0).float().mean() > 0.9, "the conditioner should see the pixels before"


def test_masked_conv_starts_as_identity_and_depends_on_conditioning():
    x, c = data()
    fresh = MaskedConvFlow([(C, H, W)], [(COND, H, W)], hidden_channels=8).double()
    (y,), log_det = fresh([x], c=[c])
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(log_det, torch.zeros_like(log_det))

    module = masked_conv()
    (y1,), _ = module([x], c=[c])
    (y2,), _ = module([x], c=[c + 1.0])
    assert not torch.allclose(y1, y2)


def test_masked_conv_scales_stay_within_their_bound():
    module = MaskedConvFlow([(C, H, W)], [(COND, H, W)], hidden_channels=8, scale_bound=0.5).double()
    perturb(module, std=50.0)
    x, c = data()
    _, log_det = module([x], c=[c])
    n = C * H * W
    assert torch.all(log_det >= n * np.log(0.5)) and torch.all(log_det <= n * np.log(1.5))


def test_masked_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="orientation"):
        MaskedConvFlow([(C, H, W)], orientation="diagonal")
    with pytest.raises(ValueError, match="odd width"):
        MaskedConvFlow([(C, H, W)], kernel_size=(2, 2))
    with pytest.raises(ValueError, match="spatially"):
        MaskedConvFlow([(C, H, W)], [(COND, H + 1, W)])


def test_actnorm_initialises_from_its_first_batch():
    generator = torch.Generator().manual_seed(0)
    std = torch.tensor([5.0, 0.1, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    mean = torch.tensor([3.0, -1.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    x = torch.randn(8, 3, H, W, generator=generator, dtype=torch.float64) * std + mean
    norm = ActNorm([(3, H, W)]).double()
    (y,), log_det = norm([x])
    per_channel = y.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)

    state = {k: v.clone() for k, v in norm.state_dict().items()}
    norm([x * 7 + 2])
    for k, v in norm.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=f"ActNorm re-initialised {k} on a later batch")
    check_invertible_with_exact_log_det(norm, x, None)


def _actnorm_on_rank(rank: int, port: int, data: torch.Tensor, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    norm = ActNorm([tuple(data.shape[1:])]).double()
    norm([data[rank::2]])
    results.put((norm.scale.detach().numpy(), norm.bias.detach().numpy()))  # plain arrays outlive the process
    dist.destroy_process_group()


def test_actnorm_initialises_from_all_data_parallel_ranks_batches_together():
    std = torch.tensor([5.0, 0.1, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    data = torch.randn(8, 3, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * std
    whole = ActNorm([(3, H, W)]).double()
    whole([data])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=_actnorm_on_rank, args=(r, port, data, results)) for r in range(2)]
    for rank in ranks:
        rank.start()
    initialised = [results.get(timeout=300) for _ in ranks]
    for rank in ranks:
        rank.join(timeout=60)
    for scale, bias in initialised:  # each rank saw half of the batch and initialised as on all of it
        torch.testing.assert_close(torch.from_numpy(scale), whole.scale.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.from_numpy(bias), whole.bias.detach(), rtol=0, atol=1e-12)


def test_actnorm_refuses_to_sample_uninitialised_but_keeps_loaded_weights():
    norm = ActNorm([(3, H, W)]).double()
    with pytest.raises(IpokeError, match="before initialisation"):
        norm([torch.zeros(1, 3, H, W, dtype=torch.float64)], rev=True)

    trained = ActNorm([(3, H, W)]).double()
    trained([torch.randn(4, 3, H, W, dtype=torch.float64)])
    norm.load_state_dict(trained.state_dict())
    norm([torch.randn(4, 3, H, W, dtype=torch.float64) * 9])
    torch.testing.assert_close(norm.scale, trained.scale)


def test_channel_shuffle_is_a_fixed_seeded_permutation_leaving_global_rngs_alone():
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    a, b, other = (ChannelShuffle([(16, H, W)], seed=s) for s in (3, 3, 4))
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.equal(torch.get_rng_state(), torch_state)

    assert sorted(a.perm.tolist()) == list(range(16))
    assert torch.equal(a.perm, b.perm) and not torch.equal(a.perm, other.perm)
    x = torch.randn(2, 16, H, W, dtype=torch.float64)
    (y,), log_det = a([x])
    assert torch.equal(y, x[:, a.perm]) and torch.all(log_det == 0)
    (x_back,), _ = a([y], rev=True)
    assert torch.equal(x_back, x)


def coupling(conditioned=True):
    dims_c = [(COND, H, W)] if conditioned else []
    module = GLOWCouplingBlock(
        [(C, H, W)], dims_c, subnet_constructor=partial(coupling_subnet, hidden=8), clamp=2.0
    )
    return perturb(module.double())


def bounded_coupling(conditioned=True, bound=1.0):
    dims_c = [(COND, H, W)] if conditioned else []
    module = BoundedAffineCoupling(
        [(C, H, W)], dims_c, subnet_constructor=partial(coupling_subnet, hidden=8), scale_bound=bound
    )
    return perturb(module.double())


@pytest.mark.parametrize("make", [coupling, bounded_coupling], ids=["glow", "bounded"])
@pytest.mark.parametrize("conditioned", [True, False])
def test_affine_coupling_is_invertible_with_exact_log_det(make, conditioned):
    x, c = data()
    check_invertible_with_exact_log_det(make(conditioned), x, c if conditioned else None)


def test_bounded_coupling_keeps_every_scale_within_its_bound():
    module = perturb(bounded_coupling(bound=0.5), std=50.0)
    x, c = data()
    (y,), log_det = module([x], c=[c])
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all()
    first, second = x[:, : module.split], y[:, module.split :]
    for net, given in ((module.second_from_first, first), (module.first_from_second, second)):
        _, scale, _ = module._shift_scale(net, given, [c])
        assert scale.min() >= 0.5 and scale.max() <= 1.5
        assert scale.min() < 0.6 and scale.max() > 1.4  # the wild weights do push the scales to the bound
    (y_other,), _ = module([x], c=[-c])
    assert not torch.allclose(y, y_other)  # the conditioning reaches both halves' subnets


def test_affine_coupling_sees_the_conditioning_and_bounds_its_scales():
    module = coupling()
    x, c = data()
    (y1,), _ = module([x], c=[c])
    (y2,), _ = module([x], c=[-c])
    assert not torch.allclose(y1, y2)
    perturb(module, std=50.0)
    _, log_det = module([x], c=[c])
    assert torch.all(log_det.abs() <= 2.0 * C * H * W)


def test_flow_block_is_invertible_with_exact_log_det():
    config = CINNConfig(latent_channels=C, latent_size=H, subblocks=[2], coupling_hidden=8)
    block = flow_block(config, channels=C, cond_channels=COND, n_subblocks=2, seed=0).double()
    x, c = data()
    block(x, [c])  # data-dependent ActNorm initialisation
    perturb(block, std=0.1)
    y, log_det = block(x, [c])
    x_back, log_det_rev = block(y, [c], rev=True)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_det_rev, -log_det, atol=1e-10, rtol=0)
    brute = brute_log_det(lambda s: block(s, [c[:1]])[0], x[:1])
    torch.testing.assert_close(log_det[:1], brute, atol=1e-8, rtol=0)
    n_masked = sum(isinstance(m, MaskedConvFlow) for m in block)
    assert n_masked == 2 * 4
