"""DVC stage ``shard``: WebDataset shards per split, one sample per clip, and ``clips.parquet``.

Deps: ``data/frames/<dataset>/``, ``data/flow/<dataset>/``, ``data/raw/<dataset>/`` (GT sidecars). Outs:
``data/shards/<dataset>/`` (``{train,test}-NNNNNN.tar`` unless ``shard.output_url`` sends them to an fsspec
URL, and ``clips.parquet``; see :mod:`ipoke.data.shards`) and ``metrics/shard.json``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipoke.atomic import atomic_path
from ipoke.data.flow import INDEX_NAME as FLOW_INDEX
from ipoke.data.frames import read_index
from ipoke.data.shards import ShardParams, write_index, write_shards
from ipoke.errors import IpokeError
from ipoke.stage import main_guard, progress, run_stage


def main() -> None:
    with run_stage("shard", ShardParams) as st:
        frames_dir, flow_dir = Path("data/frames") / st.dataset, Path("data/flow") / st.dataset
        raw, out = Path("data/raw") / st.dataset, Path("data/shards") / st.dataset
        frames_index = read_index(frames_dir)
        if not (flow_dir / FLOW_INDEX).is_file():
            raise IpokeError(f"{flow_dir / FLOW_INDEX}: no flow index; run the estimate_flow stage first")
        flow_index = pd.read_parquet(flow_dir / FLOW_INDEX)
        with atomic_path(out, directory=True) as tmp:
            base = st.params.output_url or str(tmp)
            result = write_shards(
                frames_dir, frames_index, flow_dir, flow_index, raw, base, st.params, progress
            )
            write_index(result.clips, tmp, st.params.output_url)
        mb = result.bytes_written / 2**20
        clips = result.clips
        st.write_metrics(
            "metrics/shard.json",
            {
                "clips": len(clips),
                "clips_train": int((clips["split"] == "train").sum()),
                "clips_test": int((clips["split"] == "test").sum()),
                "clips_with_gt": int(clips["has_gt"].sum()),
                "clips_dropped_still_train": result.dropped.get("train", 0),
                "clips_dropped_still_test": result.dropped.get("test", 0),
                "shards": sum(len(v) for v in result.shards.values()),
                "megabytes": round(mb, 2),
            },
        )
        st.log_metrics({"write_mb_per_s": round(mb / max(result.seconds, 1e-9), 2)})


if __name__ == "__main__":
    main_guard(main)
