"""The ``synthetic`` source: the embedded default dataset, generated with full ground truth.

Writes ``videos/<video_id>.mp4`` and ``gt/<video_id>.npz`` under the dataset directory and returns the
manifest rows with two extra columns, ``gt_path`` and ``family``. Splits are by object instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ipoke.config import Section
from ipoke.data.sources import SourceResult

if TYPE_CHECKING:
    from ipoke.data.sources.params import DownloadParams

Range = tuple[float, float]
FrameRange = tuple[int, int]


class Params(Section):
    n_objects: int = Field(72, ge=2, description="object instances (scenes); splits are drawn over them")
    videos_per_object: int = Field(
        3, ge=1, description="videos per instance, each with its own hidden physics"
    )
    resolution: int = Field(128, ge=32, description="frame width and height in pixels (even)")
    n_frames: int = Field(48, ge=24, description="frames per video")
    fps: float = Field(25.0, gt=0)
    families: tuple[Literal["plant", "puppet"], ...] = Field(("plant", "puppet"), min_length=1)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of instances held out per family")
    seed: int = 0
    workers: int = Field(0, ge=0, description="processes; 0 = all CPU cores")
    substeps: int = Field(8, ge=1, description="physics substeps per frame")
    thickness: float = Field(1.0, gt=0, description="scale of limb/trunk widths and leaf sizes")
    background_texture: float = Field(1.0, ge=0, description="amplitude of the background's fine texture")
    natural_hz: Range = (1.0, 2.0)
    damping_ratio: Range = (0.4, 0.8)
    disturbance_rad: Range = (0.0, 0.03)
    poke_hz: float = Field(30.0, gt=0, description="natural frequency of the poke spring on the poked point")
    poke_reach: Range = (0.08, 0.22)
    poke_frames: FrameRange = (10, 18)
    settle_frames: FrameRange = (6, 12)
    still_probability: float = Field(0.25, ge=0.0, le=1.0)
    still_frames: FrameRange = (6, 12)
    onset_grid: int = Field(
        1, ge=1, description="pokes start on multiples of this many frames (the pipeline's clip grid)"
    )
    crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor")

    @model_validator(mode="after")
    def _check(self) -> Params:
        for name in ("natural_hz", "damping_ratio", "disturbance_rad", "poke_reach", "poke_frames",
                     "settle_frames", "still_frames"):  # fmt: skip
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range [low, high] with 0 <= low <= high, got {[lo, hi]}")
        if self.resolution % 2:
            raise ValueError(f"resolution must be even for yuv420p video, got {self.resolution}")
        if self.poke_frames[0] < 2 or self.n_frames < self.poke_frames[1] + 6:
            raise ValueError("poke_frames must be at least 2 and fit in n_frames with 6 frames to spare")
        if len(set(self.families)) != len(self.families):
            raise ValueError(f"families are listed twice: {list(self.families)}")
        return self


def build(params: DownloadParams, out_dir: str | Path, *, frame_step: int | None = None) -> SourceResult:
    """Generate the dataset; ``frame_step`` is not needed (``n_frames`` >= 24 holds a clip at step 2)."""
    from ipoke.data.synthetic.world import generate

    return SourceResult(manifest=generate(params.synthetic, Path(out_dir)))
