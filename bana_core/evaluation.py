"""Scoring and packaging label maps, without torch: cheap jobs start fast.

Pseudo-label shards (fixed shards, merge into one index + mIoU), the box-fill baseline, the
CRF step on saved segmentation logits and the scoring before / after it, and the VOC
evaluation-server archive.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import softmax

from .classes import NUM_VOC_CLASSES
from .crf import crf_label
from .data.voc import VocLayout, load_image, load_label, read_voc_xml
from .errors import DataError
from .io import atomic_dir, atomic_path, read_json, save_label_png, write_json
from .label_index import add_shard
from .metrics import ConfusionMeter, per_class_json
from .progress import progress as track


def shard_ids(ids: Sequence[str], shard: int, n_shards: int) -> list[str]:
    """Contiguous fixed shard ``shard`` of ``n_shards`` (some may be empty when ids are few)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    n = len(ids)
    return list(ids[shard * n // n_shards:(shard + 1) * n // n_shards])


def merge_shards(shard_dirs: Sequence[Path], index_path: Path, eval_path: Path) -> dict:
    """One index listing every image once, and the mIoU of Y_crf, Y_ret and their agreement.

    Label paths are stored relative to the index's folder, so a results tree can be moved or
    read from another working directory (``read_pseudo_label_index`` resolves them).
    """
    index_dir = Path(index_path).parent
    index: dict[str, dict[str, str]] = {}
    meters = {k: ConfusionMeter(NUM_VOC_CLASSES) for k in ("crf", "ret", "agree")}
    timings: dict[str, float] = {}
    reach = {"bg_pixels": 0, "u0_positive": 0, "u0_sum": 0.0}
    for d in shard_dirs:
        d = Path(d)
        meta = read_json(d / "meta.json")
        add_shard(index, d, meta["ids"], index_dir)
        for k, m in meters.items():
            m.add(ConfusionMeter.from_dict(meta["confusion"][k]))
        for k, v in meta.get("timings_s", {}).items():
            timings[k] = timings.get(k, 0.0) + v
        for k, v in meta.get("u0_in_box_background", {}).items():
            reach[k] += v
    write_json(index_path, index)
    result = {"n_images": len(index), "timings_s": timings}
    # u0 inside the boxes on their ground-truth background (bana_core.stage2.add_u0_reach)
    n_bg = reach["bg_pixels"]
    result["u0_in_box_background"] = {"n_pixels": n_bg,
                                      "share_positive": reach["u0_positive"] / n_bg if n_bg else None,
                                      "mean": reach["u0_sum"] / n_bg if n_bg else None}
    for k, m in meters.items():
        mean, per_class = m.miou()
        result[f"miou_{k}"] = None if np.isnan(mean) else float(mean)
        result[f"per_class_{k}"] = per_class_json(per_class)
    write_json(eval_path, result)
    return result


def box_fill_label(height: int, width: int, boxes: np.ndarray) -> np.ndarray:
    """Every box filled with its class, smaller boxes on top (the 'Box' baseline of BANA Table 1)."""
    label = np.zeros((height, width), np.uint8)
    if len(boxes) == 0:
        return label
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for x1, y1, x2, y2, c in boxes[np.argsort(-areas, kind="stable")]:  # few boxes: painter's order
        label[y1:y2, x1:x2] = c
    return label


def box_fill_miou(voc_root: Path, image_ids: Sequence[str]) -> dict:
    layout = VocLayout(Path(voc_root))
    meter = ConfusionMeter(NUM_VOC_CLASSES)
    for image_id in image_ids:
        ann = read_voc_xml(layout.annotation_path(image_id))
        gt = load_label(layout.label_path(image_id), expect_size=(ann.width, ann.height))
        meter.update(box_fill_label(ann.height, ann.width, ann.boxes()), gt)
    mean, per_class = meter.miou()
    return {"miou": float(mean), "per_class": per_class_json(per_class),
            "n_images": len(image_ids)}


def crf_split(*, logits_dir: Path, voc_root: Path, crf_params: Sequence[float], out_dir: Path,
              progress: bool = True) -> None:
    """Raw (argmax) and DenseCRF-refined label PNGs from the logits that prediction saved.

    Runs without torch (softmax in numpy), so each CRF job starts in a fraction of a second.
    """
    layout = VocLayout(Path(voc_root))
    ids = read_json(logits_dir / "ids.json")
    with atomic_dir(out_dir) as tmp:
        for image_id in track(ids, desc=f"crf {out_dir.parent.name}", enabled=progress):
            path = logits_dir / f"{image_id}.npy"
            logits = np.load(path).astype(np.float32)
            if logits.ndim != 3 or logits.shape[0] != NUM_VOC_CLASSES:
                raise DataError(path, f"expected logits [{NUM_VOC_CLASSES}, H, W], got shape {logits.shape}")
            probs = softmax(logits, axis=0)
            image = load_image(layout.image_path(image_id), expect_size=(probs.shape[2], probs.shape[1]))
            save_label_png(tmp / "raw" / f"{image_id}.png", probs.argmax(0).astype(np.uint8))
            refined = crf_label(image, probs, params=tuple(crf_params))
            save_label_png(tmp / "crf" / f"{image_id}.png", refined.astype(np.uint8))
        write_json(tmp / "ids.json", ids)


def evaluate_split(pred_dir: Path, voc_root: Path) -> dict:
    """mIoU before and after CRF; a split without ground truth (real VOC test) says 'submit'."""
    layout = VocLayout(Path(voc_root))
    ids = read_json(pred_dir / "ids.json")
    if not all(layout.label_path(i).exists() for i in ids):
        return {"status": "submit", "n_images": len(ids)}
    meters = {k: ConfusionMeter(NUM_VOC_CLASSES) for k in ("raw", "crf")}
    for image_id in ids:
        gt = load_label(layout.label_path(image_id))
        for k, m in meters.items():
            m.update(load_label(pred_dir / k / f"{image_id}.png", expect_size=(gt.shape[1], gt.shape[0])), gt)
    result: dict = {"status": "scored", "n_images": len(ids)}
    for k, m in meters.items():
        mean, per_class = m.miou()
        result[f"miou_{k}"] = float(mean)
        result[f"per_class_{k}"] = per_class_json(per_class)
    return result


def archive_test_predictions(pred_dir: Path, out: Path, *, method: str = "crf", comp: str = "comp6") -> int:
    """Palette PNGs in the VOC evaluation-server layout, as a .tar.gz ready to submit."""
    ids = read_json(pred_dir / "ids.json")
    prefix = f"results/VOC2012/Segmentation/{comp}_test_cls"
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for image_id in ids:
            tar.add(pred_dir / method / f"{image_id}.png", arcname=f"{prefix}/{image_id}.png")
    return len(ids)
