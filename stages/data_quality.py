"""DVC stage ``data_quality``: a picture of the dataset after sharding, in numbers and one PNG sheet.

Deps: ``data/shards/<dataset>/`` and the skip lists and frames index of ``data/raw/<dataset>/`` and
``data/frames/<dataset>/``; reads ``loader`` (the pokes are the loader's) besides its own section. Outs:
``outputs/<dataset>/data_quality/`` (``sheet.png``, ``quality.json``, ``clips.csv``; see
:mod:`ipoke.data.quality`) and ``metrics/data_quality.json``; all of it is logged to MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from ipoke import atomic
from ipoke.config import load_section
from ipoke.data.loader import SharedLoaderParams
from ipoke.data.quality import QualityParams, measured_clips, per_clip, summary
from ipoke.data.quality_sheet import sheet
from ipoke.stage import main_guard, run_stage


def main() -> None:
    with run_stage("data_quality", QualityParams) as st:
        loader = load_section("loader", SharedLoaderParams)
        shards, out = Path("data/shards") / st.dataset, Path("outputs") / st.dataset / "data_quality"
        views = measured_clips(shards, loader, st.params)
        clips = per_clip(views, st.params, loader.pokes.patch_size)
        record = summary(clips, Path("data/raw") / st.dataset, Path("data/frames") / st.dataset)
        with atomic.atomic_path(out, directory=True) as tmp:
            image = sheet(views, st.params.sheet_clips)
            cv2.imwrite(str(tmp / "sheet.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            (tmp / "quality.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            clips.to_csv(tmp / "clips.csv", index=False)
        st.write_metrics("metrics/data_quality.json", record["metrics"])
        st.log_artifact(out, "data_quality")
        print(f"data_quality: {json.dumps(record['metrics'])}; sheet: {out / 'sheet.png'}")


if __name__ == "__main__":
    main_guard(main)
