"""Training iPOKE's cVAE counterpart (appendix F): the ``train_cvae`` stage's Lightning module.

"The losses for the model are exactly similar to those of our video autoencoding framework [...] except for
an additional KL-loss": so this module is the autoencoder's (:class:`ipoke.train.autoencoder.
AutoencoderModule`: pixel and perceptual terms, both discriminators when ``adversarial``, the same
validation) with the cVAE as its network, the poke as a second input and its own KL weight: 0.1
(``loss.kl``), reached linearly from 0 over ``kl_anneal_epochs`` epochs (5 in the paper, against posterior
collapse). Like the authors' code (``PokeVAE`` in CompVis/ipoke) the KL is summed over z's channels and
averaged over its 8 x 8 positions; the autoencoder's KL sums all dimensions, hence the division by 64.

The architecture is the trained autoencoder's and conditioning encoders' (read from the ``train_ae`` and
``train_encoders`` outputs), so the counterpart follows any change to them. ``init_from_trained`` starts
from their weights: the whole video encoder, Phi_x0, Phi_c, and every tensor of the GRU and decoder whose
shape the wider hidden state leaves unchanged (the decoder's upsampling and SPADE blocks); the GRU and the
decoder's first block start afresh. The paper trains the baseline like iPOKE's autoencoder, from scratch;
the CPU demo fine-tunes, for its few hundred steps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from pydantic import Field, model_validator

from ipoke.data.loader import make_loader, resolve_source
from ipoke.data.shards import CLIPS_NAME
from ipoke.data.video import sha256
from ipoke.errors import IpokeError
from ipoke.models.autoencoder import WEIGHTS_FILE, AEConfig, VideoAutoencoder, load_autoencoder
from ipoke.models.baselines.cvae import CVAE, CVAEConfig
from ipoke.models.baselines.io import save_model
from ipoke.models.encoders import Conditioner, EncoderConfig
from ipoke.sampling import ENCODERS_FILE, load_encoders
from ipoke.train.autoencoder import AELossConfig, AEProfile, AutoencoderModule
from ipoke.train.trainer import StageSection, build_trainer, fit, is_ddp_worker, reset_stale_checkpoints

log = logging.getLogger("ipoke")
WEIGHTS_NAME = "cvae"


class CVAEProfile(AEProfile):
    """One profile of the ``train_cvae`` section: the autoencoder's training settings and the KL schedule.

    ``model`` and ``encoders`` are not params: :func:`train_cvae` fills them from the trained parts.
    """

    model: AEConfig | None = None
    encoders: EncoderConfig | None = None
    loss: AELossConfig = AELossConfig(kl=0.1)
    kl_anneal_epochs: float = Field(5.0, ge=0)  # epochs over which the KL weight rises from 0 to loss.kl
    init_from_trained: bool = False  # start from the trained AE and encoders (see the module docstring)

    @model_validator(mode="after")
    def _no_latent_flow(self) -> CVAEProfile:
        # The cVAE samples z from N(0, I); a term pinning z's mean to the clip's flow would fight its KL.
        if self.loss.latent_flow > 0:
            raise ValueError(
                "loss.latent_flow is for the autoencoder; the cVAE draws z from its prior: set it to 0"
            )
        return self


class TrainCVAEParams(StageSection):
    demo: CVAEProfile
    paper: CVAEProfile


def architecture(profile: CVAEProfile) -> CVAEConfig:
    if profile.model is None or profile.encoders is None:
        raise IpokeError("no cVAE architecture in the profile: train_cvae takes it from the trained parts")
    return CVAEConfig(ae=profile.model, encoders=profile.encoders)


class CVAEModule(AutoencoderModule):
    """The autoencoder's training with the cVAE as network and an annealed KL weight."""

    profile_type = CVAEProfile

    def __init__(self, profile: dict, steps_per_epoch: int = 1):
        super().__init__(profile)
        self.anneal_steps = self.cfg.kl_anneal_epochs * steps_per_epoch

    def build_model(self, cfg: CVAEProfile) -> CVAE:
        return CVAE(architecture(cfg))

    def reconstruct(self, batch: dict):
        return self.ae.reconstruct(self._video(batch), batch["poke"])

    def kl_weight(self) -> float:
        ramp = min(1.0, self.iteration / self.anneal_steps) if self.anneal_steps > 0 else 1.0
        return ramp * self.cfg.loss.kl / self.cfg.model.latent_size**2


def init_from_trained(model: CVAE, ae: VideoAutoencoder, conditioner: Conditioner) -> list[str]:
    """Copy the trained weights that fit into ``model`` (see the module docstring); returns the names of the
    renderer's tensors that keep their initialisation."""
    model.encoder.load_state_dict(ae.encoder.state_dict())
    model.image_encoder.load_state_dict(conditioner.image_encoder.encoder.state_dict())
    model.poke_encoder.load_state_dict(conditioner.poke_encoder.encoder.state_dict())
    own = model.renderer.state_dict()
    fitting = {k: v for k, v in ae.state_dict().items() if k in own and own[k].shape == v.shape}
    model.renderer.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))


@dataclass(frozen=True)
class CVAEPaths:
    shards: Path  # data/shards/<dataset>
    ae: Path  # models/<dataset>/ae (train_ae output)
    encoders: Path  # models/<dataset>/encoders (train_encoders output)
    out: Path  # models/<dataset>/cvae


def fingerprint(profile: CVAEProfile, paths: CVAEPaths) -> dict:
    """What a checkpoint's meaning depends on: the profile but the trainer's length, hardware and intervals,
    and the trained weights it started from."""
    record = profile.model_dump(mode="json", exclude={"trainer"}) | {"seed": profile.trainer.seed}
    if profile.init_from_trained:
        record["ae_sha256"] = sha256(paths.ae / WEIGHTS_FILE)
        record["encoders_sha256"] = sha256(paths.encoders / ENCODERS_FILE)
    return record


def train_cvae(profile: CVAEProfile, paths: CVAEPaths, run_id: str | None = None) -> dict | None:
    """Train (or resume) the cVAE on ``paths.shards``; write ``cvae.pt`` and ``config.json`` to ``paths.out``.

    ``profile.loader`` should already be merged with the shared loader section (the pokes the cINN sees).
    Returns the final held-out metrics on rank 0, None in DDP worker processes.
    """
    if not (paths.shards / CLIPS_NAME).is_file():
        raise IpokeError(f"{paths.shards}: no shards (clips.parquet missing): run the shard stage first")
    if profile.model is not None or profile.encoders is not None:
        raise IpokeError(
            "train_cvae: remove model/encoders from the profile; the architecture is the trained AE's and "
            "encoders' (train_ae.<profile>.model, train_encoders.<profile>.model)"
        )
    ae = load_autoencoder(paths.ae)
    conditioner, encoders = load_encoders(paths.encoders)
    if encoders.resolution != ae.cfg.resolution:
        raise IpokeError(
            f"{paths.encoders} is trained for {encoders.resolution} px, {paths.ae} for {ae.cfg.resolution} px"
        )
    profile = profile.model_copy(update={"model": ae.cfg, "encoders": encoders.model})
    L.seed_everything(profile.trainer.seed, workers=True, verbose=False)
    checkpoints = paths.out / "checkpoints"
    if not is_ddp_worker():
        reset_stale_checkpoints(checkpoints, fingerprint(profile, paths), paths.shards)
    train_loader = make_loader(paths.shards, "train", profile.loader)
    # Held-out clips are scored as recorded: no background pokes (whose target is the still clip).
    pokes = profile.loader.pokes.model_copy(update={"background_prob": 0.0})
    val_loader = make_loader(
        paths.shards, "test", profile.loader.model_copy(update={"pokes": pokes}), train=False
    )
    clips = profile.loader.epoch_clips or resolve_source(paths.shards, "train")[1]
    module = CVAEModule(profile.model_dump(mode="json"), math.ceil(clips / profile.loader.batch_size))
    if profile.init_from_trained:
        fresh = init_from_trained(module.ae, ae, conditioner)
        log.info("cVAE initialised from %s and %s; fresh: %s", paths.ae, paths.encoders, ", ".join(fresh))
    steps = module.optimizer_steps_per_batch
    trainer = build_trainer(profile.trainer, checkpoints, run_id=run_id, optimizer_steps_per_batch=steps)
    fit(trainer, module, train_loader, val_loader)
    trainer.limit_val_batches = profile.eval_batches or 1.0
    [final] = trainer.validate(module, val_loader, verbose=False)
    if not trainer.is_global_zero:
        return None
    save_model(module.ae, architecture(profile), paths.out, WEIGHTS_NAME)
    metrics = {k.removeprefix("val/"): float(v) for k, v in final.items()}
    metrics["steps"] = module.iteration
    metrics["params_cvae"] = sum(p.numel() for p in module.ae.parameters())
    return metrics
