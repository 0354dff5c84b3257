"""VOC-to-COCO (Table 4): the VOC-trained classifier labels COCO train2017 from its boxes.

The 20 COCO classes that are VOC classes use their CAMs (the VOC classifier's weight rows);
the other 60 are unseen and use 1 - u0 (Eq. 7) -- the same ``make_pseudo_labels`` as stage 2
with ``seen_classes``. Label maps use contiguous COCO labels 1..80 (0 = background); results
sent to pycocotools carry the real COCO category ids.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from .coco_eval import encode_results, instance_masks_from_label
from .data.coco import CocoData, voc_seen_labels
from .data.voc import load_image
from .io import atomic_dir, save_label_png, write_json
from .progress import progress as track
from .pseudo_labels import make_pseudo_labels
from .stage2 import image_features

log = logging.getLogger(__name__)


def coco_classifier_weight(voc_weight: torch.Tensor, seen: dict[int, int], n_labels: int) -> torch.Tensor:
    """[n_labels, C]: row l = the VOC weight of the VOC class COCO label l maps to, zeros if unseen."""
    weight = torch.zeros(n_labels, voc_weight.shape[1], dtype=voc_weight.dtype)
    weight[0] = voc_weight[0]
    if seen:
        labels = torch.tensor(sorted(seen))
        weight[labels] = voc_weight[torch.tensor([seen[int(lab)] for lab in labels])]
    return weight


def generate_coco_shard(*, model, coco: CocoData, image_ids: Sequence[int], cfg: dict, out_dir: Path,
                        device: torch.device, progress: bool = True) -> dict:
    """Pseudo labels and COCO instance results (RLE, score 1.0) of one shard of COCO images."""
    seen = voc_seen_labels(coco)
    n_labels = len(coco.categories) + 1
    weight = coco_classifier_weight(model.classifier_weight.detach().float().cpu(), seen, n_labels)
    label_to_cat = {label: cid for cid, label in coco.label_of_coco_id.items()}
    results: dict[str, list] = {"crf": [], "ret": []}
    n_boxes = 0
    with atomic_dir(out_dir) as tmp:
        for image_id in track(image_ids, desc=f"coco {out_dir.name}", enabled=progress):
            image = load_image(coco.image_path(image_id))
            boxes, ann_ids = coco.boxes(image_id), coco.annotation_ids(image_id)
            feats = image_features(model, image, device)
            y_crf, y_ret = make_pseudo_labels(image, feats, weight, boxes, grid_size=cfg["grid_size"],
                                              bg_threshold=cfg["bg_threshold"], crf=tuple(cfg["crf"]),
                                              seen_classes=sorted(seen))
            for key, label in (("crf", y_crf), ("ret", y_ret)):
                save_label_png(tmp / key / f"{image_id:012d}.png", label)
                instances = instance_masks_from_label(label, boxes, ann_ids)
                keep = [i for i, (_, mask) in enumerate(instances) if mask.any()]  # a box that lost every pixel
                results[key] += encode_results(image_id, [instances[i] for i in keep], label_to_cat, boxes[keep])
            n_boxes += len(boxes)
        meta = {"ids": [int(i) for i in image_ids], "n_boxes": n_boxes}
        write_json(tmp / "meta.json", meta)
        for key, res in results.items():
            write_json(tmp / f"results_{key}.json", res)
    return meta


def select_images(coco: CocoData, max_images: int | None) -> list[int]:
    ids = sorted(coco.image_ids)
    return ids if max_images is None else ids[:max_images]


def seen_summary(coco: CocoData) -> dict:
    seen = voc_seen_labels(coco)
    names = {label: name for label, (_cid, name) in enumerate(coco.categories, start=1)}
    return {"seen": sorted(names[lab] for lab in seen),
            "unseen": sorted(n for lab, n in names.items() if lab not in seen)}

