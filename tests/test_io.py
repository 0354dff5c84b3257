"""bana_core.io: atomic outputs get the mode the umask gives a normal file, not mkstemp's 0600."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from bana_core.io import atomic_dir, atomic_path, save_label_png, write_json, write_text


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_umask_mode(tmp_path, umask):
    expected = 0o666 & ~umask  # 0644 under 022: the group and others can read the results
    write_json(tmp_path / "a.json", {"x": 1})
    write_text(tmp_path / "b.txt", "text")
    save_label_png(tmp_path / "c.png", np.zeros((4, 5), np.uint8))
    with atomic_path(tmp_path / "d.bin") as tmp:
        tmp.write_bytes(b"\0")
    for name in ("a.json", "b.txt", "c.png", "d.bin"):
        assert mode(tmp_path / name) == expected, (name, oct(mode(tmp_path / name)))
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(plain) == expected  # the same as a file written without atomic_path


def test_folders_get_the_umask_mode(tmp_path, umask):
    with atomic_dir(tmp_path / "shard") as tmp:
        write_json(tmp / "inner.json", [])
    assert mode(tmp_path / "shard") == 0o777 & ~umask
    assert mode(tmp_path / "shard" / "inner.json") == 0o666 & ~umask
