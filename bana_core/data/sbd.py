"""SBD (Hariharan et al. 2011) -> VOC ``SegmentationClassAug`` and the 10,582-image train_aug list.

SBD layout (``sbd_root`` = ``benchmark_RELEASE/dataset``): ``cls/<id>.mat`` (struct ``GTcls``
whose field ``Segmentation`` is the H x W class map, 0 = background, 1..20 = VOC classes, no
void), ``img/<id>.jpg``, ``train.txt``, ``val.txt``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.io
from tqdm import tqdm

from ..classes import NUM_VOC_CLASSES
from ..errors import DataError
from ..io import save_label_png, write_text
from .voc import VocLayout, jpeg_size, load_label, read_split

log = logging.getLogger(__name__)

#: SBD train (8,498) + SBD val (2,857) + VOC train (1,464) - VOC val (1,449), duplicates merged.
VOC_SBD_TRAIN_AUG_COUNT = 10_582


def read_sbd_cls(path: str | Path) -> np.ndarray:
    """uint8 H x W class map from an SBD ``cls/<id>.mat`` (``GTcls.Segmentation``), values 0..20."""
    path = Path(path)
    try:
        with open(path, "rb") as f:  # a file object: scipy would append ".mat" to a name and hide ENOENT
            mat = scipy.io.loadmat(f, variable_names=["GTcls"], struct_as_record=False)
    except FileNotFoundError:
        raise DataError(path, "SBD class file not found") from None
    except Exception as e:  # scipy raises ValueError / MatReadError / TypeError / OSError on bad files
        raise DataError(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if "GTcls" not in mat:
        raise DataError(path, "no variable 'GTcls' (not an SBD cls/ file?)")
    gt = mat["GTcls"]
    if isinstance(gt, np.ndarray):
        if gt.size != 1:
            raise DataError(path, f"'GTcls' holds {gt.size} structs, expected 1")
        gt = gt.item()
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        raise DataError(path, "struct 'GTcls' has no field 'Segmentation'")
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.size == 0:
        raise DataError(path, f"GTcls.Segmentation must be a 2-D map, got shape {seg.shape}")
    if not (np.issubdtype(seg.dtype, np.integer) or seg.dtype == bool):
        raise DataError(path, f"GTcls.Segmentation has dtype {seg.dtype}, expected integer class ids")
    lo, hi = int(seg.min()), int(seg.max())
    if lo < 0 or hi >= NUM_VOC_CLASSES:  # SBD has no void label: 255 is an error here too
        bad = (seg < 0) | (seg >= NUM_VOC_CLASSES)
        values, counts = np.unique(seg[bad], return_counts=True)
        shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:5].tolist(), counts[:5].tolist(), strict=True))
        raise DataError(path, f"GTcls.Segmentation holds value(s) {shown} outside the labels "
                              f"0..{NUM_VOC_CLASSES - 1}")
    return seg.astype(np.uint8)


def train_aug_ids(voc_train: Iterable[str], voc_val: Iterable[str], sbd_train: Iterable[str],
                  sbd_val: Iterable[str]) -> list[str]:
    """(SBD train | SBD val | VOC train) - VOC val, sorted: the usual train_aug split."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def _convert_one(task: tuple[str, str, str, str]) -> tuple[str, str] | None:
    """Worker: write one SegmentationClassAug PNG from (source, src, jpeg, dst); (path, problem) on error.

    Errors travel back as values because DataError's constructor does not survive pickling.
    """
    source, src, jpeg, dst = task
    try:
        label = load_label(src) if source == "voc" else read_sbd_cls(src)
        w, h = jpeg_size(jpeg)
        if label.shape != (h, w):
            return src, f"label map is {label.shape[1]} x {label.shape[0]} but {jpeg} is {w} x {h} (W x H)"
        save_label_png(dst, label)
    except DataError as e:
        return (str(e.path) if e.path is not None else src), e.problem
    return None


def _run_tasks(results: Iterable[tuple[str, str] | None], total: int, progress: bool) -> None:
    for err in tqdm(results, total=total, desc="train_aug labels", disable=not progress, mininterval=5):
        if err is not None:
            raise DataError(*err)


def build_train_aug(voc_root: Path, sbd_root: Path, *, expected_count: int | None = None, workers: int = 1,
                    progress: bool = True) -> dict:
    """Fill ``SegmentationClassAug/`` for every train_aug image and write ``train_aug.txt``.

    The label of an image in VOC's own segmentation train list is VOC's ``SegmentationClass``
    PNG (VOC wins where both exist, the usual convention: its masks are finer and carry the 255
    void boundary); every other image gets its SBD ``cls/<id>.mat`` map. Each PNG is written
    atomically; ``ImageSets/Segmentation/train_aug.txt`` is written last, atomically, and is the
    completion marker (an old one is removed first, so an interrupted rebuild never looks done).
    Returns {n_train_aug, n_from_sbd, n_from_voc}.
    """
    layout, sbd_root = VocLayout(Path(voc_root)), Path(sbd_root)
    marker = layout.split_path("train_aug")
    marker.unlink(missing_ok=True)
    voc_train = read_split(layout.split_path("train"))
    voc_val = read_split(layout.split_path("val"))
    sbd_train = read_split(sbd_root / "train.txt")
    sbd_val = read_split(sbd_root / "val.txt")
    ids = train_aug_ids(voc_train, voc_val, sbd_train, sbd_val)
    if expected_count is not None and len(ids) != expected_count:
        raise DataError(sbd_root, f"train_aug = SBD train + SBD val + VOC train - VOC val has {len(ids):,} images, "
                                  f"expected {expected_count:,} (VOC 2012 + SBD give {VOC_SBD_TRAIN_AUG_COUNT:,}); "
                                  "incomplete or mismatched VOC/SBD download?")
    try:
        jpegs = set(os.listdir(layout.jpeg_dir))
    except FileNotFoundError:
        raise DataError(layout.jpeg_dir, "VOC JPEGImages folder not found") from None
    missing = [i for i in ids if f"{i}.jpg" not in jpegs]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(layout.jpeg_dir, f"{len(missing)} train_aug image(s) have no JPEG: "
                                         f"{', '.join(missing[:5])}{more}")
    from_voc = set(voc_train)
    tasks = [("voc" if i in from_voc else "sbd",
              str(layout.label_path(i) if i in from_voc else sbd_root / "cls" / f"{i}.mat"),
              str(layout.image_path(i)), str(layout.label_path(i, aug=True))) for i in ids]
    layout.seg_class_aug_dir.mkdir(parents=True, exist_ok=True)
    if workers > 1 and len(tasks) > 1:
        # fork, not spawn/forkserver: those re-run the __main__ module in every worker, and a
        # Snakemake `script:` has no __name__ guard. The pool exists before any tqdm thread.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            chunk = max(1, min(64, len(tasks) // (4 * workers)))
            _run_tasks(pool.imap_unordered(_convert_one, tasks, chunksize=chunk), len(tasks), progress)
    else:
        _run_tasks(map(_convert_one, tasks), len(tasks), progress)
    write_text(marker, "".join(f"{i}\n" for i in ids))
    n_voc = sum(t[0] == "voc" for t in tasks)
    summary = {"n_train_aug": len(ids), "n_from_sbd": len(ids) - n_voc, "n_from_voc": n_voc}
    log.info("train_aug: %s", summary)
    return summary
