"""Training the cINN tau_theta (paper 3.1-3.2, appendix E.2): the ``train_cinn`` stage's Lightning module.

Each batch: the frozen AE encoder maps the clip to z (the posterior mean), the frozen conditioner maps
(x0, poke map) to the conditioning maps (x0 alone without poke conditioning: the image-to-video cINN of the
third paper), and the cINN is trained on ``0.5 ||r||^2 - log|det J|`` (logged also as the exact NLL in bits
per latent dimension). Adam with betas (0.9, 0.999) and weight decay 1e-5; the learning rate rises linearly
from zero over ``warmup_steps`` and then falls linearly to zero at ``max_steps`` (paper: 500 warm-up steps;
the demo scales the warm-up to its shorter run). ActNorm layers initialise from the first training batch
(data-dependent init). Validation measures the NLL of held-out clips and logs a GIF of samples with the pokes
drawn (rows: clips; columns: ground truth, then samples) to MLflow.

Checkpoints hold the cINN and optimiser only: the frozen AE and encoders come from their stages' outputs, and
a checkpoint written against other AE or encoder weights is discarded (they are part of the fingerprint).
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from pydantic import Field

from ipoke.app.encode import encode_gif
from ipoke.config import Section
from ipoke.data.frames import safe_name
from ipoke.data.loader import AugmentParams, LoaderParams, make_loader
from ipoke.data.shards import CLIPS_NAME
from ipoke.data.video import sha256
from ipoke.errors import IpokeError
from ipoke.metrics.videos import float_to_uint8
from ipoke.models.autoencoder import WEIGHTS_FILE, VideoAutoencoder, load_autoencoder
from ipoke.models.cinn import CINN, CINNConfig, bits_per_dim, objective
from ipoke.models.encoders import Conditioner, EncoderConfig
from ipoke.sampling import ENCODERS_FILE, PipelineConfig, PokePipeline, load_encoders
from ipoke.train.trainer import (
    StageSection,
    TrainerParams,
    build_trainer,
    fit,
    is_ddp_worker,
    reset_stale_checkpoints,
)
from ipoke.viz import draw_pokes

log = logging.getLogger("ipoke")

FROZEN_PREFIXES = ("ae.", "conditioner.")
# The frozen AE and encoders stay in eval mode on purpose (see CINNModule.train).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


class CINNOptimConfig(Section):
    """Adam (appendix E.2: lr 1e-3, betas (0.9, 0.999), weight decay 1e-5, 500 warm-up steps)."""

    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(500, ge=0)
    grad_clip_norm: float | None = Field(None, gt=0)  # clip the gradient norm (not in the paper); null: off


class CINNProfile(Section):
    """One profile (demo or paper) of the ``train_cinn`` section."""

    model: CINNConfig
    poke_conditioning: bool = True  # false: the image-to-video cINN (conditioned on x0 only)
    # std of Gaussian noise added to z in training only (paper: 0); smooths the density the cINN fits where
    # few training objects would let it memorise their latents
    latent_noise: float = Field(0.0, ge=0)
    optim: CINNOptimConfig = CINNOptimConfig()
    trainer: TrainerParams
    loader: LoaderParams = LoaderParams()
    # augmentation of this stage's training clips (null: the shared loader.augment). The authors augment the
    # flow stage's clips; the demo's cINN overfits its few hundred clips without it, while the AE and the
    # encoders it builds on keep the shared setting
    augment: AugmentParams | None = None
    gif_clips: int = Field(4, ge=0)  # clips (rows) in each sample GIF
    gif_samples: int = Field(4, ge=1)  # samples per clip (columns after the ground truth)
    gif_fps: float = Field(5.0, gt=0)
    eval_batches: int | None = Field(None, gt=0)  # test batches for the final NLL; null: the whole split
    test_frames: int = Field(8, ge=0)  # test start frames shipped with the pipeline for the app


class TrainCINNParams(StageSection):
    demo: CINNProfile
    paper: CINNProfile


def warmup_linear_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear from 1/warmup to 1 over ``warmup`` steps, then to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def check_compatible(profile: CINNProfile, ae: VideoAutoencoder, conditioner: Conditioner) -> None:
    model, cfg = profile.model, ae.cfg
    if (model.latent_channels, model.latent_size) != (cfg.z_dim, cfg.latent_size):
        raise IpokeError(
            f"the autoencoder's z is {cfg.z_dim} x {cfg.latent_size} x {cfg.latent_size} but the cINN is "
            f"built for {model.latent_channels} x {model.latent_size} x {model.latent_size}: set "
            "train_cinn.<profile>.model.latent_channels/latent_size to match train_ae.<profile>.model"
        )
    if conditioner.image_encoder.resolution != cfg.resolution:
        raise IpokeError(
            f"the encoders take {conditioner.image_encoder.resolution} px frames, the autoencoder "
            f"{cfg.resolution} px: train both on the same shards"
        )
    if conditioner.poke_conditioning != profile.poke_conditioning:
        raise IpokeError(
            "the conditioner's poke encoder does not match train_cinn.<profile>.poke_conditioning"
        )


class CINNModule(L.LightningModule):
    """The cINN trained on latents of a frozen AE given a frozen conditioner."""

    def __init__(
        self,
        profile: dict,
        ae: VideoAutoencoder,
        conditioner: Conditioner,
        encoder_config: EncoderConfig,
        dataset: str = "unnamed",
        profile_name: str = "custom",
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["ae", "conditioner", "encoder_config"])
        self.cfg = cfg = CINNProfile.model_validate(profile)
        check_compatible(cfg, ae, conditioner)
        self.ae = ae.eval().requires_grad_(False)
        self.conditioner = conditioner.freeze()
        self.cinn = CINN(cfg.model, conditioner.out_channels)
        self.encoder_config = encoder_config
        self.dataset, self.profile_name = dataset, profile_name
        self._gif_batch: dict | None = None

    def train(self, mode: bool = True) -> CINNModule:
        super().train(mode)
        self.ae.eval()  # frozen parts never leave eval mode
        self.conditioner.eval()
        return self

    # ---------------------------------------------------------------------------- checkpoints: cINN only

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(FROZEN_PREFIXES)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            if key.startswith(FROZEN_PREFIXES):
                state[key] = value

    # ---------------------------------------------------------------------------------------- optimisation

    def configure_optimizers(self):
        o, total = self.cfg.optim, self.cfg.trainer.max_steps
        optimizer = torch.optim.Adam(
            self.cinn.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_linear_decay(step, o.warmup_steps, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.cfg.optim.grad_clip_norm is not None:
            self.clip_gradients(optimizer, self.cfg.optim.grad_clip_norm, "norm")

    @torch.no_grad()
    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, cond) of a batch: the AE posterior mean and the conditioning maps."""
        video = batch["video"]
        self.ae.check_input(video)
        poke = batch["poke"] if self.cfg.poke_conditioning else None
        return self.ae.encode(video), self.conditioner(video[:, 0], poke)

    def _bits_per_dim(self, loss: torch.Tensor) -> torch.Tensor:
        """The mean objective -> the exact NLL of z in bits per dimension (adds the Gaussian constant)."""
        dims = math.prod(self.cinn.latent_shape)
        return bits_per_dim(loss + 0.5 * dims * math.log(2 * math.pi), dims)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        z, cond = self.encode(batch)
        if self.cfg.latent_noise > 0:
            z = z + self.cfg.latent_noise * torch.randn_like(z)
        r, log_det = self.cinn(z, cond)
        loss = objective(r, log_det).mean()
        metrics = {"train/loss": loss.detach(), "train/nll_bpd": self._bits_per_dim(loss.detach())}
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(z))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        self.log("bpd", metrics["train/nll_bpd"], prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        z, cond = self.encode(batch)
        r, log_det = self.cinn(z, cond)
        loss = objective(r, log_det).mean()
        metrics = {"val/loss": loss, "val/nll_bpd": self._bits_per_dim(loss)}
        self.log_dict(metrics, on_epoch=True, batch_size=len(z))
        if batch_idx == 0 and self.cfg.gif_clips:
            n = self.cfg.gif_clips
            self._gif_batch = {k: batch[k][:n] for k in ("video", "poke", "poke_points", "n_pokes")}

    # ------------------------------------------------------------------------------------------- samples

    def pipeline(self) -> PokePipeline:
        """The sampling pipeline over this module's networks (shared, not copied)."""
        pokes = self.cfg.loader.pokes
        config = PipelineConfig(
            dataset=self.dataset,
            profile=self.profile_name,
            resolution=self.ae.cfg.resolution,
            n_frames=self.ae.cfg.n_frames + 1,
            max_pokes=pokes.max_pokes,
            patch_size=pokes.patch_size,
            poke_conditioning=self.cfg.poke_conditioning,
            encoders=self.encoder_config,
            cinn=self.cfg.model,
        )
        return PokePipeline(self.ae, self.conditioner, self.cinn, config, device=self.device)

    def on_validation_epoch_end(self) -> None:
        from lightning.pytorch.loggers import MLFlowLogger

        batch, self._gif_batch = self._gif_batch, None
        logger = self.logger
        if batch is None or not isinstance(logger, MLFlowLogger) or not self.trainer.is_global_zero:
            return
        frames = sample_grid(self.pipeline(), batch, self.cfg.gif_samples)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"samples-step{self.global_step:07d}.gif"
            path.write_bytes(encode_gif(frames, self.cfg.gif_fps))
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="samples")


def sample_grid(pipeline: PokePipeline, batch: dict, n_samples: int, seed: int = 0) -> np.ndarray:
    """uint8 (T, rows * S, (1 + n_samples) * S, 3): per clip its ground truth, then seeded samples, every
    cell with the clip's pokes drawn."""
    videos = pipeline.sample_batch(batch["video"][:, 0], batch["poke"], n_samples, seed)  # (B, n, T, 3, S, S)
    cells = torch.cat([batch["video"][:, None].to(videos), videos], dim=1)
    rows = []
    for clip, points, n in zip(float_to_uint8(cells), batch["poke_points"], batch["n_pokes"], strict=True):
        pokes = points[: int(n)].tolist()
        rows.append(np.concatenate([draw_pokes(video, pokes) for video in clip], axis=2))
    return np.concatenate(rows, axis=1)


def training_loader(profile: CINNProfile) -> LoaderParams:
    """The training clips' loader: the shared one, with this stage's augmentation where it sets one."""
    if profile.augment is None:
        return profile.loader
    augment = profile.augment.model_dump()
    return LoaderParams.model_validate({**profile.loader.model_dump(), "augment": augment})


def fingerprint(profile: CINNProfile, ae_dir: Path, encoders_dir: Path) -> dict:
    """What a checkpoint's meaning depends on: the profile but the trainer's length, hardware and intervals,
    and the exact frozen AE and encoder weights."""
    frozen = {
        "ae_sha256": sha256(ae_dir / WEIGHTS_FILE),
        "encoders_sha256": sha256(encoders_dir / ENCODERS_FILE),
    }
    return profile.model_dump(mode="json", exclude={"trainer"}) | {"seed": profile.trainer.seed} | frozen


def test_start_frames(shards: Path, count: int, params: LoaderParams) -> list[tuple[str, np.ndarray]]:
    """Start frames of the first ``count`` test clips from distinct videos, named after their clips."""
    import pandas as pd

    frames: list[tuple[str, np.ndarray]] = []
    if count == 0:
        return frames
    clips = pd.read_parquet(shards / CLIPS_NAME, columns=["clip_id", "video_id"])
    video_of = dict(zip(clips["clip_id"], clips["video_id"], strict=True))
    videos = set()
    single = params.model_copy(update={"workers": 0, "batch_size": 1})
    for batch in make_loader(shards, "test", single, train=False):
        clip_id = batch["clip_id"][0]
        if video_of.get(clip_id, clip_id) in videos:
            continue
        videos.add(video_of.get(clip_id, clip_id))
        frames.append((f"{len(frames):02d}-{safe_name(clip_id)}", float_to_uint8(batch["video"][0, 0])))
        if len(frames) == count:
            break
    return frames


@dataclass(frozen=True)
class CINNPaths:
    shards: Path  # data/shards/<dataset>
    ae: Path  # models/<dataset>/ae (train_ae output)
    encoders: Path  # models/<dataset>/encoders (train_encoders output)
    checkpoints: Path  # models/<dataset>/cinn
    pipeline: Path  # models/<dataset>/pipeline


def train_cinn(
    profile: CINNProfile, paths: CINNPaths, dataset: str, profile_name: str, run_id: str | None = None
) -> dict[str, float] | None:
    """Train (or resume) the cINN, then write the pipeline directory. Returns the final held-out metrics on
    rank 0, None in DDP worker processes."""
    if not (paths.shards / CLIPS_NAME).is_file():
        raise IpokeError(f"{paths.shards}: no shards (clips.parquet missing): run the shard stage first")
    ae = load_autoencoder(paths.ae)
    conditioner, encoders = load_encoders(paths.encoders, profile.poke_conditioning)
    if encoders.resolution != ae.cfg.resolution:
        raise IpokeError(
            f"{paths.encoders} is trained for {encoders.resolution} px, {paths.ae} for {ae.cfg.resolution} px"
        )
    L.seed_everything(profile.trainer.seed, workers=True, verbose=False)
    if not is_ddp_worker():
        reset_stale_checkpoints(
            paths.checkpoints, fingerprint(profile, paths.ae, paths.encoders), paths.shards
        )
    train_loader = make_loader(paths.shards, "train", training_loader(profile))
    val_loader = make_loader(paths.shards, "test", profile.loader, train=False)
    module = CINNModule(
        profile.model_dump(mode="json"), ae, conditioner, encoders.model, dataset, profile_name
    )
    trainer = build_trainer(profile.trainer, paths.checkpoints, run_id=run_id)
    fit(trainer, module, train_loader, val_loader)
    trainer.limit_val_batches = profile.eval_batches or 1.0
    [final] = trainer.validate(module, val_loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    module.pipeline().save(
        paths.pipeline, test_start_frames(paths.shards, profile.test_frames, profile.loader)
    )
    metrics = {f"test_{k.removeprefix('val/')}": float(v) for k, v in final.items()}
    metrics["steps"] = trainer.global_step
    metrics["params_cinn"] = sum(p.numel() for p in module.cinn.parameters())
    return metrics
