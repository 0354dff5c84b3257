"""A user's own box-annotated dataset (``dataset.source: local``).

Read in the VOC layout (``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/<split>.txt``,
optional ``SegmentationClass/``) or the COCO layout (an instances JSON and an image folder),
refused before any training when the stages could not use it (each error names the file and the
field), then written as the internal layout the stages read:

* ``VOC2012/``: ``JPEGImages/<id>.jpg`` (links to the user's files), ``Annotations/<id>.xml`` with
  the user's class names, ``BgMaskfromBoxes/``, ``SegmentationClass/`` when scored, and
  ``ImageSets/Segmentation/all.txt``;
* ``instances.json``: COCO ground truth (images, categories, the boxes as annotations, and their
  masks when given) that the COCO results' ``image_id`` / ``category_id`` refer to;
* ``dataset.json``: the classes (label k = ``classes[k - 1]``), their category ids, and per image
  its COCO id and the annotation id of each box.

An image id is the image file's name without its suffix: the mask PNGs are named by it.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from ..io import atomic_dir, read_json, write_json, write_text
from ..progress import progress as track
from .coco import load_coco
from .voc import VocLayout, bg_mask_from_boxes, load_image, load_label, read_split, read_voc_xml, voc_xml

log = logging.getLogger(__name__)

SPLIT = "all"  # the internal layout's one split: every usable image
MAX_CLASSES = 254  # labels 1..254 in a palette PNG; 255 is void


@dataclass(frozen=True)
class OwnImage:
    id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # int64 [M, 5]: x1, y1, x2, y2 (exclusive), label 1..K
    coco_id: int
    ann_ids: tuple[int, ...]
    ground_truth: Path | None = None  # VOC layout: its SegmentationClass PNG


@dataclass
class OwnDataset:
    layout: str
    source: Path  # the file that lists the images: split list or instances JSON
    classes: tuple[str, ...]
    category_ids: tuple[int, ...]
    images: list[OwnImage]
    skipped: list[str] = field(default_factory=list)  # images without a usable box
    segmentations: dict[int, object] = field(default_factory=dict)  # COCO layout: annotation id -> mask

    @property
    def class_names(self) -> tuple[str, ...]:
        """Label -> name, background first (as ``read_voc_xml`` takes them)."""
        return ("background", *self.classes)

    @property
    def scored(self) -> bool:
        return bool(self.segmentations) or any(i.ground_truth is not None for i in self.images)


def check_class_names(names: Sequence[str], where: str) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise DataError(where, "no object classes (no box names any class)")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise DataError(where, f"class name {name!r} is not a non-empty string")
    if "background" in names:
        raise DataError(where, "'background' is label 0, not an object class: rename that class")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(where, f"class {dup[0]!r} is listed twice")
    if len(names) > MAX_CLASSES:
        raise DataError(where, f"{len(names)} classes; masks are palette PNGs, so at most {MAX_CLASSES}")
    return names


def _voc_class_names(xml_paths: Sequence[Path]) -> list[str]:
    """The object names the XMLs use, sorted; a file that does not parse is left to ``read_voc_xml``."""
    names: set[str] = set()
    for path in xml_paths:
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError):
            continue
        names.update((o.findtext("name") or "").strip() for o in root.findall("object"))
    names.discard("")
    return sorted(names)


def read_voc_dataset(root: str | Path, split: str, *, classes: Sequence[str] | None = None,
                     masks: bool = False) -> OwnDataset:
    """The images of ``root/ImageSets/Main/<split>.txt`` with their XML boxes (every box, difficult
    ones included); classes from the config (a box of another class is refused) or, when None,
    every name the XMLs use, sorted. ``masks``: score against ``SegmentationClass/<id>.png``."""
    root = Path(root)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    ids = read_split(split_file, check_dir=root / "JPEGImages")  # duplicates, missing images
    xml_paths = [root / "Annotations" / f"{i}.xml" for i in ids]
    names = check_class_names(classes if classes is not None else _voc_class_names(xml_paths),
                              "config key 'dataset.local.classes'" if classes is not None else str(root / "Annotations"))
    images, skipped = [], []
    n_boxes = 0
    for k, (image_id, xml) in enumerate(zip(ids, xml_paths, strict=True)):
        ann = read_voc_xml(xml, class_names=("background", *names))
        boxes = ann.boxes()
        if len(boxes) == 0:
            skipped.append(image_id)
            continue
        gt = root / "SegmentationClass" / f"{image_id}.png" if masks else None
        if gt is not None and not gt.is_file():
            raise DataError(gt, "ground-truth mask not found (dataset.local.masks is true: every listed image needs one)")
        images.append(OwnImage(id=image_id, path=root / "JPEGImages" / f"{image_id}.jpg", width=ann.width,
                               height=ann.height, boxes=boxes, coco_id=k + 1,
                               ann_ids=tuple(range(n_boxes + 1, n_boxes + 1 + len(boxes))), ground_truth=gt))
        n_boxes += len(boxes)
    return OwnDataset(layout="voc", source=split_file, classes=names,
                      category_ids=tuple(range(1, len(names) + 1)), images=images, skipped=skipped)


def read_coco_dataset(annotations: str | Path, images: str | Path, *, masks: bool = False) -> OwnDataset:
    """The images of a COCO instances file that have a box; the classes are its categories (label k
    = the k-th by category id). ``masks``: every annotation needs a ``segmentation``, scored with
    COCO's segm AP. Crowd annotations are skipped, as COCO does."""
    annotations, image_dir = Path(annotations), Path(images)
    coco = load_coco(annotations, image_dir, drop_grayscale=False, strict_boxes=True, require_segmentation=masks)
    names = check_class_names([n for _, n in coco.categories], str(annotations))
    kept = set(coco.image_ids)
    by_stem: dict[str, int] = {}
    out, skipped = [], []
    for iid in coco.listed_ids:
        stem = Path(coco.file_name(iid)).stem
        if stem in by_stem:
            raise DataError(annotations, f"images {by_stem[stem]} and {iid} are both named {stem!r} (key 'file_name'): "
                                         "masks are named by the image's file name, so it must be unique")
        by_stem[stem] = iid
        if iid not in kept:
            skipped.append(stem)
            continue
        w, h = coco.image_size(iid)
        out.append(OwnImage(id=stem, path=coco.image_path(iid), width=w, height=h, boxes=coco.boxes(iid),
                            coco_id=iid, ann_ids=tuple(int(a) for a in coco.annotation_ids(iid))))
    segmentations = {}
    if masks:
        wanted = {a for img in out for a in img.ann_ids}
        segmentations = {int(a["id"]): a["segmentation"] for a in read_json(annotations)["annotations"]
                         if int(a["id"]) in wanted}
    if not out:
        raise DataError(annotations, "no image has a usable box")
    return OwnDataset(layout="coco", source=annotations, classes=names,
                      category_ids=tuple(cid for cid, _ in coco.categories), images=out, skipped=skipped,
                      segmentations=segmentations)


def read_own_dataset(local: dict) -> OwnDataset:
    """``read_voc_dataset`` or ``read_coco_dataset`` from the config's ``dataset.local`` block."""
    if local["layout"] == "voc":
        return read_voc_dataset(local["root"], local["split"], classes=local.get("classes"), masks=local["masks"])
    if local.get("classes") is not None:
        raise ConfigError("config key 'dataset.local.classes': the COCO layout's classes are its categories")
    return read_coco_dataset(local["annotations"], local["images"], masks=local["masks"])


def _instances(ds: OwnDataset) -> dict:
    """COCO ground truth of the boxes (and masks): what the results' ids refer to."""
    from pycocotools import mask as mask_utils

    anns = []
    for img in ds.images:
        for aid, (x1, y1, x2, y2, label) in zip(img.ann_ids, img.boxes.tolist(), strict=True):
            ann = {"id": aid, "image_id": img.coco_id, "category_id": ds.category_ids[label - 1],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if aid in ds.segmentations:
                seg = ds.segmentations[aid]
                if isinstance(seg, dict) and isinstance(seg["counts"], str):  # compressed RLE: as it is
                    rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
                else:  # polygons or uncompressed RLE
                    rle = mask_utils.frPyObjects(seg, img.height, img.width)
                    rle = mask_utils.merge(rle) if isinstance(rle, list) else rle
                ann["segmentation"], ann["area"] = seg, float(mask_utils.area(rle))
            anns.append(ann)
    return {"images": [{"id": i.coco_id, "file_name": i.path.name, "width": i.width, "height": i.height}
                       for i in ds.images],
            "categories": [{"id": c, "name": n} for c, n in zip(ds.category_ids, ds.classes, strict=True)],
            "annotations": anns}


def write_own_dataset(ds: OwnDataset, out: str | Path, *, progress: bool = True) -> dict:
    """Check every image opens at its annotated size, then write the internal layout (module
    docstring) into ``out`` as a whole: a refused image leaves nothing behind."""
    layout_root = Path(out)
    with atomic_dir(layout_root) as tmp:
        voc = VocLayout(tmp / "VOC2012")
        for d in (voc.jpeg_dir, voc.annotation_dir, voc.bg_mask_dir, voc.seg_class_dir, voc.split_dir):
            d.mkdir(parents=True)
        n_labels = len(ds.class_names)
        for img in track(ds.images, desc="own dataset", enabled=progress):
            load_image(img.path, expect_size=(img.width, img.height))  # unreadable, truncated, wrong size
            os.symlink(img.path.resolve(), voc.image_path(img.id))
            objects = [{"name": ds.classes[b[4] - 1], "box": b[:4]} for b in img.boxes.tolist()]
            voc.annotation_path(img.id).write_text(voc_xml(img.id, (img.width, img.height), objects,
                                                           segmented=img.ground_truth is not None, image_source="own"))
            Image.fromarray(bg_mask_from_boxes(img.height, img.width, img.boxes)).save(voc.bg_mask_path(img.id))
            if img.ground_truth is not None:
                load_label(img.ground_truth, expect_size=(img.width, img.height), num_classes=n_labels)
                os.symlink(img.ground_truth.resolve(), voc.label_path(img.id))
        write_text(voc.split_path(SPLIT), "".join(f"{i.id}\n" for i in ds.images))
        write_json(tmp / "instances.json", _instances(ds))
        summary = {
            "layout": ds.layout, "source": str(ds.source), "classes": list(ds.classes),
            "category_ids": list(ds.category_ids), "scored": ds.scored, "n_images": len(ds.images),
            "n_boxes": int(sum(len(i.boxes) for i in ds.images)), "n_skipped": len(ds.skipped),
            "skipped_images": ds.skipped[:100],
            "images": {i.id: {"coco_id": i.coco_id, "ann_ids": list(i.ann_ids)} for i in ds.images},
        }
        write_json(tmp / "dataset.json", summary)
    if ds.skipped:
        log.warning("%s: %d image(s) without a usable box get no mask (first: %s)", ds.source, len(ds.skipped),
                    ", ".join(ds.skipped[:5]))
    log.info("own dataset: %d images, %d boxes, %d classes", summary["n_images"], summary["n_boxes"],
             len(ds.classes))
    return summary


@dataclass(frozen=True)
class OwnLayout:
    """The internal layout ``write_own_dataset`` wrote, as the stages read it."""

    root: Path
    info: dict

    @classmethod
    def open(cls, root: str | Path) -> OwnLayout:
        return cls(Path(root), read_json(Path(root) / "dataset.json"))

    @property
    def voc(self) -> VocLayout:
        return VocLayout(self.root / "VOC2012")

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("background", *self.info["classes"])

    @property
    def category_of_label(self) -> dict[int, int]:
        return {k + 1: c for k, c in enumerate(self.info["category_ids"])}

    @property
    def image_ids(self) -> list[str]:
        return read_split(self.voc.split_path(SPLIT))
