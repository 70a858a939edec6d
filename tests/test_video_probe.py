"""Video probing: metadata of good files; for bad ones, an error naming the file and the specific problem."""

from __future__ import annotations

import hashlib
import subprocess

import imageio_ffmpeg
import pytest
from tiny_videos import cut, flip_bytes, write_garbage, write_textured, write_video

from ipoke.data.video import UnreadableVideo, probe, sha256
from ipoke.errors import IpokeError


def reason(path) -> str:
    with pytest.raises(UnreadableVideo) as info:
        probe(path)
    assert isinstance(info.value, IpokeError) and str(path) in str(info.value)
    return info.value.reason


def test_probe_reads_fps_frames_and_size(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n_frames=23, width=48, height=32, fps=12.0)
    info = probe(path)
    assert (info.fps, info.n_frames, info.width, info.height) == (12.0, 23, 48, 32)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert reason(path) == "empty file: 0 bytes"


def test_not_a_video(tmp_path):
    assert reason(write_garbage(tmp_path / "notes.mp4")).startswith(
        "not a video: no video container signature (starts with b'this is not a vi"
    )


def test_truncated_container_without_its_moov_atom(tmp_path):
    """ffmpeg writes the mp4 index (moov) last: a copy cut short has none."""
    path = cut(write_textured(tmp_path / "cut.mp4"), 0.5)
    assert reason(path).startswith("truncated container: no moov atom")


@pytest.mark.parametrize("keep", [0.6, 0.9])
def test_truncated_data_behind_a_complete_index(tmp_path, keep):
    """The index sits at the front (faststart), so the file opens; the frames run out early."""
    path = cut(write_video(tmp_path / "cut.mp4", n_frames=30), keep)
    assert reason(path).startswith("truncated data: ")


def test_bit_flipped_video_reports_its_damaged_frames(tmp_path):
    path = flip_bytes(write_textured(tmp_path / "flipped.mp4"))
    text = reason(path)
    assert text.startswith("decode errors: in ") and " of 30 frames (first: " in text
    damaged = int(text.split()[3])
    assert 0 < damaged <= 30
    assert reason(path) == text  # the count is reproducible


def test_content_hash_is_equal_for_the_same_frames_in_another_container(tmp_path):
    path = write_textured(tmp_path / "a.mp4")
    remuxed = tmp_path / "a.mkv"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-c", "copy", str(remuxed)], check=True)
    assert sha256(path) != sha256(remuxed)
    assert probe(path).content_hash == probe(remuxed).content_hash
    assert probe(path).content_hash != probe(write_textured(tmp_path / "b.mp4", seed=1)).content_hash


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableVideo, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_sha256_is_the_content_hash(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    path.write_bytes(b"abd" * 1000)
    assert sha256(path) == hashlib.sha256(b"abd" * 1000).hexdigest()
