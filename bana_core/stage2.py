"""Stage 2: pseudo labels (Y_crf, Y_ret) for a fixed shard of an image list, scored as they are made.

A shard writes ``<shard dir>/{crf,ret}/<id>.png`` and ``meta.json`` (its ids, its partial
confusion matrices and u0's reach into the boxes) into a temporary folder renamed into place
when complete, so a shard is complete or absent. The per-pixel method (BAP's u0, the DenseCRF
of Y_crf, the retrieval of Y_ret) is ``bana_core.pseudo_labels``; merging the shards into
``index.json`` and ``eval.json`` is ``bana_core.evaluation.merge_shards``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .classes import NUM_VOC_CLASSES
from .data.transforms import normalize
from .data.voc import VocLayout, bg_mask_from_boxes, load_image, load_label, read_voc_xml
from .io import atomic_dir, save_label_png, write_json
from .metrics import ConfusionMeter
from .progress import progress as track
from .pseudo_labels import pseudo_label_parts

log = logging.getLogger(__name__)

VARIANTS = {
    "std": {"use_u0": True, "agnostic": False},
    "nou0": {"use_u0": False, "agnostic": False},  # Table 3/8 "w/o u0": background CAM as u0
    "agnostic": {"use_u0": True, "agnostic": True},  # Table 9: 1 - u0 for every class
}


def add_u0_reach(totals: dict, u0: np.ndarray, gt: np.ndarray, boxes: np.ndarray) -> None:
    """Add to ``totals`` how far u0 (Eq. 4, after the cut) reaches the background inside the boxes:
    the ground-truth background pixels inside some box (``bg_pixels``), those with u0 > 0
    (``u0_positive``) and u0's sum over them (``u0_sum``). Where u0 is 0 there, the CRF sees no
    background evidence in the boxes, and BAP's attention does not reach the labels."""
    bg = (bg_mask_from_boxes(*gt.shape, boxes) == 0) & (gt == 0)  # inside some box, ground-truth background
    totals["bg_pixels"] += int(bg.sum())
    totals["u0_positive"] += int((u0[bg] > 0).sum())
    totals["u0_sum"] += float(u0[bg].sum())


@torch.no_grad()
def image_features(model, image: np.ndarray, device: torch.device) -> torch.Tensor:
    """Backbone features [C,h,w] (stride 8) of a whole image, float32 on CPU for the label math."""
    x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None].to(device))
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        f = model.features(x)
    return f[0].float().cpu()


def generate_shard(*, model, voc_root: Path, image_ids: Sequence[str], split: str, gen_grid: int, variant: str,
                   cfg: dict, out_dir: Path, device: torch.device, progress: bool = True) -> dict:
    """Pseudo labels of one shard, scored against the split's ground truth (when it exists)."""
    layout = VocLayout(Path(voc_root))
    opts = VARIANTS[variant]
    weight = model.classifier_weight.detach().float().cpu()
    meters = {k: ConfusionMeter(NUM_VOC_CLASSES) for k in ("crf", "ret", "agree")}
    timings = {"features": 0.0, "labels": 0.0, "io": 0.0}
    u0_reach = {"bg_pixels": 0, "u0_positive": 0, "u0_sum": 0.0}
    with atomic_dir(out_dir) as tmp:
        for image_id in track(image_ids, desc=f"pseudo labels {out_dir.name}", enabled=progress):
            t0 = time.perf_counter()
            ann = read_voc_xml(layout.annotation_path(image_id))
            image = load_image(layout.image_path(image_id), expect_size=(ann.width, ann.height))
            boxes = ann.boxes()
            t1 = time.perf_counter()
            feats = image_features(model, image, device)
            t2 = time.perf_counter()
            parts = pseudo_label_parts(
                image, feats, weight, boxes, grid_size=gen_grid, bg_threshold=cfg["bg_threshold"],
                crf=tuple(cfg["crf"]), use_u0=opts["use_u0"], seen_classes=[] if opts["agnostic"] else None)
            y_crf, y_ret = parts["y_crf"], parts["y_ret"]
            t3 = time.perf_counter()
            save_label_png(tmp / "crf" / f"{image_id}.png", y_crf)
            save_label_png(tmp / "ret" / f"{image_id}.png", y_ret)
            gt_path = layout.label_path(image_id, aug=(split == "train_aug"))
            if gt_path.exists():
                gt = load_label(gt_path, expect_size=(ann.width, ann.height))
                meters["crf"].update(y_crf, gt)
                meters["ret"].update(y_ret, gt)
                meters["agree"].update(y_crf, gt, mask=(y_crf == y_ret))
                add_u0_reach(u0_reach, parts["u0"].cpu().numpy(), gt, boxes)
            timings["io"] += (t1 - t0) + (time.perf_counter() - t3)
            timings["features"] += t2 - t1
            timings["labels"] += t3 - t2
        meta = {"ids": list(image_ids), "confusion": {k: m.to_dict() for k, m in meters.items()},
                "timings_s": timings, "u0_in_box_background": u0_reach}
        write_json(tmp / "meta.json", meta)
    return meta
