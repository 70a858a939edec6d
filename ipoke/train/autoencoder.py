"""Training the video autoencoder (paper eq. 9, appendix E.1): the ``train_ae`` stage's Lightning module.

Each batch does one discriminator step (hinge losses of the spatial PatchGAN on frames and the temporal 3D
ResNet on clips, R1 penalty on real clips) and one autoencoder step (10 L1 + 10 VGG + 1e-7 KL + hinge
generator and feature-matching terms of both discriminators), with manual optimisation. The CPU demo,
without perceptual and adversarial terms, adds a squared-error term (``loss.l2``) and weighs pixels that
differ from x0 more (``loss.moving_weight``). Validation compares the reconstruction of held-out clips with
the static baseline (x0 copied to every frame) in L1, PSNR and SSIM, over all clips and over moving ones,
measures how much the reconstruction moves, and logs a GT | reconstruction GIF to MLflow.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import lightning as L
import torch
from pydantic import Field, model_validator
from torch import nn
from torchmetrics import MeanMetric

from ipoke.config import Section
from ipoke.data.loader import LoaderParams, make_loader
from ipoke.errors import IpokeError
from ipoke.metrics.image import video_psnr, video_ssim
from ipoke.metrics.videos import float_to_uint8
from ipoke.models.autoencoder import (
    AEConfig,
    VideoAutoencoder,
    backward_warp,
    kl_divergence,
    save_autoencoder,
)
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
from ipoke.train.trainer import (
    StageSection,
    TrainerParams,
    build_trainer,
    fit,
    is_ddp_worker,
    reset_stale_checkpoints,
)

log = logging.getLogger("ipoke")

MAX_PSNR_DB = 60.0  # identical frames (a still clip's static baseline) would score +inf; as in evaluate
SUBSETS = ("all", "moving")
METHODS = ("recon", "static")
SCORES = ("l1", "psnr", "ssim")
# How much a clip changes over its predicted frames, mean |x_t - x_1|, for the reconstruction and the ground
# truth: an autoencoder that only redraws x0 has recon_motion near zero, however good its PSNR.
MOTION = ("recon_motion", "clip_motion")


class AELossConfig(Section):
    """Loss weights (reference code: 10 L1, 10 VGG, KL 1e-7; paper: lambda_gp 1.2)."""

    l1: float = Field(10.0, ge=0)
    # Squared error (not in the paper). Without perceptual and adversarial terms (the offline demo) L1 alone
    # pulls towards the median frame, the unmoved x0; the squared error's mean lets motion appear early.
    l2: float = Field(0.0, ge=0)
    # Weight of moving pixels (not in the paper: 1) in both pixel terms: those whose |x_t - x0| reaches
    # moving_threshold in some channel (frames in [-1, 1]), the part's old and new places alike. Still
    # background fills most of a frame and would otherwise dominate what the few latent channels learn.
    moving_weight: float = Field(1.0, ge=1.0)
    moving_threshold: float = Field(0.1, gt=0)
    # Warp decoder only (not in the paper): the clip's estimated start->end flow u supervises the last
    # frame's backward flow b, |b(p + u(p)) + u(p)| in pixels, moving pixels weighted by moving_weight.
    # The photometric losses only pull a warp within about a pixel of the right place; this anchors it.
    flow: float = Field(0.0, ge=0)
    flow_magnitude_weight: bool = False  # weigh each pixel's flow error by 1 + |u| (px): fast parts count
    # Not in the paper: the squared error between z's mean in its first two channels and the clip's start->end
    # flow, average-pooled to the latent grid, in pixels. It gives the clip's motion a plain place in z,
    # where the cINN can read it off the flow its conditioning predicts.
    latent_flow: float = Field(0.0, ge=0)
    perceptual: PerceptualKind = "vgg16"  # see ipoke/models/perceptual.py
    perceptual_weight: float = Field(10.0, ge=0)
    perceptual_weights: str | None = None  # the network's weight file; null: the weights or torch hub cache
    # Random predicted frames per batch the perceptual term sees (not in the paper: all). The VGG costs far
    # more than the demo autoencoder on a CPU; a few frames per batch keep the term affordable.
    perceptual_frames: int | None = Field(None, gt=0)
    kl: float = Field(1e-7, ge=0)
    adversarial: bool = True  # train the two discriminators and add their generator terms
    spatial_gan: float = Field(1.0, ge=0)
    spatial_feature_matching: float = Field(1.0, ge=0)
    temporal_gan: float = Field(1.0, ge=0)
    temporal_feature_matching: float = Field(1.0, ge=0)
    gradient_penalty: float = Field(1.2, ge=0)
    spatial_frames: int | None = Field(None, gt=0)  # random frames per batch for D_S; null: all (eq. 21)


class OptimConfig(Section):
    """Adam for all networks (paper: 2e-4, betas (0.5, 0.9), weight decay 1e-5, exponential decay)."""

    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = Field(1e-5, ge=0)
    lr_decay: float = Field(0.98, gt=0, le=1)  # multiply the learning rate by this ...
    lr_decay_every: int = Field(2000, gt=0)  # ... every this many batches (reference: per 2000-batch epoch)


class AEProfile(Section):
    """One profile (demo or paper) of the ``train_ae`` section."""

    model: AEConfig
    disc: DiscConfig = DiscConfig()
    loss: AELossConfig = AELossConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerParams
    loader: LoaderParams = LoaderParams()
    moving_flow_px: float = Field(1.0, ge=0)  # a held-out clip "moves" when its flow reaches this (99th pct)
    gif_clips: int = Field(4, ge=0)  # clips in each GT | reconstruction GIF
    eval_batches: int | None = Field(None, gt=0)  # test batches for the final metrics; null: the whole split

    @model_validator(mode="after")
    def _latent_flow_needs_two_channels(self) -> AEProfile:
        if self.loss.latent_flow > 0 and self.model is not None and self.model.z_dim < 2:
            raise ValueError(f"loss.latent_flow needs z's first 2 channels; z_dim is {self.model.z_dim}")
        return self


class TrainAEParams(StageSection):
    demo: AEProfile
    paper: AEProfile


def pixel_losses(
    recon: torch.Tensor, clip: torch.Tensor, weights: AELossConfig
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """L1 and squared error (``l1``, ``l2``) of a reconstruction of ``clip[:, 1:]``, and their weighted sum.

    ``clip`` is (B, 1 + T, 3, H, W) with x0 first. Both errors are means over pixels weighted by
    ``weights.moving_weight`` where the frame differs from x0 (plain means at weight 1).
    """
    target = clip[:, 1:]
    error = recon - target
    moving = (target - clip[:, :1]).abs().amax(dim=2, keepdim=True) >= weights.moving_threshold
    pixel_weight = 1.0 + (weights.moving_weight - 1.0) * moving.to(error.dtype)
    normaliser = pixel_weight.expand_as(error).sum()
    terms = {
        "l1": (pixel_weight * error.abs()).sum() / normaliser,
        "l2": (pixel_weight * error.pow(2)).sum() / normaliser,
    }
    return terms, weights.l1 * terms["l1"] + weights.l2 * terms["l2"]


def end_flow_error(
    backward: torch.Tensor, forward: torch.Tensor, moving_weight: float = 1.0, by_magnitude: bool = False
) -> torch.Tensor:
    """Mean |b(p + u(p)) + u(p)| (pixels) between a predicted backward flow ``b`` of the last frame and the
    start->end flow ``u`` (both (B, 2, H, W)): zero when b maps every moved pixel back to its origin.
    Pixels moving at least a pixel weigh ``moving_weight``; ``by_magnitude``: every pixel weighs 1 + |u|."""
    error = (backward_warp(backward, forward) + forward).norm(dim=1)
    magnitude = forward.norm(dim=1)
    if by_magnitude:
        weight = 1.0 + magnitude
    else:
        weight = 1.0 + (moving_weight - 1.0) * (magnitude >= 1.0).to(error.dtype)
    return (weight * error).sum() / weight.sum()


def latent_flow_error(mu: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between ``mu[:, :2]`` (B, 2, h, w) and the start->end ``flow`` (B, 2, H, W,
    pixels) average-pooled to h x w."""
    return (mu[:, :2] - nn.functional.adaptive_avg_pool2d(flow, mu.shape[-2:])).pow(2).mean()


def frame_motion(frames: torch.Tensor) -> torch.Tensor:
    """(B,) mean |x_t - x_1| over a clip's frames (B, T, 3, H, W): zero for a clip that does not move."""
    return (frames[:, 1:] - frames[:, :1]).abs().flatten(1).mean(1)


class AutoencoderModule(L.LightningModule):
    """Autoencoder + discriminators with alternating manual optimisation.

    Subclasses that train another network with the same losses (the cVAE baseline) override
    ``profile_type``, :meth:`build_model`, :meth:`reconstruct` and :meth:`kl_weight`.
    """

    profile_type: type[AEProfile] = AEProfile

    def __init__(self, profile: dict):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.cfg = cfg = self.profile_type.model_validate(profile)
        self.automatic_optimization = False
        self.ae = self.build_model(cfg)
        self.adversarial = cfg.loss.adversarial
        if self.adversarial:
            self.disc_s = PatchDiscriminator(cfg.disc)
            self.disc_t = TemporalDiscriminator(cfg.disc)
        # Frozen and pretrained: kept out of the state dict (and checkpoints) on purpose.
        loss = perceptual_loss(cfg.loss.perceptual, cfg.loss.perceptual_weights)
        self._perceptual = [loss] if loss is not None else []
        self.val_scores = nn.ModuleDict(
            {f"{s}_{m}_{k}": MeanMetric() for s in SUBSETS for m in METHODS for k in SCORES}
            | {f"{s}_{m}": MeanMetric() for s in SUBSETS for m in MOTION}
        )
        self._gif_clips: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_model(self, cfg: AEProfile) -> nn.Module:
        return VideoAutoencoder(cfg.model)

    def reconstruct(self, batch: dict):
        """``(frames 1..T, mu, logvar, backward flows or None)`` of a batch: from a posterior sample in
        training, the mean in eval."""
        return self.ae.reconstruct(self._video(batch))

    def kl_weight(self) -> float:
        return self.cfg.loss.kl

    @property
    def optimizer_steps_per_batch(self) -> int:
        return 2 if self.adversarial else 1

    @property
    def iteration(self) -> int:
        """Batches trained so far (Lightning's global step counts every optimizer step)."""
        return self.trainer.global_step // self.optimizer_steps_per_batch

    def on_fit_start(self) -> None:  # the strategy has moved the registered modules to the device by now
        for net in self._perceptual:
            net.to(self.device)

    def configure_optimizers(self):
        o = self.cfg.optim
        nets = [self.ae.parameters()]
        if self.adversarial:
            nets.append([*self.disc_s.parameters(), *self.disc_t.parameters()])
        optimizers = [torch.optim.Adam(p, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay) for p in nets]
        schedulers = [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=o.lr_decay) for opt in optimizers]
        return optimizers, schedulers

    def _video(self, batch: dict) -> torch.Tensor:
        video = batch["video"]
        size = self.cfg.model.resolution
        if video.shape[-2:] != (size, size):
            raise IpokeError(
                f"clips are {video.shape[-1]}x{video.shape[-2]} px, the autoencoder is built for {size} px: "
                "set train_ae.<profile>.model.resolution to the shards' resolution"
            )
        return video

    # ------------------------------------------------------------------------------------------ training

    def training_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        video = self._video(batch)
        recon, mu, logvar, flow = self.reconstruct(batch)
        fake_clip = torch.cat([video[:, :1], recon], 1)
        optimizers = self.optimizers()
        opt_g = optimizers[0] if self.adversarial else optimizers
        losses: dict[str, torch.Tensor] = {}
        real_features = None
        pick = self._frame_pick(video, self.cfg.loss.spatial_frames)
        if self.adversarial:
            opt_d = optimizers[1]
            self.toggle_optimizer(opt_d)
            d_losses, real_features = self._discriminator_losses(video, fake_clip.detach(), pick)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_losses["d_total"])
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            losses |= d_losses
        self.toggle_optimizer(opt_g)
        g_losses = self._generator_losses(video, recon, fake_clip, mu, logvar, real_features, pick)
        if self.cfg.loss.flow > 0 and flow is not None:
            g_losses["flow"] = end_flow_error(
                flow[:, -1], batch["flow"], self.cfg.loss.moving_weight, self.cfg.loss.flow_magnitude_weight
            )
            g_losses["g_total"] = g_losses["g_total"] + self.cfg.loss.flow * g_losses["flow"]
        if self.cfg.loss.latent_flow > 0:
            g_losses["latent_flow"] = latent_flow_error(mu, batch["flow"])
            g_losses["g_total"] = g_losses["g_total"] + self.cfg.loss.latent_flow * g_losses["latent_flow"]
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_losses["g_total"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        losses = {k: v.detach() for k, v in (losses | g_losses).items()}
        if self.iteration % self.cfg.optim.lr_decay_every == 0:
            schedulers = self.lr_schedulers()
            for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
                scheduler.step()
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True, on_epoch=False)
        self.log("train/lr", opt_g.param_groups[0]["lr"], on_step=True, on_epoch=False)
        self.log("l1", losses["l1"], prog_bar=True, logger=False)
        return losses

    def _frame_pick(self, video: torch.Tensor, n: int | None) -> slice | torch.Tensor:
        """Which of the batch's B*T predicted frames a term sees: all, or ``n`` random ones (for D_S the
        reference code's cheaper practice, eq. 21 uses all); real and fake use the same positions."""
        total = len(video) * self.cfg.model.n_frames
        return slice(None) if n is None or n >= total else torch.randperm(total, device=video.device)[:n]

    def _discriminator_losses(
        self, real_clip: torch.Tensor, fake_clip: torch.Tensor, pick: slice | torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], tuple[list[torch.Tensor], list[torch.Tensor]]]:
        """Eqs. 20, 21; also returns the real inputs' features for the generator's feature matching."""
        w = self.cfg.loss
        ds_real, fs_real = self.disc_s(real_clip[:, 1:].flatten(0, 1)[pick])
        ds_fake, _ = self.disc_s(fake_clip[:, 1:].flatten(0, 1)[pick])
        real_clip = real_clip.detach().requires_grad_(w.gradient_penalty > 0)
        dt_real, ft_real = self.disc_t(real_clip)
        dt_fake, _ = self.disc_t(fake_clip)
        d_s = hinge_d_loss(ds_real, ds_fake)
        d_t = hinge_d_loss(dt_real, dt_fake)
        gp = r1_penalty(dt_real, real_clip) if w.gradient_penalty > 0 else d_t.new_zeros(())
        losses = {
            "d_spatial": d_s,
            "d_temporal": d_t,
            "d_gp": gp,
            "d_total": d_s + d_t + w.gradient_penalty * gp,
        }
        detach = lambda feats: [f.detach() for f in feats]  # noqa: E731
        return losses, (detach(fs_real), detach(ft_real))

    def _generator_losses(self, video, recon, fake_clip, mu, logvar, real_features, pick) -> dict:
        """Eq. 17 (L1 + perceptual), the optional squared error, KL and, when adversarial, eqs. 18, 19.

        Feature matching compares with the real features of the discriminator step of this batch.
        """
        w = self.cfg.loss
        target = video[:, 1:]
        losses, total = pixel_losses(recon, video, w)
        losses["kl"] = kl_divergence(mu, logvar)
        total = total + self.kl_weight() * losses["kl"]
        if self._perceptual:
            pick_p = self._frame_pick(video, w.perceptual_frames)
            recon_p, target_p = recon.flatten(0, 1)[pick_p], target.flatten(0, 1)[pick_p]
            losses["perceptual"] = self._perceptual[0](recon_p, target_p)
            total = total + w.perceptual_weight * losses["perceptual"]
        if self.adversarial:
            fs_real, ft_real = real_features
            ds_fake, fs_fake = self.disc_s(recon.flatten(0, 1)[pick])
            dt_fake, ft_fake = self.disc_t(fake_clip)
            losses |= {
                "g_spatial": hinge_g_loss(ds_fake),
                "fm_spatial": feature_matching_loss(fs_fake, fs_real),
                "g_temporal": hinge_g_loss(dt_fake),
                "fm_temporal": feature_matching_loss(ft_fake, ft_real),
            }
            total = (
                total
                + w.spatial_gan * losses["g_spatial"]
                + w.spatial_feature_matching * losses["fm_spatial"]
                + w.temporal_gan * losses["g_temporal"]
                + w.temporal_feature_matching * losses["fm_temporal"]
            )
        losses["g_total"] = total
        return losses

    # ---------------------------------------------------------------------------------------- validation

    def moving(self, batch: dict) -> torch.Tensor:
        """(B,) bool: clips whose start->end flow reaches ``moving_flow_px`` (99th percentile magnitude)."""
        magnitude = batch["flow"].float().norm(dim=1).flatten(1)
        return (magnitude.quantile(0.99, dim=1) >= self.cfg.moving_flow_px) & ~batch["background_poke"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        video = self._video(batch)
        target = video[:, 1:]
        recon = self.reconstruct(batch)[0]
        weights = {"all": torch.ones(len(video), device=video.device), "moving": self.moving(batch).float()}
        for method, pred in (("recon", recon), ("static", video[:, :1].expand_as(target))):
            scores = {
                "l1": (pred - target).abs().flatten(1).mean(1),
                "psnr": video_psnr(pred, target, max_db=MAX_PSNR_DB),
                "ssim": video_ssim(pred, target),
            }
            for subset, weight in weights.items():
                for name, value in scores.items():
                    self.val_scores[f"{subset}_{method}_{name}"].update(value, weight)
        for name, frames in zip(MOTION, (recon, target), strict=True):
            motion = frame_motion(frames)
            for subset, weight in weights.items():
                self.val_scores[f"{subset}_{name}"].update(motion, weight)
        if batch_idx == 0 and self.cfg.gif_clips:
            n = self.cfg.gif_clips
            self._gif_clips = (video[:n].cpu(), recon[:n].cpu())

    def on_validation_epoch_end(self) -> None:
        values = {}
        for name, metric in self.val_scores.items():
            value = metric.compute() if metric.update_count else None
            metric.reset()
            if value is not None and math.isfinite(float(value)):
                values[f"val/{name}"] = float(value)
        self.log_dict(values)
        self._log_gif()

    def _log_gif(self) -> None:
        """GT (left) | reconstruction (right), one clip per row, x0 then the 10 frames."""
        from lightning.pytorch.loggers import MLFlowLogger

        clips, self._gif_clips = self._gif_clips, None
        logger = self.logger
        if clips is None or not isinstance(logger, MLFlowLogger) or not self.trainer.is_global_zero:
            return
        import imageio.v3 as iio

        video, recon = clips
        shown = torch.cat([video, torch.cat([video[:, :1], recon], 1)], dim=-1)  # (N, T+1, 3, H, 2W)
        frames = float_to_uint8(_grid(shown))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"reconstruction-step{self.iteration:07d}.gif"
            iio.imwrite(path, frames, duration=200, loop=0)
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="reconstructions")


def _grid(clips: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, H, W) -> (T, 3, N*H, W): clips stacked vertically, frame by frame."""
    return clips.transpose(0, 1).transpose(1, 2).flatten(2, 3)


def fingerprint(profile: AEProfile) -> dict:
    """What a checkpoint's meaning depends on: everything but the trainer's length, hardware and intervals."""
    return profile.model_dump(mode="json", exclude={"trainer"}) | {"seed": profile.trainer.seed}


def train_autoencoder(
    profile: AEProfile, shards: Path, out_dir: Path, run_id: str | None = None
) -> dict[str, float] | None:
    """Train (or resume) on ``shards``, write ``ae.pt`` + ``config.json`` into ``out_dir``.

    Checkpoints live in ``out_dir/checkpoints``. Returns the final held-out metrics and counts on rank 0,
    None in DDP worker processes.
    """
    if not (shards / "clips.parquet").is_file():
        raise IpokeError(f"{shards}: no shards (clips.parquet missing): run the shard stage first")
    L.seed_everything(profile.trainer.seed, workers=True, verbose=False)
    checkpoints = out_dir / "checkpoints"
    if not is_ddp_worker():
        reset_stale_checkpoints(checkpoints, fingerprint(profile), shards)
    train_loader = make_loader(shards, "train", profile.loader)
    # Held-out clips are scored as recorded: no background pokes (whose target is the still clip).
    pokes = profile.loader.pokes.model_copy(update={"background_prob": 0.0})
    val_loader = make_loader(shards, "test", profile.loader.model_copy(update={"pokes": pokes}), train=False)
    module = AutoencoderModule(profile.model_dump(mode="json"))
    trainer = build_trainer(
        profile.trainer,
        checkpoints,
        run_id=run_id,
        optimizer_steps_per_batch=module.optimizer_steps_per_batch,
    )
    fit(trainer, module, train_loader, val_loader)
    trainer.limit_val_batches = profile.eval_batches or 1.0
    [final] = trainer.validate(module, val_loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    save_autoencoder(module.ae, out_dir)
    metrics = {k.removeprefix("val/"): float(v) for k, v in final.items()}
    metrics["steps"] = module.iteration
    metrics["params_autoencoder"] = sum(p.numel() for p in module.ae.parameters())
    return metrics
