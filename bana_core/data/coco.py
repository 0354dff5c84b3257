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
import math
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

    def file_name(self, image_id: int) -> str:
        return self._files[int(image_id)]

    @property
    def listed_ids(self) -> list[int]:
        """Every image id of the file (sorted), with or without a box."""
        return sorted(self._files)

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


# --- field-by-field validation of the annotation file --------------------------------------------
# Every value is checked where it enters. Malformed values (wrong type, NaN, negative sizes,
# polygons with an odd number of coordinates, RLEs that do not cover their image) refuse the
# whole file: pycocotools would silently reinterpret them when COCOeval reads the same file.
# Records that are well formed but unusable as box supervision are skipped, logged by id and
# counted in ``summary``: crowd regions, boxes empty once clipped to the image, and polygons of
# fewer than three points.

_INT64_MAX = np.iinfo(np.int64).max
_MAX_LOGGED_SKIPS = 20  # per kind; the summary keeps the first 100 ids of each


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):  # JSON ints are unbounded; math.isfinite would overflow on 10**400
        return abs(value) <= _INT64_MAX
    return isinstance(value, float) and math.isfinite(value)


class _Checker:
    """Raises DataError naming the file, the record, the key and the value."""

    def __init__(self, ann_path: Path):
        self.path = ann_path

    def fail(self, record: str, key: str, value, expected: str) -> None:
        raise DataError(self.path, f"{record}: {key!r} is {_show(value)}, expected {expected}")

    def entry(self, row, record: str, keys: tuple[str, ...]) -> dict:
        if not isinstance(row, dict):
            raise DataError(self.path, f"{record} is {_show(row)}, expected an object")
        for k in keys:
            if k not in row:
                raise DataError(self.path, f"{record} has no {k!r}")
        return row

    def id(self, row: dict, record: str, key: str = "id") -> int:
        value = row[key]
        if not _is_int(value) or not 0 <= value <= _INT64_MAX:
            self.fail(record, key, value, "a non-negative integer")
        return value


def _record(kind: str, n: int, row) -> str:
    """'image 42' when the entry has a usable id, else 'image entry 7' (its position)."""
    rid = row.get("id") if isinstance(row, dict) else None
    return f"{kind} {rid}" if _is_int(rid) else f"{kind} entry {n}"


def _read_categories(chk: _Checker, rows: list) -> list[tuple[int, str]]:
    categories, seen = [], set()
    for n, row in enumerate(rows):
        record = _record("category", n, row)
        chk.entry(row, record, ("id", "name"))
        cid, name = chk.id(row, record), row["name"]
        if not isinstance(name, str) or not name.strip():
            chk.fail(record, "name", name, "a non-empty string")
        if cid in seen:
            raise DataError(chk.path, f"{record}: duplicate category id {cid}")
        seen.add(cid)
        categories.append((cid, name))
    if not categories:
        raise DataError(chk.path, "'categories' is empty")
    return sorted(categories)


def _read_images(chk: _Checker, rows: list) -> tuple[dict[int, str], dict[int, tuple[int, int]]]:
    files: dict[int, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for n, row in enumerate(rows):
        record = _record("image", n, row)
        chk.entry(row, record, ("id", "file_name", "width", "height"))
        iid = chk.id(row, record)
        for key in ("width", "height"):
            if not _is_int(row[key]) or not 1 <= row[key] <= 1 << 20:
                chk.fail(record, key, row[key], "a positive integer (pixels)")
        name = row["file_name"]
        parts = name.replace("\\", "/").split("/") if isinstance(name, str) else []
        if (not isinstance(name, str) or not name or "\0" in name or name.startswith(("/", "\\"))
                or ".." in parts or (len(name) > 1 and name[1] == ":")):
            chk.fail(record, "file_name", name, "a relative file name inside the image folder")
        if iid in files:
            raise DataError(chk.path, f"{record}: duplicate image id {iid}")
        files[iid] = name
        sizes[iid] = (row["width"], row["height"])
    if not files:
        raise DataError(chk.path, "'images' is empty")
    return files, sizes


def _rle_string_counts(text: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString, checked)."""
    counts: list[int] = []
    p, n = 0, len(text)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("it ends inside a number")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r} at {p} is not an RLE digit")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _check_rle(chk: _Checker, record: str, seg: dict, height: int, width: int) -> None:
    for key in ("size", "counts"):
        if key not in seg:
            chk.fail(record, "segmentation", seg, f"an RLE with 'size' and 'counts' (it has no {key!r})")
    size = seg["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        chk.fail(record, "segmentation.size", size, "[height, width]")
    if size != [height, width]:
        chk.fail(record, "segmentation.size", size, f"[{height}, {width}], its image's [height, width]")
    counts = seg["counts"]
    if isinstance(counts, str):
        try:
            runs = _rle_string_counts(counts)
        except ValueError as e:
            chk.fail(record, "segmentation.counts", counts, f"a compressed RLE string ({e})")
    elif isinstance(counts, list):
        runs = counts
        if not set(map(type, runs)) <= {int}:
            bad = next(v for v in runs if not _is_int(v))
            chk.fail(record, "segmentation.counts", bad, "integer run lengths")
    else:
        chk.fail(record, "segmentation.counts", counts, "a list of run lengths or a compressed RLE string")
    if runs and min(runs) < 0:
        chk.fail(record, "segmentation.counts", min(runs), "non-negative run lengths")
    if sum(runs) != height * width:
        raise DataError(chk.path, f"{record}: 'segmentation' RLE runs cover {sum(runs)} pixels, "
                                  f"its {width} x {height} image has {height * width}")


def _check_polygons(chk: _Checker, record: str, seg: list) -> bool:
    """Refuse malformed polygons; False when one has fewer than three points (the record is skipped)."""
    if not seg:
        chk.fail(record, "segmentation", seg, "a non-empty list of polygons or an RLE object")
    usable = True
    for j, poly in enumerate(seg):
        key = f"segmentation[{j}]"
        if not isinstance(poly, list):
            chk.fail(record, key, poly, "a polygon [x1, y1, x2, y2, ...]")
        if len(poly) % 2:
            chk.fail(record, key, poly, f"an even number of coordinates (x, y pairs), got {len(poly)}")
        if not set(map(type, poly)) <= {int, float}:
            bad = next(v for v in poly if not _is_number(v))
            chk.fail(record, key, bad, "numbers (polygon coordinates)")
        try:
            finite = all(map(math.isfinite, poly))  # C-speed pass; the slow one only on failure
        except OverflowError:
            finite = False
        if not finite:
            bad = next(v for v in poly if not _is_number(v))
            chk.fail(record, key, bad, "finite coordinates")
        usable = usable and len(poly) >= 6
    return usable


def _check_box_inside(chk: _Checker, record: str, box: list, size: tuple[int, int]) -> None:
    """A user's own box must be non-empty and inside its image (COCO's own files are clipped)."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        chk.fail(record, "bbox", box, "a box of positive width and height [x, y, w, h]")
    if x < 0 or y < 0 or x + w > size[0] or y + h > size[1]:
        chk.fail(record, "bbox", box, f"a box inside its {size[0]} x {size[1]} image [x, y, w, h]")


def _read_annotations(chk: _Checker, rows: list, sizes: dict[int, tuple[int, int]],
                      cat_ids: set[int], *, strict_boxes: bool = False,
                      require_segmentation: bool = True) -> dict[str, np.ndarray]:
    n = len(rows)
    ids, img, cat = (np.empty(n, np.int64) for _ in range(3))
    bbox = np.empty((n, 4), np.float64)
    crowd = np.zeros(n, bool)
    short_polygon = np.zeros(n, bool)
    seen: set[int] = set()
    for k, row in enumerate(rows):
        record = _record("annotation", k, row)
        chk.entry(row, record, ("id", "image_id", "category_id", "bbox")
                  + (("segmentation",) if require_segmentation else ()))
        aid = chk.id(row, record)
        if aid in seen:
            raise DataError(chk.path, f"{record}: duplicate annotation id {aid}")
        seen.add(aid)
        iid = chk.id(row, record, "image_id")
        if iid not in sizes:
            raise DataError(chk.path, f"annotation {aid} refers to unknown image id {iid} (key 'image_id')")
        record = f"annotation {aid} (image {iid})"
        cid = chk.id(row, record, "category_id")
        if cid not in cat_ids:
            raise DataError(chk.path, f"annotation {aid} has unknown category id {cid} (key 'category_id')")
        box = row["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))):
            chk.fail(record, "bbox", box, "four finite numbers [x, y, w, h]")
        if box[2] < 0 or box[3] < 0:
            chk.fail(record, "bbox", box, "a non-negative width and height [x, y, w, h]")
        if strict_boxes:
            _check_box_inside(chk, record, box, sizes[iid])
        is_crowd = row.get("iscrowd", 0)
        if not _is_int(is_crowd) or is_crowd not in (0, 1):
            chk.fail(record, "iscrowd", is_crowd, "0 or 1")
        if "area" in row and not (_is_number(row["area"]) and row["area"] >= 0):
            chk.fail(record, "area", row["area"], "a finite non-negative number")
        seg = row.get("segmentation")
        if seg is None and not require_segmentation:
            pass
        elif isinstance(seg, dict):
            width, height = sizes[iid]
            _check_rle(chk, record, seg, height, width)
        elif isinstance(seg, list):
            short_polygon[k] = not _check_polygons(chk, record, seg)
        else:
            chk.fail(record, "segmentation", seg, "a list of polygons or an RLE object")
        ids[k], img[k], cat[k], bbox[k], crowd[k] = aid, iid, cid, box, is_crowd == 1
    return {"ids": ids, "img": img, "cat": cat, "bbox": bbox, "crowd": crowd, "short_polygon": short_polygon}


def _log_skips(ann_path: Path, what: str, ids: np.ndarray, images: np.ndarray) -> list[int]:
    """Log each skipped annotation (the first few by id) and return the first 100 ids."""
    for aid, iid in zip(ids[:_MAX_LOGGED_SKIPS].tolist(), images[:_MAX_LOGGED_SKIPS].tolist(), strict=True):
        log.warning("%s: skipped annotation %d (image %d): %s", ann_path.name, aid, iid, what)
    if len(ids) > _MAX_LOGGED_SKIPS:
        log.warning("%s: skipped %d more annotations: %s", ann_path.name, len(ids) - _MAX_LOGGED_SKIPS, what)
    return ids[:100].tolist()


def _usable_boxes(ann_path: Path, categories: list[tuple[int, str]], sizes: dict[int, tuple[int, int]],
                  anns: dict) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[int, int]], dict]:
    """Convert every annotation's box at once and keep the usable ones.

    Returns the boxes (N x 5: x1, y1, x2, y2, label) sorted by (image id, annotation id), their
    annotation ids, each image's slice of them, and the skipped annotations (counts, logged ids).
    """
    ann_ids, ann_img, ann_cat, bbox = anns["ids"], anns["img"], anns["cat"], anns["bbox"]
    known_cats = np.asarray([cid for cid, _ in categories], dtype=np.int64)  # sorted
    img_ids_arr = np.asarray(sorted(sizes), dtype=np.int64)
    wh = np.asarray([sizes[i] for i in img_ids_arr], dtype=np.int64).reshape(-1, 2)
    img_w = wh[np.searchsorted(img_ids_arr, ann_img), 0]
    img_h = wh[np.searchsorted(img_ids_arr, ann_img), 1]
    x1 = np.clip(np.floor(bbox[:, 0]), 0, img_w)
    y1 = np.clip(np.floor(bbox[:, 1]), 0, img_h)
    x2 = np.clip(np.ceil(bbox[:, 0] + bbox[:, 2]), 0, img_w)
    y2 = np.clip(np.ceil(bbox[:, 1] + bbox[:, 3]), 0, img_h)
    is_crowd = anns["crowd"]
    degenerate = ~is_crowd & ~((x2 > x1) & (y2 > y1))
    short = ~is_crowd & ~degenerate & anns["short_polygon"]
    usable = ~is_crowd & ~degenerate & ~short
    skips = {
        "counts": {"n_crowd_annotations": int(is_crowd.sum()), "n_degenerate_boxes": int(degenerate.sum()),
                   "n_short_polygons": int(short.sum())},
        "ids": {"degenerate_boxes": _log_skips(ann_path, "its box is empty once clipped to the image",
                                               ann_ids[degenerate], ann_img[degenerate]),
                "short_polygons": _log_skips(ann_path, "a polygon of fewer than three points",
                                             ann_ids[short], ann_img[short])},
    }
    keep = np.flatnonzero(usable)
    order = keep[np.lexsort((ann_ids[keep], ann_img[keep]))]
    boxes = np.stack([x1[order], y1[order], x2[order], y2[order],
                      np.searchsorted(known_cats, ann_cat[order]) + 1.0],  # labels follow sorted ids
                     axis=1).astype(np.int64).reshape(-1, 5)
    uniq, starts, counts = np.unique(ann_img[order], return_index=True, return_counts=True)
    slices = {int(i): (int(s), int(s + c)) for i, s, c in zip(uniq, starts, counts, strict=True)}
    return boxes, ann_ids[order], slices, skips


def load_coco(ann_path: str | Path, image_dir: str | Path, *, drop_grayscale: bool, strict_boxes: bool = False,
              require_segmentation: bool = True) -> CocoData:
    """Read a COCO instances JSON: categories, contiguous labels, usable images and their boxes.

    Every field is validated where it enters (see the comment above ``_Checker``): a malformed
    value is a DataError naming the file, the record (image / annotation id), the key and the
    value. Boxes ``[x, y, w, h]`` become ``floor(x), floor(y), ceil(x + w), ceil(y + h)``
    clipped to the image. Skipped, logged by annotation id and counted in ``summary``:
    ``iscrowd=1`` annotations, boxes empty after conversion, annotations with a polygon of
    fewer than three points. ``image_ids`` lists (sorted) the images with at least one box,
    minus grayscale images (detected from the JPEG header) when ``drop_grayscale``.

    A user's own file (``bana_core.data.own``): ``strict_boxes`` refuses an empty box or one
    outside its image instead of clipping or skipping it; without ``require_segmentation`` an
    annotation may lack the key.
    """
    ann_path, image_dir = Path(ann_path), Path(image_dir)
    data = read_json(ann_path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise DataError(ann_path, "not a COCO instances file (needs lists 'images', 'annotations', 'categories')")
    chk = _Checker(ann_path)
    categories = _read_categories(chk, data["categories"])
    files, sizes = _read_images(chk, data["images"])
    anns = _read_annotations(chk, data["annotations"], sizes, {cid for cid, _ in categories},
                             strict_boxes=strict_boxes, require_segmentation=require_segmentation)
    del data  # the raw annotation dicts are the bulk of the memory
    boxes, kept_ids, slices, skips = _usable_boxes(ann_path, categories, sizes, anns)

    with_boxes = sorted(slices)
    n_gray = 0
    if drop_grayscale:
        gray = {i for i in with_boxes if _is_grayscale(image_dir / files[i])}
        n_gray = len(gray)
        with_boxes = [i for i in with_boxes if i not in gray]
    summary = {
        "n_images_in_file": len(files),
        "n_images_without_boxes": len(files) - len(slices),
        "n_grayscale_dropped": n_gray,
        "n_images": len(with_boxes),
        **skips["counts"],
        "n_boxes": int(sum(slices[i][1] - slices[i][0] for i in with_boxes)),
        "skipped_annotation_ids": skips["ids"],
    }
    log.info("COCO %s: %s", ann_path.name, {k: v for k, v in summary.items() if k != "skipped_annotation_ids"})
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
