"""Downloads (resume, retries, MD5) and safe extraction, against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import pytest
from archive_server import md5, start_server, tar_bytes, zip_bytes

from bana_core.data.download import download, extract, fetch_and_extract
from bana_core.errors import ChecksumError, DataError, UnsafeArchiveError

FAST = {"backoff": 0.01, "timeout": 10, "progress": False}


# ------------------------------------------------------------------------------------ the server


@pytest.fixture
def server(request, monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never route 127.0.0.1 through a proxy from the environment
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    srv = start_server()
    request.addfinalizer(srv.stop)
    return srv


# ------------------------------------------------------------------------------------ archives


def tar_with(*members: tarfile.TarInfo) -> bytes:
    """An uncompressed tar of the given raw members (regular members get a 3-byte body)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            if m.isfile():
                m.size = 3
                tf.addfile(m, io.BytesIO(b"bad"))
            else:
                tf.addfile(m)
    return buf.getvalue()


def member(name: str, type=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type, linkname
    return info


def listing(root: Path) -> dict[str, bytes | None]:
    """Every path under root (hidden ones included) with file contents: 'nothing changed' checks."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


# Random bytes do not compress: the archives are big enough to cut mid-body.
VOC_FILES = {
    "VOCdevkit/VOC2012/JPEGImages/a.jpg": os.urandom(30_000),
    "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt": b"a\n",
}


# ------------------------------------------------------------------------------- happy paths


def test_tar_gz_download_and_extract(server, tmp_path):
    data = tar_bytes(VOC_FILES)
    server.files["/VOCtrainval.tar.gz"] = data
    downloads, target = tmp_path / "data" / "downloads", tmp_path / "data" / "voc2012"
    spec = {"url": server.url("/VOCtrainval.tar.gz"), "md5": md5(data), "extract_to": "."}
    manifest = fetch_and_extract(spec, downloads, target, **FAST)

    assert manifest == {"filename": "VOCtrainval.tar.gz", "md5": md5(data), "entries": ["VOCdevkit"], "n_files": 2}
    for name, content in VOC_FILES.items():
        assert (target / name).read_bytes() == content
    assert os.listdir(downloads) == ["VOCtrainval.tar.gz"]  # no .part left
    assert sorted(os.listdir(tmp_path / "data")) == ["downloads", "voc2012"]  # no temp folder left
    assert len(server.requests) == 1


def test_zip_download_and_extract_with_filename(server, tmp_path):
    files = {"annotations/instances_train2017.json": b'{"images": []}', "annotations/readme.txt": b"hi"}
    data = zip_bytes(files)
    server.files["/annotations_trainval2017.zip"] = data
    spec = {"url": server.url("/annotations_trainval2017.zip"), "md5": md5(data).upper(), "filename": "ann.zip"}
    manifest = fetch_and_extract(spec, tmp_path / "downloads", tmp_path / "coco", **FAST)

    assert manifest == {"filename": "ann.zip", "md5": md5(data), "entries": ["annotations"], "n_files": 2}
    assert (tmp_path / "downloads" / "ann.zip").read_bytes() == data
    for name, content in files.items():
        assert (tmp_path / "coco" / name).read_bytes() == content


def test_local_path_and_file_url(tmp_path):
    data = tar_bytes({"benchmark_RELEASE/dataset/train.txt": b"x\n"})
    src = tmp_path / "mine" / "benchmark.tgz"
    src.parent.mkdir()
    src.write_bytes(data)
    out = download(str(src), tmp_path / "dl" / "benchmark.tgz", md5(data), **FAST)
    assert out.read_bytes() == data
    out2 = download(src.as_uri(), tmp_path / "dl2" / "b.tgz", md5(data), **FAST)
    assert out2.read_bytes() == data
    assert sorted(os.listdir(tmp_path / "dl2")) == ["b.tgz"]
    with pytest.raises(ChecksumError):
        download(src.as_uri(), tmp_path / "dl3" / "b.tgz", "0" * 32, **FAST)
    assert os.listdir(tmp_path / "dl3") == []
    # Config pointing straight at the file in the downloads folder: verified, never deleted.
    assert download(str(out), out, md5(data), **FAST) == out
    with pytest.raises(ChecksumError):
        download(str(out), out, "0" * 32, **FAST)
    assert out.read_bytes() == data
    with pytest.raises(DataError, match="file not found"):
        download(str(tmp_path / "nope.tar"), tmp_path / "dl" / "nope.tar", None, **FAST)


# ---------------------------------------------------------------------------------- checksums


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    data = tar_bytes(VOC_FILES)
    server.files["/VOCtrainval.tar"] = data
    wrong = "0123456789abcdef0123456789abcdef"
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as e:
        fetch_and_extract({"url": server.url("/VOCtrainval.tar"), "md5": wrong},
                          root / "downloads", root / "voc2012", **FAST)
    msg = str(e.value)
    assert "VOCtrainval.tar" in msg and wrong in msg and md5(data) in msg
    assert (e.value.expected, e.value.actual) == (wrong, md5(data))
    assert listing(root) == {"downloads": None}  # no .part, no dest, no target, no temp folder


def test_existing_dest_with_right_md5_is_not_downloaded_again(server, tmp_path):
    data = tar_bytes(VOC_FILES)
    server.files["/v.tar.gz"] = data
    dest = tmp_path / "v.tar.gz"
    download(server.url("/v.tar.gz"), dest, md5(data), **FAST)
    download(server.url("/v.tar.gz"), dest, md5(data), **FAST)
    assert len(server.requests) == 1
    # A stale file with the wrong digest is replaced.
    dest.write_bytes(b"stale")
    download(server.url("/v.tar.gz"), dest, md5(data), **FAST)
    assert len(server.requests) == 2 and dest.read_bytes() == data


# --------------------------------------------------------------------------- resume and retries


def test_cut_connection_is_resumed_with_range(server, tmp_path, caplog):
    data = tar_bytes(VOC_FILES)
    server.files["/big.tar.gz"] = data
    server.cut_after["/big.tar.gz"] = 1000
    dest = tmp_path / "big.tar.gz"
    with caplog.at_level(logging.INFO, logger="bana_core.data.download"):
        download(server.url("/big.tar.gz"), dest, md5(data), chunk_size=256, **FAST)
    assert [r for _, r in server.requests] == [None, "bytes=1000-"]
    assert dest.read_bytes() == data and not (tmp_path / "big.tar.gz.part").exists()
    text = caplog.text
    assert "connection closed after 1000 of" in text and "retry 1/5" in text
    assert "resuming" in text and "at byte 1000" in text


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, caplog):
    data = tar_bytes(VOC_FILES)
    server.files["/big.tar.gz"] = data
    server.cut_after["/big.tar.gz"] = 1000
    server.ignore_range = True
    dest = tmp_path / "big.tar.gz"
    with caplog.at_level(logging.INFO, logger="bana_core.data.download"):
        download(server.url("/big.tar.gz"), dest, md5(data), chunk_size=256, **FAST)
    assert [r for _, r in server.requests] == [None, "bytes=1000-"]  # asked, got 200
    assert dest.read_bytes() == data
    assert "ignored the Range request" in caplog.text


def test_complete_part_file_is_not_fetched_again(server, tmp_path):
    # A run died after the last byte but before the rename: the server answers 416.
    data = tar_bytes(VOC_FILES)
    server.files["/v.tar.gz"] = data
    dest = tmp_path / "v.tar.gz"
    (tmp_path / "v.tar.gz.part").write_bytes(data)
    download(server.url("/v.tar.gz"), dest, md5(data), **FAST)
    assert [r for _, r in server.requests] == [f"bytes={len(data)}-"]
    assert dest.read_bytes() == data


def test_5xx_is_retried_and_gives_up_after_retries(server, tmp_path):
    data = b"payload"
    server.files["/f.bin"] = data
    server.fail_status = [503, 500]
    out = download(server.url("/f.bin"), tmp_path / "f.bin", md5(data), **FAST)
    assert out.read_bytes() == data and len(server.requests) == 3

    server.requests.clear()
    server.fail_status = [503] * 10
    with pytest.raises(DataError, match="HTTP 503.*gave up after 2 retries"):
        download(server.url("/f.bin"), tmp_path / "g.bin", md5(data), retries=2, **FAST)
    assert len(server.requests) == 3


def test_404_is_not_retried(server, tmp_path):
    url = server.url("/missing.tar")
    with pytest.raises(DataError) as e:
        download(url, tmp_path / "missing.tar", None, **FAST)
    assert url in str(e.value) and "HTTP 404" in str(e.value)
    assert len(server.requests) == 1
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- unsafe archives

UNSAFE = {
    "dotdot": (tar_with(member("ok.txt"), member("../evil")), "'../evil'"),
    "absolute": (tar_with(member("ok.txt"), member("/tmp/evil_abs")), "absolute path"),
    "symlink_out": (tar_with(member("ok.txt"), member("d/evil", tarfile.SYMTYPE, "../../evil")), "outside"),
    "symlink_abs": (tar_with(member("evil", tarfile.SYMTYPE, "/etc/passwd")), "absolute path '/etc/passwd'"),
    "hardlink_out": (tar_with(member("evil", tarfile.LNKTYPE, "../evil")), "hard link"),
    "under_symlink": (tar_with(member("d/l", tarfile.SYMTYPE, ".."), member("d/l/evil")), "under the symlink 'd/l'"),
    "device": (tar_with(member("evil", tarfile.CHRTYPE)), "device file"),
    "zip_dotdot": (zip_bytes({"ok.txt": b"1", "../evil": b"2"}), "'../evil'"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_is_refused(tmp_path, case):
    data, problem = UNSAFE[case]
    archive = tmp_path / ("a.zip" if case.startswith("zip") else "a.tar")
    archive.write_bytes(data)
    target = tmp_path / "data" / "voc2012"
    (target / "benchmark_RELEASE").mkdir(parents=True)
    (target / "benchmark_RELEASE" / "keep.txt").write_bytes(b"keep")
    before = listing(tmp_path)
    with pytest.raises(UnsafeArchiveError) as e:
        extract(archive, target, progress=False)
    assert str(archive) in str(e.value) and "member '" in str(e.value) and problem in str(e.value)
    assert listing(tmp_path) == before  # nothing extracted, no temp folder, target unchanged


# ------------------------------------------------------------------------------------- extract


def test_extract_keeps_other_entries_and_replaces_same_name(tmp_path):
    target = tmp_path / "voc2012"
    voc = tmp_path / "voc.tar"
    voc.write_bytes(tar_bytes({"./VOCdevkit/VOC2012/a.txt": b"voc"}, mode="w"))
    sbd = tmp_path / "benchmark.tgz"
    sbd.write_bytes(tar_bytes({"benchmark_RELEASE/dataset/train.txt": b"sbd"}))
    assert extract(voc, target, progress=False) == ["VOCdevkit"]
    assert extract(sbd, target, progress=False) == ["benchmark_RELEASE"]
    assert (target / "VOCdevkit/VOC2012/a.txt").read_bytes() == b"voc"
    assert (target / "benchmark_RELEASE/dataset/train.txt").read_bytes() == b"sbd"

    # Same top-level name again: the new tree replaces the old one entirely.
    voc2 = tmp_path / "voc2.tar.gz"
    voc2.write_bytes(tar_bytes({"VOCdevkit/VOC2012/b.txt": b"new"}))
    assert extract(voc2, target, progress=False) == ["VOCdevkit"]
    assert not (target / "VOCdevkit/VOC2012/a.txt").exists()
    assert (target / "VOCdevkit/VOC2012/b.txt").read_bytes() == b"new"
    assert (target / "benchmark_RELEASE/dataset/train.txt").read_bytes() == b"sbd"
    assert sorted(os.listdir(tmp_path)) == ["benchmark.tgz", "voc.tar", "voc2.tar.gz", "voc2012"]


def test_extract_allows_inner_symlink_and_rejects_corrupt(tmp_path):
    archive = tmp_path / "s.tar"
    archive.write_bytes(tar_with(member("top/f.txt"), member("top/link", tarfile.SYMTYPE, "f.txt")))
    assert extract(archive, tmp_path / "out", progress=False) == ["top"]
    assert (tmp_path / "out/top/link").is_symlink() and (tmp_path / "out/top/link").read_bytes() == b"bad"

    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(tar_bytes(VOC_FILES)[:500])  # truncated gzip stream
    with pytest.raises(DataError, match="corrupt or truncated"):
        extract(bad, tmp_path / "out2", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["bad.tar.gz", "out", "s.tar"]


def test_failed_move_is_rolled_back(tmp_path, monkeypatch):
    target = tmp_path / "t"
    (target / "A").mkdir(parents=True)
    (target / "A" / "old.txt").write_bytes(b"old")
    (target / "other").mkdir()
    archive = tmp_path / "ab.tar"
    archive.write_bytes(tar_bytes({"A/new.txt": b"new", "B/b.txt": b"b"}, mode="w"))
    before = listing(tmp_path)
    real_replace = os.replace

    def flaky_replace(src, dst):
        if Path(dst) == target / "B":
            raise OSError("disk went away")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk went away"):
        extract(archive, target, progress=False)
    monkeypatch.undo()
    assert listing(tmp_path) == before  # "A" is the old one again, no temp folder
