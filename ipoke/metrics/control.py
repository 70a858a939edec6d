"""Control accuracy: where the poked point ends up in a video, measured by tracking it with optical flow.

A point is tracked frame to frame: OpenCV DIS flow (medium preset, refined down to full resolution because
our frames are only 64-128 px) between consecutive frames, sampled bilinearly at the point's current
sub-pixel position and added to it. Chaining small steps follows displacements that a single
start-to-end flow misses at these resolutions. The tracker is fixed here rather than taken from the
pipeline's flow settings so that control errors stay comparable across experiments. The poke
``(x, y, dx, dy)`` (pixels, x right, y down) asks for ``(x, y)`` to reach ``(x + dx, y + dy)`` at the last
frame.

The same tracking applied to real clips (x0 = clip[0], video = clip[1:]) gives the ground-truth floor of
the control error: what the tracker itself gets wrong.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipoke.metrics.videos import check_uint8_videos


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow ``(H, W, 2)`` (dx, dy in pixels) from RGB uint8 frame ``a`` to frame ``b``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    return dis.calc(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow at sub-pixel ``points`` ``(K, 2)`` as (x, y); points outside use the nearest border.

    ``flow`` is ``(H, W, 2)`` with H, W >= 2.
    """
    h, w = flow.shape[:2]
    x = np.clip(points[:, 0], 0, w - 1)
    y = np.clip(points[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    x1, y1 = x0 + 1, y0 + 1
    ax, ay = (x - x0)[:, None], (y - y0)[:, None]
    top = flow[y0, x0] * (1 - ax) + flow[y0, x1] * ax
    bottom = flow[y1, x0] * (1 - ax) + flow[y1, x1] * ax
    return top * (1 - ay) + bottom * ay


def _check_points(points: np.ndarray, shape: tuple[int, int], name: str, width: int = 2) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != width:
        raise ValueError(f"{name}: expected shape (K, {width}), got {points.shape}")
    h, w = shape
    inside = (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)
    if not inside.all():
        raise ValueError(f"{name}: start points {points[~inside, :2].tolist()} lie outside the {w}x{h} frame")
    return points


def track_points(x0: np.ndarray, video: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trajectories ``(T + 1, K, 2)`` of ``points`` ``(K, 2)`` in x0 through ``video`` ``(T, H, W, 3)``.

    ``x0`` is the ``(H, W, 3)`` start frame; both are uint8. Row 0 is the start position.
    """
    x0 = check_uint8_videos(x0, ndim=3, name="x0")
    video = check_uint8_videos(video, ndim=4, name="video")
    if video.shape[1:] != x0.shape:
        raise ValueError(f"video frames {video.shape[1:]} and x0 {x0.shape} differ in size")
    position = _check_points(points, x0.shape[:2], "points")
    trajectory = [position]
    previous = x0
    for frame in video:
        position = position + sample_flow(dis_flow(previous, frame), position)
        trajectory.append(position)
        previous = frame
    return np.stack(trajectory)


def control_error(x0: np.ndarray, video: np.ndarray, pokes: np.ndarray) -> np.ndarray:
    """Distance in pixels ``(K,)`` between each poked point's tracked end position and its target.

    ``pokes`` is ``(K, 4)`` rows of ``(x, y, dx, dy)``; frames as in :func:`track_points`.
    """
    return poke_outcome(x0, video, pokes)[0]


def poke_outcome(x0: np.ndarray, video: np.ndarray, pokes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Control error and motion ``(K,)`` each of the poked points from one tracking pass: the distance of each
    tracked end position from the poke's target and from its start."""
    pokes = _check_points(pokes, np.shape(x0)[:2], "pokes", width=4)
    start, end = pokes[:, :2], track_points(x0, video, pokes[:, :2])[-1]
    return np.linalg.norm(end - (start + pokes[:, 2:]), axis=1), np.linalg.norm(end - start, axis=1)


def point_motion(x0: np.ndarray, video: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How far ``points`` ``(K, 2)`` of x0 are tracked to move by the last frame ``(K,)``, in pixels."""
    trajectory = track_points(x0, video, points)
    return np.linalg.norm(trajectory[-1] - trajectory[0], axis=1)


def end_point_error(
    x0: np.ndarray, video: np.ndarray, points: np.ndarray, gt_end_points: np.ndarray
) -> np.ndarray:
    """Distance ``(K,)`` between tracked end positions of ``points`` and their ground-truth end positions.

    For data with known keypoints (the synthetic world): ``points`` are keypoints in x0, ``gt_end_points``
    the same keypoints in the last ground-truth frame.
    """
    gt_end_points = np.asarray(gt_end_points, dtype=np.float64)
    if gt_end_points.shape != np.shape(points):
        raise ValueError(f"gt_end_points {gt_end_points.shape} must match points {np.shape(points)}")
    end = track_points(x0, video, points)[-1]
    return np.linalg.norm(end - gt_end_points, axis=1)
