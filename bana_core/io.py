"""Atomic file output and label PNGs: a file a rule writes is complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .classes import voc_palette
from .errors import DataError

_PALETTE_BYTES = voc_palette().tobytes()
log = logging.getLogger(__name__)

# tempfile's random part: 8 characters of this alphabet. Matching it exactly keeps the
# temporaries of "a" apart from those of an output named "a.b".
_TEMP_TOKEN = r"[a-z0-9_]{8}"


def temporary_path(path: str | Path) -> Path:
    """The hidden temporary that an atomic write of ``path`` goes through: ``.<name>.part`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a hidden ``.<...>.part`` temporary of an atomic write (never an output)."""
    name = Path(path).name
    return len(name) > len("..part") and name.startswith(".") and name.endswith(".part")


def _remove(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        return False
    return True


def remove_stale_temporaries(path: str | Path, kind: str = "") -> list[Path]:
    """Delete the ``.<name>.<kind><random>.part`` temporaries beside ``path``; return them.

    For temporaries that need a random part because several writers share ``path``'s name
    stem (download.py's extraction folders, ``kind`` naming the archive). One listing of the
    folder: not for folders of thousands of outputs (atomic writes use ``temporary_path``).
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.{kind}") + _TEMP_TOKEN + r"\.part")
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    stale = [path.parent / n for n in names if pattern.fullmatch(n)]
    for tmp in stale:
        _remove(tmp)
        log.info("removed %s, left by an interrupted write", tmp)
    return stale


def _fresh_temporary(path: Path) -> Path:
    """``temporary_path(path)``, after removing what a killed write of ``path`` left there.

    One output has one writer at a time (Snakemake locks outputs; parallel workers write
    different files), so a temporary that exists now belongs to a write that died. A fixed name
    makes this one stat per write, not a listing of folders that hold thousands of outputs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    if _remove(tmp):
        log.info("removed %s, left by an interrupted write of %s", tmp, path.name)
    return tmp


def _umask_mode(full: int) -> int:
    """``full`` (0o666 file, 0o777 folder) under the process umask: the mode a plain open() or
    mkdir() would give. mkstemp / mkdtemp make 0600 / 0700, which would hide results from a group."""
    try:  # Linux: read it without changing it (os.umask is the only portable way, and racy)
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return full & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary is the hidden ``.<name>.part`` (created empty); one left by a killed process
    is removed the next time ``path`` is written.
    """
    path = Path(path)
    tmp = _fresh_temporary(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (``.<name>.part``); it replaces ``path`` only if the
    block succeeds. One left by a killed process is removed the next time ``path`` is written."""
    path = Path(path)
    tmp = _fresh_temporary(path)
    tmp.mkdir(mode=0o700)
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str | Path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e})") from None


def save_label_png(path: str | Path, label: np.ndarray) -> None:
    """Write an H x W uint8 label map as a VOC palette PNG (atomically)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map for {path} must be 2-D, got shape {label.shape}")
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(_PALETTE_BYTES)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
