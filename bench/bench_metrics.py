"""Throughput of the evaluation metrics at the paper's evaluation size (64x64, x0 + 10 frames, 5 samples).

Prints one line per metric and writes bench/results/metrics.json: LPIPS (AlexNet, the paper's, and VGG16)
in frames per second and the I3D behind FVD in clips per second (x0 + 10 frames, resized to 224x224), at
this process's torch thread count. Metrics whose pretrained weights cannot be had are recorded as not
computed, with the reason.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ipoke.metrics import MetricUnavailable
from ipoke.metrics.control import control_error
from ipoke.metrics.diversity import pairwise_lpips, pairwise_mse
from ipoke.metrics.fvd import feature_statistics, frechet_distance, load_i3d
from ipoke.metrics.image import video_psnr, video_ssim
from ipoke.metrics.kinematics import end_displacements
from ipoke.metrics.perceptual import load_lpips

SIZE, FRAMES, SAMPLES = 64, 10, 5
I3D_BATCH = 4
RESULTS = Path(__file__).parent / "results" / "metrics.json"


def rate(fn, items: int, min_seconds: float = 1.0) -> dict[str, float]:
    """Call ``fn`` until ``min_seconds`` have passed (at least twice, first call as warm-up)."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    seconds = (time.perf_counter() - start) / calls
    return {"seconds_per_call": seconds, "items_per_call": items, "items_per_second": items / seconds}


def moving_clip(rng: np.random.Generator) -> np.ndarray:
    """x0 + FRAMES frames of a smooth random texture drifting by one pixel per frame."""
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE + 2 * FRAMES, SIZE + 2 * FRAMES)), (0, 0), 1.5)
    frames = [texture[t : t + SIZE, t // 2 : t // 2 + SIZE] for t in range(FRAMES + 1)]
    return np.repeat(np.clip(np.stack(frames), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def lpips_rates(net: str, samples: torch.Tensor, target: torch.Tensor) -> dict[str, object]:
    """LPIPS against a target and pairwise between samples, with the ``net`` backbone."""
    lpips = load_lpips(net=net)
    if isinstance(lpips, MetricUnavailable):
        return {f"lpips_{net}_frames": lpips.as_record(), f"diversity_lpips_{net}_pokes": lpips.as_record()}
    return {
        f"lpips_{net}_frames": rate(lambda: lpips.videos(samples, target), SAMPLES * FRAMES),
        f"diversity_lpips_{net}_pokes": rate(lambda: pairwise_lpips(samples, lpips), 1),
    }


def main() -> None:
    os.environ.setdefault("IPOKE_NO_PROGRESS", "1")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = torch.rand(SAMPLES, FRAMES, 3, SIZE, SIZE) * 2 - 1
    target = torch.rand(FRAMES, 3, SIZE, SIZE) * 2 - 1
    clip = moving_clip(rng)
    pokes = np.array([[20.0, 20.0, 5.0, 3.0], [40.0, 30.0, -4.0, 2.0]])
    features = rng.normal(size=(2, 1000, 400))
    results: dict[str, object] = {
        "setup": {
            "size": SIZE,
            "frames": FRAMES,
            "samples": SAMPLES,
            "torch_threads": torch.get_num_threads(),
        },
        "psnr_frames": rate(lambda: video_psnr(samples, target), SAMPLES * FRAMES),
        "ssim_frames": rate(lambda: video_ssim(samples, target), SAMPLES * FRAMES),
        "diversity_mse_pokes": rate(lambda: pairwise_mse(samples), 1),
        "frechet_distance_400d_1000_clips": rate(
            lambda: frechet_distance(*feature_statistics(features[0]), *feature_statistics(features[1])), 1
        ),
        "control_error_videos": rate(lambda: control_error(clip[0], clip[1:], pokes), 1),
        "kinematics_dense_tracking_videos": rate(lambda: end_displacements(clip[0], clip[None, 1:]), 1),
    }
    for net in ("alex", "vgg16"):
        results |= lpips_rates(net, samples, target)
    i3d = load_i3d(batch_size=I3D_BATCH)
    if isinstance(i3d, MetricUnavailable):
        results["i3d_clips"] = i3d.as_record()
    else:
        clips = np.stack([clip] * I3D_BATCH)
        results["i3d_clips"] = rate(lambda: i3d(clips), len(clips))
    for name, value in results.items():
        if name == "setup":
            continue
        if "items_per_second" in value:
            per_call = value["seconds_per_call"] * 1e3
            print(f"{name:36s} {value['items_per_second']:10.1f} /s   ({per_call:.1f} ms/call)")
        else:
            print(f"{name:36s} not computed: {value['reason']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
