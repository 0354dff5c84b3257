"""Stage 3 on a user's own boxes (``stage3.segmenter``): the segmenter's training index, and its
masks written as ``bana_core.own_masks`` writes stage 2's.

Its own module, so that stage 2's mask shards do not run (nor rerun for) the segmenter's code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy.special import softmax

from .coco_eval import class_pixels_in_boxes
from .crf import crf_label
from .data.own import OwnLayout
from .errors import DataError
from .io import atomic_dir, read_json, write_json
from .label_index import add_shard
from .own_masks import ShardWriter
from .progress import progress as track
from .stage3 import predict_logits, segmenter_from_weights


def write_label_index(shard_dirs: Sequence[Path], index_path: Path) -> int:
    """The pseudo-label index (``bana_core.label_index``) of the mask shards' Y_crf and Y_ret, for
    training a segmenter on them; returns the number of images."""
    index: dict[str, dict[str, str]] = {}
    for d in map(Path, shard_dirs):
        add_shard(index, d, read_json(d / "meta.json")["ids"], Path(index_path).parent)
    write_json(index_path, index)
    return len(index)


def keep_inside_boxes(label: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``label`` with every pixel that lies outside all boxes of its class set to background: a
    segmenter sees no boxes, but the user's masks are instance masks of the user's boxes."""
    return np.where(class_pixels_in_boxes(label, boxes).any(0), label, 0).astype(label.dtype)


def segmenter_shard(*, model_path: Path, dataset_dir: Path, image_ids: Sequence[str], scales: Sequence[float],
                    flip: bool, crf: Sequence[float], out_dir: Path, device: torch.device,
                    progress: bool = True) -> dict:
    """Stage 3's masks of one shard: the trained segmenter's prediction (``scales`` and ``flip``
    averaged) refined by DenseCRF (``crf``), kept inside the boxes of each pixel's class
    (``keep_inside_boxes``), written as ``own_masks.masks_shard`` writes its own."""
    own = OwnLayout.open(dataset_dir)
    model = segmenter_from_weights(model_path, device)
    if model.num_classes != len(own.class_names):
        raise DataError(model_path, f"the segmenter has {model.num_classes} labels, the dataset "
                                    f"{len(own.class_names)} (background included)")
    timings = {"predict": 0.0, "crf": 0.0, "io": 0.0}
    with atomic_dir(out_dir) as tmp:
        writer = ShardWriter(own, tmp)
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
