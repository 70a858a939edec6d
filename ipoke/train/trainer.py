"""The Lightning trainer every training stage shares.

:func:`build_trainer` turns a :class:`TrainerParams` section into a ``lightning.Trainer`` with

- ``last.ckpt`` in the stage's checkpoint directory, written atomically every ``checkpoint_every_n_steps``
  and at the end, and never with non-finite weights;
- resume: :func:`fit` continues from ``last.ckpt`` when it exists, at the same global step (one written
  past ``max_steps`` is not resumed, so lowering ``max_steps`` retrains rather than keeping the longer run);
- a :class:`NonFiniteGuard` that stops training cleanly at the first non-finite loss;
- an ``MLFlowLogger`` writing into the stage's already open MLflow run;
- precision (``16-mixed``, ``bf16-mixed``) and multi-GPU / multi-node DDP (``strategy: ddp``) from params.

Multi-GPU: set ``accelerator: gpu``, ``devices: N`` (or ``auto``) and ``strategy: ddp``. Lightning starts the
extra processes by rerunning the stage's command; in them :func:`is_ddp_worker` is true and stages train
without opening an MLflow run or writing outputs (rank 0 does both; Lightning writes checkpoints from rank 0
only). The batch size is per process: N processes at batch b train like one at batch N * b. A module that
steps several optimisers per batch (the autoencoder's GAN) leaves the other networks' parameters out of each
backward pass, so DDP is told to expect unused parameters there.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from pydantic import Field, model_validator

from ipoke.atomic import atomic_path, write_text
from ipoke.config import ParamsError, Section, load_section, read_params
from ipoke.data.loader import BatchParams, LoaderParams, SharedLoaderParams
from ipoke.data.shards import CLIPS_NAME
from ipoke.data.video import sha256
from ipoke.errors import IpokeError

log = logging.getLogger("ipoke")

P = TypeVar("P", bound=Section)
LAST_CHECKPOINT = "last.ckpt"
FINGERPRINT_FILE = "params.json"
PROFILES = ("demo", "paper")


class TrainerParams(Section):
    """How a stage trains: length, hardware, precision, intervals of validation, logging and checkpoints."""

    max_steps: int = Field(gt=0)  # training iterations (batches)
    # 64-true (float64) is for numerical checks such as tests/test_ddp.py
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: int | Literal["auto"] = 1  # devices per node (per-process batch size stays the same)
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = "auto"
    num_nodes: int = Field(1, gt=0)
    val_every_n_steps: int = Field(gt=0)
    val_batches: int = Field(gt=0)  # batches of held-out clips per validation
    log_every_n_steps: int = Field(10, gt=0)
    checkpoint_every_n_steps: int = Field(gt=0)
    seed: int = 0


class TrainingDiverged(IpokeError):
    """A loss became NaN or infinite; the last good checkpoint was kept."""


def active_profile(params_path: str | os.PathLike | None = None) -> str:
    """The top-level ``profile`` key of params.yaml (``demo`` when absent)."""
    name = read_params(params_path).get("profile", "demo")
    if name not in PROFILES:
        raise ParamsError(f"params.yaml: profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


class StageSection(Section):
    """A training stage's section of params.yaml: one profile per key (``demo``, ``paper``).

    A profile's ``loader`` holds batching only (:class:`~ipoke.data.loader.BatchParams`); what the clips and
    pokes are comes from the shared ``loader`` section, merged in by :func:`training_profile`.
    """

    @model_validator(mode="before")
    @classmethod
    def _loader_batching_only(cls, data: Any) -> Any:
        for name, profile in (data.items() if isinstance(data, dict) else ()):
            loader = profile.get("loader") if isinstance(profile, dict) else None
            shared = sorted(set(loader or ()) - set(BatchParams.model_fields))
            if shared:
                raise ValueError(
                    f"{name}.loader: {', '.join(shared)} belong in the shared loader section (one place for "
                    f"every stage); a stage's loader sets only {', '.join(BatchParams.model_fields)}"
                )
        return data


def with_shared_loader(profile: P, params_path: str | os.PathLike | None = None) -> P:
    """``profile`` with its loader completed by the shared ``loader`` section of params.yaml (poke simulation,
    augmentation, seed, epoch): the autoencoder, the encoders, the cINN and the evaluation see the same kind
    of pokes."""
    shared = load_section("loader", SharedLoaderParams, params_path)
    batching = profile.loader.model_dump(include=set(BatchParams.model_fields))
    return profile.model_copy(update={"loader": LoaderParams(**shared.model_dump(), **batching)})


def training_profile(section: StageSection, params_path: str | os.PathLike | None = None):
    """The active profile of a training stage's section, with the shared loader merged in."""
    return with_shared_loader(getattr(section, active_profile(params_path)), params_path)


def is_ddp_worker() -> bool:
    """True in the extra processes DDP starts (global rank > 0): they train but own no run and no outputs."""
    return rank_zero_only.rank > 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary sibling and renamed, so a kill never leaves a torn file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def _all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


class LastCheckpoint(ModelCheckpoint):
    """Keeps exactly one checkpoint, ``last.ckpt``, and refuses to overwrite it with non-finite weights."""

    def __init__(self, dirpath: Path, every_n_train_steps: int):
        super().__init__(
            dirpath=dirpath,
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not _all_finite(trainer.lightning_module):
            log.error(
                "weights are not finite at step %d: keeping the previous %s", trainer.global_step, filepath
            )
            return
        super()._save_checkpoint(trainer, filepath)


class NonFiniteGuard(Callback):
    """Stops training at the first batch whose returned loss(es) are NaN or infinite.

    ``training_step`` returns a loss tensor or a mapping of them; the step at which the guard tripped is
    kept in ``tripped_at``. :class:`LastCheckpoint` then refuses to save non-finite weights, so the last good
    checkpoint survives.
    """

    def __init__(self) -> None:
        self.tripped_at: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = outputs.values() if isinstance(outputs, Mapping) else [outputs]
        bad = any(isinstance(v, torch.Tensor) and not bool(torch.isfinite(v).all()) for v in values)
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            self.tripped_at = trainer.global_step
            trainer.should_stop = True
            log.error("non-finite loss at step %d: stopping training", trainer.global_step)


def build_trainer(
    params: TrainerParams,
    checkpoint_dir: str | os.PathLike,
    *,
    run_id: str | None = None,
    optimizer_steps_per_batch: int = 1,
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """A ``lightning.Trainer`` for ``params``, checkpointing into ``checkpoint_dir``.

    Lightning counts every ``optimizer.step()`` as a global step; a GAN stepping a generator and a
    discriminator per batch passes ``optimizer_steps_per_batch=2`` so that ``max_steps`` and the checkpoint
    interval still count batches. ``run_id`` is the stage's open MLflow run (None: no logger).
    """
    k = optimizer_steps_per_batch
    strategy = params.strategy
    if strategy == "ddp" and k > 1:
        strategy = "ddp_find_unused_parameters_true"
    checkpoint_dir = Path(checkpoint_dir)
    loggers: list = []
    if run_id is not None:
        import mlflow
        from lightning.pytorch.loggers import MLFlowLogger

        loggers.append(MLFlowLogger(run_id=run_id, tracking_uri=mlflow.get_tracking_uri()))
    # Our checkpoints are taken after the optimizer steps of a batch, which is what resume needs.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    return L.Trainer(
        max_steps=params.max_steps * k,
        precision=params.precision,
        accelerator=params.accelerator,
        devices=params.devices,
        strategy=strategy,
        num_nodes=params.num_nodes,
        val_check_interval=params.val_every_n_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=params.val_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=params.log_every_n_steps,
        logger=loggers or False,
        callbacks=[
            NonFiniteGuard(),
            LastCheckpoint(checkpoint_dir, params.checkpoint_every_n_steps * k),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=checkpoint_dir,
        enable_progress_bar=not os.environ.get("IPOKE_NO_PROGRESS"),
        enable_model_summary=False,
    )


def reset_stale_checkpoints(
    checkpoint_dir: str | os.PathLike, fingerprint: dict[str, Any], shards: str | os.PathLike
) -> None:
    """Drop checkpoints written under different settings or data, then record both for the next run.

    ``fingerprint`` holds what gives a checkpoint its meaning (architecture, losses, optimiser, frozen
    weights); the data are the shards' index (``clips.parquet``: the clips and their flow statistics, so
    regenerated or re-decoded videos change it). A change there starts training afresh, while e.g. a larger
    ``max_steps`` continues from ``last.ckpt``.
    """
    checkpoint_dir = Path(checkpoint_dir)
    record = checkpoint_dir / FINGERPRINT_FILE
    data = {"shards_index_sha256": sha256(Path(shards) / CLIPS_NAME)}
    text = json.dumps(fingerprint | data, indent=2, sort_keys=True) + "\n"
    if record.is_file() and record.read_text() != text:
        for ckpt in checkpoint_dir.glob("*.ckpt"):
            log.info("settings or data changed since %s was written: removing it, starting afresh", ckpt)
            ckpt.unlink()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_text(record, text)


def resumable(path: Path, max_steps: int) -> bool:
    """Whether the Lightning checkpoint ``path`` exists and was written at or before ``max_steps`` global
    steps."""
    if not path.is_file():
        return False
    # mmap: only the step is read, not the weights and optimiser state that Lightning loads next
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"] <= max_steps


def fit(trainer: L.Trainer, module: L.LightningModule, train_loader, val_loader=None) -> None:
    """Train, resuming from ``last.ckpt`` in the trainer's checkpoint directory unless it is past max_steps.

    Raises :class:`TrainingDiverged` when the non-finite guard stopped the run.
    """
    checkpoint = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
    last = Path(checkpoint.dirpath) / LAST_CHECKPOINT
    ckpt_path = str(last) if resumable(last, trainer.max_steps) else None
    if ckpt_path:
        log.info("resuming from %s", last)
    elif last.is_file():
        # A shorter run than the checkpoint's would otherwise end at once with the longer-trained weights.
        # Every DDP rank decides alike; the fresh run's first checkpoint replaces the file.
        log.info("%s is past max_steps (%d global steps): starting afresh", last, trainer.max_steps)
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
    guard = next(c for c in trainer.callbacks if isinstance(c, NonFiniteGuard))
    if guard.tripped_at is not None:
        kept = (
            f"the last good checkpoint is {last}"
            if resumable(last, trainer.max_steps)
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"training diverged: non-finite loss at global step {guard.tripped_at}; {kept}. "
            "Rerunning continues from that checkpoint; changing the model, loss or optimiser settings "
            "(e.g. a lower learning rate) starts afresh."
        )
