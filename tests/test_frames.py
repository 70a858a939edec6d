"""Frame extraction: decoding, subsampling, crop/resize geometry, skipped videos, clip enumeration.

``make_raw_dataset`` (also used by the flow, shard and loader tests) writes tiny videos of a textured square
translating by a known number of pixels per frame, so the true flow of every clip is known.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import pandas as pd
import pytest

from ipoke.data import manifest
from ipoke.data.frames import (
    CLIP_LEN,
    FramesParams,
    Geometry,
    clip_table,
    decode_size,
    extract,
    read_index,
    resize_flow,
    size_note,
)
from ipoke.errors import IpokeError

SQUARE = 16


def textured(rng: np.random.Generator, shape: tuple[int, int], blur: float) -> np.ndarray:
    img = (rng.random((*shape, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur)


def square_frames(n: int, velocity: tuple[int, int], size=(48, 64), seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a textured square moving ``velocity`` (dx, dy) pixels per frame over a static
    textured background; its top-left corner starts at x=12, y=8."""
    rng = np.random.default_rng(seed)
    background = (textured(rng, size, 2.0) * 0.5).astype(np.uint8)
    square = textured(rng, (SQUARE, SQUARE), 1.0)
    frames = np.repeat(background[None], n, axis=0)
    for t in range(n):
        x, y = 12 + velocity[0] * t, 8 + velocity[1] * t
        frames[t, y : y + SQUARE, x : x + SQUARE] = square
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", quality=10, macro_block_size=16,
                     ffmpeg_log_level="error")


def make_raw_dataset(root: Path, broken: bool = False) -> Path:
    """data/raw-like folder with a manifest: two moving-square videos (train, test) of 24 frames;
    with ``broken`` also a too-short video and a corrupt file."""
    raw = root / "raw"
    videos = {
        "sq/a.1": ("train", square_frames(24, (1, 0), seed=1)),
        "sq/b": ("test", square_frames(24, (0, 1), seed=2)),
    }
    if broken:
        videos["short"] = ("train", square_frames(6, (1, 0), seed=3))
    rows = []
    for vid, (split, frames) in videos.items():
        rel = f"videos/{vid.replace('/', '_')}.mp4"
        write_video(raw / rel, frames)
        rows.append({"video_id": vid, "path": rel, "object_id": vid.split("/")[0], "split": split,
                     "fps": 10.0, "n_frames": len(frames), "width": 64, "height": 48, "sha256": "0" * 64})
    if broken:
        (raw / "videos/corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        rows.append({"video_id": "corrupt", "path": "videos/corrupt.mp4", "object_id": "c", "split": "train",
                     "fps": 10.0, "n_frames": 24, "width": 64, "height": 48, "sha256": "0" * 64})
    manifest.write(pd.DataFrame(rows), raw)
    return raw


def extract_dataset(root: Path, size: int = 32, step: int = 1, broken: bool = False):
    raw = make_raw_dataset(root, broken)
    out = root / "frames"
    out.mkdir()
    params = FramesParams(size=size, step={"toy": step}, workers=2)
    return raw, out, extract(raw, out, params, "toy")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    return extract_dataset(tmp_path_factory.mktemp("frames"), step=2, broken=True)


def test_extract_decodes_subsamples_and_crops(extracted):
    raw, out, result = extracted
    index = read_index(out)
    assert list(index["video_id"]) == ["sq/a.1", "sq/b"]
    assert list(index["split"]) == ["train", "test"]
    assert (index["n_frames"] == 12).all() and (index["step"] == 2).all()
    assert (index["src_height"] == 48).all() and (index["src_width"] == 64).all()
    assert result.frames == 24
    frames = np.load(out / index.loc[0, "file"])
    assert frames.shape == (12, 32, 32, 3) and frames.dtype == np.uint8
    geo = Geometry.fit((48, 64), 32, "center_crop")
    source = square_frames(24, (1, 0), seed=1)
    for i in (0, 5, 11):  # stored frame i is source frame 2 i
        expected = geo.image(source[2 * i]).astype(np.float32)
        assert np.abs(frames[i].astype(np.float32) - expected).mean() < 6.0  # codec noise only


def test_extract_skips_short_and_corrupt_videos_with_reasons(extracted):
    _, _, result = extracted
    reasons = dict(zip(result.skipped["video_id"], result.skipped["reason"], strict=True))
    assert set(reasons) == {"short", "corrupt"}
    assert reasons["short"].startswith("too short: 3 frames after step 2")
    assert reasons["corrupt"].startswith("unreadable video")


def test_extract_with_nothing_usable_names_the_problem(tmp_path):
    raw = tmp_path / "raw"
    (raw / "v").mkdir(parents=True)
    (raw / "v/x.mp4").write_bytes(b"not a video")
    manifest.write(pd.DataFrame([{"video_id": "x", "path": "v/x.mp4", "object_id": "x", "split": "train",
                                  "fps": 1.0, "n_frames": 1, "width": 1, "height": 1, "sha256": ""}]), raw)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IpokeError, match="no usable video.*x.mp4: unreadable video"):
        extract(raw, out, FramesParams(), "toy")


def test_geometry_centre_crop_maps_points_flow_and_masks_consistently():
    geo = Geometry.fit((48, 64), 24, "center_crop")
    assert (geo.top, geo.left, geo.crop_h, geo.crop_w) == (0, 8, 48, 48)
    assert geo.scale == (0.5, 0.5)
    # pixel-centre convention: source pixels 8 and 9 (x) land on stored pixel 0, centre at 0.0
    np.testing.assert_allclose(geo.points(np.array([[8.5, 0.5], [54.5, 46.5]])), [[0.0, 0.0], [23.0, 23.0]])
    flow = np.zeros((2, 48, 64), np.float32)
    flow[0], flow[1] = 4.0, -2.0
    np.testing.assert_allclose(geo.flow(flow)[:, 3, 3], [2.0, -1.0])
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 8:32] = 2
    m = geo.mask(mask)
    assert m.shape == (24, 24) and set(np.unique(m)) == {0, 2} and (m[:, :12] == 2).all()


def test_geometry_stretch_scales_axes_independently():
    geo = Geometry.fit((48, 64), 16, "stretch")
    assert geo.scale == (0.25, 1 / 3)
    flow = np.ones((2, 48, 64), np.float32) * 3
    np.testing.assert_allclose(geo.flow(flow)[:, 8, 8], [0.75, 1.0], rtol=1e-6)


def test_resize_flow_upsampling_scales_values():
    flow = np.stack([np.full((8, 8), 1.0), np.full((8, 8), -0.5)]).astype(np.float32)
    up = resize_flow(flow[None], (32, 16))
    assert up.shape == (1, 2, 32, 16)
    np.testing.assert_allclose(up[0, :, 5, 5], [2.0, -2.0])


def test_clip_table_uses_video_split_and_test_from_frame():
    index = pd.DataFrame({
        "video_id": ["a", "b"], "split": ["train", "train"], "n_frames": [30, 12], "step": [2, 1],
        "test_from_frame": [30.0, np.nan],
    })
    clips = clip_table(index, stride=5)
    a = clips[clips["video_id"] == "a"]
    # starts 0, 5, 10, 15 span source frames [0, 20], [10, 30], [20, 40], [30, 50]: the first ends before
    # frame 30 (train), the middle two straddle it (dropped), the last starts at it (test)
    assert list(a["start"]) == [0, 15] and list(a["split"]) == ["train", "test"]
    assert list(a["raw_start"]) == [0, 30] and list(a["raw_end"]) == [20, 50]
    assert (a["end"] - a["start"] == CLIP_LEN - 1).all()
    b = clips[clips["video_id"] == "b"]
    assert list(b["start"]) == [0] and list(b["split"]) == ["train"]
    assert clips["clip_id"].is_unique


def single_video_dataset(root: Path, frames: np.ndarray) -> Path:
    raw = root / "raw"
    write_video(raw / "videos/v.mp4", frames)
    h, w = frames.shape[1:3]
    manifest.write(pd.DataFrame([{"video_id": "v", "path": "videos/v.mp4", "object_id": "v", "split": "train",
                                  "fps": 10.0, "n_frames": len(frames), "width": w, "height": h,
                                  "sha256": ""}]), raw)
    return raw


def test_still_videos_are_flagged_despite_camera_noise(tmp_path):
    rng = np.random.default_rng(0)
    scene = textured(rng, (48, 64), 1.0)
    noisy = np.clip(scene[None] + rng.normal(0, 3, (24, 48, 64, 3)), 0, 255).astype(np.uint8)
    for name, frames, still in (("still", noisy, True), ("moving", square_frames(24, (1, 0)), False)):
        out = tmp_path / name / "frames"
        out.mkdir(parents=True)
        raw = single_video_dataset(tmp_path / name, frames)
        index = extract(raw, out, FramesParams(size=32), "toy").index
        assert bool(index.loc[0, "still"]) is still, index.loc[0, "moving_share"]
    assert index.loc[0, "moving_share"] > 0.05


def test_odd_sizes_are_noted():
    assert size_note((53, 127), 64, "center_crop") == (
        "source 127x53: its centre 53x53 square is upscaled 1.21x to 64x64; "
        "source 127x53: the centre crop keeps 42% of each frame"
    )
    assert size_note((48, 64), 32, "center_crop") == ""
    assert size_note((20, 30), 32, "stretch") == "source 30x20: it is upscaled 1.60x to 32x32"


def test_small_source_gets_its_note_in_the_index(tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    raw = single_video_dataset(tmp_path, square_frames(12, (1, 0), size=(32, 64)))
    index = extract(raw, out, FramesParams(size=40), "toy").index
    assert index.loc[0, "note"] == "source 64x32: its centre 32x32 square is upscaled 1.25x to 40x40"


def test_large_sources_are_decoded_at_a_bounded_size(tmp_path):
    """decord scales while decoding: at most twice the stored size, so a 4K frame never exists in full."""
    assert decode_size((2160, 3840), 64, "center_crop") == (128, 228)
    assert decode_size((2160, 3840), 64, "stretch") == (128, 128)
    assert decode_size((128, 128), 64, "center_crop") == (128, 128)  # the synthetic default: as it is
    source = square_frames(12, (1, 0), size=(240, 320))
    raw = single_video_dataset(tmp_path, source)
    out = tmp_path / "frames"
    out.mkdir()
    index = extract(raw, out, FramesParams(size=32), "toy").index
    assert (index.loc[0, "src_height"], index.loc[0, "src_width"]) == (240, 320)  # the source's own size
    frames = np.load(out / index.loc[0, "file"])
    expected = Geometry.fit((240, 320), 32, "center_crop").image(source[0])
    assert np.abs(frames[0].astype(np.float32) - expected).mean() < 6.0
