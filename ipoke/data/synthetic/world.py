"""The synthetic world end to end: which instances and videos exist, and generating each video (physics,
rendering, ground truth, mp4) deterministically from the params and its own seed."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ipoke.data.synthetic import objects, physics, pokes, render, textures
from ipoke.data.synthetic.groundtruth import GroundTruth, save_gt
from ipoke.data.synthetic.kinematics import forward
from ipoke.data.synthetic.video import write_mp4

if TYPE_CHECKING:
    from ipoke.data.sources.synthetic import Params

_SPLIT_STREAM = 7919  # seeds the split draw apart from every object's own stream


@dataclass(frozen=True)
class VideoSpec:
    object_index: int
    video_index: int
    family: str
    split: str

    @property
    def object_id(self) -> str:
        return f"{self.family}-{self.object_index:04d}"

    @property
    def video_id(self) -> str:
        return f"{self.object_id}-v{self.video_index:02d}"


def plan(params: Params) -> list[VideoSpec]:
    """All videos: instance i is of family ``families[i % len(families)]``; a ``test_fraction`` share of
    each family's instances (at least one when the fraction is positive) is held out for testing."""
    families = [params.families[i % len(params.families)] for i in range(params.n_objects)]
    rng = np.random.default_rng([params.seed, _SPLIT_STREAM])
    test: set[int] = set()
    for family in params.families:
        members = [i for i, f in enumerate(families) if f == family]
        n_test = round(params.test_fraction * len(members))
        if params.test_fraction > 0 and len(members) > 1:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.update(int(i) for i in rng.choice(members, size=n_test, replace=False))
    return [
        VideoSpec(i, j, families[i], "test" if i in test else "train")
        for i in range(params.n_objects)
        for j in range(params.videos_per_object)
    ]


def make_scene(params: Params, object_index: int, family: str) -> render.Scene:
    """The object instance and its background; identical for every video of the instance."""
    rng = np.random.default_rng([params.seed, object_index])
    model = objects.make_object(family, rng, params.resolution, params.thickness)
    ground = (
        objects.extent(model, model.skeleton.rest)[1][1]
        if family == "puppet"
        else model.skeleton.offsets[0, 1]
    )
    return render.make_scene(
        model, textures.background(rng, params.resolution, float(ground), params.background_texture)
    )


def simulate_video(
    params: Params, scene: render.Scene, spec: VideoSpec
) -> tuple[physics.Trajectory, physics.Dynamics]:
    rng = np.random.default_rng([params.seed, spec.object_index, 1 + spec.video_index])
    model = scene.model
    dynamics = physics.sample_dynamics(
        model.skeleton, rng, params.natural_hz, params.damping_ratio, params.disturbance_rad
    )
    timings = pokes.plan_timings(
        rng,
        params.n_frames,
        params.poke_frames,
        params.settle_frames,
        params.still_probability,
        params.still_frames,
        params.onset_grid,
    )
    reach = (params.poke_reach[0] * params.resolution, params.poke_reach[1] * params.resolution)

    def visible(q: np.ndarray, part: int, xy: np.ndarray) -> bool:
        _, labels = render.render_frame(scene, forward(model.skeleton, q).affine())
        x, y = np.round(xy).astype(int)
        return bool(0 <= y < labels.shape[0] and 0 <= x < labels.shape[1] and labels[y, x] == part + 1)

    def choose(q: np.ndarray) -> pokes.Poke | None:
        return pokes.choose_poke(model.skeleton, model.outlines, q, reach, params.resolution, rng, visible)

    trajectory = physics.simulate(
        model.skeleton,
        dynamics,
        timings,
        choose,
        params.n_frames,
        params.fps,
        params.substeps,
        params.poke_hz,
    )
    return trajectory, dynamics


def render_video(
    params: Params, spec: VideoSpec, scene: render.Scene | None = None
) -> tuple[np.ndarray, GroundTruth]:
    """Frames (T, H, W, 3) uint8 and the ground truth of one video."""
    scene = scene or make_scene(params, spec.object_index, spec.family)
    skeleton = scene.model.skeleton
    trajectory, dynamics = simulate_video(params, scene, spec)
    frames, masks, keypoints, transforms = [], [], [], []
    for q in trajectory.q:
        pose = forward(skeleton, q)
        affine = pose.affine()
        rgb, labels = render.render_frame(scene, affine)
        frames.append(rgb)
        masks.append(labels)
        transforms.append(affine)
        keypoints.append(np.concatenate([pose.pivots, pose.tips(skeleton)[skeleton.terminal]]))
    poke_rows = [
        {"frame_start": t.start, "frame_end": t.end, "x": float(p.origin[0]), "y": float(p.origin[1]),
         "tx": float(p.target[0]), "ty": float(p.target[1]), "part": p.part}
        for t, p in trajectory.pokes
    ]  # fmt: skip
    gt = GroundTruth(
        keypoints=np.array(keypoints, np.float32),
        masks=np.array(masks),
        pokes=poke_rows,
        size=scene.size,
        transforms=np.array(transforms),
        angles=trajectory.q,
        parents=skeleton.parents,
        part_names=list(scene.model.names),
        family=spec.family,
        hidden={"stiffness": dynamics.stiffness, "damping": dynamics.damping},
    )
    return np.array(frames), gt


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_object(params: Params, specs: list[VideoSpec], out_dir: Path) -> list[dict]:
    """Generate and write every video of one instance; return their manifest rows."""
    scene = make_scene(params, specs[0].object_index, specs[0].family)
    rows = []
    for spec in specs:
        frames, gt = render_video(params, spec, scene)
        video, sidecar = Path("videos") / f"{spec.video_id}.mp4", Path("gt") / f"{spec.video_id}.npz"
        write_mp4(out_dir / video, frames, params.fps, params.crf)
        save_gt(out_dir / sidecar, gt)
        rows.append(
            {
                "video_id": spec.video_id,
                "path": video.as_posix(),
                "object_id": spec.object_id,
                "split": spec.split,
                "fps": float(params.fps),
                "n_frames": len(frames),
                "width": frames.shape[2],
                "height": frames.shape[1],
                "sha256": _sha256(out_dir / video),
                "gt_path": sidecar.as_posix(),
                "family": spec.family,
            }
        )
    return rows


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _write_object_task(task: tuple[Params, list[VideoSpec], Path]) -> list[dict]:
    return write_object(*task)


def generate(params: Params, out_dir: Path) -> pd.DataFrame:
    """Write the whole dataset under ``out_dir`` in parallel; rows come back in plan order."""
    from ipoke.stage import progress

    specs = plan(params)
    by_object: dict[int, list[VideoSpec]] = {}
    for spec in specs:
        by_object.setdefault(spec.object_index, []).append(spec)
    tasks = [(params, group, Path(out_dir)) for group in by_object.values()]
    workers = min(params.workers or os.cpu_count() or 1, len(tasks))
    rows: list[dict] = []
    bar = dict(desc="synthetic instances", total=len(tasks), unit="instance")
    if workers == 1:
        _init_worker()
        for task in progress(tasks, **bar):
            rows += _write_object_task(task)
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for part in progress(pool.imap(_write_object_task, tasks), **bar):
                rows += part
    return pd.DataFrame(rows)
