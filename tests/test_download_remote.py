"""Downloads against a local HTTP server, archive extraction, and the real-dataset sources.

The server (127.0.0.1, a thread) serves archives the tests build from tiny mp4s; it can cut a
transfer short once, ignore Range requests, answer with a login page, and mimic the Seafile share
API the PokingPlants authors host their data with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import math
import shutil
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_videos import write_video

from ipoke.config import parse_section
from ipoke.data import manifest
from ipoke.data.frames import FramesParams
from ipoke.data.sources import datasets, folder, remote
from ipoke.errors import IpokeError


@dataclasses.dataclass
class Server:
    port: int = 0
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # request path -> body
    pages: dict[str, tuple[str, bytes]] = dataclasses.field(default_factory=dict)  # path -> (type, body)
    cut_once: set[str] = dataclasses.field(default_factory=set)  # first full GET stops halfway
    ranges: bool = True
    cookie: str | None = None  # when set, files need this Cookie header
    requests: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)  # (path, Range)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        state: Server = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        if self.path in state.pages:
            content_type, body = state.pages[self.path]
            return self._send(200, body, content_type)
        if self.path not in state.files or (state.cookie and self.headers.get("Cookie") != state.cookie):
            return self._send(404, b"not found", "text/plain")
        body = state.files[self.path]
        wanted = self.headers.get("Range")
        if wanted and state.ranges:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
            tail = body[start:]
            return self._send(
                206,
                tail,
                "application/octet-stream",
                {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
            )
        if self.path in state.cut_once:
            state.cut_once.discard(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return None  # HTTP/1.0: the connection closes with half the promised bytes sent
        return self._send(200, body, "application/octet-stream")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = Server(port=httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buffer.getvalue()


PAYLOAD = bytes(range(256)) * 400  # 100 KiB


# --- downloads --------------------------------------------------------------------------------------


def test_download_verifies_and_returns_sha256(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "cache" / "data.bin"
    assert remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD)) == sha(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("data.bin.part").exists()
    assert remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD)) == sha(PAYLOAD)
    assert len(server.requests) == 1  # the verified file is reused without asking the server


def test_broken_checksum_leaves_nothing(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    with pytest.raises(remote.DownloadError) as info:
        remote.download(server.url("/data.bin"), dest, sha256="0" * 64)
    text = str(info.value)
    assert "checksum mismatch" in text and "0" * 64 in text and sha(PAYLOAD) in text
    assert server.url("/data.bin") in text
    assert list(tmp_path.iterdir()) == []


def test_md5_checked_too(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    with pytest.raises(remote.DownloadError, match="expected md5"):
        remote.download(server.url("/data.bin"), tmp_path / "data.bin", md5="0" * 32)
    good = hashlib.md5(PAYLOAD).hexdigest()
    assert remote.download(server.url("/data.bin"), tmp_path / "data.bin", md5=good) == sha(PAYLOAD)


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.cut_once.add("/data.bin")
    dest = tmp_path / "data.bin"
    remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD), retries=2, backoff_s=0)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", None), ("/data.bin", f"bytes={len(PAYLOAD) // 2}-")]


def test_partial_file_from_a_killed_run_resumes(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD[:1000])
    remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=1000-")]


def test_complete_partial_file_is_only_verified(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD)
    remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416: nothing left


def test_server_without_range_support_starts_over(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.ranges = False
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(b"stale bytes")
    remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_retries_run_out(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.ranges = False  # every attempt restarts and is cut again
    server.cut_once.add("/data.bin")
    with pytest.raises(remote.DownloadError, match="failed after 1 attempts"):
        remote.download(server.url("/data.bin"), tmp_path / "data.bin", retries=0)
    assert not (tmp_path / "data.bin").exists()


def test_missing_file_fails_without_retrying(server, tmp_path):
    with pytest.raises(remote.DownloadError, match="HTTP 404"):
        remote.download(server.url("/nope.zip"), tmp_path / "nope.zip", retries=3, backoff_s=0)
    assert len(server.requests) == 1


def test_login_page_instead_of_file(server, tmp_path):
    server.pages["/file.tgz"] = ("text/html", b"<html>please log in</html>")
    with pytest.raises(remote.DownloadError, match="HTML page instead of the file"):
        remote.download(server.url("/file.tgz"), tmp_path / "file.tgz")
    assert not (tmp_path / "file.tgz").exists()


def test_existing_file_with_wrong_pin(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old content")
    with pytest.raises(remote.DownloadError, match="delete it to download again"):
        remote.download(server.url("/data.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == b"old content"


# --- extraction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "make"), [("a.zip", zip_bytes), ("a.tar.gz", tar_bytes)])
def test_extract(tmp_path, name, make):
    archive = tmp_path / name
    archive.write_bytes(make({"top/x.bin": b"x", "top/sub/y.bin": b"yy"}))
    out = remote.extract(archive, tmp_path / "out")
    assert (out / "top" / "x.bin").read_bytes() == b"x"
    assert (out / "top" / "sub" / "y.bin").read_bytes() == b"yy"
    assert remote.archive_stem(archive) == "a"


@pytest.mark.parametrize(
    ("name", "content", "member"),
    [
        ("evil.zip", zip_bytes({"ok.txt": b"fine", "../evil.txt": b"pwned"}), "../evil.txt"),
        ("evil.tgz", tar_bytes({"ok.txt": b"fine", "../evil.txt": b"pwned"}), "../evil.txt"),
        ("abs.tgz", tar_bytes({"ok.txt": b"fine", "/tmp/evil.txt": b"pwned"}), "/tmp/evil.txt"),
        ("link.tgz", tar_bytes({"ok.txt": b"fine"}, links={"escape": "../../outside"}), "escape"),
    ],
)
def test_path_traversal_is_refused(tmp_path, name, content, member):
    archive = tmp_path / "in" / name
    archive.parent.mkdir()
    archive.write_bytes(content)
    target = tmp_path / "deep" / "out"
    with pytest.raises(IpokeError) as info:
        remote.extract(archive, target)
    assert str(archive) in str(info.value) and "refusing" in str(info.value) and member in str(info.value)
    assert not target.exists()
    assert not (tmp_path / "deep").exists() or list((tmp_path / "deep").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_truncated_archive(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(tar_bytes({"x.bin": PAYLOAD})[:500])
    with pytest.raises(IpokeError, match="cut.tar.gz"):
        remote.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("zip") is None, reason="making a split zip needs Info-ZIP's zip")
@pytest.mark.parametrize("zip64", [False, True])
def test_split_zip_is_joined(tmp_path, zip64):
    src = tmp_path / "src"
    src.mkdir()
    files = {
        f"f{k}.bin": b"".join(hashlib.sha256(f"{k}-{i}".encode()).digest() for i in range(3000))
        for k in range(3)
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    (src / "small.txt").write_text("hello")
    parts = tmp_path / "parts"
    parts.mkdir()
    flags = ["-fz"] if zip64 else []
    subprocess.run(
        ["zip", "-q", "-s", "64k", *flags, str(parts / "set.zip"), *files, "small.txt"], cwd=src, check=True
    )
    assert len(remote.split_zip_parts(parts / "set.zip")) >= 3
    fetcher = datasets.Fetcher("plants", datasets.Params(cache_dir=str(tmp_path / "cache")))
    out = fetcher.unpack(parts / "set.zip")
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    assert (out / "small.txt").read_text() == "hello"


# --- real-dataset sources ---------------------------------------------------------------------------


def remote_params(tmp_path, **overrides):
    raw = {
        "cache_dir": str(tmp_path / "cache"),
        "manual_dir": str(tmp_path / "manual"),
        "retries": 2,
        "backoff_s": 0,
    } | overrides
    return parse_section("download.remote", raw, datasets.Params)


def build(tmp_path, source, **overrides):
    out = tmp_path / "raw"
    out.mkdir(exist_ok=True)
    params = SimpleNamespace(source=source, remote=remote_params(tmp_path, **overrides))
    step = FramesParams().step_for(source)
    return datasets.build(params, out, frame_step=step), out


VIDEO_NAMES = itertools.count()


def video_bytes(tmp_path, n_frames):
    """A different video on every call (identical videos would be ingested once)."""
    return write_video(tmp_path / "src" / f"{next(VIDEO_NAMES)}.mp4", n_frames).read_bytes()


@pytest.fixture
def plants_share(server, tmp_path):
    """A Seafile share holding poking_plants.zip with three plant videos and one too short."""
    archive = zip_bytes(
        {
            "poking_plants/VID_0_1.mp4": video_bytes(tmp_path, 25),
            "poking_plants/VID_0_2.mp4": video_bytes(tmp_path, 30),
            "poking_plants/VID_7_1.mp4": video_bytes(tmp_path, 21),
            "poking_plants/VID_7_2.mp4": video_bytes(tmp_path, 9),
        }
    )
    listing = {
        "dirent_list": [
            {"is_dir": False, "file_name": "poking_plants.zip", "file_path": "/poking_plants.zip"}
        ]
    }
    server.pages["/api/v2.1/share-links/tok42/dirents/?path=/"] = (
        "application/json",
        json.dumps(listing).encode(),
    )
    server.files["/d/tok42/files/?p=/poking_plants.zip&dl=1"] = archive
    return archive


def test_plants_from_the_authors_share(server, tmp_path, plants_share):
    server.cut_once.add("/d/tok42/files/?p=/poking_plants.zip&dl=1")
    result, out = build(tmp_path, "plants", plants={"url": server.url("/d/tok42/")})
    m = manifest.validate(result.manifest).set_index("video_id")
    assert sorted(m.index) == ["VID_0_1", "VID_0_2", "VID_7_1"]
    assert m.loc["VID_0_1", "object_id"] == "plant_0" and m.loc["VID_7_1", "object_id"] == "plant_7"
    assert (m["split"] == "train").all()
    assert m.loc["VID_0_2", folder.TEST_FROM_FRAME] == math.floor(0.8 * 30)
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [
        ("VID_7_2.mp4", "too short: 9 frames, needs at least 21 (a clip is x0 + 10 frames at frame step 2)")
    ]
    record = json.loads((out / "downloads.json").read_text())
    assert record == [
        {
            "file": "share/poking_plants.zip",
            "url": server.url("/d/tok42/files/?p=/poking_plants.zip&dl=1"),
            "sha256": sha(plants_share),
            "bytes": len(plants_share),
        }
    ]
    ranged = [r for p, r in server.requests if p.startswith("/d/tok42/files/")]
    assert ranged == [None, f"bytes={len(plants_share) // 2}-"]


def test_plants_broken_checksum(server, tmp_path, plants_share):
    pins = {"poking_plants.zip": "f" * 64}
    with pytest.raises(datasets.ManualDataRequired) as info:
        build(tmp_path, "plants", plants={"url": server.url("/d/tok42/"), "sha256": pins})
    text = str(info.value)
    assert "checksum mismatch" in text and "f" * 64 in text and sha(plants_share) in text
    assert "dvc repro download" in text and str((tmp_path / "manual" / "plants").resolve()) in text
    share = tmp_path / "cache" / "plants" / "share"
    assert not any(share.iterdir())  # neither the zip nor a .part is left behind


def test_direct_archive_url(server, tmp_path):
    server.files["/mirror/taichi.tar.gz"] = tar_bytes(
        {
            "taichi/train/abc#000001#000100.mp4": video_bytes(tmp_path, 21),
            "taichi/test/xyz#0#9.mp4": video_bytes(tmp_path, 21),
        }
    )
    result, _ = build(tmp_path, "taichi", taichi={"url": server.url("/mirror/taichi.tar.gz")})
    rows = {r.path: (r.split, r.object_id) for r in result.manifest.itertuples()}
    assert rows == {
        "videos/train/abc#000001#000100.mp4": ("train", "abc"),
        "videos/test/xyz#0#9.mp4": ("test", "xyz"),
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("taichi", ["first-order-model", "load_videos.py --metadata taichi-metadata.csv"]),
        ("iper", ["iPER_1024_video_release.zip", "train.txt", "onedrive.live.com"]),
        (
            "h36m",
            ["vision.imar.ro/human3.6m", "H36M_PHPSESSID=<cookie> dvc repro download", "Videos_S11.tgz"],
        ),
    ],
)
def test_manual_data_message(tmp_path, monkeypatch, source, expected):
    monkeypatch.delenv(datasets.H36M_COOKIE_ENV, raising=False)
    with pytest.raises(datasets.ManualDataRequired) as info:
        build(tmp_path, source)
    text = str(info.value)
    for snippet in [
        *expected,
        str((tmp_path / "manual" / source).resolve()),
        "Then rerun: dvc repro download",
    ]:
        assert snippet in text


def test_taichi_from_the_manual_folder(tmp_path):
    manual = tmp_path / "manual" / "taichi"
    write_video(manual / "train" / "id1#0000#0100.mp4", 21)
    write_video(manual / "train" / "id1#0200#0300.mp4", 21)
    write_video(manual / "test" / "id2#0000#0050.mp4", 21)
    write_video(manual / "loose.mp4", 21)
    result, out = build(tmp_path, "taichi")
    m = result.manifest
    assert sorted(zip(m["split"], m["object_id"], strict=True)) == [
        ("test", "id2"),
        ("train", "id1"),
        ("train", "id1"),
    ]
    assert [s.reason for s in result.skipped] == ["not inside a train/ or test/ folder"]
    assert not (out / "downloads.json").exists()


def test_iper_with_official_lists(tmp_path):
    manual = tmp_path / "manual" / "iper"
    (manual / "train.txt").parent.mkdir(parents=True)
    (manual / "train.txt").write_text("001/1/1\n001/1/2\n")
    (manual / "val.txt").write_text("002/3/1\n")
    (manual / "iPER_1024_video_release.zip").write_bytes(
        zip_bytes(
            {
                f"iPER_1024_video_release/{n}.mp4": video_bytes(tmp_path, 11)
                for n in ("001_1_1", "001_1_2", "002_3_1", "009_1_1")
            }
        )
    )
    result, _ = build(tmp_path, "iper")
    m = result.manifest.set_index("video_id")
    assert m["split"].to_dict() == {"001_1_1": "train", "001_1_2": "train", "002_3_1": "test"}
    assert m.loc["002_3_1", "object_id"] == "002_3"
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [
        ("009_1_1.mp4", "not in the official train.txt or val.txt")
    ]


@pytest.fixture
def h36m_archives(tmp_path):
    def archive(subject):
        return tar_bytes(
            {
                f"{subject}/Videos/Walking 1.54138969.mp4": video_bytes(tmp_path, 81),
                f"{subject}/Videos/_ALL 1.54138969.mp4": video_bytes(tmp_path, 81),
            }
        )

    return {"S1": archive("S1"), "S9": archive("S9")}


def test_h36m_download_with_login_cookie(server, tmp_path, monkeypatch, h36m_archives):
    monkeypatch.setenv(datasets.H36M_COOKIE_ENV, "sess123")
    monkeypatch.setattr(datasets, "H36M_URL", server.url("/h36m"))
    videos = {
        "S1": (1, hashlib.md5(h36m_archives["S1"]).hexdigest()),
        "S9": (4, hashlib.md5(h36m_archives["S9"]).hexdigest()),
    }
    monkeypatch.setattr(datasets, "H36M_VIDEOS", videos)
    entry = dataclasses.replace(
        datasets.REGISTRY["h36m"], published_md5={f"Videos_{s}.tgz": m for s, (_, m) in videos.items()}
    )
    monkeypatch.setitem(datasets.REGISTRY, "h36m", entry)
    server.cookie = "PHPSESSID=sess123"
    for subject, (number, _) in videos.items():
        server.files[f"/h36m?download=1&filepath=Videos&filename=SubjectSpecific_{number}.tgz"] = (
            h36m_archives[subject]
        )
    result, out = build(tmp_path, "h36m")
    m = result.manifest.set_index("video_id")
    assert m["split"].to_dict() == {"S1__Walking_1_54138969": "train", "S9__Walking_1_54138969": "test"}
    assert set(m["object_id"]) == {"S1", "S9"}
    assert sorted(Path(s.path).name for s in result.skipped) == ["_ALL 1.54138969.mp4"] * 2
    assert [r["file"] for r in json.loads((out / "downloads.json").read_text())] == [
        "Videos_S1.tgz",
        "Videos_S9.tgz",
    ]


def test_h36m_manual_archive_is_checked_against_the_published_md5(tmp_path, monkeypatch, h36m_archives):
    monkeypatch.delenv(datasets.H36M_COOKIE_ENV, raising=False)
    manual = tmp_path / "manual" / "h36m"
    manual.mkdir(parents=True)
    (manual / "Videos_S9.tgz").write_bytes(h36m_archives["S9"])
    with pytest.raises(IpokeError, match="expected md5 3e7d923d5c573ac833334a31b5f8a797"):
        build(tmp_path, "h36m")
    result, _ = build(tmp_path, "h36m", h36m={"sha256": {"Videos_S9.tgz": sha(h36m_archives["S9"])}})
    assert result.manifest["video_id"].tolist() == ["S9__Walking_1_54138969"]
    assert result.manifest["split"].tolist() == ["test"]
