"""Training the conditioning encoders and the cINN: losses fall, schedule, resume, NaN guard, GIFs, stages."""

from __future__ import annotations

import math

import lightning as L
import mlflow
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from ipoke.data.loader import AugmentParams, LoaderParams
from ipoke.errors import IpokeError
from ipoke.models.autoencoder import AEConfig, VideoAutoencoder, save_autoencoder
from ipoke.models.cinn import bits_per_dim, objective
from ipoke.models.cinn.layers import ActNorm
from ipoke.models.encoders import EncoderConfig, build_conditioner
from ipoke.sampling import load_encoders, save_encoders
from ipoke.train.cinn import (
    CINNModule,
    CINNProfile,
    check_compatible,
    sample_grid,
    training_loader,
    warmup_linear_decay,
)
from ipoke.train.encoders import EncoderPretraining, EncodersProfile
from ipoke.train.trainer import LAST_CHECKPOINT, TrainingDiverged, build_trainer, fit

SIZE, FRAMES = 32, 11
TINY_AE = AEConfig(
    resolution=SIZE,
    z_dim=4,
    enc_channels=(4, 8, 8),
    dec_channels=(8, 8, 4),
    spade_hidden=4,
    groups=2,
    gru_layers=1,
)
TINY_ENCODERS = EncoderConfig(image_channels=4, poke_channels=4, width=4, max_width=8)
TRAINER = {"accelerator": "cpu", "val_every_n_steps": 100, "val_batches": 1, "checkpoint_every_n_steps": 2}


def tiny_cinn_profile(max_steps: int = 4, **extra) -> dict:
    return {
        "model": {
            "latent_channels": 4,
            "subblocks": [1, 1],
            "coupling_hidden": 8,
            "maskedconv_hidden_factor": 2,
        },
        "optim": {"warmup_steps": 2},
        "trainer": TRAINER | {"max_steps": max_steps},
        "gif_clips": 2,
        "gif_samples": 2,
    } | extra


def tiny_parts(poke_conditioning: bool = True, seed: int = 0):
    """A random tiny AE and conditioner (fixtures for the training code, not models)."""
    torch.manual_seed(seed)
    ae = VideoAutoencoder(TINY_AE).eval()
    return ae, build_conditioner(TINY_ENCODERS, SIZE, poke_conditioning).freeze()


def make_batch(size: int = 4, seed: int = 0) -> dict:
    """Clips of a bright square drifting by a per-clip velocity, poked at the square with that velocity."""
    g = torch.Generator().manual_seed(seed)
    video = torch.full((size, FRAMES, 3, SIZE, SIZE), -0.8)
    poke = torch.zeros(size, 2, SIZE, SIZE)
    points = torch.zeros(size, 5, 4)
    for b in range(size):
        x, y = (int(v) for v in torch.randint(8, 20, (2,), generator=g))
        vx, vy = (float(v) for v in torch.randint(-1, 2, (2,), generator=g))
        for t in range(FRAMES):
            cx, cy = int(x + vx * t * 0.4), int(y + vy * t * 0.4)
            video[b, t, :, cy - 3 : cy + 3, cx - 3 : cx + 3] = 0.8
        dx, dy = vx * 4.0, vy * 4.0
        poke[b, :, y - 2 : y + 3, x - 2 : x + 3] = torch.tensor([dx, dy])[:, None, None]
        points[b, 0] = torch.tensor([x, y, dx, dy])
    video = video + 0.05 * torch.randn(video.shape, generator=g)
    return {
        "video": video.clamp(-1, 1),
        "poke": poke,
        "poke_points": points,
        "n_pokes": torch.ones(size, dtype=torch.int64),
        "flow": poke.clone(),
        "background_poke": torch.zeros(size, dtype=torch.bool),
    }


def loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def mean_objective(module: CINNModule, batches: list[dict]) -> float:
    with torch.no_grad():
        return float(torch.stack([objective(*module.cinn(*module.encode(b))).mean() for b in batches]).mean())


# ------------------------------------------------------------------------------------------ schedule


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    factors = [warmup_linear_decay(step, 4, 12) for step in range(13)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:] == pytest.approx([1 - i / 8 for i in range(9)])
    assert warmup_linear_decay(0, 0, 10) == 1.0


def test_the_stage_augmentation_replaces_the_shared_one_for_the_training_clips():
    shared = LoaderParams(batch_size=3, augment=AugmentParams(enabled=False)).model_dump()
    plain = CINNProfile.model_validate(tiny_cinn_profile(loader=shared))
    assert training_loader(plain) == plain.loader
    own = {"enabled": True, "hflip_prob": 1.0, "brightness": 0.0, "contrast": 0.2}
    profile = CINNProfile.model_validate(tiny_cinn_profile(loader=shared, augment=own))
    train = training_loader(profile)
    assert train.augment == AugmentParams(**own) and not profile.loader.augment.enabled
    assert train.model_dump(exclude={"augment"}) == profile.loader.model_dump(exclude={"augment"})


# ------------------------------------------------------------------------------------------ the cINN


def test_cinn_training_lowers_the_nll_and_follows_the_schedule(tmp_path):
    ae, conditioner = tiny_parts()
    module = CINNModule(tiny_cinn_profile(max_steps=24), ae, conditioner, TINY_ENCODERS)
    batches = [make_batch(seed=i) for i in range(3)]
    frozen = {k: v.clone() for k, v in module.state_dict().items() if not k.startswith("cinn.")}
    module.cinn(*module.encode(batches[0]))  # ActNorm data-dependent init, as the first training step does
    before = mean_objective(module, batches)
    trainer = build_trainer(CINNProfile.model_validate(tiny_cinn_profile(max_steps=24)).trainer, tmp_path)
    fit(trainer, module, loader(batches * 8))
    assert trainer.global_step == 24
    after = mean_objective(module, batches)
    assert after < before - 10, (before, after)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)  # decayed to zero at max_steps
    assert all(torch.equal(v, frozen[k]) for k, v in module.state_dict().items() if k in frozen)
    assert not module.ae.training and not module.conditioner.training
    bpd = float(trainer.callback_metrics["train/nll_bpd"])
    loss = float(trainer.callback_metrics["train/loss"])
    dims = 4 * 8 * 8
    assert bpd == pytest.approx(
        float(bits_per_dim(torch.tensor(loss + 0.5 * dims * math.log(2 * math.pi)), dims))
    )


def test_actnorm_is_initialised_from_the_first_batch():
    ae, conditioner = tiny_parts()
    module = CINNModule(tiny_cinn_profile(), ae, conditioner, TINY_ENCODERS)
    z, cond = module.encode(make_batch(8))
    actnorms = [m for m in module.cinn.modules() if isinstance(m, ActNorm)]
    assert actnorms and all(a.init_on_next_batch for a in actnorms)
    module.cinn(z, cond)
    assert not any(a.init_on_next_batch for a in actnorms)
    first = actnorms[0]  # after the first masked-convolution unit, whose flow starts as the identity
    assert torch.allclose((z * first.scale.exp() + first.bias).mean((0, 2, 3)), torch.zeros(4), atol=1e-5)


def test_checkpoints_hold_the_cinn_only_and_resume_at_the_same_step(tmp_path):
    ae, conditioner = tiny_parts()
    batches = [make_batch(seed=i) for i in range(2)]
    module = CINNModule(tiny_cinn_profile(max_steps=4), ae, conditioner, TINY_ENCODERS)
    fit(
        build_trainer(CINNProfile.model_validate(tiny_cinn_profile(4)).trainer, tmp_path),
        module,
        loader(batches * 2),
    )
    checkpoint = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)
    assert checkpoint["global_step"] == 4
    assert checkpoint["state_dict"] and all(k.startswith("cinn.") for k in checkpoint["state_dict"])

    # Resume with a longer run: starts at step 4, and the frozen parts are the ones passed in.
    ae2, conditioner2 = tiny_parts(seed=1)
    resumed = CINNModule(tiny_cinn_profile(max_steps=6), ae2, conditioner2, TINY_ENCODERS)
    trainer = build_trainer(CINNProfile.model_validate(tiny_cinn_profile(6)).trainer, tmp_path)
    fit(trainer, resumed, loader(batches * 3))
    assert trainer.global_step == 6
    assert torch.equal(resumed.ae.encoder.to_mu.weight, ae2.encoder.to_mu.weight)
    assert not torch.equal(resumed.ae.encoder.to_mu.weight, ae.encoder.to_mu.weight)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    ae, conditioner = tiny_parts()
    bad = make_batch(seed=9)
    bad["video"][0, 3] = float("nan")
    batches = [make_batch(seed=i) for i in range(4)] + [bad, make_batch(seed=5)]
    module = CINNModule(tiny_cinn_profile(max_steps=6), ae, conditioner, TINY_ENCODERS)
    trainer = build_trainer(CINNProfile.model_validate(tiny_cinn_profile(6)).trainer, tmp_path)
    with pytest.raises(TrainingDiverged, match="non-finite loss at global step 5"):
        fit(trainer, module, loader(batches))
    checkpoint = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_latent_noise_perturbs_training_latents_only(tmp_path, monkeypatch):
    ae, conditioner = tiny_parts()
    module = CINNModule(tiny_cinn_profile(max_steps=1, latent_noise=0.5), ae, conditioner, TINY_ENCODERS)
    batch = make_batch(8)
    clean = module.encode(batch)[0]
    seen = []
    forward = module.cinn.forward
    monkeypatch.setattr(module.cinn, "forward", lambda z, c: seen.append(z) or forward(z, c))
    trainer = build_trainer(CINNProfile.model_validate(tiny_cinn_profile(1)).trainer, tmp_path)
    fit(trainer, module, loader([batch]))
    trainer.validate(module, loader([batch]), verbose=False)
    assert float((seen[0] - clean).std()) == pytest.approx(0.5, rel=0.1)
    assert torch.equal(seen[1], clean)


def test_image_only_conditioning_ignores_the_poke():
    ae, conditioner = tiny_parts(poke_conditioning=False)
    module = CINNModule(tiny_cinn_profile(poke_conditioning=False), ae, conditioner, TINY_ENCODERS)
    assert module.cinn.cond_channels == TINY_ENCODERS.image_channels
    batch = make_batch()
    z, cond = module.encode(batch)
    batch["poke"] = torch.randn_like(batch["poke"])
    assert torch.equal(module.encode(batch)[1], cond)
    r, log_det = module.cinn(z, cond)
    assert torch.isfinite(objective(r, log_det)).all()


def test_mismatched_parts_are_refused_with_the_fix():
    ae, conditioner = tiny_parts()
    profile = CINNProfile.model_validate(tiny_cinn_profile())
    with pytest.raises(IpokeError, match="z is 4 x 8 x 8 but the cINN is built for 6"):
        check_compatible(
            profile.model_copy(update={"model": profile.model.model_copy(update={"latent_channels": 6})}),
            ae,
            conditioner,
        )
    with pytest.raises(IpokeError, match="poke_conditioning"):
        check_compatible(profile.model_copy(update={"poke_conditioning": False}), ae, conditioner)
    with pytest.raises(IpokeError, match="encoders take 64 px"):
        check_compatible(profile, ae, build_conditioner(TINY_ENCODERS, 64))


def test_sample_grid_shows_ground_truth_and_samples_with_pokes():
    ae, conditioner = tiny_parts()
    module = CINNModule(tiny_cinn_profile(), ae, conditioner, TINY_ENCODERS)
    batch = make_batch(2)
    module.cinn(*module.encode(batch))
    grid = sample_grid(module.pipeline(), batch, 3)
    assert grid.shape == (FRAMES, 2 * SIZE, 4 * SIZE, 3) and grid.dtype == "uint8"
    x, y, dx, dy = batch["poke_points"][0, 0].tolist()
    assert tuple(grid[0, int(y + dy), int(x + dx)]) != tuple(grid[0, 0, 0])  # the target dot is drawn


def test_validation_logs_nll_and_a_sample_gif_to_mlflow(tmp_path):
    ae, conditioner = tiny_parts()
    module = CINNModule(tiny_cinn_profile(max_steps=2), ae, conditioner, TINY_ENCODERS)
    profile = CINNProfile.model_validate(tiny_cinn_profile(2))
    mlflow.set_experiment("test-train-cinn")
    with mlflow.start_run() as run:
        trainer = build_trainer(profile.trainer, tmp_path, run_id=run.info.run_id)
        fit(trainer, module, loader([make_batch(seed=i) for i in range(2)]), loader([make_batch(seed=7)]))
        [final] = trainer.validate(module, loader([make_batch(seed=7)]), verbose=False)
    assert math.isfinite(final["val/nll_bpd"])
    artifacts = mlflow.MlflowClient().list_artifacts(run.info.run_id, "samples")
    assert [a.path for a in artifacts] == ["samples/samples-step0000002.gif"]


# ------------------------------------------------------------------------------------------ encoders


def tiny_encoders_profile(**extra) -> dict:
    return {
        "resolution": SIZE,
        "model": TINY_ENCODERS.model_dump(),
        "loss": {"perceptual": "none"},
        "optim": {"lr": 3e-3},
        "trainer": TRAINER | {"max_steps": 30, "checkpoint_every_n_steps": 30},
    } | extra


def test_encoder_pretraining_lowers_both_losses_and_reports_flow_error(tmp_path):
    L.seed_everything(0)
    module = EncoderPretraining(tiny_encoders_profile())
    batches = [make_batch(seed=i) for i in range(3)]
    with torch.no_grad():
        before = [module.losses(b) for b in batches]
    trainer = build_trainer(EncodersProfile.model_validate(tiny_encoders_profile()).trainer, tmp_path)
    fit(trainer, module, loader(batches * 10))
    [val] = trainer.validate(module, loader(batches[:1]), verbose=False)
    with torch.no_grad():
        after = [module.losses(b) for b in batches]
    for key in ("image_l1", "flow_l1"):
        assert sum(float(a[key]) for a in after) < 0.8 * sum(float(b[key]) for b in before), key
    assert val["val/flow_epe_zero"] == pytest.approx(float(batches[0]["flow"].norm(dim=1).mean()))
    assert val["val/flow_epe_moving_zero"] == pytest.approx(4.0 * math.sqrt(2), rel=0.3)  # 4 px pokes
    assert math.isfinite(val["val/flow_epe_moving"]) and math.isfinite(val["val/image_psnr"])
    assert not any("_perceptual" in k for k in module.state_dict())


def test_moving_pixels_can_be_up_weighted_in_the_flow_loss():
    batch = make_batch(2)
    plain = EncoderPretraining(tiny_encoders_profile())
    weighted = EncoderPretraining(tiny_encoders_profile(loss={"perceptual": "none", "moving_weight": 10.0}))
    weighted.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, b = plain.losses(batch), weighted.losses(batch)
    assert float(a["flow_weighted_l1"]) == pytest.approx(float(a["flow_l1"]))
    error = (b["pred_flow"] - batch["flow"]).abs().mean(dim=1)
    w = 1 + 9 * (batch["flow"].norm(dim=1) >= 1.0).float()
    assert float(b["flow_weighted_l1"]) == pytest.approx(float((w * error).sum() / w.sum()), rel=1e-5)
    assert float(b["flow_l1"]) == pytest.approx(float(a["flow_l1"]))


def test_lpips_vgg16_adds_image_and_flow_perceptual_terms():
    batch = make_batch(2)
    plain = EncoderPretraining(tiny_encoders_profile())
    loss = {"perceptual": "lpips_vgg16", "perceptual_weight": 2.0}
    lpips = EncoderPretraining(tiny_encoders_profile(loss=loss))
    lpips.load_state_dict(plain.state_dict())  # the loss network is not part of the state dict
    with torch.no_grad():
        a, b = plain.losses(batch), lpips.losses(batch)
    assert float(a["image_perceptual"]) == 0 and float(b["image_perceptual"]) > 0
    assert float(b["flow_perceptual"]) > 0
    extra = 2.0 * (b["image_perceptual"] + b["flow_perceptual"])
    assert float(b["total"]) == pytest.approx(float(a["total"] + extra), rel=1e-5)


def test_encoders_round_trip_and_image_only_loading(tmp_path):
    _, conditioner = tiny_parts()
    save_encoders(conditioner, TINY_ENCODERS, SIZE, tmp_path)
    loaded, record = load_encoders(tmp_path)
    assert record.resolution == SIZE and record.model == TINY_ENCODERS
    batch = make_batch(2)
    x0 = batch["video"][:, 0]
    assert torch.equal(loaded(x0, batch["poke"]), conditioner(x0, batch["poke"]))
    image_only, _ = load_encoders(tmp_path, poke_conditioning=False)
    assert image_only.poke_encoder is None and torch.equal(image_only(x0), conditioner.image_encoder(x0))
    save_encoders(image_only, TINY_ENCODERS, SIZE, tmp_path / "image-only")
    with pytest.raises(IpokeError, match="has no poke_encoder"):
        load_encoders(tmp_path / "image-only")


# ------------------------------------------------------------------------------------------ on shards


@pytest.mark.slow
def test_stages_train_on_shards_and_export_a_loadable_pipeline(tmp_path_factory, tmp_path):
    from test_shards import synthetic_pipeline

    from ipoke.sampling import PokePipeline
    from ipoke.train.cinn import CINNPaths, train_cinn
    from ipoke.train.encoders import train_encoders

    shards = synthetic_pipeline(tmp_path_factory)["shards"]
    torch.manual_seed(0)
    sizes = {"resolution": 64, "enc_channels": (4, 8, 8, 8), "dec_channels": (8, 8, 8, 4)}
    save_autoencoder(VideoAutoencoder(AEConfig(**TINY_AE.model_dump() | sizes)), tmp_path / "ae")
    small = {"loader": {"batch_size": 2, "workers": 0}, "eval_batches": 1}
    trainer = TRAINER | {"max_steps": 2, "val_every_n_steps": 2}
    encoders = EncodersProfile.model_validate(tiny_encoders_profile(resolution=64, trainer=trainer) | small)
    metrics = train_encoders(encoders, shards, tmp_path / "encoders")
    assert metrics["steps"] == 2 and metrics["flow_epe_zero"] >= 0
    paths = CINNPaths(
        shards, tmp_path / "ae", tmp_path / "encoders", tmp_path / "cinn", tmp_path / "pipeline"
    )
    profile = CINNProfile.model_validate(tiny_cinn_profile(2, test_frames=2, trainer=trainer) | small)
    metrics = train_cinn(profile, paths, "synthetic", "demo")
    assert metrics["steps"] == 2 and math.isfinite(metrics["test_nll_bpd"])
    pipeline = PokePipeline.load(tmp_path / "pipeline", device="cpu")
    assert (pipeline.size, pipeline.n_frames, pipeline.poke_conditioned) == (64, 11, True)
    clips = pd.read_parquet(shards / "clips.parquet")
    test_videos = clips.loc[clips["split"] == "test", "video_id"].nunique()
    assert len(pipeline.test_frames()) == min(2, test_videos)  # one start frame per test video
    videos = pipeline.sample(pipeline.test_frames()[0][1], [(30, 30, 5, 0)], 2, seed=0)
    assert videos.shape == (2, 11, 64, 64, 3)
