"""Throughput of the data stages on a small synthetic dataset generated on the fly.

Measures decode frames/s (decord, batched, resize to the stored size), flow pairs/s and end-point error
against the synthetic GT per method (DIS and Farneback, direct and chained; ptlflow RAFT when its weights
are available, else recorded as not computed), shard write MB/s, and loader clips/s with 0 and 2 workers.
Prints the numbers and writes bench/results/data.json.

    uv run python bench/bench_data.py [--objects 4] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from ipoke import atomic
from ipoke.data import manifest
from ipoke.data.flow import INDEX_NAME, FlowParams, estimate
from ipoke.data.frames import FramesParams, extract, read_index
from ipoke.data.loader import LoaderParams, make_loader
from ipoke.data.shards import ShardParams, write_index, write_shards
from ipoke.errors import IpokeError

RESULTS = Path(__file__).parent / "results" / "data.json"
METHODS = {  # label -> (method, chain, ckpt)
    "dis": ("dis", False, None),
    "dis_chain": ("dis", True, None),
    "farneback": ("farneback", False, None),
    "farneback_chain": ("farneback", True, None),
    "raft_things": ("raft", False, "things"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4, help="synthetic instances (one video each)")
    parser.add_argument("--size", type=int, default=64, help="stored frame size")
    return parser.parse_args()


def bench_flow(frames_dir: Path, index: pd.DataFrame, raw: Path, root: Path) -> dict:
    out: dict[str, dict] = {}
    for label, (method, chain, ckpt) in METHODS.items():
        flow_dir = root / f"flow-{label}"
        flow_dir.mkdir()
        params = FlowParams(method=method, ckpt=ckpt, chain=chain, epe_methods={})
        try:
            result = estimate(frames_dir, index, raw, flow_dir, params)
        except IpokeError as err:
            out[label] = {"not_computed": str(err)}
            print(f"flow {label:16s} not computed: {err}")
            continue
        out[label] = {
            "pairs": result.pairs,
            "pairs_per_s": result.pairs / result.seconds,
            "epe": float(result.index["epe"].mean()),
            "epe_fg": float(result.index["epe_fg"].mean()),
        }
        r = out[label]
        print(f"flow {label:16s} {r['pairs_per_s']:8.1f} pairs/s  EPE {r['epe']:.3f} obj {r['epe_fg']:.3f}")
    return out


def bench_loader(shard_dir: Path, workers: int, epochs: int = 3) -> float:
    params = LoaderParams(batch_size=8, workers=workers, resampled=False, shuffle_buffer=64)
    loader = make_loader(shard_dir, "train", params)
    clips, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            clips += len(batch["clip_id"])
    return clips / (time.perf_counter() - t0)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("IPOKE_NO_PROGRESS", "1")
    from ipoke.data.sources.synthetic import Params
    from ipoke.data.synthetic.world import generate

    results: dict = {"size": args.size, "objects": args.objects}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = root / "raw"
        manifest.write(generate(Params(n_objects=args.objects, videos_per_object=1, workers=1), raw), raw)
        frames_dir = root / "frames"
        frames_dir.mkdir()
        t0 = time.perf_counter()
        extract(raw, frames_dir, FramesParams(size=args.size, step={"synthetic": 1}), "synthetic")
        seconds = time.perf_counter() - t0
        source_frames = int(read_index(frames_dir)["src_frames"].sum())
        results["decode_frames_per_s"] = source_frames / seconds
        rate = results["decode_frames_per_s"]
        print(f"decode   {rate:8.1f} frames/s ({source_frames} frames to {args.size} px)")
        # the pipeline's clips use step 2 on synthetic data
        frames_dir = root / "frames-step2"
        frames_dir.mkdir()
        extract(raw, frames_dir, FramesParams(size=args.size), "synthetic")
        index = read_index(frames_dir)
        results["flow"] = bench_flow(frames_dir, index, raw, root)
        flow_dir = root / "flow-dis_chain"
        shard_dir = root / "shards"
        shard_dir.mkdir()
        shards = write_shards(frames_dir, index, flow_dir, pd.read_parquet(flow_dir / INDEX_NAME), raw,
                              str(shard_dir), ShardParams())
        write_index(shards.clips, shard_dir, None)
        results["shard_write_mb_per_s"] = shards.bytes_written / 2**20 / shards.seconds
        results["shard_clips"] = len(shards.clips)
        print(f"shard    {results['shard_write_mb_per_s']:8.1f} MB/s ({len(shards.clips)} clips)")
        for workers in (0, 2):
            rate = bench_loader(shard_dir, workers)
            results[f"loader_clips_per_s_workers{workers}"] = rate
            print(f"loader   {rate:8.1f} clips/s with {workers} workers")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(RESULTS, json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
