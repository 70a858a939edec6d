"""Decoded, resized frames of every manifest video, and the clips over them.

Storage: one ``<name>.npy`` per video, uint8 ``(N, H, W, 3)`` RGB at the stored resolution, after the
dataset's temporal subsampling (stored frame ``i`` is source frame ``i * step``). A plain ``.npy`` is
lossless (flow estimation and GT comparisons see no codec artefacts) and memory-mappable, so the flow and
shard stages read any clip without decoding a video again; at the demo's 64 px a frame is 12 KiB.
Alongside: ``index.parquet`` (one row per stored video, see :data:`INDEX_COLUMNS`) and ``skipped.csv``
(videos that were too short, corrupt or unreadable, with the reason). The index flags videos in which
(almost) nothing changes (``still``, from :func:`ipoke.data.motion_evidence.moving_share`) and notes source
sizes the stored frames misrepresent (``note``: upscaled, or mostly cropped away).

Decoding: decord scales frames while decoding to at most twice the stored size (:func:`decode_size`), so
a 4K video costs memory in proportion to the stored frames, not to its own.

Geometry: :class:`Geometry` maps source pixels to stored pixels (centre crop to the target aspect, or a
plain stretch, then an area resize). The same object transforms images, masks, flow fields (values scaled
per axis) and point coordinates, so ground truth stays aligned with the frames. Points use the
pixel-centre convention: pixel ``i`` covers ``[i - 0.5, i + 0.5)``.

Clips: x0 plus ``CLIP_LEN - 1 = 10`` consecutive stored frames (paper, section 3.3 / appendix E), so the
lag between start and end frame is 10 stored frames, i.e. ``10 * step`` source frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from ipoke.config import Section
from ipoke.data import manifest
from ipoke.data.motion_evidence import moving_share
from ipoke.errors import IpokeError

CLIP_LEN = 11  # x0 + T future frames, T = 10 in the paper
DECODE_MARGIN = 2  # decode at most this many times the stored size (see decode_size) ...
DECODE_MIN = 64  # ... but not below this: decord returns garbled frames at widths 16, 32 and 48
INDEX_NAME = "index.parquet"
SKIPPED_NAME = "skipped.csv"
OPTIONAL_COLUMNS = ("gt_path", "family", "test_from_frame")  # carried over from the manifest when present
INDEX_COLUMNS = (
    "video_id", "object_id", "split", "file", "n_frames", "step", "height", "width", "resize",
    "src_height", "src_width", "src_fps", "fps", "src_frames", "moving_share", "still", "note",
)


def clip_span(step: int) -> int:
    """Source frames one clip spans: x0 and ``CLIP_LEN - 1`` more stored frames, ``step`` apart."""
    return 1 + (CLIP_LEN - 1) * step


class FramesParams(Section):
    size: int = Field(64, ge=8, description="stored frame height and width in pixels")
    resize: Literal["center_crop", "stretch"] = "center_crop"
    step: dict[str, int] = Field(
        default_factory=lambda: {"synthetic": 2, "plants": 2, "taichi": 2, "iper": 1, "h36m": 8},
        description="temporal subsampling per dataset name (keep every step-th source frame)",
    )
    default_step: int = Field(1, ge=1, description="step for datasets not listed in `step` (e.g. folder)")
    batch_frames: int = Field(64, ge=1, description="frames decoded per decord call")
    decode_threads: int = Field(1, ge=0, description="decord threads per video (0 = decord's choice)")
    workers: int = Field(2, ge=1, description="videos decoded in parallel")
    still_share: float = Field(
        0.002, ge=0.0, le=1.0, description="videos in which fewer pixels than this share change are flagged "
        "still (index column `still`)",
    )

    def step_for(self, dataset: str) -> int:
        step = self.step.get(dataset, self.default_step)
        if step < 1:
            raise IpokeError(f"extract_frames.step.{dataset}: must be >= 1, got {step}")
        return step


@dataclass(frozen=True)
class Geometry:
    """Crop box in source pixels plus the output size; see the module docstring."""

    src_h: int
    src_w: int
    top: int
    left: int
    crop_h: int
    crop_w: int
    out_h: int
    out_w: int

    @classmethod
    def fit(cls, src_hw: tuple[int, int], size: int, mode: str) -> Geometry:
        h, w = int(src_hw[0]), int(src_hw[1])
        if mode == "stretch":
            return cls(h, w, 0, 0, h, w, size, size)
        if mode != "center_crop":
            raise ValueError(f"unknown resize mode {mode!r}")
        side = min(h, w)
        return cls(h, w, (h - side) // 2, (w - side) // 2, side, side, size, size)

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): stored pixels per source pixel."""
        return self.out_w / self.crop_w, self.out_h / self.crop_h

    def _crop(self, a: np.ndarray) -> np.ndarray:
        return a[..., self.top : self.top + self.crop_h, self.left : self.left + self.crop_w]

    def _interp(self) -> int:
        return cv2.INTER_AREA if self.out_h <= self.crop_h else cv2.INTER_LINEAR

    def image(self, img: np.ndarray) -> np.ndarray:
        """(H, W, C) -> (out_h, out_w, C), same dtype."""
        crop = img[self.top : self.top + self.crop_h, self.left : self.left + self.crop_w]
        return cv2.resize(np.ascontiguousarray(crop), (self.out_w, self.out_h), interpolation=self._interp())

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) integer labels -> (out_h, out_w), nearest neighbour."""
        crop = np.ascontiguousarray(self._crop(mask))
        return cv2.resize(crop, (self.out_w, self.out_h), interpolation=cv2.INTER_NEAREST)

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """(..., 2, H, W) float flow in source pixels -> (..., 2, out_h, out_w) in stored pixels."""
        return resize_flow(self._crop(flow), (self.out_h, self.out_w))

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) pixel coordinates (x, y) -> stored pixel coordinates."""
        sx, sy = self.scale
        xy = np.asarray(xy, dtype=np.float32)
        out = np.empty_like(xy)
        out[..., 0] = (xy[..., 0] - self.left + 0.5) * sx - 0.5
        out[..., 1] = (xy[..., 1] - self.top + 0.5) * sy - 0.5
        return out


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (..., 2, h, w) flow to (..., 2, H, W) and scale dx by W/w, dy by H/h (float32)."""
    flow = np.asarray(flow, dtype=np.float32)
    h, w = flow.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return flow.copy()
    interp = cv2.INTER_AREA if out_h <= h and out_w <= w else cv2.INTER_LINEAR
    lead = flow.shape[:-3]
    planes = flow.reshape(-1, 2, h, w)
    out = np.empty((planes.shape[0], 2, out_h, out_w), np.float32)
    for i, (dx, dy) in enumerate(planes):
        out[i, 0] = cv2.resize(dx, (out_w, out_h), interpolation=interp) * (out_w / w)
        out[i, 1] = cv2.resize(dy, (out_w, out_h), interpolation=interp) * (out_h / h)
    return out.reshape(*lead, 2, out_h, out_w)


def decode_size(src_hw: tuple[int, int], size: int, mode: str) -> tuple[int, int]:
    """(h, w) to decode a ``src_hw`` video at: the source itself, or scaled down (even sides) so that the
    part kept is at most ``DECODE_MARGIN`` times the stored size. decord scales while decoding, so memory
    follows the stored size, not the source's (a 4K frame is 24 MiB); the final area resize still
    averages over ``DECODE_MARGIN``^2 decoded pixels per stored pixel."""
    h, w = int(src_hw[0]), int(src_hw[1])
    limit = max(DECODE_MARGIN * size, DECODE_MIN)
    if mode == "stretch":
        fh, fw = min(1.0, limit / h), min(1.0, limit / w)
    else:
        fh = fw = min(1.0, limit / min(h, w))
    if fh == fw == 1.0:
        return h, w
    return max(2, round(h * fh / 2) * 2), max(2, round(w * fw / 2) * 2)


def decode_frames(
    path: str | Path, step: int, src_hw: tuple[int, int], size: int, mode: str, batch_frames: int = 64,
    threads: int = 1,
):
    """Decode every ``step``-th frame with decord at :func:`decode_size`, in batches, and resize it.

    Returns ``(frames uint8 (N, size, size, 3), geometry of the decoded frames, source fps, source frame
    count)``.
    """
    import decord

    dh, dw = decode_size(src_hw, size, mode)
    scaled = {} if (dh, dw) == tuple(src_hw) else {"width": dw, "height": dh}
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads, **scaled)
    n_src = len(reader)
    fps = float(reader.get_avg_fps())
    indices = list(range(0, n_src, step))
    if not indices:
        raise ValueError("no frames")
    geometry = Geometry.fit(reader[0].shape[:2], size, mode)
    out = np.empty((len(indices), geometry.out_h, geometry.out_w, 3), np.uint8)
    for lo in range(0, len(indices), batch_frames):
        batch = reader.get_batch(indices[lo : lo + batch_frames]).asnumpy()
        for j, frame in enumerate(batch):
            out[lo + j] = geometry.image(frame)
    return out, geometry, fps, n_src


def size_note(src_hw: tuple[int, int], size: int, mode: str) -> str:
    """Words for a source size that the stored frames do not show faithfully; "" for a usual one.

    Sources smaller than the stored size are upscaled (no detail is added), and a centre crop of a very
    wide or tall video drops most of it.
    """
    h, w = int(src_hw[0]), int(src_hw[1])
    geo = Geometry.fit((h, w), size, mode)
    notes = []
    if geo.crop_h < size or geo.crop_w < size:
        what = f"its centre {geo.crop_w}x{geo.crop_h} square" if mode == "center_crop" else "it"
        factor = max(size / geo.crop_w, size / geo.crop_h)
        notes.append(f"source {w}x{h}: {what} is upscaled {factor:.2f}x to {size}x{size}")
    kept = geo.crop_h * geo.crop_w / (h * w)
    if kept < 0.5:
        notes.append(f"source {w}x{h}: the centre crop keeps {kept:.0%} of each frame")
    return "; ".join(notes)


def safe_name(text: str) -> str:
    """A file-name and WebDataset-key safe version of an id (no dots, slashes or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "x"


def unique_names(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for vid in ids:
        base = safe_name(vid)
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n}")
    return names


@dataclass
class ExtractResult:
    index: pd.DataFrame
    skipped: pd.DataFrame
    frames: int


def extract(raw_dir: Path, out_dir: Path, params: FramesParams, dataset: str, progress=None) -> ExtractResult:
    """Decode every manifest video of ``raw_dir`` into ``out_dir`` (an existing, empty directory)."""
    table = manifest.read(raw_dir)
    step = params.step_for(dataset)
    names = unique_names(table["video_id"].tolist())

    def job(i: int):
        row = table.iloc[i]
        path = manifest.video_path(raw_dir, row)
        if not path.is_file():
            return i, None, f"file not found: {path}"
        src_hw = (int(row["height"]), int(row["width"]))
        try:
            frames, geo, fps, n_src = decode_frames(
                path, step, src_hw, params.size, params.resize, params.batch_frames, params.decode_threads
            )
        except Exception as err:  # decord raises DECORDError/RuntimeError for any unreadable input
            return i, None, f"unreadable video: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        if len(frames) < CLIP_LEN:
            return i, None, f"too short: {len(frames)} frames after step {step} (need {CLIP_LEN})"
        file = f"{names[i]}.npy"
        np.save(out_dir / file, frames)
        share = moving_share(frames)
        record = {
            "video_id": row["video_id"], "object_id": row["object_id"], "split": row["split"], "file": file,
            "n_frames": len(frames), "step": step, "height": geo.out_h, "width": geo.out_w,
            "resize": params.resize, "src_height": src_hw[0], "src_width": src_hw[1], "src_fps": fps,
            "fps": fps / step, "src_frames": n_src, "moving_share": share,
            "still": share < params.still_share, "note": size_note(src_hw, params.size, params.resize),
        }
        return i, record | {c: row[c] for c in OPTIONAL_COLUMNS if c in table.columns}, None

    rows, skipped = [], []
    with ThreadPoolExecutor(params.workers) as pool:
        results: Iterator = pool.map(job, range(len(table)))
        if progress is not None:
            results = progress(results, desc="extract_frames", total=len(table), unit="video")
        for i, row, reason in results:
            if row is None:
                skipped.append({"video_id": table.iloc[i]["video_id"], "path": table.iloc[i]["path"],
                                "reason": reason})
            else:
                rows.append(row)
    if not rows:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise IpokeError(f"{raw_dir}: no usable video ({len(skipped)} skipped: {reasons})")
    index = pd.DataFrame(rows)
    index = index[[*INDEX_COLUMNS, *(c for c in index.columns if c not in INDEX_COLUMNS)]]
    index.to_parquet(out_dir / INDEX_NAME, index=False)
    skipped_df = pd.DataFrame(skipped, columns=["video_id", "path", "reason"])
    skipped_df.to_csv(out_dir / SKIPPED_NAME, index=False)
    return ExtractResult(index, skipped_df, int(index["n_frames"].sum()))


def read_index(frames_dir: str | Path) -> pd.DataFrame:
    path = Path(frames_dir) / INDEX_NAME
    if not path.is_file():
        raise IpokeError(f"{path}: no frames index; run the extract_frames stage first")
    index = pd.read_parquet(path)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise IpokeError(f"{path}: missing columns {missing}; rerun extract_frames")
    return index


def load_video(frames_dir: str | Path, row: pd.Series) -> np.ndarray:
    """The stored frames of one index row, memory-mapped: uint8 (N, H, W, 3)."""
    return np.load(Path(frames_dir) / str(row["file"]), mmap_mode="r")


def gt_geometry(row: pd.Series, gt_hw: tuple[int, int]) -> Geometry:
    """Geometry taking ground truth rendered at ``gt_hw`` to this video's stored frames."""
    return Geometry.fit(gt_hw, int(row["height"]), str(row["resize"]))


def clip_table(index: pd.DataFrame, stride: int) -> pd.DataFrame:
    """Every clip start ``0, stride, ...`` with a full clip, and its split.

    The split is the video's, except where the manifest gives ``test_from_frame`` (a source frame index,
    e.g. plants: last 20% of each video is test): clips ending before it are train, clips starting at or
    after it are test, clips straddling it are dropped.
    """
    if stride < 1:
        raise IpokeError(f"clip stride must be >= 1, got {stride}")
    rows = []
    for video_order, row in enumerate(index.itertuples(index=False)):
        test_from = getattr(row, "test_from_frame", None)
        has_boundary = test_from is not None and not pd.isna(test_from)
        for start in range(0, int(row.n_frames) - CLIP_LEN + 1, stride):
            end = start + CLIP_LEN - 1
            raw_start, raw_end = start * int(row.step), end * int(row.step)
            split = row.split
            if has_boundary:
                if raw_end < test_from:
                    split = "train"
                elif raw_start >= test_from:
                    split = "test"
                else:
                    continue
            rows.append({
                "clip_id": f"{row.video_id}@{start:06d}", "video_id": row.video_id,
                "video_order": video_order, "split": split, "start": start, "end": end,
                "raw_start": raw_start, "raw_end": raw_end,
            })
    columns = ["clip_id", "video_id", "video_order", "split", "start", "end", "raw_start", "raw_end"]
    return pd.DataFrame(rows, columns=columns)
