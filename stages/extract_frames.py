"""DVC stage ``extract_frames``: decode every manifest video into stored-resolution uint8 frames.

Deps: ``data/raw/<dataset>/``. Outs: ``data/frames/<dataset>/`` (``<video>.npy``, ``index.parquet``,
``skipped.csv``; see :mod:`ipoke.data.frames`) and ``metrics/extract_frames.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ipoke.atomic import atomic_path
from ipoke.data.frames import SKIPPED_NAME, FramesParams, extract
from ipoke.stage import main_guard, progress, run_stage


def main() -> None:
    with run_stage("extract_frames", FramesParams) as st:
        raw, out = Path("data/raw") / st.dataset, Path("data/frames") / st.dataset
        t0 = time.perf_counter()
        with atomic_path(out, directory=True) as tmp:
            result = extract(raw, tmp, st.params, st.dataset, progress=progress)
        seconds = time.perf_counter() - t0
        for row in result.skipped.itertuples(index=False):
            print(f"skipped {row.path}: {row.reason}")
        index = result.index
        for row in index[index["still"] | (index["note"] != "")].itertuples(index=False):
            still = f"still: only {row.moving_share:.2%} of the pixels change" if row.still else ""
            print(f"note {row.video_id}: {'; '.join(n for n in (still, row.note) if n)}")
        st.write_metrics(
            "metrics/extract_frames.json",
            {
                "videos": len(result.index),
                "videos_still": int(index["still"].sum()),
                "videos_noted": int((index["note"] != "").sum()),
                "skipped": len(result.skipped),
                "frames": result.frames,
            },
        )
        # MLflow only: timings differ between machines and runs
        st.log_metrics({"seconds": seconds, "frames_per_s": result.frames / max(seconds, 1e-9)})
        st.log_artifact(out / SKIPPED_NAME)


if __name__ == "__main__":
    main_guard(main)
