"""Cost of the cINN on this CPU, ours against the authors' layout, measured in the same run.

For the demo and paper profiles: parameter counts, the latency of sampling five latents for one image and one
poke (the cINN alone and with the conditioning encoders), forward+backward seconds at batch 4 and training
steps per second (Adam). For the authors' layout (``AUTHORS_REFERENCE``: 2048-channel couplings that never see
the conditioning): the parameter count always, and forward+backward at batch 4 and five-sample latency when
enough memory is free (about 11 GiB; ``--skip-authors`` skips them). The targets (DESIGN.md section 5) are at
least 10x faster sampling than the authors' and at most a fifth of their parameters.

Prints one line per number and writes bench/results/cinn.json. Other work on the machine slows every number;
the load average is recorded with them, and the same-run ratios are the fairer comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ipoke.atomic import write_text
from ipoke.models.cinn import AUTHORS_REFERENCE, CINN, PROFILES, CINNConfig
from ipoke.models.encoders import ENCODER_PROFILES, Conditioner, build_conditioner

RESULTS = Path(__file__).parent / "results" / "cinn.json"
RESOLUTION = {"demo": 64, "paper": 128}
TRAIN_BATCH, SAMPLES = 4, 5
# The authors' released flow as measured on the project's 2-core machine (DESIGN.md section 5).
AUTHORS_MEASURED = {"parameters": 1.05e9, "forward_backward_batch4_s": 16.8, "sample5_s": 7.6}


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and best wall time of ``repeats`` calls after one warm-up call, and the median CPU time.

    CPU time (all threads of this process) is less sensitive to other work on the machine than wall time.
    """
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_s": statistics.median(wall),
        "best_s": min(wall),
        "cpu_median_s": statistics.median(cpu),
        "repeats": repeats,
    }


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_parameters(config: CINNConfig, cond_channels: int) -> int:
    with torch.device("meta"):
        return n_parameters(CINN(config, cond_channels))


def poke_inputs(batch: int, resolution: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Start frames in [-1, 1] and one 5x5 poke patch each."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, resolution, resolution, generator=generator) * 2 - 1
    poke = torch.zeros(batch, 2, resolution, resolution)
    centre = resolution // 2
    poke[:, :, centre - 2 : centre + 3, centre - 2 : centre + 3] = torch.tensor([4.0, -3.0]).view(1, 2, 1, 1)
    return x0, poke


def initialised_flow(config: CINNConfig, cond: torch.Tensor) -> CINN:
    """A flow whose ActNorm layers were initialised on a batch of latents, as in the first training step."""
    flow = CINN(config, cond.shape[1])
    with torch.no_grad():
        flow(torch.randn(cond.shape[0], *flow.latent_shape), cond)
    return flow


def forward_backward(flow: CINN, cond: torch.Tensor) -> Callable[[], None]:
    z = torch.randn(cond.shape[0], *flow.latent_shape)

    def step() -> None:
        flow.zero_grad(set_to_none=True)
        flow.nll(z, cond).mean().backward()

    return step


def training_step(flow: CINN, cond: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    backward = forward_backward(flow, cond)

    def step() -> None:
        backward()
        optimizer.step()

    return step


def bench_profile(name: str, repeats: int) -> tuple[dict, torch.Tensor]:
    resolution = RESOLUTION[name]
    conditioner: Conditioner = build_conditioner(ENCODER_PROFILES[name], resolution).freeze()
    x0, poke = poke_inputs(1, resolution)
    with torch.no_grad():
        cond_one = conditioner(x0, poke)
        cond_batch = conditioner(*poke_inputs(TRAIN_BATCH, resolution, seed=1))
    flow = initialised_flow(PROFILES[name], cond_batch)
    flow.eval()

    def end_to_end() -> None:
        with torch.no_grad():
            flow.sample(conditioner(x0, poke), n=SAMPLES, seed=0)

    result = {
        "resolution": resolution,
        "cinn_parameters": n_parameters(flow),
        "encoder_parameters": n_parameters(conditioner),
        "sample5_cinn": timed(lambda: flow.sample(cond_one, n=SAMPLES, seed=0), repeats),
        "sample5_with_encoders": timed(end_to_end, repeats),
    }
    flow.train()
    result["forward_backward_batch4"] = timed(forward_backward(flow, cond_batch), repeats)
    step = timed(training_step(flow, cond_batch), repeats)
    result["train_steps_per_s_batch4"] = 1.0 / step["median_s"]
    return result, cond_batch


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) / 2**20


def bench_authors(cond_batch: torch.Tensor, skip: bool, min_free_gib: float) -> dict:
    config = AUTHORS_REFERENCE.model_copy(update={"latent_channels": PROFILES["paper"].latent_channels})
    result: dict[str, object] = {"cinn_parameters": meta_parameters(config, cond_batch.shape[1])}
    free = available_gib()
    if skip or free < min_free_gib:
        result["timings"] = f"not measured: {'--skip-authors' if skip else f'{free:.1f} GiB free'}"
        return result
    flow = initialised_flow(config, cond_batch)
    result["forward_backward_batch4"] = timed(forward_backward(flow, cond_batch), repeats=1)
    flow.zero_grad(set_to_none=True)
    flow.eval()
    result["sample5_cinn"] = timed(lambda: flow.sample(cond_batch[:1], n=SAMPLES, seed=0), repeats=1)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--skip-authors", action="store_true", help="only count the authors' layout")
    parser.add_argument("--min-free-gib", type=float, default=14.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results: dict[str, object] = {
        "setup": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_start": os.getloadavg(),
        }
    }
    results["demo"], _ = bench_profile("demo", args.repeats)
    results["paper"], cond_batch = bench_profile("paper", args.repeats)
    authors = bench_authors(cond_batch, args.skip_authors, args.min_free_gib)
    results["authors_layout"] = authors
    results["setup"]["load_average_end"] = os.getloadavg()

    paper = results["paper"]
    comparison = {
        "parameter_fraction_vs_authors_measured": paper["cinn_parameters"] / AUTHORS_MEASURED["parameters"],
        "parameter_fraction_vs_authors_layout": paper["cinn_parameters"] / authors["cinn_parameters"],
        "sample_speedup_vs_authors_measured": AUTHORS_MEASURED["sample5_s"]
        / paper["sample5_cinn"]["median_s"],
        "forward_backward_speedup_vs_authors_measured": AUTHORS_MEASURED["forward_backward_batch4_s"]
        / paper["forward_backward_batch4"]["median_s"],
    }
    if "sample5_cinn" in authors:
        comparison["sample_speedup_same_run"] = (
            authors["sample5_cinn"]["median_s"] / paper["sample5_cinn"]["median_s"]
        )
        comparison["forward_backward_speedup_same_run"] = (
            authors["forward_backward_batch4"]["median_s"] / paper["forward_backward_batch4"]["median_s"]
        )
    results["comparison"] = {"authors_measured": AUTHORS_MEASURED, **comparison}

    for name in ("demo", "paper"):
        r = results[name]
        print(
            f"{name:>6}: cINN {r['cinn_parameters'] / 1e6:.1f}M params "
            f"(+{r['encoder_parameters'] / 1e6:.1f}M encoders) | "
            f"5 samples {r['sample5_cinn']['median_s']:.3f} s "
            f"({r['sample5_with_encoders']['median_s']:.3f} s with encoders) | fwd+bwd batch 4 "
            f"{r['forward_backward_batch4']['median_s']:.3f} s | {r['train_steps_per_s_batch4']:.2f} steps/s"
        )
    timings = (
        f"5 samples {authors['sample5_cinn']['median_s']:.2f} s | fwd+bwd batch 4 "
        f"{authors['forward_backward_batch4']['median_s']:.2f} s | peak RSS {authors['peak_rss_gib']:.1f} GiB"
        if "sample5_cinn" in authors
        else authors["timings"]
    )
    print(f"authors' layout: {authors['cinn_parameters'] / 1e9:.3f}B params | {timings}")
    for key, value in comparison.items():
        print(f"{key}: {value:.3g}")
    write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
