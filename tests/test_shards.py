"""Sharding: what is written is what loads back, size caps, determinism, fsspec outputs, GT extras.

``synthetic_pipeline`` (also used by the flow, poke and loader tests) runs extract -> flow -> shard on a
tiny synthetic dataset once per test session.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_frames import extract_dataset

from ipoke.data import manifest
from ipoke.data.flow import INDEX_NAME, FlowParams, estimate
from ipoke.data.frames import FramesParams, extract, read_index
from ipoke.data.loader import LoaderParams, make_loader
from ipoke.data.shards import CLIPS_NAME, ShardParams, npy_load, shard_urls, write_index, write_shards
from ipoke.errors import IpokeError


def run_pipeline(raw: Path, root: Path, frames: FramesParams, flow: FlowParams, shard: ShardParams, name):
    frames_dir, flow_dir, shard_dir = root / "frames", root / "flow", root / "shards"
    for d in (frames_dir, flow_dir, shard_dir):
        d.mkdir(parents=True)
    extract(raw, frames_dir, frames, name)
    index = read_index(frames_dir)
    estimate(frames_dir, index, raw, flow_dir, flow)
    result = write_shards(frames_dir, index, flow_dir, pd.read_parquet(flow_dir / INDEX_NAME), raw,
                          str(shard_dir), shard)
    write_index(result.clips, shard_dir, None)
    return frames_dir, flow_dir, shard_dir


def synthetic_pipeline(tmp_path_factory) -> dict[str, Path]:
    """Three 128 px synthetic videos of 32 frames -> 64 px frames (step 2), DIS flow, shards (cached)."""
    root = tmp_path_factory.getbasetemp() / "synthetic_pipeline"
    if not (root / "shards" / CLIPS_NAME).is_file():
        from ipoke.data.sources.synthetic import Params
        from ipoke.data.synthetic.world import generate

        raw = root / "raw"
        table = generate(Params(n_objects=3, videos_per_object=1, n_frames=32, workers=1, seed=3), raw)
        manifest.write(table, raw)
        run_pipeline(raw, root, FramesParams(size=64), FlowParams(clip_stride=2, chain=True, epe_methods={}),
                     ShardParams(max_shard_mb=1.0), "synthetic")
    return {k: root / k for k in ("raw", "frames", "flow", "shards")}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Moving-square videos (no GT), sharded with a small size cap."""
    root = tmp_path_factory.mktemp("toy")
    raw, _, _ = extract_dataset(root / "src", size=32, step=1)
    params = FramesParams(size=32, step={"toy": 1}), FlowParams(clip_stride=2, epe_methods={})
    dirs = run_pipeline(raw, root, *params,
                        ShardParams(max_shard_mb=0.1, shuffle_seed=5), "toy")
    return raw, *dirs


def reshard(toy, base_url: str, params: ShardParams):
    raw, frames_dir, flow_dir, _ = toy
    flow_index = pd.read_parquet(flow_dir / INDEX_NAME)
    return write_shards(frames_dir, read_index(frames_dir), flow_dir, flow_index, raw, base_url, params)


def read_tar(path: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def test_shards_hold_exactly_the_stored_frames_and_flow(toy):
    _, frames_dir, flow_dir, shard_dir = toy
    clips = pd.read_parquet(shard_dir / CLIPS_NAME)
    flow_index = pd.read_parquet(flow_dir / INDEX_NAME).set_index("clip_id")
    frames_index = read_index(frames_dir).set_index("video_id")
    assert len(clips) == len(flow_index) == 2 * 7  # 24 frames, stride 2: starts 0..12
    seen = 0
    for shard in sorted(shard_dir.glob("*.tar")):
        for sample in read_tar(shard).values():
            meta = json.loads(sample["meta.json"])
            clip = flow_index.loc[meta["clip_id"]]
            video = np.load(frames_dir / frames_index.loc[meta["video_id"], "file"])
            clip_frames = video[clip["start"] : clip["end"] + 1]
            np.testing.assert_array_equal(npy_load(sample["frames.npy"]), clip_frames)
            flow = np.load(flow_dir / clip["file"])[clip["row"]]
            np.testing.assert_array_equal(npy_load(sample["flow.npy"]), flow)
            assert npy_load(sample["flow.npy"]).dtype == np.float16
            assert shard.name.startswith(meta["split"]) and meta["end"] - meta["start"] == 10
            assert "gt_flow.npy" not in sample
            seen += 1
    assert seen == len(clips)


def test_shards_are_size_capped_deterministic_and_indexed(toy, tmp_path):
    shard_dir = toy[3]
    names = sorted(p.name for p in shard_dir.glob("*.tar"))
    # a sample is ~40 KB: two per 0.1 MB shard, so 7 train clips need 4 shards
    assert names == [*(f"test-{i:06d}.tar" for i in range(4)), *(f"train-{i:06d}.tar" for i in range(4))]
    for p in shard_dir.glob("*.tar"):
        assert p.stat().st_size <= 0.1 * 2**20 + 10_240  # plus the tar stream's final record padding
    again = tmp_path / "again"
    again.mkdir()
    result = reshard(toy, str(again), ShardParams(max_shard_mb=0.1, shuffle_seed=5))
    for name in names:
        assert (again / name).read_bytes() == (shard_dir / name).read_bytes()
    clips = pd.read_parquet(shard_dir / CLIPS_NAME)
    pd.testing.assert_frame_equal(clips.drop(columns="base_url"), result.clips)
    assert shard_urls(shard_dir, "test") == [str(shard_dir / f"test-{i:06d}.tar") for i in range(4)]
    assert clips["clip_id"].is_unique and clips["key"].is_unique


def test_shards_written_to_an_fsspec_url_load_back(toy, tmp_path):
    url = "memory://bucket/toy"
    result = reshard(toy, url, ShardParams(shuffle_seed=None))
    write_index(result.clips, tmp_path, url)
    assert result.shards == {"test": ["test-000000.tar"], "train": ["train-000000.tar"]}
    urls = shard_urls(tmp_path, "train")
    assert urls == [f"{url}/train-000000.tar"]
    batch = next(iter(make_loader(tmp_path, "test", LoaderParams(batch_size=64, workers=0))))
    assert sorted(batch["clip_id"]) == sorted(result.clips.query("split == 'test'")["clip_id"])


def test_synthetic_samples_carry_ground_truth_at_stored_resolution(tmp_path_factory):
    dirs = synthetic_pipeline(tmp_path_factory)
    clips = pd.read_parquet(dirs["shards"] / CLIPS_NAME)
    assert clips["has_gt"].all()
    from ipoke.data.synthetic.groundtruth import load_gt

    table = manifest.read(dirs["raw"]).set_index("video_id")
    sample = next(iter(read_tar(sorted(dirs["shards"].glob("train-*.tar"))[0]).values()))
    meta = json.loads(sample["meta.json"])
    gt = load_gt(dirs["raw"] / table.loc[meta["video_id"], "gt_path"])
    gt_flow, mask = npy_load(sample["gt_flow.npy"]), npy_load(sample["mask.npy"])
    assert gt_flow.shape == (2, 64, 64) and gt_flow.dtype == np.float16 and mask.dtype == np.uint8
    full = gt.flow(meta["raw_start"], meta["raw_end"])  # 128 px -> 64 px: displacements halve
    np.testing.assert_allclose(gt_flow.astype(np.float32).sum() * 4, full.sum() / 2, rtol=0.02, atol=1.0)
    np.testing.assert_array_equal(mask, gt.masks[meta["raw_start"]][::2, ::2])
    keypoints = npy_load(sample["keypoints.npy"])
    assert keypoints.shape == (11, gt.keypoints.shape[1], 2)
    np.testing.assert_allclose(keypoints[1], (gt.keypoints[meta["raw_start"] + 2] + 0.5) / 2 - 0.5, atol=1e-4)
    for poke in json.loads(sample["pokes.json"]):  # recorded pokes overlapping the clip, in clip frames
        assert poke["frame_end"] >= 0 and poke["frame_start"] <= 10
        assert 0 <= poke["x"] < 64 and 0 <= poke["y"] < 64


def test_clips_below_the_motion_threshold_are_left_out_and_counted(toy, tmp_path):
    raw, frames_dir, flow_dir, _ = toy
    flow_index = pd.read_parquet(flow_dir / INDEX_NAME)
    threshold = float(flow_index["mag_p99"].median())
    result = reshard(toy, str(tmp_path), ShardParams(min_motion_px=threshold))
    moving = flow_index[flow_index["mag_p99"] >= threshold]
    assert sorted(result.clips["clip_id"]) == sorted(moving["clip_id"])
    for split, group in flow_index.groupby("split"):
        assert result.dropped[split] == int((group["mag_p99"] < threshold).sum())
    assert (result.clips["mag_p99"] >= threshold).all()
    with pytest.raises(IpokeError, match="min_motion_px"):
        reshard(toy, str(tmp_path / "none"), ShardParams(min_motion_px=1e6))
