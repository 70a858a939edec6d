"""Limits and knobs of the poking web app (kept free of heavy imports: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ipoke.errors import IpokeError


@dataclass(frozen=True)
class AppSettings:
    max_concurrency: int = 1  # worker threads running model calls
    max_queue: int = 16  # jobs that may wait for a worker before requests get 503
    max_samples: int = 8  # samples per request
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_side: int = 4096  # uploads larger than this (either side) are refused
    min_image_side: int = 16
    stored_side: int = 512  # uploads are kept at most this large (after the square crop)
    display_size: int = 256  # videos are upscaled (nearest, integer factor) to about this size
    fps: float = 5.0
    max_images: int = 256  # uploaded and continued images kept in memory
    max_videos: int = 512  # sampled videos kept in memory
    max_test_frames: int = 48

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lowest = 0 if f.name == "max_queue" else 1
            if not value >= lowest:
                raise IpokeError(f"app setting {f.name} must be at least {lowest}, got {value}")
