"""How fast the demo autoencoder learns motion, on the simplest clips there are.

Trains the demo profile's autoencoder (its architecture, optimiser and pixel losses) on clips of
one square sliding at constant speed over a flat background, and records every ``EVERY`` steps, on fixed
held-out clips: PSNR of the reconstruction and of the static baseline (x0 copied), and how much the
reconstruction changes over its frames (mean |x_t - x_1|) against how much the clips do. An autoencoder
that only redraws x0 sits at the static PSNR with a motion near zero.
Writes ``bench/results/bench_ae_motion.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from ipoke.config import load_section
from ipoke.metrics.image import video_psnr
from ipoke.models.autoencoder import VideoAutoencoder
from ipoke.train.autoencoder import MAX_PSNR_DB, TrainAEParams, frame_motion, pixel_losses

RESULTS = Path(__file__).parent / "results" / "bench_ae_motion.json"
STEPS = int(os.environ.get("IPOKE_BENCH_AE_MOTION_STEPS", 600))
EVERY = 100
SQUARE_PX = 14
MAX_SPEED_PX = 2.0  # per frame


def sliding_squares(n: int, frames: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, frames, 3, size, size) in [-1, 1]: a flat square of its own colour moving at constant velocity."""

    def uniform(*shape: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * (high - low) + low

    background, colour = uniform(n, 3, 1, 1, low=-0.8, high=0.8), uniform(n, 3, 1, 1, low=-0.8, high=0.8)
    start = uniform(n, 2, low=SQUARE_PX, high=size - SQUARE_PX)
    velocity = uniform(n, 2, low=-MAX_SPEED_PX, high=MAX_SPEED_PX)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    clips = []
    for t in range(frames):
        centre = start + velocity * t
        inside = ((xs - centre[:, 0, None, None]).abs() < SQUARE_PX / 2) & (
            (ys - centre[:, 1, None, None]).abs() < SQUARE_PX / 2
        )
        mask = inside.float()[:, None]
        clips.append(background * (1 - mask) + colour * mask)
    return torch.stack(clips, 1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-clip PSNR, as ``train_ae`` validation scores it."""
    return round(float(video_psnr(pred, target, max_db=MAX_PSNR_DB).mean()), 2)


def motion(frames: torch.Tensor) -> float:
    """Mean |x_t - x_1| over the predicted frames (``recon_motion`` / ``clip_motion`` of ``train_ae``)."""
    return round(float(frame_motion(frames).mean()), 5)


def main() -> None:
    profile = load_section("train_ae", TrainAEParams).demo
    cfg, optim, weights = profile.model, profile.optim, profile.loss
    torch.manual_seed(profile.trainer.seed)
    model = VideoAutoencoder(cfg)
    opt = torch.optim.Adam(
        model.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
    )
    data = torch.Generator().manual_seed(0)
    held_out = sliding_squares(16, cfg.n_frames + 1, cfg.resolution, torch.Generator().manual_seed(1))
    target, start = held_out[:, 1:], held_out[:, :1]
    print(f"static baseline {psnr(start.expand_as(target), target)} dB, clip motion {motion(target)}")
    curve, t0 = [], time.perf_counter()
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            model.eval()
            with torch.no_grad():
                recon = model(held_out)[0]
            model.train()
            point = {
                "step": step,
                "seconds": round(time.perf_counter() - t0, 1),
                "recon_psnr": psnr(recon, target),
                "recon_motion": motion(recon),
            }
            curve.append(point)
            print(json.dumps(point), flush=True)
        if step == STEPS:
            break
        clips = sliding_squares(profile.loader.batch_size, cfg.n_frames + 1, cfg.resolution, data)
        _, loss = pixel_losses(model(clips)[0], clips, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    result = {
        "profile": "demo",
        "batch_size": profile.loader.batch_size,
        "lr": optim.lr,
        "loss": {"l1": weights.l1, "l2": weights.l2, "moving_weight": weights.moving_weight},
        "torch_threads": torch.get_num_threads(),
        "static_psnr": psnr(start.expand_as(target), target),
        "clip_motion": motion(target),
        "curve": curve,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
