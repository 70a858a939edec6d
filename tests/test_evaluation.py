"""The evaluation protocol and its outputs, with test-double pipelines over tiny hand-made test shards.

The shards hold clips of a textured square sliding by a known shift (its flow, mask and corner keypoints
are exact). :class:`ShiftDouble` implements the ``PokePipeline`` sampling interface without a model: it
slides the whole start frame along the mean displacement of the poke map (following the poke) or along a
random direction drawn from the seed (ignoring it); each sample gets its own gain, so samples differ.
"""

from __future__ import annotations

import json
import math
import sys
import types

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from metrics_scenes import textures

from ipoke.data.shards import ShardSink, npy_bytes, write_index
from ipoke.errors import IpokeError
from ipoke.evaluation.protocol import (
    AmbiguityParams,
    EvalProfile,
    KinematicsParams,
    evaluate,
    poked_keypoints,
)
from ipoke.evaluation.results import CONTROL_METHODS
from ipoke.metrics import MetricUnavailable
from ipoke.pretrained import store

SIZE = 32
T = 11
PATCH = 12


def clip_frames(shift: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, S, S, 3)`` uint8 frames of a textured square moving by ``shift``; its ``(T, 5, 2)`` keypoints."""
    background, texture = textures(SIZE, PATCH, seed)
    origin = np.array([10.0, 10.0])
    frames, keypoints = [], []
    for t in range(T):
        corner = origin + np.asarray(shift) * t / (T - 1)
        canvas, mask = np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), np.float32)
        canvas[:PATCH, :PATCH], mask[:PATCH, :PATCH] = texture, 1.0
        m = np.float32([[1, 0, corner[0]], [0, 1, corner[1]]])
        canvas = cv2.warpAffine(canvas, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        gray = np.clip(background * (1 - mask) + canvas * mask, 0, 255).astype(np.uint8)
        frames.append(np.repeat(gray[..., None], 3, axis=2))
        p = PATCH - 1
        keypoints.append(corner + np.array([[0, 0], [p, 0], [0, p], [p, p], [p / 2, p / 2]]))
    return np.stack(frames), np.stack(keypoints).astype(np.float32)


def write_test_shards(directory, n_clips: int = 6, with_keypoints: bool = True):
    """Tiny test shards (and ``clips.parquet``) in ``directory``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    sink = ShardSink(str(directory), "test", max_bytes=2**30, max_samples=4)
    rows = []
    for i in range(n_clips):
        angle = 2 * math.pi * i / n_clips
        shift = (6.0 * math.cos(angle), 6.0 * math.sin(angle))
        frames, keypoints = clip_frames(shift, seed=i)
        flow = np.zeros((2, SIZE, SIZE), np.float32)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[10 : 10 + PATCH, 10 : 10 + PATCH] = 1
        flow[0][mask > 0], flow[1][mask > 0] = shift
        clip_id = f"clip{i:03d}"
        sample = {
            "__key__": clip_id,
            "frames.npy": npy_bytes(frames),
            "flow.npy": npy_bytes(flow.astype(np.float16)),
            "gt_flow.npy": npy_bytes(flow.astype(np.float16)),
            "mask.npy": npy_bytes(mask),
            "meta.json": json.dumps({"clip_id": clip_id}).encode(),
        }
        if with_keypoints:
            sample["keypoints.npy"] = npy_bytes(keypoints)
        rows.append({"clip_id": clip_id, "split": "test", "shard": sink.write(sample)})
    sink.close()
    write_index(pd.DataFrame(rows), directory, None)
    return directory


class ShiftDouble:
    """Slides x0 along the poke (``follow=True``) or along a seeded random direction; not a model.

    Its "autoencoder" reconstructs real clips perfectly, or (``still_reconstruction``) as x0 repeated.
    """

    def __init__(
        self, follow: bool = True, size: int = SIZE, n_frames: int = T, still_reconstruction: bool = False
    ):
        self.follow, self.size, self.n_frames, self.max_pokes = follow, size, n_frames, 5
        self.still_reconstruction = still_reconstruction
        self.poke_conditioned = follow
        self.device = torch.device("cpu")
        self.calls = 0

    def sample_batch(self, x0, poke, n, seed, temperature=1.0):
        self.calls += 1
        rng = np.random.default_rng(seed)
        out = torch.empty(x0.shape[0], n, self.n_frames, 3, self.size, self.size)
        for b in range(x0.shape[0]):
            image = ((x0[b].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)
            moving = poke[b].abs().sum(0) > 0
            if self.follow:
                shift = poke[b][:, moving].mean(1).numpy() if moving.any() else np.zeros(2)
            else:
                angle = rng.uniform(0, 2 * np.pi)
                shift = 6.0 * np.array([np.cos(angle), np.sin(angle)])
            for s in range(n):
                gain = 1.0 + 0.1 * temperature * rng.standard_normal()
                for t in range(self.n_frames):
                    d = shift * gain * t / (self.n_frames - 1)
                    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
                    frame = cv2.warpAffine(image, m, (self.size, self.size), borderMode=cv2.BORDER_REFLECT)
                    out[b, s, t] = torch.from_numpy(frame).permute(2, 0, 1) / 127.5 - 1
        out[:, :, 0] = x0[:, None]
        return out.clamp(-1, 1)

    def reconstruct(self, video):
        return video[:, :1].expand_as(video).clone() if self.still_reconstruction else video.clone()


def small_profile(**changes) -> EvalProfile:
    base = EvalProfile(
        n_clips=6,
        n_samples=3,
        batch_size=4,
        grid_clips=2,
        kinematics=KinematicsParams(n_images=1, n_pokes=6),
        ambiguity=AmbiguityParams(n_examples=2, n_samples=3),
    )
    return base.model_copy(update=changes)


def unavailable(metric: str) -> MetricUnavailable:
    return MetricUnavailable(metric, f"{metric} weights not found at /nowhere", "download them")


def run(double, shards, profile=None):
    return evaluate(
        double, shards, profile or small_profile(), "synthetic", unavailable("lpips"), unavailable("fvd")
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_test_shards(tmp_path_factory.mktemp("shards") / "synthetic")


@pytest.fixture(scope="module")
def following(shards):
    return run(ShiftDouble(follow=True), shards)


@pytest.fixture(scope="module")
def ignoring(shards):
    return run(ShiftDouble(follow=False), shards)


def test_shapes_and_ranges(following):
    r = following
    assert r.clip_ids == [f"clip{i:03d}" for i in range(6)]
    assert r.psnr.shape == r.ssim.shape == (6, 3) and r.div_mse.shape == (6,)
    assert ((r.n_pokes >= 1) & (r.n_pokes <= 5)).all()
    assert np.isfinite(r.psnr).all() and ((r.ssim > -1) & (r.ssim <= 1)).all()
    assert (r.div_mse > 0).all()  # the samples differ
    for method in CONTROL_METHODS:
        assert r.control_error[method].shape == r.keypoint_error[method].shape == (6,)
    assert [len(g.samples) for g in r.grids] == [3, 3]
    assert r.grids[0].ground_truth.shape == (T, SIZE, SIZE, 3) and r.grids[0].no_poke.shape == (
        T,
        SIZE,
        SIZE,
        3,
    )
    assert [p.n_pokes for p in r.ambiguity] == [1, 2, 3, 4, 5]
    assert r.ambiguity_error.startswith("keypoint")
    (kmap,) = r.kinematics
    assert kmap.map.variance.shape == (SIZE, SIZE) and kmap.n_pokes == 6


def test_following_the_poke_beats_ignoring_it_and_nears_the_floor(following, ignoring):
    follow, ignore = following.summary(), ignoring.summary()
    control = follow["control_error_px"]
    assert control["ipoke"] < ignore["control_error_px"]["ipoke"]
    assert control["ipoke"] < control["no_poke"]
    assert control["ipoke"] - control["gt_floor"] < 0.5 * (control["no_poke"] - control["gt_floor"])
    assert follow["keypoint_error_px"]["ipoke"] < ignore["keypoint_error_px"]["ipoke"]
    assert follow["psnr"] > ignore["psnr"]


def test_the_autoencoder_row_tracks_the_reconstruction_of_the_real_clip(shards, following):
    # A perfect reconstruction is tracked like the real clip ...
    np.testing.assert_allclose(following.control_error["ae_recon"], following.control_error["gt_floor"])
    np.testing.assert_allclose(following.keypoint_error["ae_recon"], following.keypoint_error["gt_floor"])
    # ... one that does not move leaves the poked point where it was: its error is the poke length.
    still = run(ShiftDouble(follow=True, still_reconstruction=True), shards)
    assert np.allclose(still.control_error["ae_recon"], 6.0, atol=1.0)
    np.testing.assert_allclose(still.control_error["ipoke"], following.control_error["ipoke"])
    # The ambiguity curve's reference lines score the same videos with the curve's error.
    reference = following.ambiguity_reference
    assert reference["ae_recon"] == pytest.approx(reference["gt_floor"])
    assert still.ambiguity_reference["gt_floor"] == pytest.approx(reference["gt_floor"])
    assert still.ambiguity_reference["ae_recon"] > reference["gt_floor"] + 2.0  # the keypoints stayed put
    assert following.summary()["ambiguity_reference"] == pytest.approx(reference, rel=1e-5)
    # the curve's pokes are the test clips' own: the spacing does not depend on the model
    assert following.ambiguity_poke_spacing > 0
    assert still.ambiguity_poke_spacing == following.ambiguity_poke_spacing
    assert following.summary()["ambiguity_poke_spacing_px"] == pytest.approx(following.ambiguity_poke_spacing)


def test_the_no_poke_rows_use_an_empty_poke_map(following, ignoring):
    # The following double does not move without a poke: its no-poke error is the poke length.
    assert np.allclose(following.control_error["no_poke"], 6.0, atol=1.0)
    # The ignoring double gets the same seeds with and without a poke, so the two rows agree.
    np.testing.assert_allclose(ignoring.control_error["no_poke"], ignoring.control_error["ipoke"])


def test_same_seed_same_numbers(shards, following):
    again = run(ShiftDouble(follow=True), shards)
    assert again.summary() == following.summary()
    np.testing.assert_array_equal(again.grids[1].samples, following.grids[1].samples)


def test_summary_reports_missing_weights_as_not_computed(following):
    summary = following.summary()
    for key, metric in {"fvd": "fvd", "lpips": "lpips", "div_lpips_e4": "lpips"}.items():
        assert summary[key] == {"status": "not computed", "reason": f"{metric} weights not found at /nowhere"}
    assert {u.metric: u.how_to_fix for u in following.not_computed()} == {
        "fvd": "download them",
        "lpips": "download them",
    }
    assert set(summary) >= {"ssim", "psnr", "div_mse_e4", "control_error_px", "keypoint_error_px", "n_clips"}


class MeanAbsDistance(torch.nn.Module):
    """Stands in for the LPIPS network to test the plumbing (not LPIPS): mean |a - b| per frame pair."""

    def forward(self, a, b):
        return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)


class TinyI3D(torch.nn.Module):
    """Stands in for the I3D to test the plumbing: channel means and last-minus-first frame as features."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([x.mean(dim=(2, 3, 4)), (x[:, :, -1] - x[:, :, 0]).mean(dim=(2, 3))], 1)
        return features, features


def test_with_weights_fvd_and_lpips_become_numbers(shards):
    from ipoke.metrics.fvd import I3DFeatures
    from ipoke.metrics.perceptual import Lpips

    profile = small_profile(ambiguity=AmbiguityParams(n_examples=0), grid_clips=0)
    results = evaluate(
        ShiftDouble(), shards, profile, "synthetic", Lpips(MeanAbsDistance()), I3DFeatures(TinyI3D())
    )
    summary = results.summary()
    assert results.lpips.shape == (6, 3) and results.div_lpips.shape == (6,)
    assert all(isinstance(summary[k], float) for k in ("fvd", "lpips", "div_lpips_e4"))
    assert summary["fvd"] >= 0 and summary["div_lpips_e4"] > 0
    assert {u.metric for u in results.not_computed()} == {"ambiguity"}


def test_clips_without_keypoints_report_keypoint_error_as_not_computed(tmp_path):
    shards = write_test_shards(tmp_path / "plain", n_clips=4, with_keypoints=False)
    profile = small_profile(n_clips=4, ambiguity=AmbiguityParams(n_examples=0), grid_clips=0)
    results = run(ShiftDouble(), shards, profile)
    assert results.summary()["keypoint_error_px"]["status"] == "not computed"
    assert isinstance(results.ambiguity, MetricUnavailable)
    assert results.summary()["ambiguity_reference"]["status"] == "not computed"
    assert results.summary()["ambiguity_poke_spacing_px"]["status"] == "not computed"


def test_without_keypoints_the_ambiguity_curve_and_its_reference_use_lpips(tmp_path):
    from ipoke.metrics.perceptual import Lpips

    shards = write_test_shards(tmp_path / "plain", n_clips=4, with_keypoints=False)
    profile = small_profile(n_clips=4, grid_clips=0)
    lpips = Lpips(MeanAbsDistance())
    perfect = evaluate(ShiftDouble(), shards, profile, "synthetic", lpips, unavailable("fvd"))
    still = evaluate(
        ShiftDouble(still_reconstruction=True), shards, profile, "synthetic", lpips, unavailable("fvd")
    )
    assert perfect.ambiguity_error == "LPIPS to GT frames"
    assert set(perfect.ambiguity_reference) == {"ae_recon"}  # no tracker floor without keypoints
    assert perfect.ambiguity_reference["ae_recon"] == pytest.approx(0.0, abs=1e-6)
    assert still.ambiguity_reference["ae_recon"] > 0.01
    assert perfect.ambiguity_poke_spacing > 0  # the spacing does not need keypoints


def test_poked_keypoints_are_the_nearest_in_view():
    keypoints = np.array([[[1.0, 1.0], [20.0, 20.0], [-5.0, 3.0]]] * 2)
    pokes = np.array([[19.0, 18.0, 1.0, 1.0], [0.0, 0.0, 2.0, 0.0], [21.0, 21.0, 0.0, 0.0]])
    assert poked_keypoints(keypoints, pokes, SIZE).tolist() == [0, 1]


def test_a_pipeline_of_another_size_is_refused(shards):
    with pytest.raises(IpokeError, match="evaluate on the shards it was trained on"):
        run(ShiftDouble(size=16), shards)


PROJECT_PARAMS = """
dataset: synthetic
profile: demo
loader: {pokes: {max_pokes: 5, patch_size: 5, background_prob: 0.0833, foreground_filter: false}}
evaluate:
  demo: {n_clips: 5, n_samples: 2, batch_size: 4, grid_clips: 1, kinematics: {n_images: 1, n_pokes: 4},
         ambiguity: {n_examples: 1, n_samples: 2}}
  paper: {}
report: {title: Test evaluation, max_grids: 1}
"""


def make_project(root, monkeypatch):
    """A project directory with params, test shards, a (double) pipeline and its own MLflow store, and no
    pretrained weights (an empty cache, the package registry unreachable); the working directory moves
    there."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(PROJECT_PARAMS)
    write_test_shards(root / "data" / "shards" / "synthetic")
    (root / "models" / "synthetic" / "pipeline").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(root / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))

    def unreachable(spec, folder):
        raise store._FetchFailed("registry unreachable")

    monkeypatch.setattr(store, "_download_sdist", unreachable)

    class DoublePipeline:
        @classmethod
        def load(cls, directory, device="auto"):
            assert str(directory) == "models/synthetic/pipeline"
            return ShiftDouble()

    sampling = types.ModuleType("ipoke.sampling")
    sampling.PokePipeline = DoublePipeline
    monkeypatch.setitem(sys.modules, "ipoke.sampling", sampling)
    return root


def parent_run_artifacts(run_id: str, folder: str) -> set[str]:
    import mlflow

    client = mlflow.MlflowClient()
    return {a.path for a in client.list_artifacts(run_id, folder)}


def test_evaluate_stage_writes_metrics_plots_outputs_and_logs_to_the_parent_run(tmp_path, monkeypatch):
    import mlflow

    from ipoke.tracking import pipeline_run
    from stages import evaluate as stage

    make_project(tmp_path / "project", monkeypatch)
    with pipeline_run("synthetic", {}, name="test") as parent:
        stage.main()

    metrics = json.loads(open("metrics/evaluate.json").read())
    assert metrics["profile"] == "demo" and metrics["n_clips"] == 5 and metrics["n_samples"] == 2
    assert set(metrics["control_error_px"]) == set(CONTROL_METHODS) == set(metrics["keypoint_error_px"])
    for key in ("fvd", "lpips", "div_lpips_e4"):
        assert metrics[key]["status"] == "not computed" and "could not be fetched" in metrics[key]["reason"]
    assert isinstance(metrics["ssim"], float) and isinstance(metrics["div_mse_e4"], float)
    curve = pd.read_csv("plots/synthetic/ambiguity.csv")
    assert list(curve.columns) == ["n_pokes", "mean_error", "std_error", "best_error"]
    assert curve["n_pokes"].tolist() == [1, 2, 3, 4, 5]
    out = tmp_path / "project" / "outputs" / "synthetic" / "eval"
    record = json.loads((out / "results.json").read_text())
    for name in [record["figures"]["control"], record["grids"][0]["gif"], record["grids"][0]["mp4"]]:
        assert (out / name).stat().st_size > 0
    assert "Table 1" in (out / "tables.md").read_text()
    assert set(record["ambiguity"]["reference"]) == {"ae_recon", "gt_floor"}
    assert "ambiguity, AE reconstruction ↓" in (out / "tables.md").read_text()
    assert record["ambiguity"]["poke_spacing_px"] > 0
    assert "ambiguity, poke spacing (px)" in (out / "tables.md").read_text()
    fixes = {r["metric"]: r["how_to_fix"] for r in record["not_computed"]}
    assert set(fixes) == {"fvd", "lpips"} and all("ipoke weights" in fix for fix in fixes.values())

    assert {"evaluate/tables.md", "evaluate/results.json", "evaluate/figures", "evaluate/grids"} <= (
        parent_run_artifacts(parent, "evaluate")
    )
    parent_metrics = mlflow.MlflowClient().get_run(parent).data.metrics
    assert parent_metrics["eval.control_error_px.ipoke"] == metrics["control_error_px"]["ipoke"]
    assert "eval.fvd" not in parent_metrics  # not computed: no number anywhere


def test_evaluate_stage_without_a_trained_pipeline_says_what_to_run(tmp_path, monkeypatch, capsys):
    from ipoke.stage import main_guard
    from stages import evaluate as stage

    root = make_project(tmp_path / "project", monkeypatch)
    (root / "models" / "synthetic" / "pipeline").rmdir()
    with pytest.raises(SystemExit) as exit_info:
        main_guard(stage.main)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "models/synthetic/pipeline: no trained pipeline; run the train_cinn stage" in message
