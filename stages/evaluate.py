"""DVC stage ``evaluate``: the paper's evaluation protocol on the trained pipeline and the test shards.

Reads ``evaluate.<profile>`` (see :mod:`ipoke.evaluation.protocol`) and the training poke simulation
``loader.pokes``. Deps: ``models/<dataset>/pipeline/``, the trained baselines ``models/<dataset>/ii2v/``
and ``models/<dataset>/cvae/`` (those named in ``baselines`` are scored), ``data/shards/<dataset>/``.
Outs: ``outputs/<dataset>/eval/`` (layout in :mod:`ipoke.evaluation.outputs`), ``metrics/evaluate.json``
and the plot data ``plots/<dataset>/ambiguity.csv``. Everything is logged to the stage's MLflow run; tables,
figures, videos and headline metrics also to the pipeline's parent run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from ipoke import atomic
from ipoke.config import load_section
from ipoke.data.loader import SharedLoaderParams
from ipoke.errors import IpokeError
from ipoke.evaluation import protocol, tables
from ipoke.evaluation.methods import load_baselines
from ipoke.evaluation.outputs import ambiguity_csv, write_outputs
from ipoke.evaluation.parent_run import log_to_parent_run, numeric
from ipoke.metrics.fvd import load_i3d
from ipoke.metrics.perceptual import load_lpips
from ipoke.stage import main_guard, run_stage
from ipoke.train.trainer import active_profile


def main() -> None:
    profile_name = active_profile()
    with run_stage("evaluate", protocol.EvaluateParams) as st:
        profile = getattr(st.params, profile_name)
        mlflow.set_tag("ipoke.profile", profile_name)
        model_dir, shards = Path("models") / st.dataset / "pipeline", Path("data/shards") / st.dataset
        out, plot = Path("outputs") / st.dataset / "eval", Path("plots") / st.dataset / "ambiguity.csv"
        if not model_dir.is_dir():
            raise IpokeError(f"{model_dir}: no trained pipeline; run the train_cinn stage first")
        from ipoke.sampling import PokePipeline

        pipeline = PokePipeline.load(model_dir, device=profile.device)
        lpips = load_lpips(pipeline.device, net=profile.lpips_net)
        i3d = load_i3d(device=pipeline.device)
        pokes = load_section("loader", SharedLoaderParams).pokes  # the pokes the model was trained with
        models = Path("models") / st.dataset
        baselines = load_baselines(profile.baselines, models, profile.hao, pipeline.device)
        results = protocol.evaluate(pipeline, shards, profile, st.dataset, lpips, i3d, pokes, baselines)
        with atomic.atomic_path(out, directory=True) as tmp:
            record = write_outputs(results, tmp, profile_name, protocol.__doc__, profile.grid_fps)
        atomic.write_text(plot, ambiguity_csv(results))
        metrics = {"profile": profile_name, **record["metrics"]}
        st.write_metrics("metrics/evaluate.json", metrics)
        # timings go to MLflow only: the metrics file is in git
        st.log_metrics({"seconds": record["seconds"]})
        st.log_metrics({k: v for k, v in numeric(metrics).items() if "." in k})  # nested ones
        st.log_artifact(out, "eval")
        shared = [
            out / "tables.md",
            out / "tables.html",
            out / "results.json",
            out / "figures",
            out / "grids",
        ]
        log_to_parent_run(shared, "evaluate", numeric(record["metrics"], "eval."))
        print(tables.markdown(record))


if __name__ == "__main__":
    main_guard(main)
