"""The ``download`` stage end to end: ``python -m stages.download`` on a folder of videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from tiny_videos import write_garbage, write_video

from ipoke.data import manifest
from ipoke.data.sources import folder

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store for the module: creating its schema is the slow part of a stage start."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


def run_stage(tmp_path: Path, uri: str, folder_params: dict) -> tuple[subprocess.CompletedProcess, Path]:
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"] = "mine"
    params["download"]["source"] = "folder"
    params["download"]["folder"].update(folder_params)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = os.environ | {
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONPATH": str(REPO),
        "IPOKE_NO_PROGRESS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("IPOKE_MLFLOW_PARENT_RUN_ID", None)
    done = subprocess.run(
        [sys.executable, "-m", "stages.download"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, project


def search_runs(uri: str) -> pd.DataFrame:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=["ipoke-mine"])
    finally:
        mlflow.set_tracking_uri(previous)


def test_stage_on_a_folder_of_videos(tmp_path, tracking_uri):
    videos = tmp_path / "videos"
    lengths = {"lamp/take1.mp4": 25, "lamp/take2.mp4": 30, "fern/a.mp4": 22, "ivy/b.mp4": 21}
    for rel, n in lengths.items():
        write_video(videos / rel, n)
    write_garbage(videos / "corrupt.mp4")
    write_video(videos / "short.mp4", 6)

    done, project = run_stage(
        tmp_path, tracking_uri, {"path": str(videos), "split": {"rule": "by_object_hash"}}
    )
    assert done.returncode == 0, done.stderr

    raw = project / "data" / "raw" / "mine"
    m = manifest.read(raw).set_index("path")
    assert sorted(m.index) == sorted(f"videos/{rel}" for rel in lengths)
    assert m["n_frames"].to_dict() == {f"videos/{rel}": n for rel, n in lengths.items()}
    expected_split = {
        o: "test" if folder.hash_fraction(o) < 0.2 else "train" for o in ("lamp", "fern", "ivy")
    }
    assert all(row.split == expected_split[row.object_id] for row in m.itertuples())
    assert all((raw / p).is_file() for p in m.index)

    skipped = pd.read_csv(raw / "skipped.csv")
    reasons = dict(zip(skipped["path"].map(lambda p: Path(p).name), skipped["reason"], strict=True))
    assert set(reasons) == {"corrupt.mp4", "short.mp4"}
    assert reasons["corrupt.mp4"].startswith("not a video: no video container signature")
    # a folder dataset keeps every frame (extract_frames.default_step: 1): one clip is 11 frames
    step1 = "a clip is x0 + 10 frames at frame step 1"
    assert reasons["short.mp4"] == f"too short: 6 frames, needs at least 11 ({step1})"
    assert "skipped" in done.stdout and "corrupt.mp4" in done.stdout

    metrics = json.loads((project / "metrics" / "download.json").read_text())
    n_test = sum(expected_split[Path(rel).parent.name] == "test" for rel in lengths)
    assert metrics == {
        "videos": 4,
        "videos_train": 4 - n_test,
        "videos_test": n_test,
        "frames": sum(lengths.values()),
        "skipped": 2,
    }

    runs = search_runs(tracking_uri)
    runs = runs[runs["params.download.folder.path"] == str(videos)]
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["tags.ipoke.stage"] == "download"
    assert run["params.download.source"] == "folder"
    assert run["params.download.folder.path"] == str(videos)
    assert run["params.dataset"] == "mine"
    assert run["metrics.videos"] == 4 and run["metrics.skipped"] == 2


def test_stage_without_a_folder_path_stops_with_a_clear_message(tmp_path, tracking_uri):
    done, project = run_stage(tmp_path, tracking_uri, {"path": None})
    assert done.returncode == 2
    assert "download.folder.path is not set" in done.stderr
    assert not (project / "data" / "raw" / "mine").exists()
    assert not (project / "metrics" / "download.json").exists()
