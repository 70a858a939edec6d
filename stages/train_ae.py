"""DVC stage ``train_ae``: train the video autoencoder on data/shards/<dataset>/.

Reads ``train_ae.<profile>`` (``profile`` is the top-level key of params.yaml) and the shared ``loader``.
Outs: ``models/<dataset>/ae/`` (``ae.pt``, ``config.json``, ``checkpoints/last.ckpt``: a killed run continues
from there when the stage is run again) and ``metrics/train_ae.json`` (held-out reconstruction vs the static
baseline). Multi-GPU DDP reruns this command in its extra processes; they train without an MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke.config import load_section
from ipoke.stage import dataset_name, main_guard, run_stage
from ipoke.train.autoencoder import TrainAEParams, train_autoencoder
from ipoke.train.trainer import active_profile, is_ddp_worker, training_profile


def paths(dataset: str) -> tuple[Path, Path]:
    return Path("data/shards") / dataset, Path("models") / dataset / "ae"


def main() -> None:
    profile_name = active_profile()
    if is_ddp_worker():
        profile = training_profile(load_section("train_ae", TrainAEParams))
        train_autoencoder(profile, *paths(dataset_name()))
        return
    with run_stage("train_ae", TrainAEParams) as st:
        profile = training_profile(st.params)
        mlflow.set_tag("ipoke.profile", profile_name)
        metrics = train_autoencoder(profile, *paths(st.dataset), run_id=mlflow.active_run().info.run_id)
        st.write_metrics("metrics/train_ae.json", {"profile": profile_name, **metrics})
        recon, static = (metrics.get(f"moving_{m}_psnr", float("nan")) for m in ("recon", "static"))
        print(f"PSNR, moving test clips: reconstruction {recon:.2f} dB, static baseline {static:.2f} dB")


if __name__ == "__main__":
    main_guard(main)
