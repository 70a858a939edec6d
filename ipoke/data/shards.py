"""WebDataset shards of training clips, one sample per clip, plus a parquet index of the clips.

A sample (key ``<video>_<start>``, every array a ``.npy``):

* ``frames.npy`` uint8 ``(11, H, W, 3)``: x0 and the 10 following stored frames;
* ``flow.npy`` float16 ``(2, H, W)``: estimated start->end flow in stored pixels (see :mod:`ipoke.data.flow`);
* ``meta.json``: clip id, video, object, split, start/end (stored and source frame), flow statistics;
* with synthetic ground truth: ``gt_flow.npy`` float16 ``(2, H, W)``, ``mask.npy`` uint8 ``(H, W)`` (object
  parts of x0, 0 = background), ``keypoints.npy`` float32 ``(11, K, 2)`` and ``pokes.json`` (the recorded
  pokes overlapping the clip, positions in stored pixels and frames relative to the clip).

Clip selection: clips whose start->end flow stays below ``min_motion_px`` at its 99th percentile (nothing
in them moves visibly) are left out of both splits and counted; the authors' data code filters clips by
flow magnitude the same way. ``min_motion_px: 0`` keeps every clip.

Shards are ``{split}-NNNNNN.tar``, closed when the next sample would pass ``max_shard_mb`` or
``max_shard_samples``. Order is deterministic: clips in video order, then permuted with ``shuffle_seed``
(mixing videos across shards helps a small shuffle buffer); tar members carry fixed metadata, so equal
inputs give byte-identical shards. ``output_url`` may be any fsspec URL (``s3://...``); shards go there and
``clips.parquet`` (with the shards' base URL) stays in the local output directory.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
from pydantic import Field

from ipoke.config import Section
from ipoke.data.flow import GroundTruthCache
from ipoke.data.frames import CLIP_LEN, gt_geometry, load_video, safe_name
from ipoke.errors import IpokeError

CLIPS_NAME = "clips.parquet"


class ShardParams(Section):
    max_shard_mb: float = Field(64.0, gt=0, description="close a shard before it passes this size")
    max_shard_samples: int = Field(10_000, ge=1, description="close a shard after this many samples")
    shuffle_seed: int | None = Field(0, description="permute clips before writing; null keeps video order")
    output_url: str | None = Field(None, description="fsspec URL for shards; null = data/shards/<dataset>")
    min_motion_px: float = Field(
        0.0, ge=0, description="keep clips whose flow's 99th percentile magnitude reaches this (pixels)"
    )


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class ShardSink:
    """Writes samples to ``{prefix}-NNNNNN.tar`` under ``base_url``, rolling over at the size caps."""

    def __init__(self, base_url: str, prefix: str, max_bytes: int, max_samples: int):
        self.base_url, self.prefix = base_url.rstrip("/"), prefix
        self.max_bytes, self.max_samples = max_bytes, max_samples
        self.names: list[str] = []
        self.bytes_written = 0
        self._file = self._tar = None
        self._size = self._count = 0

    def _open(self) -> None:
        import webdataset as wds

        name = f"{self.prefix}-{len(self.names):06d}.tar"
        self.names.append(name)
        self._file = fsspec.open(f"{self.base_url}/{name}", "wb").open()
        self._tar = wds.TarWriter(self._file, encoder=False, mtime=0.0, user="ipoke", group="ipoke")
        self._size = self._count = 0

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._file.close()
            self._tar = self._file = None

    def write(self, sample: dict) -> str:
        """Write one sample; returns the name of the shard that holds it."""
        size = sum(512 + len(v) for k, v in sample.items() if not k.startswith("__"))
        full = self._count >= self.max_samples or (self._count and self._size + size > self.max_bytes)
        if self._tar is None or full:
            self.close()
            self._open()
        self._tar.write(sample)
        self._size += size
        self._count += 1
        self.bytes_written += size
        return self.names[-1]


def order_clips(clips: pd.DataFrame, seed: int | None) -> pd.DataFrame:
    """Video order, then (if ``seed`` is not None) a fixed permutation."""
    clips = clips.sort_values(["video_order", "start"], kind="stable").reset_index(drop=True)
    if seed is None:
        return clips
    return clips.iloc[np.random.default_rng(seed).permutation(len(clips))].reset_index(drop=True)


def gt_pokes_in_clip(gt, geo, raw_start: int, raw_end: int, step: int) -> list[dict]:
    """Recorded pokes overlapping the clip, in stored pixels, frames counted from x0 in stored frames."""
    out = []
    for p in gt.pokes:
        if p["frame_end"] < raw_start or p["frame_start"] > raw_end:
            continue
        (x, y), (tx, ty) = geo.points(np.array([[p["x"], p["y"]], [p["tx"], p["ty"]]], np.float32))
        out.append({
            "frame_start": (p["frame_start"] - raw_start) / step,
            "frame_end": (p["frame_end"] - raw_start) / step,
            "x": float(x), "y": float(y), "tx": float(tx), "ty": float(ty), "part": int(p["part"]),
        })
    return out


def build_sample(
    clip, vrow: pd.Series, video: np.ndarray, flow: np.ndarray, gts: GroundTruthCache
) -> tuple[dict, bool]:
    """The WebDataset sample of one clip (row of the flow index) and whether it carries GT."""
    frames = np.asarray(video[clip.start : clip.end + 1])
    if len(frames) != CLIP_LEN:
        raise IpokeError(f"clip {clip.clip_id}: {len(frames)} frames stored, expected {CLIP_LEN}")
    meta = {
        "clip_id": clip.clip_id, "video_id": str(vrow["video_id"]), "object_id": str(vrow["object_id"]),
        "split": clip.split, "start": int(clip.start), "end": int(clip.end), "raw_start": int(clip.raw_start),
        "raw_end": int(clip.raw_end), "step": int(vrow["step"]), "fps": float(vrow["fps"]),
        "flow_mag_mean": float(clip.mag_mean), "flow_mag_p95": float(clip.mag_p95),
        "flow_mag_p99": float(clip.mag_p99),
    }
    if "family" in vrow and not pd.isna(vrow["family"]):
        meta["family"] = str(vrow["family"])
    sample = {
        "__key__": f"{safe_name(str(vrow['video_id']))}_{int(clip.start):06d}",
        "frames.npy": npy_bytes(frames),
        "flow.npy": npy_bytes(np.asarray(flow, np.float16)),
    }
    gt = gts.get(vrow)
    if gt is not None:
        geo = gt_geometry(vrow, tuple(gt.size))
        raw_frames = np.arange(clip.raw_start, clip.raw_end + 1, int(vrow["step"]))
        gt_flow, mask = gts.flow_and_mask(vrow, clip.raw_start, clip.raw_end)
        sample["gt_flow.npy"] = npy_bytes(gt_flow.astype(np.float16))
        sample["mask.npy"] = npy_bytes(mask.astype(np.uint8))
        sample["keypoints.npy"] = npy_bytes(geo.points(np.asarray(gt.keypoints)[raw_frames]))
        pokes = gt_pokes_in_clip(gt, geo, clip.raw_start, clip.raw_end, int(vrow["step"]))
        sample["pokes.json"] = json.dumps(pokes).encode()
    sample["meta.json"] = json.dumps(meta, sort_keys=True).encode()
    return sample, gt is not None


@dataclass
class ShardResult:
    clips: pd.DataFrame
    shards: dict[str, list[str]]
    bytes_written: int
    seconds: float
    dropped: dict[str, int]  # clips left out per split (too little motion)


def select_moving(flow_index: pd.DataFrame, min_motion_px: float) -> pd.DataFrame:
    """Clips whose start->end flow reaches ``min_motion_px`` at its 99th percentile magnitude."""
    if min_motion_px <= 0:
        return flow_index
    if "mag_p99" not in flow_index:
        raise IpokeError("the flow index has no mag_p99 column: rerun the estimate_flow stage")
    return flow_index[flow_index["mag_p99"] >= min_motion_px]


def write_shards(
    frames_dir: Path, frames_index: pd.DataFrame, flow_dir: Path, flow_index: pd.DataFrame, raw_dir: Path,
    base_url: str, params: ShardParams, progress: Callable[..., Iterable] | None = None,
) -> ShardResult:
    """Write every clip of ``flow_index`` as shards under ``base_url``; return the clip table."""
    gts = GroundTruthCache(raw_dir, capacity=None)  # clips come in shuffled order: keep every video's GT
    max_bytes = int(params.max_shard_mb * 2**20)
    rows, shards, dropped, total, t0 = [], {}, {}, 0, time.perf_counter()
    for split in sorted(flow_index["split"].unique()):
        candidates = flow_index[flow_index["split"] == split]
        clips = order_clips(select_moving(candidates, params.min_motion_px), params.shuffle_seed)
        dropped[split] = len(candidates) - len(clips)
        if clips.empty:
            raise IpokeError(
                f"none of the {len(candidates)} {split} clips moves {params.min_motion_px} px (99th "
                "percentile of its flow): lower shard.min_motion_px or check the videos"
            )
        sink = ShardSink(base_url, split, max_bytes, params.max_shard_samples)
        videos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        items = clips.itertuples(index=False)
        if progress is not None:
            items = progress(items, desc=f"shard {split}", total=len(clips), unit="clip")
        try:
            for clip in items:
                vrow = frames_index.iloc[int(clip.video_order)]
                if clip.file not in videos:
                    flow_file = np.load(flow_dir / clip.file, mmap_mode="r")
                    videos[clip.file] = (load_video(frames_dir, vrow), flow_file)
                video, flows = videos[clip.file]
                sample, has_gt = build_sample(clip, vrow, video, flows[int(clip.row)], gts)
                shard = sink.write(sample)
                rows.append({
                    "clip_id": clip.clip_id, "key": sample["__key__"], "split": split, "shard": shard,
                    "video_id": clip.video_id, "object_id": str(vrow["object_id"]), "start": int(clip.start),
                    "end": int(clip.end), "raw_start": int(clip.raw_start), "raw_end": int(clip.raw_end),
                    "mag_mean": clip.mag_mean, "mag_p95": clip.mag_p95, "mag_p99": clip.mag_p99,
                    "has_gt": has_gt,
                })
        finally:
            sink.close()
        shards[split] = sink.names
        total += sink.bytes_written
    table = pd.DataFrame(rows)
    return ShardResult(table, shards, total, time.perf_counter() - t0, dropped)


def write_index(clips: pd.DataFrame, out_dir: Path, base_url: str | None) -> Path:
    """``clips.parquet``; ``base_url`` is stored when the shards live elsewhere than next to it."""
    clips = clips.assign(base_url=base_url or "")
    path = Path(out_dir) / CLIPS_NAME
    clips.to_parquet(path, index=False)
    return path


def shard_urls(shard_dir: str | Path, split: str) -> list[str]:
    """URLs of a split's shards, read from ``clips.parquet`` in ``shard_dir``."""
    path = Path(shard_dir) / CLIPS_NAME
    if not path.is_file():
        raise IpokeError(f"{path}: no clip index; run the shard stage first (dvc repro shard)")
    clips = pd.read_parquet(path, columns=["split", "shard", "base_url"])
    clips = clips[clips["split"] == split]
    if clips.empty:
        raise IpokeError(f"{path}: no clips in split {split!r}")
    urls = []
    for shard, base in clips[["shard", "base_url"]].drop_duplicates().itertuples(index=False):
        urls.append(f"{base.rstrip('/')}/{shard}" if base else str(Path(shard_dir) / shard))
    return sorted(set(urls))
