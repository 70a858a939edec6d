"""LPIPS loading without downloads; distance properties with an untrained backbone (plumbing only)."""

from __future__ import annotations

import pytest
import torch
from metrics_scenes import fake_alexnet_checkpoint

from ipoke.errors import IpokeError
from ipoke.metrics import MetricUnavailable
from ipoke.metrics.perceptual import ALEXNET_URL, Lpips, alexnet_checkpoint_path, load_lpips


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "alexnet-features.pth"  # no hash in the name
    return path, fake_alexnet_checkpoint(path)


@pytest.fixture(scope="module")
def lpips(checkpoint):
    return load_lpips(checkpoint=checkpoint[0])


def test_checkpoint_path_follows_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert alexnet_checkpoint_path() == tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"


def test_missing_backbone_is_reported_not_computed(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    missing = load_lpips()
    assert isinstance(missing, MetricUnavailable)
    assert str(alexnet_checkpoint_path()) in missing.reason and ALEXNET_URL in missing.how_to_fix
    assert not (tmp_path / "hub").exists()


def test_backbone_weights_come_from_the_checkpoint(lpips, checkpoint):
    assert isinstance(lpips, Lpips)
    state, loaded = checkpoint[1], lpips.model.net.state_dict()
    assert torch.equal(loaded["slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(loaded["slice5.10.bias"], state["features.10.bias"])


def test_hash_in_the_name_is_checked(tmp_path):
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    fake_alexnet_checkpoint(path)
    with pytest.raises(IpokeError, match="does not match"):
        load_lpips(checkpoint=path)
    assert isinstance(load_lpips(checkpoint=path, check_hash=False), Lpips)


def test_foreign_checkpoints_name_the_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(IpokeError, match="other.pth: not torchvision AlexNet weights"):
        load_lpips(checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(IpokeError, match="cannot read"):
        load_lpips(checkpoint=path)


def test_distance_properties(lpips):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    assert lpips.frames(a, a).abs().max() < 1e-6
    ab, ba = lpips.frames(a, b), lpips.frames(b, a)
    assert ab.shape == (4,) and (ab > 0).all()
    torch.testing.assert_close(ab, ba)


def test_videos_average_frames_and_broadcast_samples(lpips):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    samples = torch.rand(2, 3, 3, 32, 32, generator=g) * 2 - 1
    scores = lpips.videos(samples, target)
    assert scores.shape == (2,)
    torch.testing.assert_close(scores[1], lpips.frames(samples[1], target).mean())
