"""A picture of a dataset in numbers: what its clips and the loader's pokes look like, and what was skipped.

Measured on the shards as training sees them: for up to ``max_clips`` clips (spread evenly over both
splits), the loader's pokes of epochs ``0 .. draws - 1`` (:func:`ipoke.data.loader.make_example`, with
``loader.pokes``) are checked against where the clip's frames change
(:func:`ipoke.data.motion_evidence.motion_evidence`, independent of the flow):

* ``pokes_on_changing``: share of foreground pokes on pixels that change over the clip;
* ``background_pokes_on_changing``: share of background pokes whose patch touches such a pixel (their
  target is the still video, so this should be 0);
* ``median_poke_px``: median length of the foreground pokes, in stored pixels, and per split the
  distribution of their lengths (``poke_px_<split>_p10``, ``_median``, ``_p90``);
* ``still_clips``: share of clips in which fewer than ``still_share`` of the pixels change;
* the download's and extract_frames' skipped videos counted by reason (the text before the first colon
  of ``skipped.csv``'s reason), still videos and videos with a size note from the frames index.

:mod:`ipoke.data.quality_sheet` draws the sheet of a handful of these clips.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from ipoke.config import Section
from ipoke.data.frames import INDEX_NAME, SKIPPED_NAME
from ipoke.data.loader import SharedLoaderParams, make_example, tar_samples
from ipoke.data.motion_evidence import MotionEvidence, motion_evidence
from ipoke.data.shards import CLIPS_NAME, npy_load, shard_urls
from ipoke.errors import IpokeError


class QualityParams(Section):
    max_clips: int | None = Field(512, ge=1, description="clips measured, spread over the shards; null = all")
    draws: int = Field(4, ge=1, description="loader poke draws per clip (epochs 0 .. draws - 1)")
    sheet_clips: int = Field(6, ge=1, description="clips shown on the sheet")
    still_share: float = Field(
        0.002, ge=0.0, le=1.0, description="a clip in which a smaller share of pixels changes is still"
    )


@dataclass
class ClipView:
    """One measured clip: what the sheet draws and what the numbers count."""

    clip_id: str
    split: str
    frames: np.ndarray  # uint8 (T, H, W, 3), the shard's frames (not the background poke's still video)
    flow: np.ndarray  # float32 (2, H, W)
    evidence: MotionEvidence
    pokes: list[tuple[np.ndarray, bool]] = field(default_factory=list)  # (points (n, 4), background) per draw

    @property
    def changing_share(self) -> float:
        return float(self.evidence.changing.mean())


def reason_kind(reason: str) -> str:
    """``"decode errors: in 12 of 30 frames ..."`` -> ``"decode errors"``: the part before the first colon
    (or parenthesis), for counting skipped videos by reason."""
    return re.split(r"[:(]", str(reason), maxsplit=1)[0].strip() or "unknown"


def skipped_by_reason(*tables: Path) -> dict[str, int]:
    """Counts per reason kind over the ``skipped.csv`` files that exist."""
    counts: Counter[str] = Counter()
    for path in tables:
        if path.is_file():
            table = pd.read_csv(path)
            counts.update(reason_kind(r) for r in table.get("reason", pd.Series(dtype=str)))
    return dict(sorted(counts.items()))


def measured_clips(shard_dir: Path, loader: SharedLoaderParams, params: QualityParams) -> list[ClipView]:
    """Every ``k``-th clip of the train and test shards, ``k`` chosen for at most ``max_clips`` clips."""
    index = Path(shard_dir) / CLIPS_NAME
    if not index.is_file():
        raise IpokeError(f"{index}: no clip index; run the shard stage first (dvc repro shard)")
    splits = pd.read_parquet(index, columns=["split"])["split"]
    stride = max(1, math.ceil(len(splits) / params.max_clips)) if params.max_clips else 1
    views, n = [], 0
    for split in sorted(set(splits)):
        for sample in tar_samples(iter(shard_urls(shard_dir, split))):
            n += 1
            if (n - 1) % stride:
                continue
            frames = npy_load(sample["frames.npy"])
            view = ClipView(
                clip_id=str(sample["__key__"]), split=split, frames=frames,
                flow=npy_load(sample["flow.npy"]).astype(np.float32), evidence=motion_evidence(frames),
            )  # fmt: skip
            for epoch in range(params.draws):
                example = make_example(sample, loader.seed, epoch, loader, train=False)
                points = example["poke_points"][: int(example["n_pokes"])].numpy()
                view.pokes.append((points, bool(example["background_poke"])))
            views.append(view)
    return views


def _touches(mask: np.ndarray, x: float, y: float, radius: int) -> bool:
    x, y = int(round(x)), int(round(y))
    return bool(mask[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1].any())


def per_clip(views: list[ClipView], params: QualityParams, patch_size: int) -> pd.DataFrame:
    """One row per measured clip: changing share, still flag, its pokes' lengths and hits."""
    rows = []
    for v in views:
        fg = [p for points, background in v.pokes if not background for p in points]
        bg = [p for points, background in v.pokes if background for p in points]
        changing = v.evidence.changing
        rows.append({
            "clip_id": v.clip_id, "split": v.split, "changing_share": v.changing_share,
            "still": v.changing_share < params.still_share, "fg_pokes": len(fg), "bg_pokes": len(bg),
            "fg_on_changing": sum(bool(changing[int(round(y)), int(round(x))]) for x, y, _, _ in fg),
            "bg_on_changing": sum(_touches(changing, x, y, patch_size // 2) for x, y, _, _ in bg),
            "poke_lengths": [round(math.hypot(dx, dy), 3) for _, _, dx, dy in fg],
        })  # fmt: skip
    return pd.DataFrame(rows)


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def poke_length_quantiles(clips: pd.DataFrame) -> dict[str, float]:
    """10th, 50th and 90th percentile of the foreground poke lengths of each split, in stored pixels."""
    out = {}
    for split, group in clips.groupby("split", sort=True):
        lengths = [x for row in group["poke_lengths"] for x in row]
        if lengths:
            for name, q in (("p10", 10), ("median", 50), ("p90", 90)):
                out[f"poke_px_{split}_{name}"] = round(float(np.percentile(lengths, q)), 3)
    return out


def summary(clips: pd.DataFrame, raw_dir: Path, frames_dir: Path) -> dict:
    """The metrics of ``metrics/data_quality.json`` (flat; None where nothing was there to count) and the
    details for the report."""
    lengths = [x for row in clips["poke_lengths"] for x in row]
    fg, bg = int(clips["fg_pokes"].sum()), int(clips["bg_pokes"].sum())
    skipped = skipped_by_reason(raw_dir / "skipped.csv", frames_dir / SKIPPED_NAME)
    index_path = frames_dir / INDEX_NAME
    index = pd.read_parquet(index_path) if index_path.is_file() else pd.DataFrame()
    still_videos = index.loc[index["still"], "video_id"].tolist() if "still" in index else []
    notes = dict(zip(index["video_id"], index["note"], strict=True)) if "note" in index else {}
    metrics = {
        "clips": len(clips),
        "pokes_on_changing": _share(int(clips["fg_on_changing"].sum()), fg),
        "background_pokes_on_changing": _share(int(clips["bg_on_changing"].sum()), bg),
        "median_poke_px": round(float(np.median(lengths)), 3) if lengths else None,
        **poke_length_quantiles(clips),
        "still_clips": _share(int(clips["still"].sum()), len(clips)),
        "still_videos": len(still_videos),
        "noted_videos": sum(bool(n) for n in notes.values()),
        "skipped_videos": sum(skipped.values()),
    } | {f"skipped_{re.sub(r'[^a-z0-9]+', '_', k.lower()).strip('_')}": n for k, n in skipped.items()}
    details = {
        "skipped_by_reason": skipped,
        "still_videos": still_videos,
        "notes": {k: n for k, n in notes.items() if n},
    }
    return {"metrics": metrics, "details": details}
