"""The training loader: WebDataset shards -> batches with freshly simulated pokes.

Batch contract (models rely on it)::

    video            float32 (B, 11, 3, H, W) in [-1, 1], video[:, 0] = x0
    flow             float32 (B, 2, H, W)     start->end flow in pixels
    poke             float32 (B, 2, H, W)     (dx, dy) inside each poke's patch, zero elsewhere
    poke_points      float32 (B, 5, 4)        rows (x, y, dx, dy), zero-padded
    n_pokes          int64   (B,)
    background_poke  bool    (B,)
    clip_id          list[str]
    gt_flow, mask    float32 (B, 2, H, W), int64 (B, H, W): only for shards with ground truth

A background-poke sample's target is the still clip (paper E.3): ``video`` is x0 repeated and ``flow`` and
``gt_flow`` are zero, so every field describes the video the model must produce.

Randomness: each sample's pokes and augmentation come from a generator seeded by (seed, epoch, clip id),
so they are the same for a given seed and epoch whatever the worker count or order, and new every training
epoch. Evaluation passes always draw epoch 0's pokes, so every validation and the final test metrics of a
run (resumed or not) score the same examples.
Shard order, resampling and the shuffle buffer are seeded by (seed, epoch, rank, worker).
:class:`EpochLoader` advances the epoch on every pass (or set it with ``set_epoch``); training passes
resample shards with replacement (``resampled``) for ``epoch_clips`` clips per epoch, evaluation passes
read each shard of the split once, in order.

Data-parallel training (DDP): every process draws its own shards (resampled: seeded by its rank; not
resampled: every world-th shard) and takes the same share of ``epoch_clips``, so all ranks run the same
number of steps per epoch. Evaluation passes are not split: every rank scores the whole split, so the
held-out metrics rank 0 reports cover all of it and no rank is left without a batch.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ipoke.config import Section
from ipoke.data.motion_evidence import motion_evidence
from ipoke.data.pokes import PokeParams, sample_pokes
from ipoke.data.shards import CLIPS_NAME, npy_load, shard_urls
from ipoke.errors import IpokeError


class AugmentParams(Section):
    enabled: bool = Field(False, description="augment training clips (the paper does not mention it)")
    hflip_prob: float = Field(0.5, ge=0.0, le=1.0, description="mirror the clip (flow dx and mask follow)")
    brightness: float = Field(0.1, ge=0.0, lt=1.0, description="scale frames by 1 +- this")
    contrast: float = Field(0.1, ge=0.0, lt=1.0, description="scale contrast about the mean by 1 +- this")


class SharedLoaderParams(Section):
    """The top-level ``loader`` section of params.yaml: what an epoch holds and how pokes are simulated, in
    one place for every stage that loads clips (the training stages, data_quality, evaluate)."""

    resampled: bool = Field(True, description="training: draw shards with replacement each epoch")
    epoch_clips: int | None = Field(None, ge=1, description="clips per training epoch; null = clips in split")
    seed: int = 0
    pokes: PokeParams = PokeParams()
    augment: AugmentParams = AugmentParams()


class BatchParams(Section):
    """A training stage's own ``loader`` keys (``<stage>.<profile>.loader``): batching only."""

    batch_size: int = Field(8, ge=1)
    workers: int = Field(2, ge=0)
    shuffle_buffer: int = Field(256, ge=0, description="samples in the shuffle buffer (0 = no shuffling)")


class LoaderParams(BatchParams, SharedLoaderParams):
    """Everything :func:`make_loader` reads: the shared section and one stage's batching."""


def sample_rng(seed: int, epoch: int, clip_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, zlib.crc32(clip_id.encode())])


def augment(frames: np.ndarray, arrays: dict[str, np.ndarray], rng: np.random.Generator, p: AugmentParams):
    """Random mirror and photometric jitter; flow-like arrays get dx negated when mirrored."""
    if rng.random() < p.hflip_prob:
        frames = frames[:, :, ::-1]
        for key, a in arrays.items():
            a = a[..., ::-1].copy()
            if key in ("flow", "gt_flow"):
                a[0] = -a[0]
            arrays[key] = a
    gain = 1 + rng.uniform(-p.brightness, p.brightness)
    contrast = 1 + rng.uniform(-p.contrast, p.contrast)
    f = frames.astype(np.float32)
    mean = f.mean()
    frames = np.clip((f - mean) * contrast + mean * gain, 0, 255).astype(np.uint8)
    return frames, arrays


def make_example(sample: dict, seed: int, epoch: int, params: SharedLoaderParams, train: bool) -> dict:
    """One decoded WebDataset sample -> the per-sample part of the batch contract."""
    meta = json.loads(sample["meta.json"])
    clip_id = meta["clip_id"]
    frames = npy_load(sample["frames.npy"])
    arrays = {"flow": npy_load(sample["flow.npy"]).astype(np.float32)}
    if "gt_flow.npy" in sample:
        arrays["gt_flow"] = npy_load(sample["gt_flow.npy"]).astype(np.float32)
        arrays["mask"] = npy_load(sample["mask.npy"]).astype(np.int64)
    rng = sample_rng(seed, epoch, clip_id)
    if train and params.augment.enabled:
        frames, arrays = augment(frames, arrays, rng, params.augment)
    evidence = motion_evidence(frames) if params.pokes.motion_evidence else None
    pokes = sample_pokes(arrays["flow"], rng, params.pokes, arrays.get("mask"), evidence)
    if pokes.background:
        frames = np.repeat(frames[:1], len(frames), axis=0)
        for key in ("flow", "gt_flow"):
            if key in arrays:
                arrays[key] = np.zeros_like(arrays[key])
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    example = {
        "video": video,
        "poke": torch.from_numpy(pokes.poke),
        "poke_points": torch.from_numpy(pokes.points),
        "n_pokes": torch.tensor(pokes.n, dtype=torch.int64),
        "background_poke": torch.tensor(pokes.background),
        "clip_id": clip_id,
    }
    return example | {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def tar_samples(urls: Iterator[str]) -> Iterator[dict]:
    """Samples of the given shards, read through fsspec one shard at a time."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    def streams():
        for url in urls:
            with fsspec.open(url, "rb") as stream:
                yield {"url": url, "stream": stream}

    return group_by_keys(tar_file_expander(streams()))


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ClipStream(IterableDataset):
    """Iterable over examples of a set of shards (see the module docstring)."""

    def __init__(self, urls: list[str], params: LoaderParams, train: bool, epoch_clips: int | None = None):
        if not urls:
            raise IpokeError("no shards to load")
        if train and params.resampled and not (params.epoch_clips or epoch_clips):
            raise IpokeError("loader.epoch_clips must be set for resampled shards without a clips.parquet")
        self.urls, self.params, self.train = list(urls), params, train
        self.epoch_clips = params.epoch_clips or epoch_clips
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_order(self, rng: np.random.Generator, rank: int, world: int, wid: int, nw: int):
        if self.train and self.params.resampled:
            while True:
                yield self.urls[int(rng.integers(len(self.urls)))]
        urls = self.urls[rank::world][wid::nw]
        order = rng.permutation(len(urls)) if self.train and self.params.shuffle_buffer else range(len(urls))
        yield from (urls[i] for i in order)

    def __iter__(self) -> Iterator[dict]:
        import webdataset as wds

        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rank, world = _rank_world() if self.train else (0, 1)
        seed, epoch = self.params.seed, self.epoch if self.train else 0
        rng = np.random.default_rng([seed, epoch, rank, wid])
        samples = tar_samples(self._shard_order(rng, rank, world, wid, nw))
        if self.train and self.params.shuffle_buffer > 1:
            buffer = self.params.shuffle_buffer
            shuffle = wds.shuffle(buffer, min(buffer, 64), rng=random.Random(int(rng.integers(2**63))))
            samples = shuffle(samples)
        limit = None
        if self.train and self.params.resampled:
            per_rank = self.epoch_clips // world  # the same on every rank: equal steps per epoch
            limit = per_rank // nw + (wid < per_rank % nw)
        for i, sample in enumerate(samples):
            if limit is not None and i >= limit:
                return
            yield make_example(sample, seed, epoch, self.params, self.train)


class EpochLoader(DataLoader):
    """A DataLoader that gives its :class:`ClipStream` a new epoch number on every pass."""

    def __init__(self, dataset: ClipStream, *args, **kwargs):
        super().__init__(dataset, *args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.dataset.set_epoch(self.epoch)  # before the workers start, so each sees it
        self.epoch += 1
        return super().__iter__()


def resolve_source(source: str | Path | list[str], split: str) -> tuple[list[str], int | None]:
    """Shard URLs and clip count from a shard directory (with clips.parquet), a brace pattern or a list."""
    if isinstance(source, list | tuple):
        return [str(u) for u in source], None
    if (Path(source) / CLIPS_NAME).is_file():
        import pandas as pd

        clips = pd.read_parquet(Path(source) / CLIPS_NAME, columns=["split"])
        return shard_urls(source, split), int((clips["split"] == split).sum())
    from webdataset.shardlists import expand_urls

    return expand_urls(str(source)), None


def make_loader(
    source: str | Path | list[str], split: str = "train", params: LoaderParams | None = None,
    train: bool | None = None,
) -> EpochLoader:
    """Batches of ``split`` from a shard directory, pattern (``{000000..000009}``) or list of URLs.

    ``train`` (default: ``split == "train"``) enables shuffling, resampling and augmentation.
    """
    params = params or LoaderParams()
    train = split == "train" if train is None else train
    urls, n_clips = resolve_source(source, split)
    dataset = ClipStream(urls, params, train, n_clips)
    return EpochLoader(
        dataset, batch_size=params.batch_size, num_workers=params.workers,
        persistent_workers=False, drop_last=False,
    )
