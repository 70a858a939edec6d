"""Optical flow from each clip's start frame to its end frame.

Conventions: flow is float32 ``(2, H, W)`` forward flow in pixels of the stored resolution, channel 0 = dx
(right), channel 1 = dy (down): the content at pixel ``p`` of the start frame is at ``p + flow[:, p]`` in the
end frame (OpenCV's and ptlflow's convention, and the synthetic ground truth's).

Methods (:func:`make_estimator`):

* ``dis``, ``farneback``: OpenCV, weight-free, real flow offline (the demo default is DIS).
* any ptlflow model name (``raft``, ``raft_small``, ``flownet2``, ...): ``ckpt`` is ptlflow's pretrained
  name (downloaded into torch hub's checkpoint cache when online) or a local checkpoint file. Missing
  weights stop with an :class:`IpokeError` naming what to put where; an untrained network is never run.

``chain`` (a deviation, off in the paper setting): compose each clip's start->end flow from the flows
between consecutive stored frames. Weight-free estimators such as DIS lose thin parts that move far in
one step (on the synthetic data the direct DIS estimate reaches about 40% of the true displacement of
moving parts, the chained one about 75%); a strong network such as FlowNet2 or RAFT does not need it.

``inference_size`` computes flow at a larger square size (frames bilinearly upsampled) and scales it back
to stored pixels; the reference implementation ran FlowNet2 at 256 px on source frames, here the input is
the stored frames, so the upsampling adds no detail but gives the networks and DIS room for their
receptive fields and patch sizes.

Output of the ``estimate_flow`` stage (:func:`estimate`): ``data/flow/<dataset>/<video>.npy`` float16
``(n_clips, 2, H, W)`` per video and ``index.parquet``, one row per clip with its location in those files
and the flow magnitude statistics (mean, std, max, p95, p99) plus EPE against ground truth where it exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from ipoke.config import Section
from ipoke.data.frames import clip_table, gt_geometry, load_video, resize_flow
from ipoke.errors import IpokeError

OPENCV_METHODS = ("dis", "farneback")
INDEX_NAME = "index.parquet"
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowParams(Section):
    method: str = Field("dis", description="dis | farneback | a ptlflow model name (raft, raft_small, ...)")
    ckpt: str | None = Field(None, description="ptlflow: pretrained name (e.g. things) or local checkpoint")
    inference_size: int | None = Field(128, ge=16, description="compute flow at this size; null = stored")
    clip_stride: int = Field(2, ge=1, description="stored frames between consecutive clip starts")
    chain: bool = Field(
        False, description="compose start->end flow from consecutive-frame flows (helps weak estimators with "
        "large motion); false = one direct estimate per clip as in the paper",
    )
    batch_size: int = Field(16, ge=1)
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N (ptlflow models)")
    fp16: bool = Field(False, description="half precision inference on CUDA (ptlflow models)")
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    epe_methods: dict[str, str | None] = Field(
        default_factory=lambda: {"dis": None, "farneback": None, "raft": "things"},
        description="further methods (name -> ckpt) measured against synthetic GT flow; missing weights: "
        "recorded as not computed",
    )
    epe_max_pairs: int = Field(64, ge=0, description="GT pairs (spread out) to compare methods on")


class FlowEstimator(Protocol):
    """``(start, end)`` uint8 RGB ``(B, H, W, 3)`` -> float32 ``(B, 2, H, W)`` flow in pixels."""

    def __call__(self, start: np.ndarray, end: np.ndarray) -> np.ndarray: ...


def _resize_images(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or images.shape[1:3] == (size, size):
        return np.asarray(images)
    return np.stack([
        cv2.resize(np.asarray(im), (size, size), interpolation=cv2.INTER_LINEAR) for im in images
    ])


@dataclass
class OpenCVFlow:
    method: Literal["dis", "farneback"] = "dis"
    inference_size: int | None = None
    dis_preset: str = "medium"

    def __post_init__(self) -> None:
        if self.method == "dis":
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.dis_preset])

    def _pair(self, g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
        if self.method == "dis":
            flow = self._dis.calc(g0, g1, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return flow.transpose(2, 0, 1)

    def __call__(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        h, w = start.shape[1:3]
        s, e = _resize_images(start, self.inference_size), _resize_images(end, self.inference_size)
        gray = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in (*s, *e)]
        flows = np.stack([self._pair(gray[i], gray[len(s) + i]) for i in range(len(s))])
        return resize_flow(flows, (h, w))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _missing_weights(model_name: str, ckpt: str, model_ref, err: Exception) -> IpokeError:
    from torch import hub

    url = getattr(model_ref, "pretrained_checkpoints", {}).get(ckpt)
    if url is None:
        names = ", ".join(getattr(model_ref, "pretrained_checkpoints", {})) or "none"
        return IpokeError(
            f"estimate_flow.ckpt={ckpt!r}: not a file and not a pretrained name of ptlflow model "
            f"{model_name!r} (pretrained names: {names})"
        )
    cache = Path(hub.get_dir()) / "checkpoints" / Path(url).name
    return IpokeError(
        f"weights of ptlflow model {model_name!r} ({ckpt!r}) are not available "
        f"({type(err).__name__}: {err}). "
        f"Download {url} and put it at {cache}, or set estimate_flow.ckpt to a local checkpoint path"
    )


def load_ptlflow_model(model_name: str, ckpt: str | None):
    """A ptlflow model with trained weights loaded from ``ckpt`` (file path or pretrained name)."""
    import ptlflow
    import torch

    try:
        model_ref = ptlflow.get_model_reference(model_name)
    except ValueError as err:
        raise IpokeError(f"estimate_flow.method={model_name!r}: {err}; or one of {OPENCV_METHODS}") from None
    if not ckpt:
        raise IpokeError(
            f"estimate_flow.ckpt is empty for ptlflow model {model_name!r}: an untrained network gives "
            "meaningless flow. Set it to a pretrained name (e.g. 'things') or a local checkpoint file"
        )
    is_file = Path(ckpt).is_file()
    try:
        checkpoint = ptlflow.load_checkpoint(ckpt, model_ref)
    except ValueError as err:
        raise _missing_weights(model_name, ckpt, model_ref, err) from None
    except Exception as err:  # download failures surface as URLError, HTTPError, OSError, RuntimeError
        if is_file:
            raise IpokeError(f"{ckpt}: cannot read checkpoint: {type(err).__name__}: {err}") from None
        raise _missing_weights(model_name, ckpt, model_ref, err) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise IpokeError(f"{ckpt}: not a ptlflow checkpoint (expected a state dict or {{'state_dict': ...}})")
    model = ptlflow.get_model(model_name)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise IpokeError(f"{ckpt}: weights do not fit ptlflow model {model_name!r}: {first}") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    for key in ("train_size", "train_avg_length"):
        if key in hparams:
            setattr(model, key, hparams[key])
    return model.eval()


class PtlflowFlow:
    """Batched inference of a ptlflow model; inputs are fed as BGR in [0, 1] as ptlflow models expect."""

    def __init__(self, model, inference_size: int | None = None, device: str = "auto", fp16: bool = False):
        import torch

        self.device = torch.device(resolve_device(device))
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype)
        self.inference_size = inference_size

    def __call__(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        import torch

        h, w = start.shape[1:3]
        size = self.inference_size
        pair = np.stack([_resize_images(start, size), _resize_images(end, size)], 1)
        images = torch.from_numpy(pair[..., ::-1].copy()).permute(0, 1, 4, 2, 3)
        images = images.to(self.device, self.dtype) / 255.0
        with torch.inference_mode():
            flows = self.model({"images": images})["flows"][:, 0].float().cpu().numpy()
        if not np.isfinite(flows).all():
            raise IpokeError(
                f"ptlflow model {type(self.model).__name__} gave non-finite flow at {images.shape[-2:]} px "
                "(too small for its feature pyramid?); raise estimate_flow.inference_size (e.g. 128 or 256)"
            )
        return resize_flow(flows, (h, w))


def make_estimator(method: str, params: FlowParams, ckpt: str | None = None) -> FlowEstimator:
    """The estimator for ``method``; ptlflow weights come from ``ckpt`` (default: ``params.ckpt``)."""
    if method in OPENCV_METHODS:
        return OpenCVFlow(method, params.inference_size, params.dis_preset)
    model = load_ptlflow_model(method, ckpt if ckpt is not None else params.ckpt)
    return PtlflowFlow(model, params.inference_size, params.device, params.fp16)


def run_batched(estimator: FlowEstimator, starts: np.ndarray, ends: np.ndarray, batch_size: int):
    flows = np.empty((len(starts), 2, *starts.shape[1:3]), np.float32)
    for lo in range(0, len(flows), batch_size):
        flows[lo : lo + batch_size] = estimator(starts[lo : lo + batch_size], ends[lo : lo + batch_size])
    return flows


def compose_flows(flows: np.ndarray) -> np.ndarray:
    """(n, 2, H, W) flows t->t+1 -> the flow 0->n, following each pixel along the chain (bilinear)."""
    h, w = flows.shape[-2:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    total = flows[0].astype(np.float32).copy()
    for step in flows[1:]:
        mx, my = xs + total[0], ys + total[1]
        total += np.stack([
            cv2.remap(np.ascontiguousarray(c, np.float32), mx, my, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
            for c in step
        ])
    return total


def clip_flows(estimator: FlowEstimator, video: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               params: FlowParams) -> np.ndarray:
    """Start->end flow of each clip of one stored video: direct, or composed from consecutive frames."""
    if not params.chain:
        return run_batched(estimator, np.asarray(video[starts]), np.asarray(video[ends]), params.batch_size)
    first, last = int(starts.min()), int(ends.max())
    frames = np.asarray(video[first : last + 1])
    steps = run_batched(estimator, frames[:-1], frames[1:], params.batch_size)
    return np.stack([compose_flows(steps[s - first : e - first]) for s, e in zip(starts, ends, strict=True)])


def magnitude_stats(flow: np.ndarray) -> dict[str, float]:
    mag = np.linalg.norm(np.asarray(flow, np.float32), axis=0)
    return {
        "mag_mean": float(mag.mean()), "mag_std": float(mag.std()), "mag_max": float(mag.max()),
        "mag_p95": float(np.percentile(mag, 95)),
        "mag_p99": float(np.percentile(mag, 99)),
    }


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error over all pixels (or where ``mask``), in pixels."""
    err = np.linalg.norm(np.asarray(pred, np.float32) - np.asarray(gt, np.float32), axis=-3)
    if mask is not None:
        if not mask.any():
            return float("nan")
        err = err[mask]
    return float(err.mean())


class GroundTruthCache:
    """Loads videos' synthetic ground truth (keeps the last ``capacity`` videos; None = all)."""

    def __init__(self, raw_dir: Path, capacity: int | None = 1):
        self.raw_dir = Path(raw_dir)
        self.capacity = capacity
        self._cache: dict[str, object] = {}

    def get(self, row: pd.Series):
        path = row.get("gt_path") if hasattr(row, "get") else None
        if path is None or pd.isna(path) or not str(path):
            return None
        if path not in self._cache:
            from ipoke.data.synthetic.groundtruth import load_gt

            if self.capacity is not None and len(self._cache) >= self.capacity:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = load_gt(self.raw_dir / str(path))
        return self._cache[path]

    def flow_and_mask(self, row: pd.Series, raw_start: int, raw_end: int):
        """GT start->end flow (2, H, W) and start-frame object mask (H, W) at stored resolution."""
        gt = self.get(row)
        if gt is None:
            return None
        geo = gt_geometry(row, tuple(gt.size))
        return geo.flow(gt.flow(raw_start, raw_end)), geo.mask(np.asarray(gt.masks[raw_start]))


@dataclass
class FlowResult:
    index: pd.DataFrame
    pairs: int
    seconds: float
    epe: dict[str, float]
    not_computed: dict[str, str]


def estimate(
    frames_dir: Path, frames_index: pd.DataFrame, raw_dir: Path, out_dir: Path, params: FlowParams,
    progress: Callable | None = None,
) -> FlowResult:
    """Flow for every clip of every stored video into ``out_dir``; EPE vs GT for each method available."""
    estimator = make_estimator(params.method, params)
    clips = clip_table(frames_index, params.clip_stride)
    if clips.empty:
        raise IpokeError(f"{frames_dir}: no video has a full clip of x0 + 10 frames")
    gts = GroundTruthCache(raw_dir)
    rows, elapsed = [], 0.0
    groups = list(clips.groupby("video_order", sort=True))
    iterator = progress(groups, desc="estimate_flow", total=len(groups), unit="video") if progress else groups
    for video_order, video_clips in iterator:
        vrow = frames_index.iloc[int(video_order)]
        video = load_video(frames_dir, vrow)
        t0 = time.perf_counter()
        starts, ends = video_clips["start"].to_numpy(), video_clips["end"].to_numpy()
        flows = clip_flows(estimator, video, starts, ends, params)
        elapsed += time.perf_counter() - t0
        file = str(vrow["file"])
        np.save(out_dir / file, flows.astype(np.float16))
        for i, clip in enumerate(video_clips.itertuples(index=False)):
            rec = clip._asdict() | {"file": file, "row": i} | magnitude_stats(flows[i])
            truth = gts.flow_and_mask(vrow, clip.raw_start, clip.raw_end)
            if truth is not None:
                rec["epe"] = epe(flows[i], truth[0])
                rec["epe_fg"] = epe(flows[i], truth[0], truth[1] > 0)
            rows.append(rec)
    index = pd.DataFrame(rows)
    index.to_parquet(out_dir / INDEX_NAME, index=False)
    epes, not_computed = {}, {}
    if "epe" in index and params.epe_max_pairs:
        gt_pairs = index[index["epe"].notna()]
        subset = gt_pairs.iloc[np.unique(np.linspace(0, len(gt_pairs) - 1, params.epe_max_pairs).astype(int))]
        epes[params.method] = float(subset["epe"].mean())
        others = {m: c for m, c in params.epe_methods.items() if m != params.method}
        epes_other, not_computed = compare_methods(frames_dir, frames_index, subset, gts, others, params)
        epes |= epes_other
    return FlowResult(index, len(index), elapsed, epes, not_computed)


def compare_methods(
    frames_dir: Path, frames_index: pd.DataFrame, subset: pd.DataFrame, gts: GroundTruthCache,
    methods: dict[str, str | None], params: FlowParams,
) -> tuple[dict[str, float], dict[str, str]]:
    """EPE of further methods on the ``subset`` of GT pairs; methods without weights are skipped."""
    epes, not_computed = {}, {}
    for method, ckpt in methods.items():
        try:
            estimator = make_estimator(method, params, ckpt)
        except IpokeError as err:
            not_computed[method] = str(err)
            continue
        errors = []
        for video_order, clips in subset.groupby("video_order", sort=True):
            vrow = frames_index.iloc[int(video_order)]
            video = load_video(frames_dir, vrow)
            pred = clip_flows(estimator, video, clips["start"].to_numpy(), clips["end"].to_numpy(), params)
            for i, clip in enumerate(clips.itertuples(index=False)):
                errors.append(epe(pred[i], gts.flow_and_mask(vrow, clip.raw_start, clip.raw_end)[0]))
        if errors:
            epes[method] = float(np.mean(errors))
    return epes, not_computed
