"""The baselines of the paper's comparisons: II2V, iPOKE's cVAE counterpart and Hao et al.'s warping.

Shapes, the training steps of the two trained ones (with their stages, schedules and resume), and two
properties that can fail: II2V is deterministic, and Hao's warping reproduces a translated texture.
"""

from __future__ import annotations

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from test_train_cinn import TINY_AE, TINY_ENCODERS, TRAINER, loader, make_batch

from ipoke.config import load_section
from ipoke.errors import IpokeError
from ipoke.models.autoencoder import VideoAutoencoder
from ipoke.models.baselines.cvae import CVAE, CVAEConfig
from ipoke.models.baselines.hao import HaoConfig, HaoWarping, bend_to_targets, start_points, warp_along
from ipoke.models.baselines.ii2v import II2V, II2VConfig
from ipoke.models.baselines.io import load_model, save_model
from ipoke.models.encoders import build_conditioner
from ipoke.train.cvae import CVAEModule, init_from_trained
from ipoke.train.ii2v import II2VModule, II2VProfile, TrainII2VParams
from ipoke.train.trainer import LAST_CHECKPOINT, TrainerParams, build_trainer, fit

SIZE = 32
TINY_II2V = II2VConfig(
    resolution=SIZE, n_frames=10, min_size=8, width=4, deep_width=8, poke_width=4, norm_groups=2
)
TINY_CVAE = CVAEConfig(ae=TINY_AE, encoders=TINY_ENCODERS)


def inputs(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, SIZE, SIZE, generator=g) * 2 - 1
    poke = torch.zeros(batch, 2, SIZE, SIZE)
    poke[:, :, 10:15, 12:17] = torch.tensor([3.0, -2.0])[:, None, None]
    return x0, poke


# ------------------------------------------------------------------------------------------------ II2V


def test_ii2v_state_hierarchy_and_frames_have_the_papers_shapes():
    model = II2V(TINY_II2V)
    x0, poke = inputs()
    states = model.encoder(x0)
    assert [tuple(s.shape[1:]) for s in states] == [(4, 16, 16), (8, 8, 8), (8, 8, 8)]
    frames, trajectory = model(x0, poke)
    assert frames.shape == (2, 10, 3, SIZE, SIZE) and frames.abs().max() <= 1
    assert len(trajectory) == 10
    assert [s.shape for s in trajectory[-1]] == [s.shape for s in states]
    assert model.reconstruct(x0).shape == x0.shape
    # The authors' widths: 128, 256 (+ 512 bottleneck) at 64 px; 64, 128, 256 (+ 512) at 128 px.
    paper = load_section("train_ii2v", TrainII2VParams).paper.model
    assert paper.widths == [128, 256, 512]
    assert paper.model_copy(update={"resolution": 128, "width": 64}).widths == [64, 128, 256, 512]


def test_ii2v_is_deterministic_and_follows_the_poke():
    model = II2V(TINY_II2V).eval()
    x0, poke = inputs()
    first = model.sample_batch(x0, poke, 3, seed=0)
    again = model.sample_batch(x0.clone(), poke.clone(), 3, seed=7)
    assert first.shape == (2, 3, 11, 3, SIZE, SIZE)
    assert torch.equal(first, again)
    assert torch.equal(first[:, 0], first[:, 2])
    assert torch.equal(first[:, :, 0], x0[:, None].expand(-1, 3, -1, -1, -1))
    other = model.sample_batch(x0, -poke, 1, seed=0)
    assert not torch.equal(first[:, :1], other)


def tiny_ii2v_profile(max_steps: int, pretrain_steps: int, **loss) -> dict:
    return {
        "model": TINY_II2V.model_dump(),
        "disc": {"spatial_width": 4, "temporal_width": 4, "temporal_blocks": [1, 1, 1, 1], "groups": 2},
        "loss": {"perceptual": "none", "l1": 1.0, "l2": 1.0, "adversarial": False} | loss,
        "optim": {"lr": 1e-3},
        "pretrain_steps": pretrain_steps,
        "trainer": TRAINER | {"max_steps": max_steps},
    }


def test_ii2v_trains_the_object_state_space_then_the_dynamics_and_resumes(tmp_path):
    batches = [make_batch(seed=i) for i in range(4)]
    module = II2VModule(tiny_ii2v_profile(max_steps=4, pretrain_steps=4))
    start = {k: v.clone() for k, v in module.model.state_dict().items()}
    profile = II2VProfile.model_validate(tiny_ii2v_profile(4, 4))
    fit(build_trainer(profile.trainer, tmp_path), module, loader(batches))
    after_stage_one = {k: v.clone() for k, v in module.model.state_dict().items()}
    changed = {k.split(".")[0] for k in start if not torch.equal(start[k], after_stage_one[k])}
    assert changed == {"encoder", "decoder"}  # stage 1: E_sigma and G only

    resumed = II2VModule(tiny_ii2v_profile(max_steps=6, pretrain_steps=4))
    profile = II2VProfile.model_validate(tiny_ii2v_profile(6, 4))
    trainer = build_trainer(profile.trainer, tmp_path)
    fit(trainer, resumed, loader(batches * 2))
    assert trainer.global_step == 6
    final = resumed.model.state_dict()
    changed = {k.split(".")[0] for k in final if not torch.equal(final[k], after_stage_one[k])}
    assert changed == {"poke_encoder", "predictor", "decoder"}  # stage 2: E_sigma stays fixed
    assert torch.isfinite(trainer.callback_metrics["train/dynamics/state_matching"])


def test_ii2v_adversarial_terms_train_both_discriminators_at_two_steps_per_batch(tmp_path):
    profile = tiny_ii2v_profile(2, 1, adversarial=True, gan_start=0, spatial_frames=4)
    module = II2VModule(profile)
    disc = {k: v.clone() for k, v in module.state_dict().items() if k.startswith("disc_")}
    params = II2VProfile.model_validate(profile).trainer
    trainer = build_trainer(params, tmp_path, optimizer_steps_per_batch=2)
    fit(trainer, module, loader([make_batch(seed=i) for i in range(2)]))
    assert trainer.global_step == 4 and module.iteration == 2
    state = module.state_dict()
    assert {k.split(".")[0] for k in disc if not torch.equal(disc[k], state[k])} == {"disc_s", "disc_t"}
    assert torch.isfinite(trainer.callback_metrics["train/dynamics/g_adversarial"])


# ------------------------------------------------------------------------------------------------- cVAE


def test_cvae_stacks_z_and_both_encodings_as_the_gru_state():
    model = CVAE(TINY_CVAE)
    assert TINY_CVAE.hidden_channels == 4 + 4 + 4
    assert model.renderer.gru.cells[0].candidate.out_channels == TINY_CVAE.hidden_channels
    batch = make_batch(2)
    frames, mu, logvar = model(batch["video"], batch["poke"])
    assert frames.shape == (2, 10, 3, SIZE, SIZE) and mu.shape == logvar.shape == (2, 4, 8, 8)
    x0 = batch["video"][:, 0]
    assert model.condition(x0, batch["poke"]).shape == (2, 8, 8, 8)
    z = torch.randn(2, 4, 8, 8)
    unpoked = model.decode(z, x0, torch.zeros_like(batch["poke"]))
    assert not torch.equal(model.decode(z, x0, batch["poke"]), unpoked)


def test_cvae_samples_z_from_the_prior_reproducibly():
    model = CVAE(TINY_CVAE).eval()
    batch = make_batch(2)
    x0, poke = batch["video"][:, 0], batch["poke"]
    videos = model.sample_batch(x0, poke, 3, seed=1)
    assert videos.shape == (2, 3, 11, 3, SIZE, SIZE)
    assert torch.equal(videos[:, :, 0], x0[:, None].expand(-1, 3, -1, -1, -1))
    assert torch.equal(videos, model.sample_batch(x0, poke, 3, seed=1))
    assert not torch.equal(videos[:, 0], videos[:, 1])  # samples differ with z
    assert not torch.equal(videos, model.sample_batch(x0, poke, 3, seed=2))


def tiny_cvae_profile(max_steps: int, anneal_epochs: float = 2.0) -> dict:
    return {
        "model": TINY_AE.model_dump(),
        "encoders": TINY_ENCODERS.model_dump(),
        "loss": {"perceptual": "none", "adversarial": False, "kl": 0.1, "l2": 1.0},
        "kl_anneal_epochs": anneal_epochs,
        "trainer": TRAINER | {"max_steps": max_steps},
    }


class KLWeights(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(pl_module.kl_weight())


def test_cvae_trains_with_the_kl_weight_annealed_over_epochs(tmp_path):
    module = CVAEModule(tiny_cvae_profile(max_steps=6), steps_per_epoch=2)  # 2 epochs: 4 batches
    weights = KLWeights()
    params = TrainerParams.model_validate(TRAINER | {"max_steps": 6})
    trainer = build_trainer(params, tmp_path, callbacks=[weights])
    fit(trainer, module, loader([make_batch(seed=i) for i in range(6)]))
    full = 0.1 / 64  # per latent position, as the authors' KL
    assert weights.seen == pytest.approx([0, full / 4, full / 2, 3 * full / 4, full, full])
    assert torch.isfinite(trainer.callback_metrics["train/kl"])
    assert (tmp_path / LAST_CHECKPOINT).is_file()


def test_cvae_starts_from_the_trained_parts_that_fit():
    torch.manual_seed(0)
    ae, conditioner = VideoAutoencoder(TINY_AE), build_conditioner(TINY_ENCODERS, SIZE)
    model = CVAE(TINY_CVAE)
    fresh = init_from_trained(model, ae, conditioner)
    for ours, theirs in [
        (model.encoder, ae.encoder),
        (model.image_encoder, conditioner.image_encoder.encoder),
        (model.poke_encoder, conditioner.poke_encoder.encoder),
        (model.renderer.decoder.ups, ae.decoder.ups),
        (model.renderer.decoder.spades, ae.decoder.spades),
    ]:
        pairs = zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
    assert {name.split(".")[0] for name in fresh} == {"gru", "decoder"}
    assert all(name.startswith(("gru.", "decoder.head.")) for name in fresh)


def test_a_trained_baseline_saves_and_loads(tmp_path):
    model = CVAE(TINY_CVAE).eval()
    save_model(model, TINY_CVAE, tmp_path / "cvae", "cvae")
    loaded = load_model(tmp_path / "cvae", "cvae", CVAEConfig, CVAE, "train_cvae")
    x0, poke = inputs()
    assert torch.equal(loaded.sample_batch(x0, poke, 2, seed=0), model.sample_batch(x0, poke, 2, seed=0))
    with pytest.raises(IpokeError, match="run the train_ii2v stage"):
        load_model(tmp_path / "ii2v", "ii2v", II2VConfig, II2V, "train_ii2v")


# ------------------------------------------------------------------------------------------------- Hao


def translated_clip(shift: tuple[int, int], frames: int = 11, size: int = 48) -> np.ndarray:
    """(frames, size, size, 3) uint8 of a smooth texture translated by ``shift`` px per frame."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (size + 40, size + 40, 3)).astype(np.float32), (0, 0), 2.0)
    big = np.clip((big - big.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    dx, dy = shift
    corners = [(20 - dy * t, 20 - dx * t) for t in range(frames)]
    return np.stack([big[y : y + size, x : x + size] for y, x in corners])


def test_hao_warping_is_exact_on_a_translated_texture():
    clip = translated_clip((1, -1))
    truth = clip[1:].astype(np.float32) / 127.5 - 1
    x0 = clip[0].astype(np.float32) / 127.5 - 1
    inside = (slice(None), slice(12, -12), slice(12, -12))  # away from content entering at the borders
    # Along the true trajectories the warp reproduces every frame exactly.
    starts = np.array([[10.0, 10.0], [40.0, 30.0], [25.0, 5.0]])
    trajectories = starts[None] + np.arange(11)[:, None, None] * np.array([1.0, -1.0])
    assert np.abs(warp_along(x0, trajectories, sigma=4.8) - truth)[inside].max() < 1e-6
    # The whole baseline, trajectories tracked with optical flow, is within half a grey level.
    pokes = np.array([[24.0, 24.0, 10.0, -10.0]])
    video = HaoWarping(HaoConfig()).clip_video(clip, pokes, np.random.default_rng(0))
    assert np.abs(video - truth)[inside].max() * 127.5 < 0.5


def test_hao_poked_points_come_first_and_end_at_their_targets():
    pokes = np.array([[5.0, 7.0, 3.0, 1.0], [20.0, 9.0, -2.0, 4.0]])
    points = start_points(pokes, 5, 32, np.random.default_rng(0))
    assert points.shape == (5, 2) and np.array_equal(points[:2], pokes[:, :2])
    assert len({tuple(p) for p in points}) == 5 and ((points >= 0) & (points <= 31)).all()
    tracked = np.cumsum(np.full((11, 5, 2), 0.5), axis=0) - 0.5 + points[None]
    bent = bend_to_targets(tracked, pokes)
    assert np.allclose(bent[-1, :2], pokes[:, :2] + pokes[:, 2:]) and np.allclose(bent[0], tracked[0])
    assert np.array_equal(bent[:, 2:], tracked[:, 2:])


def test_hao_samples_one_deterministic_video_per_clip():
    clip = torch.from_numpy(translated_clip((1, 0), size=32)).permute(0, 3, 1, 2).float() / 127.5 - 1
    video = torch.stack([clip, clip.flip(-1)])
    points = torch.tensor([[[10.0, 10.0, 5.0, 0.0]] * 5] * 2)
    n_pokes = torch.tensor([1, 1])
    hao = HaoWarping(HaoConfig())
    out = hao.batch_videos(video, points, n_pokes, seed=3)
    assert out.shape == (2, 1, 11, 3, 32, 32) and torch.equal(out[:, 0, 0], video[:, 0])
    assert torch.equal(out, hao.batch_videos(video, points, n_pokes, seed=3))
