"""The whole cINN: exact inverse and log-det, likelihood, seeded sampling, conditioning, configs."""

from __future__ import annotations

import math

import pytest
import torch
from test_cinn_layers import brute_log_det, perturb

from ipoke.config import ParamsError, parse_section
from ipoke.errors import IpokeError
from ipoke.models.cinn import AUTHORS_REFERENCE, CINN, PROFILES, CINNConfig, bits_per_dim, objective
from ipoke.models.cinn.maskedconv import MaskedConvFlow
from ipoke.models.cinn.network import MAX_REDRAWS

D, SIZE, COND = 4, 4, 3
TINY = CINNConfig(latent_channels=D, latent_size=SIZE, subblocks=[2, 1], coupling_hidden=8)


def batch(n: int = 6, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, D, SIZE, SIZE, generator=generator, dtype=dtype) * 2 + 0.5
    cond = torch.randn(n, COND, SIZE, SIZE, generator=generator, dtype=dtype)
    return z, cond


@pytest.fixture(scope="module", params=["glow", "bounded"])
def net(request) -> CINN:
    torch.manual_seed(0)
    model = CINN(TINY.model_copy(update={"coupling_transform": request.param}), COND).double()
    model(*batch())  # data-dependent ActNorm initialisation
    return perturb(model, std=0.05)


def test_network_is_invertible_both_ways(net):
    z, cond = batch(seed=1)
    r, _ = net(z, cond)
    torch.testing.assert_close(net.reverse(r, cond), z, atol=1e-10, rtol=0)
    r_any = torch.randn_like(z)
    torch.testing.assert_close(net(net.reverse(r_any, cond), cond)[0], r_any, atol=1e-10, rtol=0)


def test_network_log_det_equals_brute_force_jacobian(net):
    z, cond = batch(n=2, seed=2)
    _, log_det = net(z, cond)
    for k in range(2):
        brute = brute_log_det(lambda s, k=k: net(s, cond[k : k + 1])[0], z[k : k + 1])
        torch.testing.assert_close(log_det[k : k + 1], brute, atol=1e-8, rtol=0)


def test_nll_is_the_gaussian_change_of_variables(net):
    z, cond = batch(seed=3)
    r, log_det = net(z, cond)
    expected = -torch.distributions.Normal(0.0, 1.0).log_prob(r).flatten(1).sum(1) - log_det
    torch.testing.assert_close(net.nll(z, cond), expected)
    torch.testing.assert_close(objective(r, log_det), 0.5 * (r**2).flatten(1).sum(1) - log_det)
    dims = D * SIZE * SIZE
    torch.testing.assert_close(bits_per_dim(expected, dims), expected / (dims * math.log(2)))


def test_exits_split_the_channels_as_configured():
    assert TINY.exit_channels == [2, 2] and TINY.block_channels == [4, 2]
    paper = PROFILES["paper"]
    assert paper.subblocks == [10, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1]
    assert sum(paper.exit_channels) == paper.latent_channels
    assert paper.exit_channels[:-1] == [paper.latent_channels // 15] * 14


def test_seeded_sampling_is_deterministic(net):
    _, cond = batch(n=2, seed=4)
    a = net.sample(cond, n=5, seed=11)
    assert a.shape == (2, 5, D, SIZE, SIZE)
    torch.testing.assert_close(net.sample(cond, n=5, seed=11), a, atol=0, rtol=0)
    assert not torch.allclose(net.sample(cond, n=5, seed=12), a)
    assert not torch.allclose(a[:, 0], a[:, 1]), "samples of one conditioning should differ"
    still = net.sample(cond, n=3, seed=11, temperature=0.0)
    torch.testing.assert_close(still[:, 0], still[:, 2])
    zero = torch.zeros(2, D, SIZE, SIZE, dtype=cond.dtype)
    torch.testing.assert_close(still[:, 0], net.reverse(zero, cond))


def test_conditioning_changes_the_outputs(net):
    z, cond = batch(n=2, seed=5)
    other = torch.roll(cond, shifts=1, dims=0)
    assert not torch.allclose(net(z, cond)[0], net(z, other)[0])
    assert not torch.allclose(net.sample(cond, n=2, seed=0), net.sample(other, n=2, seed=0))


def test_every_masked_convolution_sees_the_conditioning():
    model = CINN(PROFILES["demo"], cond_channels=7)
    convs = [m for m in model.modules() if isinstance(m, MaskedConvFlow)]
    assert len(convs) == 4 * sum(PROFILES["demo"].subblocks)
    assert all(m.cond is not None and m.cond.in_channels == 7 for m in convs)


def test_a_reloaded_network_samples_the_same_without_reinitialising(net, tmp_path):
    torch.save(net.state_dict(), tmp_path / "cinn.pt")
    reloaded = CINN(net.config, COND).double()
    reloaded.load_state_dict(torch.load(tmp_path / "cinn.pt"))
    z, cond = batch(n=3, seed=7)
    torch.testing.assert_close(reloaded.sample(cond, n=2, seed=3), net.sample(cond, n=2, seed=3))
    torch.testing.assert_close(reloaded(z * 5, cond)[0], net(z * 5, cond)[0])


def test_sampling_an_uninitialised_network_is_refused():
    model = CINN(TINY, COND)
    with pytest.raises(IpokeError, match="before initialisation"):
        model.sample(torch.zeros(1, COND, SIZE, SIZE), n=2, seed=0)


def test_wrong_shapes_are_named():
    model = CINN(TINY, COND)
    with pytest.raises(ValueError, match=r"z must be \(B, 4, 4, 4\)"):
        model(torch.zeros(1, D + 1, SIZE, SIZE), torch.zeros(1, COND, SIZE, SIZE))
    with pytest.raises(ValueError, match="cond must be"):
        model(torch.zeros(1, D, SIZE, SIZE), torch.zeros(1, COND + 1, SIZE, SIZE))


def test_training_lowers_the_nll():
    torch.manual_seed(0)
    model = CINN(TINY, COND)
    z, cond = batch(n=16, seed=6, dtype=torch.float32)
    z = z * torch.linspace(0.2, 3.0, D).view(1, D, 1, 1) + cond[:, :1]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.nll(z, cond).mean()
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"subblocks": []}, "subblocks"),
        ({"subblocks": [2, 0]}, "at least one sub-block"),
        ({"kernel_size": [2, 2]}, "odd width"),
        ({"latent_channels": 4, "subblocks": [1] * 5}, "exit channel"),
        ({"latent_channels": 3, "subblocks": [1, 1, 1]}, "last block"),
        ({"widht": 3}, "unknown key"),
    ],
)
def test_bad_configs_are_named(raw, message):
    base = {"latent_channels": 8, "subblocks": [1, 1], "coupling_hidden": 8}
    with pytest.raises(ParamsError, match=message):
        parse_section("cinn", {**base, **raw}, CINNConfig)


@pytest.mark.slow
def test_paper_profile_is_at_most_a_fifth_of_the_authors_size():
    def n_params(config):
        with torch.device("meta"):
            return sum(p.numel() for p in CINN(config, cond_channels=128).parameters())

    ours = n_params(PROFILES["paper"])
    authors = n_params(AUTHORS_REFERENCE)
    assert ours <= authors / 5
    assert 0.95e9 < authors < 1.25e9  # the released flow: about 1.05B parameters


def test_a_draw_whose_inverse_overflows_is_redrawn_deterministically(net, monkeypatch):
    _, cond = batch(n=2, seed=5)
    reverse = CINN.reverse
    calls = []

    def overflowing(self, r, c):  # the first call: sample 1 of each conditioning map overflows
        z = reverse(self, r, c)
        calls.append(len(r))
        if len(calls) == 1:
            z[1::2] = float("inf")
        return z

    monkeypatch.setattr(CINN, "reverse", overflowing)
    samples = net.sample(cond, n=2, seed=3)
    assert calls == [4, 2]  # the two failed draws, redrawn once
    assert torch.isfinite(samples).all()
    calls.clear()
    torch.testing.assert_close(net.sample(cond, n=2, seed=3), samples)  # same seed, same samples
    monkeypatch.setattr(CINN, "reverse", lambda self, r, c: torch.full_like(r, float("nan")))
    with pytest.raises(IpokeError, match=f"overflowed for {MAX_REDRAWS + 1} draws"):
        net.sample(cond, n=2, seed=3)
