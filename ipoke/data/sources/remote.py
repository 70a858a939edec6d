"""Fetching dataset files: resumable HTTP downloads with checksums, and safe archive extraction.

A download is written to ``<file>.part`` and renamed to ``<file>`` only after its checksum matches, so
``<file>`` existing means complete and verified. An interrupted transfer (connection lost, process
killed) resumes from the ``.part`` file with an HTTP Range request. Archives are unpacked into a
temporary directory renamed into place when complete; members that would land outside it are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import lzma
import math
import os
import re
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from ipoke.atomic import atomic_path
from ipoke.data.video import sha256 as file_sha256
from ipoke.errors import IpokeError
from ipoke.stage import progress

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK = 1 << 20  # bytes per read; one progress-bar step is one MiB
USER_AGENT = "ipoke-download/0.1"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class DownloadError(IpokeError):
    """A download that cannot succeed by retrying: bad URL, refused access, wrong checksum."""


class _Transient(Exception):
    """A failure worth retrying (connection lost, timeout, server error)."""


def _with_retries(what: str, attempt: Callable[[], T], retries: int, backoff_s: float) -> T:
    for n in range(retries + 1):
        try:
            return attempt()
        except _Transient as err:
            if n == retries:
                raise DownloadError(f"{what}: failed after {retries + 1} attempts: {err}") from None
            delay = backoff_s * 2**n
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", what, err, delay, n + 1, retries)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _open(url: str, headers: dict[str, str], timeout: float, offset: int = 0):
    request_headers = {"User-Agent": USER_AGENT, **headers}
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=request_headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:
            return err  # range not satisfiable: the caller checks whether the partial file is complete
        if err.code >= 500 or err.code in (408, 429):
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        hint = " (access needs a login or a licence?)" if err.code in (401, 403) else ""
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}{hint}") from None
    except (URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
        raise _Transient(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None


def _content_range_total(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", (value or "").strip())
    return int(match.group(1)) if match else None


def _transfer(url: str, part: Path, headers: dict[str, str], timeout: float) -> None:
    """One attempt: append the rest of ``url`` to ``part``; raise ``_Transient`` if cut short."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, headers, timeout, offset)
    with response:
        if isinstance(response, HTTPError):  # 416
            if _content_range_total(response.headers.get("Content-Range")) == offset:
                return
            part.unlink()
            raise _Transient("server refused to resume the partial file; starting over")
        if response.headers.get_content_type() == "text/html":
            raise DownloadError(
                f"{url}: the server sent an HTML page instead of the file "
                "(a login page or an expired session?)"
            )
        mode = "wb"
        if offset and response.status == 206:
            start = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if start is None or int(start.group(1)) != offset:
                part.unlink()
                raise _Transient("server resumed at the wrong offset; starting over")
            mode = "ab"
        elif offset:
            log.info("%s: server does not support resuming; downloading from the start", url)
            offset = 0
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        written = 0
        steps = math.ceil(remaining / CHUNK) if remaining else None
        with open(part, mode) as out:
            try:
                chunks = iter(lambda: response.read(CHUNK), b"")
                for chunk in progress(chunks, desc=part.name.removesuffix(".part"), total=steps, unit="MiB"):
                    out.write(chunk)
                    written += len(chunk)
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(f"connection lost after {offset + written} bytes ({err})") from None
        if remaining is not None and written < remaining:
            raise _Transient(f"connection closed after {offset + written} of {offset + remaining} bytes")


def verify(path: Path, *, sha256: str | None = None, md5: str | None = None) -> str:
    """Check ``path`` against the given checksums; return its sha256. Raises ``DownloadError`` on mismatch."""
    actual = file_sha256(path)
    if sha256 is not None and actual != sha256.lower():
        raise DownloadError(f"{path}: checksum mismatch: expected sha256 {sha256.lower()}, got {actual}")
    if md5 is not None:
        with open(path, "rb") as f:
            got = hashlib.file_digest(f, "md5").hexdigest()
        if got != md5.lower():
            raise DownloadError(f"{path}: checksum mismatch: expected md5 {md5.lower()}, got {got}")
    return actual


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    headers: dict[str, str] | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff_s: float = 1.0,
) -> str:
    """Download ``url`` to ``dest`` (resuming a partial download) and return the file's sha256.

    An existing ``dest`` is only verified. A checksum mismatch removes the download and raises.
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            return verify(dest, sha256=sha256, md5=md5)
        except DownloadError as err:
            raise DownloadError(
                f"{err}\n  (already downloaded from {url}; delete it to download again)"
            ) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _with_retries(url, lambda: _transfer(url, part, headers or {}, timeout), retries, backoff_s)
    try:
        digest = verify(part, sha256=sha256, md5=md5)
    except DownloadError as err:
        part.unlink()
        raise DownloadError(
            f"{url}: {err}\n  The corrupt download was removed; rerun to fetch it again."
        ) from None
    os.replace(part, dest)
    return digest


def fetch_json(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff_s: float = 1.0,
) -> Any:
    def attempt() -> Any:
        with _open(url, {"Accept": "application/json", **(headers or {})}, timeout) as response:
            try:
                body = response.read()
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(str(err)) from None
        try:
            return json.loads(body)
        except ValueError:
            raise DownloadError(f"{url}: expected JSON, got {body[:80]!r}") from None

    return _with_retries(url, attempt, retries, backoff_s)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _check_member(archive: Path, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", name):
        raise IpokeError(
            f"{archive}: refusing to extract {name!r}: it would land outside the target directory"
        )


def _extract_zip(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(archive, info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise IpokeError(
                        f"{archive}: refusing to extract {info.filename!r}: it is a symbolic link"
                    )
            for info in progress(members, desc=f"extract {archive.name}", unit="file"):
                zf.extract(info, into)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise IpokeError(f"{archive}: not a valid zip archive ({err})") from None


def _extract_tar(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            for member in progress(tf, desc=f"extract {archive.name}", unit="file"):
                _check_member(archive, member.name)
                try:
                    tf.extract(member, into, filter="data")
                except tarfile.FilterError as err:
                    raise IpokeError(f"{archive}: refusing to extract {member.name!r}: {err}") from None
    except (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile, lzma.LZMAError) as err:
        raise IpokeError(f"{archive}: not a valid (or a truncated) tar archive ({err})") from None


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a zip or tar archive into ``dest``; an existing ``dest`` is taken as already unpacked."""
    archive, dest = Path(archive), Path(dest)
    if dest.is_dir():
        return dest
    if not is_archive(archive):
        raise IpokeError(f"{archive}: not an archive this tool unpacks ({', '.join(ARCHIVE_SUFFIXES)})")
    with atomic_path(dest, directory=True) as tmp:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
    return dest


def split_zip_parts(archive: Path) -> list[Path]:
    """The ``.z01``, ``.z02``, ... parts next to a split zip's last segment (empty for a plain zip)."""
    pattern = re.compile(re.escape(archive_stem(archive)) + r"\.z(\d{2,})", re.IGNORECASE)
    parts = [p for p in archive.parent.iterdir() if pattern.fullmatch(p.name)]
    return sorted(parts, key=lambda p: int(pattern.fullmatch(p.name).group(1)))


# Split ("spanned") zip archives, as written by ``zip -s``: PKWARE APPNOTE 4.3.6, 4.3.14-16, 8.5.
SPLIT_MARKER = b"PK\x07\x08"
EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
U16, U32 = 0xFFFF, 0xFFFFFFFF


def _zip64_extra(extra: bytes) -> tuple[bytes, bytes]:
    """Split a central header's extra field into (zip64 block payload, all other blocks)."""
    payload, rest, at = b"", b"", 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<2H", extra, at)
        block = extra[at : at + 4 + size]
        if kind == 1:
            payload = block[4:]
        else:
            rest += block
        at += 4 + size
    return payload, rest + extra[at:]


def _rebase_central_directory(cd: bytes, bases: list[int]) -> tuple[bytes, int]:
    """Rewrite every entry's (disk, offset) as an offset into the joined file; returns (cd, entries)."""
    out, at, count = bytearray(), 0, 0
    while at < len(cd):
        fields = list(CENTRAL.unpack_from(cd, at))
        if fields[0] != b"PK\x01\x02":
            raise IpokeError("split zip: corrupt central directory")
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        name_end = at + CENTRAL.size + name_len
        name, extra = cd[at + CENTRAL.size : name_end], cd[name_end : name_end + extra_len]
        comment = cd[name_end + extra_len : name_end + extra_len + comment_len]
        payload, other = _zip64_extra(extra)
        values, pos = {}, 0
        for key, index, width in (("usize", 9, 8), ("csize", 8, 8), ("offset", 16, 8), ("disk", 13, 4)):
            if fields[index] == (U16 if key == "disk" else U32):
                values[key] = int.from_bytes(payload[pos : pos + width], "little")
                pos += width
        disk = values.pop("disk", fields[13])
        offset = bases[disk] + values.pop("offset", fields[16])
        fields[13] = 0
        zip64 = [values[k] for k in ("usize", "csize") if k in values]
        if offset >= U32:
            zip64.append(offset)
            fields[16] = U32
        else:
            fields[16] = offset
        if zip64:
            other = struct.pack(f"<2H{len(zip64)}Q", 1, 8 * len(zip64), *zip64) + other
        fields[11] = len(other)
        out += CENTRAL.pack(*fields) + name + other + comment
        at = name_end + extra_len + comment_len
        count += 1
    return bytes(out), count


def _end_records(cd_offset: int, cd_size: int, entries: int) -> bytes:
    if entries < U16 and cd_offset < U32 and cd_size < U32:
        return EOCD.pack(b"PK\x05\x06", 0, 0, entries, entries, cd_size, cd_offset, 0)
    record = ZIP64_EOCD.pack(
        b"PK\x06\x06", ZIP64_EOCD.size - 12, 45, 45, 0, 0, entries, entries, cd_size, cd_offset
    )
    locator = ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, cd_offset + cd_size, 1)
    return record + locator + EOCD.pack(b"PK\x05\x06", 0, 0, U16, U16, U32, U32, 0)


def join_split_zip(archive: Path, dest: Path) -> Path:
    """Join a split zip (``x.z01``, ``x.z02``, ..., ``x.zip``) into one ordinary zip (like ``zip -s 0``).

    The segments are concatenated without the split marker that opens the first one, and the central
    directory is rewritten, since in a split archive every offset counts from the start of its segment.
    """
    if dest.is_file():
        return dest
    segments = [*split_zip_parts(archive), archive]
    with open(segments[0], "rb") as f:
        skip = len(SPLIT_MARKER) if f.read(len(SPLIT_MARKER)) == SPLIT_MARKER else 0
    spans = []  # (segment, first byte used, where that byte lands in the joined file, bytes used)
    joined_size = 0
    for i, segment in enumerate(segments):
        first = skip if i == 0 else 0
        used = segment.stat().st_size - first
        spans.append((segment, first, joined_size, used))
        joined_size += used
    bases = [begin - first for _, first, begin, _ in spans]  # disk-relative offset 0 in the joined file

    def read(position: int, size: int) -> bytes:
        data = b""
        for segment, first, begin, used in spans:
            lo, hi = max(position, begin), min(position + size, begin + used)
            if lo < hi:
                with open(segment, "rb") as f:
                    f.seek(first + lo - begin)
                    data += f.read(hi - lo)
        return data

    tail = read(max(0, joined_size - (1 << 16) - EOCD.size), (1 << 16) + EOCD.size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        raise IpokeError(f"{archive}: no end-of-archive record; is the last part of the split zip missing?")
    _, _, cd_disk, _, _, cd_size, cd_offset, _ = EOCD.unpack_from(tail, at)
    if U32 in (cd_size, cd_offset) or cd_disk == U16:
        _, z64_disk, z64_offset, _ = ZIP64_LOCATOR.unpack_from(tail, at - ZIP64_LOCATOR.size)
        record = ZIP64_EOCD.unpack(read(bases[z64_disk] + z64_offset, ZIP64_EOCD.size))
        cd_disk, cd_size, cd_offset = record[5], record[8], record[9]
    if cd_disk >= len(segments):
        raise IpokeError(f"{archive}: the split zip has {cd_disk + 1} parts, found {len(segments)}")
    cd_start = bases[cd_disk] + cd_offset
    cd, entries = _rebase_central_directory(read(cd_start, cd_size), bases)
    log.info("joining split archive %s (%d parts)", archive, len(segments))
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for position in range(0, cd_start, CHUNK):
            out.write(read(position, min(CHUNK, cd_start - position)))
        out.write(cd + _end_records(cd_start, len(cd), entries))
    return dest
