"""COCO 2017 instances reader: contiguous labels, boxes in the project convention, VOC mapping.

Contiguous labels: the file's categories sorted by COCO id get labels 1..K (0 = background),
so the real 80 categories map to 1..80. COCO ids (1..90, with gaps) are never used as indices.

The annotation file is read with ``json`` and indexed with numpy rather than through
``pycocotools.coco.COCO``: the 448 MB train2017 file would otherwise be held twice (the
dataset and COCO's per-id dicts). pycocotools stays in use for evaluation (``COCOeval``).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import COCO_ID_TO_VOC_INDEX, VOC_TO_COCO
from ..errors import DataError
from ..io import atomic_path, read_json

log = logging.getLogger(__name__)

# PIL modes of single-channel JPEGs / images: dropped with drop_grayscale.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass
class CocoData:
    """A COCO instances file reduced to what the pipeline needs (see ``load_coco``)."""

    ann_path: Path
    image_dir: Path
    categories: list[tuple[int, str]]          # (coco id, name), sorted by id
    image_ids: list[int]                      # images kept: >= 1 usable box (and colour, if asked)
    summary: dict
    _files: dict[int, str] = field(repr=False)
    _sizes: dict[int, tuple[int, int]] = field(repr=False)
    _slices: dict[int, tuple[int, int]] = field(repr=False)
    _boxes: np.ndarray = field(repr=False)    # int64 [A, 5], grouped by image, by annotation id within
    _ann_ids: np.ndarray = field(repr=False)  # int64 [A]
    label_of_coco_id: dict[int, int] = field(init=False)  # coco id -> contiguous label 1..K

    def __post_init__(self) -> None:
        self.label_of_coco_id = {cid: k + 1 for k, (cid, _) in enumerate(self.categories)}

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self._files[int(image_id)]

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(W, H) as the annotation file states it."""
        return self._sizes[int(image_id)]

    def boxes(self, image_id: int) -> np.ndarray:
        """int64 [M, 5]: x1, y1, x2, y2 (exclusive), contiguous label; crowd and empty boxes excluded."""
        if int(image_id) not in self._files:
            raise KeyError(f"image {image_id} is not in {self.ann_path}")
        a, b = self._slices.get(int(image_id), (0, 0))
        return self._boxes[a:b].copy()

    def annotation_ids(self, image_id: int) -> np.ndarray:
        """int64 [M]: the COCO annotation id of each row of ``boxes(image_id)``."""
        if int(image_id) not in self._files:
            raise KeyError(f"image {image_id} is not in {self.ann_path}")
        a, b = self._slices.get(int(image_id), (0, 0))
        return self._ann_ids[a:b].copy()


def _is_grayscale(path: Path) -> bool:
    """From the image header only (no pixel decoding)."""
    try:
        with Image.open(path) as img:
            return img.mode in GRAYSCALE_MODES
    except FileNotFoundError:
        raise DataError(path, "COCO image file not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"unreadable COCO image ({type(e).__name__}: {e})") from None


def _table(ann_path: Path, rows: list, keys: tuple[str, ...], what: str) -> dict[str, list]:
    """Columns of a list of JSON objects; a missing key is a DataError naming the entry."""
    cols: dict[str, list] = {k: [] for k in keys}
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(ann_path, f"{what} entry {n} is not an object")
        for k in keys:
            if k not in row:
                raise DataError(ann_path, f"{what} entry {n} (id {row.get('id')}) has no {k!r}")
            cols[k].append(row[k])
    return cols


def load_coco(ann_path: str | Path, image_dir: str | Path, *, drop_grayscale: bool) -> CocoData:
    """Read a COCO instances JSON: categories, contiguous labels, usable images and their boxes.

    Boxes ``[x, y, w, h]`` become ``floor(x), floor(y), ceil(x + w), ceil(y + h)`` clipped to the
    image; ``iscrowd=1`` annotations are never returned; boxes empty after conversion are
    skipped and counted. ``image_ids`` lists (sorted) the images with at least one box, minus
    grayscale images (detected from the JPEG header) when ``drop_grayscale``. ``summary``
    counts what was skipped.
    """
    ann_path, image_dir = Path(ann_path), Path(image_dir)
    data = read_json(ann_path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise DataError(ann_path, "not a COCO instances file (needs lists 'images', 'annotations', 'categories')")

    cats = _table(ann_path, data["categories"], ("id", "name"), "category")
    categories = sorted(zip((int(c) for c in cats["id"]), (str(n) for n in cats["name"]), strict=True))
    if len({cid for cid, _ in categories}) != len(categories):
        raise DataError(ann_path, "duplicate category ids")

    imgs = _table(ann_path, data["images"], ("id", "file_name", "width", "height"), "image")
    files = dict(zip((int(i) for i in imgs["id"]), imgs["file_name"], strict=True))
    if len(files) != len(imgs["id"]):
        raise DataError(ann_path, "duplicate image ids")
    sizes = {int(i): (int(w), int(h)) for i, w, h in zip(imgs["id"], imgs["width"], imgs["height"], strict=True)}

    anns = _table(ann_path, data["annotations"], ("id", "image_id", "category_id", "bbox"), "annotation")
    crowd = np.asarray([int(a.get("iscrowd", 0)) for a in data["annotations"]], dtype=np.int64)
    del data  # the raw annotation dicts are the bulk of the memory
    ann_ids = np.asarray(anns["id"], dtype=np.int64)
    ann_img = np.asarray(anns["image_id"], dtype=np.int64)
    ann_cat = np.asarray(anns["category_id"], dtype=np.int64)
    try:
        bbox = np.asarray(anns["bbox"], dtype=np.float64).reshape(len(ann_ids), -1 if len(ann_ids) else 4)
    except (ValueError, TypeError):
        bbox = np.empty((0, 0))
    if bbox.shape != (len(ann_ids), 4):
        raise DataError(ann_path, "an annotation's 'bbox' is not four numbers [x, y, w, h]")
    del anns

    # Validate references, vectorised: report the first offending annotation.
    known_cats = np.asarray([cid for cid, _ in categories], dtype=np.int64)  # sorted
    bad = ~np.isin(ann_cat, known_cats)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(ann_path, f"annotation {ann_ids[k]} has unknown category id {ann_cat[k]}")
    img_ids_arr = np.asarray(sorted(files), dtype=np.int64)
    bad = ~np.isin(ann_img, img_ids_arr)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(ann_path, f"annotation {ann_ids[k]} refers to unknown image id {ann_img[k]}")
    if len(np.unique(ann_ids)) != len(ann_ids):
        raise DataError(ann_path, "duplicate annotation ids")

    # Box conversion, all annotations at once.
    wh = np.asarray([sizes[i] for i in img_ids_arr], dtype=np.int64).reshape(-1, 2)
    img_w = wh[np.searchsorted(img_ids_arr, ann_img), 0]
    img_h = wh[np.searchsorted(img_ids_arr, ann_img), 1]
    with np.errstate(invalid="ignore"):
        x1 = np.clip(np.floor(bbox[:, 0]), 0, img_w)
        y1 = np.clip(np.floor(bbox[:, 1]), 0, img_h)
        x2 = np.clip(np.ceil(bbox[:, 0] + bbox[:, 2]), 0, img_w)
        y2 = np.clip(np.ceil(bbox[:, 1] + bbox[:, 3]), 0, img_h)
    is_crowd = crowd != 0
    finite = np.isfinite(bbox).all(axis=1)
    usable = ~is_crowd & finite & (x2 > x1) & (y2 > y1)
    n_degenerate = int((~is_crowd & ~usable).sum())

    keep = np.flatnonzero(usable)
    order = keep[np.lexsort((ann_ids[keep], ann_img[keep]))]
    boxes = np.stack([x1[order], y1[order], x2[order], y2[order],
                      np.searchsorted(known_cats, ann_cat[order]) + 1.0],  # labels follow sorted ids
                     axis=1).astype(np.int64).reshape(-1, 5)
    kept_ids = ann_ids[order]
    uniq, starts, counts = np.unique(ann_img[order], return_index=True, return_counts=True)
    slices = {int(i): (int(s), int(s + c)) for i, s, c in zip(uniq, starts, counts, strict=True)}

    with_boxes = [int(i) for i in uniq]
    n_gray = 0
    if drop_grayscale:
        gray = {i for i in with_boxes if _is_grayscale(image_dir / files[i])}
        n_gray = len(gray)
        with_boxes = [i for i in with_boxes if i not in gray]
    summary = {
        "n_images_in_file": len(files),
        "n_images_without_boxes": len(files) - len(uniq),
        "n_grayscale_dropped": n_gray,
        "n_images": len(with_boxes),
        "n_crowd_annotations": int(is_crowd.sum()),
        "n_degenerate_boxes": n_degenerate,
        "n_boxes": int(sum(slices[i][1] - slices[i][0] for i in with_boxes)),
    }
    log.info("COCO %s: %s", ann_path.name, summary)
    return CocoData(ann_path=ann_path, image_dir=image_dir, categories=categories,
                    image_ids=with_boxes, summary=summary,
                    _files=files, _sizes=sizes, _slices=slices, _boxes=boxes, _ann_ids=kept_ids)


def voc_seen_labels(coco: CocoData) -> dict[int, int]:
    """Contiguous COCO label -> VOC label (1..20) whose classifier weight it uses (the 20 seen classes).

    The file's category names must be the COCO 2017 names for those ids, and no other id may
    carry one of those names; a file that breaks this would silently pair wrong weights.
    """
    names = dict(coco.categories)
    expected = {cid: name for cid, name in VOC_TO_COCO.values()}
    for cid, name in coco.categories:
        if cid in expected and name != expected[cid]:
            raise DataError(coco.ann_path, f"category id {cid} is named {name!r}, expected COCO's {expected[cid]!r}")
        if cid not in expected and name in expected.values():
            want = next(k for k, v in expected.items() if v == name)
            raise DataError(coco.ann_path, f"category {name!r} has id {cid}, expected COCO's id {want}")
    return {coco.label_of_coco_id[cid]: COCO_ID_TO_VOC_INDEX[cid] for cid in sorted(expected) if cid in names}


# --- the index that COCO shards read ------------------------------------------------------------
# Parsing instances_train2017.json (448 MB) and probing 118k JPEG headers for grayscale takes
# minutes and GBs; with 512 shards that would happen 512 times. One job does it once and every
# shard loads this compact .npz (boxes and file names only, no pickles).

_INDEX_VERSION = 1


def save_coco_index(coco: CocoData, path: str | Path) -> None:
    """Write ``coco`` (as ``load_coco`` returned it) to an .npz that ``load_coco_index`` reads back."""
    files = sorted(coco._files)
    slice_ids = sorted(coco._slices)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            version=np.int64(_INDEX_VERSION),
            ann_path=np.str_(str(coco.ann_path)),
            cat_ids=np.asarray([c for c, _ in coco.categories], dtype=np.int64),
            cat_names=np.asarray([n for _, n in coco.categories], dtype=np.str_),
            file_ids=np.asarray(files, dtype=np.int64).reshape(-1),
            file_names=np.asarray([coco._files[i] for i in files], dtype=np.str_).reshape(-1),
            sizes=np.asarray([coco._sizes[i] for i in files], dtype=np.int64).reshape(-1, 2),
            slice_ids=np.asarray(slice_ids, dtype=np.int64).reshape(-1),
            slices=np.asarray([coco._slices[i] for i in slice_ids], dtype=np.int64).reshape(-1, 2),
            boxes=coco._boxes.astype(np.int64).reshape(-1, 5),
            ann_ids=coco._ann_ids.astype(np.int64).reshape(-1),
            image_ids=np.asarray(coco.image_ids, dtype=np.int64).reshape(-1),
            summary=np.str_(json.dumps(coco.summary, sort_keys=True)),
        )


def load_coco_index(path: str | Path, image_dir: str | Path) -> CocoData:
    """The ``CocoData`` that ``save_coco_index`` wrote; images are looked up under ``image_dir``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(path, "COCO index not found (made by the coco_index rule)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(path, f"unreadable COCO index ({type(e).__name__}: {e})") from None
    if arrays.get("version") is None or int(arrays["version"]) != _INDEX_VERSION:
        raise DataError(path, f"not a COCO index of version {_INDEX_VERSION}; delete it to rebuild")
    files = {int(i): str(n) for i, n in zip(arrays["file_ids"], arrays["file_names"], strict=True)}
    categories = [(int(c), str(n)) for c, n in zip(arrays["cat_ids"], arrays["cat_names"], strict=True)]
    return CocoData(
        ann_path=Path(str(arrays["ann_path"])), image_dir=Path(image_dir), categories=categories,
        image_ids=[int(i) for i in arrays["image_ids"]], summary=json.loads(str(arrays["summary"])),
        _files=files,
        _sizes={i: (int(w), int(h)) for i, (w, h) in zip(files, arrays["sizes"], strict=True)},
        _slices={int(i): (int(a), int(b)) for i, (a, b) in zip(arrays["slice_ids"], arrays["slices"], strict=True)},
        _boxes=arrays["boxes"], _ann_ids=arrays["ann_ids"])
