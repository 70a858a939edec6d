"""DVC stage ``train_cvae``: train iPOKE's cVAE counterpart (appendix F) on data/shards/<dataset>/.

Reads ``train_cvae.<profile>`` (``profile`` is the top-level key of params.yaml) and the shared poke
simulation ``loader``. Deps: the shards, the trained autoencoder (``models/<dataset>/ae``) and conditioning
encoders (``models/<dataset>/encoders``), whose architecture the cVAE takes and, with
``init_from_trained``, whose weights it starts from. Outs: ``models/<dataset>/cvae/`` (``cvae.pt``,
``config.json``, ``checkpoints/last.ckpt``: a killed run continues from there) and
``metrics/train_cvae.json`` (held-out reconstruction vs the static baseline). Multi-GPU DDP reruns this
command in its extra processes; they train without an MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke.config import load_section
from ipoke.stage import dataset_name, main_guard, run_stage
from ipoke.train.cvae import CVAEPaths, TrainCVAEParams, train_cvae
from ipoke.train.trainer import active_profile, is_ddp_worker, training_profile


def paths(dataset: str) -> CVAEPaths:
    models = Path("models") / dataset
    return CVAEPaths(Path("data/shards") / dataset, models / "ae", models / "encoders", models / "cvae")


def main() -> None:
    profile_name = active_profile()
    if is_ddp_worker():
        profile = training_profile(load_section("train_cvae", TrainCVAEParams))
        train_cvae(profile, paths(dataset_name()))
        return
    with run_stage("train_cvae", TrainCVAEParams) as st:
        profile = training_profile(st.params)
        mlflow.set_tag("ipoke.profile", profile_name)
        metrics = train_cvae(profile, paths(st.dataset), run_id=mlflow.active_run().info.run_id)
        st.write_metrics("metrics/train_cvae.json", {"profile": profile_name, **metrics})
        recon, static = (metrics.get(f"moving_{m}_psnr", float("nan")) for m in ("recon", "static"))
        print(f"PSNR, moving test clips: cVAE reconstruction {recon:.2f} dB, static baseline {static:.2f} dB")


if __name__ == "__main__":
    main_guard(main)
