"""Video files: metadata probing with decord, and content hashes.

``probe`` decodes the first and the last frame, so a file that opens but is cut short fails here,
at download time, rather than in the middle of frame extraction.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

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


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of a video; raises :class:`UnreadableVideo` naming the file."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise UnreadableVideo(path, "no such file")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n_frames = len(reader)
        if n_frames == 0:
            raise UnreadableVideo(path, "video stream has no frames")
        first = reader[0]
        reader[n_frames - 1]
        fps = float(reader.get_avg_fps())
    except (decord.DECORDError, RuntimeError, IndexError) as err:
        # decord prefixes "[time] source.cc:line: "; keep the message only
        lines = str(err).strip().splitlines() or [type(err).__name__]
        detail = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", lines[0])
        raise UnreadableVideo(path, f"not a readable video ({detail})") from None
    if not math.isfinite(fps) or fps <= 0:
        raise UnreadableVideo(path, f"invalid frame rate {fps}")
    height, width = int(first.shape[0]), int(first.shape[1])
    return VideoInfo(fps=fps, n_frames=n_frames, width=width, height=height)


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
