"""A few training steps of a tiny cINN and a tiny autoencoder with the project's trainer, in one process or
under Lightning DDP (CPU, gloo).

``tests/test_ddp.py`` runs it as a script, ``python tests/ddp_train.py OUT --devices 2 --batch 2``: Lightning
starts rank 1 by rerunning this command, as it reruns a stage's command, so everything here is seeded. Each
rank writes its trained parameters, the indices of the clips it trained on and its ``global_step`` to
``OUT/<model>-rank<r>.pt``; rank 0 alone writes the checkpoint ``OUT/<model>/last.ckpt``. The same functions
give the single-process run the test compares with.

The clips are a map-style dataset, so under DDP Lightning's distributed sampler deals them out: it shuffles
them with seed 0 and gives rank r every other clip of that order from the r-th on. The single process reads
them in that same order (``ORDER``), so one step of two ranks at batch b sees the clips of one step at 2b.
The autoencoder trains with its discriminators (two optimisers, manual optimisation) and an almost
deterministic posterior (``init_logvar``), so that no per-process noise separates the runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
from tiny_clips import Clips
from torch.utils.data import DataLoader

from ipoke.models.autoencoder import AEConfig, VideoAutoencoder
from ipoke.models.encoders import EncoderConfig, build_conditioner
from ipoke.train.autoencoder import AutoencoderModule
from ipoke.train.cinn import CINNModule
from ipoke.train.trainer import TrainerParams, build_trainer, fit

SIZE, CLIPS = 32, 16
ORDER = torch.randperm(CLIPS, generator=torch.Generator().manual_seed(0)).tolist()  # DistributedSampler's
MODELS = ("cinn", "ae")
AE = {
    "resolution": SIZE,
    "z_dim": 4,
    "enc_channels": [4, 8, 8],
    "dec_channels": [8, 8, 4],
    "spade_hidden": 4,
    "groups": 2,
    "gru_layers": 1,
    "init_logvar": -30.0,
}
DISC = {
    "spatial_width": 4,
    "spatial_layers": 2,
    "temporal_width": 4,
    "temporal_blocks": [1, 1, 1, 1],
    "groups": 2,
}
AE_LOSS = {"perceptual": "none", "adversarial": True, "moving_weight": 1.0, "spatial_frames": None}
ENCODERS = EncoderConfig(image_channels=4, poke_channels=4, width=4, max_width=8)
CINN = {"latent_channels": 4, "subblocks": [2, 1], "coupling_hidden": 8, "maskedconv_hidden_factor": 2}


class SeenClips(L.Callback):
    """Records the dataset indices of every training batch."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.indices += batch["index"].tolist()


def build(model: str) -> L.LightningModule:
    """The module to train, seeded: the same weights in every process."""
    L.seed_everything(0, verbose=False)
    trainer = {"max_steps": 1, "val_every_n_steps": 1, "val_batches": 1, "checkpoint_every_n_steps": 1}
    if model == "ae":
        profile = {"model": AE, "disc": DISC, "loss": AE_LOSS, "trainer": trainer}
        return AutoencoderModule(profile)
    ae = VideoAutoencoder(AEConfig(**AE)).eval()
    conditioner = build_conditioner(ENCODERS, SIZE).freeze()
    profile = {"model": CINN, "optim": {"warmup_steps": 1}, "trainer": trainer, "gif_clips": 0}
    return CINNModule(profile, ae, conditioner, ENCODERS)


def trainable(module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}


def train(model: str, out: Path, devices: int, batch: int, steps: int) -> dict:
    """Train ``model`` for ``steps`` batches; returns (and writes) this rank's parameters and clips seen."""
    module = build(model)
    params = TrainerParams(
        max_steps=steps,
        precision="64-true",  # float32 rounding would flip the sign of Adam's first steps on tiny gradients
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        val_every_n_steps=10 * steps,
        val_batches=1,
        checkpoint_every_n_steps=steps,
    )
    seen = SeenClips()
    trainer = build_trainer(
        params, out / model, optimizer_steps_per_batch=getattr(module, "optimizer_steps_per_batch", 1),
        callbacks=[seen],
    )
    # Under DDP Lightning puts its distributed sampler in place of a sequential one (and would shuffle ORDER).
    loader = DataLoader(Clips(CLIPS, SIZE), batch_size=batch, sampler=ORDER if devices == 1 else None)
    fit(trainer, module, loader)
    result = {"params": trainable(module), "indices": seen.indices, "global_step": trainer.global_step}
    torch.save(result, out / f"{model}-rank{trainer.global_rank}.pt")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model in MODELS:
        train(model, args.out, args.devices, args.batch, args.steps)


if __name__ == "__main__":
    main()
