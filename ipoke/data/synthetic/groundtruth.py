"""Ground truth of a synthetic video: the sidecar ``.npz`` next to each mp4, and exact dense flow.

The sidecar stores per-frame rigid transforms of every part (local -> pixel, pixel centres at integer
coordinates), so the motion of any object pixel between any two frames is known exactly. It is a plain
``.npz`` (``numpy.load`` reads it) written with fixed zip timestamps, so equal content gives equal bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ipoke.atomic import atomic_path
from ipoke.errors import IpokeError

POKE_KEYS = ("frame_start", "frame_end", "x", "y", "tx", "ty", "part")


@dataclass
class GroundTruth:
    keypoints: np.ndarray  # (T, K, 2) float32: part pivots, then tips of terminal parts
    masks: np.ndarray  # (T, H, W) uint8: 0 background, p + 1 part p
    pokes: list[dict]  # see POKE_KEYS; pixel position of the poked point at frame_start and its target
    size: tuple[int, int]  # (H, W)
    transforms: np.ndarray  # (T, P, 2, 3) float64: part-local -> pixel affine per frame
    angles: np.ndarray  # (T, P) float64 joint angles
    parents: np.ndarray  # (P,) parent part, -1 for the root
    part_names: list[str]
    family: str
    hidden: dict[str, np.ndarray] = field(default_factory=dict)  # per-video physical parameters

    @property
    def n_frames(self) -> int:
        return len(self.transforms)

    def relative(self, t0: int, t1: int) -> np.ndarray:
        """(P, 2, 3) affine maps taking a pixel on part p at frame t0 to where it is at frame t1."""
        a0, a1 = self.transforms[t0], self.transforms[t1]
        r0, r1 = a0[:, :, :2], a1[:, :, :2]
        rot = r1 @ np.transpose(r0, (0, 2, 1))  # rotations are orthonormal: inverse = transpose
        shift = a1[:, :, 2] - np.einsum("pij,pj->pi", rot, a0[:, :, 2])
        return np.concatenate([rot, shift[:, :, None]], axis=2)

    def track(self, part: int, xy: np.ndarray, t0: int, t1: int) -> np.ndarray:
        """Where the point(s) ``xy`` (..., 2) on ``part`` at frame t0 are at frame t1."""
        m = self.relative(t0, t1)[part]
        return np.asarray(xy) @ m[:, :2].T + m[:, 2]

    def flow(self, t0: int, t1: int) -> np.ndarray:
        """Forward flow (2, H, W) float32 from frame t0 to t1 in pixels (dx, dy); zero on the background."""
        for t in (t0, t1):
            if not 0 <= t < self.n_frames:
                raise IndexError(f"frame {t} outside 0..{self.n_frames - 1}")
        h, w = self.size
        out = np.zeros((2, h, w), np.float32)
        label = self.masks[t0]
        ys, xs = np.nonzero(label)
        m = self.relative(t0, t1)[label[ys, xs].astype(int) - 1]
        pts = np.stack([xs, ys], -1).astype(np.float64)
        moved = np.einsum("nij,nj->ni", m[:, :, :2], pts) + m[:, :, 2]
        out[:, ys, xs] = (moved - pts).T.astype(np.float32)
        return out


def _pokes_to_arrays(pokes: list[dict]) -> dict[str, np.ndarray]:
    table = np.array([[p[k] for k in POKE_KEYS] for p in pokes], np.float64).reshape(-1, len(POKE_KEYS))
    return {"poke_table": table}


def _pokes_from_arrays(table: np.ndarray) -> list[dict]:
    ints = {"frame_start", "frame_end", "part"}
    return [
        {k: int(v) if k in ints else float(v) for k, v in zip(POKE_KEYS, row, strict=True)} for row in table
    ]


def to_arrays(gt: GroundTruth) -> dict[str, np.ndarray]:
    arrays = {
        "keypoints": gt.keypoints.astype(np.float32),
        "masks": gt.masks.astype(np.uint8),
        "size": np.array(gt.size, np.int64),
        "transforms": gt.transforms.astype(np.float64),
        "angles": gt.angles.astype(np.float64),
        "parents": gt.parents.astype(np.int64),
        "part_names": np.array(gt.part_names, dtype=str),
        "family": np.array(gt.family, dtype=str),
        **_pokes_to_arrays(gt.pokes),
    }
    arrays.update({f"hidden_{k}": v for k, v in gt.hidden.items()})
    return arrays


def save_gt(path: str | os.PathLike, gt: GroundTruth) -> None:
    """Write the sidecar atomically, byte-identical for identical content."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in to_arrays(gt).items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.require(arr, requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def load_gt(path: str | os.PathLike) -> GroundTruth:
    path = Path(path)
    if not path.is_file():
        raise IpokeError(f"{path}: ground-truth sidecar not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise IpokeError(f"{path}: not a readable ground-truth sidecar ({err})") from err
    missing = [k for k in ("keypoints", "masks", "size", "transforms", "poke_table") if k not in d]
    if missing:
        raise IpokeError(f"{path}: ground-truth sidecar lacks {missing}")
    return GroundTruth(
        keypoints=d["keypoints"],
        masks=d["masks"],
        pokes=_pokes_from_arrays(d["poke_table"]),
        size=(int(d["size"][0]), int(d["size"][1])),
        transforms=d["transforms"],
        angles=d["angles"],
        parents=d["parents"],
        part_names=[str(n) for n in d["part_names"]],
        family=str(d["family"]),
        hidden={k[len("hidden_") :]: v for k, v in d.items() if k.startswith("hidden_")},
    )
