"""VOC-to-COCO scoring: box instances from a pseudo label, COCO result encoding, segm AP on a tiny COCO."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from bana_core.coco_eval import AP_KEYS, encode_results, evaluate_segm, instance_masks_from_label

# COCO ids on purpose unlike the contiguous labels: label 1 -> id 5 (airplane), 2 -> id 18 (dog).
LABEL_TO_CAT = {1: 5, 2: 18}


def _rect(h, w, y1, y2, x1, x2):
    m = np.zeros((h, w), bool)
    m[y1:y2, x1:x2] = True
    return m


def _scene():
    """Two images: 11 has two overlapping dog boxes (B smaller), 12 one airplane (medium size)."""
    box_a, box_b = [2, 2, 30, 30, 2], [20, 15, 45, 38, 2]  # areas 784 and 575
    mask_a = _rect(40, 50, 4, 28, 4, 28) & ~_rect(40, 50, 15, 38, 20, 45)  # A never enters box B
    mask_b = _rect(40, 50, 17, 36, 22, 43)  # B reaches into box A: the shared pixels are B's
    label11 = np.zeros((40, 50), np.uint8)
    label11[mask_a | mask_b] = 2
    label11[0, :] = 255
    mask_c = _rect(60, 80, 8, 52, 8, 66)
    label12 = np.zeros((60, 80), np.uint8)
    label12[mask_c] = 1
    label12[52:55, 60:70] = 2  # dog pixels inside the airplane box belong to no instance
    scene = {
        11: {"label": label11, "boxes": np.array([box_a, box_b]), "ann_ids": [101, 102], "masks": [mask_a, mask_b]},
        12: {"label": label12, "boxes": np.array([[5, 5, 70, 55, 1]]), "ann_ids": [103], "masks": [mask_c]},
    }
    images, anns = [], []
    for image_id, s in scene.items():
        h, w = s["label"].shape
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"{image_id}.jpg"})
        for ann_id, box, m in zip(s["ann_ids"], s["boxes"], s["masks"], strict=True):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": ann_id, "image_id": image_id, "category_id": LABEL_TO_CAT[int(box[4])],
                         "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                         "area": float(m.sum()), "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": 5, "name": "airplane"}, {"id": 18, "name": "dog"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return scene, coco


def _results(scene, transform=lambda m: m):
    out = []
    for image_id, s in scene.items():
        instances = instance_masks_from_label(s["label"], s["boxes"], s["ann_ids"])
        out += encode_results(image_id, [(a, transform(m)) for a, m in instances], LABEL_TO_CAT, s["boxes"])
    return out


def test_instances_recover_ground_truth_masks():
    scene, _ = _scene()
    for s in scene.values():
        instances = instance_masks_from_label(s["label"], s["boxes"], s["ann_ids"])
        assert [a for a, _ in instances] == s["ann_ids"]
        for (_, got), want in zip(instances, s["masks"], strict=True):
            assert got.dtype == bool and (got == want).all()


def test_overlap_split_rule():
    label = np.full((10, 10), 2, np.uint8)
    label[:8, :8] = 1
    label[9, 9] = 255
    boxes = np.array([[0, 0, 6, 6, 1],    # A, area 36
                      [3, 3, 8, 8, 1],    # B, area 25: smaller, wins the shared pixels
                      [3, 3, 8, 8, 1],    # C, same area as B: the lower index (B) wins
                      [0, 0, 10, 10, 2]])  # D, another class: its own pixels only
    masks = [m for _, m in instance_masks_from_label(label, boxes, [1, 2, 3, 4])]
    box = {i: _rect(10, 10, b[1], b[3], b[0], b[2]) for i, b in enumerate(boxes)}
    assert (masks[0] == (box[0] & ~box[1])).all()
    assert (masks[1] == box[1]).all()
    assert not masks[2].any()
    assert (masks[3] == (label == 2)).all()
    stack = np.stack(masks).sum(0)
    covered = (label == 1) & (box[0] | box[1])
    assert stack.max() == 1 and (stack[covered] == 1).all()  # each boxed class-1 pixel exactly once
    assert instance_masks_from_label(label, np.zeros((0, 5), np.int64), []) == []
    with pytest.raises(ValueError, match="annotation ids"):
        instance_masks_from_label(label, boxes, [1])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools' decode
def test_encode_results_category_ids_and_rle():
    scene, _ = _scene()
    s = scene[11]
    instances = instance_masks_from_label(s["label"], s["boxes"], s["ann_ids"])
    res = encode_results(11, instances, LABEL_TO_CAT, s["boxes"])
    assert [r["category_id"] for r in res] == [18, 18]  # the COCO id, not the contiguous label 2
    assert res == encode_results(11, instances, [18, 18])  # per-instance ids give the same dicts
    for r, (_, m) in zip(res, instances, strict=True):
        assert r["image_id"] == 11 and r["score"] == 1.0 and "bbox" not in r
        assert isinstance(r["segmentation"]["counts"], str)
        assert (mask_utils.decode({**r["segmentation"], "counts": r["segmentation"]["counts"].encode()}) == m).all()
    with pytest.raises(ValueError, match="boxes"):
        encode_results(11, instances, LABEL_TO_CAT)
    with pytest.raises(ValueError, match="2 instances but 1"):
        encode_results(11, instances, [18])


def test_perfect_masks_score_one():
    scene, coco = _scene()
    res = _results(scene)
    stats = evaluate_segm(coco, res, [11, 12])
    assert set(stats) == set(AP_KEYS)
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(1.0)
    assert stats["AP_S"] == pytest.approx(1.0) and stats["AP_M"] == pytest.approx(1.0)
    assert stats["AP_L"] is None  # no large ground truth: COCOeval's -1
    assert "area" not in res[0]  # the caller's dicts are not modified


def test_degraded_masks_and_image_restriction():
    scene, coco = _scene()
    shifted = _results(scene, lambda m: np.roll(m, (4, 4), axis=(0, 1)))
    stats = evaluate_segm(coco, shifted, [11, 12])
    assert 0 < stats["AP"] < 1
    assert stats["AP75"] < stats["AP50"]
    # image 12 alone, with perfect results there and shifted ones for image 11 (dropped)
    mixed = [r for r in shifted if r["image_id"] == 11] + [r for r in _results(scene) if r["image_id"] == 12]
    assert evaluate_segm(coco, mixed, [12])["AP"] == pytest.approx(1.0)


def test_wrong_category_ids_score_zero():
    scene, coco = _scene()
    as_labels = []
    for image_id, s in scene.items():
        instances = instance_masks_from_label(s["label"], s["boxes"], s["ann_ids"])
        as_labels += encode_results(image_id, instances, {1: 1, 2: 2}, s["boxes"])
    assert evaluate_segm(coco, as_labels, [11, 12])["AP"] == 0.0


def test_empty_results_are_zero():
    _, coco = _scene()
    assert evaluate_segm(coco, [], [11, 12]) == {k: 0.0 for k in AP_KEYS}
