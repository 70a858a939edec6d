"""The baselines in the evaluation: scored beside iPOKE under one protocol, in the tables, grids and stage.

Uses the hand-made test shards and the ``PokePipeline`` test double of :mod:`test_evaluation`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_baselines import TINY_CVAE, TINY_II2V
from test_evaluation import (
    PROJECT_PARAMS,
    ShiftDouble,
    make_project,
    small_profile,
    unavailable,
    write_test_shards,
)

from ipoke.evaluation import protocol, tables
from ipoke.evaluation.methods import hao_method, poke_method
from ipoke.evaluation.outputs import build_record, write_outputs
from ipoke.evaluation.report import build_report
from ipoke.models.baselines.cvae import CVAE
from ipoke.models.baselines.hao import HaoConfig
from ipoke.models.baselines.ii2v import II2V
from ipoke.models.baselines.io import save_model


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_test_shards(tmp_path_factory.mktemp("shards") / "synthetic")


@pytest.fixture(scope="module")
def results(shards):
    """iPOKE as the poke-following double, a stochastic double as the cVAE, and Hao's warping."""
    stochastic = poke_method("cvae", "iPOKE cVAE", "a double", True, ShiftDouble(), torch.device("cpu"))
    methods = [stochastic, hao_method(HaoConfig())]
    profile = small_profile()
    lpips, i3d = unavailable("lpips"), unavailable("fvd")
    return protocol.evaluate(ShiftDouble(), shards, profile, "synthetic", lpips, i3d, baselines=methods)


def test_each_baseline_is_scored_on_the_same_clips(results):
    cvae, hao = results.baselines["cvae"], results.baselines["hao"]
    assert cvae.psnr.shape == (6, 3) and cvae.div_mse.shape == (6,)
    assert hao.psnr.shape == hao.ssim.shape == (6, 1) and hao.div_mse is None  # deterministic: one sample
    for scores in (cvae, hao):
        assert scores.control_error.shape == scores.keypoint_error.shape == (6,)
    # The cVAE double is iPOKE's double, sampled with the same seeds: the same numbers.
    assert np.allclose(cvae.psnr, results.psnr)
    assert np.allclose(cvae.control_error, results.control_error["ipoke"])
    # Hao's warping follows the real clip's trajectories to the poke's target.
    assert hao.control_error.mean() < 0.5 * results.control_error["no_poke"].mean()
    assert hao.psnr.mean() > 25


def test_the_tables_grids_and_report_show_the_baselines_beside_ipoke(results, tmp_path):
    record = build_record(results, "demo", protocol.__doc__)
    summary = record["metrics"]["baselines"]
    assert summary["hao"]["div_mse_e4"] is None and summary["cvae"]["div_mse_e4"] > 0
    assert summary["cvae"]["fvd"]["status"] == "not computed"
    by_key = {t.key: t for t in tables.all_tables(record)}
    labels = {key: [row.label for row in table.rows if row.this_run] for key, table in by_key.items()}
    assert labels["table1"][1:] == ["this run: Hao et al. (synthetic, 32 px, 6 clips)"]
    assert labels["table2"] == labels["table1"][:1]
    assert labels["table3"][1:] == ["this run: iPOKE cVAE (synthetic, 32 px, 6 clips)"]
    control = [row.label for row in by_key["control"].rows]
    assert control[1:3] == ["a double", summary["hao"]["label"]] and len(control) == 6
    hao_row = next(r for r in by_key["control"].rows if r.label == summary["hao"]["label"])
    assert hao_row.cells[0] == tables.cell(summary["hao"]["control_error_px"])

    record = write_outputs(results, tmp_path, "demo", protocol.__doc__, fps=5.0)
    grid = record["grids"][0]
    samples = ["sample 1", "sample 2", "sample 3"]
    assert grid["columns"] == ["ground truth", *samples, "no poke", "iPOKE cVAE", "Hao et al."]
    page = build_report(tmp_path)
    assert "Baselines on the same clips, control error: iPOKE cVAE" in page and "Hao et al." in page


PARAMS_WITH_BASELINES = PROJECT_PARAMS.replace(
    "ambiguity: {n_examples: 1, n_samples: 2}}",
    "ambiguity: {n_examples: 1, n_samples: 2}, baselines: [ii2v, hao, cvae]}",
)


def test_the_evaluate_stage_loads_the_trained_baselines_and_logs_them(tmp_path, monkeypatch):
    import mlflow

    from ipoke.tracking import pipeline_run
    from stages import evaluate as stage

    root = make_project(tmp_path / "project", monkeypatch)
    (root / "params.yaml").write_text(PARAMS_WITH_BASELINES)
    save_model(II2V(TINY_II2V), TINY_II2V, root / "models" / "synthetic" / "ii2v", "ii2v")
    save_model(CVAE(TINY_CVAE), TINY_CVAE, root / "models" / "synthetic" / "cvae", "cvae")
    with pipeline_run("synthetic", {}, name="test") as parent:
        stage.main()

    metrics = json.loads(open("metrics/evaluate.json").read())
    assert set(metrics["baselines"]) == {"ii2v", "hao", "cvae"}
    assert all(isinstance(metrics["baselines"][k]["control_error_px"], float) for k in metrics["baselines"])
    parent_metrics = mlflow.MlflowClient().get_run(parent).data.metrics
    assert parent_metrics["eval.baselines.ii2v.psnr"] == metrics["baselines"]["ii2v"]["psnr"]
    assert "eval.baselines.ii2v.div_mse_e4" not in parent_metrics  # deterministic: no diversity
    assert "eval.baselines.cvae.div_mse_e4" in parent_metrics
