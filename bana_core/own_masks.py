"""Masks from a user's own boxes: stage 2 on the internal layout of ``bana_core.data.own``.

A shard writes, into a folder renamed into place when complete: ``png/<id>.png`` (the chosen
pseudo label, Y_crf or Y_ret, as a VOC palette PNG: label k = class k, 0 background),
``results.json`` (COCO results: one RLE mask per box, with its ``category_id``, ``bbox`` and
``score``), and ``meta.json`` (its ids, timings and, with ground truth, what scoring needs).
With ``stage3.segmenter`` set, a stage-2 shard also keeps both pseudo labels (``crf/``,
``ret/``), a DeepLab is trained on them and writes its masks with the same ``ShardWriter``
(``bana_core.own_segmenter``). ``merge_masks`` gathers the shards into
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
from .data.own import OwnLayout
from .data.voc import load_image, load_label, read_voc_xml
from .errors import DataError
from .evaluation import box_fill_label
from .io import atomic_dir, read_json, save_label_png, write_json, write_text
from .label_index import KINDS
from .metrics import ConfusionMeter
from .progress import progress as track
from .pseudo_labels import pseudo_label_parts
from .stage2 import image_features

log = logging.getLogger(__name__)

def box_results(label: np.ndarray, boxes: np.ndarray, coco_id: int, ann_ids: Sequence[int],
                category_of_label: dict[int, int]) -> list[dict]:
    """COCO results of one image: each box's instance (its class's pixels inside it, see
    ``instance_masks_from_label``) as RLE, with the box as ``bbox`` [x, y, w, h], score 1.0."""
    instances = instance_masks_from_label(label, boxes, ann_ids)
    results = encode_results(coco_id, instances, category_of_label, boxes)
    for r, (x1, y1, x2, y2, _) in zip(results, boxes.tolist(), strict=True):
        r["bbox"] = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
    return results


class ShardWriter:
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


def masks_shard(*, model, dataset_dir: Path, image_ids: Sequence[str], cfg: dict, out_dir: Path,
                device: torch.device, keep_labels: bool = False, progress: bool = True) -> dict:
    """Masks of one shard (module docstring). ``cfg``: stage 2's ``grid_size``, ``bg_threshold``,
    ``crf`` and ``masks`` (which pseudo label: crf | ret). ``keep_labels`` also keeps both pseudo
    labels, as ``crf/<id>.png`` and ``ret/<id>.png``, for a segmenter trained on them
    (``bana_core.own_segmenter``)."""
    own = OwnLayout.open(dataset_dir)
    names = own.class_names
    if tuple(getattr(model, "class_names", names)) != names:
        raise DataError(dataset_dir, f"the classifier knows {list(model.class_names)[1:]}, the dataset "
                                     f"{list(names)[1:]}")
    weight = model.classifier_weight.detach().float().cpu()
    timings = {"features": 0.0, "labels": 0.0, "io": 0.0}
    with atomic_dir(out_dir) as tmp:
        writer = ShardWriter(own, tmp)
        for image_id in track(image_ids, desc=f"masks {out_dir.name}", enabled=progress):
            t0 = time.perf_counter()
            ann, image = writer.read(image_id)
            t1 = time.perf_counter()
            feats = image_features(model, image, device)
            t2 = time.perf_counter()
            parts = pseudo_label_parts(image, feats, weight, ann.boxes(), grid_size=cfg["grid_size"],
                                       bg_threshold=cfg["bg_threshold"], crf=tuple(cfg["crf"]))
            t3 = time.perf_counter()
            writer.add(image_id, ann, parts[f"y_{cfg['masks']}"])
            if keep_labels:  # the chosen label is the PNG just written: linked, not encoded again
                for kind in KINDS:
                    kept = tmp / kind / f"{image_id}.png"
                    kept.parent.mkdir(exist_ok=True)
                    if kind == cfg["masks"]:
                        link_or_copy(tmp / "png" / f"{image_id}.png", kept)
                    else:
                        save_label_png(kept, parts[f"y_{kind}"])
            timings["io"] += (t1 - t0) + (time.perf_counter() - t3)
            timings["features"] += t2 - t1
            timings["labels"] += t3 - t2
        return writer.finish(image_ids, timings)


def link_or_copy(src: Path, dst: Path) -> None:
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
                link_or_copy(d / "png" / f"{image_id}.png", tmp / "png" / f"{image_id}.png")
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
    methods = {name: [Path(d) for d in dirs] for name, dirs in methods.items()}
    first = next(iter(methods.values()))
    metas = {d: read_json(d / "meta.json") for dirs in methods.values() for d in dirs}
    rows_of = [(name, dirs, "masks", "results.json") for name, dirs in methods.items()]
    rows_of.append(("box fill", first, "box_fill", "results_box_fill.json"))
    if own.info["layout"] == "voc":
        rows = []
        for method, dirs, key, _ in rows_of:
            meter = ConfusionMeter(len(own.class_names))
            for d in dirs:
                meter.add(ConfusionMeter.from_dict(metas[d]["confusion"][key]))
            miou, per_class = meter.miou()
            rows.append({"masks": method, "mIoU": 100 * miou, "pixel accuracy": 100 * meter.pixel_accuracy(),
                         **{c: 100 * v for c, v in zip(own.class_names, per_class, strict=True)}})
        return pd.DataFrame(rows).set_index("masks")
    ids = [own.info["images"][i]["coco_id"] for d in first for i in metas[d]["ids"]]
    gt = COCO(str(own.root / "instances.json"))
    rows = []
    for method, dirs, _, fname in rows_of:
        # without 'bbox': pycocotools would take each result's area from its box, not its mask
        res = [{k: v for k, v in r.items() if k != "bbox"} for d in dirs for r in read_json(d / fname)]
        ap = evaluate_segm(gt, res, ids)
        rows.append({"masks": method, **{k: (None if ap[k] is None else 100 * ap[k]) for k in AP_KEYS}})
    return pd.DataFrame(rows).set_index("masks")
