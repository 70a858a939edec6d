"""Video autoencoder training throughput on this machine's CPU, for the demo and paper profiles.

Runs the real Lightning training step (discriminator + autoencoder updates) on random clips and reports
seconds per batch, clips per second and parameter counts; writes ``bench/results/bench_ae.json``.
The demo profile also runs with each VGG16 perceptual loss switched on (``perceptual: vgg16`` and
``lpips_vgg16``; their weights are fetched on first use), on all 40 frames of a batch and on 8 random ones
(``perceptual_frames``), to show what the term costs per step. The paper
profile runs at a small batch (a paper-size batch takes minutes per step on a CPU) with its own perceptual
loss; both are recorded in the results.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ipoke.config import load_section
from ipoke.train.autoencoder import AEProfile, AutoencoderModule, TrainAEParams
from ipoke.train.trainer import build_trainer, fit

RESULTS = Path(__file__).parent / "results" / "bench_ae.json"
RUNS = {  # name: (profile, batch size (None: the profile's), steps, loss params changed)
    "demo": ("demo", None, 6, {}),
    "demo_vgg16": ("demo", None, 6, {"perceptual": "vgg16"}),
    "demo_vgg16_8_frames": ("demo", None, 6, {"perceptual": "vgg16", "perceptual_frames": 8}),
    "demo_lpips_vgg16": ("demo", None, 6, {"perceptual": "lpips_vgg16"}),
    "demo_lpips_vgg16_8_frames": ("demo", None, 6, {"perceptual": "lpips_vgg16", "perceptual_frames": 8}),
    "paper": ("paper", 2, 2, {}),
}
WARMUP = 1


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._t0)


def random_batch(batch_size: int, resolution: int) -> dict:
    video = torch.rand(batch_size, 11, 3, resolution, resolution) * 2 - 1
    flow = torch.randn(batch_size, 2, resolution, resolution)
    return {"video": video, "flow": flow, "background_poke": torch.zeros(batch_size, dtype=torch.bool)}


def bench(name: str, profile: AEProfile, batch_size: int | None, steps: int, loss: dict) -> dict:
    batch_size = batch_size or profile.loader.batch_size
    config = profile.model_dump(mode="json")
    config["loss"] |= loss
    module = AutoencoderModule(config)
    batches = [random_batch(batch_size, profile.model.resolution) for _ in range(WARMUP + steps)]
    params = profile.trainer.model_copy(
        update={
            "max_steps": WARMUP + steps,
            "accelerator": "cpu",
            "devices": 1,
            "strategy": "auto",
            "val_every_n_steps": 10**6,
            "checkpoint_every_n_steps": 10**6,
        }
    )
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(
            params, tmp, optimizer_steps_per_batch=module.optimizer_steps_per_batch, callbacks=[timer]
        )
        fit(trainer, module, DataLoader(batches, batch_size=None))
    seconds = sum(timer.times[WARMUP:]) / steps
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    result = {
        "batch_size": batch_size,
        "resolution": profile.model.resolution,
        "z_dim": profile.model.z_dim,
        "frames": profile.model.n_frames,
        "perceptual": config["loss"]["perceptual"],
        "perceptual_frames": config["loss"]["perceptual_frames"],
        "adversarial": profile.loss.adversarial,
        "seconds_per_step": round(seconds, 3),
        "steps_per_second": round(1 / seconds, 4),
        "clips_per_second": round(batch_size / seconds, 3),
        "params_autoencoder": count(module.ae),
        "params_spatial_discriminator": count(module.disc_s) if module.adversarial else 0,
        "params_temporal_discriminator": count(module.disc_t) if module.adversarial else 0,
    }
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    os.environ.setdefault("IPOKE_NO_PROGRESS", "1")
    section = load_section("train_ae", TrainAEParams)
    results = {name: bench(name, getattr(section, profile), *run) for name, (profile, *run) in RUNS.items()}
    results["torch_threads"] = torch.get_num_threads()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
