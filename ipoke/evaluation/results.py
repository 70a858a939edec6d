"""What one evaluation produced: per-clip scores, curves, maps and example videos, and their summary.

:class:`EvaluationResults` holds the raw material (numpy arrays, example videos); :meth:`~EvaluationResults.
summary` reduces it to the numbers of ``metrics.json`` and the tables. A metric that could not be computed
stays a :class:`~ipoke.metrics.MetricUnavailable` all the way to the report, where it is shown with its
reason and the way to get it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipoke.metrics import MetricUnavailable
from ipoke.metrics.ambiguity import AmbiguityPoint
from ipoke.metrics.kinematics import KinematicsMap

CONTROL_METHODS = ("ipoke", "ae_recon", "gt_floor", "no_poke")
CONTROL_LABELS = {
    "ipoke": "iPOKE samples",
    "ae_recon": "AE reconstruction (the real clip encoded and decoded: what the autoencoder allows samples)",
    "gt_floor": "GT floor (same tracking on the real test clip)",
    "no_poke": "no-poke sampling (empty poke map, same seeds)",
}
DIVERSITY_SCALE = 1e4  # the paper reports diversity multiplied by 1e4

Measured = np.ndarray | MetricUnavailable


@dataclass
class GridExample:
    """One test clip for the sample grid: GT | samples | no-poke sample | one video per baseline, frame 0 = x0
    everywhere."""

    clip_id: str
    pokes: np.ndarray  # (K, 4) rows (x, y, dx, dy) in model pixels
    ground_truth: np.ndarray  # (T, S, S, 3) uint8
    samples: np.ndarray  # (n, T, S, S, 3) uint8
    no_poke: np.ndarray  # (T, S, S, 3) uint8, sampled with the first sample's seed
    baselines: dict[str, np.ndarray] = field(default_factory=dict)  # column name -> (T, S, S, 3) uint8


@dataclass
class MethodScores:
    """A baseline's per-clip scores under iPOKE's protocol (same clips, pokes, metrics and tracking)."""

    name: str
    label: str
    stochastic: bool
    psnr: np.ndarray  # (N, n) per sample (n = 1 for a deterministic method), mean over frames
    ssim: np.ndarray  # (N, n)
    lpips: Measured  # (N, n)
    div_mse: np.ndarray | None  # (N,); None: deterministic, no diversity
    div_lpips: Measured | None
    fvd: float | MetricUnavailable
    control_error: np.ndarray  # (N,) px, mean over pokes and samples
    keypoint_error: np.ndarray | MetricUnavailable  # (N,) px

    def summary(self) -> dict[str, Any]:
        """The method's numbers in ``metrics.json``, under the keys iPOKE's have."""
        return {
            "name": self.name,
            "label": self.label,
            "fvd": _value(self.fvd),
            "lpips": _mean(self.lpips),
            "ssim": _mean(self.ssim),
            "psnr": _mean(self.psnr),
            "div_mse_e4": None if self.div_mse is None else _mean(self.div_mse, DIVERSITY_SCALE),
            "div_lpips_e4": None if self.div_lpips is None else _mean(self.div_lpips, DIVERSITY_SCALE),
            "control_error_px": _mean(self.control_error),
            "keypoint_error_px": _mean(self.keypoint_error),
        }


@dataclass
class KinematicsExample:
    clip_id: str
    image: np.ndarray  # (S, S, 3) uint8 start frame
    map: KinematicsMap
    n_pokes: int
    max_shift: float  # px


@dataclass
class EvaluationResults:
    dataset: str
    size: int
    n_frames: int  # per video, x0 included
    n_samples: int
    poke_conditioned: bool
    clip_ids: list[str]
    n_pokes: np.ndarray  # (N,) pokes given per clip
    poke_lengths: np.ndarray  # (sum of n_pokes,) length of every test poke, px
    psnr: np.ndarray  # (N, n) per sample, mean over frames
    ssim: np.ndarray  # (N, n)
    lpips: Measured  # (N, n)
    div_mse: np.ndarray  # (N,) mean pairwise MSE between the n samples
    div_lpips: Measured  # (N,)
    fvd: float | MetricUnavailable
    control_error: dict[str, np.ndarray]  # CONTROL_METHODS -> (N,) px, mean over pokes and samples
    keypoint_error: dict[str, np.ndarray] | MetricUnavailable  # CONTROL_METHODS -> (N,) px
    ambiguity: list[AmbiguityPoint] | MetricUnavailable
    ambiguity_error: str  # what the ambiguity error measures, with its unit
    # that error of the reference videos on the curve's examples: {"ae_recon": ..., "gt_floor": ...}
    ambiguity_reference: dict[str, float] = field(default_factory=dict)
    ambiguity_poke_spacing: float | None = None  # mean distance between the curve's pokes, px
    # {"foreground"|"background": {"point_motion": px, "frame_change": grey levels}, "n_clips": {...}}
    poke_response: dict[str, dict[str, float]] | MetricUnavailable | None = None
    kinematics: list[KinematicsExample] = field(default_factory=list)
    grids: list[GridExample] = field(default_factory=list)
    seconds: float = 0.0
    baselines: dict[str, MethodScores] = field(default_factory=dict)  # method key -> its scores

    @property
    def n_clips(self) -> int:
        return len(self.clip_ids)

    def summary(self) -> dict[str, Any]:
        """The numbers of ``metrics.json``: means over clips (and samples), or ``not computed`` with the
        reason (:meth:`not_computed` has the full records)."""
        no_curve = not_computed(self.ambiguity) if isinstance(self.ambiguity, MetricUnavailable) else None
        return {
            "n_clips": self.n_clips,
            "n_samples": self.n_samples,
            "test_poke_px": {
                name: _round(np.percentile(self.poke_lengths, q))
                for name, q in (("p10", 10), ("median", 50), ("p90", 90))
            },
            "fvd": _value(self.fvd),
            "lpips": _mean(self.lpips),
            "ssim": _mean(self.ssim),
            "psnr": _mean(self.psnr),
            "div_mse_e4": _mean(self.div_mse, DIVERSITY_SCALE),
            "div_lpips_e4": _mean(self.div_lpips, DIVERSITY_SCALE),
            "control_error_px": {m: _mean(self.control_error[m]) for m in CONTROL_METHODS},
            "keypoint_error_px": (
                not_computed(self.keypoint_error)
                if isinstance(self.keypoint_error, MetricUnavailable)
                else {m: _mean(self.keypoint_error[m]) for m in CONTROL_METHODS}
            ),
            "poke_response": _response_summary(self.poke_response),
            # the ambiguity curve's error (ambiguity.csv) of the reference videos, on the curve's clips
            "ambiguity_reference": no_curve
            or {key: _round(value) for key, value in self.ambiguity_reference.items()},
            "ambiguity_poke_spacing_px": no_curve
            or (None if self.ambiguity_poke_spacing is None else _round(self.ambiguity_poke_spacing)),
            "baselines": {key: scores.summary() for key, scores in self.baselines.items()},
        }

    def per_clip(self) -> dict[str, list]:
        """Columns of the per-clip table (``per_clip.csv``)."""
        columns: dict[str, list] = {"clip_id": list(self.clip_ids), "n_pokes": self.n_pokes.tolist()}
        columns["psnr"] = self.psnr.mean(axis=1).tolist()
        columns["ssim"] = self.ssim.mean(axis=1).tolist()
        if not isinstance(self.lpips, MetricUnavailable):
            columns["lpips"] = self.lpips.mean(axis=1).tolist()
        columns["div_mse"] = self.div_mse.tolist()
        if not isinstance(self.div_lpips, MetricUnavailable):
            columns["div_lpips"] = self.div_lpips.tolist()
        for method in CONTROL_METHODS:
            columns[f"control_error_{method}"] = self.control_error[method].tolist()
        if not isinstance(self.keypoint_error, MetricUnavailable):
            for method in CONTROL_METHODS:
                columns[f"keypoint_error_{method}"] = self.keypoint_error[method].tolist()
        for key, scores in self.baselines.items():
            columns[f"psnr_{key}"] = scores.psnr.mean(axis=1).tolist()
            columns[f"control_error_{key}"] = scores.control_error.tolist()
            if not isinstance(scores.keypoint_error, MetricUnavailable):
                columns[f"keypoint_error_{key}"] = scores.keypoint_error.tolist()
        return columns

    def not_computed(self) -> list[MetricUnavailable]:
        """Every metric of this run that was not computed, once each."""
        found: dict[str, MetricUnavailable] = {}
        for value in (
            self.fvd,
            self.lpips,
            self.div_lpips,
            self.keypoint_error,
            self.ambiguity,
            self.poke_response,
        ):
            if isinstance(value, MetricUnavailable):
                found.setdefault(value.metric, value)
        return list(found.values())


def not_computed(value: MetricUnavailable) -> dict[str, str]:
    """The short form kept in ``metrics.json``; how to get the metric is in the results and the report."""
    return {"status": "not computed", "reason": value.reason}


def _response_summary(response: dict | MetricUnavailable | None) -> dict | None:
    if response is None or isinstance(response, MetricUnavailable):
        return None if response is None else not_computed(response)
    return {
        side: {name: _round(v) if isinstance(v, float) else v for name, v in values.items()}
        for side, values in response.items()
    }


def _value(value: float | MetricUnavailable) -> float | dict[str, str]:
    if isinstance(value, MetricUnavailable):
        return not_computed(value)
    return _round(value)


def _mean(values: Measured, scale: float = 1.0) -> float | dict[str, str]:
    """Mean over clips (and samples); clips without a value (NaN, e.g. no keypoint in view) are skipped."""
    if isinstance(values, MetricUnavailable):
        return not_computed(values)
    return _round(float(np.nanmean(values)) * scale)


def _round(value: float) -> float:
    """Six significant digits: plenty for metrics, and stable diffs in ``dvc metrics diff``."""
    value = float(value)
    return value if value == 0 or not math.isfinite(value) else float(f"{value:.6g}")
