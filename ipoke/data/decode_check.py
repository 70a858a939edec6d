"""A full decode of a video with FFmpeg (the binary imageio-ffmpeg ships): why a file cannot be read, which
frames the decoder had to conceal, and a hash of the decoded content.

decord opens a bit-flipped mp4 and returns frames with concealed macroblocks; its only sign of trouble is
decoder chatter on stderr. FFmpeg's command line says the same per frame ("corrupt decoded frame") and
names the container's problems ("moov atom not found", "partial file"), so one pass with
``-f framehash`` gives the verdict, the number of decoded frames and a per-frame hash whose digest
identifies videos with the same decoded frames in different files.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

CORRUPT_FRAME = "corrupt decoded frame"
DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
STREAM = re.compile(r"Stream #0:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment):")
# Container signatures: ISO-BMFF (mp4/mov/m4v) boxes at byte 4, Matroska/WebM, AVI, MPEG-PS/-TS, FLV, ASF.
ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
SIGNATURES = (b"\x1aE\xdf\xa3", b"RIFF", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV", b"0&\xb2u")


@dataclass(frozen=True)
class DecodeCheck:
    frames: int  # frames FFmpeg decoded
    corrupt_frames: int  # frames the decoder flagged as damaged (concealed errors)
    truncated: bool  # the data ends before the container's index says ("partial file")
    duration_s: float | None  # container duration, one-stream files: frames lost at the end show
    content_hash: str  # sha256 over the per-frame hashes of the decoded frames
    first_error: str | None  # first error FFmpeg printed, without its "[module @ address]" prefix


class Unopenable(Exception):
    """FFmpeg cannot open the file as a video; ``reason`` says why in words for ``skipped.csv``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def container_kind(head: bytes) -> str | None:
    """``"iso"`` for mp4/mov-like files, ``"other"`` for another known container, None for neither."""
    if head[4:8] in ISO_BOXES:
        return "iso"
    if head.startswith(SIGNATURES) or (len(head) > 188 and head[0] == head[188] == 0x47):
        return "other"
    return None


def _clean(line: str) -> str:
    """The message without FFmpeg's "[module @ address] [level]" prefixes."""
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()


def _open_failure(path: Path, errors: list[str]) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    kind = container_kind(head)
    text = "\n".join(errors)
    if kind is None:
        return f"not a video: no video container signature (starts with {head[:16]!r})"
    if kind == "iso" and "moov atom not found" in text:
        return (
            f"truncated container: no moov atom (the index of an mp4/mov; {path.stat().st_size} bytes, "
            "cut short before it was written)"
        )
    if "matches no streams" in text:
        return "no video stream: the file holds no video"
    detail = next((_clean(e) for e in errors if _clean(e)), "unknown error")
    if kind == "iso":
        return f"damaged container: its index cannot be read (ffmpeg: {detail})"
    return f"not a readable video: ffmpeg says {detail}"


def check(path: str | os.PathLike) -> DecodeCheck:
    """Decode every frame of the first video stream once; raises :class:`Unopenable` if FFmpeg cannot.

    One decoder thread: with frame threads the number of frames flagged corrupt varies between runs.
    """
    import imageio_ffmpeg

    path = Path(path)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "repeat+level+info",
        "-threads", "1", "-i", str(path), "-map", "0:v:0", "-an", "-sn",
        "-f", "framehash", "-hash", "md5", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if re.search(r"\[(warning|error|fatal|panic)\]", line)]
    duration = next((m for m in map(DURATION.search, lines) if m), None)
    streams = {m[1] for m in map(STREAM.search, lines) if m}  # input streams (the output adds none new)
    if len(streams) > 1:
        duration = None  # the container's duration may be another stream's (audio running on)
    hashes = [line.rsplit(",", 1)[-1].strip() for line in proc.stdout.splitlines() if line[:1].isdigit()]
    truncated = any("partial file" in e for e in errors)
    if proc.returncode != 0 and not hashes and not truncated:
        raise Unopenable(_open_failure(path, errors))
    damaged = [e for e in errors if CORRUPT_FRAME not in e]
    return DecodeCheck(
        frames=len(hashes),
        corrupt_frames=sum(CORRUPT_FRAME in e for e in errors),
        truncated=truncated,
        duration_s=int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3]) if duration else None,
        content_hash=hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
        first_error=_clean(damaged[0]) if damaged else None,
    )
