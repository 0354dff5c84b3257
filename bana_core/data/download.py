"""Fetch public dataset archives (resumable, MD5-checked) and extract them safely.

A download streams into ``<dest>.part`` and is renamed onto ``dest`` only after its MD5 matched,
so ``dest`` is complete or absent. Extraction validates every member first, unpacks into a
temporary folder beside the target and only then moves each top-level entry into place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import shutil
import ssl
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import ChecksumError, ConfigError, DataError, UnsafeArchiveError
from ..io import remove_stale_temporaries

log = logging.getLogger(__name__)

_USER_AGENT = "bana-pipeline/0.1 (python urllib)"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


class _TransientError(Exception):
    """A download attempt failed in a way another attempt may fix (short body, bad resume)."""


# HTTPError is a URLError: it is sorted out (5xx retried, 4xx not) before this tuple is used.
_TRANSIENT = (
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    ssl.SSLError,
    _TransientError,
)


def md5_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------- download


def download(
    url: str,
    dest: Path,
    md5: str | None,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60,
    progress: bool = True,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Streams into ``dest`` + ``.part``; transient failures (network errors, timeouts, short
    bodies, HTTP 5xx) are retried up to ``retries`` times with exponential backoff
    (``backoff * 2**k`` seconds), resuming the ``.part`` file with a Range request. An attempt
    that brought new bytes does not use up a retry, so a long download over a flaky link keeps
    going. HTTP 4xx is not retried. The MD5 (when given) is checked before the rename; on a
    mismatch the ``.part`` file is deleted and ChecksumError is raised. An existing ``dest``
    with the right MD5 is returned at once. ``file://`` URLs and plain local paths are copied.
    """
    dest = Path(dest)
    expected = md5.strip().lower() if md5 else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")

    local = _local_source(url, dest)
    if local is not None and dest.exists() and _same_file(local, dest):
        # The user pointed the config at the file in the downloads folder itself: never delete it.
        _check_existing(dest, expected, delete=False)
        return dest
    if dest.exists() and _check_existing(dest, expected, delete=True):
        return dest

    if local is not None:
        _copy_local(local, part, progress=progress, chunk_size=chunk_size, desc=dest.name)
    else:
        _download_http(url, part, retries=retries, backoff=backoff, timeout=timeout,
                       progress=progress, chunk_size=chunk_size, desc=dest.name)
    _verify_and_rename(part, dest, expected)
    return dest


def _check_existing(dest: Path, expected: str | None, *, delete: bool) -> bool:
    """True when ``dest`` can be used as it is; otherwise delete it (or raise when not allowed)."""
    if expected is None:
        log.info("%s exists and no MD5 is given: not downloading it again", dest)
        return True
    actual = md5_file(dest)
    if actual == expected:
        log.info("%s exists with the expected MD5 %s: not downloading it again", dest, expected)
        return True
    if not delete:
        raise ChecksumError(dest, expected, actual)
    log.warning("%s exists but its MD5 is %s, expected %s: downloading it again", dest, actual, expected)
    dest.unlink()
    return False


def _verify_and_rename(part: Path, dest: Path, expected: str | None) -> None:
    actual = md5_file(part)
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(dest, expected, actual)
    os.replace(part, dest)
    log.info("%s: %d bytes, MD5 %s%s", dest, dest.stat().st_size, actual,
             " (verified)" if expected else " (no published digest to check)")


def _local_source(url: str, dest: Path) -> Path | None:
    """The file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DataError(dest, f"cannot download {url}: file:// URLs must name a local file")
        return Path(urllib.request.url2pathname(parts.path))
    if scheme == "" or len(scheme) == 1:  # a one-letter "scheme" is a Windows drive
        return Path(url).expanduser()
    raise DataError(dest, f"cannot download {url}: unsupported URL scheme '{scheme}' "
                          "(use http://, https://, file:// or a local path)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _copy_local(src: Path, part: Path, *, progress: bool, chunk_size: int, desc: str) -> None:
    if not src.is_file():
        raise DataError(src, "file not found (the archive's url points at a local path)")
    log.info("copying %s", src)
    try:
        with open(src, "rb") as fi, open(part, "wb") as fo, _bar(src.stat().st_size, 0, desc, progress) as bar:
            while chunk := fi.read(chunk_size):
                fo.write(chunk)
                bar.update(len(chunk))
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _bar(total: int | None, initial: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=not progress, leave=False)


def _download_http(url: str, part: Path, *, retries: int, backoff: float, timeout: float,
                   progress: bool, chunk_size: int, desc: str) -> None:
    failures = 0  # consecutive failed attempts that brought no new bytes
    high_water = part.stat().st_size if part.exists() else 0
    while True:
        try:
            _http_attempt(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress, desc=desc)
            return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                raise DataError(part.with_suffix(""), f"cannot download {url}: HTTP {e.code} {e.reason} "
                                "(client error, not retried: check the URL)") from None
            reason = f"HTTP {e.code} {e.reason}"
        except _TRANSIENT as e:
            reason = f"{type(e).__name__}: {e}"
        size = part.stat().st_size if part.exists() else 0
        if size > high_water:
            high_water, failures = size, 0
        failures += 1
        if failures > retries:
            raise DataError(part.with_suffix(""), f"cannot download {url}: {reason} "
                            f"(gave up after {retries} retries; {size} bytes kept in {part.name} "
                            "for the next run to resume)")
        delay = backoff * 2 ** (failures - 1)
        log.warning("download of %s failed (%s); retry %d/%d in %.2f s, %d bytes so far",
                    url, reason, failures, retries, delay, size)
        time.sleep(delay)


def _http_attempt(url: str, part: Path, *, timeout: float, chunk_size: int, progress: bool, desc: str) -> None:
    """One request: resume ``part`` when it holds bytes; return once the body is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # Range not satisfiable: either .part already holds the whole file (a run died before
            # the rename) or the file on the server changed.
            m = _CONTENT_RANGE_UNSATISFIED.match(e.headers.get("Content-Range", "") or "")
            e.close()
            if m and int(m.group(1)) == offset:
                log.info("%s already holds all %d bytes of %s", part, offset, url)
                return
            part.unlink(missing_ok=True)
            raise _TransientError(f"server refused to resume at byte {offset}; restarting from 0") from None
        raise
    with resp:
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _TransientError(f"server resumed at the wrong place (Content-Range "
                                      f"{resp.headers.get('Content-Range')!r}, wanted byte {offset})")
            total = None if m.group(3) == "*" else int(m.group(3))
            log.info("resuming %s at byte %d of %s", url, offset, total if total is not None else "?")
            mode = "ab"
        else:
            if offset:
                log.warning("server ignored the Range request for %s: restarting from byte 0 "
                            "(discarding %d bytes)", url, offset)
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        received = offset
        with open(part, mode) as f, _bar(total, offset, desc, progress) as bar:
            while chunk := resp.read(chunk_size):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the server closes early.
    if total is not None and received < total:
        raise _TransientError(f"connection closed after {received} of {total} bytes")


# ---------------------------------------------------------------------------------------- extract


def extract(archive: Path, target: Path, *, progress: bool = True) -> list[str]:
    """Extract a .tar, .tar.gz/.tgz or .zip archive into ``target``; return the top-level entries.

    Every member is validated first (no absolute paths, no ``..``, no links leading outside,
    no device files: UnsafeArchiveError). The archive is unpacked into a temporary folder beside
    ``target``, then each top-level entry is moved into ``target``, replacing an entry of the
    same name only once the new one is complete; other entries of ``target`` are kept. On any
    error nothing is left behind.
    """
    return _extract(Path(archive), Path(target), progress=progress)[0]


def _extract(archive: Path, target: Path, *, progress: bool) -> tuple[list[str], int]:
    if not archive.is_file():
        raise DataError(archive, "archive not found")
    target = Path(os.path.abspath(target))
    kind = _archive_kind(archive)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = _validate_zip(archive, zf)
                n_files = sum(not i.is_dir() for i in infos)
                _check_not_empty(archive, n_files)
                work = _make_work_dir(target, archive)
                try:
                    new = work / "new"
                    new.mkdir()
                    for info in tqdm(infos, desc=f"extract {archive.name}", unit="file",
                                     disable=not progress, leave=False):
                        zf.extract(info, new)
                    entries = _move_into(new, target, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = _validate_tar(archive, tf)
                n_files = sum(m.isfile() for m in members)
                _check_not_empty(archive, n_files)
                work = _make_work_dir(target, archive)
                try:
                    new = work / "new"
                    new.mkdir()
                    bar = tqdm(total=len(members), desc=f"extract {archive.name}", unit="file",
                               disable=not progress, leave=False)
                    with bar:
                        _extract_tar(archive, tf, members, new, bar)
                    entries = _move_into(new, target, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    except (tarfile.ReadError, tarfile.CompressionError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(archive, f"corrupt or truncated archive ({e})") from None
    log.info("extracted %s into %s: %d files, top-level entries %s", archive, target, n_files, entries)
    return entries, n_files


def _check_not_empty(archive: Path, n_files: int) -> None:
    # An archive without files would "succeed" and leave a later rule to fail on missing data.
    if n_files == 0:
        raise DataError(archive, "archive holds no files")


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    # Unusual name: look at the content.
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise DataError(archive, "not a .tar, .tar.gz/.tgz or .zip archive")


def _make_work_dir(target: Path, archive: Path) -> Path:
    # Several archives extract into one target at once (VOC and SBD into data/<name>): each
    # work folder is named after its archive, and only that archive's stale ones (from a
    # killed extraction) are removed.
    target.parent.mkdir(parents=True, exist_ok=True)
    kind = f"extract.{archive.name}."
    remove_stale_temporaries(target, kind)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{kind}", suffix=".part", dir=target.parent))


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """Path components of a member name, refusing absolute paths and '..'."""
    unified = name.replace("\\", "/")  # a zip made on Windows may use backslashes
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(archive, f"member '{name}' has an absolute path")
    parts = PurePosixPath(unified).parts
    if ".." in parts:
        raise UnsafeArchiveError(archive, f"member '{name}' has a '..' component "
                                          "(it would land outside the extraction folder)")
    return parts


def _check_link(archive: Path, name: str, parts: tuple[str, ...], linkname: str, *, hard: bool) -> None:
    kind = "hard link" if hard else "symlink"
    link = linkname.replace("\\", "/")
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
        raise UnsafeArchiveError(archive, f"member '{name}' is a {kind} to the absolute path '{linkname}'")
    # A hard link names a member of the archive; a symlink is relative to its own folder.
    base = "" if hard else posixpath.join(*parts[:-1]) if len(parts) > 1 else ""
    resolved = posixpath.normpath(posixpath.join(base, link))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(archive, f"member '{name}' is a {kind} to '{linkname}', "
                                          "outside the extraction folder")


def _check_not_under_link(archive: Path, name: str, parts: tuple[str, ...], links: set) -> None:
    # Writing through an earlier symlink could escape even when every name looks harmless.
    for k in range(1, len(parts)):
        if parts[:k] in links:
            raise UnsafeArchiveError(archive, f"member '{name}' lies under the symlink "
                                              f"'{'/'.join(parts[:k])}'")


def _validate_tar(archive: Path, tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members, links = [], set()
    for m in tf.getmembers():
        parts = _member_parts(archive, m.name)
        if m.isdev():
            raise UnsafeArchiveError(archive, f"member '{m.name}' is a device file or FIFO")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise UnsafeArchiveError(archive, f"member '{m.name}' has an unsupported type {m.type!r}")
        _check_not_under_link(archive, m.name, parts, links)
        if m.issym() or m.islnk():
            _check_link(archive, m.name, parts, m.linkname, hard=m.islnk())
        if m.issym():
            links.add(parts)
        if parts:  # "./" is the extraction folder itself
            members.append(m)
    return members


def _extract_tar(archive: Path, tf: tarfile.TarFile, members: list, dest: Path, bar: tqdm) -> None:
    def counted():
        for m in members:
            yield m
            bar.update(1)

    try:
        if hasattr(tarfile, "data_filter"):
            # tarfile's own 'data' filter checks the real file system as well (defence in depth).
            tf.extractall(dest, members=counted(), filter="data")
        else:  # Python < 3.11.4: our validation above is the only guard
            tf.extractall(dest, members=counted())
    except tarfile.FilterError as e:
        name = getattr(getattr(e, "tarinfo", None), "name", "?")
        raise UnsafeArchiveError(archive, f"member '{name}' rejected by tarfile's data filter ({e})") from None


def _validate_zip(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos, links = [], set()
    for info in zf.infolist():
        parts = _member_parts(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            raise UnsafeArchiveError(archive, f"member '{info.filename}' is a device file or FIFO")
        _check_not_under_link(archive, info.filename, parts, links)
        if stat.S_ISLNK(mode):
            # zipfile writes a symlink as a plain file holding the target; refuse escaping ones anyway.
            target = zf.read(info).decode("utf-8", "replace")
            _check_link(archive, info.filename, parts, target, hard=False)
            links.add(parts)
        if parts:
            infos.append(info)
    return infos


def _move_into(new: Path, target: Path, work: Path) -> list[str]:
    """Move each entry of ``new`` into ``target``; undo every move if one fails."""
    entries = sorted(os.listdir(new))
    old = work / "old"
    old.mkdir()
    created_target = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, bool]] = []  # (entry, whether an older one was set aside)
    try:
        for name in entries:
            dst = target / name
            replaced = dst.exists() or dst.is_symlink()
            if replaced:
                os.replace(dst, old / name)
            try:
                os.replace(new / name, dst)
            except BaseException:
                if replaced:
                    os.replace(old / name, dst)
                raise
            done.append((name, replaced))
            if replaced:
                log.info("replaced %s", dst)
    except BaseException:
        for name, replaced in reversed(done):
            os.replace(target / name, new / name)
            if replaced:
                os.replace(old / name, target / name)
        if created_target and not any(target.iterdir()):
            target.rmdir()
        raise
    return entries


# ----------------------------------------------------------------------------- fetch and extract


def fetch_and_extract(spec: dict, downloads_dir: Path, target: Path, **kw) -> dict:
    """Download ``spec['url']`` into ``downloads_dir`` (MD5-checked), extract it into ``target``.

    ``spec`` holds ``url``, ``md5`` and optionally ``filename`` (default: the URL's basename);
    other keys are ignored. ``kw`` goes to :func:`download` (``progress`` to both steps).
    Returns ``{filename, md5, entries, n_files}``.
    """
    if not isinstance(spec, Mapping) or not spec.get("url"):
        raise ConfigError(f"download spec needs a 'url' key, got {spec!r}")
    url = str(spec["url"])
    md5 = spec.get("md5")
    filename = spec.get("filename") or _basename(url)
    if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
        raise ConfigError(f"download spec 'filename' must be a plain file name, got {filename!r} "
                          f"(from url {url})")
    archive = download(url, Path(downloads_dir) / filename, md5, **kw)
    entries, n_files = _extract(archive, Path(target), progress=kw.get("progress", True))
    return {
        "filename": filename,
        "md5": md5.strip().lower() if md5 else md5_file(archive),
        "entries": entries,
        "n_files": n_files,
    }


def _basename(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() in ("http", "https", "file"):
        return urllib.parse.unquote(posixpath.basename(parts.path))
    return Path(url).name
