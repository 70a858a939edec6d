"""Controlling future ambiguity (paper Fig. 9): error and spread of many samples for 1..5 pokes.

For each example and each number of pokes k, the sampler draws ``n_samples`` videos given the first k
pokes; every video gets an error against the ground truth. Per example the mean and the standard deviation
over samples are taken (the paper's "Std-50s"), then averaged over examples. The same seed is used for an
example at every k, so the curve changes only with the pokes. Errors: LPIPS to the ground-truth frames
(the paper's choice without keypoints) or the distance of tracked keypoints to their ground-truth end
positions (the paper estimates keypoints with a pose network; we track the known x0 keypoints with flow).

:func:`reference_error` scores fixed videos per example with the same error, for the lines a curve is read
against: the ground-truth clips (with keypoints: what the tracker itself gets wrong) and the autoencoder's
reconstructions of them. Both see the whole motion, so they are lower references, not bounds that a given
number of pokes should reach: part of what they know, the pokes leave open. :func:`poke_spacing` says how
far apart the curve's pokes lie: when they crowd one part, a flat curve says little about the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist

from ipoke.metrics.control import end_point_error
from ipoke.metrics.kinematics import Sampler, check_samples
from ipoke.metrics.perceptual import Lpips
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import check_uint8_videos, uint8_to_float
from ipoke.stage import progress


@dataclass(frozen=True)
class AmbiguityExample:
    image: np.ndarray  # (H, W, 3) uint8 start frame
    target: np.ndarray  # (T, H, W, 3) uint8 ground-truth frames after it
    pokes: np.ndarray  # (K, 4) pokes (x, y, dx, dy); the first k are used for k pokes
    keypoints: np.ndarray | None = None  # (M, 2) keypoints in the start frame
    gt_end_keypoints: np.ndarray | None = None  # (M, 2) the same keypoints in the last target frame


ErrorFn = Callable[[AmbiguityExample, np.ndarray], np.ndarray]
"""``error(example, videos)``: one error per sampled ``(n, T, H, W, 3)`` uint8 video, shape ``(n,)``."""


@dataclass(frozen=True)
class AmbiguityPoint:
    n_pokes: int
    mean_error: float  # mean over examples and samples
    std_error: float  # mean over examples of the standard deviation over samples
    best_error: float  # mean over examples of the best sample's error
    n_examples: int
    n_samples: int


def ambiguity_point(n_pokes: int, errors: np.ndarray) -> AmbiguityPoint:
    """Summarise ``(n_examples, n_samples)`` errors obtained with ``n_pokes`` pokes."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[1] < 2:
        raise ValueError(f"need errors (n_examples, n_samples >= 2), got shape {errors.shape}")
    return AmbiguityPoint(
        n_pokes=n_pokes,
        mean_error=float(errors.mean()),
        std_error=float(errors.std(axis=1, ddof=1).mean()),
        best_error=float(errors.min(axis=1).mean()),
        n_examples=errors.shape[0],
        n_samples=errors.shape[1],
    )


def lpips_error(lpips: Lpips | MetricUnavailable) -> ErrorFn | MetricUnavailable:
    """Per-sample LPIPS to the ground-truth frames, averaged over frames."""
    if isinstance(lpips, MetricUnavailable):
        return lpips

    def error(example: AmbiguityExample, videos: np.ndarray) -> np.ndarray:
        target = uint8_to_float(check_uint8_videos(example.target, ndim=4, name="target"))
        return lpips.videos(uint8_to_float(videos), target).numpy()

    return error


def keypoint_error(example: AmbiguityExample, videos: np.ndarray) -> np.ndarray:
    """Per-sample mean distance (px) of the tracked keypoints to their ground-truth end positions."""
    if example.keypoints is None or example.gt_end_keypoints is None:
        raise ValueError("keypoint_error needs examples with keypoints and gt_end_keypoints")
    return np.array(
        [
            end_point_error(example.image, video, example.keypoints, example.gt_end_keypoints).mean()
            for video in videos
        ]
    )


def reference_error(
    examples: Sequence[AmbiguityExample], error: ErrorFn, video_of: Callable[[AmbiguityExample], np.ndarray]
) -> float:
    """Mean over examples of ``error`` of one video per example, ``video_of(example)`` ``(T, H, W, 3)``
    uint8."""
    if not examples:
        raise ValueError("reference_error needs at least one example")
    return float(np.mean([error(example, video_of(example)[None])[0] for example in examples]))


def poke_spacing(examples: Sequence[AmbiguityExample]) -> float:
    """Mean over examples of the mean distance (px) between an example's poke locations. Pokes a few pixels
    apart (their patches overlap) sit on one part and repeat its motion, so later pokes add little."""
    if not examples:
        raise ValueError("poke_spacing needs at least one example")
    short = [len(example.pokes) for example in examples if len(example.pokes) < 2]
    if short:
        raise ValueError(f"poke_spacing needs at least two pokes per example, got {short[0]}")
    spacings = [pdist(np.asarray(example.pokes, np.float64)[:, :2]).mean() for example in examples]
    return float(np.mean(spacings))


def ambiguity_curve(
    sample: Sampler,
    examples: Sequence[AmbiguityExample],
    error: ErrorFn | MetricUnavailable,
    n_samples: int = 50,
    max_pokes: int = 5,
    seed: int = 0,
) -> list[AmbiguityPoint] | MetricUnavailable:
    """One :class:`AmbiguityPoint` for each k = 1..max_pokes."""
    if isinstance(error, MetricUnavailable):
        return error
    short = [i for i, example in enumerate(examples) if len(example.pokes) < max_pokes]
    if short:
        raise ValueError(f"examples {short[:10]} have fewer than {max_pokes} pokes")
    curve = []
    for k in range(1, max_pokes + 1):
        errors = []
        for i, example in progress(enumerate(examples), desc=f"ambiguity, {k} pokes", total=len(examples)):
            videos = check_samples(
                sample(example.image, example.pokes[:k], n_samples, seed + i), example.image, n_samples
            )
            errors.append(np.asarray(error(example, videos), dtype=np.float64))
        curve.append(ambiguity_point(k, np.stack(errors)))
    return curve
