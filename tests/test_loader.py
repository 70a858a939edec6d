"""The training loader: batch contract, round trip, determinism per (seed, epoch), workers, augmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_shards import synthetic_pipeline

from ipoke.data import loader as loader_module
from ipoke.data.loader import AugmentParams, LoaderParams, make_loader
from ipoke.data.pokes import PokeParams
from ipoke.data.shards import CLIPS_NAME
from ipoke.errors import IpokeError


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return synthetic_pipeline(tmp_path_factory)


def all_batches(loader) -> dict[str, dict]:
    """clip_id -> that clip's slice of every batch field."""
    out = {}
    for batch in loader:
        for i, clip_id in enumerate(batch["clip_id"]):
            out[clip_id] = {k: v[i] for k, v in batch.items() if k != "clip_id"}
    return out


def test_batch_contract(dirs):
    params = LoaderParams(batch_size=4, workers=0, shuffle_buffer=8)
    batch = next(iter(make_loader(dirs["shards"], "train", params)))
    b = 4
    assert batch["video"].shape == (b, 11, 3, 64, 64) and batch["video"].dtype == torch.float32
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    assert batch["flow"].shape == batch["poke"].shape == batch["gt_flow"].shape == (b, 2, 64, 64)
    assert batch["poke_points"].shape == (b, 5, 4) and batch["poke_points"].dtype == torch.float32
    assert batch["n_pokes"].dtype == torch.int64 and ((batch["n_pokes"] >= 1) & (batch["n_pokes"] <= 5)).all()
    assert batch["background_poke"].dtype == torch.bool
    assert batch["mask"].shape == (b, 64, 64) and batch["mask"].dtype == torch.int64
    assert isinstance(batch["clip_id"], list) and len(batch["clip_id"]) == b


def test_round_trip_without_shuffling_loads_every_clip_once_as_stored(dirs):
    from ipoke.data.frames import read_index

    clips = pd.read_parquet(dirs["shards"] / CLIPS_NAME)
    test = clips[clips["split"] == "test"]
    params = LoaderParams(batch_size=3, workers=0, pokes=PokeParams(background_prob=0.0))
    loaded = all_batches(make_loader(dirs["shards"], "test", params))
    assert sorted(loaded) == sorted(test["clip_id"])
    index = read_index(dirs["frames"]).set_index("video_id")
    flow_index = pd.read_parquet(dirs["flow"] / "index.parquet").set_index("clip_id")
    for clip in test.itertuples():
        video = np.load(dirs["frames"] / index.loc[clip.video_id, "file"])[clip.start : clip.end + 1]
        expected = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1
        torch.testing.assert_close(loaded[clip.clip_id]["video"], expected)
        row = flow_index.loc[clip.clip_id]
        flow = np.load(dirs["flow"] / row["file"])[row["row"]].astype(np.float32)
        torch.testing.assert_close(loaded[clip.clip_id]["flow"], torch.from_numpy(flow))


def test_pokes_are_deterministic_per_epoch_and_new_each_epoch(dirs):
    params = LoaderParams(batch_size=4, workers=0, resampled=False)
    first = all_batches(make_loader(dirs["shards"], "train", params))
    again = all_batches(make_loader(dirs["shards"], "train", params))
    for clip_id, fields in first.items():
        for key, value in fields.items():
            torch.testing.assert_close(again[clip_id][key], value)
    loader = make_loader(dirs["shards"], "train", params)
    epoch0, epoch1 = all_batches(loader), all_batches(loader)  # EpochLoader advances the epoch
    assert sorted(epoch0) == sorted(epoch1) == sorted(first)
    changed = [not torch.equal(epoch0[c]["poke_points"], epoch1[c]["poke_points"]) for c in epoch0]
    assert np.mean(changed) > 0.8
    loader.set_epoch(0)
    for clip_id, fields in all_batches(loader).items():
        torch.testing.assert_close(fields["poke_points"], first[clip_id]["poke_points"])


def test_evaluation_passes_draw_the_same_pokes_every_time(dirs):
    loader = make_loader(dirs["shards"], "test", LoaderParams(batch_size=4, workers=0))
    first, second = all_batches(loader), all_batches(loader)  # the loader's epoch advances ...
    assert sorted(first) == sorted(second)
    for clip_id, fields in first.items():  # ... but its examples do not change
        torch.testing.assert_close(second[clip_id]["poke_points"], fields["poke_points"])
        torch.testing.assert_close(second[clip_id]["poke"], fields["poke"])


def test_two_workers_give_the_same_samples_as_none(dirs):
    params = LoaderParams(batch_size=2, workers=0)
    single = all_batches(make_loader(dirs["shards"], "test", params))
    double = all_batches(make_loader(dirs["shards"], "test", params.model_copy(update={"workers": 2})))
    assert sorted(single) == sorted(double)
    for clip_id, fields in single.items():
        torch.testing.assert_close(double[clip_id]["poke"], fields["poke"])


def test_resampled_epochs_have_the_requested_length(dirs):
    params = LoaderParams(batch_size=5, workers=0, epoch_clips=13, shuffle_buffer=4)
    batches = list(make_loader(dirs["shards"], "train", params))
    assert [len(b["clip_id"]) for b in batches] == [5, 5, 3]


def clip_ids(shards, split: str, params: LoaderParams) -> list[str]:
    return [c for batch in make_loader(shards, split, params) for c in batch["clip_id"]]


def test_data_parallel_ranks_train_on_their_own_shards_in_equal_steps_and_all_evaluate_everything(
    dirs, monkeypatch
):
    once = LoaderParams(batch_size=2, workers=0, resampled=False, shuffle_buffer=0)
    resampled = LoaderParams(batch_size=2, workers=0, epoch_clips=13, shuffle_buffer=0)
    train, test = clip_ids(dirs["shards"], "train", once), clip_ids(dirs["shards"], "test", once)

    def per_rank(split: str, params: LoaderParams) -> list[list[str]]:
        clips = []
        for rank in (0, 1):
            monkeypatch.setattr(loader_module, "_rank_world", lambda rank=rank: (rank, 2))
            clips.append(clip_ids(dirs["shards"], split, params))
        return clips

    assert [len(clips) for clips in per_rank("train", resampled)] == [6, 6]  # 13 // 2 each: equal steps
    rank0, rank1 = per_rank("train", once)
    assert rank0 and rank1 and not set(rank0) & set(rank1) and sorted(rank0 + rank1) == sorted(train)
    assert per_rank("test", once) == [test, test]


def test_background_poke_targets_the_still_video(dirs):
    params = LoaderParams(batch_size=16, workers=0, pokes=PokeParams(background_prob=1.0))
    batch = next(iter(make_loader(dirs["shards"], "test", params)))
    assert batch["background_poke"].all()
    video = batch["video"]
    assert torch.equal(video, video[:, :1].expand_as(video))
    assert not batch["flow"].any() and not batch["gt_flow"].any() and batch["poke"].abs().sum() > 0


def test_augmentation_mirrors_frames_flow_and_mask_together(dirs):
    plain = LoaderParams(batch_size=64, workers=0, resampled=False, shuffle_buffer=0,
                         pokes=PokeParams(background_prob=0.0))
    flipped = plain.model_copy(update={"augment": AugmentParams(enabled=True, hflip_prob=1.0, brightness=0.0,
                                                                contrast=0.0)})
    a = all_batches(make_loader(dirs["shards"], "train", plain))
    b = all_batches(make_loader(dirs["shards"], "train", flipped))
    for clip_id in a:
        torch.testing.assert_close(b[clip_id]["video"], a[clip_id]["video"].flip(-1), atol=1 / 127.5, rtol=0)
        torch.testing.assert_close(b[clip_id]["mask"], a[clip_id]["mask"].flip(-1))
        torch.testing.assert_close(b[clip_id]["flow"][0], -a[clip_id]["flow"][0].flip(-1))
        torch.testing.assert_close(b[clip_id]["flow"][1], a[clip_id]["flow"][1].flip(-1))


def test_bad_sources_are_reported(tmp_path):
    with pytest.raises(IpokeError, match="no shards"):
        make_loader([], "train")
    with pytest.raises(IpokeError, match="epoch_clips must be set"):
        make_loader([str(tmp_path / "x-000000.tar")], "train")
