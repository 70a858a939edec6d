"""Video probing with decord: metadata of good files, a clear error naming the file for bad ones."""

from __future__ import annotations

import hashlib

import pytest
from tiny_videos import write_garbage, write_video

from ipoke.data.video import UnreadableVideo, VideoInfo, probe, sha256
from ipoke.errors import IpokeError


def test_probe_reads_fps_frames_and_size(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n_frames=23, width=48, height=32, fps=12.0)
    assert probe(path) == VideoInfo(fps=12.0, n_frames=23, width=48, height=32)


def test_garbage_file_names_the_file(tmp_path):
    path = write_garbage(tmp_path / "bad.mp4")
    with pytest.raises(UnreadableVideo) as info:
        probe(path)
    assert isinstance(info.value, IpokeError)
    assert str(path) in str(info.value)
    assert info.value.reason.startswith("not a readable video")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_cut_short_video_is_unreadable(tmp_path, keep):
    """The index sits at the front (faststart), so the file opens; decoding its last frame fails."""
    data = write_video(tmp_path / "full.mp4", n_frames=30).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnreadableVideo, match="cut.mp4"):
        probe(cut)


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableVideo, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_sha256_is_the_content_hash(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    path.write_bytes(b"abd" * 1000)
    assert sha256(path) == hashlib.sha256(b"abd" * 1000).hexdigest()
