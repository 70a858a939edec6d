"""Tiny video files for the download tests: real H.264 mp4s of a few frames, and broken ones."""

from __future__ import annotations

import functools
import tempfile
import zlib
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


@functools.cache
def _encoded(n_frames: int, width: int, height: int, fps: float, variant: int = 0) -> bytes:
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
            bits = [255 * (variant >> b & 1) for b in range(min(width, 24))]
            frame[-2:, : len(bits)] = np.array(bits, np.uint8)[:, None]  # the name's mark
            writer.append_data(frame)
        writer.close()
        return path.read_bytes()


def write_video(path: Path, n_frames: int, width: int = 48, height: int = 32, fps: float = 10.0) -> Path:
    """An mp4 whose frames differ (a moving bar), so every frame really has to be decoded.

    The bottom rows carry a pattern made from the file's name and folder, so videos of different names
    differ in content (identical ones are ingested once). Each distinct video is encoded once per
    test session and written as bytes after that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    variant = zlib.crc32(f"{path.parent.name}/{path.name}".encode())
    path.write_bytes(_encoded(n_frames, width, height, fps, variant % 2**24))
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a video\n" * 20)
    return path


def write_textured(path: Path, n_frames: int = 30, size: int = 64, seed: int = 0) -> Path:
    """An mp4 of random textures (plenty of coded data to damage), its index (moov) at the end as
    ffmpeg writes it by default, with :func:`ipoke.data.synthetic.video.write_mp4`."""
    from ipoke.data.synthetic.video import write_mp4

    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, frames, fps=10.0, crf=23)
    return path


def flip_bytes(path: Path, n: int = 40, seed: int = 1) -> Path:
    """Invert ``n`` bytes in the middle 80% of the file (the coded frames), as a bad disk would."""
    data = bytearray(path.read_bytes())
    for i in np.random.default_rng(seed).integers(len(data) // 10, len(data) * 9 // 10, n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def cut(path: Path, keep: float) -> Path:
    """Keep only the first ``keep`` share of the file's bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
