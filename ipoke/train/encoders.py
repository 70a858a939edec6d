"""Pretraining the conditioning encoders (paper appendix E.2): the ``train_encoders`` stage's module.

Phi_x0 with its decoder reconstructs the start frame x0; Phi_c with its decoder predicts the dense start->end
flow from the simulated sparse poke map and x0 (background pokes: zero flow, as the loader sets it). Both
losses are L1 plus a perceptual term (the authors': LPIPS-VGG16, ``perceptual: lpips_vgg16``); for the flow
the perceptual net sees ``(dx, dy, 0) / flow_scale_px`` as an image, as the authors' code feeds it.
``moving_weight`` up-weights moving pixels in the flow L1: a deviation (paper: 1) for small objects without
the perceptual term, where an unweighted L1 is minimised by predicting no motion at all. The two encoders
share batches and one optimiser but no parameters, so training them together is training each on its own
loss. Validation reports the image reconstruction (L1, PSNR) and the flow prediction's endpoint error
against the zero-flow baseline, over all pixels and over moving ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from pydantic import Field

from ipoke.config import Section
from ipoke.data.loader import LoaderParams, make_loader
from ipoke.errors import IpokeError
from ipoke.metrics.image import frame_psnr
from ipoke.models.encoders import EncoderConfig, build_conditioner
from ipoke.models.perceptual import PerceptualKind, perceptual_loss
from ipoke.sampling import save_encoders
from ipoke.train.trainer import (
    StageSection,
    TrainerParams,
    build_trainer,
    fit,
    is_ddp_worker,
    reset_stale_checkpoints,
)

log = logging.getLogger("ipoke")


class EncoderLossConfig(Section):
    """L1 + perceptual for both encoders (appendix E.2; the reference weighs them equally)."""

    l1: float = Field(1.0, ge=0)
    perceptual: PerceptualKind = "lpips_vgg16"  # the authors' choice; see ipoke/models/perceptual.py
    perceptual_weight: float = Field(1.0, ge=0)
    perceptual_weights: str | None = None  # the network's weight file; null: the weights or torch hub cache
    flow_scale_px: float = Field(8.0, gt=0)  # flow / this is what the perceptual net sees
    # weight of moving pixels (flow >= moving_flow_px) in the flow L1 (paper: 1; see the module docstring)
    moving_weight: float = Field(1.0, ge=1.0)


class EncoderOptimConfig(Section):
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-5, ge=0)


class EncodersProfile(Section):
    """One profile (demo or paper) of the ``train_encoders`` section."""

    resolution: int = Field(64, gt=0)  # frame size of the shards
    model: EncoderConfig
    loss: EncoderLossConfig = EncoderLossConfig()
    optim: EncoderOptimConfig = EncoderOptimConfig()
    trainer: TrainerParams
    loader: LoaderParams = LoaderParams()
    moving_flow_px: float = Field(1.0, gt=0)  # pixels moving at least this much count for ``flow_epe_moving``
    eval_batches: int | None = Field(None, gt=0)  # test batches for the final metrics; null: the whole split


class TrainEncodersParams(StageSection):
    demo: EncodersProfile
    paper: EncodersProfile


class EncoderPretraining(L.LightningModule):
    """Phi_x0 as an image autoencoder and Phi_c as a poke -> dense flow predictor, trained side by side."""

    def __init__(self, profile: dict):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.cfg = cfg = EncodersProfile.model_validate(profile)
        self.encoders = build_conditioner(cfg.model, cfg.resolution, poke_conditioning=True)
        # Frozen and pretrained: kept out of the state dict (and checkpoints) on purpose.
        loss = perceptual_loss(cfg.loss.perceptual, cfg.loss.perceptual_weights)
        self._perceptual = [loss] if loss is not None else []

    def setup(self, stage: str) -> None:
        for net in self._perceptual:
            net.to(self.device)

    def configure_optimizers(self):
        o = self.cfg.optim
        return torch.optim.Adam(self.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        video = batch["video"]
        size = self.cfg.resolution
        if video.shape[-2:] != (size, size):
            raise IpokeError(
                f"clips are {video.shape[-1]}x{video.shape[-2]} px, the encoders are built for {size} px: "
                "set train_encoders.<profile>.resolution to the shards' resolution"
            )
        return video[:, 0], batch["poke"], batch["flow"]

    def _perceptual_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._perceptual[0](pred, target) if self._perceptual else pred.new_zeros(())

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x0, poke, flow = self._inputs(batch)
        w = self.cfg.loss
        image_encoder, poke_encoder = self.encoders.image_encoder, self.encoders.poke_encoder
        recon = image_encoder.reconstruct(x0)
        pred_flow = poke_encoder.predict_flow(poke, x0)
        zero = flow.new_zeros(flow[:, :1].shape)
        as_image = lambda f: torch.cat([f / w.flow_scale_px, zero], dim=1)  # noqa: E731
        flow_error = (pred_flow - flow).abs().sum(dim=1)
        moving = flow.norm(dim=1) >= self.cfg.moving_flow_px
        weights = 1.0 + (w.moving_weight - 1.0) * moving.float()
        out = {
            "image_l1": (recon - x0).abs().mean(),
            "image_perceptual": self._perceptual_loss(recon, x0),
            "flow_l1": flow_error.mean() / 2,
            "flow_weighted_l1": (weights * flow_error).sum() / (2 * weights.sum()),
            "flow_perceptual": self._perceptual_loss(as_image(pred_flow), as_image(flow)),
        }
        out["total"] = w.l1 * (out["image_l1"] + out["flow_weighted_l1"]) + w.perceptual_weight * (
            out["image_perceptual"] + out["flow_perceptual"]
        )
        return out | {"recon": recon, "pred_flow": pred_flow}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        names = ("image_l1", "flow_l1", "flow_weighted_l1", "total") + (
            ("image_perceptual", "flow_perceptual") if self._perceptual else ()
        )
        self.log_dict({f"train/{k}": out[k].detach() for k in names}, on_step=True, on_epoch=False)
        self.log("loss", out["total"].detach(), prog_bar=True, logger=False)
        return out["total"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.losses(batch)
        x0, _, flow = self._inputs(batch)
        scores = {
            "image_l1": out["image_l1"],
            "image_psnr": frame_psnr(out["recon"], x0, max_db=100.0).mean(),
            "flow_l1": out["flow_l1"],
            "flow_epe": (out["pred_flow"] - flow).norm(dim=1).mean(),
            "flow_epe_zero": flow.norm(dim=1).mean(),  # baseline: predict no motion
        }
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, on_epoch=True, batch_size=len(x0))
        magnitude = flow.norm(dim=1)
        moving = magnitude >= self.cfg.moving_flow_px
        if moving.any():
            moving_scores = {
                "val/flow_epe_moving": (out["pred_flow"] - flow).norm(dim=1)[moving].mean(),
                "val/flow_epe_moving_zero": magnitude[moving].mean(),
            }
            self.log_dict(moving_scores, on_epoch=True, batch_size=int(moving.sum()))


def fingerprint(profile: EncodersProfile) -> dict:
    """What a checkpoint's meaning depends on: everything but the trainer's length, hardware and intervals."""
    return profile.model_dump(mode="json", exclude={"trainer"}) | {"seed": profile.trainer.seed}


def train_encoders(
    profile: EncodersProfile, shards: Path, out_dir: Path, run_id: str | None = None
) -> dict[str, float] | None:
    """Train (or resume) both encoders on ``shards``; write ``encoders.pt``, ``config.json`` to ``out_dir``.

    Checkpoints live in ``out_dir/checkpoints``. Returns the final held-out metrics on rank 0, None in DDP
    worker processes.
    """
    if not (shards / "clips.parquet").is_file():
        raise IpokeError(f"{shards}: no shards (clips.parquet missing): run the shard stage first")
    L.seed_everything(profile.trainer.seed, workers=True, verbose=False)
    checkpoints = out_dir / "checkpoints"
    if not is_ddp_worker():
        reset_stale_checkpoints(checkpoints, fingerprint(profile), shards)
    train_loader = make_loader(shards, "train", profile.loader)
    val_loader = make_loader(shards, "test", profile.loader, train=False)
    module = EncoderPretraining(profile.model_dump(mode="json"))
    trainer = build_trainer(profile.trainer, checkpoints, run_id=run_id)
    fit(trainer, module, train_loader, val_loader)
    trainer.limit_val_batches = profile.eval_batches or 1.0
    [final] = trainer.validate(module, val_loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    save_encoders(module.encoders, profile.model, profile.resolution, out_dir)
    metrics = {k.removeprefix("val/"): float(v) for k, v in final.items()}
    metrics["steps"] = trainer.global_step
    metrics["params_image_encoder"] = sum(
        p.numel() for p in module.encoders.image_encoder.encoder.parameters()
    )
    metrics["params_poke_encoder"] = sum(p.numel() for p in module.encoders.poke_encoder.encoder.parameters())
    return metrics
