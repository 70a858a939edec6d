"""DVC stage ``train_encoders``: pretrain the conditioning encoders Phi_x0 and Phi_c on the shards.

Reads ``train_encoders.<profile>`` (``profile`` is the top-level key of params.yaml). Outs:
``models/<dataset>/encoders/`` (``encoders.pt``, ``config.json``, ``checkpoints/last.ckpt``: a killed run
continues from there) and ``metrics/train_encoders.json`` (held-out image reconstruction and flow error
against the zero-flow baseline). Multi-GPU DDP reruns this command in its extra processes; they train
without an MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke.config import load_section
from ipoke.stage import dataset_name, main_guard, run_stage
from ipoke.train.encoders import TrainEncodersParams, train_encoders
from ipoke.train.trainer import active_profile, is_ddp_worker, training_profile


def paths(dataset: str) -> tuple[Path, Path]:
    return Path("data/shards") / dataset, Path("models") / dataset / "encoders"


def main() -> None:
    profile_name = active_profile()
    if is_ddp_worker():
        profile = training_profile(load_section("train_encoders", TrainEncodersParams))
        train_encoders(profile, *paths(dataset_name()))
        return
    with run_stage("train_encoders", TrainEncodersParams) as st:
        profile = training_profile(st.params)
        mlflow.set_tag("ipoke.profile", profile_name)
        metrics = train_encoders(profile, *paths(st.dataset), run_id=mlflow.active_run().info.run_id)
        st.write_metrics("metrics/train_encoders.json", {"profile": profile_name, **metrics})
        print(
            f"test: image L1 {metrics['image_l1']:.4f}, PSNR {metrics['image_psnr']:.2f} dB; flow endpoint "
            f"error {metrics['flow_epe']:.3f} px (zero-flow baseline {metrics['flow_epe_zero']:.3f} px)"
        )


if __name__ == "__main__":
    main_guard(main)
