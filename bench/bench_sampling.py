"""Cost of the whole sampling pipeline and of a cINN training step, demo and paper profile.

For each profile (sizes from params.yaml):

- latency of ``PokePipeline.sample`` for one image, one poke and five samples: crop and resize, both
  encoders, the cINN's inverse and the AE decoder rendering 5 x 10 frames, uint8 out. The demo uses the
  trained pipeline in ``models/<dataset>/pipeline`` when it exists; otherwise (and always for the paper
  profile) the networks are built untrained with ActNorms initialised on random latents: the cost does not
  depend on the weights, and the JSON says which was measured;
- training steps per second of the ``train_cinn`` step (frozen AE encoder and conditioner forward, cINN
  forward and backward, Adam) at the profile's batch size (the paper's 40 is replaced by ``--paper-batch``);
- parameter counts: AE, encoders (without their pretraining decoders), cINN, total.

Prints one line per number and writes bench/results/sampling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ipoke.atomic import write_text
from ipoke.config import load_section
from ipoke.models.autoencoder import VideoAutoencoder
from ipoke.models.encoders import build_conditioner
from ipoke.sampling import PokePipeline
from ipoke.stage import dataset_name
from ipoke.train.autoencoder import TrainAEParams
from ipoke.train.cinn import CINNModule, TrainCINNParams
from ipoke.train.encoders import TrainEncodersParams

RESULTS = Path(__file__).parent / "results" / "sampling.json"
SAMPLES = 5


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    wall = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - start)
    return {"median_s": statistics.median(wall), "best_s": min(wall), "repeats": repeats}


def untrained_module(profile_name: str) -> CINNModule:
    """The train_cinn module of a profile with untrained networks (for timing and counting only)."""
    ae_profile = getattr(load_section("train_ae", TrainAEParams), profile_name)
    enc_profile = getattr(load_section("train_encoders", TrainEncodersParams), profile_name)
    cinn_profile = getattr(load_section("train_cinn", TrainCINNParams), profile_name)
    torch.manual_seed(0)
    ae = VideoAutoencoder(ae_profile.model).eval()
    conditioner = build_conditioner(
        enc_profile.model, ae_profile.model.resolution, cinn_profile.poke_conditioning
    )
    module = CINNModule(
        cinn_profile.model_dump(mode="json"), ae, conditioner, enc_profile.model, "bench", profile_name
    )
    size = ae_profile.model.resolution
    with torch.no_grad():  # ActNorm data-dependent init on random latents
        z = torch.randn(8, *module.cinn.latent_shape)
        module.cinn(z, module.conditioner(torch.zeros(8, 3, size, size), torch.zeros(8, 2, size, size)))
    return module


def parameters(module: CINNModule) -> dict[str, int]:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    encoders = count(module.conditioner.image_encoder.encoder)
    if module.conditioner.poke_encoder is not None:
        encoders += count(module.conditioner.poke_encoder.encoder)
    out = {"autoencoder": count(module.ae), "encoders": encoders, "cinn": count(module.cinn)}
    return out | {"total": sum(out.values())}


def sampling_latency(pipeline: PokePipeline, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (pipeline.size, pipeline.size, 3), dtype=np.uint8)
    poke = [(pipeline.size / 2, pipeline.size / 2, pipeline.size / 8, 0.0)]
    return timed(lambda: pipeline.sample(image, poke, SAMPLES, seed=0), repeats)


def training_speed(module: CINNModule, batch_size: int, steps: int) -> dict[str, float]:
    size = module.ae.cfg.resolution
    batch = {
        "video": torch.rand(batch_size, module.ae.cfg.n_frames + 1, 3, size, size) * 2 - 1,
        "poke": torch.zeros(batch_size, 2, size, size),
    }
    optimizer = torch.optim.Adam(module.cinn.parameters(), lr=1e-4)

    def step():
        z, cond = module.encode(batch)
        r, log_det = module.cinn(z, cond)
        loss = (0.5 * r.pow(2).flatten(1).sum(1) - log_det).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    result = timed(step, steps)
    return result | {"batch_size": batch_size, "steps_per_s": 1.0 / result["median_s"]}


def bench_profile(name: str, args: argparse.Namespace) -> dict:
    module = untrained_module(name)
    trained = Path("models") / dataset_name() / "pipeline"
    if name == "demo" and trained.is_dir():
        pipeline, weights = PokePipeline.load(trained, device="cpu"), f"trained ({trained})"
    else:
        pipeline, weights = module.pipeline(), "untrained (timing only)"
    batch = args.paper_batch if name == "paper" else module.cfg.loader.batch_size
    result = {
        "resolution": pipeline.size,
        "weights": weights,
        "parameters": parameters(module),
        "sample_one_image_one_poke_5": sampling_latency(pipeline, args.repeats),
        "train_step": training_speed(module, batch, args.repeats),
    }
    latency, train = result["sample_one_image_one_poke_5"], result["train_step"]
    print(f"{name}: parameters {result['parameters']}")
    print(f"{name}: sample 5 videos, one image, one poke ({weights}): {latency['median_s']:.3f} s median")
    print(f"{name}: train step at batch {batch}: {train['steps_per_s']:.2f} steps/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    # one thread by default: several threads on a shared, oversubscribed CPU make the numbers meaningless
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--paper-batch", type=int, default=4, help="batch of the paper-profile train step")
    parser.add_argument("--profiles", nargs="+", default=["demo", "paper"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "setup": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_start": list(os.getloadavg()),
        }
    }
    for name in args.profiles:
        results[name] = bench_profile(name, args)
    results["setup"]["load_average_end"] = list(os.getloadavg())
    write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
