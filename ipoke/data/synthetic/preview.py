"""Preview GIFs: a grid of synthetic videos with each poke drawn as an arrow from the poked point to its
target while the poke lasts, and a dot on the ground-truth position of the poked point."""

from __future__ import annotations

import cv2
import numpy as np

from ipoke.data.synthetic.groundtruth import GroundTruth

ARROW = (255, 40, 40)
TRACK = (40, 255, 80)


def draw_pokes(frames: np.ndarray, gt: GroundTruth, scale: int = 2) -> np.ndarray:
    """Upscale (T, H, W, 3) frames by ``scale`` and draw every poke on the frames it is active."""
    t, h, w, _ = frames.shape
    out = np.stack([cv2.resize(f, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) for f in frames])
    shift = 4

    def px(xy: np.ndarray) -> tuple[int, int]:
        x, y = ((np.asarray(xy) + 0.5) * scale - 0.5) * (1 << shift)
        return int(round(x)), int(round(y))

    for poke in gt.pokes:
        start, end = poke["frame_start"], poke["frame_end"]
        origin = np.array([poke["x"], poke["y"]])
        target = np.array([poke["tx"], poke["ty"]])
        for f in range(start, min(end, t - 1) + 1):
            frame = np.ascontiguousarray(out[f])
            cv2.arrowedLine(frame, px(origin), px(target), ARROW, 1, cv2.LINE_AA, shift, tipLength=0.25)
            cv2.circle(
                frame, px(gt.track(poke["part"], origin, start, f)), 2 << shift, TRACK, -1, cv2.LINE_AA, shift
            )
            out[f] = frame
    return out


def tile(videos: list[np.ndarray], columns: int) -> np.ndarray:
    """Arrange equally sized (T, H, W, 3) videos in a grid, padding missing cells with black."""
    t = min(len(v) for v in videos)
    rows = -(-len(videos) // columns)
    h, w = videos[0].shape[1:3]
    grid = np.zeros((t, rows * h, columns * w, 3), np.uint8)
    for k, v in enumerate(videos):
        r, c = divmod(k, columns)
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = v[:t]
    return grid
