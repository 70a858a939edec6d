"""Throughput of the synthetic world: frames generated per second.

Two measurements: end to end (instances, physics, rendering, mp4 encoding and sidecars, with the
configured number of worker processes) on a subset of the default dataset, and a single-process
breakdown per phase. Prints the numbers and writes bench/results/synthetic.json.

    uv run python bench/bench_synthetic.py [--objects 16] [--workers 0] [--breakdown 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from ipoke import atomic
from ipoke.config import parse_section, read_params
from ipoke.data.sources.synthetic import Params
from ipoke.data.synthetic import world
from ipoke.data.synthetic.groundtruth import save_gt
from ipoke.data.synthetic.video import write_mp4

RESULTS = Path(__file__).parent / "results" / "synthetic.json"


def default_params() -> Params:
    raw = (read_params().get("download") or {}).get("synthetic") if Path("params.yaml").is_file() else None
    return parse_section("download.synthetic", raw, Params)


def end_to_end(params: Params) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        table = world.generate(params, Path(tmp))
        seconds = time.perf_counter() - start
    frames = int(table["n_frames"].sum())
    return {"videos": len(table), "frames": frames, "seconds": seconds, "frames_per_s": frames / seconds,
            "workers": params.workers or os.cpu_count()}  # fmt: skip


def breakdown(params: Params, n_videos: int) -> dict:
    """Seconds per video for each phase, in this process."""
    totals = {"instance": 0.0, "physics_and_render": 0.0, "mp4": 0.0, "sidecar": 0.0}
    specs = world.plan(params)[:n_videos]
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            t0 = time.perf_counter()
            scene = world.make_scene(params, spec.object_index, spec.family)
            t1 = time.perf_counter()
            frames, gt = world.render_video(params, spec, scene)
            t2 = time.perf_counter()
            write_mp4(Path(tmp) / "v.mp4", frames, params.fps, params.crf)
            t3 = time.perf_counter()
            save_gt(Path(tmp) / "v.npz", gt)
            t4 = time.perf_counter()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[key] += dt
    per_video = {k: v / len(specs) for k, v in totals.items()}
    return {"videos": len(specs), "seconds_per_video": per_video,
            "frames_per_s_one_process": params.n_frames / sum(per_video.values())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=16, help="instances in the end-to-end run")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: params.yaml)")
    parser.add_argument("--breakdown", type=int, default=6, help="videos in the per-phase breakdown")
    args = parser.parse_args()
    base = default_params()
    params = base.model_copy(
        update={"n_objects": args.objects} | ({"workers": args.workers} if args.workers else {})
    )
    result = {
        "params": params.model_dump(mode="json"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "end_to_end": end_to_end(params),
        "breakdown": breakdown(params, args.breakdown),
    }
    full = base.n_objects * base.videos_per_object * base.n_frames
    result["default_dataset_estimate_s"] = full / result["end_to_end"]["frames_per_s"]
    print(json.dumps(result, indent=2))
    atomic.write_text(RESULTS, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
