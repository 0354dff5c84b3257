"""The merged pseudo-label index (``index.json``): image id -> its Y_crf and Y_ret PNGs.

Paths are stored relative to the index's folder, so a results tree can be moved or read from
another working directory. Its own module so that training and figures depend on the format
alone, not on the scoring code that writes it (rules hash the modules they use).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError
from .io import read_json

KINDS = ("crf", "ret")


def index_entry(shard_dir: Path, image_id: str, index_dir: Path) -> dict[str, str]:
    """The index entry of one image of a pseudo-label shard (``<shard>/{crf,ret}/<id>.png``)."""
    return {k: os.path.relpath(Path(shard_dir) / k / f"{image_id}.png", index_dir) for k in KINDS}


def add_shard(index: dict[str, dict[str, str]], shard_dir: Path, image_ids, index_dir: Path) -> None:
    """Enter a shard's images into ``index``; an image already listed by another shard is a DataError."""
    for image_id in image_ids:
        if image_id in index:
            raise DataError(Path(shard_dir) / "meta.json", f"image {image_id} already listed by another shard")
        index[image_id] = index_entry(shard_dir, image_id, index_dir)


def read_pseudo_label_index(index_path: str | Path) -> dict[str, dict[str, Path]]:
    """``{image_id: {"crf": path, "ret": path}}`` from a merged ``index.json``, paths resolved."""
    index_path = Path(index_path)
    index = read_json(index_path)
    if not isinstance(index, dict) or not index:
        raise DataError(index_path, "empty or malformed pseudo-label index")
    out = {}
    for image_id, paths in index.items():
        if not isinstance(paths, dict) or not set(KINDS) <= set(paths):
            raise DataError(index_path, f"entry {image_id!r} needs 'crf' and 'ret' label paths")
        out[image_id] = {k: index_path.parent / paths[k] for k in KINDS}
    return out
