"""Video files: metadata probing with decord, and content hashes.

``probe`` decodes every frame once (:mod:`ipoke.data.decode_check`), so a file that is empty, cut short,
not a video or damaged fails here, at download time, with the specific reason, rather than silently
giving corrupt frames to the shards. The first and the last frame are also read with decord, which the
later stages decode with.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ipoke.data import decode_check
from ipoke.errors import IpokeError


class UnreadableVideo(IpokeError):
    """A file that decord cannot decode; ``reason`` is the problem without the path."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    content_hash: str  # of the decoded frames: equal for the same video in different files


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, size and content hash of a video that decodes cleanly.

    Raises :class:`UnreadableVideo` naming the file and the problem, as ``"<kind>: <details>"``: empty
    file, not a video, truncated or damaged container, truncated data, decode errors (in how many frames),
    or what decord reports.
    """
    import decord

    path = Path(path)
    if not path.is_file():
        raise UnreadableVideo(path, "no such file")
    if path.stat().st_size == 0:
        raise UnreadableVideo(path, "empty file: 0 bytes")
    try:
        decoded = decode_check.check(path)
    except decode_check.Unopenable as err:
        raise UnreadableVideo(path, err.reason) from None
    if decoded.truncated:
        raise UnreadableVideo(
            path, f"truncated data: only {decoded.frames} frames decode before the file ends (cut short)"
        )
    if decoded.corrupt_frames:
        raise UnreadableVideo(
            path,
            f"decode errors: in {decoded.corrupt_frames} of {decoded.frames} frames "
            f"(first: {decoded.first_error}); the damaged frames would reach the shards",
        )
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n_frames = len(reader)
        if n_frames == 0:
            raise UnreadableVideo(path, "not a readable video: its video stream has no frames")
        first = reader[0]
        reader[n_frames - 1]
        fps = float(reader.get_avg_fps())
    except (decord.DECORDError, RuntimeError, IndexError) as err:
        # decord prefixes "[time] source.cc:line: "; keep the message only
        lines = str(err).strip().splitlines() or [type(err).__name__]
        detail = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", lines[0])
        raise UnreadableVideo(path, f"not a readable video: {detail}") from None
    if not math.isfinite(fps) or fps <= 0:
        raise UnreadableVideo(path, f"invalid frame rate: {fps}")
    if decoded.frames < n_frames:
        raise UnreadableVideo(path, f"truncated data: {decoded.frames} of {n_frames} frames decode")
    declared = (decoded.duration_s or 0.0) * fps
    if decoded.frames < 0.97 * declared - 1:  # cut at a frame boundary: the index loses its tail silently
        raise UnreadableVideo(
            path,
            f"truncated data: {decoded.frames} frames decode, the container's duration "
            f"({decoded.duration_s:.2f} s at {fps:g} fps) holds {declared:.0f}",
        )
    height, width = int(first.shape[0]), int(first.shape[1])
    return VideoInfo(fps, n_frames, width, height, decoded.content_hash)


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
