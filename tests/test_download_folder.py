"""The ``folder`` source: a user's directory of videos becomes a manifest, bad files a skip report."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import PurePosixPath
from types import SimpleNamespace

import imageio_ffmpeg
import pytest
from tiny_videos import cut, flip_bytes, write_garbage, write_textured, write_video

from ipoke.config import ParamsError, parse_section
from ipoke.data import manifest
from ipoke.data.sources import folder
from ipoke.data.video import sha256
from ipoke.errors import IpokeError


def build(tmp_path, frame_step=2, **params):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    section = parse_section("download.folder", params, folder.Params)
    return folder.build(SimpleNamespace(folder=section), out, frame_step=frame_step), out


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "plantA" / "take 1.mp4", 25)
    write_video(root / "plantA" / "take2.MP4", 22)
    write_video(root / "plantB" / "v.mkv", 30)
    write_video(root / "top.mp4", 21)
    write_garbage(root / "broken.mp4")
    write_video(root / "short.mp4", 8)
    write_video(root / ".cache" / "hidden.mp4", 25)
    (root / "notes.txt").write_text("not a video")
    return root


def test_manifest_rows_and_skipped_files(tmp_path, videos):
    result, out = build(tmp_path, path=str(videos), split={"rule": "all_train"})
    m = manifest.validate(result.manifest)
    by_path = {row.path: row for row in m.itertuples()}
    assert sorted(by_path) == [
        "videos/plantA/take 1.mp4",
        "videos/plantA/take2.MP4",
        "videos/plantB/v.mkv",
        "videos/top.mp4",
    ]
    row = by_path["videos/plantA/take 1.mp4"]
    assert (row.video_id, row.object_id, row.split) == ("plantA__take_1", "plantA", "train")
    assert (row.n_frames, row.width, row.height, row.fps) == (25, 48, 32, 10.0)
    assert by_path["videos/top.mp4"].object_id == "top"
    for r in m.itertuples():
        assert (out / r.path).is_file()
        assert r.sha256 == sha256(out / r.path)
    assert m[folder.TEST_FROM_FRAME].isna().all()
    reasons = {PurePosixPath(s.path).name: s.reason for s in result.skipped}
    assert set(reasons) == {"broken.mp4", "short.mp4"}
    assert reasons["broken.mp4"].startswith("not a video: ")
    step2 = "a clip is x0 + 10 frames at frame step 2"
    assert reasons["short.mp4"] == f"too short: 8 frames, needs at least 21 ({step2})"


@pytest.mark.parametrize("link", ["hardlink", "copy", "symlink"])
def test_link_modes(tmp_path, link):
    source = write_video(tmp_path / "videos" / "a.mp4", 21)
    _, out = build(tmp_path, path=str(source.parent), link=link)
    placed = out / "videos" / "a.mp4"
    assert placed.read_bytes() == source.read_bytes()
    assert placed.is_symlink() == (link == "symlink")
    same_inode = os.stat(placed).st_ino == os.stat(source).st_ino
    assert same_inode == (link != "copy")


def test_hash_split_keeps_objects_together_and_is_stable(tmp_path):
    root = tmp_path / "videos"
    for obj in range(8):
        for take in range(2):
            write_video(root / f"obj{obj}" / f"t{take}.mp4", 21)
    first, _ = build(tmp_path, path=str(root), split={"rule": "by_object_hash", "test_fraction": 0.5})
    m = first.manifest
    assert m.groupby("object_id")["split"].nunique().eq(1).all()
    expected = {f"obj{o}": "test" if folder.hash_fraction(f"obj{o}") < 0.5 else "train" for o in range(8)}
    assert dict(zip(m["object_id"], m["split"], strict=True)) == expected
    assert set(m["split"]) == {"train", "test"}
    again, _ = build(
        tmp_path / "again", path=str(root), split={"rule": "by_object_hash", "test_fraction": 0.5}
    )
    assert again.manifest["split"].tolist() == m["split"].tolist()


def test_video_hash_split_uses_each_path(tmp_path):
    root = tmp_path / "videos"
    names = [f"v{i}.mp4" for i in range(6)]
    for name in names:
        write_video(root / name, 21)
    result, _ = build(tmp_path, path=str(root), split={"rule": "by_video_hash", "test_fraction": 0.5})
    got = dict(zip(result.manifest["path"], result.manifest["split"], strict=True))
    assert got == {f"videos/{n}": "test" if folder.hash_fraction(n) < 0.5 else "train" for n in names}


def test_subfolder_split(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "train" / "cat" / "a.mp4", 21)
    write_video(root / "test" / "b.mp4", 21)
    write_video(root / "elsewhere" / "c.mp4", 21)
    result, _ = build(tmp_path, path=str(root), split={"rule": "by_subfolder"})
    rows = {r.path: (r.split, r.object_id) for r in result.manifest.itertuples()}
    assert rows == {"videos/train/cat/a.mp4": ("train", "cat"), "videos/test/b.mp4": ("test", "b")}
    assert [(PurePosixPath(s.path).name, s.reason) for s in result.skipped] == [
        ("c.mp4", "not inside a train/ or test/ folder (split rule by_subfolder)")
    ]


def test_within_video_split_marks_the_test_part(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "a.mp4", 26)
    result, _ = build(tmp_path, path=str(root), split={"rule": "within_video", "test_fraction": 0.2})
    row = result.manifest.iloc[0]
    assert row["split"] == "train"
    assert row[folder.TEST_FROM_FRAME] == math.floor(0.8 * 26) == 20


def test_object_pattern(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "VID_3_1.mp4", 21)
    write_video(root / "VID_3_2.mp4", 21)
    write_video(root / "other.mp4", 21)
    result, _ = build(tmp_path, path=str(root), object_pattern=r"VID_(\d+)_")
    assert result.manifest["object_id"].tolist() == ["3", "3"]
    assert [s.reason for s in result.skipped] == ["name does not match object_pattern 'VID_(\\\\d+)_'"]


@pytest.mark.parametrize(
    ("pattern", "message"), [("VID_(", "not a valid regular expression"), ("VID_", "capturing group")]
)
def test_bad_object_pattern_is_a_params_error(pattern, message):
    with pytest.raises(ParamsError, match=message) as info:
        parse_section("download.folder", {"object_pattern": pattern}, folder.Params)
    assert "download.folder.object_pattern" in str(info.value)


def test_ids_are_safe_and_unique():
    rels = [PurePosixPath(p) for p in ["S1/Directions 1.54138969.mp4", "a b.mp4", "a_b.mp4", "x/y.mp4"]]
    ids = folder.video_ids(rels)
    assert ids[0] == "S1__Directions_1_54138969"
    assert ids[3] == "x__y"
    assert len(set(ids)) == 4
    assert ids[1].startswith("a_b-") and ids[2].startswith("a_b-")
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for i in ids)


def test_path_not_set(tmp_path):
    with pytest.raises(IpokeError, match=r"download\.folder\.path is not set"):
        build(tmp_path)


def test_path_is_not_a_directory(tmp_path):
    with pytest.raises(IpokeError, match="not a directory"):
        build(tmp_path, path=str(tmp_path / "missing"))


def test_no_videos(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(IpokeError, match="no video files"):
        build(tmp_path, path=str(tmp_path / "empty"))


def test_nothing_usable_lists_the_reasons(tmp_path):
    root = tmp_path / "videos"
    write_garbage(root / "a.mp4")
    write_video(root / "b.mp4", 5)
    with pytest.raises(IpokeError) as info:
        build(tmp_path, path=str(root))
    text = str(info.value)
    assert "no usable videos" in text
    assert "a.mp4: not a video" in text
    assert "b.mp4: too short: 5 frames" in text


def test_min_frames_follows_the_frame_step(tmp_path):
    """A clip is x0 + 10 frames at the dataset's step: 11 frames at step 1 (folders), 21 at step 2."""
    root = tmp_path / "videos"
    write_video(root / "eleven.mp4", 11)
    write_video(root / "ten.mp4", 10)
    result, _ = build(tmp_path / "step1", frame_step=1, path=str(root))
    assert result.manifest["path"].tolist() == ["videos/eleven.mp4"]
    assert [s.reason for s in result.skipped] == [
        "too short: 10 frames, needs at least 11 (a clip is x0 + 10 frames at frame step 1)"
    ]
    write_video(root / "twelve.mp4", 12)
    explicit, _ = build(tmp_path / "explicit", frame_step=1, path=str(root), min_frames=12)
    assert explicit.manifest["path"].tolist() == ["videos/twelve.mp4"]
    reasons = sorted(s.reason for s in explicit.skipped)
    assert reasons == [
        "too short: 10 frames, needs at least 12 (download.folder.min_frames is 12)",
        "too short: 11 frames, needs at least 12 (download.folder.min_frames is 12)",
    ]


def test_identical_videos_are_kept_once_and_listed(tmp_path):
    """The same video under another name, or remuxed into another container, would leak across splits."""
    root = tmp_path / "videos"
    original = write_video(root / "a" / "take.mp4", 21)
    copy = root / "b" / "copy.mp4"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    remuxed = root / "c" / "take.mkv"
    remuxed.parent.mkdir()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-i", str(original), "-c", "copy", str(remuxed)], check=True)
    write_video(root / "d" / "other.mp4", 21)
    result, _ = build(tmp_path, path=str(root), split={"rule": "by_object_hash", "test_fraction": 0.5})
    assert result.manifest["path"].tolist() == ["videos/a/take.mp4", "videos/d/other.mp4"]
    reasons = {PurePosixPath(s.path).name: s.reason for s in result.skipped}
    assert reasons == {
        "copy.mp4": f"duplicate: same file content as {original}, which is kept",
        "take.mkv": f"duplicate: same decoded frames as {original}, which is kept",
    }


def test_every_broken_file_gets_its_own_reason(tmp_path):
    root = tmp_path / "videos"
    (root / "empty.mp4").parent.mkdir(parents=True)
    (root / "empty.mp4").write_bytes(b"")
    write_garbage(root / "notes.mp4")
    cut(write_textured(root / "unfinished.mp4"), 0.5)
    flip_bytes(write_textured(root / "flipped.mp4", seed=2))
    write_video(root / "good.mp4", 21)
    result, _ = build(tmp_path, path=str(root))
    assert result.manifest["path"].tolist() == ["videos/good.mp4"]
    kinds = {PurePosixPath(s.path).name: s.reason.split(":")[0] for s in result.skipped}
    assert kinds == {
        "empty.mp4": "empty file",
        "notes.mp4": "not a video",
        "unfinished.mp4": "truncated container",
        "flipped.mp4": "decode errors",
    }
