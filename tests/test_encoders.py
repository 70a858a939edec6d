"""Phi_x0 and Phi_c: shapes, value ranges, conditioning, freezing, one cINN step on a loader-shaped batch."""

from __future__ import annotations

import pytest
import torch

from ipoke.errors import IpokeError
from ipoke.models.cinn import CINN, CINNConfig
from ipoke.models.encoders import (
    ENCODER_PROFILES,
    EncoderConfig,
    ImageEncoder,
    PokeEncoder,
    build_conditioner,
)

SMALL = EncoderConfig(image_channels=6, poke_channels=4, width=8, max_width=16)


def loader_batch(batch: int = 2, size: int = 64, seed: int = 0) -> dict:
    """A batch as the training loader yields it: clip in [-1, 1], sparse 5x5 poke patches, dense flow."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, 11, 3, size, size, generator=generator) * 2 - 1
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    bump = torch.exp(-4 * (xx**2 + yy**2))  # smooth motion around the centre
    flow = torch.randn(batch, 2, 1, 1, generator=generator) * 3 * bump
    poke = torch.zeros(batch, 2, size, size)
    points = torch.zeros(batch, 5, 4)
    for b in range(batch):
        x, y = 20 + 7 * b, 30 - 5 * b
        poke[b, :, y - 2 : y + 3, x - 2 : x + 3] = flow[b, :, y, x].view(2, 1, 1)
        points[b, 0] = torch.tensor([x, y, *flow[b, :, y, x].tolist()])
    return {
        "video": video,
        "flow": flow,
        "poke": poke,
        "poke_points": points,
        "n_pokes": torch.ones(batch, dtype=torch.int64),
        "background_poke": torch.zeros(batch, dtype=torch.bool),
        "clip_id": [f"clip{b}" for b in range(batch)],
    }


@pytest.mark.parametrize("resolution", [64, 128])
def test_encoders_map_to_8x8_and_decoders_back(resolution):
    torch.manual_seed(0)
    data = loader_batch(size=resolution)
    x0, poke = data["video"][:, 0], data["poke"]
    phi_x0, phi_c = ImageEncoder(SMALL, resolution), PokeEncoder(SMALL, resolution)

    c_x0, c_poke = phi_x0(x0), phi_c(poke, x0)
    assert c_x0.shape == (2, 6, 8, 8) and c_poke.shape == (2, 4, 8, 8)
    image = phi_x0.decode(c_x0)
    assert image.shape == x0.shape and image.abs().max() <= 1
    assert phi_c.decode(c_poke).shape == (2, 2, resolution, resolution)


def test_profiles_build_at_both_paper_resolutions():
    for config in ENCODER_PROFILES.values():
        c_x0 = ImageEncoder(config, 128)(torch.zeros(1, 3, 128, 128))
        assert c_x0.shape == (1, config.image_channels, 8, 8)


def test_bad_resolution_and_shapes_are_named():
    with pytest.raises(IpokeError, match="resolution 96 px"):
        ImageEncoder(SMALL, 96)
    with pytest.raises(IpokeError, match="resolution 8 px"):
        PokeEncoder(SMALL, 8)
    with pytest.raises(ValueError, match=r"x0 must be \(B, 3, 64, 64\)"):
        ImageEncoder(SMALL, 64)(torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match=r"poke must be \(B, 2, 64, 64\)"):
        PokeEncoder(SMALL, 64)(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))


def test_poke_encoder_sees_both_the_poke_and_the_image():
    torch.manual_seed(0)
    data = loader_batch()
    x0, poke = data["video"][:, 0], data["poke"]
    phi_c = PokeEncoder(SMALL, 64).eval()
    reference = phi_c(poke, x0)
    assert not torch.allclose(phi_c(torch.roll(poke, 9, dims=3), x0), reference)
    assert not torch.allclose(phi_c(poke, -x0), reference)


def test_conditioner_with_and_without_poke():
    torch.manual_seed(0)
    data = loader_batch()
    x0, poke = data["video"][:, 0], data["poke"]

    poked = build_conditioner(SMALL, 64, poke_conditioning=True)
    assert poked.poke_conditioning and poked.out_channels == 10
    cond = poked(x0, poke)
    assert cond.shape == (2, 10, 8, 8)
    torch.testing.assert_close(cond[:, :6], poked.image_encoder(x0))
    with pytest.raises(ValueError, match="pass the poke map"):
        poked(x0)

    image_only = build_conditioner(SMALL, 64, poke_conditioning=False)
    assert not image_only.poke_conditioning and image_only.out_channels == 6
    assert image_only(x0).shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="no poke encoder"):
        image_only(x0, poke)


@pytest.mark.parametrize("poke_conditioning", [True, False])
def test_cinn_step_on_a_loader_batch_trains_only_the_flow(poke_conditioning):
    torch.manual_seed(0)
    data = loader_batch()
    conditioner = build_conditioner(SMALL, 64, poke_conditioning).freeze()
    assert not any(p.requires_grad for p in conditioner.parameters()) and not conditioner.training
    config = CINNConfig(latent_channels=8, subblocks=[1, 1], coupling_hidden=16)
    flow = CINN(config, cond_channels=conditioner.out_channels)

    cond = conditioner(data["video"][:, 0], data["poke"] if poke_conditioning else None)
    z = torch.randn(2, 8, 8, 8)
    loss = flow.nll(z, cond).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in conditioner.parameters())
    assert all(p.grad is not None for p in flow.parameters())


def test_flow_decoder_pretraining_reduces_the_flow_error():
    torch.manual_seed(0)
    data = loader_batch()
    phi_c = PokeEncoder(SMALL, 64)
    x0, poke, flow = data["video"][:, 0], data["poke"], data["flow"]
    optimizer = torch.optim.Adam(phi_c.parameters(), lr=3e-3)
    errors = []
    for _ in range(15):
        error = (phi_c.predict_flow(poke, x0) - flow).abs().mean()
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
        errors.append(error.item())
    assert errors[-1] < 0.7 * errors[0]


def test_poke_grid_hands_the_cinn_the_pooled_poke():
    config = SMALL.model_copy(update={"poke_grid": True, "flow_unit_px": 4.0})
    encoder = PokeEncoder(config, 64)
    batch = loader_batch()
    c = encoder(batch["poke"], batch["video"][:, 0])
    assert c.shape == (2, SMALL.poke_channels + 5, 8, 8) and encoder.out_channels == SMALL.poke_channels + 5
    grid = c[:, SMALL.poke_channels :]
    expected = torch.nn.functional.adaptive_avg_pool2d(batch["poke"] / 4.0, 8)
    torch.testing.assert_close(grid[:, :2], expected)
    assert torch.allclose(grid[:, 2].sum(dim=(1, 2)), torch.full((2,), 25 / 64))  # one 5x5 patch per clip
    assert encoder.decode(c).shape == (2, 2, 64, 64)  # the flow decoder reads the learned features only
