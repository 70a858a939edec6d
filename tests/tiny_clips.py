"""Loader-shaped training examples without shards: a bright square drifting across a noisy background,
poked along its motion (the batch contract of ``ipoke.data.loader``, the fields the training modules read)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

FRAMES = 11  # x0 + 10


class Clips(Dataset):
    """``n`` seeded clips of ``size`` x ``size`` pixels; example ``i`` is the same in every process."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        size, g = self.size, torch.Generator().manual_seed(i)
        half = max(2, size // 10)
        x, y = (int(v) for v in torch.randint(2 * half, size - 2 * half, (2,), generator=g))
        vx, vy = (float(v) for v in torch.randint(-1, 2, (2,), generator=g))
        noise = 0.1 * torch.randn(FRAMES, 3, size, size, generator=g)
        video = torch.full((FRAMES, 3, size, size), -0.8) + noise
        for t in range(FRAMES):
            cx, cy = int(x + vx * t * half / 6), int(y + vy * t * half / 6)
            video[t, :, cy - half : cy + half, cx - half : cx + half] = 0.8
        dx, dy = vx * 10 * half / 6, vy * 10 * half / 6  # where the square is at the last frame
        poke = torch.zeros(2, size, size)
        poke[:, y - 2 : y + 3, x - 2 : x + 3] = torch.tensor([dx, dy])[:, None, None]
        return {
            "index": i,
            "video": video.clamp(-1, 1),
            "poke": poke,
            "flow": poke.clone(),
            "poke_points": torch.tensor([[x, y, dx, dy]] + [[0.0] * 4] * 4),
            "n_pokes": 1,
            "background_poke": False,
        }
