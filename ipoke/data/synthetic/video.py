"""Writing and reading mp4: H.264 yuv420p with fixed encoder settings, so equal frames give equal bytes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ipoke.atomic import atomic_path
from ipoke.errors import IpokeError

# Single-threaded x264, no metadata, and swscale's bit-exact C rounding for RGB -> yuv420p: its default SIMD
# paths round differently on different CPUs, which changed the videos' bytes from one machine to the next.
ENCODER_OPTIONS = (
    "-preset", "medium", "-threads", "1", "-map_metadata", "-1",
    "-fflags", "+bitexact", "-flags:v", "+bitexact",
    "-sws_flags", "bicubic+accurate_rnd+bitexact+full_chroma_int", "-f", "mp4",
)  # fmt: skip


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames; the same frames give the same bytes on every machine."""
    import imageio_ffmpeg

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-crf", str(crf), *ENCODER_OPTIONS],
        )  # fmt: skip
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """All frames (T, H, W, 3) uint8 RGB, decoded with decord as the pipeline does."""
    from decord import VideoReader, cpu

    path = Path(path)
    if not path.is_file():
        raise IpokeError(f"{path}: video not found")
    try:
        vr = VideoReader(str(path), ctx=cpu(0), num_threads=1)
        return vr.get_batch(list(range(len(vr)))).asnumpy()
    except Exception as err:  # decord raises its own error types
        raise IpokeError(f"{path}: decord cannot read this video ({err})") from err
