"""The data_quality stage: numbers on the loader's pokes, still clips and skipped videos, and the sheet."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_shards import synthetic_pipeline

from ipoke.data.loader import LoaderParams
from ipoke.data.quality import (
    QualityParams,
    measured_clips,
    per_clip,
    reason_kind,
    skipped_by_reason,
    summary,
)
from ipoke.data.quality_sheet import html_section, sheet


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return synthetic_pipeline(tmp_path_factory)


def test_reasons_are_counted_by_kind(tmp_path):
    pd.DataFrame({"path": ["a", "b", "c"], "reason": [
        "decode errors: in 12 of 30 frames (first: x)", "empty file: 0 bytes", "empty file: 0 bytes",
    ]}).to_csv(tmp_path / "one.csv", index=False)
    pd.DataFrame({"video_id": ["d"], "path": ["d"], "reason": ["too short: 3 frames after step 2 (need 11)"]}
                 ).to_csv(tmp_path / "two.csv", index=False)
    assert skipped_by_reason(tmp_path / "one.csv", tmp_path / "two.csv", tmp_path / "missing.csv") == {
        "decode errors": 1, "empty file": 2, "too short": 1,
    }
    assert reason_kind("same name as /x/a.mp4 (videos/a.mp4)") == "same name as /x/a.mp4"


def test_numbers_and_sheet_of_the_synthetic_shards(dirs):
    params = QualityParams(max_clips=6, draws=3, sheet_clips=3)
    loader = LoaderParams(seed=0)
    views = measured_clips(dirs["shards"], loader, params)
    assert 3 <= len(views) <= 6 and all(len(v.pokes) == 3 for v in views)
    clips = per_clip(views, params, loader.pokes.patch_size)
    record = summary(clips, dirs["raw"], dirs["frames"])
    m = record["metrics"]
    print(json.dumps(m))
    assert m["clips"] == len(views) and m["skipped_videos"] == 0
    assert m["pokes_on_changing"] >= 0.9  # the loader's evidence keeps them there
    assert m["background_pokes_on_changing"] in (None, 0.0)
    assert m["median_poke_px"] > 0 and 0 <= m["still_clips"] <= 1
    image = sheet(views, params.sheet_clips)
    assert image.dtype == np.uint8 and image.shape[1] == 5 * 64 * 3 and image.shape[0] > 3 * 64 * 3


def test_stage_writes_sheet_metrics_and_logs_to_mlflow(dirs, tmp_path, monkeypatch):
    from stages import data_quality

    project = tmp_path / "project"
    for kind in ("raw", "frames", "shards"):
        (project / "data" / kind).mkdir(parents=True)
        (project / "data" / kind / "synthetic").symlink_to(dirs[kind])
    params = {"dataset": "synthetic", "loader": {"seed": 0},
              "data_quality": {"max_clips": 4, "draws": 2, "sheet_clips": 2}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    data_quality.main()
    out = project / "outputs" / "synthetic" / "data_quality"
    assert Image.open(out / "sheet.png").size[0] == 5 * 64 * 3
    metrics = json.loads((project / "metrics" / "data_quality.json").read_text())
    assert metrics == json.loads((out / "quality.json").read_text())["metrics"]
    assert len(pd.read_csv(out / "clips.csv")) == metrics["clips"]
    stage_runs = "tags.`ipoke.stage` = 'data_quality'"
    run = mlflow.search_runs(experiment_names=["ipoke-synthetic"], filter_string=stage_runs)
    assert run.iloc[0]["metrics.pokes_on_changing"] == metrics["pokes_on_changing"]
    section = html_section(out)
    assert section.startswith("<h2>Data</h2>") and "data:image/png;base64," in section
    assert f"median poke length <b>{round(metrics['median_poke_px'], 2)} px</b>" in section
