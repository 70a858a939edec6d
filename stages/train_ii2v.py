"""DVC stage ``train_ii2v``: train the II2V baseline (Blattmann et al. 2021) on data/shards/<dataset>/.

Reads ``train_ii2v.<profile>`` (``profile`` is the top-level key of params.yaml) and the shared poke
simulation ``loader``. Outs: ``models/<dataset>/ii2v/`` (``ii2v.pt``, ``config.json``,
``checkpoints/last.ckpt``: a killed run continues from there) and ``metrics/train_ii2v.json`` (held-out
prediction vs the static baseline). Multi-GPU DDP reruns this command in its extra processes; they train
without an MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke.config import load_section
from ipoke.stage import dataset_name, main_guard, run_stage
from ipoke.train.ii2v import TrainII2VParams, train_ii2v
from ipoke.train.trainer import active_profile, is_ddp_worker, training_profile


def paths(dataset: str) -> tuple[Path, Path]:
    return Path("data/shards") / dataset, Path("models") / dataset / "ii2v"


def main() -> None:
    profile_name = active_profile()
    if is_ddp_worker():
        dataset = dataset_name()
        profile = training_profile(load_section("train_ii2v", TrainII2VParams))
        train_ii2v(profile, *paths(dataset))
        return
    with run_stage("train_ii2v", TrainII2VParams) as st:
        profile = training_profile(st.params)
        mlflow.set_tag("ipoke.profile", profile_name)
        metrics = train_ii2v(profile, *paths(st.dataset), run_id=mlflow.active_run().info.run_id)
        st.write_metrics("metrics/train_ii2v.json", {"profile": profile_name, **metrics})
        psnr, static = metrics["psnr"], metrics["static_psnr"]
        print(f"PSNR, test clips: II2V {psnr:.2f} dB, static baseline {static:.2f} dB")


if __name__ == "__main__":
    main_guard(main)
