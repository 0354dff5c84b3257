"""Masks from a user's own boxes: stage 2 on the internal layout of ``bana_core.data.own``.

A shard writes, into a folder renamed into place when complete: ``png/<id>.png`` (the chosen
pseudo label, Y_crf or Y_ret, as a VOC palette PNG: label k = class k, 0 background),
``results.json`` (COCO results: one RLE mask per box, with its ``category_id``, ``bbox`` and
``score``), and ``meta.json`` (its ids, timings and, with ground truth, what scoring needs).
A stage-2 shard also keeps both pseudo labels (``crf/``, ``ret/``): with ``stage3.segmenter``
set, a DeepLab is trained on them (``write_label_index`` + ``bana_core.stage3``) and
``segmenter_shard`` writes its masks in the same form. ``merge_masks`` gathers the shards into
the folder a user reads; ``score_masks`` scores them against the user's ground truth beside the
box-fill baseline.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .coco_eval import AP_KEYS, encode_results, evaluate_segm, instance_masks_from_label
from .crf import crf_label
from .data.own import OwnLayout
from .data.voc import load_image, load_label, read_voc_xml
from .errors import DataError
from .evaluation import box_fill_label
from .io import atomic_dir, read_json, save_label_png, write_json, write_text
from .label_index import index_entry
from .metrics import ConfusionMeter
from .progress import progress as track
from .pseudo_labels import pseudo_label_parts
from .stage2 import image_features

log = logging.getLogger(__name__)

LABELS = ("crf", "ret")


def box_results(label: np.ndarray, boxes: np.ndarray, coco_id: int, ann_ids: Sequence[int],
                category_of_label: dict[int, int]) -> list[dict]:
    """COCO results of one image: each box's instance (its class's pixels inside it, see
    ``instance_masks_from_label``) as RLE, with the box as ``bbox`` [x, y, w, h], score 1.0."""
    instances = instance_masks_from_label(label, boxes, ann_ids)
    results = encode_results(coco_id, instances, category_of_label, boxes)
    for r, (x1, y1, x2, y2, _) in zip(results, boxes.tolist(), strict=True):
        r["bbox"] = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
    return results


class _ShardWriter:
    """A mask shard's input and output per image: reads its boxes and pixels, keeps its PNG, each
    box's RLE result, and with ground truth what scoring needs (confusion matrices for the VOC
    layout, box-fill results for COCO)."""

    def __init__(self, own: OwnLayout, tmp: Path):
        self.own, self.tmp = own, tmp
        self.scored_voc = own.info["scored"] and own.info["layout"] == "voc"
        self.meters = {k: ConfusionMeter(len(own.class_names)) for k in ("masks", "box_fill")}
        self.results: list[dict] = []
        self.fill_results: list[dict] = []

    def read(self, image_id: str):
        """The image's boxes (its VOC annotation, with the user's classes) and its pixels."""
        ann = read_voc_xml(self.own.voc.annotation_path(image_id), class_names=self.own.class_names)
        return ann, load_image(self.own.voc.image_path(image_id), expect_size=(ann.width, ann.height))

    def add(self, image_id: str, ann, mask: np.ndarray) -> None:
        own, boxes = self.own, ann.boxes()
        save_label_png(self.tmp / "png" / f"{image_id}.png", mask)
        rec = own.info["images"][image_id]
        self.results += box_results(mask, boxes, rec["coco_id"], rec["ann_ids"], own.category_of_label)
        if not own.info["scored"]:
            return
        fill = box_fill_label(ann.height, ann.width, boxes)
        if self.scored_voc:
            gt = load_label(own.voc.label_path(image_id), expect_size=(ann.width, ann.height),
                            num_classes=len(own.class_names))
            self.meters["masks"].update(mask, gt)
            self.meters["box_fill"].update(fill, gt)
        else:
            self.fill_results += box_results(fill, boxes, rec["coco_id"], rec["ann_ids"], own.category_of_label)

    def finish(self, image_ids: Sequence[str], timings: dict) -> dict:
        write_json(self.tmp / "results.json", self.results)
        meta = {"ids": list(image_ids), "timings_s": timings}
        if self.scored_voc:
            meta["confusion"] = {k: m.to_dict() for k, m in self.meters.items()}
        if self.fill_results:
            write_json(self.tmp / "results_box_fill.json", self.fill_results)
        write_json(self.tmp / "meta.json", meta)
        return meta


def keep_inside_boxes(label: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``label`` with every pixel that lies outside all boxes of its class set to background: a
    segmenter sees no boxes, but the user's masks are instance masks of the user's boxes."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 5)
    h, w = label.shape
    ys, xs = np.arange(h), np.arange(w)
    in_rows = (ys[None, :] >= boxes[:, 1, None]) & (ys[None, :] < boxes[:, 3, None])  # [M, H]
    in_cols = (xs[None, :] >= boxes[:, 0, None]) & (xs[None, :] < boxes[:, 2, None])  # [M, W]
    member = in_rows[:, :, None] & in_cols[:, None, :] & (label[None] == boxes[:, 4, None, None])
    return np.where(member.any(0), label, 0).astype(label.dtype)


def _check_classes(dataset_dir: Path, own: OwnLayout, known: Sequence[str] | None, what: str) -> None:
    if known is not None and tuple(known) != own.class_names:
        raise DataError(dataset_dir, f"the {what} knows {list(known)[1:]}, the dataset {list(own.class_names)[1:]}")


def masks_shard(*, model, dataset_dir: Path, image_ids: Sequence[str], cfg: dict, out_dir: Path,
                device: torch.device, progress: bool = True) -> dict:
    """Masks of one shard (module docstring). ``cfg``: stage 2's ``grid_size``, ``bg_threshold``,
    ``crf`` and ``masks`` (which pseudo label: crf | ret). Both pseudo labels are also kept, as
    ``crf/<id>.png`` and ``ret/<id>.png``, for a segmenter trained on them (``segmenter_shard``)."""
    own = OwnLayout.open(dataset_dir)
    _check_classes(dataset_dir, own, getattr(model, "class_names", None), "classifier")
    weight = model.classifier_weight.detach().float().cpu()
    timings = {"features": 0.0, "labels": 0.0, "io": 0.0}
    with atomic_dir(out_dir) as tmp:
        writer = _ShardWriter(own, tmp)
        for image_id in track(image_ids, desc=f"masks {out_dir.name}", enabled=progress):
            t0 = time.perf_counter()
            ann, image = writer.read(image_id)
            t1 = time.perf_counter()
            feats = image_features(model, image, device)
            t2 = time.perf_counter()
            parts = pseudo_label_parts(image, feats, weight, ann.boxes(), grid_size=cfg["grid_size"],
                                       bg_threshold=cfg["bg_threshold"], crf=tuple(cfg["crf"]))
            t3 = time.perf_counter()
            for kind in LABELS:
                save_label_png(tmp / kind / f"{image_id}.png", parts[f"y_{kind}"])
            writer.add(image_id, ann, parts[f"y_{cfg['masks']}"])
            timings["io"] += (t1 - t0) + (time.perf_counter() - t3)
            timings["features"] += t2 - t1
            timings["labels"] += t3 - t2
        return writer.finish(image_ids, timings)


def write_label_index(shard_dirs: Sequence[Path], index_path: Path) -> int:
    """The pseudo-label index (``bana_core.label_index``) of the mask shards' Y_crf and Y_ret, for
    training a segmenter on them; returns the number of images."""
    index_dir = Path(index_path).parent
    index: dict[str, dict[str, str]] = {}
    for d in map(Path, shard_dirs):
        for image_id in read_json(d / "meta.json")["ids"]:
            index[image_id] = index_entry(d, image_id, index_dir)
    write_json(index_path, index)
    return len(index)


def segmenter_shard(*, model_path: Path, dataset_dir: Path, image_ids: Sequence[str], scales: Sequence[float],
                    flip: bool, crf: Sequence[float], out_dir: Path, device: torch.device,
                    progress: bool = True) -> dict:
    """Stage 3's masks of one shard: the trained segmenter's prediction (``scales`` and ``flip``
    averaged) refined by DenseCRF (``crf``), kept inside the boxes of each pixel's class
    (``keep_inside_boxes``), written as ``masks_shard`` writes its own."""
    from scipy.special import softmax

    from .stage3 import predict_logits, segmenter_from_weights

    own = OwnLayout.open(dataset_dir)
    model = segmenter_from_weights(model_path, device)
    if model.num_classes != len(own.class_names):
        raise DataError(model_path, f"the segmenter has {model.num_classes} labels, the dataset "
                                    f"{len(own.class_names)} (background included)")
    timings = {"predict": 0.0, "crf": 0.0, "io": 0.0}
    with atomic_dir(out_dir) as tmp:
        writer = _ShardWriter(own, tmp)
        for image_id in track(image_ids, desc=f"segmenter masks {out_dir.name}", enabled=progress):
            t0 = time.perf_counter()
            ann, image = writer.read(image_id)
            t1 = time.perf_counter()
            logits = predict_logits(model, image, scales=scales, flip=flip, device=device).numpy()
            t2 = time.perf_counter()
            mask = crf_label(image, softmax(logits, axis=0), params=tuple(crf)).astype(np.uint8)
            t3 = time.perf_counter()
            writer.add(image_id, ann, keep_inside_boxes(mask, ann.boxes()))
            timings["io"] += (t1 - t0) + (time.perf_counter() - t3)
            timings["predict"] += t2 - t1
            timings["crf"] += t3 - t2
        return writer.finish(image_ids, timings)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same file system: no second copy of every mask
    except OSError:
        shutil.copy2(src, dst)


def merge_masks(shard_dirs: Sequence[Path], dataset_dir: Path, out_dir: Path) -> dict:
    """The folder a user reads: ``png/<id>.png``, ``coco_results.json`` (every box's RLE mask),
    ``instances.json`` (the COCO images and categories those results refer to, with the boxes as
    annotations) and ``labels.txt`` (palette index -> class name)."""
    own = OwnLayout.open(dataset_dir)
    ids: list[str] = []
    results: list[dict] = []
    with atomic_dir(out_dir) as tmp:
        (tmp / "png").mkdir()
        for d in map(Path, shard_dirs):
            meta = read_json(d / "meta.json")
            ids += meta["ids"]
            results += read_json(d / "results.json")
            for image_id in meta["ids"]:
                _link_or_copy(d / "png" / f"{image_id}.png", tmp / "png" / f"{image_id}.png")
        if sorted(ids) != sorted(own.image_ids):
            raise DataError(shard_dirs[0].parent, f"the shards list {len(ids)} images, the dataset "
                                                  f"{len(own.image_ids)}")
        # compact: one entry per box, millions of them on a large dataset
        write_text(tmp / "coco_results.json", json.dumps(results, separators=(",", ":")) + "\n")
        shutil.copy2(own.root / "instances.json", tmp / "instances.json")
        write_text(tmp / "labels.txt", "".join(f"{k} {n}\n" for k, n in enumerate(own.class_names)))
    summary = {"n_images": len(ids), "n_results": len(results)}
    log.info("masks: %s in %s", summary, out_dir)
    return summary


def score_masks(methods: Mapping[str, Sequence[Path]], dataset_dir: Path) -> pd.DataFrame:
    """Each method's masks (its name -> its shard folders) against the user's ground truth, then
    filling the boxes (from the first method's shards): mIoU (%), pixel accuracy and per-class IoU
    for the VOC layout, COCO segm AP (%) for the COCO layout."""
    from pycocotools.coco import COCO

    own = OwnLayout.open(dataset_dir)
    first = list(next(iter(methods.values())))
    rows_of = [(name, [Path(d) for d in dirs], "masks", "results.json") for name, dirs in methods.items()]
    rows_of.append(("box fill", [Path(d) for d in first], "box_fill", "results_box_fill.json"))
    if own.info["layout"] == "voc":
        rows = []
        for method, dirs, key, _ in rows_of:
            meter = ConfusionMeter(len(own.class_names))
            for d in dirs:
                meter.add(ConfusionMeter.from_dict(read_json(d / "meta.json")["confusion"][key]))
            miou, per_class = meter.miou()
            rows.append({"masks": method, "mIoU": 100 * miou, "pixel accuracy": 100 * meter.pixel_accuracy(),
                         **{c: 100 * v for c, v in zip(own.class_names, per_class, strict=True)}})
        return pd.DataFrame(rows).set_index("masks")
    ids = [own.info["images"][i]["coco_id"] for d in first for i in read_json(Path(d) / "meta.json")["ids"]]
    gt = COCO(str(own.root / "instances.json"))
    rows = []
    for method, dirs, _, fname in rows_of:
        # without 'bbox': pycocotools would take each result's area from its box, not its mask
        res = [{k: v for k, v in r.items() if k != "bbox"} for d in dirs for r in read_json(d / fname)]
        ap = evaluate_segm(gt, res, ids)
        rows.append({"masks": method, **{k: (None if ap[k] is None else 100 * ap[k]) for k in AP_KEYS}})
    return pd.DataFrame(rows).set_index("masks")
