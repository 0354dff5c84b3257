"""VOC-to-COCO scoring (Table 4): box pseudo labels -> instance masks -> COCO results -> segm AP.

Without torch, so the scoring job (rule coco_eval) starts fast.

Each box becomes one instance: the pixels inside the box that carry the box's class in the
pseudo label map, scored 1.0, RLE-encoded. COCOeval (iouType 'segm') gives AP, AP50, AP75,
AP_S, AP_M, AP_L as fractions.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .errors import DataError
from .io import read_json

log = logging.getLogger(__name__)

AP_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")


def class_pixels_in_boxes(label: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """bool [M, H, W]: pixel inside box m and labelled with box m's class (``boxes``: int [M, 5] =
    x1, y1, x2, y2 exclusive, label)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 5)
    h, w = label.shape
    x1, y1, x2, y2, cls = (boxes[:, i] for i in range(5))
    ys, xs = np.arange(h), np.arange(w)
    # [M,H,1] & [M,1,W] -> [M,H,W] box membership, then the class condition.
    in_rows = (ys[None, :] >= y1[:, None]) & (ys[None, :] < y2[:, None])
    in_cols = (xs[None, :] >= x1[:, None]) & (xs[None, :] < x2[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :] & (label[None] == cls[:, None, None])


def instance_masks_from_label(label: np.ndarray, boxes: np.ndarray,
                              ann_ids: Sequence[int]) -> list[tuple[int, np.ndarray]]:
    """One (ann_id, bool mask H x W) per box, in box order.

    ``label``: H x W pseudo label (contiguous labels, 255 void); ``boxes``: int [M, 5] = x1, y1,
    x2, y2 (exclusive), label. An instance is the pixels inside its box whose label is the box's
    class. Overlap rule: a pixel claimed by several boxes (necessarily of the same class) goes
    to exactly one of them, the smallest-area box containing it; equal areas -> the lower box
    index. Instances may be empty (a box whose class lost every pixel).
    """
    label = np.asarray(label)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 5)
    ann_ids = [int(a) for a in ann_ids]
    if len(ann_ids) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(ann_ids)} annotation ids")
    m = len(boxes)
    if m == 0:
        return []
    member = class_pixels_in_boxes(label, boxes)
    # Rank boxes by (area, index); each pixel goes to its member box of lowest rank.
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    order = np.lexsort((np.arange(m), area))
    rank = np.empty(m, np.int32 if m >= 2**15 else np.int16)  # small dtype: the stack is [M,H,W]
    rank[order] = np.arange(m)
    owner_rank = np.where(member, rank[:, None, None], rank.dtype.type(m)).min(0)
    masks = member & (owner_rank[None] == rank[:, None, None])
    return [(a, masks[i]) for i, a in enumerate(ann_ids)]


def encode_results(image_id: int, instances: Sequence[tuple[int, np.ndarray]],
                   category_ids: Sequence[int] | Mapping[int, int], boxes: np.ndarray | None = None) -> list[dict]:
    """COCO result dicts (image_id, category_id, segmentation RLE with str counts, score 1.0).

    ``category_ids``: either the COCO category id of each instance, or a mapping contiguous
    label -> COCO category id, in which case ``boxes`` (the [M, 5] given to
    ``instance_masks_from_label``) supplies each instance's label. Result dicts carry no
    'bbox', so pycocotools derives area and box from the mask.
    """
    if isinstance(category_ids, Mapping):
        if boxes is None:
            raise ValueError("a label -> category mapping needs the boxes to know each instance's label")
        labels = np.asarray(boxes, dtype=np.int64).reshape(-1, 5)[:, 4]
        cats = [int(category_ids[int(lab)]) for lab in labels]
    else:
        cats = [int(c) for c in category_ids]
    if len(cats) != len(instances):
        raise ValueError(f"{len(instances)} instances but {len(cats)} category ids")
    out = []
    for (_, mask), cat in zip(instances, cats, strict=True):
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")  # JSON-ready
        out.append({"image_id": int(image_id), "category_id": cat, "segmentation": rle, "score": 1.0})
    return out


def evaluate_segm(coco_gt: COCO, results: list[dict], image_ids: Sequence[int]) -> dict:
    """COCOeval (segm) over ``image_ids``: {AP, AP50, AP75, AP_S, AP_M, AP_L} as fractions.

    Results for images outside ``image_ids`` are dropped. No results (or no images) -> all 0.0.
    A size range with no ground truth (COCOeval's -1) -> None. pycocotools' printout goes to
    this module's logger (INFO).
    """
    ids = sorted({int(i) for i in image_ids})
    keep = set(ids)
    # Copies: loadRes writes area/bbox/id into the dicts it is given.
    dets = [dict(r) for r in results if int(r["image_id"]) in keep]
    if not dets or not ids:
        log.info("segm evaluation: %d results on %d images -> all AP 0", len(dets), len(ids))
        return {k: 0.0 for k in AP_KEYS}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.info("COCOeval segm on %d images, %d results:\n%s", len(ids), len(dets), buf.getvalue())
    return {k: (None if v < 0 else float(v)) for k, v in zip(AP_KEYS, ev.stats[:6], strict=True)}


def evaluate_coco(shard_dirs: Sequence[Path], annotation_file: Path) -> dict:
    """Merge the shards' results and run COCOeval (segm) for Y_crf and Y_ret."""
    ids: list[int] = []
    results: dict[str, list] = {"crf": [], "ret": []}
    for d in shard_dirs:
        meta = read_json(Path(d) / "meta.json")
        ids += meta["ids"]
        for key in results:
            results[key] += read_json(Path(d) / f"results_{key}.json")
    if len(set(ids)) != len(ids):
        raise DataError(shard_dirs[0], "an image is listed by two shards")
    gt = COCO(str(annotation_file))
    out = {key: evaluate_segm(gt, res, ids) for key, res in results.items()}
    out["n_images"] = len(ids)
    return out
