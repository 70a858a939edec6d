"""Parameters and estimated training memory of every preset's models, computed without running a step.

For each preset (``ipoke.presets``) and training stage: the parameters of its networks as the preset builds
them, and an estimate of the GPU memory one training step needs at the preset's batch, from a step traced
on PyTorch's meta device (shapes only, nothing computed, so it runs in seconds on any machine):

- state: trainable parameters with their gradients and Adam's two moments (16 bytes each in float32),
  frozen ones (the perceptual VGG16, the cINN stage's autoencoder and encoders) at 4 bytes;
- activations: every tensor autograd keeps for the backward pass, counted once per storage. For the
  autoencoder, the reconstruction's graph lives through the step while the discriminator step's and then
  the generator loss's graphs come and go: reconstruction + the larger of the two.

Not counted: the CUDA context (about 0.5 GiB), the allocator's caching and fragmentation, cuDNN workspaces
and the evaluation's I3D/LPIPS. Plan for 1.3-1.5x the estimate. Prints a table and writes
bench/results/presets.json (the README's GPU runbook quotes it).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch

from ipoke import presets
from ipoke.atomic import write_text
from ipoke.config import parse_section
from ipoke.train.autoencoder import AutoencoderModule, TrainAEParams
from ipoke.train.cinn import CINNModule, TrainCINNParams
from ipoke.train.encoders import EncoderPretraining, TrainEncodersParams

RESULTS = Path(__file__).parent / "results" / "presets.json"
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
GIB = 2**30


class SavedTensors:
    """Bytes of the tensors autograd saves for backward while active, each storage counted once."""

    def __init__(self, exclude: list[torch.Tensor]):
        self.skip = {t.untyped_storage()._cdata for t in exclude}
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in self.skip and storage._cdata not in self.seen:
            self.seen.add(storage._cdata)
            self.bytes += storage.nbytes()
        return t

    @contextmanager
    def counting(self):
        with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            yield self


def state_bytes(module: torch.nn.Module, frozen: list[torch.nn.Module]) -> int:
    """Weights, gradients and Adam moments of what trains; weights of what does not (in float32)."""
    params = {id(p): p for p in module.parameters()}.values()
    frozen_bytes = sum(p.numel() * 4 for m in frozen for p in m.parameters())
    return sum(p.numel() * (16 if p.requires_grad else 4) for p in params) + frozen_bytes


def clips(batch: int, size: int) -> dict[str, torch.Tensor]:
    video, flow = torch.zeros(batch, 11, 3, size, size), torch.zeros(batch, 2, size, size)
    still = torch.zeros(batch, dtype=torch.bool)
    return {"video": video, "poke": flow, "flow": flow, "background_poke": still}


def saved_bytes(module: torch.nn.Module, step) -> int:
    """Bytes autograd saves while ``step()`` builds its graph, weights and buffers not included."""
    with SavedTensors([*module.parameters(), *module.buffers()]).counting() as saved:
        step()
    return saved.bytes


def on_meta(module: torch.nn.Module):
    """``module`` with every tensor on the meta device, its perceptual network too (kept outside its modules;
    the lpips package makes some of its constants on the CPU whatever the default device)."""
    for net in getattr(module, "_perceptual", []):
        net.to("meta")
    return module.to("meta")


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cost(module: torch.nn.Module, frozen: list[torch.nn.Module], activation_bytes: int, batch: int) -> dict:
    state = state_bytes(module, frozen)
    return {
        "batch": batch,
        "state_bytes": state,
        "activation_bytes": activation_bytes,
        "estimate_gib": round((state + activation_bytes) / GIB, 2),
    }


def autoencoder_cost(profile) -> tuple[dict, AutoencoderModule]:
    """The reconstruction's graph lives through the step; the discriminator step's, then the generator
    loss's come and go (the autoencoder module's training step, in its order)."""
    module = on_meta(AutoencoderModule(profile.model_dump(mode="json")))
    video = clips(profile.loader.batch_size, profile.model.resolution)["video"]
    pick = module._frame_pick(video, profile.loss.spatial_frames)
    graph = {}
    recon_bytes = saved_bytes(module, lambda: graph.update(out=module.ae.reconstruct(video)))
    recon, mu, logvar, _ = graph["out"]
    fake = torch.cat([video[:, :1], recon], 1)
    d_bytes, features = 0, None
    if module.adversarial:
        d_step = lambda: graph.update(d=module._discriminator_losses(video, fake.detach(), pick))  # noqa: E731
        d_bytes, features = saved_bytes(module, d_step), graph["d"][1]
    g_step = lambda: module._generator_losses(video, recon, fake, mu, logvar, features, pick)  # noqa: E731
    g_bytes = saved_bytes(module, g_step)
    discriminators = n_parameters(module) - n_parameters(module.ae)
    result = {"parameters": n_parameters(module.ae), "discriminator_parameters": discriminators}
    return result | cost(module, module._perceptual, recon_bytes + max(d_bytes, g_bytes), len(video)), module


def encoders_cost(profile) -> tuple[dict, EncoderPretraining]:
    module = on_meta(EncoderPretraining(profile.model_dump(mode="json")))
    batch = clips(profile.loader.batch_size, profile.resolution)
    activation_bytes = saved_bytes(module, lambda: module.losses(batch))
    result = {"parameters": n_parameters(module.encoders)}
    return result | cost(module, module._perceptual, activation_bytes, profile.loader.batch_size), module


def cinn_cost(profile, ae: AutoencoderModule, encoders: EncoderPretraining, size: int) -> dict:
    conditioner = encoders.encoders.freeze()
    module = CINNModule(profile.model_dump(mode="json"), ae.ae, conditioner, encoders.cfg.model)
    z, cond = module.encode(clips(profile.loader.batch_size, size))
    activation_bytes = saved_bytes(module, lambda: module.cinn(z, cond))
    result = {"parameters": n_parameters(module.cinn)}
    return result | cost(module, [], activation_bytes, profile.loader.batch_size)


def run() -> dict:
    results = {}
    for name in presets.preset_names():
        params = presets.resolve(presets.set_args(name), PARAMS)
        ae_profile, encoders_profile, cinn_profile = (
            parse_section(stage, params[stage], schema).paper
            for stage, schema in (
                ("train_ae", TrainAEParams),
                ("train_encoders", TrainEncodersParams),
                ("train_cinn", TrainCINNParams),
            )
        )
        size = ae_profile.model.resolution
        with torch.device("meta"):
            ae_row, ae = autoencoder_cost(ae_profile)
            encoders_row, encoders = encoders_cost(encoders_profile)
            cinn_row = cinn_cost(cinn_profile, ae, encoders, size)
        results[name] = {
            "tables": presets.tables(name),
            "size": size,
            "d": ae_profile.model.z_dim,
            "train_ae": ae_row,
            "train_encoders": encoders_row,
            "train_cinn": cinn_row,
        }
        print(f"{name}: done", flush=True)
    return results


def main() -> None:
    results = run()
    print(
        "| preset | tables | AE params (+ discriminators) | AE GiB @ batch | encoders params "
        "| encoders GiB @ batch | cINN params | cINN GiB @ batch |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ae, enc, cinn = r["train_ae"], r["train_encoders"], r["train_cinn"]
        cells = [
            name,
            ", ".join(t.split(":")[0].removeprefix("Table ") for t in r["tables"]),
            f"{ae['parameters'] / 1e6:.1f}M (+{ae['discriminator_parameters'] / 1e6:.1f}M)",
            f"{ae['estimate_gib']} @ {ae['batch']}",
            f"{enc['parameters'] / 1e6:.2f}M",
            f"{enc['estimate_gib']} @ {enc['batch']}",
            f"{cinn['parameters'] / 1e6:.1f}M",
            f"{cinn['estimate_gib']} @ {cinn['batch']}",
        ]
        print("| " + " | ".join(cells) + " |")
    write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
