"""Atomic file output and label PNGs: a file a rule writes is complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
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


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is the hidden ``.<name>.<8 chars>.part`` temporary of an atomic write."""
    return re.fullmatch(r"\..+\." + _TEMP_TOKEN + r"\.part", Path(path).name) is not None


def remove_stale_temporaries(path: str | Path, kind: str = "") -> list[Path]:
    """Delete the temporaries that killed writes of ``path`` left beside it; return them.

    Called when ``path`` is about to be written again: one output has one writer at a time
    (Snakemake locks its outputs), so any temporary of it still there is from a dead write.
    ``kind`` is an infix such as ``"extract."`` for the extraction folders of download.py.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.{kind}") + _TEMP_TOKEN + r"\.part")
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    stale = [path.parent / n for n in names if pattern.fullmatch(n)]
    for tmp in stale:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted write of %s", tmp, path)
    return stale


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary is hidden (``.<name>.<random>.part``); one left by a killed process is
    removed the next time ``path`` is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
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
