"""Tiny video files for the download tests: real H.264 mp4s of a few frames, and broken ones."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


@functools.cache
def _encoded(n_frames: int, width: int, height: int, fps: float) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = imageio.get_writer(
            path,
            fps=fps,
            codec="libx264",
            macro_block_size=16,
            ffmpeg_log_level="error",
            output_params=["-pix_fmt", "yuv420p", "-movflags", "+faststart"],
        )
        for i in range(n_frames):
            frame = np.full((height, width, 3), 40, np.uint8)
            frame[:, (i * 3) % width] = (255, 200, 0)
            writer.append_data(frame)
        writer.close()
        return path.read_bytes()


def write_video(path: Path, n_frames: int, width: int = 48, height: int = 32, fps: float = 10.0) -> Path:
    """An mp4 whose frames differ (a moving bar), so every frame really has to be decoded.

    Each distinct shape is encoded once per test session and written as bytes after that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encoded(n_frames, width, height, fps))
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a video\n" * 20)
    return path
