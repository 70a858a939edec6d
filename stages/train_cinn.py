"""DVC stage ``train_cinn``: train the cINN on the frozen AE's latents, then export the sampling pipeline.

Reads ``train_cinn.<profile>`` (``profile`` is the top-level key of params.yaml). Deps: the shards, the AE
(``models/<dataset>/ae``) and the encoders (``models/<dataset>/encoders``). Outs: ``models/<dataset>/cinn/``
(``last.ckpt``: a killed run continues from there), ``models/<dataset>/pipeline/`` (what
:meth:`ipoke.sampling.PokePipeline.load` reads) and ``metrics/train_cinn.json`` (test NLL in bits per
dimension). Multi-GPU DDP reruns this command in its extra processes; they train without an MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke.config import load_section
from ipoke.stage import dataset_name, main_guard, run_stage
from ipoke.train.cinn import CINNPaths, TrainCINNParams, train_cinn
from ipoke.train.trainer import active_profile, is_ddp_worker, training_profile


def paths(dataset: str) -> CINNPaths:
    models = Path("models") / dataset
    return CINNPaths(
        shards=Path("data/shards") / dataset,
        ae=models / "ae",
        encoders=models / "encoders",
        checkpoints=models / "cinn",
        pipeline=models / "pipeline",
    )


def main() -> None:
    profile_name = active_profile()
    if is_ddp_worker():
        dataset = dataset_name()
        profile = training_profile(load_section("train_cinn", TrainCINNParams))
        train_cinn(profile, paths(dataset), dataset, profile_name)
        return
    with run_stage("train_cinn", TrainCINNParams) as st:
        profile = training_profile(st.params)
        mlflow.set_tag("ipoke.profile", profile_name)
        out = paths(st.dataset)
        metrics = train_cinn(profile, out, st.dataset, profile_name, run_id=mlflow.active_run().info.run_id)
        st.write_metrics("metrics/train_cinn.json", {"profile": profile_name, **metrics})
        st.log_artifact(out.pipeline / "config.json", "pipeline")
        print(f"test NLL {metrics['test_nll_bpd']:.4f} bits/dim; pipeline written to {out.pipeline}")


if __name__ == "__main__":
    main_guard(main)
