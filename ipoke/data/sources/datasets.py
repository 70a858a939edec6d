"""The paper's real datasets: PokingPlants, iPER, TaiChi-HD and Human3.6M (``download.source``).

A dataset's videos are looked for, in this order:

1. ``<manual_dir>/<name>/``: the videos, or the archives they come in, that you fetched yourself;
2. ``download.remote.<name>.url``: a download location replacing the built-in one;
3. the built-in automatic download, where the licence allows it (PokingPlants from the authors'
   share, Human3.6M with your login cookie in ``H36M_PHPSESSID``).

Otherwise the stage stops with what to fetch, from where and where to put it. Downloads and unpacked
archives stay in ``<cache_dir>/<name>/`` (resumable, checksum-verified); ``downloads.json`` in the
output records the URL and sha256 of every file fetched, and ``download.remote.<name>.sha256`` pins
them (file name -> sha256) where no checksum is published. Splits follow the paper (section 4.1):
PokingPlants keeps each video once as ``train`` with ``test_from_frame`` at 80% of its frames (the last
20% of every video is the test set); iPER uses the official ``train.txt``/``val.txt``; TaiChi-HD its
``train/``/``test/`` folders; Human3.6M holds out subjects S9 and S11.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlparse

from pydantic import Field

from ipoke import atomic
from ipoke.config import Section
from ipoke.data.sources import Skipped, SourceResult, remote
from ipoke.data.sources.folder import (
    Candidate,
    LinkMode,
    find_videos,
    frames_needed,
    ingest,
    require_videos,
    split_folder,
)
from ipoke.errors import IpokeError

RERUN = "Then rerun: dvc repro download"


class Override(Section):
    url: str | None = None  # replaces the built-in download location
    sha256: dict[str, str] = {}  # file name -> expected sha256 of that downloaded file


class Params(Section):
    cache_dir: str = "data/cache/downloads"
    manual_dir: str = "data/manual"
    link: LinkMode = "hardlink"
    min_frames: int | None = Field(None, ge=2)  # None: a clip's span at the dataset's frame step
    retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)  # wait before retry n: backoff_s * 2**(n - 1)
    timeout_s: float = Field(60.0, gt=0)
    plants: Override = Override()
    iper: Override = Override()
    taichi: Override = Override()
    h36m: Override = Override()


class ManualDataRequired(IpokeError):
    """The dataset is not on disk and cannot be fetched without the user."""


@dataclass
class Fetcher:
    """Downloads and unpacking for one dataset; remembers what it fetched for ``downloads.json``."""

    name: str
    params: Params
    published_md5: dict[str, str] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)

    @property
    def override(self) -> Override:
        return getattr(self.params, self.name)

    @property
    def manual(self) -> Path:
        return Path(self.params.manual_dir) / self.name

    @property
    def cache(self) -> Path:
        return Path(self.params.cache_dir) / self.name

    def _checks(self, file_name: str) -> dict[str, str | None]:
        pinned = self.override.sha256.get(file_name)
        return {"sha256": pinned, "md5": None if pinned else self.published_md5.get(file_name)}

    def download(self, url: str, rel: str, headers: dict[str, str] | None = None) -> Path:
        dest = self.cache / rel
        digest = remote.download(
            url,
            dest,
            **self._checks(dest.name),
            headers=headers,
            retries=self.params.retries,
            timeout=self.params.timeout_s,
            backoff_s=self.params.backoff_s,
        )
        self.records.append({"file": rel, "url": url, "sha256": digest, "bytes": dest.stat().st_size})
        return dest

    def unpack(self, archive: Path, check: bool = True) -> Path:
        """Unpack ``archive`` (joining a split zip first) into ``cache/extracted/<stem>/``, once.

        ``check`` verifies pinned or published checksums first (downloads were verified already).
        """
        dest = self.cache / "extracted" / remote.archive_stem(archive)
        if dest.is_dir():
            return dest
        if check:
            remote.verify(archive, **self._checks(archive.name))
        if not (archive.name.lower().endswith(".zip") and remote.split_zip_parts(archive)):
            return remote.extract(archive, dest)
        joined = remote.join_split_zip(archive, self.cache / "joined" / archive.name)
        remote.extract(joined, dest)
        joined.unlink()  # as large as the parts, which stay for reruns
        return dest

    def unpack_folder(self, folder: Path, check: bool = True) -> list[Path]:
        """Folders with videos: ``folder`` itself when it holds any video, else its archives unpacked."""
        if find_videos(folder):
            return [folder]
        archives = sorted(p for p in folder.rglob("*") if p.is_file() and remote.is_archive(p))
        return [self.unpack(a, check) for a in archives]

    def manual_roots(self) -> list[Path]:
        return self.unpack_folder(self.manual) if self.manual.is_dir() else []

    def url_roots(self) -> list[Path]:
        """The archive at ``download.remote.<name>.url``, downloaded and unpacked."""
        url = self.override.url
        if url is None:
            return []
        name = Path(urlparse(url).path).name
        if not remote.is_archive(Path(name)):
            raise remote.DownloadError(
                f"{url}: expected a link to an archive ({', '.join(remote.ARCHIVE_SUFFIXES)})"
            )
        return [self.unpack(self.download(url, f"url/{name}"), check=False)]


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    instructions: str  # what to fetch, from where; ``{manual}`` is the folder to put it in
    collect: Callable[[Fetcher], list[Candidate | Skipped]]
    published_md5: dict[str, str] = field(default_factory=dict)

    def manual_required(self, folder: Path, reason: str) -> ManualDataRequired:
        steps = self.instructions.format(manual=folder.resolve())
        return ManualDataRequired(f"{self.title}: {reason}\n{steps}\n{RERUN}")


def _videos(roots: list[Path]) -> list[tuple[Path, PurePosixPath]]:
    """(file, path relative to its root, with the root's own name first) for every video under ``roots``."""
    return [
        (p, PurePosixPath(root.name, p.relative_to(root).as_posix()))
        for root in roots
        for p in find_videos(root)
    ]


# --- PokingPlants -----------------------------------------------------------------------------------

PLANTS_SHARE = "https://heibox.uni-heidelberg.de/d/71de55de923646509bc4/"
SEAFILE_SHARE = re.compile(r"(?P<host>https?://.+?)/d/(?P<token>[0-9A-Za-z]+)/?")
PLANTS_TEST_FRACTION = 0.2  # the last 20% of every video's frames are the test set


def _seafile_roots(f: Fetcher, host: str, token: str) -> list[Path]:
    """Download every file of a public Seafile share link (the authors' heibox) into ``cache/share/``."""
    listing_file = f.cache / "share-listing.json"
    if listing_file.is_file():
        paths = json.loads(listing_file.read_text())
    else:
        paths, folders = [], ["/"]
        while folders:
            folder = folders.pop()
            api = f"{host}/api/v2.1/share-links/{token}/dirents/?path={quote(folder)}"
            listing = remote.fetch_json(
                api, retries=f.params.retries, timeout=f.params.timeout_s, backoff_s=f.params.backoff_s
            )
            for item in listing.get("dirent_list", []):
                if item.get("is_dir"):
                    folders.append(item["folder_path"])
                else:
                    paths.append(item["file_path"])
        if not paths:
            raise remote.DownloadError(f"{host}/d/{token}/: the share lists no files")
    for path in sorted(paths):
        rel = PurePosixPath(path.lstrip("/"))
        if ".." in rel.parts or not rel.parts:
            raise remote.DownloadError(f"{host}/d/{token}/: refusing the listed file name {path!r}")
        f.download(f"{host}/d/{token}/files/?p={quote(path)}&dl=1", f"share/{rel}")
    atomic.write_text(listing_file, json.dumps(sorted(paths)))
    return f.unpack_folder(f.cache / "share", check=False)


def _collect_plants(f: Fetcher) -> list[Candidate | Skipped]:
    roots = f.manual_roots()
    if not roots:
        location = f.override.url or PLANTS_SHARE
        share = SEAFILE_SHARE.fullmatch(location)
        roots = _seafile_roots(f, share["host"], share["token"]) if share else f.url_roots()
    items: list[Candidate | Skipped] = []
    for path, _ in _videos(roots):
        match = re.match(r"VID_(\d+)_", path.name)
        items.append(
            Candidate(
                source=path,
                rel=PurePosixPath(path.name),
                object_id=f"plant_{match.group(1)}" if match else path.stem,
                split="train",
                test_fraction=PLANTS_TEST_FRACTION,
            )
        )
    return items


# --- iPER -------------------------------------------------------------------------------------------

IPER_LISTS = "http://download.impersonator.org:20086/datasets/iPER"
IPER_ONEDRIVE = (
    "https://onedrive.live.com/?authkey=%21AJL%5FNAQMkdXGPlA&id=3705E349C336415F%2188052&cid=3705E349C336415F"
)


def _iper_split_lists(f: Fetcher) -> dict[str, str]:
    """``{"001_1_1": "train", ...}`` from the official ``train.txt``/``val.txt`` (lines like ``001/1/1``)."""
    splits = {}
    for split, name in (("train", "train.txt"), ("test", "val.txt")):
        local = f.manual / name
        path = local if local.is_file() else f.download(f"{IPER_LISTS}/{name}", name)
        for line in path.read_text().split():
            splits[line.strip().strip("/").replace("/", "_")] = split
    return splits


def _collect_iper(f: Fetcher) -> list[Candidate | Skipped]:
    roots = f.manual_roots() or f.url_roots()
    if not roots:
        raise REGISTRY["iper"].manual_required(f.manual, "the videos are not here yet")
    splits = _iper_split_lists(f)
    items: list[Candidate | Skipped] = []
    for path, _ in _videos(roots):
        split = splits.get(path.stem)
        if split is None:
            items.append(Skipped(str(path), "not in the official train.txt or val.txt"))
            continue
        actor_outfit = "_".join(path.stem.split("_")[:2])
        items.append(
            Candidate(source=path, rel=PurePosixPath(path.name), object_id=actor_outfit, split=split)
        )
    return items


# --- TaiChi-HD --------------------------------------------------------------------------------------


def _collect_taichi(f: Fetcher) -> list[Candidate | Skipped]:
    roots = f.manual_roots() or f.url_roots()
    if not roots:
        raise REGISTRY["taichi"].manual_required(f.manual, "the videos are not here yet")
    items: list[Candidate | Skipped] = []
    for path, rel in _videos(roots):
        split = split_folder(rel)
        if split is None:
            items.append(Skipped(str(path), "not inside a train/ or test/ folder"))
            continue
        # first-order-model names clips <youtube id>#<start>#<end>.mp4: one object per source video
        items.append(
            Candidate(
                source=path,
                rel=PurePosixPath(split, path.name),
                object_id=path.stem.split("#")[0],
                split=split,
            )
        )
    return items


# --- Human3.6M --------------------------------------------------------------------------------------

H36M_URL = "http://vision.imar.ro/human3.6m/filebrowser.php"
H36M_COOKIE_ENV = "H36M_PHPSESSID"
H36M_TEST_SUBJECTS = ("S9", "S11")
# subject -> (number of its SubjectSpecific_<n>.tgz on the server, published MD5 of the video archive).
# MD5s as published with h36m-fetch; S11's archive was reissued in 2020 with a repaired
# Directions.54138969.mp4, this is the reissued one.
H36M_VIDEOS = {
    "S1": (1, "d517e6c0b1112427b2a39fcbd732281c"),
    "S5": (6, "02ef041813c3a37b137f86df24419e5a"),
    "S6": (7, "a4b8690e5320c5854f99f60bf31cbabc"),
    "S7": (2, "79caf93c6ec31b1c14cd1d31d5f292e0"),
    "S8": (3, "18818148e68fcd80fce1efa82f98126d"),
    "S9": (4, "3e7d923d5c573ac833334a31b5f8a797"),
    "S11": (5, "25c25250be8f75d7991dcbf74bb9d339"),
}


def _h36m_download(f: Fetcher) -> list[Path]:
    cookie = os.environ.get(H36M_COOKIE_ENV)
    if not cookie:
        return []
    roots = []
    for subject, (number, _) in H36M_VIDEOS.items():
        url = f"{H36M_URL}?download=1&filepath=Videos&filename=SubjectSpecific_{number}.tgz"
        archive = f.download(url, f"Videos_{subject}.tgz", headers={"Cookie": f"PHPSESSID={cookie}"})
        roots.append(f.unpack(archive, check=False))
    return roots


def _h36m_subject(rel: PurePosixPath) -> str | None:
    for part in reversed(rel.parent.parts):
        match = re.fullmatch(r"(?:Videos_)?(S\d{1,2})", part)
        if match:
            return match.group(1)
    return None


def _collect_h36m(f: Fetcher) -> list[Candidate | Skipped]:
    roots = f.manual_roots() or f.url_roots() or _h36m_download(f)
    if not roots:
        raise REGISTRY["h36m"].manual_required(
            f.manual, "the videos are not here yet (licence and login needed)"
        )
    items: list[Candidate | Skipped] = []
    for path, rel in _videos(roots):
        subject = _h36m_subject(rel)
        if "_ALL" in path.name:
            items.append(Skipped(str(path), "montage of all cameras/actions ('_ALL'), not one recording"))
        elif subject is None:
            items.append(Skipped(str(path), "no subject folder (S1 ... S11) on its path"))
        else:
            split = "test" if subject in H36M_TEST_SUBJECTS else "train"
            items.append(
                Candidate(source=path, rel=PurePosixPath(subject, path.name), object_id=subject, split=split)
            )
    return items


# --- registry ---------------------------------------------------------------------------------------

REGISTRY: dict[str, Dataset] = {
    "plants": Dataset(
        name="plants",
        title="PokingPlants",
        instructions=(
            "To fetch it yourself:\n"
            f"  1. Download every file of the authors' share {PLANTS_SHARE}\n"
            "     (poking_plants.zip and its .z01, .z02, ... parts).\n"
            "  2. Put them, or the videos extracted from them (VID_<plant>_<n>.mkv), into\n"
            "     {manual}/\n"
            "     (the split zip is joined and unpacked by this stage)."
        ),
        collect=_collect_plants,
    ),
    "iper": Dataset(
        name="iper",
        title="iPER",
        instructions=(
            "To fetch it (a Microsoft account is needed for the OneDrive folder):\n"
            "  1. Download iPER_1024_video_release.zip, train.txt and val.txt from\n"
            f"     {IPER_ONEDRIVE}\n"
            "     (mirrors: https://svip-lab.github.io/dataset/iPER_dataset.html).\n"
            "  2. Put the zip, or the videos extracted from it (<actor>_<outfit>_<action>.mp4), and\n"
            "     train.txt and val.txt into\n"
            "     {manual}/\n"
            "     (or set download.remote.iper.url to a direct link to the zip).\n"
            f"     Without local lists, train.txt and val.txt are fetched from {IPER_LISTS}/."
        ),
        collect=_collect_iper,
    ),
    "taichi": Dataset(
        name="taichi",
        title="TaiChi-HD",
        instructions=(
            "TaiChi-HD is cut from YouTube videos and cannot be redistributed; build it with the\n"
            "first-order-model scripts:\n"
            "  1. git clone https://github.com/AliaksandrSiarohin/first-order-model\n"
            "     cd first-order-model/data/taichi-loading, and get youtube-dl (see its README.md).\n"
            "  2. python load_videos.py --metadata taichi-metadata.csv --format .mp4 --workers 8 \\\n"
            "         --out_folder {manual}\n"
            "     which writes the train/ and test/ folders of clips there (videos since removed from\n"
            "     YouTube are missing; the paper used 252 train and 28 test source videos)."
        ),
        collect=_collect_taichi,
    ),
    "h36m": Dataset(
        name="h36m",
        title="Human3.6M",
        instructions=(
            "Human3.6M needs a licence: register at http://vision.imar.ro/human3.6m/ and wait for\n"
            "approval, then either\n"
            "  a. log in, copy the PHPSESSID cookie of vision.imar.ro from your browser and run\n"
            f"       {H36M_COOKIE_ENV}=<cookie> dvc repro download\n"
            "     to let this stage download the video archives of S1, S5, S6, S7, S8, S9 and S11\n"
            "     (MD5-checked), or\n"
            "  b. download them yourself (Videos > SubjectSpecific_<n>.tgz, n = 1, 6, 7, 2, 3, 4, 5 for\n"
            "     S1, S5, S6, S7, S8, S9, S11) and save them as Videos_S1.tgz ... Videos_S11.tgz in\n"
            "     {manual}/\n"
            "     or extract them there (one S<n>/ folder per subject)."
        ),
        collect=_collect_h36m,
        published_md5={f"Videos_{s}.tgz": md5 for s, (_, md5) in H36M_VIDEOS.items()},
    ),
}


def build(params, out_dir: Path, *, frame_step: int) -> SourceResult:
    """``params`` is the whole download section; reads ``params.source`` and ``params.remote``.
    ``frame_step`` is the dataset's ``extract_frames`` step."""
    dataset = REGISTRY[params.source]
    p: Params = params.remote
    fetcher = Fetcher(dataset.name, p, published_md5=dataset.published_md5)
    try:
        items = dataset.collect(fetcher)
    except remote.DownloadError as err:
        raise dataset.manual_required(fetcher.manual, f"automatic download failed:\n  {err}") from None
    candidates = [i for i in items if isinstance(i, Candidate)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    need = frames_needed(p.min_frames, frame_step, "download.remote.min_frames")
    result = ingest(candidates, Path(out_dir), min_frames=need, link=p.link, skipped=skipped)
    if fetcher.records:
        atomic.write_text(Path(out_dir) / "downloads.json", json.dumps(fetcher.records, indent=2) + "\n")
    return require_videos(result, dataset.title)
