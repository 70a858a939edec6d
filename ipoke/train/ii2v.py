"""Training II2V (Blattmann et al. 2021, sec. 3.2): the ``train_ii2v`` stage's Lightning module.

Two stages, as the paper describes them:

1. Object state space (the first ``pretrain_steps`` batches): the object encoder E_sigma and the decoder G
   learn to reconstruct single frames (``pretrain_frames`` random frames of each clip).
2. Dynamics (the rest): E_sigma is frozen; the poke encoder, the hierarchical predictor and G learn to
   reproduce the clip from x0 and the poke. Loss (paper eq. 8): reconstruction of frames 1..T, plus the
   state-matching term ``state_matching * mean_t,l ||s_hat_t^l - E_sigma(x_t)^l||^2`` that pulls every
   predicted state hierarchy onto the encoding of the real frame (G is fine-tuned meanwhile, compensating
   for what the prediction still misses), plus, from batch ``gan_start`` on, the adversarial terms of a
   PatchGAN on frames and a temporal 3D ResNet on clips (hinge losses, R1 penalty and feature matching on
   the temporal one).

Reconstruction is the VGG perceptual loss in the paper (the authors' code: VGG19, weight 5; the paper profile
uses the VGG16 loss whose weights ship offline, see :mod:`ipoke.models.perceptual`); the demo uses the
autoencoder's pixel terms instead (L1 + squared error, moving pixels weighted up:
:func:`ipoke.train.autoencoder.pixel_losses`). The authors' code alternates the two stages batch by batch from
the start; we run them one after the other, as the paper's text does.
Validation compares the predicted frames of held-out clips with the ground truth (L1, PSNR), beside the
static baseline (x0 repeated) and stage 1's reconstruction of single frames.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from pydantic import Field
from torchmetrics import MeanMetric

from ipoke.config import Section
from ipoke.data.loader import LoaderParams, make_loader
from ipoke.data.shards import CLIPS_NAME
from ipoke.errors import IpokeError
from ipoke.metrics.image import frame_psnr, video_psnr
from ipoke.models.baselines.ii2v import II2V, II2VConfig
from ipoke.models.baselines.io import save_model
from ipoke.models.discriminators import (
    DiscConfig,
    PatchDiscriminator,
    TemporalDiscriminator,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    r1_penalty,
)
from ipoke.models.perceptual import PerceptualKind, perceptual_loss
from ipoke.train.autoencoder import MAX_PSNR_DB, pixel_losses
from ipoke.train.trainer import (
    StageSection,
    TrainerParams,
    build_trainer,
    fit,
    is_ddp_worker,
    reset_stale_checkpoints,
)

log = logging.getLogger("ipoke")
WEIGHTS_NAME = "ii2v"


class II2VLossConfig(Section):
    """Paper eq. 8 with the authors' weights (``fixed_length_model`` config)."""

    perceptual: PerceptualKind = "vgg16"  # see ipoke/models/perceptual.py
    perceptual_weight: float = Field(5.0, ge=0)
    perceptual_weights: str | None = None  # the network's weight file; null: the weights or torch hub cache
    # Pixel terms of stage 2, as the autoencoder's (not in the paper; the demo's stand-in for VGG).
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    moving_weight: float = Field(1.0, ge=1.0)
    moving_threshold: float = Field(0.1, gt=0)
    state_matching: float = Field(0.1, ge=0)
    adversarial: bool = True
    gan_start: int = Field(4000, ge=0)  # batch at which both discriminators start (authors: 4000)
    spatial_gan: float = Field(1.0, ge=0)
    temporal_gan: float = Field(5.0, ge=0)
    temporal_feature_matching: float = Field(10.0, ge=0)
    gradient_penalty: float = Field(0.1, ge=0)  # R1 on the temporal discriminator
    spatial_frames: int = Field(16, gt=0)  # random frames per batch for the PatchGAN


class II2VOptimConfig(Section):
    lr: float = Field(1e-4, gt=0)  # authors: Adam 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class II2VProfile(Section):
    """One profile (demo or paper) of the ``train_ii2v`` section."""

    model: II2VConfig
    disc: DiscConfig = DiscConfig()
    loss: II2VLossConfig = II2VLossConfig()
    optim: II2VOptimConfig = II2VOptimConfig()
    pretrain_steps: int = Field(gt=0)  # batches of stage 1 (object state space) before the dynamics
    pretrain_frames: int = Field(2, gt=0)  # random frames per clip reconstructed in stage 1
    trainer: TrainerParams
    loader: LoaderParams = LoaderParams()
    eval_batches: int | None = Field(None, gt=0)  # test batches for the final metrics; null: the whole split


class TrainII2VParams(StageSection):
    demo: II2VProfile
    paper: II2VProfile


VAL_SCORES = ("l1", "psnr", "static_l1", "static_psnr", "recon_psnr")


class II2VModule(L.LightningModule):
    """II2V with its two training stages; manual optimisation (generator, and discriminators if used)."""

    def __init__(self, profile: dict):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.cfg = cfg = II2VProfile.model_validate(profile)
        self.automatic_optimization = False
        self.model = II2V(cfg.model)
        self.adversarial = cfg.loss.adversarial
        if self.adversarial:
            self.disc_s = PatchDiscriminator(cfg.disc)
            self.disc_t = TemporalDiscriminator(cfg.disc)
        # Frozen and pretrained: kept out of the state dict (and checkpoints) on purpose.
        loss = cfg.loss
        network = perceptual_loss(loss.perceptual, loss.perceptual_weights)
        self._perceptual = [network] if network is not None else []
        self.val_scores = torch.nn.ModuleDict({k: MeanMetric() for k in VAL_SCORES})

    @property
    def optimizer_steps_per_batch(self) -> int:
        return 2 if self.adversarial else 1

    @property
    def iteration(self) -> int:
        """Batches trained so far (Lightning's global step counts every optimizer step)."""
        return self.trainer.global_step // self.optimizer_steps_per_batch

    def on_fit_start(self) -> None:
        for net in self._perceptual:
            net.to(self.device)

    def configure_optimizers(self):
        o = self.cfg.optim
        groups = [self.model.parameters()]
        if self.adversarial:
            groups.append([*self.disc_s.parameters(), *self.disc_t.parameters()])
        return [torch.optim.Adam(p, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay) for p in groups]

    def _video(self, batch: dict) -> torch.Tensor:
        video, size = batch["video"], self.cfg.model.resolution
        if video.shape[-2:] != (size, size) or video.shape[1] != self.cfg.model.n_frames + 1:
            raise IpokeError(
                f"clips are {video.shape[1]} frames of {video.shape[-1]} px, II2V is built for "
                f"{self.cfg.model.n_frames + 1} of {size} px: set train_ii2v.<profile>.model to match"
            )
        return video

    def _perceptual_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._perceptual[0](pred, target) if self._perceptual else pred.new_zeros(())

    # ------------------------------------------------------------------------------------------ training

    def object_state_losses(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage 1: E_sigma and G reconstruct ``pretrain_frames`` random frames of each clip."""
        w = self.cfg.loss
        b, t = video.shape[:2]
        pick = torch.rand(b, t, device=video.device).argsort(dim=1)[:, : self.cfg.pretrain_frames]
        frames = video[torch.arange(b, device=video.device)[:, None], pick].flatten(0, 1)
        recon = self.model.reconstruct(frames)
        error = recon - frames
        out = {"l1": error.abs().mean(), "l2": error.pow(2).mean()}
        out["perceptual"] = self._perceptual_loss(recon, frames)
        out["total"] = w.l1 * out["l1"] + w.l2 * out["l2"] + w.perceptual_weight * out["perceptual"]
        return out

    def dynamics_losses(
        self, video: torch.Tensor, frames: torch.Tensor, predicted: list[list[torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Stage 2 without the adversarial terms: reconstruction and state matching."""
        w = self.cfg.loss
        out, total = pixel_losses(frames, video, w)
        out["perceptual"] = self._perceptual_loss(frames.flatten(0, 1), video[:, 1:].flatten(0, 1))
        with torch.no_grad():
            real = self.model.encoder(video[:, 1:].flatten(0, 1))
            real = [level.unflatten(0, (len(video), -1)) for level in real]
        errors = [
            (state - target[:, t]).pow(2).mean()
            for t, states in enumerate(predicted)
            for state, target in zip(states, real, strict=True)
        ]
        out["state_matching"] = torch.stack(errors).mean()
        out["total"] = (
            total + w.perceptual_weight * out["perceptual"] + w.state_matching * out["state_matching"]
        )
        return out

    def _discriminator_step(self, video: torch.Tensor, fake: torch.Tensor, pick: torch.Tensor) -> tuple:
        """One step of both discriminators on real and generated clips (x0 + T frames); returns their losses
        and the real clips' temporal features for the generator's feature matching."""
        w, opt_d = self.cfg.loss, self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        real = video.detach().requires_grad_(w.gradient_penalty > 0)
        dt_real, ft_real = self.disc_t(real)
        real_frames, fake_frames = video[:, 1:].flatten(0, 1)[pick], fake[:, 1:].flatten(0, 1)[pick].detach()
        losses = {
            "d_spatial": hinge_d_loss(self.disc_s(real_frames)[0], self.disc_s(fake_frames)[0]),
            "d_temporal": hinge_d_loss(dt_real, self.disc_t(fake.detach())[0]),
            "d_gp": r1_penalty(dt_real, real) if w.gradient_penalty > 0 else dt_real.new_zeros(()),
        }
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(losses["d_spatial"] + losses["d_temporal"] + w.gradient_penalty * losses["d_gp"])
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        return losses, [f.detach() for f in ft_real]

    def _generator_adversarial(self, fake: torch.Tensor, pick: torch.Tensor, real_features: list) -> dict:
        """The generator's adversarial terms (hinge on both discriminators, temporal feature matching)."""
        w = self.cfg.loss
        dt_fake, ft_fake = self.disc_t(fake)
        losses = {
            "g_spatial": hinge_g_loss(self.disc_s(fake[:, 1:].flatten(0, 1)[pick])[0]),
            "g_temporal": hinge_g_loss(dt_fake),
            "fm_temporal": feature_matching_loss(ft_fake, real_features),
        }
        losses["g_adversarial"] = (
            w.spatial_gan * losses["g_spatial"]
            + w.temporal_gan * losses["g_temporal"]
            + w.temporal_feature_matching * losses["fm_temporal"]
        )
        return losses

    def training_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        video = self._video(batch)
        optimizers = self.optimizers()
        opt_g = optimizers[0] if self.adversarial else optimizers
        stage_one = self.iteration < self.cfg.pretrain_steps
        gan = self.adversarial and not stage_one and self.iteration >= self.cfg.loss.gan_start
        self.model.encoder.requires_grad_(stage_one)  # the object state space is fixed in stage 2
        if stage_one:
            losses = self.object_state_losses(video)
        else:
            frames, predicted = self.model(video[:, 0], batch["poke"])
            losses = self.dynamics_losses(video, frames, predicted)
            fake = torch.cat([video[:, :1], frames], dim=1)
        if gan:
            n_frames = frames.shape[0] * frames.shape[1]
            pick = torch.randperm(n_frames, device=video.device)[: self.cfg.loss.spatial_frames]
            d_losses, real_features = self._discriminator_step(video, fake, pick)
            losses |= d_losses
        self.toggle_optimizer(opt_g)
        if gan:
            losses |= self._generator_adversarial(fake, pick, real_features)
            losses["total"] = losses["total"] + losses["g_adversarial"]
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(losses["total"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        if self.adversarial and not gan:
            optimizers[1].step()  # no gradients: a no-op that keeps Lightning's step count at two per batch
        losses = {k: v.detach() for k, v in losses.items()}
        prefix = "train/object_state/" if stage_one else "train/dynamics/"
        self.log_dict({prefix + k: v for k, v in losses.items()}, on_step=True, on_epoch=False)
        self.log("loss", losses["total"], prog_bar=True, logger=False)
        return losses

    # ---------------------------------------------------------------------------------------- validation

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        video = self._video(batch)
        target, frames = video[:, 1:], self.model(video[:, 0], batch["poke"])[0]
        static = video[:, :1].expand_as(target)
        scores = {
            "l1": (frames - target).abs().flatten(1).mean(1),
            "psnr": video_psnr(frames, target, max_db=MAX_PSNR_DB),
            "static_l1": (static - target).abs().flatten(1).mean(1),
            "static_psnr": video_psnr(static, target, max_db=MAX_PSNR_DB),
            "recon_psnr": frame_psnr(self.model.reconstruct(video[:, 0]), video[:, 0], max_db=MAX_PSNR_DB),
        }
        for name, value in scores.items():
            self.val_scores[name].update(value)

    def on_validation_epoch_end(self) -> None:
        values = {}
        for name, metric in self.val_scores.items():
            if metric.update_count:
                values[f"val/{name}"] = float(metric.compute())
            metric.reset()
        self.log_dict(values)


def fingerprint(profile: II2VProfile) -> dict:
    """What a checkpoint's meaning depends on: everything but the trainer's length, hardware and intervals."""
    return profile.model_dump(mode="json", exclude={"trainer"}) | {"seed": profile.trainer.seed}


def train_ii2v(profile: II2VProfile, shards: Path, out_dir: Path, run_id: str | None = None) -> dict | None:
    """Train (or resume) II2V on ``shards``; write ``ii2v.pt`` and ``config.json`` into ``out_dir``.

    Checkpoints live in ``out_dir/checkpoints``. Returns the final held-out metrics on rank 0, None in DDP
    worker processes.
    """
    if not (shards / CLIPS_NAME).is_file():
        raise IpokeError(f"{shards}: no shards (clips.parquet missing): run the shard stage first")
    if profile.pretrain_steps >= profile.trainer.max_steps:
        raise IpokeError(
            f"train_ii2v: pretrain_steps ({profile.pretrain_steps}) leaves no step of max_steps "
            f"({profile.trainer.max_steps}) for the dynamics"
        )
    L.seed_everything(profile.trainer.seed, workers=True, verbose=False)
    checkpoints = out_dir / "checkpoints"
    if not is_ddp_worker():
        reset_stale_checkpoints(checkpoints, fingerprint(profile), shards)
    train_loader = make_loader(shards, "train", profile.loader)
    # Held-out clips are scored as recorded: no background pokes (whose target is the still clip).
    pokes = profile.loader.pokes.model_copy(update={"background_prob": 0.0})
    val_loader = make_loader(shards, "test", profile.loader.model_copy(update={"pokes": pokes}), train=False)
    module = II2VModule(profile.model_dump(mode="json"))
    steps = module.optimizer_steps_per_batch
    trainer = build_trainer(profile.trainer, checkpoints, run_id=run_id, optimizer_steps_per_batch=steps)
    fit(trainer, module, train_loader, val_loader)
    trainer.limit_val_batches = profile.eval_batches or 1.0
    [final] = trainer.validate(module, val_loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    save_model(module.model, profile.model, out_dir, WEIGHTS_NAME)
    metrics = {k.removeprefix("val/"): float(v) for k, v in final.items()}
    metrics["steps"] = module.iteration
    metrics["params_ii2v"] = sum(p.numel() for p in module.model.parameters())
    return metrics
