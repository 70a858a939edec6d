"""Flow estimation: units and signs against known motion, the stage's outputs, ptlflow weight handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_frames import SQUARE, extract_dataset, square_frames

from ipoke.data.flow import (
    INDEX_NAME,
    FlowParams,
    OpenCVFlow,
    PtlflowFlow,
    epe,
    estimate,
    load_ptlflow_model,
    magnitude_stats,
)
from ipoke.data.frames import CLIP_LEN, read_index
from ipoke.errors import IpokeError


def square_region(x: int, y: int, margin: int = 3) -> tuple[slice, slice]:
    return slice(y + margin, y + SQUARE - margin), slice(x + margin, x + SQUARE - margin)


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("direction", ["right", "up"])
def test_opencv_flow_gives_displacement_in_pixels_right_and_down(method, direction):
    if direction == "right":  # square at (12, 8) moves 1 px/frame right
        frames, start, expected = square_frames(11, (1, 0), size=(64, 64)), (12, 8), [10.0, 0.0]
    else:  # the downward video played backwards: the square at (12, 18) moves up
        frames = square_frames(11, (0, 1), size=(64, 64))[::-1].copy()
        start, expected = (12, 18), [0.0, -10.0]
    flow = OpenCVFlow(method, inference_size=128)(frames[:1], frames[-1:])[0]
    assert flow.shape == (2, 64, 64) and flow.dtype == np.float32
    inside = flow[(slice(None), *square_region(*start))].reshape(2, -1)
    np.testing.assert_allclose(np.median(inside, axis=1), expected, atol=0.5)
    assert np.abs(flow[:, 50:, 50:]).max() < 0.5  # static background far from the square


def test_chained_flow_composes_displacements_along_each_pixel():
    from ipoke.data.flow import compose_flows

    steps = np.zeros((3, 2, 16, 16), np.float32)
    steps[0, 0] = 1.0  # everything moves right by 1
    steps[1, 0, :, 9:] = 2.0  # then pixels now at x >= 9 move right by 2 more
    steps[2, 1] = -1.0  # then everything moves up by 1
    total = compose_flows(steps)
    np.testing.assert_allclose(total[:, 4, 10], [3.0, -1.0])  # x 10 -> 11 -> 13
    np.testing.assert_allclose(total[:, 4, 5], [1.0, -1.0])  # x 5 -> 6 stays left of 9


def test_estimate_chain_matches_direct_on_uniform_translation():
    from ipoke.data.flow import clip_flows

    video = square_frames(14, (1, 0), size=(48, 64))
    starts, ends = np.array([0, 3]), np.array([10, 13])
    chained = clip_flows(OpenCVFlow("dis", 128), video, starts, ends, FlowParams(chain=True))
    direct = clip_flows(OpenCVFlow("dis", 128), video, starts, ends, FlowParams(chain=False))
    region = (slice(None), *square_region(12, 8))
    for flows in (chained, direct):
        np.testing.assert_allclose(np.median(flows[0][region].reshape(2, -1), axis=1), [10.0, 0.0], atol=0.5)


def test_epe_and_magnitude_stats():
    gt = np.zeros((2, 4, 4), np.float32)
    pred = gt.copy()
    pred[0, 0, 0], pred[1, 0, 0] = 3.0, 4.0
    assert epe(pred, gt) == pytest.approx(5 / 16)
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True
    assert epe(pred, gt, mask) == pytest.approx(2.5)
    stats = magnitude_stats(pred)
    assert stats["mag_max"] == pytest.approx(5.0) and stats["mag_mean"] == pytest.approx(5 / 16)
    assert stats["mag_p95"] <= stats["mag_max"]


def test_estimate_writes_float16_flow_per_clip_in_stored_pixels(tmp_path):
    raw, frames_dir, _ = extract_dataset(tmp_path, size=32, step=1)
    index = read_index(frames_dir)
    out = tmp_path / "flow"
    out.mkdir()
    params = FlowParams(method="dis", clip_stride=5, inference_size=96, epe_methods={})
    result = estimate(frames_dir, index, raw, out, params)
    table = pd.read_parquet(out / INDEX_NAME)
    assert len(table) == result.pairs == 2 * 3  # 24 frames: starts 0, 5, 10
    assert (table["end"] - table["start"] == CLIP_LEN - 1).all()
    assert result.epe == {}  # no ground truth in this dataset
    flows = np.load(out / table.loc[0, "file"])
    assert flows.dtype == np.float16 and flows.shape == (3, 2, 32, 32)
    # video a: +1 source px/frame along x; 10 frames = 10 px at 48 px crop = 6.67 stored px
    x0 = (12 - 8) * 32 / 48
    region = flows[0][:, 6:12, int(x0) + 2 : int(x0) + 8].reshape(2, -1).astype(np.float32)
    np.testing.assert_allclose(np.median(region, axis=1), [10 * 32 / 48, 0.0], atol=0.6)
    b = table[table["video_id"] == "sq/b"]
    assert (b["split"] == "test").all() and (b["mag_max"] >= b["mag_p95"]).all()


@pytest.fixture(scope="module")
def ptlflow_model():
    ptlflow = pytest.importorskip("ptlflow")
    return ptlflow.get_model("raft_small")  # untrained: only used to test the loading code


def test_ptlflow_without_ckpt_refuses_to_run_untrained(ptlflow_model):
    with pytest.raises(IpokeError, match="untrained network"):
        load_ptlflow_model("raft_small", None)


def test_ptlflow_unknown_model_and_unknown_ckpt_name(ptlflow_model):
    with pytest.raises(IpokeError, match="Unknown model name"):
        load_ptlflow_model("no_such_net", "things")
    with pytest.raises(IpokeError, match="not a pretrained name.*pretrained names: things"):
        load_ptlflow_model("raft_small", "no_such_weights")


def test_ptlflow_missing_pretrained_weights_says_what_to_put_where(ptlflow_model, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(IpokeError) as err:
        load_ptlflow_model("raft_small", "things")
    message = str(err.value)
    assert "weights of ptlflow model 'raft_small' ('things') are not available" in message
    assert "raft_small-things-b7d9f997.ckpt" in message and str(tmp_path / "hub" / "checkpoints") in message


def test_ptlflow_loads_local_checkpoint_and_infers(ptlflow_model, tmp_path):
    import torch

    state = ptlflow_model.state_dict()
    ckpt = tmp_path / "raft_small.ckpt"
    torch.save({"state_dict": state}, ckpt)
    model = load_ptlflow_model("raft_small", str(ckpt))
    assert model is not ptlflow_model
    for key, value in model.state_dict().items():  # a fresh model has other random weights
        assert torch.equal(value.cpu(), state[key]), key
    assert not model.training
    frames = square_frames(11, (1, 0), size=(32, 40))
    model.iters = 2  # keep the test fast; the weights are not trained, so only shapes are checked
    flow = PtlflowFlow(model, inference_size=128, device="cpu")(frames[:2], frames[-2:])
    assert flow.shape == (2, 2, 32, 40) and flow.dtype == np.float32 and np.isfinite(flow).all()
    with pytest.raises(IpokeError, match="non-finite flow.*raise estimate_flow.inference_size"):
        PtlflowFlow(model, inference_size=64, device="cpu")(frames[:1], frames[-1:])  # 8x8 features


def test_ptlflow_checkpoint_of_another_model_is_rejected(ptlflow_model, tmp_path):
    import torch

    ckpt = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3)}}, ckpt)
    with pytest.raises(IpokeError, match="weights do not fit ptlflow model 'raft_small'"):
        load_ptlflow_model("raft_small", str(ckpt))


def test_synthetic_flow_matches_gt_in_units_and_sign(tmp_path_factory):
    from test_shards import synthetic_pipeline

    dirs = synthetic_pipeline(tmp_path_factory)
    table = pd.read_parquet(dirs["flow"] / INDEX_NAME)
    assert table["epe"].notna().all() and table["epe_fg"].notna().any()
    methods = {"dis": None, "farneback": None, "no_such_net": "things"}
    params = FlowParams(chain=True, epe_methods=methods, epe_max_pairs=8)
    index = read_index(dirs["frames"])
    out = tmp_path_factory.mktemp("flow_gt")
    result = estimate(dirs["frames"], index, dirs["raw"], out, params)
    assert set(result.epe) == {"dis", "farneback"} and set(result.not_computed) == {"no_such_net"}
    # against GT on pixels where the object moves: estimated flow points the same way at the same scale
    from ipoke.data.flow import GroundTruthCache

    gts, dots, ratios = GroundTruthCache(dirs["raw"]), [], []
    for clip in result.index.itertuples():
        gt, _ = gts.flow_and_mask(index.iloc[clip.video_order], clip.raw_start, clip.raw_end)
        moving = np.linalg.norm(gt, axis=0) > 1.0
        if moving.sum() < 20:
            continue
        est = np.load(out / clip.file)[clip.row].astype(np.float32)
        g, e = gt[:, moving], est[:, moving]
        dots.append((g * e).sum() / (np.linalg.norm(g) * np.linalg.norm(e)))
        ratios.append(np.median(np.linalg.norm(e, axis=0)) / np.median(np.linalg.norm(g, axis=0)))
    print(f"cosine to GT {np.median(dots):.2f}, magnitude ratio {np.median(ratios):.2f}, EPE {result.epe}")
    assert len(dots) >= 3
    # DIS at 64 px underestimates thin parts that move far, but a flipped sign or swapped axes gives <= 0
    assert np.median(dots) > 0.5
    assert 0.4 < np.median(ratios) < 1.5  # pixels at stored resolution (at 128 px it would be ~2)
