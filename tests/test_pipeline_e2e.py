"""The whole DAG on a tiny config: `ipoke repro` in a fresh project, then a no-op rerun.

This is the integration test of the product: every stage runs for real (synthetic world -> frames -> flow ->
shards -> data quality, AE -> encoders -> cINN, and the II2V and cVAE baselines -> evaluation -> report),
each logs a child MLflow run under one parent run, and the trained pipeline it leaves behind samples videos.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

FAST_TRAINER = {
    "max_steps": 4,
    "val_every_n_steps": 2,
    "val_batches": 1,
    "log_every_n_steps": 1,
    "checkpoint_every_n_steps": 2,
}
TINY_LOADER = {"batch_size": 2, "workers": 0, "shuffle_buffer": 8}
TINY = {
    "download": {
        # thickness 1.0: the default's thicker parts do not pass the layout checks at 64 px
        "synthetic": {
            "n_objects": 4,
            "videos_per_object": 1,
            "n_frames": 28,
            "resolution": 64,
            "workers": 1,
            "thickness": 1.0,
        }
    },
    "extract_frames": {"workers": 1},
    "estimate_flow": {"inference_size": None, "epe_max_pairs": 4},
    "shard": {"min_motion_px": 0.0},  # four short videos: keep every clip
    "train_ae": {"demo": {"trainer": FAST_TRAINER, "loader": TINY_LOADER, "eval_batches": 1, "gif_clips": 1}},
    "train_encoders": {"demo": {"trainer": FAST_TRAINER, "loader": TINY_LOADER, "eval_batches": 1}},
    "train_cinn": {
        "demo": {
            "trainer": FAST_TRAINER,
            "loader": TINY_LOADER,
            "eval_batches": 1,
            "gif_clips": 1,
            "gif_samples": 2,
            "test_frames": 2,
        }
    },
    "train_ii2v": {
        "demo": {"trainer": FAST_TRAINER, "pretrain_steps": 2, "loader": TINY_LOADER, "eval_batches": 1}
    },
    "train_cvae": {
        "demo": {"trainer": FAST_TRAINER, "loader": TINY_LOADER, "eval_batches": 1, "gif_clips": 1}
    },
    "evaluate": {
        "demo": {
            "n_clips": 2,
            "n_samples": 2,
            "batch_size": 2,
            "grid_clips": 1,
            "kinematics": {"n_images": 1, "n_pokes": 4},
            "ambiguity": {"n_examples": 1, "n_samples": 2},
        }
    },
}
STAGES = [
    "download",
    "extract_frames",
    "estimate_flow",
    "shard",
    "data_quality",
    "train_ae",
    "train_encoders",
    "train_cinn",
    "train_ii2v",
    "train_cvae",
    "evaluate",
    "report",
]


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    for name in ("ipoke", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    params["estimate_flow"]["epe_methods"] = {"dis": None}  # no learned-flow weights offline
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    return root


def repro(project: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"IPOKE_NO_PROGRESS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    env.pop("IPOKE_MLFLOW_PARENT_RUN_ID", None)
    cmd = [str(Path(sys.executable).with_name("ipoke")), "repro"]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1500)


def test_whole_dag_runs_tracks_and_samples(project):
    done = repro(project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in done.stdout, f"stage {stage} did not run"

    metrics = {p.stem: json.loads(p.read_text()) for p in (project / "metrics").glob("*.json")}
    assert {
        "download",
        "extract_frames",
        "estimate_flow",
        "shard",
        "train_ae",
        "train_cinn",
        "train_ii2v",
        "train_cvae",
        "evaluate",
    } <= set(metrics)
    assert metrics["download"]["videos"] == 4 and metrics["download"]["skipped"] == 0
    assert np.isfinite(metrics["train_cinn"]["test_nll_bpd"])
    # the pretrained I3D and LPIPS weights (make setup) turn the perceptual metrics into numbers
    evaluated = {k: metrics["evaluate"][k] for k in ("fvd", "lpips", "div_lpips_e4")}
    assert all(isinstance(v, float) and np.isfinite(v) for v in evaluated.values()), evaluated
    assert set(metrics["evaluate"]["baselines"]) == {"ii2v", "hao", "cvae"}
    assert (project / "reports" / "synthetic" / "index.html").stat().st_size > 10_000
    assert "<h2>Data</h2>" in (project / "reports" / "synthetic" / "index.html").read_text()

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["ipoke-synthetic"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("ipoke.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = {
        r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
    }
    assert children == set(STAGES)

    from ipoke.sampling import PokePipeline

    pipe = PokePipeline.load(project / "models" / "synthetic" / "pipeline", device="cpu")
    image = pipe.test_frames()[0][1]
    videos = pipe.sample(image, [(32.0, 30.0, 6.0, -4.0)], n=2, seed=3)
    assert videos.shape == (2, pipe.n_frames, pipe.size, pipe.size, 3) and videos.dtype == np.uint8
    np.testing.assert_array_equal(videos, pipe.sample(image, [(32.0, 30.0, 6.0, -4.0)], n=2, seed=3))

    again = repro(project)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "Running stage" not in again.stdout
