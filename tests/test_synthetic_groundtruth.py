"""Ground truth of synthetic videos: exact flow warps frames onto each other, keypoints and masks follow
the rendered object, pokes start on the poked part, and the sidecar round-trips byte for byte."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ipoke.data.sources.synthetic import Params
from ipoke.data.synthetic import world
from ipoke.data.synthetic.groundtruth import load_gt, save_gt
from ipoke.data.synthetic.video import read_mp4, write_mp4
from ipoke.errors import IpokeError

PARAMS = Params(n_objects=2, videos_per_object=1, n_frames=32)


@pytest.fixture(scope="module", params=[0, 1], ids=["plant", "puppet"])
def video(request):
    spec = world.plan(PARAMS)[request.param]
    frames, gt = world.render_video(PARAMS, spec)
    return spec, frames, gt


def warp_error(frames: np.ndarray, gt, t0: int, t1: int) -> tuple[float, float, int]:
    """Mean absolute error of frame t0 against frame t1 sampled along the GT flow, and without moving,
    on object pixels that stay visible (away from part edges)."""
    flow = gt.flow(t0, t1)
    h, w = gt.size
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = xs + flow[0], ys + flow[1]
    pred = cv2.remap(frames[t1], mx, my, cv2.INTER_LINEAR)
    kernel = np.ones((3, 3), np.uint8)
    di = np.clip(np.round(my), 0, h - 1).astype(int)
    dj = np.clip(np.round(mx), 0, w - 1).astype(int)
    keep = np.zeros((h, w), bool)
    for part in np.unique(gt.masks[t0][gt.masks[t0] > 0]):
        here = cv2.erode((gt.masks[t0] == part).astype(np.uint8), kernel).astype(bool)
        there = cv2.erode((gt.masks[t1] == part).astype(np.uint8), kernel).astype(bool)[di, dj]
        keep |= here & there
    a, b, c = frames[t0].astype(float), pred.astype(float), frames[t1].astype(float)
    return np.abs(a - b)[keep].mean(), np.abs(a - c)[keep].mean(), int(keep.sum())


def test_gt_flow_warps_the_poke_end_onto_its_start(video, tmp_path):
    spec, frames, gt = video
    poke = gt.pokes[0]
    t0, t1 = poke["frame_start"], poke["frame_end"]
    assert np.abs(gt.flow(t0, t1)).max() > 5, "the poke should move the object"
    err, still, n = warp_error(frames, gt, t0, t1)
    assert n > 100
    assert err < 3.0 and err < 0.25 * still, (err, still)
    write_mp4(tmp_path / "v.mp4", frames, PARAMS.fps, PARAMS.crf)
    decoded = read_mp4(tmp_path / "v.mp4")
    err, still, _ = warp_error(decoded, gt, t0, t1)
    assert err < 6.0 and err < 0.4 * still, (err, still)


def test_flow_is_zero_on_background_and_for_the_same_frame(video):
    _, _, gt = video
    np.testing.assert_allclose(gt.flow(5, 5), 0, atol=1e-9)
    flow = gt.flow(0, gt.n_frames - 1)
    assert flow.shape == (2, *gt.size) and flow.dtype == np.float32
    assert (flow[:, gt.masks[0] == 0] == 0).all()
    with pytest.raises(IndexError):
        gt.flow(0, gt.n_frames)


def test_tracks_compose_and_keypoints_follow_their_parts(video):
    _, _, gt = video
    pts = np.array([[40.0, 50.0], [70.5, 90.25]])
    for part in range(len(gt.parents)):
        via = gt.track(part, gt.track(part, pts, 0, 11), 11, 23)
        np.testing.assert_allclose(via, gt.track(part, pts, 0, 23), atol=1e-9)
        for t in (7, gt.n_frames - 1):  # pivot keypoints move with their part
            np.testing.assert_allclose(
                gt.track(part, gt.keypoints[0, part], 0, t), gt.keypoints[t, part], atol=1e-3
            )
    t_idx, k_idx = np.meshgrid(np.arange(gt.n_frames), np.arange(gt.keypoints.shape[1]), indexing="ij")
    xy = np.round(gt.keypoints).astype(int)
    assert (gt.masks[t_idx, xy[..., 1], xy[..., 0]] > 0).all(), "every keypoint lies on the rendered object"


def test_masks_match_the_rendered_object(video):
    _, frames, gt = video
    bg = world.make_scene(PARAMS, 0 if gt.family == "plant" else 1, gt.family).background
    bg8 = np.round(bg * 255).astype(np.uint8)
    for t in (0, gt.n_frames // 2):
        differs = np.abs(frames[t].astype(int) - bg8).max(-1) > 0
        mask = gt.masks[t] > 0
        assert (differs[mask]).mean() > 0.98  # object pixels are drawn over the background
        assert not differs[cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0].any()
        assert set(np.unique(gt.masks[t])) <= set(range(len(gt.parents) + 1))


def test_pokes_start_on_the_poked_part_and_end_at_the_target(video):
    _, _, gt = video
    assert gt.pokes
    for p in gt.pokes:
        assert 0 <= p["frame_start"] < p["frame_end"] < gt.n_frames
        assert gt.masks[p["frame_start"], round(p["y"]), round(p["x"])] == p["part"] + 1
        end = gt.track(p["part"], np.array([p["x"], p["y"]]), p["frame_start"], p["frame_end"])
        assert np.linalg.norm(end - np.array([p["tx"], p["ty"]])) < 2.5


def test_sidecar_round_trip_is_exact_and_byte_identical(video, tmp_path):
    _, _, gt = video
    save_gt(tmp_path / "a.npz", gt)
    save_gt(tmp_path / "b.npz", gt)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = load_gt(tmp_path / "a.npz")
    for name in ("keypoints", "masks", "transforms", "angles", "parents"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gt, name))
        assert getattr(back, name).dtype == getattr(gt, name).dtype
    assert back.pokes == gt.pokes and back.size == gt.size and back.family == gt.family
    assert back.part_names == gt.part_names and set(back.hidden) == {"stiffness", "damping"}
    np.testing.assert_array_equal(back.flow(0, 9), gt.flow(0, 9))


def test_load_gt_names_the_file_on_bad_input(tmp_path):
    with pytest.raises(IpokeError, match="missing.npz"):
        load_gt(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(IpokeError, match="junk.npz"):
        load_gt(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", keypoints=np.zeros((1, 1, 2)))
    with pytest.raises(IpokeError, match="partial.npz.*lacks"):
        load_gt(tmp_path / "partial.npz")
