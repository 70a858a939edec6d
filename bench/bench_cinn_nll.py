"""NLL parity: our paper-layout cINN against the authors' layout, same latents, same training budget.

Data: the latents of the trained demo pipeline, what ``train_cinn`` fits after ``make repro``: the clips of
``data/shards/<dataset>`` encoded by ``models/<dataset>/ae`` (posterior mean z, d x s x s) with the
conditioning maps of ``models/<dataset>/encoders`` for pokes drawn as params.yaml's shared ``loader``
section says (training clips with the pokes of ``--poke-epochs`` epochs, test clips with epoch 0's). All
flows see the same batches in the same order, with the training stage's optimiser (Adam, by default at
1e-3, betas (0.9, 0.999), weight decay 1e-5, linear warm-up then linear decay to zero) and ActNorm
initialised from the first batch. The authors' layout, four times as deep, diverges at 1e-3 within a few
steps of a short warm-up (they warm up over 500 steps): compare both at ``--lr 1e-4``.

The layouts: ours is the paper profile's (K=15 blocks, N_k as published, one masked-convolution unit per
sub-block, conditioned couplings ``--ours-width`` wide with bounded scales), with ``--glow`` once more with
Glow's couplings (the demo's); the authors' is ``AUTHORS_REFERENCE`` (four units and two unconditioned
bounded couplings per sub-block) with couplings ``--authors-width`` wide instead of their 2048, which would
not train here in any useful time. The paper's layout needs d >= K: a latent larger than 8 x 8 (the demo's
d x 16 x 16) is rearranged space-to-depth to 4d x 8 x 8, and its conditioning maps with it, so every block
gets exits as published.

Reports parameters, seconds per training step (median, on this machine under whatever else runs on it), the
training NLL at the end and the test NLL (bits per dimension) every ``--eval-every`` steps; writes
bench/results/cinn_nll_lr<lr>.json for each ``--lr`` (the latents are encoded once for all rates). Run after
``make repro`` (or point ``--models`` and ``--shards`` at another run's outputs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from ipoke.atomic import write_text
from ipoke.config import load_section
from ipoke.data.loader import LoaderParams, SharedLoaderParams, make_loader
from ipoke.models.autoencoder import load_autoencoder
from ipoke.models.cinn import AUTHORS_REFERENCE, CINN, PROFILES, CINNConfig, bits_per_dim
from ipoke.sampling import load_encoders
from ipoke.train.cinn import warmup_linear_decay

RESULTS_DIR = Path(__file__).parent / "results"


@torch.no_grad()
def encode_split(models: Path, shards: Path, split: str, epochs: int) -> dict[str, torch.Tensor]:
    """z and the conditioning maps of every clip of ``split``, for the pokes of ``epochs`` loader epochs."""
    ae = load_autoencoder(models / "ae").eval()
    conditioner, _ = load_encoders(models / "encoders")
    shared = load_section("loader", SharedLoaderParams)
    params = LoaderParams(**shared.model_dump(), batch_size=32, workers=0, shuffle_buffer=0)
    params = params.model_copy(update={"resampled": False})
    loader = make_loader(shards, split, params, train=split == "train")
    zs, conds = [], []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            zs.append(ae.encode(batch["video"]))
            conds.append(conditioner(batch["video"][:, 0], batch["poke"]))
    return {"z": torch.cat(zs), "cond": torch.cat(conds)}


def space_to_depth(split: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """z and conditioning maps rearranged to ``size`` x ``size`` (channels x (s / size)^2), nothing lost."""
    factor = split["z"].shape[-1] // size
    if factor <= 1:
        return split
    return {key: torch.nn.functional.pixel_unshuffle(value, factor) for key, value in split.items()}


def nll_bpd(flow: CINN, z: torch.Tensor, cond: torch.Tensor, batch: int = 256) -> float:
    with torch.no_grad():
        nll = torch.cat([flow.nll(z[i : i + batch], cond[i : i + batch]) for i in range(0, len(z), batch)])
    return float(bits_per_dim(nll.mean(), math.prod(flow.latent_shape)))


def train(config: CINNConfig, data: dict, test: dict, lr: float, args: argparse.Namespace) -> dict:
    """Train one flow on ``data`` with the training stage's optimiser; its cost and NLL along the way."""
    torch.manual_seed(args.seed)
    flow = CINN(config, data["cond"].shape[1])
    order = torch.randperm(len(data["z"]), generator=torch.Generator().manual_seed(args.seed))
    batches = [order[i : i + args.batch] for i in range(0, len(order) - args.batch + 1, args.batch)]
    with torch.no_grad():
        flow(data["z"][batches[0]], data["cond"][batches[0]])  # ActNorm data-dependent init
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear_decay(step, args.warmup, args.steps)
    )
    step_s, train_bpd, curve = [], [], []
    for step in range(args.steps):
        index = batches[step % len(batches)]
        start = time.perf_counter()
        nll = flow.nll(data["z"][index], data["cond"][index]).mean()
        optimizer.zero_grad(set_to_none=True)
        nll.backward()
        if args.clip_grad_norm is not None:  # the training stage's optim.grad_clip_norm
            torch.nn.utils.clip_grad_norm_(flow.parameters(), args.clip_grad_norm)
        optimizer.step()
        schedule.step()
        step_s.append(time.perf_counter() - start)
        train_bpd.append(float(bits_per_dim(nll.detach(), math.prod(flow.latent_shape))))
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            flow.eval()
            curve.append({"step": step + 1, "test_nll_bpd": nll_bpd(flow, test["z"], test["cond"])})
            flow.train()
            recent = statistics.mean(train_bpd[-args.eval_every :])
            print(
                f"  step {step + 1}: train {recent:.4f} bpd, test {curve[-1]['test_nll_bpd']:.4f} bpd, "
                f"{statistics.median(step_s):.3f} s/step",
                flush=True,
            )
    return {
        "config": config.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in flow.parameters()),
        "s_per_step_median": statistics.median(step_s),
        "train_nll_bpd_last_100": statistics.mean(train_bpd[-100:]),
        "test_nll_bpd": curve[-1]["test_nll_bpd"],
        "test_curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models/synthetic"))
    parser.add_argument("--shards", type=Path, default=Path("data/shards/synthetic"))
    parser.add_argument("--poke-epochs", type=int, default=4, help="epochs of pokes on the training clips")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--lr", type=float, nargs="+", default=[1e-3],
        help="peak learning rates, each a run of every layout on the same latents (the stage's: 1e-3)",
    )
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--ours-width", type=int, default=PROFILES["paper"].coupling_hidden)
    parser.add_argument("--authors-width", type=int, default=256)
    parser.add_argument("--latent-size", type=int, default=PROFILES["paper"].latent_size,
                        help="rearrange larger latents space-to-depth to this size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-grad-norm", type=float, default=None, help="clip each step's gradient norm")
    parser.add_argument("--glow", action="store_true", help="also train ours with Glow's couplings")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = encode_split(args.models, args.shards, "train", args.poke_epochs)
    test = encode_split(args.models, args.shards, "test", 1)
    encoded = tuple(data["z"].shape[1:])
    data, test = space_to_depth(data, args.latent_size), space_to_depth(test, args.latent_size)
    d, size = data["z"].shape[1], data["z"].shape[-1]
    print(f"latents: {len(data['z'])} training ({args.poke_epochs} poke epochs), {len(test['z'])} test, "
          f"z {encoded} as {tuple(data['z'].shape[1:])}, conditioning {data['cond'].shape[1]} channels "
          f"({time.perf_counter() - start:.0f} s to encode)")
    bases = [("ours", PROFILES["paper"], args.ours_width)]
    if args.glow:
        glow = PROFILES["paper"].model_copy(update={"coupling_transform": "glow"})
        bases.append(("ours, glow couplings", glow, args.ours_width))
    bases.append(("authors", AUTHORS_REFERENCE, args.authors_width))
    layouts = {  # validated again: d and size change the exits
        name: CINNConfig.model_validate(
            base.model_dump() | {"latent_channels": d, "latent_size": size, "coupling_hidden": width}
        )
        for name, base, width in bases
    }
    setup = {
        "data": {"models": str(args.models), "shards": str(args.shards), "train_latents": len(data["z"]),
                 "test_latents": len(test["z"]), "poke_epochs": args.poke_epochs, "encoded": encoded,
                 "d": d, "size": size, "cond_channels": data["cond"].shape[1]},
        "steps": args.steps, "batch": args.batch, "warmup": args.warmup,
        "clip_grad_norm": args.clip_grad_norm,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    for lr in args.lr:
        compare(layouts, data, test, lr, setup, args)


def compare(layouts: dict, data: dict, test: dict, lr: float, setup: dict, args: argparse.Namespace) -> None:
    """Every layout at one learning rate: prints the table, writes bench/results/cinn_nll_lr<lr>.json."""
    print(f"\n== learning rate {lr:g}")
    results: dict[str, object] = {"setup": setup | {"lr": lr, "load_average_start": os.getloadavg()}}
    for name, config in layouts.items():
        print(f"{name}: coupling width {config.coupling_hidden}")
        results[name] = train(config, data, test, lr, args)
    results["setup"]["load_average_end"] = os.getloadavg()
    print(f"\n| layout | width | parameters | s/step, batch {args.batch} | train NLL, bpd | test NLL, bpd |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in layouts:
        r = results[name]
        print(f"| {name} | {r['config']['coupling_hidden']} | {r['parameters'] / 1e6:.2f}M | "
              f"{r['s_per_step_median']:.3f} | {r['train_nll_bpd_last_100']:.4f} | {r['test_nll_bpd']:.4f} |")
    out = RESULTS_DIR / f"cinn_nll_lr{lr:g}.json"
    write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
