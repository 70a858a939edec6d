"""DVC stage ``download``: put a dataset's videos under data/raw/<dataset>/ with a manifest.

Outs: ``data/raw/<dataset>/`` (videos, ``manifest.parquet``, ``skipped.csv``) and
``metrics/download.json`` (counts). Reads ``extract_frames.step`` too: a video needs the frames of one
clip at its dataset's step.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipoke.atomic import atomic_path
from ipoke.config import load_section
from ipoke.data import manifest, sources
from ipoke.data.frames import FramesParams
from ipoke.data.sources.params import DownloadParams
from ipoke.data.synthetic.kernels import restart_with_pinned_kernels
from ipoke.stage import main_guard, run_stage


def main() -> None:
    if load_section("download", DownloadParams).source == "synthetic":
        restart_with_pinned_kernels("stages.download")  # the same bytes on every CPU
    with run_stage("download", DownloadParams) as st:
        out = Path("data/raw") / st.dataset
        source = sources.load(st.params.source)
        frame_step = load_section("extract_frames", FramesParams).step_for(st.dataset)
        with atomic_path(out, directory=True) as tmp:
            result = source.build(st.params, tmp, frame_step=frame_step)
            manifest.write(result.manifest, tmp)
            skipped = pd.DataFrame([vars(s) for s in result.skipped], columns=["path", "reason"])
            skipped.to_csv(tmp / "skipped.csv", index=False)
        m = result.manifest
        for s in result.skipped:
            print(f"skipped {s.path}: {s.reason}")
        st.write_metrics(
            "metrics/download.json",
            {
                "videos": len(m),
                "videos_train": int((m["split"] == "train").sum()),
                "videos_test": int((m["split"] == "test").sum()),
                "frames": int(m["n_frames"].sum()),
                "skipped": len(result.skipped),
            },
        )
        st.log_artifact(out / "skipped.csv")


if __name__ == "__main__":
    main_guard(main)
