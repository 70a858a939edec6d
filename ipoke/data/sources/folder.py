"""The ``folder`` source: any directory of the user's own videos.

Every video file under ``download.folder.path`` is decoded once (:func:`ipoke.data.video.probe`);
videos that decode cleanly and are long enough for one clip are placed under ``videos/`` (hard link,
copy or symlink) and get a manifest row; the others are reported in ``skipped.csv`` with the reason:
empty file, not a video, truncated container or data, decode errors, too short, or a duplicate. A clip
is x0 plus 10 frames at the dataset's frame step (``extract_frames.step``, ``default_step`` for your own
folders), so ``min_frames: null`` asks for ``1 + 10 * step`` source frames. Content-identical videos
(the same bytes, or the same decoded frames in another file) are kept once, so no video lands in both
splits. :func:`ingest` is shared with the real datasets (:mod:`ipoke.data.sources.datasets`), which are
folders with known naming and split rules.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import pandas as pd
from pydantic import Field, field_validator

from ipoke.config import Section
from ipoke.data.frames import CLIP_LEN, clip_span
from ipoke.data.manifest import COLUMNS, SPLITS
from ipoke.data.sources import Skipped, SourceResult
from ipoke.data.video import UnreadableVideo, probe, sha256
from ipoke.errors import IpokeError
from ipoke.stage import progress

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
LinkMode = Literal["hardlink", "copy", "symlink"]
# Extra manifest column: first frame of a video's test part when one video is split in time
# (PokingPlants: first 80% of each video train, last 20% test); <NA> when the whole video has one split.
TEST_FROM_FRAME = "test_from_frame"


class SplitRule(Section):
    """How videos are assigned to train/test.

    by_object_hash: all videos of one object land in the same split (no object seen in both);
    by_video_hash: each video on its own; by_subfolder: a ``train/`` or ``test/`` folder on the path decides;
    within_video: every video is train up to its last ``test_fraction`` of frames, which are test;
    all_train: no test set. Hash rules are stable: adding videos never moves existing ones.
    """

    rule: Literal["by_object_hash", "by_video_hash", "by_subfolder", "within_video", "all_train"] = (
        "by_object_hash"
    )
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)


class Params(Section):
    path: str | None = None
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    # None: a clip's span at the dataset's frame step, 1 + 10 * step (11 frames at step 1)
    min_frames: int | None = Field(None, ge=2)
    split: SplitRule = SplitRule()
    object_id: Literal["parent_dir", "stem"] = "parent_dir"
    object_pattern: str | None = None
    link: LinkMode = "hardlink"

    @field_validator("extensions")
    @classmethod
    def _dotted_lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in value)

    @field_validator("object_pattern")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                groups = re.compile(value).groups
            except re.error as err:
                raise ValueError(f"not a valid regular expression: {err}") from None
            if groups < 1:
                raise ValueError("needs one capturing group, e.g. 'VID_(\\d+)_'")
        return value


@dataclass(frozen=True)
class Candidate:
    """A video file to ingest: where it comes from, where it goes under ``videos/``, object and split."""

    source: Path
    rel: PurePosixPath
    object_id: str
    split: str
    test_fraction: float | None = None


def find_videos(root: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Video files under ``root`` (sorted; hidden files and folders ignored)."""
    exts = {e.lower() for e in extensions}
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.suffix.lower() in exts and path.is_file() and not any(p.startswith(".") for p in rel.parts):
            found.append(path)
    return sorted(found)


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) derived from ``key``."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16) / 16**15


def split_folder(rel: PurePosixPath) -> str | None:
    """``train`` or ``test`` when a folder of that name is on the path (the nearest one wins)."""
    for part in reversed(rel.parent.parts):
        if part.lower() in SPLITS:
            return part.lower()
    return None


def video_ids(rels: Sequence[PurePosixPath]) -> list[str]:
    """File-name-safe unique ids (letters, digits, ``_``, ``-``; no dots, which WebDataset keys reserve)."""

    def slug(rel: PurePosixPath) -> str:
        parts = rel.with_suffix("").parts
        return "__".join(re.sub(r"[^A-Za-z0-9_-]+", "_", p).strip("_") or "_" for p in parts)

    slugs = [slug(r) for r in rels]
    counts = Counter(slugs)
    return [
        s if counts[s] == 1 else f"{s}-{hashlib.sha1(r.as_posix().encode()).hexdigest()[:8]}"
        for s, r in zip(slugs, rels, strict=True)
    ]


def place(source: Path, dest: Path, link: LinkMode) -> None:
    """Put ``source`` at ``dest``; a hard link across file systems falls back to a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        dest.symlink_to(source.resolve())
        return
    if link == "hardlink":
        try:
            os.link(source, dest)
            return
        except OSError as err:
            log.warning("cannot hard-link %s (%s); copying instead", source, err.strerror)
    shutil.copy2(source, dest)


def frames_needed(min_frames: int | None, frame_step: int, key: str) -> tuple[int, str]:
    """Source frames a video needs, and why, for the skip reason: ``min_frames`` (named by ``key``)
    or, when it is None, one clip at the dataset's frame step."""
    if min_frames is not None:
        return min_frames, f"{key} is {min_frames}"
    return clip_span(frame_step), f"a clip is x0 + {CLIP_LEN - 1} frames at frame step {frame_step}"


def ingest(
    candidates: Sequence[Candidate],
    out_dir: Path,
    *,
    min_frames: tuple[int, str],
    link: LinkMode,
    skipped: Sequence[Skipped] = (),
) -> SourceResult:
    """Probe each candidate, place the usable ones under ``out_dir/videos/`` and build their manifest rows.

    ``min_frames`` is (frames needed, why) from :func:`frames_needed`. Of content-identical videos the
    first (in candidate order) is kept and the others are skipped as its duplicates.
    """
    need, why = min_frames
    skipped = list(skipped)
    rows = []
    seen: dict[PurePosixPath, Path] = {}
    unique = []
    for c in candidates:
        if c.rel in seen:
            skipped.append(Skipped(str(c.source), f"same name as {seen[c.rel]} (videos/{c.rel})"))
        else:
            seen[c.rel] = c.source
            unique.append(c)
    ids = video_ids([c.rel for c in unique])
    kept_files: dict[str, Path] = {}
    kept_content: dict[str, Path] = {}
    for c, video_id in progress(zip(unique, ids, strict=True), desc="probe videos", total=len(unique)):
        try:
            info = probe(c.source)
        except UnreadableVideo as err:
            skipped.append(Skipped(str(c.source), err.reason))
            continue
        if info.n_frames < need:
            reason = f"too short: {info.n_frames} frames, needs at least {need} ({why})"
            skipped.append(Skipped(str(c.source), reason))
            continue
        digest = sha256(c.source)
        if digest in kept_files or info.content_hash in kept_content:
            same = "same file content" if digest in kept_files else "same decoded frames"
            first = kept_files.get(digest) or kept_content[info.content_hash]
            skipped.append(Skipped(str(c.source), f"duplicate: {same} as {first}, which is kept"))
            continue
        kept_files[digest] = kept_content[info.content_hash] = c.source
        dest = out_dir / "videos" / c.rel
        place(c.source, dest, link)
        test_from = None if c.test_fraction is None else math.floor((1 - c.test_fraction) * info.n_frames)
        rows.append(
            {
                "video_id": video_id,
                "path": (PurePosixPath("videos") / c.rel).as_posix(),
                "object_id": c.object_id,
                "split": c.split,
                "fps": info.fps,
                "n_frames": info.n_frames,
                "width": info.width,
                "height": info.height,
                "sha256": digest,
                TEST_FROM_FRAME: test_from,
            }
        )
    manifest = pd.DataFrame(rows, columns=[*COLUMNS, TEST_FROM_FRAME]).astype(
        COLUMNS | {TEST_FROM_FRAME: "Int64"}
    )
    return SourceResult(manifest=manifest, skipped=skipped)


def require_videos(result: SourceResult, where: str) -> SourceResult:
    """Stop with the reasons when nothing usable was found; warn when a split is empty."""
    if result.manifest.empty:
        reasons = "\n  ".join(f"{s.path}: {s.reason}" for s in result.skipped[:10])
        more = f"\n  ... and {len(result.skipped) - 10} more" if len(result.skipped) > 10 else ""
        raise IpokeError(f"{where}: no usable videos\n  {reasons}{more}")
    for split in SPLITS:
        if not (result.manifest["split"] == split).any():
            log.warning("%s: no %s videos", where, split)
    return result


def _object_id(params: Params, rel: PurePosixPath) -> str | None:
    if params.object_pattern is not None:
        match = re.search(params.object_pattern, rel.as_posix())
        return match.group(1) if match else None
    parents = [p for p in rel.parent.parts if params.split.rule != "by_subfolder" or p.lower() not in SPLITS]
    if params.object_id == "parent_dir" and parents:
        return "/".join(parents)
    return rel.stem


def _candidate(params: Params, root: Path, path: Path) -> Candidate | Skipped:
    rel = PurePosixPath(path.relative_to(root).as_posix())
    object_id = _object_id(params, rel)
    if object_id is None:
        return Skipped(str(path), f"name does not match object_pattern {params.object_pattern!r}")
    rule, fraction = params.split.rule, params.split.test_fraction
    test_fraction = None
    if rule == "by_subfolder":
        split = split_folder(rel)
        if split is None:
            return Skipped(str(path), "not inside a train/ or test/ folder (split rule by_subfolder)")
    elif rule in ("by_object_hash", "by_video_hash"):
        key = object_id if rule == "by_object_hash" else rel.as_posix()
        split = "test" if hash_fraction(key) < fraction else "train"
    else:
        split = "train"
        test_fraction = fraction if rule == "within_video" else None
    return Candidate(source=path, rel=rel, object_id=object_id, split=split, test_fraction=test_fraction)


def build(params, out_dir: Path, *, frame_step: int) -> SourceResult:
    """``params`` is the whole download section; this source reads ``params.folder``. ``frame_step`` is
    the dataset's ``extract_frames`` step."""
    p: Params = params.folder
    if p.path is None:
        raise IpokeError(
            "params.yaml: download.folder.path is not set; with download.source: folder it must name "
            "the directory that holds your videos"
        )
    root = Path(p.path).expanduser()
    if not root.is_dir():
        raise IpokeError(f"{root}: not a directory (download.folder.path)")
    files = find_videos(root, p.extensions)
    if not files:
        raise IpokeError(
            f"{root}: no video files with extensions {list(p.extensions)} (download.folder.path)"
        )
    candidates, skipped = [], []
    for path in files:
        item = _candidate(p, root, path)
        (skipped if isinstance(item, Skipped) else candidates).append(item)
    need = frames_needed(p.min_frames, frame_step, "download.folder.min_frames")
    result = ingest(candidates, Path(out_dir), min_frames=need, link=p.link, skipped=skipped)
    return require_videos(result, str(root))
