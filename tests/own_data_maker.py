"""A user's own box-annotated dataset, made for tests from the synthetic world: the VOC classes
merged into a few classes with names that are not VOC's, written in the VOC layout (with
SegmentationClass ground truth) or the COCO layout (RLE ground truth, category ids with gaps).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from bana_core.data.synthetic import synthesize
from bana_core.data.voc import VocLayout, load_label, read_split, read_voc_xml, voc_xml
from bana_core.io import save_label_png

N_CLASSES = 6  # not VOC's 20
CLASSES = tuple(f"gadget-{k}" for k in range(N_CLASSES))
CATEGORY_IDS = tuple(3 + 4 * k for k in range(N_CLASSES))  # COCO ids need not be contiguous


def own_label(voc_label: np.ndarray) -> np.ndarray:
    """VOC label 1..20 -> own label 1..6; background 0 and void 255 kept."""
    lut = np.array([0] + [1 + (v - 1) % N_CLASSES for v in range(1, 21)] + [255] * 235, np.uint8)
    lut[255] = 255
    return lut[voc_label]


def synthetic_source(root: Path, n_images: int = 24, seed: int = 3) -> VocLayout:
    synthesize(root, image_size=(96, 72), n_train=n_images, n_val=4, n_test=0, n_sbd_only=0, n_coco=0, seed=seed,
               progress=False)
    return VocLayout(root / "VOCdevkit" / "VOC2012")


def _objects(src: VocLayout, image_id: str) -> tuple[tuple[int, int], list[dict], np.ndarray]:
    ann = read_voc_xml(src.annotation_path(image_id))
    boxes = ann.boxes()
    boxes[:, 4] = own_label(boxes[:, 4].astype(np.uint8))
    objects = [{"name": CLASSES[b[4] - 1], "box": tuple(b[:4])} for b in boxes.tolist()]
    return (ann.width, ann.height), objects, boxes


def write_voc_layout(src: VocLayout, out: Path, split: str = "trainval") -> Path:
    """``out`` in the VOC layout: JPEGImages, Annotations (own class names), ImageSets/Main/<split>.txt,
    SegmentationClass (own labels)."""
    ids = read_split(src.split_path("train"))
    for d in ("JPEGImages", "Annotations", "ImageSets/Main", "SegmentationClass"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        size, objects, _ = _objects(src, image_id)
        shutil.copy2(src.image_path(image_id), out / "JPEGImages" / f"{image_id}.jpg")
        (out / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, size, objects))
        save_label_png(out / "SegmentationClass" / f"{image_id}.png", own_label(load_label(src.label_path(image_id))))
    (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return out


def write_coco_layout(src: VocLayout, out: Path) -> tuple[Path, Path]:
    """``out/images/`` and ``out/annotations.json`` (COCO instances: each box's ground truth is its
    class's pixels inside it, as RLE)."""
    ids = read_split(src.split_path("train"))
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for n, image_id in enumerate(ids):
        (w, h), _, boxes = _objects(src, image_id)
        shutil.copy2(src.image_path(image_id), out / "images" / f"{image_id}.jpg")
        coco_id = 1000 + 7 * n
        images.append({"id": coco_id, "file_name": f"{image_id}.jpg", "width": w, "height": h})
        gt = own_label(load_label(src.label_path(image_id)))
        for x1, y1, x2, y2, c in boxes.tolist():
            inside = np.zeros((h, w), np.uint8)
            inside[y1:y2, x1:x2] = gt[y1:y2, x1:x2] == c
            rle = mask_utils.encode(np.asfortranarray(inside))
            annotations.append({"id": len(annotations) + 1, "image_id": coco_id, "category_id": CATEGORY_IDS[c - 1],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(inside.sum()), "iscrowd": 0,
                                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}})
    ann_path = out / "annotations.json"
    ann_path.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, CLASSES, strict=True)]}))
    return ann_path, out / "images"
